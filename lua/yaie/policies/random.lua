-- A random order (Fisher-Yates with the engine's seeded generator): the baseline that every
-- cache-aware policy should beat.
local M = { name = "random" }

function M.order(waiting, ctx)
  local out = {}
  for i, r in ipairs(waiting) do out[i] = r end
  for i = #out, 2, -1 do
    local j = ctx.random(i)
    out[i], out[j] = out[j], out[i]
  end
  return out
end

return M
