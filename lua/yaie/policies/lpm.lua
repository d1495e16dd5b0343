-- Longest prefix match: requests with the most tokens already cached first, so they run while
-- their prefix is still in the cache. `aging` adds that many tokens of priority per step waited,
-- so requests that miss the cache are not starved. lpm.with{ aging = 8 } makes a variant.
local function make(aging)
  local M = { name = "lpm", aging = aging }

  function M.order(waiting, ctx)
    local score = {}
    for _, r in ipairs(waiting) do
      score[r] = ctx.prefix_len(r) + M.aging * (ctx.step - (r.enqueued_step or ctx.step))
    end
    local out = {}
    for i, r in ipairs(waiting) do out[i] = r end
    table.sort(out, function(a, b)
      if score[a] ~= score[b] then return score[a] > score[b] end
      return a.id < b.id
    end)
    return out
  end

  function M.with(opts) return make(opts.aging or aging) end

  return M
end

return make(4)
