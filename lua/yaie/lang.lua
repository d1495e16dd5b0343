-- Generation programs, SGLang's frontend language in Lua:
--
--   local qa = yaie.program(function(s, question)
--     s "Q: What is the capital of France?\nA: Paris\n"
--     s("Q: " .. question .. "\nA:")
--     s:gen("answer", { max_tokens = 16, stop = "\n" })
--   end)
--   local st = qa:run(engine, "Spain")            -- st.answer, st:meta("answer")
--   local all = qa:run_batch(engine, { { "Spain" }, { "Italy" } }, { progress = true })
--
-- Each program runs as a coroutine. When it asks the engine for something (gen, select, fork's
-- commit) it yields; the runner steps the engine, whose scheduler batches the requests of all
-- programs, and resumes each program when its requests have finished.
local lang_state = require "yaie.lang_state"
local templates = require "yaie.chat_templates"

local Runner = {}
Runner.__index = Runner

local function new_runner(engine, opts)
  return setmetatable({ engine = engine, opts = opts or {}, tasks = {} }, Runner)
end

local function tokenizer_of(engine)
  local tok = engine.model.tokenizer
  if not tok then error("programs need a model with a tokenizer", 3) end
  return tok
end

-- Waits for requests: yields to the runner inside a program, or steps the engine directly when
-- called outside one.
function Runner:await(reqs)
  local function pending()
    for _, r in ipairs(reqs) do if r.state ~= "finished" then return true end end
    return false
  end
  if not pending() then return end
  local co = coroutine.running()
  if co and self.current and self.current.co == co then
    coroutine.yield(reqs)
    return
  end
  while pending() do
    if not self.engine:step() then error("the engine stalled with requests pending", 2) end
  end
end

local sampling_keys = { "max_tokens", "min_tokens", "stop", "stop_token_ids", "temperature", "top_p", "top_k",
  "min_p", "frequency_penalty", "presence_penalty", "repetition_penalty", "seed", "ignore_eos", "return_logprob" }

function Runner:submit_gen(state, opts)
  local tok = tokenizer_of(self.engine)
  local eopts = {}
  for _, k in ipairs(sampling_keys) do eopts[k] = opts[k] end
  if opts.regex or opts.choices or opts.dtype then
    eopts.constraint = self:constraint(tok, opts)
  end
  local streams = { opts.stream, state._stream }
  if streams[1] or streams[2] then
    eopts.on_token = function(piece)
      if #piece == 0 then return end
      for _, f in pairs(streams) do f(piece) end
    end
  end
  return self.engine:submit(tok:encode(state._text), eopts)
end

-- Constraints are cached per engine and pattern: a DFA state is just a number, so every request
-- with the same pattern shares the lazily built states and their masks.
function Runner:constraint(tok, opts)
  local constrain = require "yaie.constrain"
  local spec = { regex = opts.regex, choices = opts.choices, dtype = opts.dtype,
    vocab_size = self.engine.model.config.vocab_size }
  local pattern = constrain.pattern(spec)
  local cache = self.engine.constraints
  if not cache then
    cache = {}
    self.engine.constraints = cache
  end
  if not cache[pattern] then cache[pattern] = constrain.new(tok, spec) end
  return cache[pattern]
end

-- Prefills the state's text once (no token generated), so that forks and select's choices
-- reuse it from the radix cache instead of each computing it.
function Runner:commit(state)
  local tok = tokenizer_of(self.engine)
  self:await { self.engine:submit(tok:encode(state._text), { max_tokens = 0 }) }
end

local function common_prefix(a, b)
  local n = 0
  while n < #a and n < #b and a[n + 1] == b[n + 1] do n = n + 1 end
  return n
end

local function mean(list)
  local s = 0
  for _, v in ipairs(list) do s = s + v end
  return #list > 0 and s / #list or -math.huge
end

