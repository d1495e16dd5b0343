-- Bad input never crashes the engine: truncated and corrupted model files, bad magic, wrong
-- sizes, mismatched or missing tensors, unknown architectures, a missing tokenizer, invalid
-- UTF-8 and prompts past the context all fail with one clear line naming the problem.
local H = require "helper"
local C = require "yaie.c"
local ffi, lib = C.ffi, C.lib

local quick = os.getenv("YAIE_SPEC_QUICK") ~= nil

-- Loads a model through the FFI: nil and the message on failure.
local function try_load(path)
  local out = ffi.new("yaie_model*[1]")
  if lib.yaie_model_load(path, out) ~= 0 then return nil, ffi.string(lib.yaie_last_error()) end
  lib.yaie_model_free(out[0])
  return true
end

local dir
setup(function() dir = H.tmpdir() end)
teardown(function() os.execute("rm -rf " .. H.quote(dir)) end)

local function variant(name, data)
  local path = dir .. "/" .. name
  H.write(path, data)
  return path
end

local function offsets(size, n)
  local list, seen = {}, {}
  local function add(o) if o >= 0 and o < size and not seen[o] then seen[o] = true list[#list + 1] = o end end
  for o = 0, 64 do add(o) end
  for i = 1, n do add(math.floor(size * i / (n + 1))) end
  add(size - 1)
  return list
end

describe("a truncated model file", function()
  for _, file in ipairs { "stories260K.bin", "stories260K.gguf" } do
    it("fails cleanly at every cut (" .. file .. ")", function()
      local data = H.read(H.stories .. "/" .. file)
      for _, cut in ipairs(offsets(#data, quick and 40 or 400)) do
        local path = variant("cut-" .. file, data:sub(1, cut))
        local ok, err = try_load(path)
        assert.is_nil(ok, "cut at " .. cut .. " loaded")
        assert.truthy(err:find(path, 1, true), "message names the file: " .. err)
      end
    end)
  end
end)

describe("a corrupted GGUF file", function()
  it("loads or fails with a message, whatever bytes are flipped", function()
    local data = H.read(H.stories .. "/stories260K.gguf")
    local rng = 12345
    local function rand(n)
      rng = (rng * 1103515245 + 12345) % 2147483648
      return rng % n
    end
    local failures = 0
    for i = 1, quick and 100 or 1000 do
      -- Mostly the header and metadata, where a flip changes the structure.
      local at = i % 4 == 0 and rand(#data) or rand(8192)
      local flipped = data:sub(1, at) .. string.char(rand(256)) .. data:sub(at + 2)
      local ok, err = try_load(variant("flip.gguf", flipped))
      if not ok then
        failures = failures + 1
        assert.truthy(#err > 10, "a real message: " .. tostring(err))
      end
    end
    assert.is_true(failures > 0)
  end)

  local gguf
  setup(function() gguf = H.read(H.stories .. "/stories260K.gguf") end)

  local function edited(from, to)
    local at = gguf:find(from, 1, true)
    assert.truthy(at, from)
    return gguf:sub(1, at - 1) .. to .. gguf:sub(at + #from)
  end

  it("names a bad magic", function()
    local _, err = try_load(variant("magic.gguf", "GGUX" .. gguf:sub(5)))
    assert.truthy(err:find("not a llama2.c checkpoint") or err:find("magic"), err)
  end)

  it("names a missing tensor", function()
    local _, err = try_load(variant("missing.gguf", edited("blk.3.ffn_up.weight", "blk.3.ffn_xx.weight")))
    assert.matches("missing tensor blk.3.ffn_up.weight", err)
  end)

  it("names an unknown architecture", function()
    local at = gguf:find("general.architecture", 1, true) + #"general.architecture" + 4 + 8
    assert.are.equal("llama", gguf:sub(at, at + 4))
    local bad = gguf:sub(1, at - 1) .. "mamba" .. gguf:sub(at + 5)
    local _, err = try_load(variant("arch.gguf", bad))
    assert.matches("architecture 'mamba' is not supported", err)
  end)

  it("names a tensor whose shape does not match the config", function()
    -- embedding_length 64 -> 65: every [64, ...] tensor now mismatches
    local key = "llama.embedding_length"
    local at = gguf:find(key, 1, true) + #key + 4 -- skip the value type
    local bad = gguf:sub(1, at - 1) .. string.char(65) .. gguf:sub(at + 1)
    local _, err = try_load(variant("shape.gguf", bad))
    assert.matches("has shape", err)
  end)
end)

describe("a llama2.c checkpoint of the wrong size", function()
  it("says the size does not match its header", function()
    local data = H.read(H.stories .. "/stories260K.bin")
    local _, err = try_load(variant("long.bin", data .. "\0\0\0\0"))
    assert.matches("does not match", err)
    local header = ffi.new("int32_t[7]", { 64, 172, 5, 8, 3, 512, 512 }) -- 8 heads over 3 kv heads
    _, err = try_load(variant("heads.bin", ffi.string(header, 28) .. data:sub(29)))
    assert.matches("n_kv_heads", err)
  end)
end)

describe("the CLI on bad input", function()
  local function one_line_failure(args, stdin)
    local code, out, err = H.yaie(args, stdin)
    assert.are.equal(1, code, err)
    assert.matches("^yaie: [^\n]+\n$", err)
    assert.is_nil(err:find("AddressSanitizer") or err:find("LeakSanitizer") or err:find("runtime error"))
    return err
  end

  it("reports a truncated model", function()
    local data = H.read(H.stories .. "/stories260K.gguf")
    local path = variant("cli-cut.gguf", data:sub(1, 5000))
    assert.matches("truncated", one_line_failure { "generate", "--model", path, "-n", "3" })
  end)

  it("reports a missing file", function()
    assert.matches("cannot open", one_line_failure { "generate", "--model", dir .. "/nope.bin" })
  end)

  it("reports a model without a tokenizer", function()
    os.execute("mkdir -p " .. H.quote(dir .. "/alone") .. " && cp " .. H.quote(H.stories .. "/stories260K.bin") ..
      " " .. H.quote(dir .. "/alone/"))
    local err = one_line_failure { "generate", "--model", dir .. "/alone/stories260K.bin", "--prompt", "hi" }
    assert.matches("no tokenizer", err)
  end)

  it("reports invalid UTF-8 in the prompt", function()
    local err = one_line_failure { "generate", "--model", H.stories .. "/stories260K.gguf", "--prompt", "a\255b" }
    assert.matches("UTF%-8", err)
  end)

  it("reports a prompt longer than the context", function()
    local long = string.rep("Once upon a time there was a cat. ", 200)
    local err = one_line_failure { "generate", "--model", H.stories .. "/stories260K.bin", "--prompt", long }
    assert.matches("does not fit the model's context of 512 tokens", err)
  end)

  it("reports bad options", function()
    assert.matches("wants a number", one_line_failure { "generate", "--model", "x", "-n", "many" })
    assert.matches("unknown option", one_line_failure { "generate", "--bogus" })
    assert.matches("unknown command", one_line_failure { "frobnicate" })
  end)
end)
