-- The constrained-decoding benchmark: build_dir/yaie run scripts/bench/constrain.lua [tokenizer]
--
-- On the 32000-token Llama 2 vocabulary (default), for a few regexes: generates token sequences
-- under the constraint (random logits, seeded), then times, per generated token,
--   cold   the mask lookup on a fresh constraint: each new state's mask is computed then (the DFA
--          states it needs are built on the way), so this is the first request's cost;
--   warm   the same lookups again: every mask is cached;
--   adv    advancing the state by the token (warm);
-- and, per mask computed again on a warm DFA, the walk over the vocabulary's byte trie against
-- the walk token by token. "sample" is yaie_sampler_sample at temperature 1 over 32000 logits
-- without a mask and with one, so the mask's share of a sampling step shows.
local C = require "yaie.c"
local con = require "yaie.constrain"
local T = require "yaie.tokenizer"
local ffi, lib = C.ffi, C.lib
local now = C.now

pcall(ffi.cdef, "yaie_status yaie_constraint_mask_compute(yaie_constraint *c, int state, int use_trie, uint8_t *out);")

local root = C.root
local tok_path = arg and arg[1] or (root .. "/../shared/models/llama2-tokenizer/tokenizer.bin")
local N_SEQS, MAX_TOKENS = 8, 64

local REGEXES = {
  { "json object", [[\{"name": "[A-Za-z ]{1,20}", "age": (0|[1-9][0-9]{0,2}), "email": "[a-z0-9.]{1,20}@[a-z]{1,10}\.(com|org)", "tags": \[("[a-z]{1,10}"(, "[a-z]{1,10}"){0,4})?\]\}]] },
  { "email", [[[a-z0-9._%+-]{1,30}@[a-z0-9-]{1,20}(\.[a-z0-9-]{1,20}){0,2}\.[a-z]{2,6}]] },
  { "int", con.dtypes.int },
  { "json string", con.dtypes.string },
  { "free line", [[[^\n]{1,300}]] },
}

local function sampler(seed, vocab) return require("yaie.generate").sampler({ temperature = 1, seed = seed }, vocab) end

-- Token sequences sampled under the constraint with random logits (EOS a little favoured once
-- allowed, so sequences end on their own as well as at MAX_TOKENS).
local function sequences(tok, pattern)
  local c = con.new(tok, { regex = pattern })
  local vocab = tok.vocab_size
  local logits, id = ffi.new("float[?]", vocab), ffi.new("int32_t[1]")
  local seqs = {}
  for k = 1, N_SEQS do
    local smp, s, seq = sampler(k, vocab), c:start(), {}
    while #seq < MAX_TOKENS and c:can_continue(s) do
      for i = 0, vocab - 1 do logits[i] = math.random() * 6 end
      logits[tok.eos] = logits[tok.eos] + 4
      C.check(lib.yaie_sampler_sample(smp, logits, c:mask(s), id, nil))
      if id[0] == tok.eos then break end
      seq[#seq + 1] = tonumber(id[0])
      s = c:advance(s, id[0])
    end
    seqs[k] = seq
  end
  return seqs
end

-- Walks every sequence: the states before each token, timing the mask lookups.
local function pass(c, seqs)
  local t_mask, t_adv, n, states = 0, 0, 0, {}
  for _, seq in ipairs(seqs) do
    local s = c:start()
    for _, id in ipairs(seq) do
      local t0 = now()
      c:mask(s)
      local t1 = now()
      s = c:advance(s, id)
      t_adv = t_adv + now() - t1
      t_mask = t_mask + t1 - t0
      n = n + 1
      states[#states + 1] = s
    end
  end
  return t_mask, t_adv, n, states
end

local function bench(tok, name, pattern)
  math.randomseed(7)
  local seqs = sequences(tok, pattern)
  local t0 = now()
  local c = con.new(tok, { regex = pattern })
  local t_new = now() - t0
  local cold, _, n = pass(c, seqs)
  local computed = c:stats().masks
  local warm, adv = math.huge, math.huge
  for _ = 1, 20 do
    local w, a = pass(c, seqs)
    warm, adv = math.min(warm, w), math.min(adv, a)
  end
  -- the distinct states' masks recomputed without the cache: trie vs token by token
  local seen, distinct = {}, {}
  local _, _, _, states = pass(c, seqs)
  table.insert(states, 1, c:start())
  for _, s in ipairs(states) do
    if not seen[s] then seen[s] = true distinct[#distinct + 1] = s end
  end
  local buf = ffi.new("uint8_t[?]", c.vocab_size)
  local function walk(use_trie)
    local best = math.huge
    for _ = 1, 3 do
      local t1 = now()
      for _, s in ipairs(distinct) do C.check(lib.yaie_constraint_mask_compute(c.ptr, s, use_trie, buf)) end
      best = math.min(best, now() - t1)
    end
    return best / #distinct
  end
  local trie, naive = walk(1), walk(0)
  local st = c:stats()
  return {
    name = name, tokens = n, new_ms = t_new * 1e3, cold_us = cold / n * 1e6, warm_us = warm / n * 1e6,
    adv_us = adv / n * 1e6, per_mask_us = cold / math.max(computed, 1) * 1e6, computed = computed,
    trie_us = trie * 1e6, naive_us = naive * 1e6, dfa = st.dfa_states, unique = st.unique_masks,
    mask_mb = st.mask_bytes / 2 ^ 20,
  }
end

local function sample_cost(tok)
  local vocab = tok.vocab_size
  local logits, src, id = ffi.new("float[?]", vocab), ffi.new("float[?]", vocab), ffi.new("int32_t[1]")
  for i = 0, vocab - 1 do src[i] = math.random() * 6 end
  local c = con.new(tok, { regex = "[^\\n]{1,300}" })
  local mask = c:mask(c:start())
  local smp = sampler(1, vocab)
  local function time(m)
    local best = math.huge
    for _ = 1, 5 do
      local t0 = now()
      for _ = 1, 200 do
        ffi.copy(logits, src, vocab * 4)
        C.check(lib.yaie_sampler_sample(smp, logits, m, id, nil))
      end
      best = math.min(best, (now() - t0) / 200)
    end
    return best * 1e6
  end
  return time(nil), time(mask)
end

local tok = T.load(tok_path)
print(("vocabulary: %s (%d tokens)"):format(tok_path:match("[^/]*/[^/]*$") or tok_path, tok.vocab_size))
print(("%-12s %6s %8s %9s %9s %8s %8s %9s %9s %9s %7s %6s %7s %7s"):format("regex", "tokens", "new ms",
  "cold us/t", "warm us/t", "adv us/t", "masks", "us/mask", "trie us", "naive us", "speedup", "dfa", "unique", "MiB"))
for _, r in ipairs(REGEXES) do
  local b = bench(tok, r[1], r[2])
  print(("%-12s %6d %8.1f %9.1f %9.3f %8.3f %8d %9.1f %9.1f %9.1f %6.1fx %6d %7d %7.1f"):format(b.name, b.tokens,
    b.new_ms, b.cold_us, b.warm_us, b.adv_us, b.computed, b.per_mask_us, b.trie_us, b.naive_us,
    b.naive_us / b.trie_us, b.dfa, b.unique, b.mask_mb))
end
local plain, masked = sample_cost(tok)
print(("sample (temperature 1, %d logits): %.1f us without a mask, %.1f us with one"):format(tok.vocab_size, plain, masked))
