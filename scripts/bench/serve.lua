-- Serving benchmark (issue 4): the engine's scheduler, radix cache and policies on stories260K
-- and on a random-weight model with a 4,096-token context (a llama2.c checkpoint written into a
-- temporary directory and deleted after). All prompts are token ids, decoding is greedy with
-- EOS ignored, so every request generates exactly max_tokens tokens.
--
--   shared prefix    64 requests: one 400-token prefix + 40 unique tokens, 64 new tokens each,
--                    radix cache on and off
--   policies         4 prefix groups x 32 requests submitted in a shuffled order, a pool that
--                    holds about two groups at once; fcfs, lpm, dfs_weight, random
--   scheduler cost   Lua time per decode step with 256 running requests, next to the C time
--
-- Usage: yaie run scripts/bench/serve.lua [--quick] [--threads N] [--repeats N]
-- --quick shrinks every workload (a smoke test, not figures to publish); times are the best of
-- --repeats runs (default 2; the counts are the same every run).
local yaie = require "yaie"
local C = require "yaie.c"
local write_random_llama2c = require "yaie.random_model"

local quick, threads, repeats = false, 0, nil
for i = 1, #arg do
  if arg[i] == "--quick" then quick = true end
  if arg[i] == "--threads" then threads = tonumber(arg[i + 1]) end
  if arg[i] == "--repeats" then repeats = tonumber(arg[i + 1]) end
end

local PAGE = 16
local REPEATS = repeats or (quick and 1 or 2)
local W = quick and {
  prefix = 400, unique = 40, new = 16, n_shared = 16,
  groups = 4, per_group = 8,
  running = 64, cost_prompt = 16, cost_new = 16,
} or {
  prefix = 400, unique = 40, new = 64, n_shared = 64,
  groups = 4, per_group = 32,
  running = 256, cost_prompt = 16, cost_new = 64,
}

