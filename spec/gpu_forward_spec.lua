-- The CUDA backend (#gpu: run with `busted --run=gpu` where a GPU is; skipped elsewhere): the
-- CPU forward pass's scenarios on the GPU (page sizes, page order, prefill chunking, several
-- sequences in one step), its logits against the CPU's fp32 ones, and sampling on the GPU.
-- The GPU computes in bf16 with fp32 accumulation, so logits agree within bf16 bounds (the
-- CPU's own scenarios ask for 1e-5); tokens are compared exactly.
local H = require "helper"
local C = require "yaie.c"
local ffi, lib = C.ffi, C.lib

local gpu_ok = lib.yaie_device_check(1) == 0
local why = gpu_ok and "" or ffi.string(lib.yaie_last_error())
if not gpu_ok then
  describe("the CUDA backend #gpu", function() pending("no usable GPU: " .. why) end)
  return
end

local TOL = 2e-2 -- max |difference| / max |logit|

local F = require "forward_helper"
local max_rel_diff, seq_pages = F.max_rel_diff, F.seq_pages

local model = F.load_model(H.stories .. "/stories260K.bin")
local vocab = 512
local tokens = {}
for i = 1, 40 do tokens[i] = (i * 37 + 11) % vocab end

local function new_context(model_, n_pages, page_size, max_batch, device)
  return F.new_context(model_, n_pages, page_size, max_batch, device or 1)
end

local function run_sequence(ctx, pages_list, toks, chunk)
  return F.run_sequence(ctx, pages_list, toks, chunk, vocab)
end

local function argmax(t)
  local best = 1
  for i = 2, #t do if t[i] > t[best] then best = i end end
  return best
end

describe("the CUDA forward pass #gpu", function()
  local reference, cpu
  setup(function()
    reference = run_sequence(new_context(model, 64, 16, 64), seq_pages(3, 0, 1), tokens, 64)
    cpu = run_sequence(new_context(model, 64, 16, 64, 0), seq_pages(3, 0, 1), tokens, 64)
  end)

  it("agrees with the CPU's fp32 logits within bf16 bounds", function()
    local d = max_rel_diff(cpu, reference)
    print(("  stories260K GPU vs CPU logits: max rel diff %.2e"):format(d))
    assert.is_true(d < TOL, d)
    assert.are.equal(argmax(cpu), argmax(reference))
  end)

  F.same_logits_cases(it, {
    tokens = tokens, vocab = vocab, tol = TOL, page_sizes = { 1, 7, 16, 64 },
    new_context = function(n_pages, page_size, max_batch) return new_context(model, n_pages, page_size, max_batch) end,
    reference = function() return reference end,
  })

  it("decodes through CUDA graphs as it does without them", function()
    -- Decode steps of one token for 3 sequences: the graph path (bucket 4, padded) runs from
    -- the second step of a bucket on; compare every step with a step of one sequence at a time.
    local ctx, solo = new_context(model, 40, 16, 64), new_context(model, 40, 16, 64)
    local pages = { C.int32_array(seq_pages(4, 0, 1)), C.int32_array(seq_pages(4, 4, 1)), C.int32_array(seq_pages(4, 8, 1)) }
    local seqs = ffi.new("yaie_seq[3]")
    local one = ffi.new("yaie_seq[1]")
    local n = ffi.new("int[1]")
    local cur = { 1, 7, 300 }
    local worst = 0
    for step = 0, 12 do
      local toks = {}
      for s = 1, 3 do
        toks[s] = C.int32_array { cur[s] }
        seqs[s - 1] = { tokens = toks[s], n_tokens = 1, pos = step, pages = pages[s], n_pages = 4, all_logits = 0 }
      end
      C.check(lib.yaie_forward(ctx, ffi.new("yaie_batch", { seqs = seqs, n_seqs = 3 })))
      local lg = lib.yaie_context_logits(ctx, n)
      local rows = {}
      for s = 1, 3 do
        rows[s] = {}
        for i = 0, vocab - 1 do rows[s][i + 1] = lg[(s - 1) * vocab + i] end
      end
      for s = 1, 3 do
        one[0] = seqs[s - 1]
        C.check(lib.yaie_forward(solo, ffi.new("yaie_batch", { seqs = one, n_seqs = 1 })))
        local l1 = lib.yaie_context_logits(solo, n)
        local alone = {}
        for i = 0, vocab - 1 do alone[i + 1] = l1[i] end
        worst = math.max(worst, max_rel_diff(alone, rows[s]))
        cur[s] = argmax(rows[s]) - 1
      end
    end
    assert.is_true(worst < TOL, worst)
  end)
end)

describe("sampling on the GPU #gpu", function()
  local gen = require "yaie.generate"

  local function step_sample(ctx, seq, samplers, want_lp)
    C.check(lib.yaie_forward(ctx, ffi.new("yaie_batch", { seqs = seq, n_seqs = 1 })))
    local out, lp = ffi.new("int32_t[1]"), ffi.new("float[1]")
    C.check(lib.yaie_sample_step(ctx, ffi.new("yaie_batch", { seqs = seq, n_seqs = 1 }), samplers, nil, out,
      want_lp and lp or nil))
    return tonumber(out[0]), tonumber(lp[0])
  end

  it("is greedy at temperature 0 and reports the chosen token's logprob", function()
    local ctx = new_context(model, 8, 16, 64)
    local seq = ffi.new("yaie_seq[1]")
    local arr, pages = C.int32_array(tokens), C.int32_array(seq_pages(3, 0, 1))
    seq[0] = { tokens = arr, n_tokens = #tokens, pos = 0, pages = pages, n_pages = 3, all_logits = 0 }
    local samplers = ffi.new("yaie_sampler*[1]", { gen.sampler({ temperature = 0 }, vocab) })
    local id, lp = step_sample(ctx, seq, samplers, true)
    local logits = run_sequence(new_context(model, 8, 16, 64), seq_pages(3, 0, 1), tokens, 64)
    assert.are.equal(argmax(logits) - 1, id)
    local mx, z = -math.huge, 0
    for _, l in ipairs(logits) do mx = math.max(mx, l) end
    for _, l in ipairs(logits) do z = z + math.exp(l - mx) end
    assert.is_true(math.abs(lp - (logits[id + 1] - mx - math.log(z))) < 1e-3)
  end)

  it("samples reproducibly with a seed, with penalties, truncation and a mask", function()
    local function draw(seed, mask_odd)
      local ctx = new_context(model, 8, 16, 64)
      local s = gen.sampler({ temperature = 1.0, top_k = 40, top_p = 0.9, min_p = 0.02, seed = seed,
        repetition_penalty = 1.3, presence_penalty = 0.5 }, vocab)
      local samplers = ffi.new("yaie_sampler*[1]", { s })
      local mask = ffi.new("uint8_t[?]", vocab)
      for i = 0, vocab - 1 do mask[i] = (mask_odd and i % 2 == 0) and 0 or 1 end
      local masks = ffi.new("const uint8_t*[1]", { mask })
      local pages = C.int32_array(seq_pages(4, 0, 1))
      local toks = { 1 }
      local seq = ffi.new("yaie_seq[1]")
      local out = ffi.new("int32_t[1]")
      for pos = 0, 40 do
        local arr = C.int32_array { toks[#toks] }
        seq[0] = { tokens = arr, n_tokens = 1, pos = pos, pages = pages, n_pages = 4, all_logits = 0 }
        C.check(lib.yaie_forward(ctx, ffi.new("yaie_batch", { seqs = seq, n_seqs = 1 })))
        C.check(lib.yaie_sample_step(ctx, ffi.new("yaie_batch", { seqs = seq, n_seqs = 1 }), samplers,
          mask_odd and masks or nil, out, nil))
        local id = tonumber(out[0])
        if mask_odd then assert.are.equal(1, id % 2) end
        lib.yaie_sampler_accept(s, id)
        toks[#toks + 1] = id
      end
      return table.concat(toks, ",")
    end
    assert.are.equal(draw(5), draw(5))
    assert.are_not.equal(draw(5), draw(6))
    draw(7, true)
  end)

  it("prints stories260K's EXPECTED.txt (yaie generate --device cuda)", function()
    local code, out, err = H.yaie { "generate", "--model", H.stories .. "/stories260K.bin", "--tokenizer",
      H.stories .. "/tok512.bin", "--temperature", "0", "-n", "200", "--quiet", "--device", "cuda" }
    assert.are.equal(0, code, err)
    assert.are.equal(H.read(H.stories .. "/EXPECTED.txt") .. "\n", out)
  end)
end)
