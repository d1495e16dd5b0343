-- Priority: the request option `priority` (higher first, default 0), then arrival order.
local M = { name = "priority" }

function M.order(waiting)
  local out = {}
  for i, r in ipairs(waiting) do out[i] = r end
  table.sort(out, function(a, b)
    local pa, pb = a.opts.priority or 0, b.opts.priority or 0
    if pa ~= pb then return pa > pb end
    return a.id < b.id
  end)
  return out
end

return M
