-- First come, first served: requests in the order they arrived.
local M = { name = "fcfs" }

function M.order(waiting)
  local out = {}
  for i, r in ipairs(waiting) do out[i] = r end
  table.sort(out, function(a, b) return a.id < b.id end)
  return out
end

return M
