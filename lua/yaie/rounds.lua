-- Decode rounds: when every running request is decoding, the scheduler runs N decode steps in
-- one C call (yaie_round_begin / yaie_round_wait) instead of N steps of its own. Sampling stays
-- where the logits are and feeds the next step there; each row stops at EOS, its stop token ids
-- or max_tokens, and the host sees the round's N x B tokens at once.
--
-- Pipelining: a round's tokens are committed (appended, stop strings checked, streamed, finished
-- requests cached) while the next round already runs on the device. The next round is built
-- from what the device already knows (which rows hit a stop token or their limit), so it needs
-- nothing from the commit; a request that the commit finishes (a stop string, a callback error,
-- a cancel from on_token) keeps its pages until that round is back, and its tokens from it are
-- dropped. When the batch must change (requests wait to be admitted, a row needs a mask), the
-- round's tokens are committed first and the scheduler plans a normal step.
--
-- Which rows take part: requests in the decode phase without a token mask (a regex/choice
-- constraint, or min_tokens not yet reached: the mask follows each token on the host, so they
-- run single steps and, while one runs, so does the batch). Rows with penalties run their round
-- step by step with the host sampler (round.c), still in one call.
local C = require "yaie.c"
local ffi, lib = C.ffi, C.lib

local Rounds = {}
Rounds.__index = Rounds

Rounds.MAX_STEPS = 256

function Rounds.check_steps(n, what)
  if type(n) ~= "number" or n ~= n or n < 1 or n > Rounds.MAX_STEPS or n % 1 ~= 0 then
    return nil, what .. " must be an integer in [1, " .. Rounds.MAX_STEPS .. "], not " .. tostring(n)
  end
  return n
end

function Rounds.new(sched, steps)
  return setmetatable({ sched = sched, steps = steps, pending = nil, bufs = {}, next_buf = 1,
    rounds = 0, steps_run = 0, host_s = 0, hidden_s = 0, c_s = 0 }, Rounds)
end

-- The round size for this step: the policy's decode_steps(ctx) when it has one, else the engine's.
function Rounds:size(ctx)
  local sched = self.sched
  local f = sched.policy.decode_steps
  if not f then return self.steps end
  local ok, n = xpcall(f, debug.traceback, ctx)
  local valid, why
  if ok then valid, why = Rounds.check_steps(n, "decode_steps") end
  if valid then return valid end
  sched:report_policy_error(ok and why or tostring(n))
  return self.steps
end

-- C arrays for one round of up to cap rows and n steps; two sets alternate, since a round's
-- tokens are still being committed while the next round runs.
function Rounds:buffers(cap, n)
  local idx = self.next_buf
  self.next_buf = 3 - idx
  local b = self.bufs[idx]
  if not b or b.cap < cap or b.steps < n then
    cap = math.max(cap, b and b.cap or 0)
    n = math.max(n, b and b.steps or 0)
    b = {
      cap = cap, steps = n,
      seqs = ffi.new("yaie_seq[?]", cap), inputs = ffi.new("int32_t[?]", cap),
      samplers = ffi.new("yaie_sampler*[?]", cap), limits = ffi.new("int32_t[?]", cap),
      stop_offsets = ffi.new("int32_t[?]", cap + 1),
      tokens = ffi.new("int32_t[?]", cap * n), logprobs = ffi.new("float[?]", cap * n),
      batch = ffi.new("yaie_batch"), stop_ids = nil, stop_cap = 0,
    }
    self.bufs[idx] = b
  end
  return b
end

