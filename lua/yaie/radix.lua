-- yaie.radix: the radix-tree prefix cache (engine/kv/radix_*.c) through the FFI.
--
--   local tree = yaie.radix.new { pool = pool, namespace = "llama-3-8b" }  -- namespace optional
--   local n, pages, node = tree:match(ids)    -- cached prefix length, its pages, its last node
--   tree:lock(node)                           -- keep it (and its ancestors) while in use
--   local already = tree:insert(ids, pages)   -- the tree takes the pages it did not have
--   tree:unlock(node)
--   tree:evict(8)                             -- frees at least 8 pages, LRU first
--
-- A node handle (cdata) stays usable while its node is cached; lock it to keep it. A handle
-- to an evicted node is refused with an error, never followed. One C tree serves one pool;
-- tree:namespace(name) gives a view of the same tree under another namespace, so caches of
-- different models or adapters stay apart and still share one LRU order.
local C = require "yaie.c"
local pool_mod = require "yaie.pool"
local ffi, lib, check = C.ffi, C.lib, C.check

local M = {}

local Tree = {}
Tree.__index = Tree

local token_list, page_list = pool_mod.scratch_list(), pool_mod.scratch_list()
local handle_t = ffi.typeof("yaie_radix_handle")
local int_out = ffi.new("int[1]")
local pages_out, pages_cap = nil, 0

local function page_buffer(n)
  if n > pages_cap then
    pages_cap = math.max(n, 2 * pages_cap, 256)
    pages_out = ffi.new("int32_t[?]", pages_cap)
  end
  return pages_out
end

-- LuaJIT's table.new sizes a list at once: growing a 1,100-page list costs more than the match.
local ok_new, table_new = pcall(require, "table.new")
if not ok_new then table_new = function() return {} end end

local function list_of(arr, n)
  local out = table_new(n, 0)
  for i = 1, n do out[i] = arr[i - 1] end
  return out
end

