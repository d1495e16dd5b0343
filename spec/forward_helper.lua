-- For the forward-pass specs (CPU and GPU): a model and KV contexts through the FFI, one
-- sequence run in prefill chunks, and the relative difference of two rows of logits.
local C = require "yaie.c"
local ffi, lib = C.ffi, C.lib

local F = {}

function F.load_model(path)
  local out = ffi.new("yaie_model*[1]")
  C.check(lib.yaie_model_load(path, out))
  return ffi.gc(out[0], lib.yaie_model_free)
end

-- device: 0 the CPU (default), 1 CUDA.
function F.new_context(model, n_pages, page_size, max_batch, device)
  local out = ffi.new("yaie_context*[1]")
  local p = ffi.new("yaie_context_params", { n_pages = n_pages, page_size = page_size,
    max_batch_tokens = max_batch, n_threads = 0, device = device or 0 })
  C.check(lib.yaie_context_new(model, p, out))
  return ffi.gc(out[0], lib.yaie_context_free)
end

-- Runs toks through one sequence in chunks of `chunk`; returns the last row of logits (a list).
function F.run_sequence(ctx, pages_list, toks, chunk, vocab)
  local pages = C.int32_array(pages_list)
  local arr = C.int32_array(toks)
  local seq = ffi.new("yaie_seq[1]")
  seq[0].pages, seq[0].n_pages = pages, #pages_list
  local batch = ffi.new("yaie_batch", { seqs = seq, n_seqs = 1 })
  local n = ffi.new("int[1]")
  local logits
  for pos = 0, #toks - 1, chunk do
    seq[0].tokens, seq[0].n_tokens, seq[0].pos = arr + pos, math.min(chunk, #toks - pos), pos
    C.check(lib.yaie_forward(ctx, batch))
    logits = lib.yaie_context_logits(ctx, n)
  end
  local out = {}
  for i = 0, vocab - 1 do out[i + 1] = logits[i] end
  return out
end

-- max |a - b| / max |a|
function F.max_rel_diff(a, b)
  local worst, scale = 0, 0
  for i = 1, #a do scale = math.max(scale, math.abs(a[i])) end
  for i = 1, #a do worst = math.max(worst, math.abs(a[i] - b[i]) / scale) end
  return worst
end

-- n page ids first, first + step, ...
function F.seq_pages(n, first, step)
  local t = {}
  for i = 1, n do t[i] = first + (i - 1) * step end
  return t
end

return F
