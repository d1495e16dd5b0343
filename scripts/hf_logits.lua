-- Prints a model's logits for a fixed token list as JSON, one row per position:
--   yaie run scripts/hf_logits.lua MODEL ID [ID...]
-- scripts/check_hf_transformers.py compares them with transformers' logits.
local C = require "yaie.c"
local ffi, lib = C.ffi, C.lib

local path = arg[1]
local tokens = {}
for i = 2, #arg do tokens[#tokens + 1] = assert(tonumber(arg[i]), "token ids must be numbers") end
assert(path and #tokens > 0, "usage: yaie run scripts/hf_logits.lua MODEL ID [ID...]")

local out = ffi.new("yaie_model*[1]")
C.check(lib.yaie_model_load(path, out))
local model = ffi.gc(out[0], lib.yaie_model_free)
local vocab = lib.yaie_model_config(model).vocab_size

local page_size = 16
local n_pages = math.ceil(#tokens / page_size)
local ctx_out = ffi.new("yaie_context*[1]")
C.check(lib.yaie_context_new(model, ffi.new("yaie_context_params", { n_pages = n_pages, page_size = page_size,
  max_batch_tokens = #tokens, n_threads = 0 }), ctx_out))
local ctx = ffi.gc(ctx_out[0], lib.yaie_context_free)

local pages = {}
for i = 1, n_pages do pages[i] = i - 1 end
local toks, page_arr = C.int32_array(tokens), C.int32_array(pages)
local seq = ffi.new("yaie_seq[1]", { { tokens = toks, n_tokens = #tokens, pos = 0, pages = page_arr,
  n_pages = n_pages, all_logits = 1 } })
C.check(lib.yaie_forward(ctx, ffi.new("yaie_batch", { seqs = seq, n_seqs = 1 })))

local n = ffi.new("int[1]")
local logits = lib.yaie_context_logits(ctx, n)
local rows = {}
for r = 0, n[0] - 1 do
  local row = {}
  for i = 0, vocab - 1 do row[i + 1] = string.format("%.9g", logits[r * vocab + i]) end
  rows[#rows + 1] = "[" .. table.concat(row, ",") .. "]"
end
io.stdout:write('{"vocab":', vocab, ',"logits":[', table.concat(rows, ","), "]}\n")
