-- Longest output first: requests that may generate the most tokens start first, so long tails
-- overlap with short requests instead of running alone at the end.
local M = { name = "lof" }

function M.order(waiting)
  local out = {}
  for i, r in ipairs(waiting) do out[i] = r end
  table.sort(out, function(a, b)
    local ra, rb = a.max_new - #a.tokens, b.max_new - #b.tokens
    if ra ~= rb then return ra > rb end
    return a.id < b.id
  end)
  return out
end

return M
