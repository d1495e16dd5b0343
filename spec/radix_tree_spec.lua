-- The radix-tree prefix cache (engine/kv/radix_*.c) through lua/yaie/radix.lua: unit cases, bad
-- calls, and a randomized differential test against a plain Lua model of a prefix cache.
local yaie = require "yaie"

local quick = os.getenv("YAIE_SPEC_QUICK") ~= nil

local function err_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, "expected an error")
  return tostring(err)
end

local function setup(pages, page_size, namespace)
  local pool = yaie.pool.new { pages = pages, page_size = page_size }
  return pool, yaie.radix.new { pool = pool, namespace = namespace }
end

local function range(a, b)
  local t = {}
  for i = a, b do t[#t + 1] = i end
  return t
end

local function concat(a, b)
  local t = {}
  for _, v in ipairs(a) do t[#t + 1] = v end
  for _, v in ipairs(b) do t[#t + 1] = v end
  return t
end

-- Caches ids the way a finished request does: its pages are the matched ones plus fresh ones.
local function cache(pool, tree, ids)
  local n, pages, node = tree:match(ids)
  tree:lock(node)
  local need = math.ceil(#ids / tree.page_size) - #pages
  local table_ = concat(pages, assert(pool:alloc(need)))
  local already = tree:insert(ids, table_)
  if #ids % tree.page_size ~= 0 then pool:free({ table_[#table_] }) end
  tree:unlock(node)
  return already, n
end

local function snapshot(pool, tree)
  local s, p = tree:stats(), pool:stats()
  s.hit_tokens, s.miss_tokens = nil, nil -- a failed call may still count as a lookup
  for k, v in pairs(p) do s["pool_" .. k] = v end
  return s
end

describe("radix tree", function()
  it("matches what was inserted, in whole pages", function()
    local pool, tree = setup(32, 4)
    local ids = range(1, 10) -- two whole pages and a partial one
    local n, pages, node = tree:match(ids)
    assert.are.same({ 0, {} }, { n, pages })
    assert.is_true(tree:info(node).is_root)
    local mine = pool:alloc(3)
    assert.are.equal(0, (tree:insert(ids, mine)))
    pool:free({ mine[3] }) -- the partial page stays the request's
    n, pages = tree:match(ids)
    assert.are.same({ 8, { mine[1], mine[2] } }, { n, pages })
    n, pages = tree:match({ 1, 2, 3, 4, 5, 6, 7 })
    assert.are.same({ 4, { mine[1] } }, { n, pages })
    local s = tree:stats()
    assert.are.equal(8, s.cached_tokens)
    assert.are.equal(12, s.hit_tokens)
    assert.are.equal(10 + 2 + 3, s.miss_tokens)
    assert.are.equal(2, s.nodes) -- the match ending inside the node split it
    assert.are.equal(28 + 2, pool:stats().free)
    tree:check()
  end)

  it("splits a node where a match or an insert ends inside it, keeping handles", function()
    local pool, tree = setup(64, 1)
    cache(pool, tree, range(1, 10))
    local _, _, whole = tree:match(range(1, 10))
    tree:lock(whole)
    local n, _, half = tree:match(range(1, 4))
    assert.are.equal(4, n)
    assert.are.equal(2, tree:stats().nodes)
    assert.are.equal(10, tree:info(whole).depth) -- the old handle names the deeper part
    assert.are.equal(1, tree:info(half).lock_ref) -- the new node inherits the lock
    assert.are.equal(0, tree:info(half).own_locks)
    assert.matches("not locked", err_of(tree.unlock, tree, half))
    tree:unlock(whole)
    -- [1-4] -> [5-10] becomes [1-4] -> [5 6] -> ([7-10], [99 98]).
    assert.are.equal(6, (cache(pool, tree, concat(range(1, 6), { 99, 98 }))))
    assert.are.equal(4, tree:stats().nodes)
    tree:check()
  end)

  it("takes new pages, drops the caller's duplicates and keeps the tree's own", function()
    local pool, tree = setup(16, 2)
    local a = pool:alloc(3)
    assert.are.equal(0, (tree:insert(range(1, 6), a)))
    -- A second request computed the same prefix in pages of its own, plus one more page.
    local b = pool:alloc(4)
    assert.are.equal(6, (tree:insert(range(1, 8), b)))
    assert.are.equal(16 - 4, pool:stats().free) -- b[1..3] went back, b[4] is cached
    local _, pages = tree:match(range(1, 8))
    assert.are.same({ a[1], a[2], a[3], b[4] }, pages)
    -- Inserting the tree's own pages again changes nothing.
    assert.are.equal(8, (tree:insert(range(1, 8), pages)))
    assert.are.equal(12, pool:stats().free)
    tree:check()
  end)

  it("never evicts a locked node or its ancestors", function()
    local pool, tree = setup(64, 1)
    cache(pool, tree, range(1, 8))
    cache(pool, tree, concat(range(1, 4), range(20, 23)))
    local _, _, node = tree:match(range(1, 8))
    tree:lock(node)
    tree:lock(node) -- locks nest
    local s = tree:stats()
    assert.are.same({ 8, 4 }, { s.protected_tokens, s.evictable_tokens })
    assert.are.equal(4, pool:stats().evictable)
    assert.are.equal(4, tree:evict(100))
    assert.are.equal(8, tree:stats().cached_tokens)
    tree:unlock(node)
    assert.are.equal(0, tree:evict(100))
    tree:unlock(node)
    assert.are.equal(8, pool:stats().evictable)
    assert.are.equal(4, tree:evict(1)) -- a whole leaf goes: [5-8]
    assert.are.equal(4, tree:evict(1)) -- then its parent, now a leaf
    assert.are.equal(64, pool:stats().free)
    tree:check()
  end)

  it("evicts the least recently used leaf first, then parents that became leaves", function()
    local pool, tree = setup(64, 1)
    cache(pool, tree, { 1, 2, 3, 4 })       -- t1
    cache(pool, tree, { 1, 2, 7, 8 })       -- t2: splits {1 2}
    cache(pool, tree, { 5, 6 })             -- t3
    tree:match({ 1, 2, 3, 4 })              -- t4: {3 4} is now the newest
    assert.are.equal(2, tree:evict(1))      -- {7 8}
    assert.are.equal(2, tree:peek({ 1, 2, 7, 8 }))
    assert.are.equal(2, tree:evict(1))      -- {5 6}
    assert.are.equal(0, tree:peek({ 5, 6 }))
    assert.are.equal(4, tree:evict(3))      -- {3 4}, then {1 2}, which became a leaf
    assert.are.equal(0, tree:stats().nodes)
    assert.are.equal(0, tree:evict(1))
    tree:check()
  end)

  it("keeps namespaces apart while sharing the pool and the LRU order", function()
    local pool, tree = setup(64, 1)
    local lora = tree:namespace("lora-a")
    local pages = pool:alloc(4)
    tree:insert({ 1, 2, 3, 4 }, pages)
    assert.are.equal(0, (lora:match({ 1, 2, 3, 4 })))
    assert.are.equal(0, (tree:match({ 1, 2, 3, 4 }, "lora-a")))
    local p2 = pool:alloc(4)
    assert.are.equal(0, (lora:insert({ 1, 2, 3, 4 }, p2)))
    assert.are.equal(4, (lora:match({ 1, 2, 3, 4 })))
    local s = tree:stats()
    assert.are.same({ 8, 2 }, { s.cached_tokens, s.namespaces })
    assert.are.equal(4, tree:evict(1)) -- the default namespace's, used least recently
    assert.are.equal(4, lora:peek({ 1, 2, 3, 4 }))
    assert.matches("namespace lora%-a", tree:dump())
    tree:check()
  end)

  it("refuses bad calls with clear errors and leaves everything as it was", function()
    local pool, tree = setup(16, 2)
    cache(pool, tree, range(1, 8))
    local _, _, node = tree:match(range(1, 4))
    local mine = pool:alloc(2)
    local before = snapshot(pool, tree)
    local function refused(pattern, fn, ...)
      assert.matches(pattern, err_of(fn, ...))
      assert.are.same(before, snapshot(pool, tree))
      tree:check()
    end
    refused("unlock: the node is not locked", tree.unlock, tree, node)
    refused("unlock: no node given", tree.unlock, tree, nil)
    refused("insert: 10 tokens fill 5 pages, 4 given", tree.insert, tree, range(1, 10), { 0, 1, 2, 3 })
    refused("insert: page id 99 %(page 4 of the key%) is out of range", tree.insert, tree, range(1, 10),
      { 0, 1, 2, 3, 99 })
    refused("insert: page id 0 %(page 1 of the key%) is already cached", tree.insert, tree, range(1, 10),
      { mine[1], 0, 2, 3, mine[2] })
    local free_page = pool:alloc(1)[1]
    pool:free({ free_page })
    refused("insert: page id " .. free_page .. " %(page 4 of the key%) is free", tree.insert, tree,
      range(1, 10), { 0, 1, 2, 3, free_page })
    refused("page 4 of the key%) is listed twice", tree.insert, tree, range(1, 10),
      { 0, 1, 2, mine[1], mine[1] })
    refused("insert: page id 0 %(page 0 of the key%) is already cached", tree.insert, tree,
      { 50, 51 }, { 0 })
    refused("insert: page id 1 %(page 0 of the key%) is already cached", tree.insert, tree,
      range(1, 4), { 1, 0 })
    refused("evict: %-1 pages", tree.evict, tree, -1)
    refused("pool free: page 0 is held only by the radix cache", pool.free, pool, { 0 })
    refused("exhausted", function() assert(pool:alloc(100)) end)
    -- A stale handle: its node was evicted (and its slot perhaps reused).
    tree:evict(100)
    cache(pool, tree, { 9, 9, 9, 9 })
    before = snapshot(pool, tree)
    refused("lock: stale node handle", tree.lock, tree, node)
    refused("unlock: stale node handle", tree.unlock, tree, node)
    -- A handle from another tree is refused before it is followed.
    local _, other = setup(4, 2)
    local _, _, foreign = other:match({ 1, 2 })
    refused("belongs to another tree", tree.lock, tree, foreign)
    pool:free(mine)
  end)

  it("locks a namespace root and a node locked through a descendant safely", function()
    local pool, tree = setup(16, 1)
    cache(pool, tree, range(1, 6))
    local _, _, root = tree:match({ 42 })
    tree:lock(root)
    local _, _, deep = tree:match(range(1, 6))
    local _, _, mid = tree:match(range(1, 3))
    tree:lock(deep)
    tree:lock(mid)
    tree:unlock(mid)
    assert.matches("not locked", err_of(tree.unlock, tree, mid))
    tree:unlock(deep)
    tree:unlock(root)
    tree:check()
    assert.are.equal(6, tree:evict(6))
  end)

  it("dumps a readable tree and Graphviz, with token text when given a tokenizer", function()
    local pool, tree = setup(64, 1)
    cache(pool, tree, { 1, 2, 3, 4 })
    cache(pool, tree, { 1, 2, 5 })
    local _, _, node = tree:match({ 1, 2, 5 })
    tree:lock(node)
    local words = { "Once", " upon", " a", " time", " there" }
    local tok = { decode = function(_, ids)
      local t = {}
      for i, id in ipairs(ids) do t[i] = words[id] end
      return table.concat(t)
    end }
    local text = tree:dump(tok)
    assert.matches('`%-%- "Once upon"  2 tok, 2 pages, locked 1', text)
    assert.matches('    %+%-%- " a time"  2 tok', text)
    assert.matches('    `%-%- " there"  1 tok, 1 pages, locked 1 %(own 1%)', text)
    assert.matches("%[1 2%]", tree:dump())
    local dot = tree:to_dot(tok)
    assert.matches("^digraph radix {", dot)
    assert.matches('n2 %-> n3;', dot)
    assert.matches('fillcolor', dot)
    tree:unlock(node)
  end)

  it("reports its memory per node and token", function()
    local pool, tree = setup(4096, 1)
    for i = 1, 50 do cache(pool, tree, concat(range(1, 20), range(100 * i, 100 * i + 20))) end
    local s = tree:stats()
    assert.is_true(s.bytes > s.nodes * 64 and s.bytes < s.cached_tokens * 64, tostring(s.bytes))
    tree:evict(1e9)
    assert.are.equal(4096, pool:stats().free)
    tree:check()
  end)
end)

-- ---------------------------------------------------------------------------------------------
-- The reference model: a plain trie of pages (one Lua table per cached page, no compression),
-- with a lock count and a last-use tick per page. It knows nothing of nodes, splits or heaps.

local Model = {}
Model.__index = Model

local function new_model(page_size)
  return setmetatable({ ps = page_size, roots = {}, tick = 0, leaves = {}, pages = 0, locked = 0,
    hit = 0, miss = 0 }, Model)
end

local function page_key(ids, i, ps)
  if ps == 1 then return ids[i] end
  return table.concat(ids, ",", i, i + ps - 1)
end

function Model:root(ns)
  local r = self.roots[ns]
  if not r then
    r = { kids = {}, n_kids = 0, locks = 0 }
    self.roots[ns] = r
  end
  return r
end

-- The cached pages along ids (whole pages), root first.
function Model:path(ns, ids)
  local path, node = {}, self:root(ns)
  for i = 1, #ids - self.ps + 1, self.ps do
    node = node.kids[page_key(ids, i, self.ps)]
    if not node then break end
    path[#path + 1] = node
  end
  return path
end

function Model:stamp(path)
  self.tick = self.tick + 1
  for _, p in ipairs(path) do p.tick = self.tick end
end

function Model:match(ns, ids)
  local path = self:path(ns, ids)
  self:stamp(path)
  local pages = {}
  for i, p in ipairs(path) do pages[i] = p.page end
  self.hit = self.hit + #path * self.ps
  self.miss = self.miss + #ids - #path * self.ps
  return #path * self.ps, pages
end

function Model:insert(ns, ids, pages)
  local path = self:path(ns, ids)
  local already, node = #path, path[#path] or self:root(ns)
  for i = already + 1, math.floor(#ids / self.ps) do
    local kid = { kids = {}, n_kids = 0, locks = 0, page = pages[i], parent = node,
      key = page_key(ids, (i - 1) * self.ps + 1, self.ps) }
    node.kids[kid.key] = kid
    node.n_kids = node.n_kids + 1
    self.leaves[node] = nil
    self.leaves[kid] = true
    self.pages = self.pages + 1
    path[i], node = kid, kid
  end
  self:stamp(path)
  return already * self.ps
end

function Model:lock(path, delta)
  for _, p in ipairs(path) do
    if p.locks == 0 then self.locked = self.locked + 1 end
    p.locks = p.locks + delta
    if p.locks == 0 then self.locked = self.locked - 1 end
  end
end

-- Evicts one page: the unlocked leaf used least recently. False when none is left.
function Model:evict_one()
  local best
  for leaf in pairs(self.leaves) do
    if leaf.locks == 0 and (not best or leaf.tick < best.tick) then best = leaf end
  end
  if not best then return false end
  local parent = best.parent
  parent.kids[best.key] = nil
  parent.n_kids = parent.n_kids - 1
  self.leaves[best] = nil
  if parent.parent and parent.n_kids == 0 then self.leaves[parent] = true end
  self.pages = self.pages - 1
  return true
end

function Model:evictable()
  return self.pages - self.locked
end

-- ---------------------------------------------------------------------------------------------
-- The differential run: random requests, lookups, locks, unlocks, evictions and bad calls over a
-- small alphabet, so that keys share prefixes and nodes split often.

local function fail(fmt, ...) error(string.format(fmt, ...), 2) end

local function run_differential(page_size, ops, seed)
  local n_pages, ps = 64, page_size
  local pool, tree = setup(n_pages, ps)
  local model = new_model(ps)
  math.randomseed(seed)
  local alphabet = ps == 1 and 3 or 2
  local docs = {}
  for d = 1, 10 do
    docs[d] = {}
    for i = 1, math.random(4, 10) * ps do docs[d][i] = math.random(alphabet) end
  end
  local function random_key()
    local doc, key = docs[math.random(#docs)], {}
    for i = 1, math.random(0, #doc) do key[i] = doc[i] end
    for _ = 1, math.random(0, 2 * ps) do key[#key + 1] = math.random(alphabet) end
    return key
  end
  local namespaces = { "default", "other" }
  local function tree_ns(ns) return ns ~= "default" and ns or nil end
  local held, history, hist_i = {}, {}, 0 -- held: { node, path }; history: { node, key, n, ns }

  local function compare(op, what)
    local s, p = tree:stats(), pool:stats()
    if s.cached_tokens ~= model.pages * ps or p.free ~= n_pages - model.pages or p.cached ~= model.pages
      or s.protected_tokens ~= model.locked * ps or p.evictable ~= model:evictable()
      or s.hit_tokens ~= model.hit or s.miss_tokens ~= model.miss then
      fail("op %d (%s), page_size %d, seed %d: tree %d cached, %d protected, pool %d free, %d evictable, "
        .. "%d/%d hit/miss; model %d pages, %d locked, %d/%d", op, what, ps, seed, s.cached_tokens,
        s.protected_tokens, p.free, p.evictable, s.hit_tokens, s.miss_tokens, model.pages, model.locked,
        model.hit, model.miss)
    end
    tree:check()
  end

  local function match(op, key, ns)
    local n, pages, node = tree:match(key, tree_ns(ns))
    local mn, mpages = model:match(ns, key)
    if n ~= mn or #pages ~= #mpages then fail("op %d: match %d, model %d", op, n, mn) end
    for i = 1, #pages do
      if pages[i] ~= mpages[i] then fail("op %d: page %d is %d, model %d", op, i, pages[i], mpages[i]) end
    end
    hist_i = hist_i % 64 + 1
    history[hist_i] = { node = node, key = key, n = n, ns = ns }
    return n, pages, node
  end

  -- Evicts to make room as a scheduler would, mirroring it in the model page by page.
  local function evict(op, want)
    local freed = tree:evict(want)
    for _ = 1, freed do
      if not model:evict_one() then fail("op %d: the tree evicted %d pages, more than it could", op, freed) end
    end
    if freed < want and model:evictable() > 0 then
      fail("op %d: evicted %d of %d with %d evictable left", op, freed, want, model:evictable())
    end
    return freed
  end

  local function request(op, ns, fresh)
    local key = random_key()
    local n, pages, node = match(op, key, ns)
    local path = model:path(ns, key)
    tree:lock(node)
    model:lock(path, 1)
    local matched = fresh and 0 or #pages
    local need = math.ceil(#key / ps) - matched
    local p = pool:stats()
    if need > p.free then evict(op, need - p.free) end
    local new = pool:alloc(need)
    if new then
      local table_ = fresh and new or concat(pages, new)
      local already = tree:insert(key, table_, tree_ns(ns))
      local expect = model:insert(ns, key, table_)
      if already ~= expect or already < n then fail("op %d: insert says %d cached, model %d", op, already, expect) end
      if #key % ps ~= 0 then pool:free({ table_[#table_] }) end
    end
    tree:unlock(node)
    model:lock(path, -1)
  end

  local function stale(op)
    local h = history[math.random(#history)]
    local ok, err = pcall(tree.lock, tree, h.node)
    if not ok then
      if not err:match("stale node handle") then fail("op %d: %s", op, err) end
      return
    end
    local path = model:path(h.ns, { unpack(h.key, 1, h.n) })
    if #path * ps ~= h.n then fail("op %d: a live handle ends at %d, the model has %d", op, h.n, #path * ps) end
    model:lock(path, 1)
    held[#held + 1] = { node = h.node, path = path }
  end

  local function bad_call(op)
    local key = random_key()
    local k = math.floor(#key / ps)
    if k == 0 then return end
    local before = snapshot(pool, tree)
    local pages = {}
    for i = 1, k do pages[i] = (i == k) and n_pages + i or i - 1 end
    local which = math.random(5)
    local ok
    if which == 5 then
      -- Between operations every page in use is the cache's alone, so freeing any page fails:
      -- it is free already, or held only by the tree.
      ok = pcall(pool.free, pool, { math.random(0, n_pages - 1) })
    elseif which == 4 then
      ok = pool:alloc(pool:stats().free + math.random(3)) ~= nil -- the pool exhausted
    elseif which == 1 then
      ok = pcall(tree.insert, tree, key, pages) -- a page out of range, at the end
    elseif which == 2 then
      pages[k] = nil
      ok = pcall(tree.insert, tree, key, pages) -- too few pages
    else
      -- A node without a lock of its own (held ones may have one), or a stale one.
      local node = history[math.random(#history)].node
      local live, info = pcall(tree.info, tree, node)
      if live and info.own_locks > 0 then return end
      ok = pcall(tree.unlock, tree, node)
    end
    if ok then fail("op %d: bad call %d succeeded", op, which) end
    local after = snapshot(pool, tree)
    for name, v in pairs(before) do
      if after[name] ~= v then fail("op %d: bad call %d changed %s", op, which, name) end
    end
  end

  -- Every cached page of the tree, walked node by node, is the model's page at that place, and
  -- is locked exactly when the model's is.
  local function compare_structure(op)
    local seen = 0
    local function walk(node, mnode)
      for _, kid in ipairs(tree:children(node)) do
        local info, m = tree:info(kid), mnode
        for j, page in ipairs(info.pages) do
          m = m.kids[page_key(info.tokens, (j - 1) * ps + 1, ps)]
          if not m or m.page ~= page or (m.locks > 0) ~= (info.lock_ref > 0) then
            fail("op %d: tree page %d at depth %d differs from the model", op, page, info.depth)
          end
          seen = seen + 1
        end
        walk(kid, m)
      end
    end
    for _, root in ipairs(tree:roots()) do walk(root, model:root(tree:info(root).namespace)) end
    if seen ~= model.pages then fail("op %d: the tree holds %d pages, the model %d", op, seen, model.pages) end
  end

  match(0, {}, "default")
  for op = 1, ops do
    local ns = namespaces[math.random(10) <= 8 and 1 or 2]
    local r = math.random(100)
    local what
    if r <= 35 then
      what = "request"
      request(op, ns, math.random(4) == 1)
    elseif r <= 50 then
      what = "match"
      local key = random_key()
      local _, _, node = match(op, key, ns)
      if #held < 6 and math.random(2) == 1 then
        tree:lock(node)
        local path = model:path(ns, key)
        model:lock(path, 1)
        held[#held + 1] = { node = node, path = path }
      end
    elseif r <= 62 then
      what = "unlock"
      if #held > 0 then
        local i = math.random(#held)
        tree:unlock(held[i].node)
        model:lock(held[i].path, -1)
        table.remove(held, i)
      end
    elseif r <= 77 then
      what = "evict"
      evict(op, math.random(0, 8))
    elseif r <= 85 then
      what = "peek"
      local key = random_key()
      local n = tree:peek(key, tree_ns(ns))
      if n ~= #model:path(ns, key) * ps then fail("op %d: peek %d, model %d", op, n, #model:path(ns, key) * ps) end
    elseif r <= 92 then
      what = "stale handle"
      if #held < 6 then stale(op) end
    else
      what = "bad call"
      bad_call(op)
    end
    compare(op, what)
    if op % 2000 == 0 then compare_structure(op) end
  end

  -- Let go of everything: every page must be back in the pool, none twice.
  for _, h in ipairs(held) do
    tree:unlock(h.node)
    model:lock(h.path, -1)
  end
  evict(ops + 1, n_pages)
  compare(ops + 1, "final eviction")
  assert.are.equal(n_pages, pool:stats().free)
  assert.are.equal(0, tree:stats().nodes)
end

describe("radix tree against a plain prefix-cache model", function()
  local ops = quick and 20000 or 100000
  for _, ps in ipairs { 1, 4, 16 } do
    it(string.format("agrees over %d random operations with page_size %d", ops, ps), function()
      run_differential(ps, ops, 1000 + ps)
    end)
  end
end)
