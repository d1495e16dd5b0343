-- The serving engine (issue 4): continuous batching, chunked prefill, prefix reuse through the
-- radix cache, preemption. Shared computation must give exactly the tokens of separate
-- computation (the CPU matmul is batch-invariant), the pool and the tree stay consistent after
-- every step (check = true), and no page outlives the requests that used it.
local H = require "helper"
local yaie = require "yaie"
local C = require "yaie.c"
local ffi = C.ffi

local quick = os.getenv("YAIE_SPEC_QUICK") ~= nil -- sanitizer builds: fewer and smaller runs
local N = quick and 16 or 64

local load_model = require("yaie.model").load

-- ---------------------------------------------------------------------------------------------
-- Models and workloads.

-- Random llama2.c checkpoints: GQA when kv_heads < heads, a separate classifier, weights large
-- enough that greedy outputs vary from prompt to prompt.
local write_random_llama2c = require "yaie.random_model"

local dir
local models = {}

local function random_model(name, shape)
  local path = dir .. "/" .. name .. ".bin"
  local spec = { scale = 0.4, separate_classifier = true }
  for k, v in pairs(shape) do spec[k] = v end
  write_random_llama2c(path, spec)
  return load_model { model = path, tokenizer = false, threads = 1 }
end

local workload = require "workload"
local random_workload, references, run_work = workload.random, workload.references, workload.run

-- The same shape from story text, so that stories260K continues it naturally.
local story_roots = {
  "Once upon a time, there was a little girl named Lily.",
  "Tom had a big red ball. He liked to play with it in the park every day.",
  "One day, a bird",
  "Sue and Ben went to the beach with their mom and dad. The sun was hot and the sand was soft.",
}
local story_mids = { " She was happy.", " They saw a cat.", " It was a sunny day." }
local story_tails = { "", " Lily", " The dog ran", " He said", " One day, she found a box", " Mom",
  " They played and played until it was dark", " The end" }

