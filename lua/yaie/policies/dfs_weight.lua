-- SGLang's DFS-weight order: requests grouped by where their cached prefix ends, the groups
-- visited depth first with the heaviest subtree (most waiting requests) first, children before
-- the node's own requests, so requests sharing a prefix run together and the cache is reused
-- before requests that miss it (the root's) evict it. Equal weights keep first-seen order.
--
-- The tree walked here is the tree of the waiting requests' cached prefixes, page by page (the
-- part of the radix tree they reach), built fresh each step without touching the cache.
local M = { name = "dfs_weight" }

local function new_node(rank)
  return { children = {}, order = {}, requests = {}, weight = 0, rank = rank }
end

function M.order(waiting, ctx)
  local ps = ctx.page_size
  local root, nodes = new_node(0), 0
  for _, r in ipairs(waiting) do
    local n = ctx.prefix_len(r)
    local node = root
    node.weight = node.weight + 1
    for p = 0, n / ps - 1 do
      local key = table.concat(r.all, ",", p * ps + 1, (p + 1) * ps)
      local child = node.children[key]
      if not child then
        nodes = nodes + 1
        child = new_node(nodes)
        node.children[key] = child
        node.order[#node.order + 1] = child
      end
      node = child
      node.weight = node.weight + 1
    end
    node.requests[#node.requests + 1] = r
  end
  local out = {}
  local function visit(node)
    table.sort(node.order, function(a, b)
      if a.weight ~= b.weight then return a.weight > b.weight end
      return a.rank < b.rank
    end)
    for _, child in ipairs(node.order) do visit(child) end
    for _, r in ipairs(node.requests) do out[#out + 1] = r end
  end
  visit(root)
  return out
end

return M