-- ---------------------------------------------------------------------------------------------
-- Workloads: token-id prompts from a fixed-seed generator, ids in [3, 512) (valid in both
-- models' vocabularies, clear of the special tokens 0-2).

local function rng(seed)
  local state = seed
  return function(n) -- 1..n
    state = (state * 1103515245 + 12345) % 2147483648
    return math.floor(state / 2147483648 * n) + 1
  end
end

local function random_ids(rand, n)
  local t = {}
  for i = 1, n do t[i] = 2 + rand(509) end
  return t
end

local function with_prefix(prefix, rest)
  local t = {}
  for i, id in ipairs(prefix) do t[i] = id end
  for _, id in ipairs(rest) do t[#t + 1] = id end
  return t
end

-- Runs the prompts to completion on a fresh engine; returns the figures of the run.
local function serve_once(model, prompts, max_tokens, opts)
  opts.model, opts.page_size, opts.threads = model, PAGE, threads
  local engine = yaie.engine(opts)
  local reqs = {}
  local t0 = C.now()
  for i, p in ipairs(prompts) do
    reqs[i] = engine:submit(p, { max_tokens = max_tokens, temperature = 0, ignore_eos = true })
  end
  -- engine:run(), adding up the scheduler's (Lua) time of each step.
  local lua_s, s = 0, engine:stats()
  while s.running + s.waiting > 0 do
    assert(engine:step() or s.running > 0, "serve: waiting requests that the pool cannot admit")
    s = engine:stats()
    lua_s = lua_s + s.last_step_lua_ms / 1e3
  end
  local seconds = C.now() - t0
  -- Every generated token but the first costs a one-token decode step; the rest of the
  -- computed tokens are prefill (recomputation after a preemption included).
  local generated, decoded = 0, 0
  for _, r in ipairs(reqs) do
    generated = generated + #r.tokens
    decoded = decoded + math.max(0, #r.tokens - 1)
  end
  engine, reqs = nil, nil
  collectgarbage() -- frees the engine's KV pool before the next run allocates one
  return {
    seconds = seconds, lua_s = lua_s, generated = generated, steps = s.steps, hit_rate = s.hit_rate,
    prompt_tokens = s.prompt_tokens, prefill = s.computed_tokens - decoded, preemptions = s.preemptions,
  }
end

-- The counts are the same every run (greedy, fixed seeds); the times are the best of REPEATS,
-- as the machine may be busy with other work.
local function serve(model, prompts, max_tokens, opts)
  local best
  for _ = 1, REPEATS do
    local r = serve_once(model, prompts, max_tokens, opts)
    if not best or r.seconds < best.seconds then best = r end
  end
  return best
end

-- ---------------------------------------------------------------------------------------------
-- Markdown tables.

-- Columns as wide as their widest cell (in characters: "µs" is one byte longer); numbers to the
-- right.
local function print_table(header, rows)
  local function width(v) return #v:gsub("[\128-\191]", "") end
  local widths = {}
  for i, h in ipairs(header) do widths[i] = width(h) end
  for _, row in ipairs(rows) do
    for i, v in ipairs(row) do widths[i] = math.max(widths[i], width(v)) end
  end
  local function line(cells, fill)
    local out = {}
    for i, v in ipairs(cells) do
      local pad = (" "):rep(widths[i] - width(v))
      out[i] = fill and ("-"):rep(widths[i]) or (v:match("^[%d.-]") and pad .. v or v .. pad)
    end
    print("| " .. table.concat(out, " | ") .. " |")
  end
  line(header)
  line(header, true)
  for _, row in ipairs(rows) do line(row) end
end

local function f(fmt, ...) return fmt:format(...) end

-- ---------------------------------------------------------------------------------------------
-- Shared prefix: radix cache on vs off.

local function shared_prefix(name, model, rows)
  local rand = rng(4)
  local prefix = random_ids(rand, W.prefix)
  local prompts = {}
  for i = 1, W.n_shared do prompts[i] = with_prefix(prefix, random_ids(rand, W.unique)) end
  for _, cache in ipairs { true, false } do
    local r = serve(model, prompts, W.new, { radix_cache = cache, max_running = 64,
      kv_pages = W.n_shared * math.ceil((W.prefix + W.unique + W.new) / PAGE) })
    rows[#rows + 1] = { name, cache and "on" or "off", f("%d", r.prompt_tokens), f("%d", r.prefill),
      f("%.1f%%", 100 * r.hit_rate), f("%d", r.steps), f("%.2f", r.seconds), f("%.2f", r.lua_s),
      f("%.0f", r.generated / r.seconds) }
  end
end

-- ---------------------------------------------------------------------------------------------
-- Policies: groups sharing prefixes, arriving shuffled, in a pool that holds about two groups.

-- A group running at once holds its prefix's pages and each request's own pages (its unique
-- tokens and its output).
local function group_pages()
  local len = W.prefix + W.unique + W.new
  return W.prefix / PAGE + W.per_group * (math.ceil(len / PAGE) - W.prefix / PAGE)
end

local function policies(name, model, rows)
  local rand = rng(7)
  local prompts = {}
  for _ = 1, W.groups do
    local prefix = random_ids(rand, W.prefix)
    for _ = 1, W.per_group do prompts[#prompts + 1] = with_prefix(prefix, random_ids(rand, W.unique)) end
  end
  for i = #prompts, 2, -1 do
    local j = rand(i)
    prompts[i], prompts[j] = prompts[j], prompts[i]
  end
  for _, policy in ipairs { "fcfs", "lpm", "dfs_weight", "random" } do
    local r = serve(model, prompts, W.new, { policy = policy, kv_pages = 2 * group_pages(), max_running = 64 })
    rows[#rows + 1] = { name, policy, f("%.1f%%", 100 * r.hit_rate), f("%d", r.prefill), f("%d", r.steps),
      f("%.2f", r.seconds), f("%.2f", r.lua_s), f("%d", r.preemptions) }
  end
end

-- ---------------------------------------------------------------------------------------------
-- Scheduler cost: Lua and C time of the decode steps that run every request at once.

local function scheduler_cost(name, model, rows)
  local best
  for _ = 1, REPEATS do
    local rand = rng(11)
    local engine = yaie.engine { model = model, page_size = PAGE, threads = threads, max_running = W.running,
      max_batch_tokens = 512, kv_pages = W.running * (math.ceil((W.cost_prompt + W.cost_new) / PAGE) + 1) }
    for _ = 1, W.running do
      engine:submit(random_ids(rand, W.cost_prompt), { max_tokens = W.cost_new, temperature = 0, ignore_eos = true })
    end
    local n, lua_ms, c_ms = 0, 0, 0
    while engine:step() do
      local s = engine:stats()
      if s.last_step_seqs == W.running and s.last_step_tokens == W.running then
        n, lua_ms, c_ms = n + 1, lua_ms + s.last_step_lua_ms, c_ms + s.last_step_c_ms
      end
    end
    engine = nil
    collectgarbage()
    if not best or lua_ms / n < best.lua_ms / best.n then best = { n = n, lua_ms = lua_ms, c_ms = c_ms } end
  end
  local n, lua_ms, c_ms = best.n, best.lua_ms, best.c_ms
  rows[#rows + 1] = { name, f("%d", W.running), f("%d", n), f("%.0f", 1e3 * lua_ms / n), f("%.0f", 1e3 * c_ms / n),
    f("%.1f%%", 100 * lua_ms / (lua_ms + c_ms)) }
end

-- ---------------------------------------------------------------------------------------------

local tmp = os.tmpname()
os.remove(tmp)
os.execute("mkdir -p " .. tmp)
local random_path = tmp .. "/random.bin"
write_random_llama2c(random_path, { dim = 256, hidden = 768, layers = 4, heads = 8, kv_heads = 4,
  vocab = 512, ctx = 4096 })
local models = {
  { "stories260K", yaie.load { model = C.root .. "/../shared/models/stories260K/stories260K.gguf",
    tokenizer = false, threads = threads } },
  { "random, 4k ctx", yaie.load { model = random_path, tokenizer = false, threads = threads } },
}
os.execute("rm -rf " .. tmp) -- the loader copied the weights: the file is no longer needed

local t_all = C.now()
print(f("threads: %s, page size %d, best of %d runs%s", threads == 0 and "all cores" or threads, PAGE,
  REPEATS, quick and ", --quick (smaller workloads)" or ""))
print()
print(f("Shared prefix: %d requests = one %d-token prefix + %d unique tokens, %d new tokens each; max_batch_tokens 512; " ..
  "least possible prefill %d tokens", W.n_shared, W.prefix, W.unique, W.new, W.prefix + W.n_shared * W.unique))
print()
local rows = {}
for _, m in ipairs(models) do shared_prefix(m[1], m[2], rows) end
print_table({ "model", "radix", "prompt tokens", "prefill computed", "hit rate", "steps", "time s", "Lua s",
  "out tok/s" }, rows)

print()
print(f("Policies: %d groups x %d requests (%d-token prefix + %d unique, %d new tokens) in a shuffled order; " ..
  "pool of %d pages of %d (two groups); least possible prefill %d tokens", W.groups, W.per_group, W.prefix, W.unique,
  W.new, 2 * group_pages(), PAGE, W.groups * (W.prefix + W.per_group * W.unique)))
print()
rows = {}
for _, m in ipairs(models) do policies(m[1], m[2], rows) end
print_table({ "model", "policy", "hit rate", "prefill computed", "steps", "time s", "Lua s", "preemptions" }, rows)

print()
print(f("Scheduler cost: decode steps with all %d requests running (%d-token prompts, %d new tokens)",
  W.running, W.cost_prompt, W.cost_new))
print()
rows = {}
for _, m in ipairs(models) do scheduler_cost(m[1], m[2], rows) end
print_table({ "model", "running", "decode steps", "Lua µs/step", "C µs/step", "Lua share" }, rows)
print()
print(f("total %.0f s", C.now() - t_all))
