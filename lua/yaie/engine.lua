-- The serving engine: a model, a KV page pool with its radix-tree prefix cache, and the Lua
-- scheduler that batches requests over them.
--
--   local engine = yaie.engine { model = PATH, page_size = 16, kv_memory = "256MiB",
--                                max_batch_tokens = 512, max_running = 64, policy = "lpm" }
--   local req = engine:submit("Once upon a time", { max_tokens = 32, temperature = 0 })
--   engine:run()                      -- steps until every request has finished
--   print(req.text, req.meta.cached_tokens)
local C = require "yaie.c"
local ffi, lib = C.ffi, C.lib
local Request = require "yaie.request"
local Scheduler = require "yaie.scheduler"
local policies = require "yaie.policies"

local Engine = {}
Engine.__index = Engine

local units = { b = 1, kb = 1e3, mb = 1e6, gb = 1e9, kib = 1024, mib = 1024 ^ 2, gib = 1024 ^ 3 }

local function parse_bytes(v)
  if type(v) == "number" then return v end
  local n, unit = tostring(v):lower():match("^%s*([%d.]+)%s*(%a*)%s*$")
  local scale = units[unit == "" and "b" or unit]
  if not n or not scale then error("kv_memory: cannot read '" .. tostring(v) .. "' (e.g. \"512MiB\")", 3) end
  return math.floor(tonumber(n) * scale)
end

local M = {}

-- Every option yaie.engine{} reads; any other name is an error, so a misspelt one is caught.
M.options = {
  model = true, tokenizer = true, threads = true, device = true, page_size = true, kv_memory = true,
  kv_pages = true, max_batch_tokens = true, max_running = true, policy = true, on_policy_error = true,
  chunk_size = true, radix_cache = true, check = true, seed = true, decode_steps = true, cascade = true,
}

