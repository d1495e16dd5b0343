-- The yaie command line: `yaie COMMAND [OPTIONS]`. Each command is a function here; the host
-- program (engine/host/main.c) calls main(args) and exits with what it returns.
local M = {}

local commands = {}
local usage = [[
usage: yaie COMMAND [OPTIONS]

commands:
  generate   generate text from a model (yaie generate --help)
  tokenize   print the token ids of stdin's text (yaie tokenize --help)
  convert    write a Hugging Face directory from a model file (yaie convert --help)
  run        run a Lua script with `require "yaie"` available (yaie run SCRIPT.lua [ARGS])
  repl       an interactive Lua prompt with an engine loaded (yaie repl --help)
  help       show this message

  --version  print yaie's version
]]

local function die(msg)
  io.stderr:write("yaie: ", msg, "\n")
  return 1
end

commands.run = {
  help = "usage: yaie run SCRIPT.lua [ARGS]\n\nRuns a Lua script; `arg` holds its arguments and `require \"yaie\"` works.\n",
  fn = function(args)
    local script = args[1]
    if not script then return die("run: no script given (yaie run SCRIPT.lua [ARGS])") end
    local chunk, err = loadfile(script)
    if not chunk then return die(err) end
    local script_args = { [0] = script }
    for i = 2, #args do script_args[i - 1] = args[i] end
    rawset(_G, "arg", script_args)
    local ok, res = xpcall(chunk, function(e) return e ~= nil and debug.traceback(e, 2) or nil end,
      unpack(script_args))
    -- error() with no message is how busted (and Lua 5.1 scripts) exit with a failure.
    if not ok then return res == nil and 1 or die(tostring(res)) end
    return type(res) == "number" and res or 0
  end,
}

function M.register(name, spec) commands[name] = spec end

function M.main(args)
  local name = args[1]
  if not name or name == "help" or name == "--help" or name == "-h" then
    io.stdout:write(usage)
    return name and 0 or 1
  end
  if name == "--version" or name == "version" then
    local C = require "yaie.c"
    io.stdout:write("yaie ", C.ffi.string(C.lib.yaie_version()), "\n")
    return 0
  end
  local cmd = commands[name]
  if not cmd then
    local ok, mod = pcall(require, "yaie.cli." .. name)
    if ok then cmd = mod end
  end
  if not cmd then return die("unknown command '" .. name .. "' (yaie --help lists them)") end
  local rest = {}
  for i = 2, #args do rest[#rest + 1] = args[i] end
  if rest[1] == "--help" or rest[1] == "-h" then
    io.stdout:write(cmd.help)
    return 0
  end
  -- Engine errors are plain messages naming the file and the problem: print them on one line.
  -- YAIE_TRACEBACK=1 shows where a failure came from.
  local handler = os.getenv("YAIE_TRACEBACK") and debug.traceback or function(e) return e end
  local ok, res = xpcall(cmd.fn, handler, rest)
  if not ok then return die(tostring(res)) end
  return res or 0
end

return M
