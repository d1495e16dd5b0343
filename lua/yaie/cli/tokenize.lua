-- `yaie tokenize --tokenizer PATH`: prints the token ids of stdin's text on one line.
local args = require "yaie.cli.args"

local options = {
  { "tokenizer", short = "t", type = "string" },
  { "bos", type = "flag" },
}

local help = [[
usage: yaie tokenize --tokenizer PATH [--bos] < text

Reads UTF-8 text from stdin and prints its token ids on one line, separated by spaces.

  -t, --tokenizer PATH   a llama2.c tokenizer.bin, a GGUF file, a tokenizer.json, or a model
                         directory holding tokenizer.json
      --bos              start with the BOS token (default: no BOS)

example:
  printf 'Hello world' | yaie tokenize --tokenizer ../shared/models/llama2-tokenizer/tokenizer.bin
]]

local function run(argv)
  local o, rest = args.parse(argv, options, "tokenize")
  if #rest > 0 then error("tokenize: unexpected argument '" .. rest[1] .. "' (yaie tokenize --help)", 0) end
  if not o.tokenizer then error("tokenize: no tokenizer given (--tokenizer PATH)", 0) end
  local tok = require("yaie.tokenizer").load(o.tokenizer)
  local text = io.stdin:read("*a") or ""
  local ids = tok:encode(text, { add_bos = o.bos or false })
  io.stdout:write(table.concat(ids, " "), "\n")
  return 0
end

return { help = help, fn = run }
