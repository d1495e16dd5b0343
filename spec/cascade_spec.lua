-- Cascade attention (engine/runtime/cascade.c, engine/cpu/cascade_cpu.c, lua/yaie/cascade.lua):
-- a shared prefix's part of attention computed once per group gives the logits of plain attention
-- (1e-5 relative on the CPU) for groups of 1, 2, 64 and 256 rows, prefixes ending mid-page, page
-- size 1 and two levels; bad groups are refused with what is wrong; and the engine's grouping
-- from the radix tree gives the tokens of plain attention, in single steps and in rounds.
local H = require "helper"
local yaie = require "yaie"
local C = require "yaie.c"
local F = require "forward_helper"
local ffi, lib = C.ffi, C.lib

local quick = os.getenv("YAIE_SPEC_QUICK") ~= nil
local dir, model, vocab

setup(function()
  dir = H.tmpdir()
  local path = dir .. "/gqa.bin"
  require "yaie.random_model"(path, { dim = 64, hidden = 160, layers = 2, heads = 8, kv_heads = 2, vocab = 96,
    ctx = 256, seed = 11, scale = 0.4, separate_classifier = true })
  model = F.load_model(path)
  vocab = 96
end)
teardown(function() os.execute("rm -rf " .. H.quote(dir)) end)

local function new_context(n_pages, ps, max_batch) return F.new_context(model, n_pages, ps, max_batch) end

describe("cascade attention in the forward pass", function()
  local o = { vocab = 96, new_context = function(...) return new_context(...) end }
  for _, case in ipairs {
    { 1, 4 }, { 2, 4 }, { 64, 16 }, { 5, 1 }, { quick and 64 or 256, 4 },
  } do
    local members, ps = case[1], case[2]
    it(("gives plain attention's logits for %d member(s), page size %d, two levels"):format(members, ps), function()
      local worst = F.cascade_logits(o, members, ps, F.two_level_groups)
      assert.is_true(worst < 1e-5, "max relative difference " .. worst)
    end)
  end

  it("gives plain attention's logits for one level and for groups with sequences outside them", function()
    local worst = F.cascade_logits(o, 6, 4, function() return { { 0, 16, { 1, 2, 4 } } } end)
    assert.is_true(worst < 1e-5, "max relative difference " .. worst)
  end)

  it("refuses groups that leave gaps, overlap, disagree on pages, reach past a row, or name no row", function()
    local _, ctx, seqs = F.cascade_logits(o, 4, 4, F.two_level_groups)
    local function try(groups, tweak)
      local batch = ffi.new("yaie_batch", { seqs = seqs, n_seqs = 4 })
      local arr, keep = ffi.new("yaie_group[?]", #groups), {}
      for i, g in ipairs(groups) do
        keep[i] = C.int32_array(g[3])
        arr[i - 1] = { start = g[1], ["end"] = g[2], rows = keep[i], n_rows = #g[3] }
      end
      batch.groups, batch.n_groups = arr, #groups
      if tweak then tweak(batch) end
      local st = lib.yaie_forward(ctx, batch)
      return st, ffi.string(lib.yaie_last_error())
    end
    local cases = {
      { { { 4, 12, { 0, 1 } } }, "gap or overlap at position 0" },
      { { { 0, 8, { 0, 1 } }, { 4, 12, { 0 } } }, "gap or overlap at position 8" },
      { { { 0, 30, { 0, 1 } } }, "past sequence" },
      { { { 0, 8, { 0, 7 } } }, "outside the batch" },
      { { { 0, 8, {} } }, "no members" },
      { { { 8, 8, { 0 } } }, "empty or negative" },
    }
    for _, c in ipairs(cases) do
      local st, msg = try(c[1])
      assert.are_not.equal(0, st, c[2])
      assert.matches(c[2], msg, 1, true)
    end
    -- Members whose tables disagree on a shared page.
    local table1 = ffi.cast("int32_t *", seqs[1].pages)
    local saved = table1[1]
    table1[1] = saved + 1
    local st, msg = try { { 0, 8, { 0, 1 } } }
    table1[1] = saved
    assert.are_not.equal(0, st)
    assert.matches("hold different pages", msg, 1, true)
  end)
end)

describe("cascade in the engine", function()
  local stories
  local sys = "Once upon a time, there was a little girl named Lily. She liked to play in the park with her friends. "
  local shot = "One day, Lily saw a big dog. The dog was happy and ran. "

  local function run(cfg)
    local opts = { model = stories, page_size = 4, kv_pages = 2048, check = true, threads = 1 }
    for k, v in pairs(cfg) do opts[k] = v end
    local e = yaie.engine(opts)
    e:submit(sys .. shot, { max_tokens = 0 })
    e:run() -- the cache holds the system prompt and the example under it
    local reqs = {}
    for i = 1, 12 do
      reqs[i] = e:submit(sys .. (i % 2 == 0 and shot or "") .. ("Tom %d said"):format(i),
        { max_tokens = 24, temperature = 0, return_logprob = true })
    end
    e:run()
    return reqs, e:stats()
  end

  setup(function() stories = yaie.load { model = H.stories .. "/stories260K.gguf", threads = 1 } end)

  it("groups rows sharing cached prefixes in two levels and gives plain attention's tokens", function()
    local plain = run { cascade = false }
    local seen_levels = 0
    local Cascade = require "yaie.cascade"
    local fill = Cascade.fill
    Cascade.fill = function(self, batch, rows)
      local n = fill(self, batch, rows)
      if n >= 2 then seen_levels = 2 end
      return n
    end
    local ok, cascade, st = pcall(run, { cascade = true })
    local rounds, st_rounds = run { cascade = true, decode_steps = 8 }
    Cascade.fill = fill
    assert.is_true(ok, tostring(cascade))
    assert.are.equal(2, seen_levels, "a step had a group nested in another")
    assert.is_true(st.cascade_steps > 0 and st_rounds.cascade_steps > 0)
    for i = 1, #plain do
      assert.are.same(plain[i].tokens, cascade[i].tokens, "request " .. i)
      assert.are.same(plain[i].tokens, rounds[i].tokens, "request " .. i .. " in rounds")
      for k, lp in ipairs(plain[i].meta.logprobs) do
        assert.is_true(math.abs(lp - cascade[i].meta.logprobs[k]) < 1e-4)
      end
    end
  end)

  it("leaves short shared prefixes to plain attention by default, and refuses a bad cascade option", function()
    local _, st = run {}
    assert.are.equal(0, st.cascade_steps) -- 11 rows x 24 positions saved: under the cost rule's bar
    local ok, err = pcall(run, { cascade = "yes" })
    assert.is_false(ok)
    assert.matches("cascade must be true, false or nil", err)
  end)
end)
