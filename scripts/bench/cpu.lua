-- CPU benchmark: single-stream decode and prefill tokens/s for stories260K and for random-weight
-- models of the stories15M and stories110M shapes (written here as llama2.c checkpoints into a
-- temporary directory; nothing is kept), with the GB/s of weights each decode step streams.
-- Usage: yaie run scripts/bench/cpu.lua [--threads N] [--steps N]
local yaie = require "yaie"
local C = require "yaie.c"
local ffi, lib = C.ffi, C.lib

local threads, steps = 0, 128
for i = 1, #arg do
  if arg[i] == "--threads" then threads = tonumber(arg[i + 1]) end
  if arg[i] == "--steps" then steps = tonumber(arg[i + 1]) end
end

-- Writes a llama2.c checkpoint with small uniform random weights (norm weights 1) and a shared
-- classifier: the shape is all that matters for speed.
local function write_random_llama2c(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(ffi.string(ffi.new("int32_t[7]", { s.dim, s.hidden, s.layers, s.heads, s.heads, s.vocab, s.ctx }), 28))
  local state = 12345
  local function tensor(n, ones)
    local buf = ffi.new("float[?]", n)
    for i = 0, n - 1 do
      if ones then
        buf[i] = 1
      else
        state = (state * 1103515245 + 12345) % 2147483648
        buf[i] = (state / 2147483648 - 0.5) * 0.04
      end
    end
    f:write(ffi.string(buf, n * 4))
  end
  local d, h, L, head = s.dim, s.hidden, s.layers, s.dim / s.heads
  tensor(s.vocab * d)
  tensor(L * d, true)
  for _ = 1, 4 do tensor(L * d * d) end -- wq, wk, wv, wo
  tensor(L * d, true)
  for _ = 1, 3 do tensor(L * d * h) end -- w1, w2, w3
  tensor(d, true)
  tensor(s.ctx * head) -- legacy RoPE tables
  f:close()
end

local function weight_bytes(cfg)
  local d, h, L = cfg.dim, cfg.hidden_dim, cfg.n_layers
  local q, kv = cfg.n_heads * cfg.head_dim, cfg.n_kv_heads * cfg.head_dim
  local per_layer = d * (q + 2 * kv) + q * d + 3 * d * h + 2 * d
  -- Decode reads every layer's matrices and the classifier; the embedding row is negligible.
  return 4 * (L * per_layer + cfg.vocab_size * d + d)
end

local function bench(name, path)
  local m = yaie.load { model = path, tokenizer = false, threads = threads }
  local cfg = m.config
  local n_prefill = math.min(256, cfg.max_seq_len - steps - 1)
  local total = n_prefill + steps
  local ctx, params = m:context(total, 16, n_prefill)
  local pages = ffi.new("int32_t[?]", params.n_pages)
  for i = 0, params.n_pages - 1 do pages[i] = i end
  local toks = ffi.new("int32_t[?]", total)
  for i = 0, total - 1 do toks[i] = (i * 7 + 3) % cfg.vocab_size end
  local seq = ffi.new("yaie_seq[1]")
  seq[0].pages, seq[0].n_pages = pages, params.n_pages
  local batch = ffi.new("yaie_batch", { seqs = seq, n_seqs = 1 })
  local function forward(pos, n)
    seq[0].tokens, seq[0].n_tokens, seq[0].pos = toks + pos, n, pos
    C.check(lib.yaie_forward(ctx, batch))
  end
  forward(0, n_prefill) -- warm-up: page in the weights, start the threads
  local t0 = C.now()
  forward(0, n_prefill)
  local prefill_s = C.now() - t0
  t0 = C.now()
  for pos = n_prefill, total - 1 do forward(pos, 1) end
  local decode_s = C.now() - t0
  local decode_tps = steps / decode_s
  print(("| %-22s | %7.1fM | %9.1f | %8.1f | %7.2f |"):format(name, weight_bytes(cfg) / 4 / 1e6,
    n_prefill / prefill_s, decode_tps, decode_tps * weight_bytes(cfg) / 1e9))
end

local tmp = os.tmpname()
os.remove(tmp)
os.execute("mkdir -p " .. tmp)
local shapes = {
  { name = "stories15M shape", dim = 288, hidden = 768, layers = 6, heads = 6, vocab = 32000, ctx = 256 },
  { name = "stories110M shape", dim = 768, hidden = 2048, layers = 12, heads = 12, vocab = 32000, ctx = 1024 },
}
print(("threads: %s, decode steps: %d, prefill: up to 256 tokens in one step"):format(
  threads == 0 and "all cores" or threads, steps))
print("| model                  | params   | prefill tok/s | decode tok/s | GB/s |")
print("|------------------------|----------|---------------|--------------|------|")
local root = C.root
bench("stories260K", root .. "/../shared/models/stories260K/stories260K.bin")
for _, s in ipairs(shapes) do
  local path = tmp .. "/" .. s.layers .. ".bin"
  write_random_llama2c(path, s)
  bench(s.name .. " (random)", path)
  os.remove(path)
end
os.execute("rm -rf " .. tmp)
