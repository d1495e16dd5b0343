-- One generation request: its tokens, the KV pages holding them, its sampler, its stop rules,
-- and what it reports (text, tokens, meta). The scheduler moves it between queues; this file
-- owns everything that is per request.
--
-- Invariants: all[1 .. n_cached] have their K/V in pages[0 .. n_pages); the first n_shared of
-- those pages are the radix tree's (held by the lock on `node`), the rest are this request's
-- own references. In the decode phase n_cached == #all - 1: only the last sampled token waits.
local C = require "yaie.c"
local ffi, lib = C.ffi, C.lib

local Request = {}
Request.__index = Request

local function as_list(v)
  if v == nil then return {} end
  if type(v) == "table" then return v end
  return { v }
end

function Request.new(engine, id, prompt_ids, opts)
  local cfg = engine.model.config
  -- The pool bounds a sequence as the model's context does: one request alone must always fit,
  -- or it could never be admitted.
  local room = math.min(cfg.max_seq_len, engine.pool.total * engine.page_size)
  local max_new = math.min(opts.max_tokens or 128, room - #prompt_ids)
  local self = setmetatable({
    id = id, opts = opts, engine = engine,
    prompt_tokens = prompt_ids, all = {}, tokens = {}, text = "",
    max_new = max_new, state = "waiting",
    n_cached = 0, n_pages = 0, n_shared = 0, node = nil,
    pieces = {}, emitted = 0, stop_strings = as_list(opts.stop),
    on_token = opts.on_token,
    submitted_at = C.now(), token_times = {},
    meta = { prompt_tokens = #prompt_ids, cached_tokens = 0, completion_tokens = 0 },
  }, Request)
  for i, t in ipairs(prompt_ids) do self.all[i] = t end
  -- Page table room for the whole sequence: positions [0, #prompt + max_new).
  self.page_cap = math.ceil((#prompt_ids + max_new) / engine.page_size) + 1
  self.pages = ffi.new("int32_t[?]", self.page_cap)
  local tok = engine.model.tokenizer
  local generate = require "yaie.generate"
  self.stop_ids = generate.stop_token_set(tok, opts)
  self.sampler = generate.sampler({
    temperature = opts.temperature or 0, top_k = opts.top_k, top_p = opts.top_p, min_p = opts.min_p,
    repetition_penalty = opts.repetition_penalty, frequency_penalty = opts.frequency_penalty,
    presence_penalty = opts.presence_penalty, seed = opts.seed or id,
  }, cfg.vocab_size)
  -- Penalties count the prompt too, as in m:generate (and as llama.cpp and HF do).
  for _, t in ipairs(prompt_ids) do lib.yaie_sampler_accept(self.sampler, t) end
  if tok then
    self.decoder = tok:decoder()
    for _, t in ipairs(prompt_ids) do self.decoder:push(t) end
  end
  -- Constrained decoding: the constraint's DFA state selects the mask of allowed tokens.
  self.constraint = opts.constraint
  if self.constraint then self.cstate, self.eos = self.constraint:start(), tok and tok.eos end
  self.min_tokens = opts.min_tokens or 0
  if opts.return_logprob then self.meta.logprobs = {} end
  -- Scoring (select): logprobs of all[score_from + 1 ..], no token generated.
  if opts.score_from then
    self.score_from, self.logprobs, self.max_new = opts.score_from, {}, 0
  end
  return self
end

-- The allowed-token mask for the next sample (a uint8 per vocabulary token), or nil.
function Request:mask()
  if self.constraint then return self.constraint:mask(self.cstate) end
  if #self.tokens < self.min_tokens then
    if not self.no_stop_mask then
      -- Until min_tokens, the tokens that would stop the request are not sampled.
      local vocab = self.engine.model.config.vocab_size
      local m = ffi.new("uint8_t[?]", vocab)
      ffi.fill(m, vocab, 1)
      for id in pairs(self.stop_ids) do if id < vocab then m[id] = 0 end end
      self.no_stop_mask = m
    end
    return self.no_stop_mask
  end
  return nil
end

-- Tokens of the next step: 1 in the decode phase, else the next prefill chunk.
function Request:remaining_prefill() return #self.all - self.n_cached end

function Request:is_decoding() return self.n_cached == #self.all - 1 and #self.tokens > 0 end

function Request:private_pages(from)
  local list = {}
  for i = from or self.n_shared, self.n_pages - 1 do list[#list + 1] = self.pages[i] end
  return list
end

-- The longest suffix of text that starts some stop string: held back from streaming until the
-- next token shows whether the stop string completes.
local function held_back(text, stops)
  local hold = 0
  for _, s in ipairs(stops) do
    for n = math.min(#s - 1, #text), hold + 1, -1 do
      if text:sub(-n) == s:sub(1, n) then
        hold = n
        break
      end
    end
  end
  return hold
end

local function emit(self, upto)
  if upto > self.emitted then
    local piece = self.text:sub(self.emitted + 1, upto)
    self.emitted = upto
    return piece
  end
  return ""
end

-- Appends a sampled token (with its logprob when asked for); returns the finish reason when a
-- stop rule fires, else nil. accepted: the sampler already counted it (a decode round's do).
function Request:append(id, logprob, accepted)
  if self.max_new == 0 then return "length" end -- prefill or scoring only
  local now = C.now()
  self.token_times[#self.token_times + 1] = now
  if self.meta.logprobs then self.meta.logprobs[#self.meta.logprobs + 1] = logprob end
  if self.stop_ids[id] and #self.tokens >= self.min_tokens then return "stop" end
  local constraint_done = false
  if self.constraint then
    -- EOS is allowed only where the text fully matches: it ends the request there.
    if id == self.eos then return "stop" end
    self.cstate = self.constraint:advance(self.cstate, id)
    constraint_done = self.constraint:accepting(self.cstate) and not self.constraint:can_continue(self.cstate)
  end
  self.all[#self.all + 1] = id
  self.tokens[#self.tokens + 1] = id
  if not accepted then lib.yaie_sampler_accept(self.sampler, id) end
  local reason = #self.tokens >= self.max_new and "length" or (constraint_done and "stop") or nil
  if self.decoder then
    local piece = self.decoder:push(id)
    if #piece > 0 then
      local start = math.max(1, #self.text - 64)
      self.text = self.text .. piece
      for _, s in ipairs(self.stop_strings) do
        local at = self.text:find(s, math.max(1, start - #s), true)
        if at then
          self.text = self.text:sub(1, at - 1)
          reason, self.stopped_by_string = "stop", true
          break
        end
      end
    end
  end
  local out = emit(self, reason and #self.text or #self.text - held_back(self.text, self.stop_strings))
  if self.on_token then self.on_token(out, id, self) end
  return reason
end

-- Called once when the request ends, whatever ended it.
function Request:close(reason)
  -- Bytes still held by the decoder (an unfinished character) belong to the text, unless a
  -- stop string cut the text before them.
  if self.decoder and not self.stopped_by_string then
    self.text = self.text .. self.decoder:flush()
  end
  local rest = emit(self, #self.text)
  if self.on_token and #rest > 0 then self.on_token(rest, nil, self) end
  self.state = "finished"
  local m = self.meta
  m.finish_reason = reason
  m.completion_tokens = #self.tokens
  local t = self.token_times
  if #t > 0 then
    m.ttft = t[1] - self.submitted_at
    m.itl = #t > 1 and (t[#t] - t[1]) / (#t - 1) or 0
  end
end

return Request