-- The namespace id of a name: nil is the default namespace; anything else goes by its
-- tostring. The names are remembered so that dumps can print them.
local function namespace_id(shared, name)
  if name == nil then return 0ULL end
  local s = tostring(name)
  local id = lib.yaie_radix_namespace(s, #s)
  shared.names[tostring(id)] = s
  return id
end

local function view(shared, name)
  return setmetatable({
    cptr = shared.cptr, pool = shared.pool, page_size = shared.page_size, shared = shared,
    namespace_name = name, ns = namespace_id(shared, name),
  }, Tree)
end

function M.new(opts)
  opts = opts or {}
  local pool = opts.pool
  if type(pool) ~= "table" or not pool.cptr then error("radix.new: give pool = a yaie.pool", 2) end
  local out = ffi.new("yaie_radix*[1]")
  check(lib.yaie_radix_new(pool.cptr, out))
  local shared = {
    cptr = ffi.gc(out[0], lib.yaie_radix_free), pool = pool,
    page_size = lib.yaie_radix_page_size(out[0]), names = {},
  }
  return view(shared, opts.namespace)
end

-- The same tree seen under another namespace.
function Tree:namespace(name) return view(self.shared, name) end

local function ns_of(self, name)
  if name == nil then return self.ns end
  return namespace_id(self.shared, name)
end

-- Returns the cached length (whole pages), the list of its page ids and the node ending there.
function Tree:match(ids, namespace)
  local n = #ids
  local cap = math.floor(n / self.page_size)
  local pages, node = page_buffer(cap), handle_t()
  check(lib.yaie_radix_match(self.cptr, ns_of(self, namespace), token_list(ids, n), n, pages, cap,
    int_out, node))
  local m = int_out[0]
  return m, list_of(pages, m / self.page_size), node
end

-- How much of ids match would find, changing nothing (no split, no recency, no statistics).
function Tree:peek(ids, namespace)
  local n = #ids
  check(lib.yaie_radix_peek(self.cptr, ns_of(self, namespace), token_list(ids, n), n, int_out))
  return int_out[0]
end

-- Caches ids with their pages; returns how many tokens were cached already and the node ending
-- at the inserted prefix. The tree takes the caller's reference to each new page and drops the
-- caller's duplicates of pages it had; a partial last page stays the caller's.
function Tree:insert(ids, pages, namespace)
  local n, np = #ids, #pages
  local node = handle_t()
  check(lib.yaie_radix_insert(self.cptr, ns_of(self, namespace), token_list(ids, n), n,
    page_list(pages, np), np, int_out, node))
  return int_out[0], node
end

function Tree:lock(node)
  if node == nil then error("lock: no node given", 2) end
  check(lib.yaie_radix_lock(self.cptr, node))
end

function Tree:unlock(node)
  if node == nil then error("unlock: no node given", 2) end
  check(lib.yaie_radix_unlock(self.cptr, node))
end

-- Frees at least n pages when there is that much to evict; returns how many it freed.
function Tree:evict(n)
  check(lib.yaie_radix_evict(self.cptr, n, int_out))
  return int_out[0]
end

function Tree:stats()
  local u = ffi.new("yaie_radix_usage")
  lib.yaie_radix_stats(self.cptr, u)
  return {
    nodes = tonumber(u.nodes), namespaces = tonumber(u.namespaces),
    cached_tokens = tonumber(u.cached_tokens), evictable_tokens = tonumber(u.evictable_tokens),
    protected_tokens = tonumber(u.protected_tokens), hit_tokens = tonumber(u.hit_tokens),
    miss_tokens = tonumber(u.miss_tokens), bytes = tonumber(u.bytes),
  }
end

function Tree:check()
  check(lib.yaie_radix_check(self.cptr))
  return true
end

-- ---------------------------------------------------------------------------------------------
-- Walking: a node's description, its children and the namespace roots, for dumps and specs.

function Tree:info(node)
  local info = ffi.new("yaie_radix_node_info")
  check(lib.yaie_radix_node_info_get(self.cptr, node, info))
  return {
    tokens = list_of(info.tokens, info.n_tokens), pages = list_of(info.pages, info.n_pages),
    depth = info.depth, children = info.n_children, lock_ref = info.lock_ref,
    own_locks = info.own_locks, last_access = tonumber(info.last_access),
    namespace = self.shared.names[tostring(info.ns)] or (info.ns == 0 and "default")
      or tostring(info.ns),
    is_root = info.parent.node == nil,
  }
end

-- Calls a C lister twice: once for the count, once to fill an array of that size.
local function handles(list)
  check(list(nil, 0, int_out))
  local n = int_out[0]
  local arr = ffi.new("yaie_radix_handle[?]", math.max(n, 1))
  check(list(arr, n, int_out))
  local out = {}
  for i = 1, n do out[i] = handle_t(arr[i - 1]) end
  return out
end

-- Children in the order of their first token, so that dumps are stable.
function Tree:children(node)
  local kids = handles(function(arr, cap, n)
    return lib.yaie_radix_children(self.cptr, node, arr, cap, n)
  end)
  local first = {}
  for _, k in ipairs(kids) do first[k] = self:info(k).tokens end
  table.sort(kids, function(a, b)
    local x, y = first[a], first[b]
    for i = 1, math.min(#x, #y) do
      if x[i] ~= y[i] then return x[i] < y[i] end
    end
    return #x < #y
  end)
  return kids
end

function Tree:roots()
  local roots = handles(function(arr, cap, n)
    return lib.yaie_radix_roots(self.cptr, arr, cap, n)
  end)
  table.sort(roots, function(a, b) return self:info(a).namespace < self:info(b).namespace end)
  return roots
end

-- ---------------------------------------------------------------------------------------------
-- Dumps

local function preview(info, tokenizer)
  local ids = info.tokens
  if tokenizer then
    local ok, text = pcall(tokenizer.decode, tokenizer, ids)
    if ok then
      text = tostring(text)
      if #text > 48 then text = text:sub(1, 45) .. "..." end
      return (string.format("%q", text):gsub("\\\n", "\\n"))
    end
  end
  local shown = {}
  for i = 1, math.min(#ids, 12) do shown[i] = tostring(ids[i]) end
  local more = #ids > 12 and (" ... +" .. (#ids - 12)) or ""
  return "[" .. table.concat(shown, " ") .. more .. "]"
end

local function describe(info)
  local s = string.format("%d tok, %d pages", #info.tokens, #info.pages)
  if info.lock_ref > 0 then s = s .. string.format(", locked %d", info.lock_ref) end
  if info.own_locks > 0 then s = s .. string.format(" (own %d)", info.own_locks) end
  return s
end

-- A readable ASCII tree, with each edge's text when a tokenizer (anything with :decode(ids)) is
-- given, else its first token ids.
function Tree:dump(tokenizer)
  local s = self:stats()
  local lines = { string.format(
    "radix tree: %d nodes, %d cached tokens (%d evictable, %d protected), page_size %d",
    s.nodes, s.cached_tokens, s.evictable_tokens, s.protected_tokens, self.page_size) }
  local function walk(node, prefix)
    local kids = self:children(node)
    for i, kid in ipairs(kids) do
      local info, last = self:info(kid), i == #kids
      lines[#lines + 1] = prefix .. (last and "`-- " or "+-- ") .. preview(info, tokenizer) .. "  "
        .. describe(info)
      walk(kid, prefix .. (last and "    " or "|   "))
    end
  end
  for _, root in ipairs(self:roots()) do
    lines[#lines + 1] = "namespace " .. self:info(root).namespace
    walk(root, "")
  end
  return table.concat(lines, "\n") .. "\n"
end

local function dot_quote(s)
  return '"' .. s:gsub('[\\"]', "\\%0"):gsub("\n", "\\n") .. '"'
end

-- The tree in Graphviz's dot language; locked nodes are shaded.
function Tree:to_dot(tokenizer)
  local out, next_id = { "digraph radix {", '  node [shape=box, fontname="monospace"];' }, 0
  local function emit(node, label, info)
    next_id = next_id + 1
    local id = "n" .. next_id
    local style = info and info.lock_ref > 0 and ', style=filled, fillcolor="#f4cccc"' or ""
    out[#out + 1] = string.format("  %s [label=%s%s];", id, dot_quote(label), style)
    return id
  end
  local function walk(node, id)
    for _, kid in ipairs(self:children(node)) do
      local info = self:info(kid)
      local kid_id = emit(kid, preview(info, tokenizer) .. "\n" .. describe(info), info)
      out[#out + 1] = string.format("  %s -> %s;", id, kid_id)
      walk(kid, kid_id)
    end
  end
  for _, root in ipairs(self:roots()) do
    walk(root, emit(root, "namespace " .. self:info(root).namespace))
  end
  out[#out + 1] = "}"
  return table.concat(out, "\n") .. "\n"
end

function Tree:__tostring()
  local s = self:stats()
  return string.format("radix tree: %d nodes, %d cached tokens, %d evictable, %d protected",
    s.nodes, s.cached_tokens, s.evictable_tokens, s.protected_tokens)
end

return M