local function stop_list(req)
  if not req.stop_list then
    local list = {}
    for id in pairs(req.stop_ids) do list[#list + 1] = id end
    table.sort(list)
    req.stop_list = list
  end
  return req.stop_list
end

-- A row may join a round: decoding, no mask, nothing to score.
local function can_join(req)
  return req:is_decoding() and not req.score_from and req:mask() == nil
end

-- Whether this step's plan is all decoding rows that may run as a round.
function Rounds:eligible(plan)
  if #plan == 0 then return false end
  for _, item in ipairs(plan) do
    if item[2] ~= 1 or not can_join(item[1]) then return false end
  end
  return true
end

-- Starts a round over rows {req, pos, token}: each row's limit is what it may still generate, cut
-- to n and to the pages the pool can give it now (at least the one token already planned).
function Rounds:begin(rows, n)
  local sched = self.sched
  local b = self:buffers(#rows, n)
  local n_stop, steps, want_lp = 0, 1, false
  for _, row in ipairs(rows) do n_stop = n_stop + #stop_list(row.req) end
  if b.stop_cap < n_stop then
    b.stop_ids, b.stop_cap = ffi.new("int32_t[?]", n_stop), n_stop
  end
  n_stop = 0
  for i, row in ipairs(rows) do
    local req, k = row.req, i - 1
    local limit = math.min(n, req.max_new - #req.tokens - (row.ahead or 0))
    if limit > 1 and not sched:ensure_pages(req, row.pos + limit) then limit = 1 end
    row.limit = limit
    steps = math.max(steps, limit)
    b.inputs[k] = row.token
    local s = b.seqs[k]
    s.tokens, s.n_tokens, s.pos, s.pages, s.n_pages, s.all_logits = b.inputs + k, 1, row.pos, req.pages, req.n_pages, 0
    b.samplers[k], b.limits[k] = req.sampler, limit
    b.stop_offsets[k] = n_stop
    for _, id in ipairs(stop_list(req)) do
      b.stop_ids[n_stop] = id
      n_stop = n_stop + 1
    end
    want_lp = want_lp or req.meta.logprobs ~= nil
    req.in_round = true
  end
  b.stop_offsets[#rows] = n_stop
  b.batch.seqs, b.batch.n_seqs = b.seqs, #rows
  sched:group_rows(rows, b.batch, steps)
  local tc = C.now()
  C.check(lib.yaie_round_begin(sched.engine.ctx, b.batch, steps, b.samplers, b.limits, b.stop_offsets,
    b.stop_ids, want_lp and 1 or 0))
  self.rounds, self.steps_run = self.rounds + 1, self.steps_run + steps
  -- Host time counts the Lua side only, as a single step's does (on the CPU the call is the round).
  self.c_s = self.c_s + (C.now() - tc)
  return { rows = rows, steps = steps, buf = b, want_lp = want_lp }
end

function Rounds:wait(round)
  local b = round.buf
  C.check(lib.yaie_round_wait(self.sched.engine.ctx, b.tokens, round.want_lp and b.logprobs or nil))
  local sched = self.sched
  for _, row in ipairs(round.rows) do
    local req = row.req
    req.in_round = nil
    if req.release_after_round then
      req.release_after_round = nil
      sched:release(req)
    end
  end
  return round
end

-- The rows that go on in the next round, from the device's view of this one (whose tokens are
-- not committed yet: earlier rounds' are): those that made all their limit's tokens without a
-- stop token and may still generate. nil when the batch must change first: requests wait for
-- admission, or a row's next token has no page.
function Rounds:continuation(round)
  local sched = self.sched
  if #sched.waiting > 0 and #sched.running < sched.max_running then return nil end
  local b, n, out = round.buf, #round.rows, {}
  for i, row in ipairs(round.rows) do
    local req, k = row.req, i - 1
    local last = b.tokens[(row.limit - 1) * n + k]
    if req.state == "running" and last >= 0 and not req.stop_ids[last] and #req.tokens + row.limit < req.max_new then
      local pos = row.pos + row.limit
      if not sched:ensure_pages(req, pos + 1) then return nil end
      out[#out + 1] = { req = req, pos = pos, token = last, ahead = row.limit }
    end
  end
  return #out > 0 and out or nil
end

-- Appends the round's tokens to their requests, each as a single step would have.
function Rounds:commit(round)
  local sched = self.sched
  local b, n = round.buf, #round.rows
  local computed = 0
  for i, row in ipairs(round.rows) do
    local req, k = row.req, i - 1
    for step = 0, row.limit - 1 do
      local id = b.tokens[step * n + k]
      if id < 0 or req.state ~= "running" then break end
      req.n_cached = req.n_cached + 1
      computed = computed + 1
      local ok, reason = pcall(req.append, req, id, round.want_lp and b.logprobs[step * n + k] or nil, true)
      if not ok then req.error, reason = tostring(reason), "error" end
      if reason and req.state == "running" then sched:finish(req, reason) end
    end
    -- A request the host stopped early keeps only the K/V of tokens it kept.
    if req.n_cached > #req.all then req.n_cached = #req.all end
  end
  sched.counters.computed_tokens = sched.counters.computed_tokens + computed
  return computed
end

-- One scheduler step spent on rounds: with a round's tokens pending, the next round starts (when
-- the batch can stay as it is) before they are committed. Returns the tokens committed and the
-- host seconds spent (not waiting for the device).
function Rounds:advance()
  local pending = self.pending
  self.pending = nil
  local t0, c0 = C.now(), self.c_s
  local rows = self:continuation(pending)
  local nxt = rows and self:begin(rows, self:size(self.sched:context()))
  local t1 = C.now()
  t0 = t0 + (self.c_s - c0)
  local tokens = self:commit(pending)
  local t2 = C.now()
  if nxt then
    self.hidden_s = self.hidden_s + (t2 - t1)
    self.pending = self:wait(nxt)
  end
  self.host_s = self.host_s + (t2 - t0)
  return tokens, t2 - t0
end

-- Starts a round for this step's plan when it may be one; its tokens are committed at the next
-- step, overlapping the round after it. Returns whether it did, and the host seconds spent.
function Rounds:start(plan, n)
  if n <= 1 or not self:eligible(plan) then return false, 0 end
  local t0, c0 = C.now(), self.c_s
  local rows = {}
  for i, item in ipairs(plan) do
    local req = item[1]
    rows[i] = { req = req, pos = req.n_cached, token = req.all[#req.all] }
  end
  local round = self:begin(rows, n)
  local host = C.now() - t0 - (self.c_s - c0)
  self.host_s = self.host_s + host
  self.pending = self:wait(round)
  return true, host
end

return Rounds