local function check_options(opts)
  for k in pairs(opts) do
    if not M.options[k] then
      local names = {}
      for n in pairs(M.options) do names[#names + 1] = n end
      table.sort(names)
      error("engine: unknown option '" .. tostring(k) .. "' (options: " .. table.concat(names, ", ") .. ")", 3)
    end
  end
end

function M.new(opts)
  opts = opts or {}
  check_options(opts)
  local device = opts.device or (type(opts.model) == "table" and opts.model.device) or "cpu"
  if device ~= "cpu" and device ~= "cuda" then
    error("engine: device '" .. tostring(device) .. "' is not available (cpu or cuda)", 2)
  end
  local model = opts.model
  if type(model) ~= "table" then
    model = require("yaie.model").load { model = opts.model, tokenizer = opts.tokenizer, threads = opts.threads,
      device = device }
  end
  local cfg = model.config
  local page_size = opts.page_size or 16
  local self = setmetatable({
    model = model, page_size = page_size, finished = {}, next_id = 1,
    max_batch_tokens = opts.max_batch_tokens or 512, on_policy_error = opts.on_policy_error,
  }, Engine)
  local pool_opts = { page_size = page_size, layers = cfg.n_layers, kv_heads = cfg.n_kv_heads,
    head_dim = cfg.head_dim, dtype = device == "cuda" and "bf16" or "f32" }
  if opts.kv_pages then
    pool_opts.pages = opts.kv_pages
  else
    pool_opts.bytes = parse_bytes(opts.kv_memory or "256MiB")
  end
  self.pool = require("yaie.pool").new(pool_opts)
  self.tree = require("yaie.radix").new { pool = self.pool }
  local params = ffi.new("yaie_context_params", { n_pages = self.pool.total, page_size = page_size,
    max_batch_tokens = self.max_batch_tokens, n_threads = opts.threads or 0,
    device = device == "cuda" and 1 or 0 })
  local out = ffi.new("yaie_context*[1]")
  C.check(lib.yaie_context_new(model.ptr, params, out))
  self.ctx = ffi.gc(out[0], lib.yaie_context_free)
  self.scheduler = Scheduler.new(self, opts)
  return self
end

-- Submits a prompt (text, or a list of token ids); returns the request, which fills in as the
-- engine steps: req.text, req.tokens, req.meta, req.state ("waiting", "running", "finished").
function Engine:submit(prompt, opts)
  opts = opts or {}
  local ids = prompt
  if type(prompt) == "string" then
    local tok = self.model.tokenizer
    if not tok then error("submit: the model has no tokenizer; give token ids", 2) end
    ids = tok:encode(prompt)
  elseif type(prompt) ~= "table" then
    error("submit: give a prompt string or a list of token ids", 2)
  end
  local cfg = self.model.config
  if #ids == 0 then error("submit: empty prompt", 2) end
  for _, t in ipairs(ids) do
    if type(t) ~= "number" or t < 0 or t >= cfg.vocab_size or t % 1 ~= 0 then
      error("submit: token id " .. tostring(t) .. " is outside the vocabulary of " .. cfg.vocab_size, 2)
    end
  end
  if #ids >= cfg.max_seq_len then
    error(("submit: prompt of %d tokens does not fit the model's context of %d tokens"):format(#ids, cfg.max_seq_len), 2)
  end
  local pages_needed = math.ceil((#ids + 1) / self.page_size)
  if pages_needed > self.pool.total then
    error(("submit: a prompt of %d tokens needs %d pages; the pool holds %d"):format(#ids, pages_needed, self.pool.total), 2)
  end
  if opts.max_tokens ~= nil and (type(opts.max_tokens) ~= "number" or opts.max_tokens < 0) then
    error("submit: max_tokens must be a number >= 0, not " .. tostring(opts.max_tokens), 2)
  end
  local req = Request.new(self, self.next_id, ids, opts)
  self.next_id = self.next_id + 1
  req.enqueued_step = self.scheduler.step_no
  self.scheduler.waiting[#self.scheduler.waiting + 1] = req
  return req
end

-- Runs one step; returns false when there was nothing to do.
function Engine:step() return self.scheduler:step() end

-- Steps until no request is waiting or running.
function Engine:run()
  while #self.scheduler.running > 0 or #self.scheduler.waiting > 0 do
    if not self:step() and #self.scheduler.running == 0 and #self.scheduler.waiting > 0 then
      error("run: waiting requests cannot be admitted (the KV pool is too small for them)", 2)
    end
  end
end

-- Scores a continuation: a request computing the logprobs of ids[from + 1 ..] given what
-- precedes them (from >= 1), generating nothing. When it has finished, req.logprobs holds them.
function Engine:score(ids, from, opts)
  if type(from) ~= "number" or from < 1 or from >= #ids then
    error("score: from must be in [1, " .. (#ids - 1) .. "], got " .. tostring(from), 2)
  end
  local o = { score_from = from }
  for k, v in pairs(opts or {}) do o[k] = v end
  return self:submit(ids, o)
end

-- Submits every prompt with the same options, runs them together, returns the requests.
function Engine:generate_batch(prompts, opts)
  local reqs = {}
  for i, p in ipairs(prompts) do reqs[i] = self:submit(p, opts) end
  self:run()
  return reqs
end

-- Takes effect at the next step; waiting and running requests are kept.
function Engine:set_policy(p)
  self.scheduler.policy = policies.resolve(p)
end

function Engine:cancel(req) self.scheduler:cancel(req) end

function Engine:on_finished(req)
  if self.on_finish then self.on_finish(req) end
end

function Engine:stats()
  local s = self.scheduler
  local pool = self.pool:stats()
  local c = s.counters
  return {
    running = #s.running, waiting = #s.waiting, steps = s.step_no,
    hit_rate = c.prompt_tokens > 0 and c.cached_tokens / c.prompt_tokens or 0,
    prompt_tokens = c.prompt_tokens, cached_tokens = c.cached_tokens, computed_tokens = c.computed_tokens,
    preemptions = c.preemptions, policy_errors = c.policy_errors,
    rounds = s.rounds.rounds, round_steps = s.rounds.steps_run, cascade_steps = s.cascade.steps,
    host_ms = s.host_s * 1e3, round_host_ms = s.rounds.host_s * 1e3, round_host_hidden_ms = s.rounds.hidden_s * 1e3,
    pages_total = pool.total, pages_used = pool.used, pages_free = pool.free, pages_evictable = pool.evictable,
    last_step_seqs = s.last.seqs, last_step_tokens = s.last.tokens,
    last_step_c_ms = s.last.c_s * 1e3, last_step_lua_ms = s.last.lua_s * 1e3,
    policy = s.policy.name or "custom",
  }
end

return M
