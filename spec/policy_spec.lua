-- Scheduling policies (issue 4): each built-in order(waiting, ctx) on crafted requests and on a
-- real radix tree, and the engine's side of the bridge: set_policy at any time, a broken policy
-- reported (with its traceback) and replaced by fcfs for the step, never losing or repeating a
-- request, and chunk_size(ctx) choosing the prefill chunk.
local H = require "helper"
local yaie = require "yaie"

local policies = require "yaie.policies"
local fcfs = require "yaie.policies.fcfs"
local lpm = require "yaie.policies.lpm"
local dfs_weight = require "yaie.policies.dfs_weight"
local lof = require "yaie.policies.lof"
local random = require "yaie.policies.random"
local priority = require "yaie.policies.priority"

local model

setup(function()
  model = require("yaie.model").load { model = H.stories .. "/stories260K.gguf", threads = 1 }
end)

-- ---------------------------------------------------------------------------------------------
-- Crafted requests: just the fields policies read.

local function req(id, fields)
  local r = { id = id, all = { id }, tokens = {}, max_new = 16, opts = {}, enqueued_step = 0 }
  for k, v in pairs(fields or {}) do r[k] = v end
  return r
end

local function ids_of(list)
  local out = {}
  for i, r in ipairs(list) do out[i] = r.id end
  return out
end

-- A context whose prefix lengths come from a table (request id -> tokens cached).
local function crafted_ctx(prefix, fields)
  local ctx = { step = 0, page_size = 1, running = 0, waiting = 0,
    prefix_len = function(r) return prefix[r.id] or 0 end,
    random = function(n) return 1 end }
  for k, v in pairs(fields or {}) do ctx[k] = v end
  return ctx
end

