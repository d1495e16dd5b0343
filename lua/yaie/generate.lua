-- Single-sequence generation on a loaded model: m:generate(prompt, opts). The prompt is
-- prefilled in chunks, then one token per step is sampled, streamed and checked against the
-- stop rules. (Many sequences at once go through the engine's scheduler instead.)
local C = require "yaie.c"
local ffi, lib = C.ffi, C.lib

local M = {}

local sampler_defaults = {
  temperature = 0.8, top_k = 0, top_p = 1.0, min_p = 0.0,
  repetition_penalty = 1.0, frequency_penalty = 0.0, presence_penalty = 0.0,
}

function M.sampler(opts, vocab_size)
  local p = ffi.new("yaie_sampler_params")
  for k, v in pairs(sampler_defaults) do p[k] = opts[k] == nil and v or opts[k] end
  p.seed = opts.seed or math.floor(C.now() * 1e6)
  local out = ffi.new("yaie_sampler*[1]")
  C.check(lib.yaie_sampler_new(p, vocab_size, out))
  return ffi.gc(out[0], lib.yaie_sampler_free)
end

local function prompt_ids(model, prompt)
  local tok = model.tokenizer
  if type(prompt) == "table" then return prompt end
  if not tok then
    error(model.path .. ": no tokenizer found with the model; give one with tokenizer = PATH (--tokenizer)", 0)
  end
  local ids = tok:encode(prompt or "", { add_bos = tok.add_bos })
  if #ids == 0 then
    if tok.bos < 0 then error("an empty prompt needs a BOS token, and this tokenizer has none", 0) end
    ids = { tok.bos }
  end
  return ids
end

-- The token ids that end a generation: EOS (and BOS, below) unless ignore_eos, and the
-- request's stop_token_ids (a list or one id). Shared with the engine's requests.
function M.stop_token_set(tok, opts)
  local set = {}
  if tok and not opts.ignore_eos then
    if tok.eos >= 0 then set[tok.eos] = true end
    -- llama2.c-style models delimit stories with BOS: a generated BOS ends the text.
    if tok.bos >= 0 then set[tok.bos] = true end
  end
  local extra = opts.stop_token_ids
  for _, id in ipairs(type(extra) == "table" and extra or { extra }) do set[id] = true end
  return set
end

-- Generates from `prompt` (text, or a list of token ids). opts: max_tokens, the sampler's
-- fields, seed, stop_token_ids, ignore_eos, echo (stream the prompt's text too),
-- on_text(piece) for streaming. Returns the generated text and a table of statistics.
function M.generate(model, prompt, opts)
  opts = opts or {}
  local cfg = model.config
  local ids = prompt_ids(model, prompt)
  if #ids >= cfg.max_seq_len then
    error(("prompt of %d tokens does not fit the model's context of %d tokens"):format(#ids, cfg.max_seq_len), 0)
  end
  local max_new = math.min(opts.max_tokens or 256, cfg.max_seq_len - #ids)
  local chunk = opts.chunk or 512
  local ctx, params = model:context(#ids + max_new, 16, math.min(chunk, #ids + max_new))
  local pages = ffi.new("int32_t[?]", params.n_pages)
  for i = 0, params.n_pages - 1 do pages[i] = i end
  local sampler = M.sampler(opts, cfg.vocab_size)
  local stops = M.stop_token_set(model.tokenizer, opts)
  local dec = model.tokenizer and model.tokenizer:decoder()
  local on_text = opts.on_text

  local all = ffi.new("int32_t[?]", #ids + max_new + 1)
  for i, id in ipairs(ids) do
    all[i - 1] = id
    lib.yaie_sampler_accept(sampler, id)
  end
  -- The decoder sees the prompt too (SentencePiece drops the dummy-prefix space of the first
  -- piece only); the echo is the prompt as given, special tokens included.
  if dec then
    for _, id in ipairs(ids) do dec:push(id) end
  end
  if opts.echo and on_text and type(prompt) == "string" then on_text(prompt) end

  local seq = ffi.new("yaie_seq[1]")
  local batch = ffi.new("yaie_batch", { seqs = seq, n_seqs = 1 })
  seq[0].pages, seq[0].n_pages = pages, params.n_pages
  local function forward(pos, n)
    seq[0].tokens, seq[0].n_tokens, seq[0].pos = all + pos, n, pos
    C.check(lib.yaie_forward(ctx, batch))
  end
  -- Sampling goes through the step call, so on a GPU only the token id comes back.
  local samplers = ffi.new("yaie_sampler*[1]", { sampler })

  local t0 = C.now()
  for pos = 0, #ids - 1, chunk do
    forward(pos, math.min(chunk, #ids - pos))
  end
  local t1 = C.now()
  local n, out_ids, pieces, reason = #ids, {}, {}, "length"
  local id = ffi.new("int32_t[1]")
  while #out_ids < max_new do
    C.check(lib.yaie_sample_step(ctx, batch, samplers, nil, id, nil))
    local tok_id = tonumber(id[0])
    if stops[tok_id] then reason = "stop" break end
    lib.yaie_sampler_accept(sampler, tok_id)
    out_ids[#out_ids + 1] = tok_id
    all[n] = tok_id
    n = n + 1
    if dec then
      local piece = dec:push(tok_id)
      pieces[#pieces + 1] = piece
      if on_text and #piece > 0 then on_text(piece) end
    end
    if #out_ids < max_new then forward(n - 1, 1) end
  end
  if dec then
    local rest = dec:flush()
    pieces[#pieces + 1] = rest
    if on_text and #rest > 0 then on_text(rest) end
  end
  local t2 = C.now()
  local decode_s = t2 - t1
  return table.concat(pieces), {
    prompt_tokens = #ids, completion_tokens = #out_ids, tokens = out_ids, finish_reason = reason,
    prefill_s = t1 - t0, decode_s = decode_s,
    prefill_tok_s = #ids / math.max(t1 - t0, 1e-9),
    decode_tok_s = #out_ids / math.max(decode_s, 1e-9),
  }
end

return M
