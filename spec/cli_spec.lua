-- The yaie host program: help, `run`, Lua errors, and jemalloc under the allocations.
local H = require "helper"

describe("yaie", function()
  it("documents itself and every command", function()
    local code, out = H.yaie { "--help" }
    assert.are.equal(0, code)
    for _, cmd in ipairs { "generate", "tokenize", "convert", "run", "repl" } do
      assert.truthy(out:find(cmd, 1, true), cmd)
      local c, help = H.yaie { cmd, "--help" }
      assert.are.equal(0, c)
      assert.matches("usage: yaie " .. cmd, help)
    end
  end)

  it("prints the version of CMakeLists.txt's project()", function()
    local want = H.read(H.root .. "/CMakeLists.txt"):match("project%(yaie VERSION ([%d.]+)")
    local code, out = H.yaie { "--version" }
    assert.are.equal(0, code)
    assert.are.equal("yaie " .. want .. "\n", out)
  end)

  it("runs a Lua script with its arguments and require 'yaie'", function()
    local dir = H.tmpdir()
    H.write(dir .. "/s.lua", [[
      local yaie = require "yaie"
      assert(type(yaie.load) == "function")
      print(arg[0]:match("s%.lua$") and "script", ...)
      return 3
    ]])
    local code, out = H.yaie { "run", dir .. "/s.lua", "a", "b" }
    assert.are.equal(3, code)
    assert.are.equal("script\ta\tb\n", out)
    H.write(dir .. "/bad.lua", "local x = nil\nx.field = 1\n")
    local c2, _, err = H.yaie { "run", dir .. "/bad.lua" }
    assert.are.equal(1, c2)
    assert.matches("bad%.lua:2: attempt to index", err)
    assert.matches("stack traceback", err)
    os.execute("rm -rf " .. H.quote(dir))
  end)

  it("allocates through jemalloc (release build)", function()
    local p = io.popen("ldd " .. H.quote(H.bin))
    local libs = p:read("*a")
    p:close()
    if libs:find("libasan") then
      pending("the sanitizer build allocates through ASan instead of jemalloc")
      return
    end
    assert.truthy(libs:find("libjemalloc"), libs)
    local dir = H.tmpdir()
    os.execute("MALLOC_CONF=stats_print:true " .. H.quote(H.bin) .. " --help > /dev/null 2> " .. H.quote(dir .. "/err"))
    assert.matches("jemalloc statistics", H.read(dir .. "/err"))
    os.execute("rm -rf " .. H.quote(dir))
  end)
end)