describe("the built-in policies", function()
  it("are all named and resolvable", function()
    for _, name in ipairs(policies.names) do
      local p = policies.resolve(name)
      assert.are.equal(name, p.name)
      assert.are.equal("function", type(p.order))
    end
  end)

  it("fcfs orders by arrival", function()
    local w = { req(3), req(1), req(2) }
    assert.are.same({ 1, 2, 3 }, ids_of(fcfs.order(w, crafted_ctx {})))
    assert.are.same({ 3, 1, 2 }, ids_of(w)) -- the list given is not reordered
  end)

  it("lof orders by the most tokens still to generate", function()
    local w = {
      req(1, { max_new = 10 }), req(2, { max_new = 50 }),
      req(3, { max_new = 30, tokens = { 1, 2, 3, 4, 5 } }),
      req(4, { max_new = 30 }), req(5, { max_new = 50 }),
    }
    assert.are.same({ 2, 5, 4, 3, 1 }, ids_of(lof.order(w, crafted_ctx {})))
  end)

  it("priority orders by the request's priority, higher first, then by arrival", function()
    local w = { req(1), req(2, { opts = { priority = 5 } }), req(3, { opts = { priority = -1 } }),
      req(4, { opts = { priority = 5 } }), req(5, { opts = { priority = 1 } }) }
    assert.are.same({ 2, 4, 5, 1, 3 }, ids_of(priority.order(w, crafted_ctx {})))
  end)

  it("random gives a permutation drawn from the context's generator", function()
    local w = {}
    for i = 1, 10 do w[i] = req(i) end
    local state = 7
    local function draw(n)
      state = (state * 1103515245 + 12345) % 2147483648
      return state % n + 1
    end
    local seen, orders = {}, {}
    for k = 1, 5 do
      local out = random.order(w, crafted_ctx({}, { random = draw }))
      local ids = ids_of(out)
      table.sort(ids)
      assert.are.same({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, ids)
      orders[k] = table.concat(ids_of(out), ",")
      seen[orders[k]] = true
    end
    assert.is_true(next(seen, next(seen)) ~= nil, "five draws gave one order") -- at least two
    -- The same generator state gives the same order.
    state = 7
    local again = random.order(w, crafted_ctx({}, { random = draw }))
    assert.are.equal(orders[1], table.concat(ids_of(again), ","))
  end)

  it("lpm orders by the longest cached prefix, and ages waiting requests", function()
    local w = { req(1), req(2), req(3), req(4) }
    local prefix = { [1] = 0, [2] = 48, [3] = 16, [4] = 48 }
    assert.are.same({ 2, 4, 3, 1 }, ids_of(lpm.order(w, crafted_ctx(prefix))))
    -- aging: tokens of priority per step waited.
    assert.are.equal(4, lpm.aging)
    local aged = lpm.with { aging = 10 }
    assert.are.equal("lpm", aged.name)
    assert.are.equal(10, aged.aging)
    w[1].enqueued_step = 0 -- waited 5 steps: 50 > 48
    for i = 2, 4 do w[i].enqueued_step = 5 end
    local ctx = crafted_ctx(prefix, { step = 5 })
    assert.are.same({ 1, 2, 4, 3 }, ids_of(aged.order(w, ctx)))
    assert.are.same({ 2, 4, 1, 3 }, ids_of(lpm.order(w, ctx))) -- 4 x 5 = 20 > 16
    assert.are.same({ 2, 4, 3, 1 }, ids_of(lpm.with({ aging = 0 }).order(w, ctx)))
    assert.are.equal(4, lpm.aging) -- the default policy is unchanged
  end)

  it("dfs_weight runs the heaviest shared prefix first, deepest groups before their parents", function()
    -- Page size 2. Cached prefixes: 2 and 3 share [1 2][3 4]; 4 shares only [1 2]; 5 is alone
    -- under [5 5][6 6]; 1 and 6 have nothing cached.
    local w = {
      req(1, { all = { 9, 9, 9 } }),
      req(2, { all = { 1, 2, 3, 4, 5 } }),
      req(3, { all = { 1, 2, 3, 4, 9 } }),
      req(4, { all = { 1, 2, 7, 7, 8 } }),
      req(5, { all = { 5, 5, 6, 6, 1 } }),
      req(6, { all = { 8, 8 } }),
    }
    local ctx = crafted_ctx({ [2] = 4, [3] = 4, [4] = 2, [5] = 4 }, { page_size = 2 })
    assert.are.same({ 2, 3, 4, 5, 1, 6 }, ids_of(dfs_weight.order(w, ctx)))
    -- Equal weights keep the order the groups were first seen in.
    local v = { req(1, { all = { 5, 5, 0 } }), req(2, { all = { 1, 2, 0 } }), req(3, { all = { 5, 5, 1 } }),
      req(4, { all = { 1, 2, 1 } }) }
    ctx = crafted_ctx({ [1] = 2, [2] = 2, [3] = 2, [4] = 2 }, { page_size = 2 })
    assert.are.same({ 1, 3, 2, 4 }, ids_of(dfs_weight.order(v, ctx)))
  end)
end)

-- ---------------------------------------------------------------------------------------------

local base1 = "Once upon a time, there was a little girl named Lily. She loved to play outside."
local base2 = "Tom had a big red ball. He"

describe("the policies on a real radix tree", function()
  local engine, wave
  before_each(function()
    engine = yaie.engine { model = model, page_size = 4, kv_pages = 256, check = true, threads = 1 }
    wave = engine:generate_batch({ base1, base2 }, { max_tokens = 4, temperature = 0 })
  end)

  local function submit_all()
    return {
      engine:submit(base1 .. " One day", { max_tokens = 4 }),  -- 1: long cached prefix
      engine:submit("A cat sat on the mat.", { max_tokens = 4 }), -- 2: nothing cached
      engine:submit(base2 .. " said", { max_tokens = 4 }),      -- 3: short cached prefix
      engine:submit(base1 .. " Her mom", { max_tokens = 4 }),   -- 4: the long prefix again
      engine:submit("The sun", { max_tokens = 4 }),             -- 5: nothing cached
    }
  end

  it("sees cached prefix lengths through the scheduler's context", function()
    local reqs = submit_all()
    local ctx = engine.scheduler:context()
    assert.are.equal(4, ctx.page_size)
    assert.are.equal(5, ctx.waiting)
    assert.are.equal(0, ctx.running)
    -- Whole pages of what a first-wave request computed (its prompt and all but the last token
    -- it generated) that the new prompt starts with.
    local function expected(r, first)
      local n = 0
      while n < #first.all - 1 and first.all[n + 1] == r.all[n + 1] do n = n + 1 end
      return n - n % 4
    end
    assert.are.equal(expected(reqs[1], wave[1]), ctx.prefix_len(reqs[1]))
    assert.are.equal(expected(reqs[4], wave[1]), ctx.prefix_len(reqs[4]))
    assert.are.equal(expected(reqs[3], wave[2]), ctx.prefix_len(reqs[3]))
    assert.is_true(ctx.prefix_len(reqs[4]) >= 16)
    assert.is_true(ctx.prefix_len(reqs[3]) >= 4)
    assert.is_true(ctx.prefix_len(reqs[3]) < ctx.prefix_len(reqs[4]))
    -- BOS is cached by every request, but it is less than a page.
    assert.are.equal(0, ctx.prefix_len(reqs[2]))
    assert.are.equal(0, ctx.prefix_len(reqs[5]))
    local before = engine.tree:stats()
    for _, r in ipairs(reqs) do ctx.prefix_len(r) end
    assert.are.same(before, engine.tree:stats()) -- peeking changes nothing
  end)

  it("orders lpm and dfs_weight by what is cached", function()
    local reqs = submit_all()
    local ctx = engine.scheduler:context()
    local function order(p)
      local copy = {}
      for i, r in ipairs(engine.scheduler.waiting) do copy[i] = r end
      local out = ids_of(p.order(copy, ctx))
      for i, id in ipairs(out) do out[i] = id - reqs[1].id + 1 end
      return out
    end
    assert.are.same({ 1, 4, 3, 2, 5 }, order(lpm))
    assert.are.same({ 1, 4, 3, 2, 5 }, order(dfs_weight))
    assert.are.same({ 1, 2, 3, 4, 5 }, order(fcfs))
    engine:run()
    for _, r in ipairs(reqs) do assert.are.equal("finished", r.state) end
  end)

  it("sees no prefix when the cache is off", function()
    engine = yaie.engine { model = model, page_size = 4, kv_pages = 256, check = true, threads = 1,
      radix_cache = false }
    engine:generate_batch({ base1, base2 }, { max_tokens = 4, temperature = 0 })
    local reqs = submit_all()
    local ctx = engine.scheduler:context()
    for _, r in ipairs(reqs) do assert.are.equal(0, ctx.prefix_len(r)) end
    local copy = {}
    for i, r in ipairs(engine.scheduler.waiting) do copy[i] = r end
    assert.are.same(ids_of(reqs), ids_of(lpm.order(copy, ctx)))
  end)
end)

-- ---------------------------------------------------------------------------------------------
-- The engine's side.

local prompts = {
  "Once upon a time", "The cat", "Tom had a dog", "One day, a bird", "Sue and Ben", "Lily was sad",
  "The sun was hot", "A big fish", "Max and Mia", "The little car",
}

local references = {}
local function reference(prompt, n)
  local key = table.concat(prompt, ",") .. "|" .. n
  if not references[key] then
    local _, st = model:generate(prompt, { max_tokens = n, temperature = 0 })
    references[key] = st.tokens
  end
  return references[key]
end

-- An engine that records the order requests start in and how often each finishes, with the
-- policy errors it reports.
local function new_engine(opts)
  local o = { model = model, page_size = 4, kv_pages = 256, check = true, threads = 1, max_running = 2 }
  for k, v in pairs(opts or {}) do o[k] = v end
  local errors = {}
  o.on_policy_error = function(msg) errors[#errors + 1] = msg end
  local engine = yaie.engine(o)
  local log = { started = {}, finished = {}, errors = errors }
  engine.on_finish = function(r) log.finished[r.id] = (log.finished[r.id] or 0) + 1 end
  return engine, log
end

local function submit(engine, log, list, n, extra)
  local reqs = {}
  for i, p in ipairs(list) do
    local o = { max_tokens = n, on_token = function(_, _, r)
      if #r.tokens == 1 then log.started[#log.started + 1] = r.id end
    end }
    for k, v in pairs(extra and extra(i) or {}) do o[k] = v end
    reqs[i] = engine:submit(p, o)
  end
  return reqs
end

-- Every request finished exactly once, with the tokens it gets alone.
local function assert_all_done(engine, log, reqs, n)
  for _, r in ipairs(reqs) do
    assert.are.equal(1, log.finished[r.id], "request " .. r.id)
    assert.are.equal("finished", r.state)
    assert.are.same(reference(r.prompt_tokens, n), r.tokens, "request " .. r.id)
  end
  assert.are.equal(#reqs, #log.started)
  local st = engine.pool:stats()
  assert.are.equal(st.evictable, st.used)
end

local function reversed(waiting)
  local out = {}
  for i, r in ipairs(fcfs.order(waiting)) do out[#waiting - i + 1] = r end
  return out
end

describe("engine:set_policy", function()
  it("takes a name, a table or a file at any time, from the next step on", function()
    local dir = H.tmpdir()
    local file = dir .. "/newest_first.lua"
    H.write(file, [[
local fcfs = require "yaie.policies.fcfs"
return { name = "newest_first", order = function(waiting)
  local out = {}
  for i, r in ipairs(fcfs.order(waiting)) do out[#waiting - i + 1] = r end
  return out
end }
]])
    -- One request at a time, so that each admission shows the policy of its step.
    local engine, log = new_engine { policy = "fcfs", max_running = 1 }
    local reqs = submit(engine, log, prompts, 6)
    local base = reqs[1].id - 1
    local function last_started() return log.started[#log.started] - base end
    -- Steps until the running request finishes; the next step admits the next one.
    local function until_idle()
      repeat engine:step() until #engine.scheduler.running == 0
    end
    engine:step()
    assert.are.equal(1, last_started())
    local calls = 0
    engine:set_policy { name = "spy", order = function(waiting, ctx)
      calls = calls + 1
      assert.are.equal(engine.scheduler.step_no, ctx.step)
      return reversed(waiting)
    end }
    assert.are.equal("spy", engine:stats().policy)
    until_idle()
    assert.are.equal(0, calls) -- asked only when a request can be admitted
    engine:step()
    assert.are.equal(1, calls)
    assert.are.equal(10, last_started())
    until_idle()
    engine:set_policy(file)
    assert.are.equal("newest_first", engine:stats().policy)
    engine:step()
    assert.are.equal(9, last_started())
    until_idle()
    engine:set_policy "priority"
    reqs[4].opts.priority = 3
    engine:step()
    assert.are.equal(4, last_started())
    engine:set_policy(lpm.with { aging = 100 }) -- while a request runs
    engine:set_policy "fcfs"
    engine:run()
    local order = {}
    for i, id in ipairs(log.started) do order[i] = id - base end
    assert.are.same({ 1, 10, 9, 4, 2, 3, 5, 6, 7, 8 }, order)
    assert_all_done(engine, log, reqs, 6)
    os.execute("rm -rf " .. H.quote(dir))
  end)

  it("refuses what is not a policy and keeps the current one", function()
    local engine = new_engine { policy = "lof" }
    local function refused(pattern, p)
      local ok, err = pcall(function() engine:set_policy(p) end)
      assert.is_false(ok)
      assert.matches(pattern, err)
      assert.matches("policy_spec.lua:%d+:", err) -- reported at the caller
      assert.are.equal("lof", engine:stats().policy)
    end
    refused("unknown policy 'nope' %(one of fcfs, lpm, dfs_weight, lof, random, priority, or a %.lua file%)",
      "nope")
    refused("unknown policy 'init'", "init")
    refused("a policy needs an order%(waiting, ctx%) function", { name = "empty" })
    refused("give a policy name, a file or a table", 42)
    refused("set_policy: cannot open /nonexistent/p%.lua", "/nonexistent/p.lua")
  end)
end)

describe("a broken policy", function()
  local broken = {
    { "raises an error", "stack traceback", function() error("policy exploded") end, "policy exploded" },
    { "returns a request twice", "twice", function(w) w[2] = w[1] return w end },
    { "leaves one out", " requests for ", function(w) table.remove(w) return w end },
    { "leaves a hole", "no request at 1", function(w) w[1] = nil return w end }, -- #w is unchanged
    { "invents one", "not waiting", function(w) w[1] = { id = 1000, all = {}, tokens = {} } return w end },
    { "returns a string", "returned string", function() return "fcfs" end },
    { "returns nothing", "returned nil", function() end },
  }
  for _, case in ipairs(broken) do
    it(case[1] .. ": is reported and replaced by fcfs for the step", function()
      local engine, log = new_engine { max_running = 1 }
      engine:set_policy { name = "broken", order = case[3] }
      local reqs = submit(engine, log, { unpack(prompts, 1, 6) }, 5)
      engine:run()
      assert.is_true(#log.errors >= 5, #log.errors .. " reports")
      for _, msg in ipairs(log.errors) do
        assert.matches("^yaie: policy 'broken' failed, using fcfs for this step: ", msg)
        assert.is_truthy(msg:find(case[2], 1, true), msg)
        if case[4] then
          assert.is_truthy(msg:find(case[4], 1, true))
          assert.matches("policy_spec%.lua:%d+", msg) -- the traceback names the policy's line
        end
      end
      assert.are.equal(#log.errors, engine:stats().policy_errors)
      local order = {}
      for i, id in ipairs(log.started) do order[i] = id - reqs[1].id + 1 end
      assert.are.same({ 1, 2, 3, 4, 5, 6 }, order)
      assert_all_done(engine, log, reqs, 5)
    end)
  end

  it("that fails now and then loses and repeats nothing", function()
    local engine, log = new_engine { max_running = 3 }
    local calls = 0
    engine:set_policy { name = "flaky", order = function(w, ctx)
      calls = calls + 1
      if calls % 3 == 0 then error("every third call") end
      if calls % 3 == 1 then w[#w + 1] = w[1] end
      return reversed(w)
    end }
    local reqs = submit(engine, log, prompts, 8)
    engine:run()
    assert.is_true(#log.errors > 0)
    assert_all_done(engine, log, reqs, 8)
  end)
end)

describe("a policy's chunk_size(ctx)", function()
  local long = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park."

  it("sets the prefill chunk of the step", function()
    local engine, log = new_engine { chunk_size = 8 }
    local busiest = 0
    engine:set_policy { name = "small_chunks", order = fcfs.order, chunk_size = function(ctx)
      busiest = math.max(busiest, ctx.running)
      return 5.5
    end }
    local reqs = submit(engine, log, { long }, 4)
    local n = #reqs[1].prompt_tokens
    local steps = {}
    while engine:step() do steps[#steps + 1] = engine:stats().last_step_tokens end
    assert.are.equal(1, busiest)
    for i = 1, math.floor(n / 5) do assert.are.equal(5, steps[i]) end
    assert.are.equal(math.ceil(n / 5) + 3, #steps)
    assert_all_done(engine, log, reqs, 4)
  end)

  for _, case in ipairs {
    { "a string", function() return "big" end, "chunk_size returned big" },
    { "zero", function() return 0 end, "chunk_size returned 0" },
    { "NaN", function() return 0 / 0 end, "chunk_size returned nan" },
    { "nothing", function() end, "chunk_size returned nil" },
    { "an error", function() error("no chunk today") end, "no chunk today" },
  } do
    it("returning " .. case[1] .. " is reported, and the engine's chunk_size used", function()
      local engine, log = new_engine { chunk_size = 8 }
      engine:set_policy { name = "bad_chunks", order = fcfs.order, chunk_size = case[2] }
      local reqs = submit(engine, log, { long }, 4)
      engine:step()
      assert.are.equal(8, engine:stats().last_step_tokens)
      engine:run()
      assert.is_true(#log.errors > 0)
      assert.is_truthy(log.errors[1]:find(case[3], 1, true), log.errors[1])
      assert_all_done(engine, log, reqs, 4)
    end)
  end
end)
