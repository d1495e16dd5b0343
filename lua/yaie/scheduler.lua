-- The scheduler loop: each step it decides which requests run and with how many new tokens,
-- hands the plan to C in one forward call and one sampling call, and then appends tokens,
-- applies stop rules and finishes requests into the radix cache.
--
-- Queues: `waiting` (not admitted, or preempted) and `running` (holding pages). Every running
-- request advances each step: one token when decoding, a chunk when prefilling; new requests
-- are admitted, in the policy's order, while the step's token budget and the page budget allow.
--
-- Page budget (optimistic, as SGLang's): admitting a request reserves the pages of its prompt
-- plus `ratio` x its max_tokens, where the ratio starts at 0.7 and decays each step to 0.1, and
-- jumps back after a preemption. Most requests stop long before max_tokens, so reserving all of
-- it would leave most of the pool idle; when the guess is wrong, preemption recovers: the
-- running request with the fewest generated tokens loses its private pages and is recomputed
-- later (from the cache where its prefix is still there).
local C = require "yaie.c"
local policies = require "yaie.policies"
local fcfs = require "yaie.policies.fcfs"
local Rounds = require "yaie.rounds"
local Cascade = require "yaie.cascade"
local ffi, lib = C.ffi, C.lib

local Scheduler = {}
Scheduler.__index = Scheduler

local RATIO_INIT, RATIO_MIN, RATIO_DECAY = 0.7, 0.1, 0.001

function Scheduler.new(engine, opts)
  if opts.max_running ~= nil and (type(opts.max_running) ~= "number" or opts.max_running < 1) then
    error("engine: max_running must be a number >= 1, not " .. tostring(opts.max_running), 3)
  end
  local chunk = opts.chunk_size
  if chunk ~= nil and (type(chunk) ~= "number" or not (chunk >= 1)) then
    error("engine: chunk_size must be a number >= 1 (math.huge for no limit), not " .. tostring(chunk), 3)
  end
  local steps, why = Rounds.check_steps(opts.decode_steps or 1, "engine: decode_steps")
  if not steps then error(why, 3) end
  local self = setmetatable({
    engine = engine, pool = engine.pool, tree = engine.tree, page_size = engine.page_size,
    cache = opts.radix_cache ~= false, check = opts.check,
    max_batch_tokens = engine.max_batch_tokens, max_running = opts.max_running or 64,
    chunk_size = chunk and math.floor(chunk) or engine.max_batch_tokens,
    waiting = {}, running = {}, step_no = 0, ratio = RATIO_INIT, host_s = 0,
    policy = policies.resolve(opts.policy or "lpm"),
    counters = { prompt_tokens = 0, cached_tokens = 0, computed_tokens = 0, preemptions = 0, policy_errors = 0 },
    last = { seqs = 0, tokens = 0, c_s = 0, lua_s = 0 },
    rng_state = opts.seed or 1,
  }, Scheduler)
  local cap = self.max_batch_tokens + 1
  self.seqs = ffi.new("yaie_seq[?]", cap)
  self.samplers = ffi.new("yaie_sampler*[?]", cap)
  self.sampled = ffi.new("int32_t[?]", cap)
  self.sampled_logprobs = ffi.new("float[?]", cap)
  self.masks = ffi.new("const uint8_t*[?]", cap)
  self.score_row_idx = ffi.new("int32_t[?]", cap)
  self.score_tok = ffi.new("int32_t[?]", cap)
  self.score_out = ffi.new("float[?]", cap)
  self.token_buf = ffi.new("int32_t[?]", self.max_batch_tokens)
  self.batch = ffi.new("yaie_batch")
  self.batch.seqs = self.seqs
  self.rounds = Rounds.new(self, steps)
  self.cascade = Cascade.new(opts.cascade, self.page_size)
  return self
end

-- ---------------------------------------------------------------------------------------------
-- Policy: ordering the waiting queue, checked, with fcfs as the fallback for a broken policy.

-- What a policy sees: one table per scheduler, its counters refreshed each step (made once, so
-- that planning a step creates no closures, which LuaJIT cannot compile).
function Scheduler:context()
  local ctx = self.ctx
  if not ctx then
    local sched = self
    ctx = {
      tree = self.tree, pool = self.pool, engine = self.engine, page_size = self.page_size,
      prefix_len = function(r) return sched.cache and sched.tree:peek(r.all) or 0 end,
      random = function(n)
        sched.rng_state = (sched.rng_state * 1103515245 + 12345) % 2147483648
        return sched.rng_state % n + 1
      end,
    }
    self.ctx = ctx
  end
  ctx.step, ctx.running, ctx.waiting = self.step_no, #self.running, #self.waiting
  return ctx
end

-- Indexes 1..n, not ipairs: a list with a hole (w[1] = nil) keeps its length and would pass.
local function is_permutation(ordered, waiting)
  local n = #waiting
  if type(ordered) ~= "table" then return false, "it returned " .. type(ordered) end
  if #ordered ~= n or ordered[n + 1] ~= nil then
    return false, "it returned " .. #ordered .. " requests for " .. n
  end
  local member, seen = {}, {}
  for _, r in ipairs(waiting) do member[r] = true end
  for i = 1, n do
    local r = ordered[i]
    if r == nil then return false, "it returned a list with no request at " .. i end
    if not member[r] then return false, "it returned a request that is not waiting" end
    if seen[r] then return false, "it returned request " .. tostring(r.id) .. " twice" end
    seen[r] = true
  end
  return true
end

function Scheduler:report_policy_error(msg)
  self.counters.policy_errors = self.counters.policy_errors + 1
  self.last_policy_error = msg
  local report = self.engine.on_policy_error or function(m) io.stderr:write(m, "\n") end
  report("yaie: policy '" .. tostring(self.policy.name or "custom") .. "' failed, using fcfs for this step: " .. msg)
end

function Scheduler:ordered_waiting(ctx)
  if #self.waiting < 2 then return self.waiting end
  local copy = {}
  for i, r in ipairs(self.waiting) do copy[i] = r end
  local ok, ordered = xpcall(self.policy.order, debug.traceback, copy, ctx)
  if ok then
    local valid, why = is_permutation(ordered, self.waiting)
    if valid then return ordered end
    ordered = why
  end
  self:report_policy_error(tostring(ordered))
  return fcfs.order(self.waiting)
end

function Scheduler:step_chunk_size(ctx)
  local f = self.policy.chunk_size
  if not f then return self.chunk_size end
  local ok, n = xpcall(f, debug.traceback, ctx)
  if ok and type(n) == "number" and n >= 1 then return math.floor(n) end
  self:report_policy_error(ok and ("chunk_size returned " .. tostring(n)) or tostring(n))
  return self.chunk_size
end

-- ---------------------------------------------------------------------------------------------
-- Pages.

-- Grows the request's page table to hold `upto` tokens, evicting cache when the pool is short.
function Scheduler:ensure_pages(req, upto)
  local need = math.ceil(upto / self.page_size) - req.n_pages
  if need <= 0 then return true end
  if req.n_pages + need > req.page_cap then error("internal: page table overflow for request " .. req.id) end
  local pages = self.pool:alloc(need)
  if not pages and self.cache then
    self.tree:evict(need - self.pool:stats().free)
    pages = self.pool:alloc(need)
  end
  if not pages then return false end
  for i, p in ipairs(pages) do req.pages[req.n_pages + i - 1] = p end
  req.n_pages = req.n_pages + need
  return true
end

-- Gives back the request's private pages and its lock; with the cache on, the pages holding
-- whole pages of computed tokens go into the radix tree first, as shared cache.
function Scheduler:release(req)
  local ps = self.page_size
  local from = req.n_shared
  if self.cache and req.n_cached >= ps then
    local full = math.floor(req.n_cached / ps)
    local ids, pages = {}, {}
    for i = 1, full * ps do ids[i] = req.all[i] end
    for i = 1, full do pages[i] = req.pages[i - 1] end
    self.tree:insert(ids, pages)
    from = full
  end
  local rest = req:private_pages(from)
  if #rest > 0 then self.pool:free(rest) end
  if req.node then self.tree:unlock(req.node) end
  req.node, req.n_pages, req.n_shared, req.n_cached, req.prefix_cached = nil, 0, 0, 0, nil
end

function Scheduler:remove_running(req)
  for i, r in ipairs(self.running) do
    if r == req then
      table.remove(self.running, i)
      return
    end
  end
end

-- Preemption: the running request with the fewest generated tokens (the latest on a tie) goes
-- back to the front of the waiting queue and will be recomputed.
function Scheduler:preempt()
  local victim
  for _, r in ipairs(self.running) do
    if not victim or #r.tokens < #victim.tokens or (#r.tokens == #victim.tokens and r.id > victim.id) then
      victim = r
    end
  end
  self:remove_running(victim)
  self:release(victim)
  victim.state = "waiting"
  if victim.logprobs then victim.logprobs = {} end -- scored again from the start
  victim.enqueued_step = self.step_no
  victim.preemptions = (victim.preemptions or 0) + 1
  table.insert(self.waiting, 1, victim)
  self.counters.preemptions = self.counters.preemptions + 1
  self.ratio = RATIO_INIT
  return victim
end

function Scheduler:finish(req, reason)
  self:remove_running(req)
  -- A request in a round on the device keeps its pages until the round is back (rounds.lua).
  if req.in_round then
    req.release_after_round = true
  else
    self:release(req)
  end
  req:close(reason)
  self.engine:on_finished(req)
end

-- ---------------------------------------------------------------------------------------------
-- Planning a step.

-- Pages the running requests are expected to still need (the optimistic reserve).
function Scheduler:reserved_pages()
  local n = 0
  for _, r in ipairs(self.running) do
    local future = #r.all + math.ceil(self.ratio * (r.max_new - #r.tokens))
    n = n + math.max(0, math.ceil(future / self.page_size) - r.n_pages)
  end
  return n
end

-- Admits one waiting request if the budgets allow: matches its cached prefix, locks it, and
-- takes the pages of its first chunk. Returns the chunk (0: not admitted).
function Scheduler:admit(req, budget, chunk, reserved)
  local ps = self.page_size
  local m, pages, node = 0, {}, nil
  if self.cache then
    -- At least the last token is computed, so the step yields its logits.
    local key = {}
    local upto = req.score_from and math.min(#req.all - 1, req.score_from - 1) or #req.all - 1
    for i = 1, upto do key[i] = req.all[i] end
    m, pages, node = self.tree:match(key)
    self.tree:lock(node)
  end
  local span = math.min(chunk, budget, #req.all - m)
  local st = self.pool:stats()
  local whole = math.ceil((#req.all + self.ratio * (req.max_new - #req.tokens)) / ps) - m / ps
  if whole > st.free + st.evictable - reserved or span < 1 then
    if node then self.tree:unlock(node) end
    return 0
  end
  for i, p in ipairs(pages) do req.pages[i - 1] = p end
  req.n_pages, req.n_shared, req.n_cached, req.node = #pages, #pages, m, node
  if not self:ensure_pages(req, m + span) then
    self:release(req)
    return 0
  end
  -- Every admission counts, re-admissions after a preemption too (their tokens so far are
  -- their prompt), so the hit rate shows what recomputation costs.
  if not req.admitted_once then
    req.admitted_once = true
    req.meta.cached_tokens = m
  end
  self.counters.prompt_tokens = self.counters.prompt_tokens + #req.all
  self.counters.cached_tokens = self.counters.cached_tokens + m
  req.state = "running"
  return span
end

-- In-batch prefix sharing: a request whose next uncached page is being prefilled right now by
-- another request waits for that prefill to reach the radix cache (see cache_prefix), instead
-- of computing the same prefix a second time in parallel.
function Scheduler:shares_prefill(req, prefilling)
  if not self.cache or #prefilling == 0 then return false end
  local ps = self.page_size
  local m = self.tree:peek(req.all)
  if m + ps > #req.all - 1 then return false end
  for _, r in ipairs(prefilling) do
    if #r.all > m + ps then
      local same = true
      for i = 1, m + ps do
        if r.all[i] ~= req.all[i] then
          same = false
          break
        end
      end
      if same then return true end
    end
  end
  return false
end

-- After a request's prefill, its whole computed pages go into the radix tree right away (it
-- keeps them locked), so requests sharing the prefix reuse them while it is still decoding.
-- A page the tree already had from another request replaces this request's copy, which the
-- tree frees; both hold the same K/V, computed the same way.
function Scheduler:cache_prefix(req)
  local ps = self.page_size
  local full = math.floor(req.n_cached / ps)
  if full <= req.n_shared then return end
  local ids, pages = {}, {}
  for i = 1, full * ps do ids[i] = req.all[i] end
  for i = 1, full do pages[i] = req.pages[i - 1] end
  self.tree:insert(ids, pages)
  local _, tree_pages, node = self.tree:match(ids)
  self.tree:lock(node)
  if req.node then self.tree:unlock(req.node) end
  req.node, req.n_shared = node, full
  for i = 1, full do req.pages[i - 1] = tree_pages[i] end
end

-- The step's plan: a list of {req, span}.
function Scheduler:plan()
  local ctx = self:context()
  local chunk = self:step_chunk_size(ctx)
  local budget, plan = self.max_batch_tokens, {}
  -- Running requests first: they hold pages, and decoding ones cost one token each.
  local i = 1
  while i <= #self.running and budget > 0 do
    local req = self.running[i]
    local span = math.min(req:remaining_prefill(), chunk, budget)
    if self:ensure_pages(req, req.n_cached + span) then
      plan[#plan + 1] = { req, span }
      budget = budget - span
      i = i + 1
    elseif #self.running == 1 then
      -- Alone and still no room: the pool cannot hold this request at all.
      req.error = ("the KV pool (%d pages of %d tokens) cannot hold request %d"):format(
        self.pool.total, self.page_size, req.id)
      self:finish(req, "error")
    else
      local victim = self:preempt()
      for k = #plan, 1, -1 do
        if plan[k][1] == victim then
          budget = budget + plan[k][2]
          table.remove(plan, k)
          i = i - 1
        end
      end
    end
  end
  -- Then new (or preempted) requests in the policy's order.
  if budget > 0 and #self.waiting > 0 and #self.running < self.max_running then
    local reserved = self:reserved_pages()
    local admitted, prefilling = {}, {}
    for _, r in ipairs(self.running) do
      if r.n_cached < #r.all - 1 then prefilling[#prefilling + 1] = r end
    end
    for _, req in ipairs(self:ordered_waiting(ctx)) do
      if budget <= 0 or #self.running >= self.max_running then break end
      -- (A request sharing a prefix that is being prefilled waits; the next one may go.)
      if not self:shares_prefill(req, prefilling) then
        local span = self:admit(req, budget, chunk, reserved)
        if span == 0 then break end
        prefilling[#prefilling + 1] = req
        admitted[req] = true
        self.running[#self.running + 1] = req
        plan[#plan + 1] = { req, span }
        budget = budget - span
        reserved = self:reserved_pages()
      end
    end
    if next(admitted) then
      local still = {}
      for _, r in ipairs(self.waiting) do
        if not admitted[r] then still[#still + 1] = r end
      end
      self.waiting = still
    end
  end
  return plan
end

-- ---------------------------------------------------------------------------------------------
-- One step.

function Scheduler:step()
  local t0 = C.now()
  self.step_no = self.step_no + 1
  if self.rounds.pending then
    -- A round's tokens wait: commit them, the next round (if the batch stays) already running.
    local n, host = self.rounds:advance()
    self:after_step()
    self.last = { seqs = 0, tokens = n, c_s = 0, lua_s = host }
    self.host_s = self.host_s + host
    return true
  end
  local plan = self:plan()
  if #plan == 0 then
    self.last = { seqs = 0, tokens = 0, c_s = 0, lua_s = C.now() - t0 }
    return false
  end
  local t_plan = C.now() - t0
  local started, host = self.rounds:start(plan, self.rounds:size(self:context()))
  if started then
    self:after_step()
    self.last = { seqs = #plan, tokens = 0, c_s = 0, lua_s = t_plan + host }
    self.host_s = self.host_s + t_plan + host
    return true
  end
  local n_tokens, rows, any_mask, want_logprobs = 0, 0, false, false
  for k, item in ipairs(plan) do
    local req, span = item[1], item[2]
    local s = self.seqs[k - 1]
    local base = self.token_buf + n_tokens
    for j = 0, span - 1 do base[j] = req.all[req.n_cached + j + 1] end
    -- A scoring request needs the logits of every position from score_from - 1 on.
    local scoring = req.score_from and req.n_cached + span >= req.score_from
    s.tokens, s.n_tokens, s.pos = base, span, req.n_cached
    s.pages, s.n_pages, s.all_logits = req.pages, req.n_pages, scoring and 1 or 0
    item[3] = rows -- this sequence's first logit row
    rows = rows + (scoring and span or 1)
    local last = req.n_cached + span == #req.all
    self.samplers[k - 1] = last and req.sampler or nil
    local mask = last and req:mask() or nil
    self.masks[k - 1] = mask
    any_mask = any_mask or mask ~= nil
    want_logprobs = want_logprobs or (last and req.meta.logprobs ~= nil)
    n_tokens = n_tokens + span
  end
  self.batch.n_seqs = #plan
  self:group_rows(plan, self.batch, 1)
  local tc = C.now()
  C.check(lib.yaie_forward(self.engine.ctx, self.batch))
  C.check(lib.yaie_sample_step(self.engine.ctx, self.batch, self.samplers, any_mask and self.masks or nil,
    self.sampled, want_logprobs and self.sampled_logprobs or nil))
  for k, item in ipairs(plan) do
    if item[1].score_from and self.seqs[k - 1].all_logits == 1 then self:score_rows(item[1], item[2], item[3]) end
  end
  local c_s = C.now() - tc
  self.counters.computed_tokens = self.counters.computed_tokens + n_tokens
  for k, item in ipairs(plan) do
    local req, span = item[1], item[2]
    req.n_cached = req.n_cached + span
    if self.cache and req.n_cached >= #req.all - 1 and not req.prefix_cached then
      req.prefix_cached = true
      self:cache_prefix(req)
    end
    local id = self.sampled[k - 1]
    if id >= 0 and req.state == "running" then
      local ok, reason = pcall(req.append, req, id, self.sampled_logprobs[k - 1])
      if not ok then
        -- A failing callback or constraint ends its own request, not the engine.
        req.error, reason = tostring(reason), "error"
      end
      -- on_token may have cancelled the request already: it finishes once.
      if reason and req.state == "running" then self:finish(req, reason) end
    end
  end
  self:after_step()
  self.last = { seqs = #plan, tokens = n_tokens, c_s = c_s, lua_s = C.now() - t0 - c_s }
  self.host_s = self.host_s + self.last.lua_s
  return true
end

-- Cascade groups for the step's decoding rows (cascade.lua); counts the forward steps using them.
function Scheduler:group_rows(items, batch, steps)
  local rows = {}
  for k, item in ipairs(items) do
    local req = item.req or item[1]
    -- One new token (a round's rows, or a span of 1), not scoring (that needs every row's logits).
    if (item.req or item[2] == 1) and req.n_shared > 0 and not req.score_from then
      rows[#rows + 1] = { req = req, seq = k - 1 }
    end
  end
  if self.cascade:fill(batch, rows) > 0 then self.cascade.steps = self.cascade.steps + steps end
end

function Scheduler:after_step()
  self.ratio = math.max(RATIO_MIN, self.ratio - RATIO_DECAY)
  if self.check then
    self.pool:check()
    if self.cache then self.tree:check() end
  end
end

-- Appends the logprobs of a scoring request's tokens predicted by this step's rows: the row at
-- position p predicts the token at p + 1, and tokens from index score_from (0-based) count.
function Scheduler:score_rows(req, span, first_row)
  local n = 0
  for j = 0, span - 1 do
    local p = req.n_cached + j
    if p + 1 >= req.score_from and p + 1 < #req.all then
      self.score_row_idx[n], self.score_tok[n] = first_row + j, req.all[p + 2]
      n = n + 1
    end
  end
  if n == 0 then return end
  C.check(lib.yaie_token_logprobs(self.engine.ctx, self.score_row_idx, self.score_tok, n, self.score_out))
  for i = 0, n - 1 do req.logprobs[#req.logprobs + 1] = self.score_out[i] end
end

function Scheduler:cancel(req)
  if req.state == "waiting" then
    for i, r in ipairs(self.waiting) do
      if r == req then table.remove(self.waiting, i) break end
    end
    req:close("cancelled")
    self.engine:on_finished(req)
  elseif req.state == "running" then
    self:finish(req, "cancelled")
  end
end

return Scheduler
