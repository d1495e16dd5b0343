-- The radix cache benchmark: build_dir/yaie run scripts/bench/radix.lua [page_size ...]
--
-- Builds a tree of ~1M cached tokens (50 shared prefixes of 1,000 tokens, each with 200
-- suffixes of 100 tokens), the way finished requests fill it (match, lock, allocate, insert,
-- unlock), then times match, insert and evict through the Lua API, and reports the bytes the
-- tree holds per node and per cached token. "match (C)" calls the C function on ids already in
-- an int32 array: the difference is the cost of Lua lists in and out.
local yaie = require "yaie"
local C = require "yaie.c"
local ffi, lib = C.ffi, C.lib

local now = C.now

local N_PREFIX, PREFIX_LEN, N_SUFFIX, SUFFIX_LEN, VOCAB = 50, 1000, 200, 100, 32000

local function random_ids(n)
  local t = {}
  for i = 1, n do t[i] = math.random(0, VOCAB - 1) end
  return t
end

local function key_of(prefixes, suffixes, p, s, out)
  out = out or {}
  local pre, suf = prefixes[p], suffixes[p][s]
  for i = 1, PREFIX_LEN do out[i] = pre[i] end
  for i = 1, SUFFIX_LEN do out[PREFIX_LEN + i] = suf[i] end
  return out
end

