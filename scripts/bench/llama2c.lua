-- Writes a llama2.c checkpoint with small uniform random weights (norm weights 1) and a shared
-- classifier, for benchmarks where only the shape matters:
--   dofile(C.root .. "/scripts/bench/llama2c.lua")(path, { dim, hidden, layers, heads,
--                                                         kv_heads (default heads), vocab, ctx })
local ffi = require "ffi"

return function(path, s)
  local kv_heads = s.kv_heads or s.heads
  local f = assert(io.open(path, "wb"))
  f:write(ffi.string(ffi.new("int32_t[7]", { s.dim, s.hidden, s.layers, s.heads, kv_heads, s.vocab, s.ctx }), 28))
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
  local kv = kv_heads * head
  tensor(s.vocab * d)
  tensor(L * d, true)
  tensor(L * d * d) -- wq
  tensor(L * d * kv) -- wk
  tensor(L * d * kv) -- wv
  tensor(L * d * d) -- wo
  tensor(L * d, true)
  for _ = 1, 3 do tensor(L * d * h) end -- w1, w2, w3
  tensor(d, true)
  tensor(s.ctx * head) -- legacy RoPE tables
  f:close()
end
