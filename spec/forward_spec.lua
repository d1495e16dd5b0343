-- The CPU forward pass over paged KV: the same tokens give the same logits whatever the page
-- size, the page order, the prefill chunking or the other sequences in the batch.
local H = require "helper"
local C = require "yaie.c"
local ffi, lib = C.ffi, C.lib

local F = require "forward_helper"
local load_model, max_rel_diff, seq_pages = F.load_model, F.max_rel_diff, F.seq_pages
local function new_context(model, n_pages, page_size, max_batch)
  return F.new_context(model, n_pages, page_size, max_batch, 0)
end

local model = load_model(H.stories .. "/stories260K.bin")
local vocab = 512
local tokens = {}
for i = 1, 40 do tokens[i] = (i * 37 + 11) % vocab end

local function run_sequence(ctx, pages_list, toks, chunk)
  return F.run_sequence(ctx, pages_list, toks, chunk, vocab)
end

describe("the CPU forward pass", function()
  local reference
  setup(function()
    reference = run_sequence(new_context(model, 64, 16, 64), seq_pages(3, 0, 1), tokens, 64)
  end)

  it("gives the same logits for page sizes 1, 7 and 16 and any page order", function()
    for _, ps in ipairs { 1, 7, 16 } do
      local n = math.ceil(#tokens / ps)
      local ctx = new_context(model, n + 5, ps, 64)
      local got = run_sequence(ctx, seq_pages(n, n + 4, -1), tokens, 64) -- pages in reverse order
      assert.is_true(max_rel_diff(reference, got) < 1e-5, "page size " .. ps)
    end
  end)

  it("gives the same logits whatever the prefill chunk size", function()
    for _, chunk in ipairs { 1, 3, 7, 39 } do
      local got = run_sequence(new_context(model, 8, 16, 64), seq_pages(3, 0, 1), tokens, chunk)
      assert.is_true(max_rel_diff(reference, got) < 1e-5, "chunk " .. chunk)
    end
  end)

  it("runs several sequences in one step as if each ran alone", function()
    local ctx = new_context(model, 17, 4, 128)
    local other = {}
    for i = 1, 25 do other[i] = (i * 13 + 5) % vocab end
    local a_pages, b_pages = C.int32_array(seq_pages(10, 0, 1)), C.int32_array(seq_pages(7, 10, 1))
    local a, b = C.int32_array(tokens), C.int32_array(other)
    local seqs = ffi.new("yaie_seq[2]")
    seqs[0] = { tokens = a, n_tokens = #tokens, pos = 0, pages = a_pages, n_pages = 10, all_logits = 0 }
    seqs[1] = { tokens = b, n_tokens = #other, pos = 0, pages = b_pages, n_pages = 7, all_logits = 1 }
    C.check(lib.yaie_forward(ctx, ffi.new("yaie_batch", { seqs = seqs, n_seqs = 2 })))
    local n = ffi.new("int[1]")
    local logits = lib.yaie_context_logits(ctx, n)
    assert.are.equal(1 + #other, n[0])
    local first = {}
    for i = 0, vocab - 1 do first[i + 1] = logits[i] end
    assert.is_true(max_rel_diff(reference, first) < 1e-5)
    local alone = run_sequence(new_context(model, 8, 4, 64), seq_pages(7, 0, 1), other, 64)
    local last = {}
    for i = 0, vocab - 1 do last[i + 1] = logits[#other * vocab + i] end
    assert.is_true(max_rel_diff(alone, last) < 1e-5)
  end)

  it("rejects bad batches with a message and no damage", function()
    local ctx = new_context(model, 2, 16, 8)
    local toks = C.int32_array { 1, 2, 3 }
    local pages = C.int32_array { 0, 1 }
    local seq = ffi.new("yaie_seq[1]")
    local batch = ffi.new("yaie_batch", { seqs = seq, n_seqs = 1 })
    local function expect(pattern, fields)
      seq[0] = { tokens = toks, n_tokens = 3, pos = 0, pages = pages, n_pages = 2, all_logits = 0 }
      for k, v in pairs(fields) do seq[0][k] = v end
      assert.are_not.equal(0, lib.yaie_forward(ctx, batch))
      assert.matches(pattern, ffi.string(lib.yaie_last_error()))
    end
    expect("past the model's context", { pos = 511 })
    expect("pages hold", { pos = 30 })
    expect("outside %[0, 2%)", { pages = C.int32_array { 0, 5 } })
    expect("max_batch_tokens", { n_tokens = 9, tokens = C.int32_array { 1, 2, 3, 4, 5, 6, 7, 8, 9 } })
    expect("outside the vocabulary", { tokens = C.int32_array { 1, 600, 3 } })
    seq[0] = { tokens = toks, n_tokens = 3, pos = 0, pages = pages, n_pages = 2, all_logits = 0 }
    assert.are.equal(0, lib.yaie_forward(ctx, batch))
  end)
end)
