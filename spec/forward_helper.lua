-- For the forward-pass specs (CPU and GPU): a model and KV contexts through the FFI, one
-- sequence run in prefill chunks, and the relative difference of two rows of logits.
local C = require "yaie.c"
local ffi, lib = C.ffi, C.lib
local assert = require "luassert"

local F = {}

function F.load_model(path)
  local out = ffi.new("yaie_model*[1]")
  C.check(lib.yaie_model_load(path, out))
  return ffi.gc(out[0], lib.yaie_model_free)
end

-- device: 0 the CPU (default), 1 CUDA.
function F.new_context(model, n_pages, page_size, max_batch, device)
  local out = ffi.new("yaie_context*[1]")
  local p = ffi.new("yaie_context_params", { n_pages = n_pages, page_size = page_size,
    max_batch_tokens = max_batch, n_threads = 0, device = device or 0 })
  C.check(lib.yaie_context_new(model, p, out))
  return ffi.gc(out[0], lib.yaie_context_free)
end

-- Runs toks through one sequence in chunks of `chunk`; returns the last row of logits (a list).
function F.run_sequence(ctx, pages_list, toks, chunk, vocab)
  local pages = C.int32_array(pages_list)
  local arr = C.int32_array(toks)
  local seq = ffi.new("yaie_seq[1]")
  seq[0].pages, seq[0].n_pages = pages, #pages_list
  local batch = ffi.new("yaie_batch", { seqs = seq, n_seqs = 1 })
  local n = ffi.new("int[1]")
  local logits
  for pos = 0, #toks - 1, chunk do
    seq[0].tokens, seq[0].n_tokens, seq[0].pos = arr + pos, math.min(chunk, #toks - pos), pos
    C.check(lib.yaie_forward(ctx, batch))
    logits = lib.yaie_context_logits(ctx, n)
  end
  local out = {}
  for i = 0, vocab - 1 do out[i + 1] = logits[i] end
  return out
end

-- max |a - b| / max |a|
function F.max_rel_diff(a, b)
  local worst, scale = 0, 0
  for i = 1, #a do scale = math.max(scale, math.abs(a[i])) end
  for i = 1, #a do worst = math.max(worst, math.abs(a[i] - b[i]) / scale) end
  return worst
end

-- n page ids first, first + step, ...
function F.seq_pages(n, first, step)
  local t = {}
  for i = 1, n do t[i] = first + (i - 1) * step end
  return t
end

-- The paged-KV scenarios both backends must pass, as busted cases (`it` is passed in, since
-- busted's functions live in the spec file's environment): the same logits, within tol, for
-- every page size and a reversed page order, for every prefill chunk size, and for a sequence
-- run beside another in one step. o = { model, tokens, vocab, tol, page_sizes,
-- new_context = function(n_pages, page_size, max_batch), reference = function() ... }
function F.same_logits_cases(it, o)
  local function run(ctx, pages, toks, chunk) -- Cascade attention scenarios (both backends): m sequences share a 16-token prefix (pages shared
-- by id), each then has a suffix of its own; one decode step of all of them gives the same logits
-- with groups as without. o = { model, vocab, tol, new_context = function(n_pages, page_size,
-- max_batch) }; cases = list of { members = m, page_size = ps, groups = function(m) -> list of
-- {start, end, rows (0-based)} }.
function F.cascade_logits(o, members, ps, groups_of)
  local prefix_len, vocab = 16, o.vocab
  local prefix_pages = math.ceil(prefix_len / ps)
  local per_seq = prefix_pages + math.ceil(8 / ps) + 1
  local ctx = o.new_context(prefix_pages + members * per_seq, ps, math.max(64, members))
  local prefix = {}
  for i = 1, prefix_len do prefix[i] = (i * 31 + 7) % vocab end
  -- The prefix once, in the shared pages 0 .. prefix_pages - 1.
  F.run_sequence(ctx, F.seq_pages(prefix_pages, 0, 1), prefix, 16, vocab)
  local tables, keep, seqs = {}, {}, ffi.new("yaie_seq[?]", members)
  for s = 0, members - 1 do
    local t = F.seq_pages(prefix_pages, 0, 1)
    for p = 1, per_seq - prefix_pages do t[#t + 1] = prefix_pages + s * (per_seq - prefix_pages) + p - 1 end
    tables[s] = C.int32_array(t)
    -- Its own suffix (1..6 tokens) after the prefix, prefilled alone.
    local own = {}
    for i = 1, 1 + s % 6 do own[i] = (s * 17 + i * 5 + 3) % vocab end
    local arr = C.int32_array(own)
    local one = ffi.new("yaie_seq[1]", { { tokens = arr, n_tokens = #own, pos = prefix_len, pages = tables[s],
      n_pages = #t, all_logits = 0 } })
    C.check(lib.yaie_forward(ctx, ffi.new("yaie_batch", { seqs = one, n_seqs = 1 })))
    local tok = C.int32_array { (s * 7 + 1) % vocab }
    keep[#keep + 1], keep[#keep + 2] = arr, tok
    seqs[s] = { tokens = tok, n_tokens = 1, pos = prefix_len + #own, pages = tables[s], n_pages = #t, all_logits = 0 }
  end
  local function step(groups)
    local batch = ffi.new("yaie_batch", { seqs = seqs, n_seqs = members })
    local arr, rows
    if groups then
      arr, rows = ffi.new("yaie_group[?]", #groups), {}
      for i, g in ipairs(groups) do
        rows[i] = C.int32_array(g[3])
        arr[i - 1] = { start = g[1], ["end"] = g[2], rows = rows[i], n_rows = #g[3] }
      end
      batch.groups, batch.n_groups = arr, #groups
    end
    C.check(lib.yaie_forward(ctx, batch))
    local n = ffi.new("int[1]")
    local l = lib.yaie_context_logits(ctx, n)
    local out = {}
    for s = 0, members - 1 do
      out[s] = {}
      for i = 0, vocab - 1 do out[s][i + 1] = l[s * vocab + i] end
    end
    return out
  end
  local plain = step(nil)
  local cascade = step(groups_of(members))
  local worst = 0
  for s = 0, members - 1 do worst = math.max(worst, F.max_rel_diff(plain[s], cascade[s])) end
  return worst, ctx, seqs, plain, cascade
end

-- Groups for the scenario: all members over [0, 10) (ending mid-page for page sizes 4 and 16),
-- then every other member over [10, 16): two levels.
function F.two_level_groups(members)
  local all, even = {}, {}
  for s = 0, members - 1 do
    all[#all + 1] = s
    if s % 2 == 0 then even[#even + 1] = s end
  end
  local groups = { { 0, 10, all } }
  if #even > 0 and members > 1 then groups[2] = { 10, 16, even } end
  return groups
end

return F.run_sequence(ctx, pages, toks, chunk, o.vocab) end
  local tokens, vocab, tol = o.tokens, o.vocab, o.tol

  it("gives the same logits for page sizes " .. table.concat(o.page_sizes, ", ") .. " and any page order", function()
    for _, ps in ipairs(o.page_sizes) do
      local n = math.ceil(#tokens / ps)
      local got = run(o.new_context(n + 5, ps, 64), F.seq_pages(n, n + 4, -1), tokens, 64) -- pages reversed
      assert.is_true(F.max_rel_diff(o.reference(), got) < tol, "page size " .. ps)
    end
  end)

  it("gives the same logits whatever the prefill chunk size", function()
    for _, chunk in ipairs { 1, 3, 7, 39 } do
      local got = run(o.new_context(8, 16, 64), F.seq_pages(3, 0, 1), tokens, chunk)
      assert.is_true(F.max_rel_diff(o.reference(), got) < tol, "chunk " .. chunk)
    end
  end)

  it("runs several sequences in one step as if each ran alone", function()
    local ctx = o.new_context(17, 4, 128)
    local other = {}
    for i = 1, 25 do other[i] = (i * 13 + 5) % vocab end
    local a_pages, b_pages = C.int32_array(F.seq_pages(10, 0, 1)), C.int32_array(F.seq_pages(7, 10, 1))
    local a, b = C.int32_array(tokens), C.int32_array(other)
    local seqs = ffi.new("yaie_seq[2]")
    seqs[0] = { tokens = a, n_tokens = #tokens, pos = 0, pages = a_pages, n_pages = 10, all_logits = 0 }
    seqs[1] = { tokens = b, n_tokens = #other, pos = 0, pages = b_pages, n_pages = 7, all_logits = 1 }
    C.check(lib.yaie_forward(ctx, ffi.new("yaie_batch", { seqs = seqs, n_seqs = 2 })))
    local n = ffi.new("int[1]")
    local logits = lib.yaie_context_logits(ctx, n)
    assert.are.equal(1 + #other, n[0])
    local first, last = {}, {}
    for i = 0, vocab - 1 do
      first[i + 1] = logits[i]
      last[i + 1] = logits[#other * vocab + i]
    end
    assert.is_true(F.max_rel_diff(o.reference(), first) < tol)
    local alone = run(o.new_context(8, 4, 64), F.seq_pages(7, 0, 1), other, 64)
    assert.is_true(F.max_rel_diff(alone, last) < tol)
  end)
end

-- Cascade attention scenarios (both backends): m sequences share a 16-token prefix (pages shared
-- by id), each then has a suffix of its own; one decode step of all of them gives the same logits
-- with groups as without. o = { model, vocab, tol, new_context = function(n_pages, page_size,
-- max_batch) }; cases = list of { members = m, page_size = ps, groups = function(m) -> list of
-- {start, end, rows (0-based)} }.
function F.cascade_logits(o, members, ps, groups_of)
  local prefix_len, vocab = 16, o.vocab
  local prefix_pages = math.ceil(prefix_len / ps)
  local per_seq = prefix_pages + math.ceil(8 / ps) + 1
  local ctx = o.new_context(prefix_pages + members * per_seq, ps, math.max(64, members))
  local prefix = {}
  for i = 1, prefix_len do prefix[i] = (i * 31 + 7) % vocab end
  -- The prefix once, in the shared pages 0 .. prefix_pages - 1.
  F.run_sequence(ctx, F.seq_pages(prefix_pages, 0, 1), prefix, 16, vocab)
  local tables, keep, seqs = {}, {}, ffi.new("yaie_seq[?]", members)
  for s = 0, members - 1 do
    local t = F.seq_pages(prefix_pages, 0, 1)
    for p = 1, per_seq - prefix_pages do t[#t + 1] = prefix_pages + s * (per_seq - prefix_pages) + p - 1 end
    tables[s] = C.int32_array(t)
    -- Its own suffix (1..6 tokens) after the prefix, prefilled alone.
    local own = {}
    for i = 1, 1 + s % 6 do own[i] = (s * 17 + i * 5 + 3) % vocab end
    local arr = C.int32_array(own)
    local one = ffi.new("yaie_seq[1]", { { tokens = arr, n_tokens = #own, pos = prefix_len, pages = tables[s],
      n_pages = #t, all_logits = 0 } })
    C.check(lib.yaie_forward(ctx, ffi.new("yaie_batch", { seqs = one, n_seqs = 1 })))
    local tok = C.int32_array { (s * 7 + 1) % vocab }
    keep[#keep + 1], keep[#keep + 2] = arr, tok
    seqs[s] = { tokens = tok, n_tokens = 1, pos = prefix_len + #own, pages = tables[s], n_pages = #t, all_logits = 0 }
  end
  local function step(groups)
    local batch = ffi.new("yaie_batch", { seqs = seqs, n_seqs = members })
    local arr, rows
    if groups then
      arr, rows = ffi.new("yaie_group[?]", #groups), {}
      for i, g in ipairs(groups) do
        rows[i] = C.int32_array(g[3])
        arr[i - 1] = { start = g[1], ["end"] = g[2], rows = rows[i], n_rows = #g[3] }
      end
      batch.groups, batch.n_groups = arr, #groups
    end
    C.check(lib.yaie_forward(ctx, batch))
    local n = ffi.new("int[1]")
    local l = lib.yaie_context_logits(ctx, n)
    local out = {}
    for s = 0, members - 1 do
      out[s] = {}
      for i = 0, vocab - 1 do out[s][i + 1] = l[s * vocab + i] end
    end
    return out
  end
  local plain = step(nil)
  local cascade = step(groups_of(members))
  local worst = 0
  for s = 0, members - 1 do worst = math.max(worst, F.max_rel_diff(plain[s], cascade[s])) end
  return worst, ctx, seqs, plain, cascade
end

-- Groups for the scenario: all members over [0, 10) (ending mid-page for page sizes 4 and 16),
-- then every other member over [10, 16): two levels.
function F.two_level_groups(members)
  local all, even = {}, {}
  for s = 0, members - 1 do
    all[#all + 1] = s
    if s % 2 == 0 then even[#even + 1] = s end
  end
  local groups = { { 0, 10, all } }
  if #even > 0 and members > 1 then groups[2] = { 10, 16, even } end
  return groups
end

return F
