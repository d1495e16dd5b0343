-- yaie: the Lua library. `local yaie = require "yaie"`.
local yaie = {}

local lazy = {
  load = function() return require("yaie.model").load end,
  tokenizer = function() return require("yaie.tokenizer").load end,
  pool = function() return require "yaie.pool" end,
  radix = function() return require "yaie.radix" end,
  engine = function() return require("yaie.engine").new end,
  policies = function() return require "yaie.policies" end,
  program = function() return require("yaie.lang").program end,
}

-- Submodules load on first use, so `require "yaie"` stays cheap and a missing piece only
-- fails the feature that needs it.
return setmetatable(yaie, {
  __index = function(t, k)
    local get = lazy[k]
    if not get then return nil end
    local v = get()
    rawset(t, k, v)
    return v
  end,
})