local function story_workload(model, n, extra)
  local work = {}
  for i = 1, n do
    local text = story_roots[i % 4 + 1] .. (i % 2 == 0 and story_mids[i % 3 + 1] or "")
      .. story_tails[i % #story_tails + 1]
    work[i] = { ids = model:tokenize(text), max_tokens = (extra or 0) + 4 + i * 13 % 29 }
  end
  return work
end

-- ---------------------------------------------------------------------------------------------
-- Running and checking.

-- One thread: these models are so small that a step is mostly thread wake-ups otherwise (one
-- config below takes two threads: the tokens must not depend on the thread count either).
local function new_engine(model, opts)
  local o = { model = model, check = true, kv_pages = 512, page_size = 16, threads = 1 }
  for k, v in pairs(opts or {}) do o[k] = v end
  return yaie.engine(o)
end

-- Every page is back: only the cache holds any, and evicting the cache frees them all.
local function assert_drained(engine)
  local st = engine.pool:stats()
  assert.are.equal(0, #engine.scheduler.running)
  assert.are.equal(0, #engine.scheduler.waiting)
  assert.are.equal(st.evictable, st.used, "pages held outside the cache")
  engine.tree:evict(2 ^ 30)
  engine.pool:check()
  engine.tree:check()
  st = engine.pool:stats()
  assert.are.equal(st.total, st.free)
end

local function assert_same_tokens(expected, reqs, label)
  for i, r in ipairs(reqs) do
    assert.are.equal("finished", r.state, label .. ": request " .. i)
    assert.are.same(expected[i], r.tokens, label .. ": request " .. i)
  end
end

local function describe_config(c)
  local parts = {}
  local keys = { "page_size", "chunk_size", "radix_cache", "kv_pages", "max_running", "policy", "threads" }
  for _, k in ipairs(keys) do
    if c[k] ~= nil then parts[#parts + 1] = k .. "=" .. tostring(c[k]) end
  end
  return table.concat(parts, " ")
end

setup(function()
  dir = H.tmpdir()
  models.stories = load_model { model = H.stories .. "/stories260K.gguf", threads = 1 }
  models.gqa = random_model("gqa", { dim = 128, hidden = 320, layers = 4, heads = 8, kv_heads = 2,
    vocab = 512, ctx = 512, seed = 7 })
  models.small = random_model("small", { dim = 64, hidden = 160, layers = 2, heads = 4, kv_heads = 1,
    vocab = 512, ctx = 512, seed = 99 })
end)

teardown(function() os.execute("rm -rf " .. H.quote(dir)) end)

-- ---------------------------------------------------------------------------------------------

describe("shared computation", function()
  local cases = {
    { name = "stories260K", model = "stories", work = function(m) return story_workload(m, N) end },
    { name = "a random GQA model", model = "gqa", work = function() return random_workload(512, N, 1) end },
    { name = "a random 2-layer MQA model", model = "small",
      work = function() return random_workload(512, N, 2) end },
  }
  local chunks = { 1, 7, 64, math.huge }
  local policies = { "lpm", "fcfs", "dfs_weight", "random", "lof", "priority" }

  for ci, case in ipairs(cases) do
    it("gives each request the tokens it gets alone, on " .. case.name, function()
      local model = models[case.model]
      local work = case.work(model)
      local expected = references(model, work)
      local k = 0
      for pi, ps in ipairs { 1, 16 } do
        for chi, chunk in ipairs(chunks) do
          for cai, cache in ipairs { true, false } do
            k = k + 1
            -- The full cross product on the first model; the others take half of it, each a
            -- different half with every page size, chunk size and cache setting in it.
            if ci == 1 or (pi + chi + cai + ci) % 2 == 0 then
              local cfg = { page_size = ps, chunk_size = chunk, radix_cache = cache,
                kv_pages = ps == 1 and 8192 or 512, max_running = (k % 3 == 0) and 12 or nil,
                policy = policies[k % #policies + 1],
                threads = (ci == 1 and k == 7 and not quick) and 2 or 1 }
              local engine = new_engine(model, cfg)
              local reqs = run_work(engine, work)
              assert_same_tokens(expected, reqs, describe_config(cfg))
              assert.are.equal(0, engine:stats().preemptions, describe_config(cfg))
              if cache then
                assert.is_true(engine:stats().cached_tokens > 0, describe_config(cfg))
              else
                assert.are.equal(0, engine:stats().cached_tokens)
              end
              assert_drained(engine)
            end
          end
        end
      end
    end)
  end

  it("gives the same tokens when a small pool preempts and recomputes requests", function()
    -- Longer outputs than the optimistic reserve expects, so that running requests outgrow it.
    for _, case in ipairs { { "gqa", 1 }, { "stories" } } do
      local model = models[case[1]]
      local work = case[1] == "stories" and story_workload(model, N, 40) or random_workload(512, N, 3, 40)
      local expected = references(model, work)
      -- Pools only a little larger than the longest request, which must fit alone.
      local longest = 0
      for _, w in ipairs(work) do longest = math.max(longest, #w.ids + w.max_tokens) end
      local small16, small1 = math.ceil(longest / 16) + 2, longest + 24
      for _, cfg in ipairs {
        { page_size = 16, kv_pages = small16, radix_cache = true, chunk_size = 7 },
        { page_size = 16, kv_pages = small16, radix_cache = false },
        { page_size = 1, kv_pages = small1, radix_cache = true, chunk_size = 64 },
        { page_size = 1, kv_pages = small1, radix_cache = false, chunk_size = 1, policy = "fcfs" },
      } do
        local engine = new_engine(model, cfg)
        local reqs = run_work(engine, work)
        local label = case[1] .. " " .. describe_config(cfg)
        assert_same_tokens(expected, reqs, label)
        assert.is_true(engine:stats().preemptions > 0, label)
        assert_drained(engine)
      end
    end
  end)
end)

-- ---------------------------------------------------------------------------------------------

describe("engine:submit", function()
  local stories
  local function greedy(prompt, n, opts)
    local o = { max_tokens = n, temperature = 0 }
    for k, v in pairs(opts or {}) do o[k] = v end
    local text, stats = models.stories:generate(prompt, o)
    return stats.tokens, text
  end
  before_each(function() stories = new_engine(models.stories) end)

  it("takes text or token ids, stops at max_tokens and fills in meta", function()
    local ids = models.stories:tokenize("Tom had a dog")
    local a = stories:submit("Once upon a time", { max_tokens = 20 })
    local b = stories:submit(ids, { max_tokens = 7 })
    assert.are.equal("waiting", a.state)
    stories:run()
    local tokens, text = greedy("Once upon a time", 20)
    assert.are.same(tokens, a.tokens)
    assert.are.equal(text, a.text)
    assert.are.same(greedy(ids, 7), b.tokens)
    for _, r in ipairs { a, b } do
      assert.are.equal("finished", r.state)
      assert.are.equal("length", r.meta.finish_reason)
      assert.are.equal(#r.tokens, r.meta.completion_tokens)
      assert.are.equal(0, r.meta.cached_tokens)
      assert.is_true(r.meta.ttft > 0)
      assert.is_true(r.meta.itl > 0)
    end
    assert.are.equal(5, a.meta.prompt_tokens)
    assert.are.equal(#ids, b.meta.prompt_tokens)
    assert_drained(stories)
  end)

  it("reuses the cached prefix of a finished request for a second wave", function()
    local base = "Once upon a time, there was a little girl named Lily. She liked to play."
    local first = stories:submit(base, { max_tokens = 5 })
    stories:run()
    assert.are.equal(0, first.meta.cached_tokens)
    assert.are.equal(0, stories:stats().hit_rate)
    local second = {}
    for i, tail in ipairs { " Her mom", " One day", " The sun" } do
      second[i] = stories:submit(base .. tail, { max_tokens = 12 })
    end
    stories:run()
    for _, r in ipairs(second) do
      -- Whole pages of the shared prompt, and never the whole prompt: its last token is computed.
      assert.is_true(r.meta.cached_tokens >= 16, "cached " .. r.meta.cached_tokens)
      assert.are.equal(0, r.meta.cached_tokens % 16)
      assert.is_true(r.meta.cached_tokens < r.meta.prompt_tokens)
      assert.are.same(greedy(r.prompt_tokens, 12), r.tokens)
    end
    local st = stories:stats()
    assert.is_true(st.hit_rate > 0 and st.hit_rate < 1)
    assert.are.equal(st.cached_tokens / st.prompt_tokens, st.hit_rate)
    assert_drained(stories)
  end)

  it("samples with a seed the same way alone, in a batch and after preemption", function()
    local prompts = { "Once upon a time", "The cat", "Tom had a dog", "One day, a bird", "Sue and Ben" }
    local function opts(i)
      return { max_tokens = 50 + i * 7 % 30, temperature = 1, top_p = 0.9, seed = 100 + i,
        repetition_penalty = 1.1 }
    end
    local alone = {}
    for i = 1, 8 do
      local r = stories:submit(prompts[i % 5 + 1], opts(i))
      stories:run()
      alone[i] = r
    end
    -- Among greedy requests, in an engine with room for all.
    local crowd = {}
    for i = 1, 8 do
      crowd[i] = stories:submit(prompts[i % 5 + 1], opts(i))
      stories:submit(prompts[(i + 2) % 5 + 1], { max_tokens = 10 + i })
    end
    local other_seed = stories:submit(prompts[2],
      { max_tokens = 50, temperature = 1, top_p = 0.9, seed = 99 })
    stories:run()
    -- In a pool so small that requests are preempted and recomputed.
    local small = new_engine(models.stories, { kv_pages = 9 })
    local squeezed = {}
    for i = 1, 8 do squeezed[i] = small:submit(prompts[i % 5 + 1], opts(i)) end
    small:run()
    assert.is_true(small:stats().preemptions > 0)
    for i = 1, 8 do
      assert.are.same(alone[i].tokens, crowd[i].tokens, "request " .. i)
      assert.are.same(alone[i].tokens, squeezed[i].tokens, "request " .. i)
      assert.are.equal(alone[i].text, squeezed[i].text)
    end
    assert.are_not.same(alone[1].tokens, other_seed.tokens)
    assert.are_not.same(greedy(prompts[2], 57), alone[1].tokens)
    assert_drained(stories)
    assert_drained(small)
  end)

  it("ends before a stop string split across tokens and never streams any of it", function()
    -- The greedy text starts ", there was a little girl named Lily." where "girl" is three
    -- tokens (g, ir, l): "rl nam" starts inside one token and ends inside another.
    local _, full = greedy("Once upon a time", 30)
    assert.are.equal(", there was a little girl named", full:sub(1, 31))
    local pieces, ids = {}, {}
    local req = stories:submit("Once upon a time", { max_tokens = 30, stop = "rl nam",
      on_token = function(piece, id, r)
        pieces[#pieces + 1] = piece
        if id then ids[#ids + 1] = id end
        assert.is_nil(piece:find("rl nam", 1, true))
      end })
    local others = {}
    for i = 1, 4 do others[i] = stories:submit("Once upon a time", { max_tokens = 12 + i }) end
    stories:run()
    assert.are.equal(", there was a little gi", req.text)
    assert.are.equal(req.text, table.concat(pieces))
    assert.are.equal("stop", req.meta.finish_reason)
    assert.are.same(req.tokens, ids)
    local expected = greedy("Once upon a time", 30)
    for i = 1, #req.tokens do assert.are.equal(expected[i], req.tokens[i]) end
    assert.are.equal(395, req.tokens[#req.tokens]) -- " named" completes the stop string
    for i, r in ipairs(others) do assert.are.same(greedy("Once upon a time", 12 + i), r.tokens) end
    -- The first of several stop strings to appear ends the text; a stop string the text never
    -- holds changes nothing.
    local multi = stories:submit("Once upon a time", { max_tokens = 30, stop = { "zebra", "Lily." } })
    local never = stories:submit("Once upon a time", { max_tokens = 30, stop = { "zebra", "upon" } })
    -- Ending by length on "gi|r|l" while "rl" is held back: the held text still streams.
    local held = {}
    local cut = stories:submit("Once upon a time", { max_tokens = 8, stop = "rl nam",
      on_token = function(piece) held[#held + 1] = piece end })
    stories:run()
    assert.are.equal(", there was a little girl named ", multi.text)
    assert.are.equal(full, never.text) -- a stop string in the prompt does not count
    assert.are.equal("length", never.meta.finish_reason)
    assert.are.equal(", there was a little girl", cut.text)
    assert.are.equal(cut.text, table.concat(held))
    assert.are.equal("length", cut.meta.finish_reason)
    assert_drained(stories)
  end)

  it("stops at stop_token_ids and at the end of a story", function()
    local expected = greedy("Once upon a time", 30)
    local stop_id = expected[5]
    local k = 1
    while expected[k] ~= stop_id do k = k + 1 end
    local req = stories:submit("Once upon a time", { max_tokens = 30, stop_token_ids = { stop_id, 500 } })
    -- stories260K ends a story with BOS, as llama2.c's models do; generate stops there too.
    local story = stories:submit("The cat", { max_tokens = 400 })
    local through = stories:submit("The cat", { max_tokens = 400, ignore_eos = true })
    stories:run()
    assert.are.same({ unpack(expected, 1, k - 1) }, req.tokens)
    assert.are.equal("stop", req.meta.finish_reason)
    local story_ref = greedy("The cat", 400)
    assert.are.same(story_ref, story.tokens)
    assert.are.equal("stop", story.meta.finish_reason)
    assert.is_true(#story.tokens < 400)
    assert.are.equal(400, #through.tokens)
    assert.are.equal(1, through.tokens[#story.tokens + 1])
    assert.are.equal("length", through.meta.finish_reason)
    assert_drained(stories)
  end)

  it("runs a batch with generate_batch and returns the requests in order", function()
    local prompts = { "Once upon a time", "The cat", models.stories:tokenize("Tom had a dog"), "One day" }
    local reqs = stories:generate_batch(prompts, { max_tokens = 16 })
    assert.are.equal(#prompts, #reqs)
    for i, r in ipairs(reqs) do
      assert.are.equal("finished", r.state)
      assert.are.same(greedy(prompts[i], 16), r.tokens)
    end
    assert_drained(stories)
  end)
end)

describe("engine:cancel", function()
  local ref
  setup(function()
    ref = function(ids, n)
      local _, st = models.gqa:generate(ids, { max_tokens = n, temperature = 0 })
      return st.tokens
    end
  end)

  local function prompt(seed, len)
    local rand, t = workload.lcg(seed), {}
    for i = 1, len do t[i] = rand(512) end
    return t
  end

  it("drops a waiting request and leaves the others as they were", function()
    local engine = new_engine(models.gqa, { max_running = 1 })
    local a = engine:submit(prompt(1, 20), { max_tokens = 10 })
    local b = engine:submit(prompt(2, 20), { max_tokens = 10 })
    local c = engine:submit(prompt(3, 20), { max_tokens = 10 })
    engine:step()
    assert.are.equal("running", a.state)
    assert.are.equal("waiting", b.state)
    engine:cancel(b)
    assert.are.equal("finished", b.state)
    assert.are.equal("cancelled", b.meta.finish_reason)
    assert.are.equal(1, engine:stats().waiting)
    engine:run()
    assert.are.same({}, b.tokens)
    assert.are.equal(0, b.meta.completion_tokens)
    assert.are.same(ref(prompt(1, 20), 10), a.tokens)
    assert.are.same(ref(prompt(3, 20), 10), c.tokens)
    assert_drained(engine)
  end)

  it("frees a running request's pages at once, in prefill or in decode", function()
    -- Chunks of 7: after 2 steps the prompts of 30 are half computed; after 8, 4 tokens are out.
    for _, case in ipairs { { cache = false, steps = 2 }, { cache = true, steps = 2 },
      { cache = false, steps = 8 }, { cache = true, steps = 8 } } do
      local engine = new_engine(models.gqa, { radix_cache = case.cache, page_size = 4, chunk_size = 7 })
      local reqs = {}
      for i = 1, 3 do reqs[i] = engine:submit(prompt(i, 30), { max_tokens = 20 }) end
      for _ = 1, case.steps do engine:step() end
      local b = reqs[2]
      assert.are.equal("running", b.state)
      assert.are.equal(case.steps == 2 and 0 or 4, #b.tokens)
      local before = engine.pool:stats()
      local held = b.n_pages
      engine:cancel(b)
      local after = engine.pool:stats()
      assert.are.equal(0, b.n_pages)
      if case.cache then
        -- Its whole pages of computed tokens stay as evictable cache; the rest are free.
        assert.are.equal(before.used - before.evictable - held, after.used - after.evictable)
      else
        assert.are.equal(before.used - held, after.used)
      end
      engine:cancel(b) -- a finished request: nothing happens
      assert.are.equal("cancelled", b.meta.finish_reason)
      engine:run()
      assert.are.same(ref(prompt(1, 30), 20), reqs[1].tokens)
      assert.are.same(ref(prompt(3, 30), 20), reqs[3].tokens)
      assert.are.same({ unpack(ref(prompt(2, 30), 20), 1, #b.tokens) }, b.tokens)
      assert_drained(engine)
    end
  end)

  it("finishes a request once when its own stream or another's cancels it", function()
    local engine = new_engine(models.gqa)
    local finished = {}
    engine.on_finish = function(r) finished[r] = (finished[r] or 0) + 1 end
    local victim
    local self_cancel = engine:submit(prompt(1, 10), { max_tokens = 8, on_token = function(_, _, r)
      if #r.tokens == 8 then engine:cancel(r) end -- the token that also ends it by length
    end })
    victim = engine:submit(prompt(2, 10), { max_tokens = 30 })
    local canceller = engine:submit(prompt(3, 10), { max_tokens = 12, on_token = function(_, _, r)
      if #r.tokens == 3 then engine:cancel(victim) end
    end })
    engine:run()
    for _, r in ipairs { self_cancel, victim, canceller } do assert.are.equal(1, finished[r]) end
    assert.are.equal("cancelled", self_cancel.meta.finish_reason)
    assert.are.equal("cancelled", victim.meta.finish_reason)
    assert.are.same(ref(prompt(3, 10), 12), canceller.tokens)
    assert_drained(engine)
  end)
end)

describe("engine:stats", function()
  it("reports the queues, the pool and the last step", function()
    local engine = new_engine(models.gqa,
      { max_running = 2, page_size = 4, kv_pages = 64, chunk_size = math.huge })
    local lens = { 13, 21, 8 }
    local reqs = {}
    for i, n in ipairs(lens) do
      local ids = {}
      for j = 1, n do ids[j] = (i * 31 + j * 7) % 512 end
      reqs[i] = engine:submit(ids, { max_tokens = 6 })
    end
    local st = engine:stats()
    assert.are.equal(0, st.running)
    assert.are.equal(3, st.waiting)
    assert.are.equal(64, st.pages_total)
    assert.are.equal(64, st.pages_free)
    engine:step()
    st = engine:stats()
    assert.are.equal(2, st.running)
    assert.are.equal(1, st.waiting)
    assert.are.equal(2, st.last_step_seqs)
    assert.are.equal(13 + 21, st.last_step_tokens)
    assert.are.equal(math.ceil(14 / 4) + math.ceil(22 / 4), st.pages_used) -- prompt + 1 token
    assert.are.equal(st.pages_total, st.pages_used + st.pages_free)
    assert.are.equal(0, st.pages_evictable)
    assert.is_true(st.last_step_c_ms > 0)
    assert.is_true(st.last_step_lua_ms >= 0)
    assert.are.equal("lpm", st.policy)
    engine:step()
    assert.are.equal(2, engine:stats().last_step_seqs)
    assert.are.equal(2, engine:stats().last_step_tokens) -- two decode tokens
    engine:run()
    st = engine:stats()
    assert.are.equal(0, st.running)
    assert.are.equal(0, st.waiting)
    assert.are.equal(st.pages_used, st.pages_evictable)
    assert.are.equal(13 + 21 + 8, st.prompt_tokens)
    assert.is_true(st.hit_rate >= 0 and st.hit_rate <= 1)
    assert.is_false(engine:step())
    assert.are.equal(0, engine:stats().last_step_seqs)
  end)
end)

describe("bad input", function()
  local function ids(n, v)
    local t = {}
    for i = 1, n do t[i] = v or (i * 17) % 512 end
    return t
  end

  it("is refused with a clear error and leaves the other requests alone", function()
    local engine = new_engine(models.gqa, { page_size = 16, kv_pages = 40 })
    local before = engine:submit(ids(12), { max_tokens = 9 })
    local function refused(pattern, prompt)
      local ok, err = pcall(function() engine:submit(prompt, { max_tokens = 4 }) end)
      assert.is_false(ok)
      assert.matches(pattern, err)
      assert.matches("engine_spec.lua:%d+: submit: ", err) -- reported at the caller
    end
    refused("prompt of 512 tokens does not fit the model's context of 512 tokens", ids(512))
    refused("token id 512 is outside the vocabulary of 512", { 1, 2, 512 })
    refused("token id %-1 is outside", { -1 })
    refused("token id 1.5 is outside", { 1.5 })
    refused("token id x is outside", { 1, "x" })
    refused("empty prompt", {})
    refused("give a prompt string or a list of token ids", 42)
    refused("the model has no tokenizer; give token ids", "Once upon a time")
    local after = engine:submit(ids(20), { max_tokens = 9 })
    assert.are.equal(2, engine:stats().waiting)
    engine:run()
    for _, r in ipairs { before, after } do
      local _, st = models.gqa:generate(r.prompt_tokens, { max_tokens = 9, temperature = 0 })
      assert.are.same(st.tokens, r.tokens)
    end
    assert_drained(engine)
  end)

  it("refuses a prompt the pool cannot hold, and caps the output at what it can", function()
    local engine = new_engine(models.gqa, { page_size = 16, kv_pages = 4 })
    local ok, err = pcall(engine.submit, engine, ids(64), { max_tokens = 4 })
    assert.is_false(ok)
    assert.matches("a prompt of 64 tokens needs 5 pages; the pool holds 4", err)
    -- Prompt and output together outgrow the pool: the output ends where the pool does.
    local long = engine:submit(ids(20), { max_tokens = 100 })
    local short = engine:submit(ids(10, 3), { max_tokens = 5 })
    engine:run()
    assert.are.equal(64 - 20, #long.tokens)
    assert.are.equal("length", long.meta.finish_reason)
    local _, st = models.gqa:generate(ids(20), { max_tokens = 44, temperature = 0 })
    assert.are.same(st.tokens, long.tokens)
    assert.are.equal(5, #short.tokens)
    assert_drained(engine)
  end)

  it("rejects bad engine options", function()
    local function refused(pattern, opts)
      local o = { model = models.gqa }
      for k, v in pairs(opts) do o[k] = v end
      local ok, err = pcall(yaie.engine, o)
      assert.is_false(ok)
      assert.matches(pattern, err)
    end
    refused("chunk_size must be a number >= 1", { chunk_size = 0 })
    refused("chunk_size must be a number >= 1", { chunk_size = "big" })
    refused("kv_memory: cannot read 'lots'", { kv_memory = "lots" })
    refused("device 'tpu' is not available", { device = "tpu" })
    refused("unknown policy 'nope'", { policy = "nope" })
  end)
end)
