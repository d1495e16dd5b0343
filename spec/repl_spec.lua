-- `yaie repl` driven for real: the binary in a tmux pane (a terminal, so readline, the prompt
-- and Ctrl-C all take their interactive paths), keys typed with send-keys, the screen read back
-- with capture-pane. One session, in order: Lua, a multi-line chunk, an error, a policy swap,
-- a streamed generation, a long one cut by Ctrl-C, Ctrl-C at the prompt, the tree, :quit.
local H = require "helper"

local model = H.stories .. "/stories260K.gguf"
local TIMEOUT = 5 -- seconds to wait for any one piece of output

local function shell(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("*a")
  p:close()
  return out
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function now() return require("yaie.c").now() end

local skip = not shell("command -v tmux"):match("%S")
  and "tmux is not installed (apt-get install tmux): this spec drives the REPL in a terminal"
  or not exists(model) and ("no model at " .. model)

describe("yaie repl", function()
  if skip then return pending(skip) end
  local home, sock, session, expected
  local function tmux(args) return shell("tmux -S " .. H.quote(sock) .. " " .. args) end
  local function screen() return tmux("capture-pane -p -J -S - -t " .. session) end

  -- Types text literally (tmux would read "end" as the End key) and presses Enter.
  local function type_line(text)
    tmux("send-keys -t " .. session .. " -l " .. H.quote(text))
    tmux("send-keys -t " .. session .. " Enter")
  end
  local function key(name) tmux("send-keys -t " .. session .. " " .. name) end

  -- The screen after the last occurrence of `after` (nil if none), and how many there are.
  local function after_last(s, after)
    local from, count = nil, 0
    local at = s:find(after, 1, true)
    while at do
      from, count = at, count + 1
      at = s:find(after, at + 1, true)
    end
    return from and s:sub(from), count
  end

  -- Waits until the screen, after the last occurrence of `after` (the (seen + 1)th or later),
  -- matches `pattern` (plain text unless lua_pattern); returns that part of the screen, with
  -- the empty rows below the cursor trimmed.
  local function wait_for(after, pattern, lua_pattern, seen)
    local deadline = now() + TIMEOUT
    repeat
      local text, count = after_last(screen(), after)
      if text and count > (seen or 0) and text:find(pattern, 1, not lua_pattern) then
        return (text:gsub("\n+$", "\n"))
      end
      os.execute("sleep 0.05")
    until now() > deadline
    error(("no %q after %q within %ds; the screen:\n%s"):format(pattern, after, TIMEOUT, screen()), 2)
  end

  -- Types a line and waits for the pattern in what follows its echo.
  local function run(line, pattern, lua_pattern)
    local echo = "> " .. line .. "\n"
    local _, seen = after_last(screen(), echo)
    type_line(line)
    return wait_for(echo, pattern, lua_pattern, seen)
  end

  setup(function()
    home = H.tmpdir()
    sock = home .. "/tmux.sock"
    session = "repl"
    -- A server of our own (-S, its socket in our directory) with no user config; the pane stays after the REPL exits. Its
    -- shell prints the exit status (tmux's own #{pane_dead_status} is not reliable here: it
    -- can miss the child's exit), and lets Ctrl-C pass by.
    H.write(home .. "/tmux.conf", "set -g remain-on-exit on\nset -g history-limit 5000\nset -g default-shell /bin/sh\n")
    local cmd = ("trap : INT; cd %s && HOME=%s YAIE_ROOT=%s %s repl --model %s --threads 1; echo \"exit status $?\""):format(
      H.quote(H.root), H.quote(home), H.quote(H.root), H.quote(H.bin), H.quote(model))
    tmux(("-f %s new-session -d -s %s -x 200 -y 50 %s"):format(H.quote(home .. "/tmux.conf"), session, H.quote(cmd)))
    -- What the engine makes of the prompt, to compare with what streams on the screen.
    local engine = require("yaie").engine { model = model, threads = 1 }
    local req = engine:submit("Once upon a time", { max_tokens = 16, temperature = 0 })
    engine:run()
    expected = req.text
  end)

  teardown(function()
    if sock then tmux("kill-server") end
    if home then os.execute("rm -rf " .. H.quote(home)) end
  end)

  it("starts with the model and the policy", function()
    wait_for("yaie repl:", "policy lpm")
    wait_for("Ctrl-D quits.", "> ")
  end)

  it("evaluates Lua expressions and shows their values", function()
    run("6 * 7", "\n42\n> ")
    run([[("ab"):rep(2), 2^10, {1, x = true}]], '\n"abab"%s+1024%s+{ 1, x = true }\n> ', true)
    run("local n = 1", "\n> ")
  end)

  it("continues an unfinished chunk on the >> prompt", function()
    type_line("function twice(x)")
    wait_for("function twice(x)", "\n>> ")
    type_line("  return 2 * x")
    type_line("end")
    wait_for(">> end", "\n> ")
    run("twice(21)", "\n42\n> ")
    -- A busy on_token for the long generation below, so that Ctrl-C surely lands inside it.
    run("function slow() local t = os.clock() + 0.02 repeat until os.clock() > t end", "\n> ")
  end)

  it("prints an error's traceback and carries on", function()
    local out = run("local t = nil; return t.field", "\n> ")
    assert.matches("stdin:1: attempt to index local 't' %(a nil value%)", out)
    assert.matches("stack traceback:", out)
    run("twice(4)", "\n8\n> ")
  end)

  it("swaps the scheduling policy and shows it in :stats", function()
    run(":policy fcfs", "policy = fcfs\n> ")
    local out = run(":stats", "\n> ")
    assert.matches("\npolicy = fcfs\n", out)
    assert.matches("\nrunning = 0\n", out)
    run(":policy nosuch", "unknown policy 'nosuch'")
    run(":policy", "policy = fcfs\n> ")
  end)

  it("streams a generation and returns its text", function()
    assert.truthy(#expected > 0)
    local line = 'gen("Once upon a time", {max_tokens = 16, temperature = 0})'
    local out = run(line, "\n> ")
    -- The stream on its own line, then the returned value.
    local value = string.format("%q", expected):gsub("\\\n", "\\n") -- as the REPL quotes strings
    assert.are.equal("> " .. line .. "\n" .. expected .. "\n" .. value .. "\n> \n", out)
  end)

  it("cancels a generation on Ctrl-C and stays usable", function()
    local line = 'gen("Once upon a time", {max_tokens = 400, ignore_eos = true, on_token = slow})'
    type_line(line)
    wait_for(line, expected:sub(1, 12)) -- streaming has begun
    key("C-c")
    local out = wait_for(line, "\n^C cancelled\n> ")
    assert.is_nil(out:find("stack traceback", 1, true))
    -- The request is gone, its pages back in the pool or the cache, the structures whole.
    run("engine:stats().running, engine:stats().waiting", "\n0%s+0\n> ", true)
    run("engine.pool:check(), engine.tree:check()", "\ntrue%s+true\n> ", true)
    run("twice(50)", "\n100\n> ")
  end)

  it("clears the line on Ctrl-C at the prompt", function()
    tmux("send-keys -t " .. session .. " -l 'half a line'")
    wait_for("> twice(50)", "> half a line")
    key("C-c")
    wait_for("> twice(50)", "> half a line^C\n> ")
    run("twice(3)", "\n6\n> ")
  end)

  it("prints the radix tree", function()
    local out = run(":tree", "\n> ")
    assert.matches("radix tree: %d+ nodes", out)
    assert.matches("namespace default", out)
    assert.truthy(out:find('"Once upon a time,', 1, true), out)
  end)

  it("quits on :quit with status 0 and keeps the history", function()
    run(":quit", "\nexit status 0\n")
    local history = H.read(home .. "/.yaie_history")
    assert.truthy(history:find(":policy fcfs\n", 1, true), history)
    assert.truthy(history:find("function twice(x)\n  return 2 * x\nend\n", 1, true), history)
  end)
end)

describe("yaie repl without a terminal", function()
  it("reads lines from stdin and prints their values", function()
    if not exists(model) then return pending("no model at " .. model) end
    local code, out = H.yaie({ "repl", "--model", model, "--threads", "1" },
      "6 * 7\nfunction f()\n  return 'x'\nend\nf()\nerror('e')\n:stats\n")
    assert.are.equal(0, code)
    assert.matches('\n42\n"x"\nstdin:1: e\nstack traceback:', out)
    assert.matches("\npolicy = lpm\n", out)
  end)

  it("documents itself", function()
    local code, out = H.yaie { "repl", "--help" }
    assert.are.equal(0, code)
    assert.matches("usage: yaie repl", out)
  end)
end)