-- A finished request as the scheduler would hand it over: its cached prefix (matched) and fresh
-- pages for the rest. Locks are left out: nothing is evicted while the tree is built.
local function prepare(pool, tree, ids)
  local _, pages = tree:match(ids)
  local fresh = assert(pool:alloc(math.ceil(#ids / tree.page_size) - #pages))
  for _, p in ipairs(fresh) do pages[#pages + 1] = p end
  return pages
end

local function finish(pool, tree, ids, pages)
  if #ids % tree.page_size ~= 0 then pool:free({ pages[#pages] }) end
end

-- The best of a few timed rounds of fn(), so that a busy machine disturbs the figure less.
local function best_of(rounds, ops, fn)
  local best = math.huge
  for _ = 1, rounds do
    local t0 = now()
    fn()
    best = math.min(best, now() - t0)
  end
  return { ops = ops, seconds = best }
end

local function bench(page_size)
  math.randomseed(42)
  local total = N_PREFIX * (PREFIX_LEN + N_SUFFIX * SUFFIX_LEN)
  local pool = yaie.pool.new { pages = math.ceil(total / page_size) + N_PREFIX * N_SUFFIX, page_size = page_size }
  local tree = yaie.radix.new { pool = pool }
  local prefixes, suffixes = {}, {}
  for p = 1, N_PREFIX do
    prefixes[p], suffixes[p] = random_ids(PREFIX_LEN), {}
    for s = 1, N_SUFFIX do suffixes[p][s] = random_ids(SUFFIX_LEN) end
  end
  local rows = { page_size = page_size }

  -- Build the tree one request at a time; each insert is timed on its own, its ids and pages
  -- fresh in the CPU caches as a finishing request's are, with the collector paused for the call
  -- so that it does not bill the insert for the garbage the loop around it made.
  local key, insert_time = {}, 0
  local t0 = now()
  for s = 1, N_SUFFIX do
    for p = 1, N_PREFIX do
      key_of(prefixes, suffixes, p, s, key)
      local pages = prepare(pool, tree, key)
      collectgarbage("stop")
      local t1 = now()
      tree:insert(key, pages)
      insert_time = insert_time + (now() - t1)
      collectgarbage("restart")
      finish(pool, tree, key, pages)
    end
  end
  rows.build = { ops = N_PREFIX * N_SUFFIX, seconds = now() - t0 }
  rows.insert = { ops = N_PREFIX * N_SUFFIX, seconds = insert_time }
  rows.stats, rows.pool = tree:stats(), pool:stats()
  tree:check()

  -- Match: 1,000 distinct cached keys in turn (8.8 MB of Lua lists: cold in the CPU caches),
  -- and 20 keys in turn (hot, as a prompt being scheduled is).
  local keys, arrays = {}, {}
  for i = 1, 1000 do
    keys[i] = key_of(prefixes, suffixes, math.random(N_PREFIX), math.random(N_SUFFIX))
    arrays[i] = ffi.new("int32_t[?]", #keys[i], keys[i])
  end
  rows.match_cold = best_of(5, 20 * #keys, function()
    for _ = 1, 20 do
      for i = 1, #keys do tree:match(keys[i]) end
    end
  end)
  rows.match_hot = best_of(5, 20000, function()
    for i = 1, 20000 do tree:match(keys[i % 20 + 1]) end
  end)
  local pages = ffi.new("int32_t[?]", 2048)
  local n_out, node = ffi.new("int[1]"), ffi.new("yaie_radix_handle")
  rows.match_c = best_of(5, 20 * #arrays, function()
    for _ = 1, 20 do
      for i = 1, #arrays do
        lib.yaie_radix_match(tree.cptr, 0, arrays[i], 1100, pages, 2048, n_out, node)
      end
    end
  end)
  assert(n_out[0] == 1100 - 1100 % page_size)

  -- Evict: one leaf (a 100-token suffix) per call, least recently used first, half the tree.
  local calls, freed = N_PREFIX * N_SUFFIX / 2, 0
  t0 = now()
  for _ = 1, calls do freed = freed + tree:evict(1) end
  rows.evict = { ops = calls, seconds = now() - t0, pages = freed }
  tree:check()
  return rows
end

local sizes = {}
for i = 1, select("#", ...) do sizes[i] = tonumber((select(i, ...))) end
if #sizes == 0 then sizes = { 1, 16 } end

print(string.format("radix cache: %d prefixes x %d tokens, %d suffixes x %d tokens each (%d keys of %d)",
  N_PREFIX, PREFIX_LEN, N_SUFFIX, SUFFIX_LEN, N_PREFIX * N_SUFFIX, PREFIX_LEN + SUFFIX_LEN))
print()
print(string.format("%-9s | %-24s | %12s | %10s", "page_size", "operation", "ops/s", "us/op"))
print(string.rep("-", 9) .. "-+-" .. string.rep("-", 24) .. "-+-" .. string.rep("-", 12) .. "-+-" .. string.rep("-", 10))
local all = {}
for _, ps in ipairs(sizes) do
  local r = bench(ps)
  all[#all + 1] = r
  local function row(name, m)
    print(string.format("%-9d | %-24s | %12.0f | %10.2f", ps, name, m.ops / m.seconds, 1e6 * m.seconds / m.ops))
  end
  row("match 1,100, hot key", r.match_hot)
  row("match 1,100, cold keys", r.match_cold)
  row("match 1,100, C only", r.match_c)
  row("insert 100 new tokens", r.insert)
  row("build (match+alloc+ins)", r.build)
  row(string.format("evict (%d pages/call)", r.evict.pages / r.evict.ops), r.evict)
end
print()
print(string.format("%-9s | %13s | %6s | %10s | %10s | %11s | %10s", "page_size", "cached tokens", "nodes",
  "tree MB", "bytes/node", "bytes/token", "pool MB"))
print(string.rep("-", 9) .. "-+-" .. string.rep("-", 13) .. "-+-" .. string.rep("-", 6) .. "-+-"
  .. string.rep("-", 10) .. "-+-" .. string.rep("-", 10) .. "-+-" .. string.rep("-", 11) .. "-+-" .. string.rep("-", 10))
for _, r in ipairs(all) do
  local s = r.stats
  print(string.format("%-9d | %13d | %6d | %10.1f | %10.0f | %11.2f | %10.1f", r.page_size, s.cached_tokens,
    s.nodes, s.bytes / 2 ^ 20, s.bytes / s.nodes, s.bytes / s.cached_tokens, r.pool.host_bytes / 2 ^ 20))
end
