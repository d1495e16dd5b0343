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

local write_random_llama2c = require "yaie.random_model"

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
  print(("| %-26s | %7.1fM | %13.1f | %12.1f | %6.2f |"):format(name, weight_bytes(cfg) / 4 / 1e6,
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
print("| model                      | params   | prefill tok/s | decode tok/s | GB/s   |")
print("|----------------------------|----------|---------------|--------------|--------|")
local root = C.root
bench("stories260K", root .. "/../shared/models/stories260K/stories260K.bin")
for _, s in ipairs(shapes) do
  local path = tmp .. "/" .. s.layers .. ".bin"
  write_random_llama2c(path, s)
  bench(s.name .. " (random)", path)
  os.remove(path)
end
os.execute("rm -rf " .. tmp)

-- The engine's batch-invariant matrix product against OpenBLAS's sgemm (the OpenMP build, on the
-- same threads) for the shapes a decode step and a prefill chunk of the 110M shape multiply.
ffi.cdef [[
void yaie_matmul(float *y, const float *x, const float *w, int m, int k, int n, int n_threads);
void cblas_sgemm(int order, int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                 const float *b, int ldb, float beta, float *c, int ldc);
void openblas_set_num_threads(int n);
]]
local ok, blas = pcall(ffi.load, "/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0")
if not ok then
  print("\n(OpenBLAS not found: apt-get install libopenblas-openmp-dev for the matmul comparison)")
  return
end
local n_threads = threads > 0 and threads or tonumber(io.popen("nproc"):read("*l"))
blas.openblas_set_num_threads(n_threads)
print("\n| matmul m x k x n        | yaie GFLOP/s | OpenBLAS sgemm GFLOP/s | yaie / OpenBLAS |")
print("|-------------------------|--------------|------------------------|-----------------|")
for _, s in ipairs { { 1, 768, 2304 }, { 1, 768, 32000 }, { 64, 768, 2304 }, { 256, 768, 4096 }, { 256, 2048, 768 } } do
  local m, k, n = s[1], s[2], s[3]
  local x, w, y = ffi.new("float[?]", m * k), ffi.new("float[?]", n * k), ffi.new("float[?]", m * n)
  for i = 0, m * k - 1 do x[i] = (i % 97) / 97 - 0.5 end
  for i = 0, n * k - 1 do w[i] = (i % 89) / 89 - 0.5 end
  local reps = math.max(3, math.floor(4e9 / (m * k * n)))
  local function time(fn)
    fn()
    local t = C.now()
    for _ = 1, reps do fn() end
    return (C.now() - t) / reps
  end
  local a = time(function() lib.yaie_matmul(y, x, w, m, k, n, n_threads) end)
  local b = time(function() blas.cblas_sgemm(101, 111, 112, m, n, k, 1, x, k, w, k, 0, y, n) end)
  local flops = 2 * m * k * n
  print(("| %4d x %4d x %5d      | %12.1f | %22.1f | %15.2f |"):format(m, k, n, flops / a / 1e9, flops / b / 1e9, b / a))
end
