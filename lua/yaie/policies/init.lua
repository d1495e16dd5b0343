-- Scheduling policies: a policy is a table with order(waiting, ctx) returning the waiting
-- requests in the order to admit them, and optionally chunk_size(ctx). resolve() takes a name
-- ("lpm"), a path to a Lua file returning such a table, or the table itself.
local M = {}

M.names = { "fcfs", "lpm", "dfs_weight", "lof", "random", "priority" }

function M.resolve(p)
  if type(p) == "table" then
    if type(p.order) ~= "function" then error("a policy needs an order(waiting, ctx) function", 3) end
    return p
  end
  if type(p) ~= "string" then error("set_policy: give a policy name, a file or a table", 3) end
  if p:match("%.lua$") then
    local chunk, err = loadfile(p)
    if not chunk then error("set_policy: " .. err, 3) end
    return M.resolve(chunk())
  end
  local ok, mod = pcall(require, "yaie.policies." .. p)
  if not ok or type(mod) ~= "table" or type(mod.order) ~= "function" then
    error("set_policy: unknown policy '" .. p .. "' (one of " .. table.concat(M.names, ", ") .. ", or a .lua file)", 3)
  end
  return mod
end

return M