-- Scores the choices in one batch after the committed prefix, and picks one as SGLang does.
function Runner:select(state, choices, opts)
  local method = opts.method or "token_length_normalized"
  local tok, engine = tokenizer_of(self.engine), self.engine
  local prefix = tok:encode(state._text)
  self:commit(state)
  local reqs, uncond = {}, {}
  for i, c in ipairs(choices) do
    local full = tok:encode(state._text .. c)
    local k = math.min(common_prefix(prefix, full), #full - 1)
    reqs[i] = engine:score(full, math.max(k, 1))
    if method == "unconditional_likelihood_normalized" then
      local alone = tok:encode(c, { add_bos = true })
      if tok.bos < 0 or alone[1] ~= tok.bos then table.insert(alone, 1, tok.bos >= 0 and tok.bos or alone[1]) end
      uncond[i] = engine:score(alone, 1)
    end
  end
  local all = {}
  for _, r in ipairs(reqs) do all[#all + 1] = r end
  for _, r in ipairs(uncond) do all[#all + 1] = r end
  self:await(all)
  local scores, best = {}, 1
  for i in ipairs(choices) do
    local lp = reqs[i].logprobs
    if method == "token_length_normalized" then
      scores[i] = mean(lp)
    elseif method == "unconditional_likelihood_normalized" then
      local u = uncond[i].logprobs
      local s, su = 0, 0
      for _, v in ipairs(lp) do s = s + v end
      for _, v in ipairs(u) do su = su + v end
      scores[i] = (s - su) / math.max(#lp, 1)
    elseif method == "greedy_token_selection" then
      scores[i] = lp
    else
      error("select: unknown method '" .. tostring(method) .. "'", 3)
    end
  end
  local function better(a, b)
    if type(a) ~= "table" then return a > b end
    for j = 1, math.max(#a, #b) do -- token by token: the first larger logprob wins
      local x, y = a[j] or -math.huge, b[j] or -math.huge
      if x ~= y then return x > y end
    end
    return false
  end
  for i = 2, #choices do
    if better(scores[i], scores[best]) then best = i end
  end
  local logprobs = {}
  for i, r in ipairs(reqs) do logprobs[i] = r.logprobs end
  return choices[best], {
    choice_logprobs = logprobs, scores = scores, method = method,
    prompt_tokens = #prefix, cached_tokens = reqs[best].meta.cached_tokens,
  }
end

-- ---------------------------------------------------------------------------------------------
-- Running programs.

function Runner:spawn(fn, args, stream)
  local tok = tokenizer_of(self.engine)
  local state = lang_state.new(self, {
    template = templates.pick(self.opts.chat_template, tok:chat_template()), stream = stream,
  })
  local task = { state = state }
  task.co = coroutine.create(function()
    local ok, err = xpcall(fn, debug.traceback, state, unpack(args, 1, args.n or #args))
    if not ok then state.error = err end
  end)
  self.tasks[#self.tasks + 1] = task
  return state
end

function Runner:resume(task)
  self.current = task
  local ok, waiting = coroutine.resume(task.co)
  self.current = nil
  if not ok then task.state.error = waiting end
  if coroutine.status(task.co) == "dead" then
    task.done = true
  else
    task.waiting = waiting
  end
end

local function ready(task)
  for _, r in ipairs(task.waiting or {}) do
    if r.state ~= "finished" then return false end
  end
  return true
end

local function progress_bar(done, total)
  local width = 30
  local filled = math.floor(width * done / math.max(total, 1))
  io.stderr:write(("\r[%s%s] %d/%d"):format(("#"):rep(filled), ("-"):rep(width - filled), done, total))
  if done == total then io.stderr:write("\n") end
end

function Runner:wait(progress)
  local total, done = #self.tasks, 0
  while true do
    local resumed = false
    for _, t in ipairs(self.tasks) do
      if not t.done and ready(t) then
        self:resume(t)
        resumed = true
        if t.done then
          done = done + 1
          if progress then progress_bar(done, total) end
        end
      end
    end
    if done == total then return end
    if not resumed and not self.engine:step() then
      -- Nothing runnable and nothing to compute: the pending programs can never finish.
      for _, t in ipairs(self.tasks) do
        if not t.done then
          t.done, t.state.error = true, "program stalled: its requests cannot be scheduled"
          done = done + 1
        end
      end
      return
    end
  end
end

local Program = {}
Program.__index = Program

-- Runs the program once; raises its error (with the traceback) if it failed.
function Program:run(engine, ...)
  local runner = new_runner(engine, self.opts)
  local state = runner:spawn(self.fn, { n = select("#", ...), ... }, self.opts.stream)
  runner:wait(false)
  if rawget(state, "error") then error(state.error, 0) end
  return state
end

-- Runs the program on each argument list concurrently; returns the states in order. A program
-- that fails leaves its error (with traceback) in state.error; the others finish regardless.
function Program:run_batch(engine, arg_lists, opts)
  opts = opts or {}
  local runner, states = new_runner(engine, self.opts), {}
  for i, args in ipairs(arg_lists) do
    if type(args) ~= "table" then args = { args } end
    states[i] = runner:spawn(self.fn, args, opts.stream or self.opts.stream)
  end
  runner:wait(opts.progress)
  return states
end

local M = {}

-- yaie.program(fn [, { chat_template = "chatml" | table | function, stream = fn }])
function M.program(fn, opts)
  if type(fn) ~= "function" then error("yaie.program: give a function(s, ...)", 2) end
  return setmetatable({ fn = fn, opts = opts or {} }, Program)
end

return M
