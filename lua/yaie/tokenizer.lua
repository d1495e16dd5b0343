-- Tokenizers: `local tok = yaie.tokenizer(path)` (llama2.c tokenizer.bin, GGUF, tokenizer.json or
-- a directory holding one), then tok:encode(text, { add_bos = bool }), tok:decode(ids),
-- tok:decoder() for streaming, tok.bos / tok.eos / tok.vocab_size / tok.add_bos, tok:piece(id),
-- tok:chat_template(). Tokenizer.wrap(ptr, owner) views a tokenizer that owner (a model) owns.
local C = require "yaie.c"
local ffi, lib = C.ffi, C.lib

-- Internal to the engine (engine/text/tokenizer.h), so not in the public header the FFI reads.
pcall(ffi.cdef, "yaie_status yaie_tokenizer_save_hf(const yaie_tokenizer *tok, const char *dir);")

local Tokenizer = {}
Tokenizer.__index = Tokenizer

local function new(ptr, owner)
  return setmetatable({
    ptr = ptr,
    owner = owner, -- keeps the model (and so ptr) alive while this object is
    bos = lib.yaie_tokenizer_bos(ptr),
    eos = lib.yaie_tokenizer_eos(ptr),
    vocab_size = lib.yaie_tokenizer_vocab_size(ptr),
    add_bos = lib.yaie_tokenizer_add_bos(ptr) ~= 0,
  }, Tokenizer)
end

local M = {}

function M.load(path)
  assert(type(path) == "string", "yaie.tokenizer: give a path")
  local out = ffi.new("yaie_tokenizer*[1]")
  C.check(lib.yaie_tokenizer_load(path, out))
  return new(ffi.gc(out[0], lib.yaie_tokenizer_free))
end

function M.wrap(ptr, owner)
  assert(ptr ~= nil, "yaie.tokenizer.wrap: NULL tokenizer")
  return new(ptr, owner)
end

local YAIE_ERR_ARG = 4

-- Token ids of text (a Lua list). opts.add_bos defaults to what the tokenizer's metadata asks.
function Tokenizer:encode(text, opts)
  assert(type(text) == "string", "encode: text must be a string")
  local add_bos = opts and opts.add_bos
  if add_bos == nil then add_bos = self.add_bos end
  local n = ffi.new("int[1]")
  local cap = #text + 16
  local buf = ffi.new("int32_t[?]", cap)
  local st = lib.yaie_tokenize(self.ptr, text, #text, add_bos and 1 or 0, buf, cap, n)
  if st == YAIE_ERR_ARG and n[0] > cap then -- more ids than bytes: ask again with room for all
    cap = n[0]
    buf = ffi.new("int32_t[?]", cap)
    st = lib.yaie_tokenize(self.ptr, text, #text, add_bos and 1 or 0, buf, cap, n)
  end
  C.check(st)
  return C.to_list(buf, n[0])
end

-- The text of a list of ids. opts.skip_leading_space (default true) drops SentencePiece's
-- dummy-prefix space, so that decode(encode(s)) == s.
function Tokenizer:decode(ids, opts)
  local skip = not (opts and opts.skip_leading_space == false)
  local arr, n = C.int32_array(ids)
  local len = ffi.new("size_t[1]")
  local cap = n * 8 + 16
  local out = ffi.new("char[?]", cap)
  local st = lib.yaie_detokenize(self.ptr, arr, n, skip and 1 or 0, out, cap, len)
  if st == YAIE_ERR_ARG and len[0] > cap then
    cap = len[0]
    out = ffi.new("char[?]", cap)
    st = lib.yaie_detokenize(self.ptr, arr, n, skip and 1 or 0, out, cap, len)
  end
  C.check(st)
  return ffi.string(out, len[0])
end

-- The token's text as the vocabulary spells it (nil for an id outside it).
function Tokenizer:piece(id)
  local s = lib.yaie_token_text(self.ptr, id)
  return s ~= nil and ffi.string(s) or nil
end

-- The bytes the token decodes to.
function Tokenizer:bytes(id)
  local p, len = ffi.new("const char*[1]"), ffi.new("size_t[1]")
  C.check(lib.yaie_token_bytes(self.ptr, id, p, len))
  return ffi.string(p[0], len[0])
end

function Tokenizer:chat_template()
  local s = lib.yaie_tokenizer_chat_template(self.ptr)
  return s ~= nil and ffi.string(s) or nil
end

-- Writes tokenizer.json and tokenizer_config.json into dir.
function Tokenizer:save_hf(dir)
  C.check(lib.yaie_tokenizer_save_hf(self.ptr, dir))
end

-- Streaming decode: dec:push(id) returns the text that became complete (never half a UTF-8
-- character); dec:flush() returns what is left (an incomplete character as U+FFFD).
local Decoder = {}
Decoder.__index = Decoder

function Tokenizer:decoder()
  local out = ffi.new("yaie_decoder*[1]")
  C.check(lib.yaie_decoder_new(self.ptr, out))
  return setmetatable({
    ptr = ffi.gc(out[0], lib.yaie_decoder_free), tok = self,
    text = ffi.new("const char*[1]"), len = ffi.new("size_t[1]"),
  }, Decoder)
end

function Decoder:push(id)
  C.check(lib.yaie_decoder_push(self.ptr, id, self.text, self.len))
  return ffi.string(self.text[0], self.len[0])
end

function Decoder:flush()
  C.check(lib.yaie_decoder_flush(self.ptr, self.text, self.len))
  return ffi.string(self.text[0], self.len[0])
end

return M
