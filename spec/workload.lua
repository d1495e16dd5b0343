-- For the engine specs (CPU and GPU): deterministic token-id workloads with shared prefixes, the
-- reference tokens of each request run alone, and a run that submits in waves.
local W = {}

-- A deterministic generator of small integers for building prompts.
function W.lcg(seed)
  local s = seed
  return function(n)
    s = (s * 1103515245 + 12345) % 2147483648
    return math.floor(s / 65536) % n
  end
end

local function concat(...)
  local out = {}
  for _, list in ipairs { ... } do
    for _, t in ipairs(list) do out[#out + 1] = t end
  end
  return out
end

-- n requests over a few shared system prompts, some with a shared middle part, a unique tail of
-- 0..22 tokens (0: the same prompt as another request), and 4..32 (+ extra) new tokens each.
function W.random(vocab, n, seed, extra)
  local rand = W.lcg(seed)
  local function ids(len)
    local t = {}
    for i = 1, len do t[i] = 3 + rand(vocab - 3) end
    return t
  end
  local roots, mids = {}, {}
  for k = 1, 4 do roots[k] = ids(9 + 9 * k) end
  for k = 1, 3 do mids[k] = ids(12) end
  local work = {}
  for i = 1, n do
    local mid = i % 2 == 0 and mids[i % 3 + 1] or {}
    local tail = (i % 5 == 0) and {} or ids(i * 7 % 23)
    work[i] = { ids = concat(roots[i % 4 + 1], mid, tail), max_tokens = (extra or 0) + 4 + i * 13 % 29 }
  end
  return work
end

-- Each request alone, through the single-sequence generate path (no scheduler, no pages shared).
function W.references(model, work, opts)
  local out = {}
  for i, w in ipairs(work) do
    local _, stats = model:generate(w.ids, { max_tokens = w.max_tokens, temperature = 0,
      ignore_eos = opts and opts.ignore_eos })
    out[i] = stats.tokens
  end
  return out
end

-- Runs a first wave of 6 requests to the end (so that the cache holds their prefixes), then
-- submits half of the rest, steps a few times and submits the others while those run.
function W.run(engine, work, opts)
  local reqs = {}
  local function submit(from, to)
    for i = from, to do
      reqs[i] = engine:submit(work[i].ids, { max_tokens = work[i].max_tokens, temperature = 0,
        ignore_eos = opts and opts.ignore_eos })
    end
  end
  local half = math.ceil((#work + 6) / 2)
  submit(1, 6)
  engine:run()
  submit(7, half)
  for _ = 1, 3 do engine:step() end
  submit(half + 1, #work)
  engine:run()
  return reqs
end

return W
