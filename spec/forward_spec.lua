-- The CPU forward pass over paged KV: the same tokens give the same logits whatever the page
-- size, the page order, the prefill chunking or the other sequences in the batch.
local H = require "helper"
local C = require "yaie.c"
local ffi, lib = C.ffi, C.lib

local F = require "forward_helper"

local model = F.load_model(H.stories .. "/stories260K.bin")
local vocab = 512
local tokens = {}
for i = 1, 40 do tokens[i] = (i * 37 + 11) % vocab end

local function new_context(n_pages, page_size, max_batch) return F.new_context(model, n_pages, page_size, max_batch, 0) end

describe("the CPU forward pass", function()
  local reference
  F.same_logits_cases(it, {
    tokens = tokens, vocab = vocab, tol = 1e-5, page_sizes = { 1, 7, 16 }, new_context = new_context,
    reference = function()
      reference = reference or F.run_sequence(new_context(64, 16, 64), F.seq_pages(3, 0, 1), tokens, 64, vocab)
      return reference
    end,
  })

  it("gives a prompt's logits through Model:prompt_logits, every row or the last", function()
    local m = require("yaie").load { model = H.stories .. "/stories260K.bin", tokenizer = false }
    local all, n_all, keep_all = m:prompt_logits(tokens, true)
    local last, n_last, keep_last = m:prompt_logits(tokens)
    assert.are.equal(#tokens, n_all)
    assert.are.equal(1, n_last)
    local row_all, row_last = {}, {}
    for i = 0, vocab - 1 do
      row_all[i + 1] = all[(#tokens - 1) * vocab + i]
      row_last[i + 1] = last[i]
    end
    local ref = F.run_sequence(new_context(64, 16, 64), F.seq_pages(3, 0, 1), tokens, 64, vocab)
    assert.is_true(F.max_rel_diff(ref, row_last) < 1e-5)
    assert.is_true(F.max_rel_diff(row_last, row_all) < 1e-5)
    assert.is_truthy(keep_all and keep_last) -- the contexts the logits live in
  end)

  it("rejects bad batches with a message and no damage", function()
    local ctx = new_context(2, 16, 8)
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
