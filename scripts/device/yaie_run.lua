-- yaie's side of scripts/device/check_models.py, on the GPU:
--   yaie run scripts/device/yaie_run.lua MODEL_DIR PROMPTS.json OUT_PREFIX STEPS
-- Writes OUT_PREFIX.logits (fp32, every position of every prompt, in order) and OUT_PREFIX.json
-- ({"greedy": [[ids...], ...]}: STEPS greedy tokens per prompt, all prompts batched by the engine).
local yaie = require "yaie"
local C = require "yaie.c"
local ffi = C.ffi

local dir, prompts_path, prefix, steps = arg[1], arg[2], arg[3], tonumber(arg[4])
assert(dir and prompts_path and prefix and steps, "usage: yaie run yaie_run.lua MODEL_DIR PROMPTS.json OUT_PREFIX STEPS")

local function read_prompts(path)
  local f = assert(io.open(path))
  local text = f:read("*a")
  f:close()
  local prompts = {}
  for list in text:gmatch("%[([%d,%s]*)%]") do
    local ids = {}
    for n in list:gmatch("%d+") do ids[#ids + 1] = tonumber(n) end
    prompts[#prompts + 1] = ids
  end
  return prompts
end

local prompts = read_prompts(prompts_path)
local model = yaie.load { model = dir, tokenizer = false, device = "cuda" }
local vocab = model.config.vocab_size

-- Logits of every position, one prompt at a time.
local out = assert(io.open(prefix .. ".logits", "wb"))
for _, ids in ipairs(prompts) do
  local logits, n = model:prompt_logits(ids, true)
  assert(n == #ids)
  out:write(ffi.string(logits, n * vocab * 4))
end
out:close()

-- Greedy tokens of all prompts together, through the scheduler.
local engine = yaie.engine { model = model, device = "cuda", kv_memory = "512MiB", max_batch_tokens = 256 }
local reqs = {}
for i, ids in ipairs(prompts) do
  reqs[i] = engine:submit(ids, { max_tokens = steps, temperature = 0, ignore_eos = true })
end
engine:run()
local lists = {}
for i, r in ipairs(reqs) do lists[i] = "[" .. table.concat(r.tokens, ",") .. "]" end
local f = assert(io.open(prefix .. ".json", "w"))
f:write('{"greedy": [', table.concat(lists, ","), "]}\n")
f:close()
