-- The KV page pool (engine/kv/page_pool.c) through lua/yaie/pool.lua, and its C API directly.
local yaie = require "yaie"
local C = require "yaie.c"
local ffi, lib = C.ffi, C.lib

local quick = os.getenv("YAIE_SPEC_QUICK") ~= nil

local function err_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, "expected an error")
  return tostring(err)
end

local function same_stats(a, b)
  for k, v in pairs(a) do assert.are.equal(v, b[k], k) end
end

describe("page pool", function()
  it("is made from a number of pages and hands out distinct ids", function()
    local pool = yaie.pool.new { pages = 8, page_size = 4 }
    local s = pool:stats()
    assert.are.same({ 8, 8, 0, 0, 0, 4 }, { s.total, s.free, s.used, s.evictable, s.cached, s.page_size })
    local pages = pool:alloc(3)
    assert.are.same({ 0, 1, 2 }, pages)
    s = pool:stats()
    assert.are.same({ 5, 3 }, { s.free, s.used })
    pool:free(pages)
    assert.are.equal(8, pool:stats().free)
    assert.is_true(pool:check())
  end)

  it("defaults to pages of 16 tokens and takes any size in 1..256", function()
    assert.are.equal(16, yaie.pool.new({ pages = 1 }):stats().page_size)
    for _, ps in ipairs { 1, 2, 3, 7, 64, 255, 256 } do
      assert.are.equal(ps, yaie.pool.new({ pages = 3, page_size = ps }):stats().page_size)
    end
    assert.matches("page_size 0 is not in 1..256", err_of(yaie.pool.new, { pages = 4, page_size = 0 }))
    assert.matches("page_size 257 is not in 1..256", err_of(yaie.pool.new, { pages = 4, page_size = 257 }))
  end)

  it("is sized in bytes from the model geometry and dtype", function()
    -- K and V x 2 layers x 4 heads x 8 dims x 2 bytes x 16 tokens = 4096 bytes a page.
    local pool = yaie.pool.new { bytes = 4096 * 10 + 100, page_size = 16, layers = 2, kv_heads = 4,
      head_dim = 8, dtype = "bf16" }
    local s = pool:stats()
    assert.are.equal(10, s.total)
    assert.are.equal(4096, s.page_bytes)
    -- The same from a model config table (yaie_config field names), f32 by default.
    local cfg = { n_layers = 2, n_kv_heads = 4, head_dim = 8 }
    s = yaie.pool.new({ bytes = 8192 * 3, page_size = 16, config = cfg }):stats()
    assert.are.same({ 3, 8192 }, { s.total, s.page_bytes })
    s = yaie.pool.new({ bytes = 8192 * 3, page_size = 16, config = cfg, dtype = "f16" }):stats()
    assert.are.equal(6, s.total)
    -- A count of pages wins over bytes, and the geometry is still reported.
    s = yaie.pool.new({ pages = 5, bytes = 1, page_size = 16, config = cfg }):stats()
    assert.are.same({ 5, 8192 }, { s.total, s.page_bytes })
  end)

  it("refuses sizes it cannot honour, with the reason", function()
    assert.matches("hold no page", err_of(yaie.pool.new, { bytes = 100, page_size = 16, layers = 2,
      kv_heads = 4, head_dim = 8 }))
    assert.matches("give a number of pages", err_of(yaie.pool.new, { bytes = 100000 }))
    assert.matches("needs layers, kv_heads, head_dim", err_of(yaie.pool.new, { bytes = 100000, layers = 2 }))
    assert.matches("unknown dtype 'q4'", err_of(yaie.pool.new, { bytes = 1, layers = 1, kv_heads = 1,
      head_dim = 1, dtype = "q4" }))
    assert.matches("%-1 pages", err_of(yaie.pool.new, { pages = -1 }))
  end)

  it("returns nil and a message when exhausted, all or nothing", function()
    local pool = yaie.pool.new { pages = 4, page_size = 1 }
    local a = pool:alloc(3)
    local before = pool:stats()
    local pages, err = pool:alloc(2)
    assert.is_nil(pages)
    assert.matches("pool exhausted: 2 pages asked, 1 free of 4", err)
    same_stats(before, pool:stats())
    pool:check()
    assert.are.same({ 3 }, pool:alloc(1))
    assert.are.same({}, pool:alloc(0))
    assert.is_nil((pool:alloc(1)))
    pool:free(a)
    assert.matches("%-1 pages", err_of(pool.alloc, pool, -1))
  end)

  it("counts references, so a shared page is freed by its last user", function()
    local pool = yaie.pool.new { pages = 4, page_size = 1 }
    local p = pool:alloc(1)
    pool:ref(p)
    pool:ref(p)
    pool:free(p)
    pool:free(p)
    assert.are.equal(1, pool:stats().used)
    pool:free(p)
    assert.are.equal(0, pool:stats().used)
    pool:check()
    -- A page listed twice drops two references.
    local q = pool:alloc(1)
    pool:ref(q)
    pool:free({ q[1], q[1] })
    assert.are.equal(4, pool:stats().free)
    pool:check()
  end)

  it("refuses bad frees and references with clear errors, changing nothing", function()
    local pool = yaie.pool.new { pages = 4, page_size = 1 }
    local a = pool:alloc(2)
    local before = pool:stats()
    assert.matches("page 3 is already free", err_of(pool.free, pool, { 3 }))
    assert.matches("page id 4 is out of range %[0, 4%)", err_of(pool.free, pool, { 4 }))
    assert.matches("page id %-1 is out of range", err_of(pool.free, pool, { -1 }))
    assert.matches("page 2 is free %(allocate it first%)", err_of(pool.ref, pool, { 2 }))
    assert.matches("out of range", err_of(pool.ref, pool, { 0, 99 }))
    -- A refusal after some pages were dropped rolls them back, the free list included.
    assert.matches("page 3 is already free", err_of(pool.free, pool, { a[1], a[2], 3 }))
    assert.matches("page 0 is already free", err_of(pool.free, pool, { a[1], a[1] }))
    same_stats(before, pool:stats())
    pool:check()
    pool:free(a)
    assert.matches("page 0 is already free", err_of(pool.free, pool, a))
    pool:check()
  end)

  it("matches a plain Lua model over random allocations, references and frees", function()
    local n_pages, ops = 64, quick and 5000 or 100000
    local pool = yaie.pool.new { pages = n_pages, page_size = 8 }
    local refs, held = {}, {} -- refs[page] as the model sees them; held: a list of live pages
    for p = 0, n_pages - 1 do refs[p] = 0 end
    math.randomseed(7)
    local used = 0
    for op = 1, ops do
      local r = math.random()
      if r < 0.35 then
        local n = math.random(0, 6)
        local pages = pool:alloc(n)
        if n > n_pages - used then
          assert(pages == nil, "alloc beyond the free pages succeeded")
        else
          for _, p in ipairs(pages) do
            assert(refs[p] == 0, "alloc handed out a page in use")
            refs[p] = 1
            held[#held + 1] = p
          end
          used = used + n
        end
      elseif r < 0.5 and #held > 0 then
        local p = held[math.random(#held)]
        pool:ref({ p })
        refs[p] = refs[p] + 1
        held[#held + 1] = p
      elseif r < 0.85 and #held > 0 then
        local i = math.random(#held)
        local p = held[i]
        held[i] = held[#held]
        held[#held] = nil
        pool:free({ p })
        refs[p] = refs[p] - 1
        if refs[p] == 0 then used = used - 1 end
      else
        -- A bad call: a free page, or one out of range; nothing may change.
        local p = math.random(-2, n_pages + 2)
        if p < 0 or p >= n_pages or refs[p] == 0 then
          local ok = pcall(pool.free, pool, { p })
          assert(not ok, "freeing a free or foreign page succeeded")
        end
      end
      local s = pool:stats()
      if s.used ~= used or s.free ~= n_pages - used then
        error(string.format("op %d: pool says %d used, model %d", op, s.used, used))
      end
      pool:check()
    end
    for _, p in ipairs(held) do pool:free({ p }) end
    assert.are.equal(n_pages, pool:stats().free)
    pool:check()
  end)

  it("outlives its handle while a radix tree uses it (C API)", function()
    local params = ffi.new("yaie_pool_params", { n_pages = 8, page_size = 2 })
    local pp, tp = ffi.new("yaie_pool*[1]"), ffi.new("yaie_radix*[1]")
    C.check(lib.yaie_pool_new(params, pp))
    C.check(lib.yaie_radix_new(pp[0], tp))
    assert.matches("already has a radix tree", err_of(function()
      C.check(lib.yaie_radix_new(pp[0], ffi.new("yaie_radix*[1]")))
    end))
    local pages = ffi.new("int32_t[2]")
    C.check(lib.yaie_pool_alloc(pp[0], 2, pages))
    local already = ffi.new("int[1]")
    C.check(lib.yaie_radix_insert(tp[0], 0, ffi.new("int32_t[4]", { 1, 2, 3, 4 }), 4, pages, 2, already, nil))
    lib.yaie_pool_free(pp[0]) -- the tree still holds it
    C.check(lib.yaie_radix_check(tp[0]))
    local freed = ffi.new("int[1]")
    C.check(lib.yaie_radix_evict(tp[0], 1, freed))
    assert.are.equal(2, freed[0])
    lib.yaie_radix_free(tp[0])
  end)

  it("is freed by the garbage collector", function()
    for _ = 1, 50 do
      local pool = yaie.pool.new { pages = 1000, page_size = 16 }
      pool:alloc(10)
    end
    collectgarbage()
    collectgarbage()
  end)
end)
