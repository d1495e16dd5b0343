-- Writes a llama2.c checkpoint with random weights, for benchmarks and specs where a model's
-- shape (and a deterministic, non-trivial output) is all that matters. Nothing is kept: the
-- caller writes it to a temporary path.
--
--   require("yaie.random_model")(path, { dim, hidden, layers, heads, kv_heads = heads, vocab, ctx,
--     seed = 12345, scale = 0.04, separate_classifier = false })
--
-- Weights are uniform in [-scale/2, scale/2] (scale = 1 for embeddings when scale >= 0.1), norm
-- weights 1 +- scale/2 so that they are not all equal.
local ffi = require "ffi"

return function(path, s)
  local kv_heads = s.kv_heads or s.heads
  local scale = s.scale or 0.04
  local vocab_field = s.separate_classifier and -s.vocab or s.vocab
  local f = assert(io.open(path, "wb"))
  f:write(ffi.string(ffi.new("int32_t[7]", { s.dim, s.hidden, s.layers, s.heads, kv_heads, vocab_field, s.ctx }), 28))
  local state = s.seed or 12345
  local function tensor(n, base, spread)
    local buf = ffi.new("float[?]", n)
    for i = 0, n - 1 do
      state = (state * 1103515245 + 12345) % 2147483648
      buf[i] = base + (state / 2147483648 - 0.5) * spread
    end
    f:write(ffi.string(buf, n * 4))
  end
  local d, h, L, head = s.dim, s.hidden, s.layers, s.dim / s.heads
  local kv = kv_heads * head
  local norm_spread = scale >= 0.1 and scale / 2 or 0
  tensor(s.vocab * d, 0, scale >= 0.1 and 5 * scale or scale)
  tensor(L * d, 1, norm_spread)
  tensor(L * d * d, 0, scale) -- wq
  tensor(L * d * kv, 0, scale) -- wk
  tensor(L * d * kv, 0, scale) -- wv
  tensor(L * d * d, 0, scale) -- wo
  tensor(L * d, 1, norm_spread)
  for _ = 1, 3 do tensor(L * d * h, 0, 0.75 * scale) end -- w1, w2, w3
  tensor(d, 1, norm_spread)
  tensor(s.ctx * head, 0, 0) -- legacy RoPE tables, skipped by the loader
  if s.separate_classifier then tensor(s.vocab * d, 0, 1.25 * scale) end
  f:close()
end
