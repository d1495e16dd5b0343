-- Decode rounds through the whole engine (scheduler, commit, streaming of text): tok/s and the
-- host's microseconds per generated token (the scheduler's Lua and C-call time outside waits on
-- the device) with decode_steps 1 and N, and how much of the host time ran while a round was on
-- the device (the commit of the round before it).
--   yaie run scripts/bench/rounds.lua [--model stories|15m|1b|8b] [--device cpu|cuda]
--                                     [--batches 1,16] [--steps 1,8] [--new 128] [--threads N]
local yaie = require "yaie"
local C = require "yaie.c"
local ffi, lib = C.ffi, C.lib

local opts = { model = "stories", device = "cpu", batches = "1,16", steps = "1,8", new = "128", threads = "0" }
for i = 1, #arg - 1 do
  local k = arg[i]:match("^%-%-(.+)$")
  if k then
    if opts[k] == nil then error("rounds.lua: unknown option --" .. k) end
    opts[k] = arg[i + 1]
  end
end
local function list(s)
  local t = {}
  for v in s:gmatch("[^,]+") do t[#t + 1] = tonumber(v) end
  return t
end

-- Random-weight shapes (built in memory) or stories260K from ../shared.
local shapes = {
  ["15m"] = { arch = "llama", dim = 288, hidden_dim = 768, n_layers = 6, n_heads = 6, n_kv_heads = 6, head_dim = 48,
    vocab_size = 32000, max_seq_len = 1024, tied_embeddings = 1 },
  ["1b"] = { arch = "llama", dim = 2048, hidden_dim = 8192, n_layers = 16, n_heads = 32, n_kv_heads = 8, head_dim = 64,
    vocab_size = 128256, max_seq_len = 8192, tied_embeddings = 1 },
  ["8b"] = { arch = "llama", dim = 4096, hidden_dim = 14336, n_layers = 32, n_heads = 32, n_kv_heads = 8,
    head_dim = 128, vocab_size = 128256, max_seq_len = 8192, tied_embeddings = 0 },
}
local model
if opts.model == "stories" then
  local H = os.getenv("YAIE_SHARED") or "../shared"
  model = yaie.load { model = H .. "/models/stories260K/stories260K.gguf", device = opts.device,
    threads = tonumber(opts.threads) }
else
  local s = assert(shapes[opts.model], "unknown --model " .. opts.model)
  local c = ffi.new("yaie_config")
  for k, v in pairs(s) do
    if k == "arch" then ffi.copy(c.arch, v) else c[k] = v end
  end
  c.norm_eps, c.rope_theta, c.rope_layout = 1e-5, 500000, 1
  local out = ffi.new("yaie_model*[1]")
  C.check(lib.yaie_model_random(c, 42, out))
  model = require("yaie.model").wrap(out[0], { device = opts.device, threads = tonumber(opts.threads) })
end

print(("| model | device | batch | decode_steps | tok/s | host µs/token | host time hidden |"))
print("| --- | --- | --- | --- | --- | --- | --- |")
local new = tonumber(opts.new)
for _, b in ipairs(list(opts.batches)) do
  for _, n in ipairs(list(opts.steps)) do
    local engine = yaie.engine { model = model, device = opts.device, decode_steps = n, max_running = b,
      kv_memory = opts.device == "cuda" and "4GiB" or "256MiB", threads = tonumber(opts.threads) }
    local function wave()
      local reqs = {}
      for i = 1, b do
        reqs[i] = engine:submit({ 1, 3 + i, 5 + i * 3 % 97, 7 }, { max_tokens = new, temperature = 0, ignore_eos = true })
      end
      engine:run()
      return reqs
    end
    wave() -- warm-up: graphs captured, pages touched
    local before = engine:stats()
    local t0 = C.now()
    local reqs = wave()
    local dt = C.now() - t0
    local st = engine:stats()
    local tokens = 0
    for _, r in ipairs(reqs) do tokens = tokens + #r.tokens end
    local host = st.host_ms - before.host_ms
    local hidden = st.round_host_hidden_ms - before.round_host_hidden_ms
    print(("| %s | %s | %d | %d | %.0f | %.1f | %.0f%% |"):format(opts.model, opts.device, b, n, tokens / dt,
      host * 1e3 / tokens, host > 0 and 100 * hidden / host or 0))
  end
end
