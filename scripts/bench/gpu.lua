-- GPU benchmark of the CUDA backend on random-weight models of the Llama-3.2-1B and Llama-3-8B
-- shapes (built in memory by yaie_model_random; nothing is read from disk): decode tok/s at
-- several batch sizes (prompt 512, 128 new tokens, greedy sampling on the GPU) and prefill tok/s
-- of one 512- and one 4096-token prompt, each next to its roofline: bytes over the measured
-- device copy bandwidth, FLOPs over the measured cuBLAS bf16 rate, whichever is longer.
-- With --decode-steps N[,M..], decode also runs as rounds of N steps (yaie_round_begin/wait: the
-- GPU samples and feeds each step's tokens to the next, one copy back per round).
--   yaie run scripts/bench/gpu.lua [--models 1b,8b] [--batches 1,8,32,64,128,256] [--new 128]
--                                  [--decode-steps 1,8] [--shared 2048 --shared-batches 64,256]
-- --shared L adds decode rows where the batch's sequences share an L-token prompt (plus 16 tokens
-- of their own), with cascade attention off and on (the prompt's K/V read once a step).
-- Prints a Markdown table (and writes it to $OUT/gpu_bench.md when OUT is set).
local C = require "yaie.c"
local gen = require "yaie.generate"
local ffi, lib = C.ffi, C.lib

local opts = { models = "1b,8b", batches = "1,8,32,64,128,256", new = "128", prompt = "512", ["decode-steps"] = "1",
  shared = "0", ["shared-batches"] = "64,256" }
for i = 1, #arg - 1 do
  local k = arg[i]:match("^%-%-(.+)$")
  if k then opts[k] = arg[i + 1] end
end
local function list(s)
  local t = {}
  for v in s:gmatch("[^,]+") do t[#t + 1] = tonumber(v) or v end
  return t
end

ffi.cdef [[ int yaie_cuda_peaks(double *copy_gbs, double *gemm_tflops, char *name, int name_cap); ]]
C.check(lib.yaie_device_check(1))
local cuda = ffi.load((C.lib_path:gsub("libyaie%.so$", "libyaie_cuda.so")))

local shapes = {
  ["1b"] = { name = "Llama-3.2-1B", arch = "llama", dim = 2048, hidden_dim = 8192, n_layers = 16, n_heads = 32,
    n_kv_heads = 8, head_dim = 64, vocab_size = 128256, max_seq_len = 131072, tied_embeddings = 1,
    rope_scaling_factor = 32, rope_low_freq_factor = 1, rope_high_freq_factor = 4, rope_original_max_pos = 8192 },
  ["8b"] = { name = "Llama-3-8B", arch = "llama", dim = 4096, hidden_dim = 14336, n_layers = 32, n_heads = 32,
    n_kv_heads = 8, head_dim = 128, vocab_size = 128256, max_seq_len = 8192, tied_embeddings = 0 },
}

local function random_model(s)
  local c = ffi.new("yaie_config")
  for k, v in pairs(s) do
    if k == "arch" then ffi.copy(c.arch, v) elseif k ~= "name" then c[k] = v end
  end
  c.norm_eps, c.rope_theta, c.rope_layout = 1e-5, 500000, 1
  local out = ffi.new("yaie_model*[1]")
  C.check(lib.yaie_model_random(c, 42, out))
  return ffi.gc(out[0], lib.yaie_model_free)
end

-- Bytes of the bf16 matrices a decode step streams (the classifier included, the embedding
-- table only when it is the classifier) and the KV bytes per token.
local function sizes(s)
  local q, kv = s.n_heads * s.head_dim, s.n_kv_heads * s.head_dim
  local per_layer = s.dim * (q + 2 * kv) + q * s.dim + 3 * s.dim * s.hidden_dim
  local params = s.n_layers * per_layer + s.vocab_size * s.dim
  return { params = params, weight_bytes = 2 * params, kv_token = s.n_layers * 2 * kv * 2, q_dim = q }
end

local peaks = { bw = ffi.new("double[1]"), fl = ffi.new("double[1]"), name = ffi.new("char[128]") }
assert(cuda.yaie_cuda_peaks(peaks.bw, peaks.fl, peaks.name, 128) == 0, "measuring the GPU's peaks failed")
local BW, FLOPS = peaks.bw[0] * 1e9, peaks.fl[0] * 1e12
local gpu_name = ffi.string(peaks.name)

local rows = {}
local function row(model, phase, size, tps, roof_tps, bound, note)
  rows[#rows + 1] = ("| %s | %s | %s | %.0f | %.0f | %s | %.0f%%%s |"):format(model, phase, size, tps, roof_tps, bound,
    100 * tps / roof_tps, note or "")
  print(rows[#rows])
  io.stdout:flush()
end

local function bench(key)
  local s = shapes[key]
  local z = sizes(s)
  local t_load = C.now()
  local model = random_model(s)
  local batches, new, prompt = list(opts.batches), tonumber(opts.new), tonumber(opts.prompt)
  local max_b = 0
  for _, b in ipairs(batches) do max_b = math.max(max_b, b) end
  local n_samplers = max_b
  for _, b in ipairs(tonumber(opts.shared) > 0 and list(opts["shared-batches"]) or {}) do
    n_samplers = math.max(n_samplers, b)
  end
  local per_seq = math.ceil((prompt + new) / 16)
  local ctx_out = ffi.new("yaie_context*[1]")
  C.check(lib.yaie_context_new(model, ffi.new("yaie_context_params", { n_pages = max_b * per_seq + 260,
    page_size = 16, max_batch_tokens = 4096, device = 1 }), ctx_out))
  local ctx = ffi.gc(ctx_out[0], lib.yaie_context_free)
  io.stderr:write(("%s: model built and uploaded in %.1f s\n"):format(s.name, C.now() - t_load))

  -- Sequences 1..max_b, each with its own pages and a prompt of pseudo-random ids.
  local seqs = ffi.new("yaie_seq[?]", max_b)
  local pages, toks, cur = {}, {}, ffi.new("int32_t[?]", max_b)
  local samplers = ffi.new("yaie_sampler*[?]", n_samplers)
  local keep = {}
  for i = max_b, n_samplers - 1 do
    keep[i] = gen.sampler({ temperature = 0 }, s.vocab_size)
    samplers[i] = keep[i]
  end
  for i = 0, max_b - 1 do
    pages[i] = ffi.new("int32_t[?]", per_seq)
    for p = 0, per_seq - 1 do pages[i][p] = i * per_seq + p end
    toks[i] = ffi.new("int32_t[?]", prompt)
    for t = 0, prompt - 1 do toks[i][t] = (i * 7919 + t * 104729) % s.vocab_size end
    keep[i] = gen.sampler({ temperature = 0 }, s.vocab_size)
    samplers[i] = keep[i]
  end
  local out = ffi.new("int32_t[?]", max_b)
  local function step(first, n, sample)
    C.check(lib.yaie_forward(ctx, ffi.new("yaie_batch", { seqs = seqs + first, n_seqs = n })))
    if sample then
      C.check(lib.yaie_sample_step(ctx, ffi.new("yaie_batch", { seqs = seqs + first, n_seqs = n }), samplers + first,
        nil, out + first, nil))
    end
  end

  -- Prefill every prompt, 4096 tokens a step (8 prompts of 512).
  local per_step = math.max(1, math.floor(4096 / prompt))
  for i = 0, max_b - 1 do
    seqs[i] = { tokens = toks[i], n_tokens = prompt, pos = 0, pages = pages[i], n_pages = per_seq, all_logits = 0 }
  end
  local t0 = C.now()
  for first = 0, max_b - 1, per_step do step(first, math.min(per_step, max_b - first), true) end
  io.stderr:write(("%s: prefilled %d x %d tokens in %.1f s\n"):format(s.name, max_b, prompt, C.now() - t0))

  -- Decode: every sequence one token a step from position `prompt`; the first two steps of each
  -- batch size warm up (the second captures its graph). In rounds of n steps, the first round
  -- warms up, and each round's last tokens feed the next.
  local limits = ffi.new("int32_t[?]", max_b)
  local round_tokens = ffi.new("int32_t[?]", max_b * 256)
  local function decode(b, n_steps)
    local warm = n_steps == 1 and 2 or n_steps
    local t_start
    local k = 0
    while k < new do
      if k == warm then t_start = C.now() end
      local n = math.min(n_steps, new - k)
      for i = 0, b - 1 do
        seqs[i] = { tokens = cur + i, n_tokens = 1, pos = prompt + k, pages = pages[i], n_pages = per_seq, all_logits = 0 }
        limits[i] = n
      end
      if n_steps == 1 then
        step(0, b, true)
        for i = 0, b - 1 do cur[i] = out[i] end
      else
        C.check(lib.yaie_round_begin(ctx, ffi.new("yaie_batch", { seqs = seqs, n_seqs = b }), n, samplers, limits, nil,
          nil, 0))
        C.check(lib.yaie_round_wait(ctx, round_tokens, nil))
        for i = 0, b - 1 do cur[i] = round_tokens[(n - 1) * b + i] end
      end
      k = k + n
    end
    return (new - warm) / (C.now() - t_start)
  end
  for _, n_steps in ipairs(list(opts["decode-steps"])) do
    for _, b in ipairs(batches) do
      local tps = b * decode(b, n_steps)
      local avg_ctx = prompt + new / 2
      local bytes = z.weight_bytes + b * (avg_ctx + 1) * z.kv_token
      local flops = 2 * b * z.params + 4 * b * avg_ctx * z.q_dim * s.n_layers
      local t_roof = math.max(bytes / BW, flops / FLOPS)
      row(s.name, n_steps == 1 and "decode" or ("decode, rounds of " .. n_steps), "batch " .. b, tps, b / t_roof,
        bytes / BW >= flops / FLOPS and "memory" or "compute")
    end
  end

  -- Sequences sharing a long prompt: the prompt prefilled once into pages every table starts with,
  -- 16 tokens of each sequence's own, then decode with and without cascade groups.
  local shared = tonumber(opts.shared)
  for _, b in ipairs(shared > 0 and list(opts["shared-batches"]) or {}) do
    local sp_pages, own_pages = math.ceil(shared / 16), math.ceil((16 + new) / 16) + 1
    local sctx_out = ffi.new("yaie_context*[1]")
    C.check(lib.yaie_context_new(model, ffi.new("yaie_context_params", { n_pages = sp_pages + b * own_pages,
      page_size = 16, max_batch_tokens = 4096, device = 1 }), sctx_out))
    local sctx = ffi.gc(sctx_out[0], lib.yaie_context_free)
    local tables, sseqs, scur, sout = {}, ffi.new("yaie_seq[?]", b), ffi.new("int32_t[?]", b), ffi.new("int32_t[?]", b)
    local ptoks = ffi.new("int32_t[?]", shared)
    for t = 0, shared - 1 do ptoks[t] = (t * 104729 + 7) % s.vocab_size end
    for i = 0, b - 1 do
      tables[i] = ffi.new("int32_t[?]", sp_pages + own_pages)
      for p = 0, sp_pages - 1 do tables[i][p] = p end
      for p = 0, own_pages - 1 do tables[i][sp_pages + p] = sp_pages + i * own_pages + p end
    end
    local function run(seq_list, n, groups)
      local batch = ffi.new("yaie_batch", { seqs = seq_list, n_seqs = n })
      if groups then batch.groups, batch.n_groups = groups, 1 end
      C.check(lib.yaie_forward(sctx, batch))
      C.check(lib.yaie_sample_step(sctx, batch, samplers, nil, sout, nil))
    end
    sseqs[0] = { tokens = ptoks, n_tokens = shared, pos = 0, pages = tables[0], n_pages = sp_pages, all_logits = 0 }
    run(sseqs, 1)
    local own = ffi.new("int32_t[?]", b * 16)
    for i = 0, b - 1 do
      for t = 0, 15 do own[i * 16 + t] = (i * 7919 + t * 31 + 3) % s.vocab_size end
      sseqs[i] = { tokens = own + i * 16, n_tokens = 16, pos = shared, pages = tables[i],
        n_pages = sp_pages + own_pages, all_logits = 0 }
    end
    for first = 0, b - 1, 256 do run(sseqs + first, math.min(256, b - first)) end
    local members = ffi.new("int32_t[?]", b)
    for i = 0, b - 1 do members[i] = i end
    local group = ffi.new("yaie_group[1]", { { start = 0, ["end"] = shared, rows = members, n_rows = b } })
    for _, cascade in ipairs { false, true } do
      for i = 0, b - 1 do scur[i] = (i * 13 + 1) % s.vocab_size end
      local t_start
      for k = 0, new - 1 do
        if k == 2 then t_start = C.now() end
        for i = 0, b - 1 do
          sseqs[i] = { tokens = scur + i, n_tokens = 1, pos = shared + 16 + k, pages = tables[i],
            n_pages = sp_pages + own_pages, all_logits = 0 }
        end
        run(sseqs, b, cascade and group or nil)
        for i = 0, b - 1 do scur[i] = sout[i] end
      end
      local tps = b * (new - 2) / (C.now() - t_start)
      local bytes = z.weight_bytes + (shared + b * (16 + new / 2)) * z.kv_token
      local t_roof = bytes / BW
      row(s.name, cascade and "decode, shared prompt, cascade" or "decode, shared prompt", ("batch %d, %d shared"):format(
        b, shared), tps, b / t_roof, "memory", " (roofline: the prompt's K/V read once)")
    end
    sctx = nil
    collectgarbage()
  end

  -- Prefill of one prompt in one step.
  for _, n in ipairs { 512, 4096 } do
    local long = ffi.new("int32_t[?]", n)
    for t = 0, n - 1 do long[t] = (t * 104729 + 17) % s.vocab_size end
    local lp = ffi.new("int32_t[?]", math.ceil(n / 16))
    for p = 0, math.ceil(n / 16) - 1 do lp[p] = max_b * per_seq + p end
    seqs[0] = { tokens = long, n_tokens = n, pos = 0, pages = lp, n_pages = math.ceil(n / 16), all_logits = 0 }
    local times = {}
    for r = 1, 4 do
      local t = C.now()
      step(0, 1, true)
      if r > 1 then times[#times + 1] = C.now() - t end
    end
    table.sort(times)
    local dt = times[2]
    local flops = 2 * n * (z.params - s.vocab_size * s.dim) + 2 * s.vocab_size * s.dim + 2 * n * n * z.q_dim * s.n_layers
    local bytes = z.weight_bytes + n * z.kv_token
    local t_roof = math.max(bytes / BW, flops / FLOPS)
    row(s.name, "prefill", n .. " tokens", n / dt, n / t_roof, bytes / BW >= flops / FLOPS and "memory" or "compute",
      (" (%.0f TFLOP/s)"):format(flops / dt / 1e12))
  end
  keep = nil
end

local header = { ("GPU: %s; device copy %.0f GB/s (read + write); cuBLAS bf16 GEMM %.0f TFLOP/s; %s"):format(gpu_name,
  BW / 1e9, FLOPS / 1e12, os.date("!%Y-%m-%d")), "",
  "| model | phase | size | tok/s | roofline tok/s | bound | fraction |", "| --- | --- | --- | --- | --- | --- | --- |" }
print(table.concat(header, "\n"))
for _, key in ipairs(list(opts.models)) do
  bench(key)
  collectgarbage()
end
local out_dir = os.getenv("OUT")
if out_dir then
  local f = io.open(out_dir .. "/gpu_bench.md", "w")
  f:write(table.concat(header, "\n"), "\n", table.concat(rows, "\n"), "\n")
  f:close()
end
