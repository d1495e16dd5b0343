-- `yaie repl`: the interactive shell (lua/yaie/repl.lua) over an engine for one model.
local args = require "yaie.cli.args"

local options = {
  { "model", short = "m", type = "string" },
  { "tokenizer", short = "t", type = "string" },
  { "policy", type = "string", default = "lpm" },
  { "threads", type = "number", default = 0 },
}

local help = [[
usage: yaie repl [--model PATH] [OPTIONS]

A Lua prompt with `yaie`, `engine` (an engine serving the model) and gen(prompt, opts), which
streams the tokens as they are generated. Commands: :policy NAME|FILE, :tree, :pool, :stats,
:help, :quit. Ctrl-C cancels a generation; Ctrl-D quits. History: ~/.yaie_history.

  -m, --model PATH       llama2.c .bin, GGUF file, or Hugging Face directory (default:
                         ../shared/models/stories260K/stories260K.gguf beside the project,
                         when it is there; else no model, and no engine)
  -t, --tokenizer PATH   tokenizer file (default: the model's own)
      --policy NAME|FILE the scheduling policy to start with (default lpm)
      --threads N        CPU threads (default: all cores)
]]

local function default_model()
  local host = package.loaded["yaie.host"] or {}
  local path = (host.root or ".") .. "/../shared/models/stories260K/stories260K.gguf"
  local f = io.open(path, "rb")
  if not f then return nil end
  f:close()
  return path
end

local function run(argv)
  local o, rest = args.parse(argv, options, "repl")
  if #rest > 0 then error("repl: unexpected argument '" .. rest[1] .. "' (yaie repl --help)", 0) end
  local term = require "yaie.readline"
  -- Before the model loads, so that the CPU backend's threads start with Ctrl-C held as well
  -- and a Ctrl-C always reaches the REPL's thread (lua/yaie/readline.lua).
  term.hold_sigint()
  local model = o.model or default_model()
  local engine
  if model then
    engine = require("yaie").engine { model = model, tokenizer = o.tokenizer, threads = o.threads, policy = o.policy }
  end
  if term.take_sigint() then return 130 end -- Ctrl-C while the model loaded
  return require("yaie.repl").new({ engine = engine, model = model }):run()
end

return { help = help, fn = run }
