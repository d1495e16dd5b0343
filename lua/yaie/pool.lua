-- yaie.pool: the KV page pool (engine/kv/page_pool.c) through the FFI.
--
--   local pool = yaie.pool.new { pages = 1024, page_size = 16 }
--   local pool = yaie.pool.new { bytes = 2^30, page_size = 16, layers = 32, kv_heads = 8,
--                                head_dim = 128, dtype = "bf16" }
--   local pool = yaie.pool.new { bytes = 2^30, config = model_config, dtype = "f32" }
--   local pages = pool:alloc(4)          -- { 0, 1, 2, 3 }, or nil and a message when exhausted
--   pool:free(pages)                     -- drops one reference from each
--
-- Page ids are plain Lua numbers; the page storage is the backend's, the pool only counts.
local C = require "yaie.c"
local ffi, lib, check = C.ffi, C.lib, C.check

local M = {}

local Pool = {}
Pool.__index = Pool

M.dtype_bytes = { f32 = 4, float32 = 4, bf16 = 2, f16 = 2, fp16 = 2 }

-- A converter from Lua lists to a reused int32 array that grows as needed: calls into C are
-- synchronous, so a busy scheduler need not allocate per call. Each user takes its own. With
-- list nil it only makes room for n.
function M.scratch_list()
  local buf, cap = nil, 0
  return function(list, n)
    if n > cap then
      cap = math.max(n, 2 * cap, 256)
      buf = ffi.new("int32_t[?]", cap)
    end
    if list then
      for i = 1, n do buf[i - 1] = list[i] end
    end
    return buf
  end
end
local int32_list = M.scratch_list()

local function geometry(opts)
  local cfg = opts.config or {}
  local layers = opts.layers or opts.n_layers or cfg.n_layers
  local heads = opts.kv_heads or opts.n_kv_heads or cfg.n_kv_heads
  local head_dim = opts.head_dim or cfg.head_dim
  if not (layers or heads or head_dim) then return 0, 0, 0, 0 end
  local dtype = opts.dtype or "f32"
  local size = M.dtype_bytes[dtype]
  if not size then
    error("pool: unknown dtype '" .. tostring(dtype) .. "' (f32, bf16 or f16)", 3)
  end
  return tonumber(layers) or 0, tonumber(heads) or 0, tonumber(head_dim) or 0, size
end

function M.new(opts)
  opts = opts or {}
  local p = ffi.new("yaie_pool_params")
  p.page_size = opts.page_size or 16
  p.n_pages = opts.pages or 0
  p.bytes = opts.bytes or 0
  p.n_layers, p.n_kv_heads, p.head_dim, p.dtype_bytes = geometry(opts)
  local out = ffi.new("yaie_pool*[1]")
  check(lib.yaie_pool_new(p, out))
  local self = setmetatable({ cptr = ffi.gc(out[0], lib.yaie_pool_free) }, Pool)
  self.page_size = p.page_size
  self.total = self:stats().total
  return self
end

-- A list of n fresh page ids, or nil and the message when fewer than n are free.
function Pool:alloc(n)
  n = n or 1
  local buf = int32_list(nil, n)
  local st = lib.yaie_pool_alloc(self.cptr, n, buf)
  if st == lib.YAIE_ERR_NOMEM then return nil, ffi.string(lib.yaie_last_error()) end
  check(st)
  local pages = {}
  for i = 1, n do pages[i] = buf[i - 1] end
  return pages
end

function Pool:free(pages)
  check(lib.yaie_pool_unref(self.cptr, int32_list(pages, #pages), #pages))
end

function Pool:ref(pages)
  check(lib.yaie_pool_ref(self.cptr, int32_list(pages, #pages), #pages))
end

function Pool:stats()
  local u = ffi.new("yaie_pool_usage")
  lib.yaie_pool_stats(self.cptr, u)
  return {
    total = u.total, free = u.free, used = u.used, evictable = u.evictable, cached = u.cached,
    page_size = u.page_size, page_bytes = tonumber(u.page_bytes),
    host_bytes = tonumber(u.host_bytes),
  }
end

function Pool:check()
  check(lib.yaie_pool_check(self.cptr))
  return true
end

function Pool:__tostring()
  local s = self:stats()
  return string.format("pool: %d pages of %d tokens, %d free, %d used (%d cached, %d evictable)",
    s.total, s.page_size, s.free, s.used, s.cached, s.evictable)
end

return M
