-- Decode rounds (lua/yaie/rounds.lua, engine/runtime/round.c): N decode steps in one C call give
-- exactly the tokens and logprobs of N single steps (the CPU forward is batch-invariant and a
-- round draws from each sampler as single steps do), whatever ends a request mid-round: EOS, a
-- stop string, max_tokens, a cancel; with preemption between rounds, policy swaps, and a policy
-- that sizes its rounds; and the round's C calls refuse what they cannot do.
local H = require "helper"
local yaie = require "yaie"
local C = require "yaie.c"
local ffi, lib = C.ffi, C.lib

local quick = os.getenv("YAIE_SPEC_QUICK") ~= nil

local model
local prompts = {
  "Once upon a time, there was a little girl named Lily.",
  "Tom had a big red ball.",
  "One day, a bird",
  "Sue and Ben went to the beach with their mom and dad.",
  "The cat sat on the mat. It was",
  "Lily and her mom",
}

-- Requests of every kind: greedy, sampled with a seed, penalties (their rounds run on the host
-- sampler), stop strings, short and long max_tokens, logprobs everywhere.
local function submit_all(engine, n, extra)
  local reqs = {}
  for i = 1, n do
    local o = { max_tokens = 3 + (i * 17) % 61, seed = i, return_logprob = true,
      temperature = (i % 3 == 0) and 0.9 or 0, top_p = (i % 6 == 0) and 0.9 or nil,
      stop = (i % 4 == 1) and { "the", "." } or nil,
      frequency_penalty = (i % 5 == 2) and 0.5 or nil }
    for k, v in pairs(extra and extra(i) or {}) do o[k] = v end
    reqs[i] = engine:submit(prompts[i % #prompts + 1] .. string.rep(" and", i % 3), o)
  end
  return reqs
end

local function outcome(reqs)
  local out = {}
  for i, r in ipairs(reqs) do
    out[i] = { text = r.text, tokens = table.concat(r.tokens, ","), reason = r.meta.finish_reason,
      logprobs = table.concat(r.meta.logprobs or {}, ",") }
  end
  return out
end

local function engine_with(cfg)
  local opts = { model = model, page_size = 4, kv_pages = 1024, check = true, threads = 1 }
  for k, v in pairs(cfg) do opts[k] = v end
  return yaie.engine(opts)
end

-- Runs the same requests at each round size and asks for identical outcomes; returns the engines.
local function same_for_all_sizes(cfg, n, extra, drive)
  local first, engines = nil, {}
  for _, steps in ipairs { 1, 4, 16 } do
    cfg.decode_steps = steps
    local engine = engine_with(cfg)
    local reqs = submit_all(engine, n, extra)
    if drive then drive(engine, reqs) else engine:run() end
    local got = outcome(reqs)
    if first then
      for i = 1, n do assert.are.same(first[i], got[i], ("request %d, decode_steps %d"):format(i, steps)) end
    else
      first = got
    end
    local st = engine:stats()
    assert.are.equal(0, st.running + st.waiting)
    engines[steps] = engine
  end
  return engines, first
end

describe("decode rounds", function()
  setup(function()
    model = yaie.load { model = H.stories .. "/stories260K.gguf", threads = 1 }
  end)

  it("give the tokens and logprobs of single steps, stopping mid-round on EOS, stop strings and max_tokens", function()
    local engines, out = same_for_all_sizes({}, quick and 12 or 30)
    local reasons = {}
    for _, o in ipairs(out) do reasons[o.reason] = true end
    assert.is_true(reasons.stop and reasons.length, "the workload ends requests both ways")
    assert.are.equal(0, engines[1]:stats().rounds)
    local st = engines[16]:stats()
    assert.is_true(st.rounds > 0 and st.round_steps > st.rounds, "rounds of several steps ran")
    assert.is_true(st.steps < engines[1]:stats().steps, "fewer scheduler steps with rounds")
  end)

  it("end a request cancelled from its own on_token mid-round, and return its pages", function()
    local engines = same_for_all_sizes({}, 10, function(i)
      if i % 3 ~= 0 then return {} end
      return { on_token = function(_, _, req) if #req.tokens == 5 then req.engine:cancel(req) end end }
    end)
    for _, engine in pairs(engines) do
      -- Every page is free or the cache's: nothing held by a finished request.
      local st = engine:stats()
      assert.are.equal(st.pages_total, st.pages_free + st.pages_evictable)
    end
  end)

  it("give the same outcomes when a small pool preempts between rounds", function()
    local engines = same_for_all_sizes({ kv_pages = 40, max_running = 12 }, 12, function() return { max_tokens = 60 } end)
    assert.is_true(engines[16]:stats().preemptions > 0)
    assert.is_true(engines[16]:stats().rounds > 0)
  end)

  it("follow policy swaps between rounds and a policy's decode_steps(ctx)", function()
    local sizes = {}
    local sizing = { name = "sizing", order = require("yaie.policies.fcfs").order,
      decode_steps = function(ctx) sizes[#sizes + 1] = ctx.step % 5 + 1; return ctx.step % 5 + 1 end }
    local engines = same_for_all_sizes({}, 12, nil, function(engine)
      local k = 0
      while engine:stats().running + engine:stats().waiting > 0 do
        k = k + 1
        engine:set_policy(({ "lpm", sizing, "fcfs", "dfs_weight" })[k % 4 + 1])
        engine:step()
      end
    end)
    assert.is_true(#sizes > 0, "the policy's decode_steps was asked")
    assert.is_true(engines[1]:stats().rounds > 0, "a policy's decode_steps overrides the engine's")
  end)

  it("run constrained requests as single steps among rounds, with the same outcome", function()
    local constrain = require "yaie.constrain"
    local c = constrain.new(model.tokenizer, { regex = "( [a-z]+){2,6}\\.", vocab_size = model.config.vocab_size })
    same_for_all_sizes({}, 8, function(i) return i % 4 == 0 and { constraint = c, stop = nil } or {} end)
  end)

  it("report a policy's bad decode_steps and use the engine's", function()
    local errors = {}
    local engine = engine_with { decode_steps = 4, on_policy_error = function(m) errors[#errors + 1] = m end,
      policy = { name = "bad", order = require("yaie.policies.fcfs").order, decode_steps = function() return 0 end } }
    local reqs = submit_all(engine, 4)
    engine:run()
    for _, r in ipairs(reqs) do assert.are.equal("finished", r.state) end
    assert.is_true(#errors > 0)
    assert.matches("decode_steps must be an integer", errors[1])
    assert.is_true(engine:stats().rounds > 0)
  end)

  it("refuse unknown engine options and bad round sizes, naming them", function()
    local ok, err = pcall(engine_with, { decode_step = 4 })
    assert.is_false(ok)
    assert.matches("unknown option 'decode_step'", err)
    for _, bad in ipairs { 0, -1, 1.5, 1e9, "4" } do
      ok, err = pcall(engine_with, { decode_steps = bad })
      assert.is_false(ok)
      assert.matches("decode_steps must be an integer", err)
    end
  end)
end)

describe("yaie_round_begin / yaie_round_wait", function()
  local ctx, sampler, pages, tok, seq, batch
  setup(function()
    model = model or yaie.load { model = H.stories .. "/stories260K.gguf", threads = 1 }
    local params = ffi.new("yaie_context_params", { n_pages = 8, page_size = 4, max_batch_tokens = 16, n_threads = 1 })
    local out = ffi.new("yaie_context*[1]")
    C.check(lib.yaie_context_new(model.ptr, params, out))
    ctx = ffi.gc(out[0], lib.yaie_context_free)
    local sp = ffi.new("yaie_sampler*[1]")
    C.check(lib.yaie_sampler_new(ffi.new("yaie_sampler_params", { temperature = 0, top_p = 1, repetition_penalty = 1 }),
      model.config.vocab_size, sp))
    sampler = ffi.gc(sp[0], lib.yaie_sampler_free)
    pages = ffi.new("int32_t[4]", { 0, 1, 2, 3 })
    tok = ffi.new("int32_t[1]", { 1 })
    seq = ffi.new("yaie_seq[1]")
    seq[0].tokens, seq[0].n_tokens, seq[0].pos, seq[0].pages, seq[0].n_pages = tok, 1, 0, pages, 4
    batch = ffi.new("yaie_batch", { seq, 1 })
  end)

  local function status_message(st) return st, ffi.string(lib.yaie_last_error()) end

  it("runs a round and refuses a second begin, a forward or a sample step until it is waited for", function()
    local samplers = ffi.new("yaie_sampler*[1]", { sampler })
    local limits = ffi.new("int32_t[1]", { 8 })
    C.check(lib.yaie_round_begin(ctx, batch, 8, samplers, limits, nil, nil, 0))
    assert.are.equal(1, lib.yaie_round_pending(ctx))
    local st, msg = status_message(lib.yaie_round_begin(ctx, batch, 8, samplers, limits, nil, nil, 0))
    assert.are.equal(lib.YAIE_ERR_STATE, st)
    assert.matches("already in flight", msg)
    st, msg = status_message(lib.yaie_forward(ctx, batch))
    assert.are.equal(lib.YAIE_ERR_STATE, st)
    assert.matches("round is in flight", msg)
    local toks = ffi.new("int32_t[8]")
    C.check(lib.yaie_round_wait(ctx, toks, nil))
    assert.are.equal(0, lib.yaie_round_pending(ctx))
    for i = 0, 7 do assert.is_true(toks[i] >= 0 and toks[i] < model.config.vocab_size) end
    -- The same eight tokens as greedy generation from BOS.
    local _, stats = model:generate({ 1 }, { max_tokens = 8, temperature = 0, ignore_eos = true })
    for i = 0, 7 do assert.are.equal(stats.tokens[i + 1], toks[i]) end
    st, msg = status_message(lib.yaie_round_wait(ctx, toks, nil))
    assert.are.equal(lib.YAIE_ERR_STATE, st)
    assert.matches("no round in flight", msg)
  end)

  it("refuses limits outside [1, n_steps], pages that cannot hold the round, and prefill rows", function()
    local samplers = ffi.new("yaie_sampler*[1]", { sampler })
    local st, msg = status_message(lib.yaie_round_begin(ctx, batch, 4, samplers, ffi.new("int32_t[1]", { 5 }), nil, nil, 0))
    assert.are.equal(lib.YAIE_ERR_ARG, st)
    assert.matches("limit 5 is outside", msg)
    seq[0].n_pages = 1
    st, msg = status_message(lib.yaie_round_begin(ctx, batch, 8, samplers, ffi.new("int32_t[1]", { 8 }), nil, nil, 0))
    seq[0].n_pages = 4
    assert.are.equal(lib.YAIE_ERR_ARG, st)
    assert.matches("needs 8 positions", msg)
    seq[0].n_tokens = 2
    st, msg = status_message(lib.yaie_round_begin(ctx, batch, 2, samplers, ffi.new("int32_t[1]", { 2 }), nil, nil, 0))
    seq[0].n_tokens = 1
    assert.are.equal(lib.YAIE_ERR_ARG, st)
    assert.matches("not decoding", msg)
    assert.are.equal(0, lib.yaie_round_pending(ctx))
  end)

  it("ends a row at its stop ids, reporting the stop token and -1 after it", function()
    local _, stats = model:generate({ 1 }, { max_tokens = 6, temperature = 0, ignore_eos = true })
    local stop = stats.tokens[3]
    local samplers = ffi.new("yaie_sampler*[1]", { sampler })
    local toks = ffi.new("int32_t[6]")
    C.check(lib.yaie_round_begin(ctx, batch, 6, samplers, ffi.new("int32_t[1]", { 6 }), ffi.new("int32_t[2]", { 0, 1 }),
      ffi.new("int32_t[1]", { stop }), 0))
    C.check(lib.yaie_round_wait(ctx, toks, nil))
    local first_stop
    for i = 0, 5 do if toks[i] == stop then first_stop = first_stop or i end end
    assert.is_truthy(first_stop)
    for i = 0, first_stop do assert.are.equal(stats.tokens[i + 1], toks[i]) end
    for i = first_stop + 1, 5 do assert.are.equal(-1, toks[i]) end
  end)
end)
