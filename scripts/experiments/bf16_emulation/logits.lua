-- yaie run logits.lua MODEL.gguf PROMPTS.json OUT.logits
-- Writes the CPU forward pass's logits at every position of every prompt (float32, prompt after
-- prompt), for the bf16 emulation sweep (README.md). PROMPTS.json: a list of token-id lists.
local yaie = require "yaie"
local C = require "yaie.c"
local ffi = C.ffi
local model_path, prompts_path, out_path = arg[1], arg[2], arg[3]
local f = assert(io.open(prompts_path))
local prompts = {}
for list in f:read("*a"):gmatch("%[([%d,%s]*)%]") do -- the inner lists of [[ids], [ids], ...]
  local ids = {}
  for id in list:gmatch("%d+") do ids[#ids + 1] = tonumber(id) end
  prompts[#prompts + 1] = ids
end
f:close()
local model = yaie.load { model = model_path, tokenizer = false, device = "cpu",
  threads = tonumber(os.getenv("THREADS") or "1") }
local vocab = model.config.vocab_size
local out = assert(io.open(out_path, "wb"))
for _, ids in ipairs(prompts) do
  local logits, n = model:prompt_logits(ids, true)
  assert(n == #ids, "one row of logits per position")
  out:write(ffi.string(logits, n * vocab * 4))
end
out:close()
