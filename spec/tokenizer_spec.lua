-- The tokenizers (engine/text/tokenizer*.c, lua/yaie/tokenizer.lua, `yaie tokenize`): llama.cpp's test
-- vectors for three vocabularies, round trips, streaming decode, llama2.c tokenizer.bin against
-- the same vocabulary as GGUF, Hugging Face tokenizer.json written and read back, special
-- tokens, and corrupt inputs failing with messages that name the file.
local H = require "helper"
local T = require "yaie.tokenizer"
local ffi = require "ffi"

local VECTORS = H.shared .. "/tokenizer-tests/"
local LLAMA2_BIN = H.shared .. "/models/llama2-tokenizer/tokenizer.bin"
local TOK512 = H.stories .. "/tok512.bin"
local STORIES_GGUF = H.stories .. "/stories260K.gguf"
local VOCABS = { "llama-spm", "phi-3", "gpt-2" }

-- The cases of NAME.gguf.inp: the text between separator lines, the newline before a separator
-- line not part of the case; and the expected ids of NAME.gguf.out, one line per case.
local function vectors(name)
  local inp = H.read(VECTORS .. "ggml-vocab-" .. name .. ".gguf.inp")
  local inputs, pos = {}, 1
  while true do
    local s, e = inp:find("\n__ggml_vocab_test__\n", pos, true)
    if not s then break end
    inputs[#inputs + 1] = inp:sub(pos, s - 1)
    pos = e + 1
  end
  local out, expected = H.read(VECTORS .. "ggml-vocab-" .. name .. ".gguf.out"), {}
  if out:sub(-1) ~= "\n" then out = out .. "\n" end
  for line in out:gmatch("([^\n]*)\n") do
    local ids = {}
    for id in line:gmatch("%d+") do ids[#ids + 1] = tonumber(id) end
    expected[#expected + 1] = ids
  end
  return inputs, expected
end

local function gguf_path(name) return VECTORS .. "ggml-vocab-" .. name .. ".gguf" end

local function valid_utf8(s)
  local i, n = 1, #s
  while i <= n do
    local c = s:byte(i)
    local len = c < 0x80 and 1 or (c >= 0xC2 and c <= 0xDF) and 2 or (c >= 0xE0 and c <= 0xEF) and 3
      or (c >= 0xF0 and c <= 0xF4) and 4 or nil
    if not len or i + len - 1 > n then return false end
    for k = i + 1, i + len - 1 do
      local b = s:byte(k)
      if b < 0x80 or b > 0xBF then return false end
    end
    i = i + len
  end
  return true
end

local function fails_with(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end

-- Extra texts beyond the vectors: runs of spaces, special-token look-alikes, scripts, emoji.
local EXTRA = {
  "    Hello     world          x", ("a"):rep(40) .. "     " .. (" "):rep(33), "\n\n\n   \t\t  ",
  "ÄÖÜ äöü 日本語のテキスト 😀😀 🦙", "Lily's mom said, \"Lily, let's go to the park.\"", "3.14159 1,000,000 $5",
}

describe("tokenizer test vectors", function()
  for _, vocab in ipairs(VOCABS) do
    local inputs, expected = vectors(vocab)
    local tok = T.load(gguf_path(vocab))

    it(vocab .. " has one expected line per case", function()
      assert.are.equal(46, #inputs)
      assert.are.equal(#inputs, #expected)
    end)

    for i, text in ipairs(inputs) do
      it(("%s case %d (%q) encodes to the expected ids"):format(vocab, i, text), function()
        assert.are.same(expected[i], tok:encode(text, { add_bos = false }))
      end)
    end

    it(vocab .. " decodes what it encodes back to the text", function()
      for _, text in ipairs(inputs) do
        assert.are.equal(text, tok:decode(tok:encode(text, { add_bos = false })))
        assert.are.equal(text, tok:decode(tok:encode(text, { add_bos = true })))
      end
      for _, text in ipairs(EXTRA) do
        assert.are.equal(text, tok:decode(tok:encode(text)))
      end
    end)
  end
end)

describe("tokenizer metadata", function()
  it("reads BOS, EOS, add_bos and the vocabulary size", function()
    local spm, gpt2, phi3 = T.load(gguf_path "llama-spm"), T.load(gguf_path "gpt-2"), T.load(gguf_path "phi-3")
    assert.are.same({ 1, 2, true, 32000 }, { spm.bos, spm.eos, spm.add_bos, spm.vocab_size })
    assert.are.same({ 50256, 50256, false, 50257 }, { gpt2.bos, gpt2.eos, gpt2.add_bos, gpt2.vocab_size })
    assert.are.same({ 1, 32000, true, 32064 }, { phi3.bos, phi3.eos, phi3.add_bos, phi3.vocab_size })
    assert.matches("<|user|>", phi3:chat_template(), 1, true)
    assert.is_nil(spm:chat_template())
  end)

  it("gives each token's text and bytes", function()
    local spm, gpt2 = T.load(gguf_path "llama-spm"), T.load(gguf_path "gpt-2")
    assert.are.equal("▁Hello", spm:piece(15043))
    assert.are.equal(" Hello", spm:bytes(15043))
    assert.are.equal("<0x0A>", spm:piece(13))
    assert.are.equal("\n", spm:bytes(13))
    assert.are.equal("", spm:bytes(1)) -- BOS decodes to nothing
    assert.are.equal("ĠHello", gpt2:piece(18435))
    assert.are.equal(" Hello", gpt2:bytes(18435))
    assert.is_nil(spm:piece(32000))
    assert.matches("outside the vocabulary", fails_with(spm.bytes, spm, -1))
  end)

  it("adds BOS when asked, and by default when the metadata says so", function()
    local spm = T.load(gguf_path "llama-spm")
    assert.are.same({ 1, 15043 }, spm:encode("Hello"))
    assert.are.same({ 15043 }, spm:encode("Hello", { add_bos = false }))
    assert.are.same({}, spm:encode("", { add_bos = false }))
  end)
end)

describe("the C calls' buffer protocol", function()
  local lib = require("yaie.c").lib

  it("says how many ids or bytes are needed when the room is too small", function()
    local tok = T.load(gguf_path "llama-spm")
    local text = "Hello world, once more"
    local want = tok:encode(text)
    local n, out = ffi.new("int[1]"), ffi.new("int32_t[64]")
    assert.are.equal(4, lib.yaie_tokenize(tok.ptr, text, #text, 1, out, 2, n)) -- YAIE_ERR_ARG
    assert.are.equal(#want, n[0])
    assert.matches("do not fit", ffi.string(lib.yaie_last_error()))
    assert.are.equal(0, lib.yaie_tokenize(tok.ptr, text, #text, 1, out, n[0], n))
    for i, id in ipairs(want) do assert.are.equal(id, out[i - 1]) end
    local len, buf = ffi.new("size_t[1]"), ffi.new("char[64]")
    assert.are.equal(4, lib.yaie_detokenize(tok.ptr, out, n[0], 1, buf, 3, len))
    assert.are.equal(#text, tonumber(len[0]))
    assert.are.equal(0, lib.yaie_detokenize(tok.ptr, out, n[0], 1, buf, 64, len))
    assert.are.equal(text, ffi.string(buf, len[0]))
  end)

  it("rejects ids outside the vocabulary", function()
    local tok = T.load(TOK512)
    assert.matches("token id 512 %(at 1%) is outside the vocabulary", fails_with(tok.decode, tok, { 1, 512 }))
    assert.matches("outside the vocabulary", fails_with(tok:decoder().push, tok:decoder(), -1))
  end)
end)

describe("llama2.c tokenizer.bin", function()
  local function same_as_gguf(bin, gguf)
    local a, b = T.load(bin), T.load(gguf)
    assert.are.equal(b.vocab_size, a.vocab_size)
    assert.are.same({ b.bos, b.eos, b.add_bos }, { a.bos, a.eos, a.add_bos })
    local texts = vectors("llama-spm")
    for _, s in ipairs(EXTRA) do texts[#texts + 1] = s end
    for _, text in ipairs(texts) do
      assert.are.same(b:encode(text), a:encode(text))
      assert.are.equal(text, a:decode(a:encode(text, { add_bos = false })))
    end
    local special = "<s>Once upon a time</s> there was <unk>"
    assert.are.same(b:encode(special), a:encode(special))
    assert.are.same({ 0 }, a:encode("<unk>", { add_bos = false }))
    for id = 0, a.vocab_size - 1 do
      assert.are.equal(b:piece(id), a:piece(id))
    end
  end

  it("reads Llama 2's vocabulary as the llama-spm GGUF does", function()
    same_as_gguf(LLAMA2_BIN, gguf_path "llama-spm")
    local inputs, expected = vectors("llama-spm")
    local tok = T.load(LLAMA2_BIN)
    for i, text in ipairs(inputs) do
      assert.are.same(expected[i], tok:encode(text, { add_bos = false }))
    end
  end)

  it("reads tok512.bin as stories260K.gguf's vocabulary", function()
    same_as_gguf(TOK512, STORIES_GGUF)
    assert.are.same({ 1, 403, 407, 261, 378 }, T.load(TOK512):encode("Once upon a time"))
  end)

  it("drops the dummy-prefix space after BOS, as llama2.c does", function()
    local tok = T.load(TOK512)
    local ids = tok:encode("Once upon a time. One day")
    assert.are.equal("Once upon a time. One day", tok:decode(ids))
    assert.are.equal(" Once upon a time. One day", tok:decode(ids, { skip_leading_space = false }))
    local story = { 1, 403, 407, 1, 403 }
    assert.are.equal("Once uponOnce", tok:decode(story))
  end)
end)

describe("streaming decoder", function()
  local texts = { "日本語のテキスト", "😀😀 🦙 ✅", "Ünïcödé ñ", "混合 text 😶‍🌫️ end" }

  for _, vocab in ipairs { "llama-spm", "gpt-2" } do
    it(vocab .. " yields only whole characters, adding up to the text", function()
      local tok = T.load(gguf_path(vocab))
      for _, text in ipairs(texts) do
        local ids = tok:encode(text, { add_bos = true })
        local dec, parts, held = tok:decoder(), {}, false
        for i, id in ipairs(ids) do
          local piece = dec:push(id)
          assert.is_true(valid_utf8(piece), ("invalid UTF-8 piece %q"):format(piece))
          held = held or (i > 1 and #piece == 0) -- a character split across tokens
          parts[#parts + 1] = piece
        end
        parts[#parts + 1] = dec:flush()
        assert.are.equal(text, table.concat(parts))
        if text:find("😀", 1, true) then assert.is_true(held) end
      end
    end)
  end

  it("holds back half a character and flushes it as U+FFFD", function()
    local tok = T.load(gguf_path "llama-spm")
    local dec = tok:decoder()
    assert.are.equal("", dec:push(3 + 0xE2)) -- <0xE2>, the first byte of €
    assert.are.equal("\xef\xbf\xbd", dec:flush())
    assert.are.equal("", dec:flush())
    -- a stray continuation byte is replaced at once
    assert.are.equal("\xef\xbf\xbd", dec:push(3 + 0x82))
  end)
end)

describe("special tokens", function()
  it("cuts control tokens out of the text (GGUF)", function()
    local gpt2 = T.load(gguf_path "gpt-2")
    local want = gpt2:encode("Hello", { add_bos = false })
    want[#want + 1] = 50256
    for _, id in ipairs(gpt2:encode(" world", { add_bos = false })) do want[#want + 1] = id end
    assert.are.same(want, gpt2:encode("Hello<|endoftext|> world", { add_bos = false }))
    local spm = T.load(gguf_path "llama-spm")
    assert.are.same({ 1, 15043, 2 }, spm:encode("<s>Hello</s>", { add_bos = false }))
  end)

  it("recognises ChatML's <|im_start|> and <|im_end|> from added_tokens (tokenizer.json)", function()
    local dir = H.tmpdir()
    T.load(gguf_path "gpt-2"):save_hf(dir)
    local json = H.read(dir .. "/tokenizer.json")
    json = json:gsub('"added_tokens":%[', '"added_tokens":[{"id":50257,"content":"<|im_start|>","special":true},'
      .. '{"id":50258,"content":"<|im_end|>","special":true},', 1)
    H.write(dir .. "/tokenizer.json", json)
    H.write(dir .. "/tokenizer_config.json",
      '{"bos_token":"<|im_start|>","eos_token":{"content":"<|im_end|>"},"chat_template":"{{ x }}"}')
    local tok, plain = T.load(dir), T.load(gguf_path "gpt-2")
    assert.are.same({ 50257, 50258, false, 50259, "{{ x }}" },
      { tok.bos, tok.eos, tok.add_bos, tok.vocab_size, tok:chat_template() })
    local want = { 50257 }
    for _, id in ipairs(plain:encode("user\nHi", { add_bos = false })) do want[#want + 1] = id end
    want[#want + 1] = 50258
    for _, id in ipairs(plain:encode("\n", { add_bos = false })) do want[#want + 1] = id end
    assert.are.same(want, tok:encode("<|im_start|>user\nHi<|im_end|>\n"))
    assert.are.equal("user\nHi\n", tok:decode(want)) -- control tokens decode to nothing
    os.execute("rm -rf " .. H.quote(dir))
  end)
end)

describe("Hugging Face tokenizer.json", function()
  local tmp
  setup(function() tmp = H.tmpdir() end)
  teardown(function() os.execute("rm -rf " .. H.quote(tmp)) end)

  for _, source in ipairs { "llama-spm", "gpt-2", "phi-3", "tok512" } do
    it("written from " .. source .. " reads back encoding every test input the same", function()
      local path = source == "tok512" and TOK512 or gguf_path(source)
      local a = T.load(path)
      local dir = tmp .. "/" .. source
      a:save_hf(dir)
      local b = T.load(dir .. "/tokenizer.json")
      local texts = vectors(source == "tok512" and "llama-spm" or source)
      for _, s in ipairs(EXTRA) do texts[#texts + 1] = s end
      for _, text in ipairs(texts) do
        assert.are.same(a:encode(text), b:encode(text))
        assert.are.equal(a:decode(a:encode(text)), b:decode(b:encode(text)))
      end
      assert.are.same({ a.bos, a.eos, a.add_bos, a.vocab_size, a:chat_template() },
        { b.bos, b.eos, b.add_bos, b.vocab_size, b:chat_template() })
      -- a directory holding tokenizer.json loads too
      assert.are.same(a:encode("Hello world"), T.load(dir):encode("Hello world"))
    end)
  end

  it("reads a Metaspace pre-tokenizer with prepend_scheme first", function()
    local dir = tmp .. "/metaspace"
    T.load(gguf_path "llama-spm"):save_hf(dir)
    local json = H.read(dir .. "/tokenizer.json")
    json = json:gsub('"normalizer":%b{}', '"normalizer":null', 1):gsub('"pre_tokenizer":null',
      '"pre_tokenizer":{"type":"Metaspace","replacement":"▁","prepend_scheme":"first","split":false}', 1)
    H.write(dir .. "/tokenizer.json", json)
    local tok, spm = T.load(dir), T.load(gguf_path "llama-spm")
    assert.are.same(spm:encode("Hello world", { add_bos = false }), tok:encode("Hello world", { add_bos = false }))
    -- Metaspace adds no prefix before a leading space, and none after a special token
    assert.are.same({ 15043 }, tok:encode(" Hello", { add_bos = false }))
    assert.are.same({ 1, 10994 }, tok:encode("<s>Hello", { add_bos = false }))
  end)

  -- Expected ids from Hugging Face tokenizers 0.23.3 loading the same tokenizer.json.
  it("splits as Hugging Face does for every Split behaviour", function()
    local dir = tmp .. "/behaviours"
    T.load(gguf_path "gpt-2"):save_hf(dir)
    local json = H.read(dir .. "/tokenizer.json")
    json = json:gsub('"pre_tokenizer":%b{}', '"pre_tokenizer":{"type":"Sequence","pretokenizers":['
      .. '{"type":"Digits","individual_digits":true},'
      .. '{"type":"Split","pattern":{"String":"#"},"behavior":"Removed","invert":false},'
      .. '{"type":"Split","pattern":{"Regex":"\\\\s+"},"behavior":"MergedWithPrevious","invert":false},'
      .. '{"type":"Split","pattern":{"Regex":"[A-Z]"},"behavior":"MergedWithNext","invert":false},'
      .. '{"type":"Split","pattern":{"Regex":"x+"},"behavior":"Contiguous","invert":false},'
      .. '{"type":"Split","pattern":{"Regex":"q"},"behavior":"Isolated","invert":true},'
      .. '{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true}]}', 1)
    H.write(dir .. "/tokenizer.json", json)
    local tok = T.load(dir)
    local want = {
      ["123"] = { 16, 17, 18 }, ["ab#### cd"] = { 397, 220, 10210 },
      ["Hello World  again"] = { 15496, 220, 10603, 220, 220, 17776 },
      ["aXbCCd xxxyxx"] = { 64, 55, 65, 34, 34, 67, 220, 31811, 88, 5324 }, ["aqbqqc"] = { 64, 80, 65, 80, 80, 66 },
      ["  lead"] = { 220, 220, 28230 }, ["tail  "] = { 13199, 220, 220 }, ["A1B2 c3"] = { 32, 16, 33, 17, 220, 66, 18 },
    }
    for text, ids in pairs(want) do
      assert.are.same(ids, tok:encode(text), text)
    end
  end)

  it("reads Metaspace with split, as Hugging Face does", function()
    local dir = tmp .. "/metaspace-split"
    T.load(gguf_path "llama-spm"):save_hf(dir)
    local json = H.read(dir .. "/tokenizer.json")
    json = json:gsub('"normalizer":%b{}', '"normalizer":null', 1):gsub('"pre_tokenizer":null',
      '"pre_tokenizer":{"type":"Metaspace","replacement":"▁","prepend_scheme":"always","split":true}', 1)
    H.write(dir .. "/tokenizer.json", json)
    local tok = T.load(dir)
    local want = { ["Hello world"] = { 15043, 3186 }, [" Hello"] = { 15043 }, ["<s>Hello"] = { 1, 15043 },
      ["a <s> b"] = { 263, 29871, 1, 289 }, ["  two  spaces"] = { 29871, 1023, 29871, 8162 },
      ["x</s>y z"] = { 921, 2, 343, 503 } }
    for text, ids in pairs(want) do
      assert.are.same(ids, tok:encode(text, { add_bos = false }), text)
    end
  end)

  it("reads Split pre-tokenizers with their behaviours (Digits, Removed)", function()
    local dir = tmp .. "/split"
    T.load(gguf_path "gpt-2"):save_hf(dir)
    local json = H.read(dir .. "/tokenizer.json")
    json = json:gsub('"pre_tokenizer":%b{}', '"pre_tokenizer":{"type":"Sequence","pretokenizers":['
      .. '{"type":"Digits","individual_digits":true},'
      .. '{"type":"Split","pattern":{"String":"#"},"behavior":"Removed","invert":false},'
      .. '{"type":"ByteLevel","add_prefix_space":false,"use_regex":true}]}', 1)
    H.write(dir .. "/tokenizer.json", json)
    local tok, gpt2 = T.load(dir), T.load(gguf_path "gpt-2")
    local digits = {}
    for _, d in ipairs { "1", "2", "3" } do digits[#digits + 1] = gpt2:encode(d)[1] end
    assert.are.same(digits, tok:encode("123"))
    assert.are.same(gpt2:encode("ab cd"), tok:encode("ab#### cd"))
  end)
end)

describe("yaie tokenize", function()
  it("prints the ids of stdin's text, without BOS", function()
    for _, path in ipairs { LLAMA2_BIN, gguf_path "llama-spm" } do
      local code, out, err = H.yaie({ "tokenize", "--tokenizer", path }, "Hello world")
      assert.are.equal(0, code, err)
      assert.are.equal("15043 3186\n", out)
    end
    local code, out = H.yaie({ "tokenize", "--tokenizer", gguf_path "gpt-2" }, " Hello World!")
    assert.are.equal(0, code)
    assert.are.equal("18435 2159 0\n", out)
  end)

  it("takes a tokenizer.json or a directory holding one", function()
    local dir = H.tmpdir()
    T.load(TOK512):save_hf(dir)
    for _, path in ipairs { dir, dir .. "/tokenizer.json" } do
      local code, out, err = H.yaie({ "tokenize", "--tokenizer", path }, "Once upon a time")
      assert.are.equal(0, code, err)
      assert.are.equal("403 407 261 378\n", out)
    end
    os.execute("rm -rf " .. H.quote(dir))
  end)

  it("reports bad input on one line with exit status 1", function()
    local code, _, err = H.yaie({ "tokenize", "--tokenizer", TOK512 }, "ok \xff\xfe")
    assert.are.equal(1, code)
    assert.matches("not valid UTF%-8 %(at byte offset 3%)", err)
    code, _, err = H.yaie({ "tokenize", "--tokenizer", "/nonexistent/tok.bin" }, "x")
    assert.are.equal(1, code)
    assert.matches("/nonexistent/tok.bin", err, 1, true)
    code, _, err = H.yaie({ "tokenize" }, "x")
    assert.are.equal(1, code)
    assert.matches("no tokenizer given", err)
  end)
end)

-- A GGUF file holding only the given metadata: { key, kind, value } with kind "str", "u32",
-- "bool", "strs" (string array), "i32s" or "f32s".
local function gguf_bytes(kvs)
  local function u32(v) return ffi.string(ffi.new("uint32_t[1]", v), 4) end
  local function u64(v) return ffi.string(ffi.new("uint64_t[1]", v), 8) end
  local function str(s) return u64(#s) .. s end
  local parts = { "GGUF", u32(3), u64(0), u64(#kvs) }
  for _, kv in ipairs(kvs) do
    local key, kind, v = kv[1], kv[2], kv[3]
    parts[#parts + 1] = str(key)
    if kind == "str" then
      parts[#parts + 1] = u32(8) .. str(v)
    elseif kind == "u32" then
      parts[#parts + 1] = u32(4) .. u32(v)
    elseif kind == "bool" then
      parts[#parts + 1] = u32(7) .. string.char(v and 1 or 0)
    else
      local elem = ({ strs = 8, i32s = 5, f32s = 6 })[kind]
      parts[#parts + 1] = u32(9) .. u32(elem) .. u64(#v)
      for _, x in ipairs(v) do
        parts[#parts + 1] = kind == "strs" and str(x) or kind == "i32s" and ffi.string(ffi.new("int32_t[1]", x), 4)
          or ffi.string(ffi.new("float[1]", x), 4)
      end
    end
  end
  return table.concat(parts)
end

describe("corrupt and unsupported input", function()
  local tmp
  setup(function() tmp = H.tmpdir() end)
  teardown(function() os.execute("rm -rf " .. H.quote(tmp)) end)

  local function write(name, data)
    local path = tmp .. "/" .. name
    H.write(path, data)
    return path
  end

  it("rejects invalid UTF-8 with its byte offset", function()
    local tok = T.load(TOK512)
    for _, bad in ipairs { "\xff", "ab\xc3", "\xed\xa0\x80", "\xc0\xaf", "ok\xf5\x80\x80\x80" } do
      assert.matches("UTF%-8", fails_with(tok.encode, tok, bad))
    end
    assert.matches("byte offset 2", fails_with(tok.encode, tok, "ab\xc3"))
  end)

  it("fails cleanly on tokenizer.bin cut at any offset, naming the file", function()
    local data = H.read(TOK512)
    local failed = 0
    for cut = 0, #data - 1, 7 do
      local path = write("cut.bin", data:sub(1, cut))
      local ok, res = pcall(T.load, path)
      if ok then
        assert.is_true(res.vocab_size < 512) -- a cut between records is a shorter vocabulary
      else
        failed = failed + 1
        assert.matches(path, res, 1, true)
      end
    end
    assert.is_true(failed > #data / 7 * 0.8)
    local big = H.read(LLAMA2_BIN)
    for _, cut in ipairs { 3, 4, 9, 12, 1000, math.floor(#big / 2) + 1, #big - 1 } do
      local path = write("cut2.bin", big:sub(1, cut))
      local ok, err = pcall(T.load, path)
      if not ok then assert.matches(path, err, 1, true) end
    end
  end)

  it("fails cleanly on a truncated tokenizer GGUF", function()
    local data = H.read(gguf_path "gpt-2")
    for _, cut in ipairs { 10, 100, 1000, 50000, math.floor(#data / 2), #data - 1 } do
      local path = write("cut.gguf", data:sub(1, cut))
      assert.matches(path, fails_with(T.load, path), 1, true)
    end
  end)

  it("fails cleanly on bad JSON and on JSON that is no tokenizer", function()
    for i, text in ipairs { '{"model": {"vocab": {"a": 0', '{"model": {"type": "BPE", "vocab": {"a": "x"}}}',
      '{"model": {"type": "WordPiece", "vocab": {"a": 0}}}', '{"model": {"vocab": {"a": 0}, "merges": [3]}}',
      '{"added_tokens": 5, "model": {"vocab": {}}}', '{"model": {"vocab": {"a": 0, "b": 0}}}' } do
      local path = write("bad" .. i .. ".json", text)
      assert.matches(path, fails_with(T.load, path), 1, true)
    end
    local dir = tmp .. "/cfg"
    T.load(TOK512):save_hf(dir)
    H.write(dir .. "/tokenizer_config.json", "{ nope")
    assert.matches("tokenizer_config.json: invalid JSON", fails_with(T.load, dir))
  end)

  it("fails cleanly on broken or unsupported GGUF tokenizer metadata", function()
    local tokens = { "a", "b", "ab", "<|endoftext|>" }
    local base = { { "tokenizer.ggml.model", "str", "gpt2" }, { "tokenizer.ggml.tokens", "strs", tokens },
      { "tokenizer.ggml.merges", "strs", { "a b" } } }
    local function with(extra, drop)
      local kvs = {}
      for _, kv in ipairs(base) do if kv[1] ~= drop then kvs[#kvs + 1] = kv end end
      for _, kv in ipairs(extra) do kvs[#kvs + 1] = kv end
      return gguf_bytes(kvs)
    end
    local ok_path = write("ok.gguf", with { { "tokenizer.ggml.pre", "str", "qwen2" },
      { "tokenizer.ggml.token_type", "i32s", { 1, 1, 1, 3 } } })
    local tok = T.load(ok_path)
    assert.are.same({ 2, 3, 0 }, tok:encode("ab<|endoftext|>a"))
    local cases = {
      { with { { "tokenizer.ggml.pre", "str", "no-such-pre" } }, "unknown pre%-tokenizer type 'no%-such%-pre'" },
      { with({}, "tokenizer.ggml.merges"), "without tokenizer.ggml.merges" },
      { with { { "tokenizer.ggml.token_type", "i32s", { 1, 1 } } }, "token_type has 2 entries for 4 tokens" },
      { with { { "tokenizer.ggml.scores", "strs", { "x" } } }, "scores has the wrong type" },
      { gguf_bytes { { "tokenizer.ggml.model", "str", "bert" }, { "tokenizer.ggml.tokens", "strs", tokens } },
        "tokenizer model 'bert' is not supported" },
      { gguf_bytes { { "tokenizer.ggml.model", "str", "llama" }, { "tokenizer.ggml.tokens", "strs", { "a", "a" } } },
        "duplicate token 'a'" },
      { gguf_bytes { { "tokenizer.ggml.model", "str", "llama" } }, "without tokenizer.ggml.tokens" },
      { gguf_bytes { { "general.name", "str", "x" } }, "holds no tokenizer" },
    }
    for i, c in ipairs(cases) do
      local path = write("case" .. i .. ".gguf", c[1])
      local err = fails_with(T.load, path)
      assert.matches(path, err, 1, true)
      assert.matches(c[2], err)
    end
  end)

  it("knows every llama.cpp pre-tokenizer name it claims", function()
    local names = { "default", "llama3", "llama-bpe", "deepseek-llm", "deepseek-coder", "deepseek-v3", "falcon",
      "mpt", "starcoder", "gpt-2", "refact", "command-r", "qwen2", "stablelm2", "olmo", "dbrx", "smaug-bpe",
      "poro-chat", "chatglm-bpe", "viking", "jais", "tekken", "smollm", "codeshell", "bloom", "gpt3-finnish",
      "exaone", "chameleon", "minerva-7b", "gpt-4o", "superbpe", "bailingmoe", "seed-coder", "tiny_aya",
      "qwen35", "jais-2", "spark2_5", "youtu", "exaone-moe", "minicpm5", "laguna", "granite-embed-multi-97m" }
    for _, name in ipairs(names) do
      local path = write("pre.gguf", gguf_bytes { { "tokenizer.ggml.model", "str", "gpt2" },
        { "tokenizer.ggml.tokens", "strs", { "a", "b", "ab", "Ġ", "1" } }, { "tokenizer.ggml.merges", "strs", { "a b" } },
        { "tokenizer.ggml.pre", "str", name } })
      local ok, tok = pcall(T.load, path)
      assert.is_true(ok, name .. ": " .. tostring(tok))
      assert.are.same({ 2 }, tok:encode("ab"), name)
    end
  end)
end)

describe("tokenizer speed", function()
  it("loads a 150k-token tokenizer.json and encodes 100 KB in well under a second each", function()
    -- A synthetic vocabulary: the space (Ġ), the 26 letters and every 2- and 3-letter word over
    -- them, then 4-letter words up to 150,000 tokens, each merged from its prefix and last letter.
    local limit = os.getenv("YAIE_SPEC_QUICK") and 5 or 0.5 -- sanitizers slow everything down
    local letters, vocab, merges, words = {}, {}, {}, { "Ġ" }
    for c = 97, 122 do letters[#letters + 1] = string.char(c) end
    for _, l in ipairs(letters) do words[#words + 1] = l end
    local level = letters
    while #words < 150000 do
      local next_level = {}
      for _, w in ipairs(level) do
        for _, l in ipairs(letters) do
          if #words >= 150000 then break end
          next_level[#next_level + 1] = w .. l
          words[#words + 1] = w .. l
          merges[#merges + 1] = '"' .. w .. " " .. l .. '"'
        end
      end
      level = next_level
    end
    for i, w in ipairs(words) do vocab[i] = ('"%s":%d'):format(w, i - 1) end
    local dir = H.tmpdir()
    H.write(dir .. "/tokenizer.json", '{"model":{"type":"BPE","vocab":{' .. table.concat(vocab, ",")
      .. '},"merges":[' .. table.concat(merges, ",") .. ']},"pre_tokenizer":{"type":"ByteLevel"}}')
    local t0 = os.clock()
    local tok = T.load(dir)
    local load_s = os.clock() - t0
    assert.are.equal(150000, tok.vocab_size)
    assert.is_true(load_s < limit, ("loading took %.3f s"):format(load_s))
    local text = ("abcd efgh zyx "):rep(7500)
    t0 = os.clock()
    local ids = tok:encode(text)
    local encode_s = os.clock() - t0
    assert.is_true(encode_s < limit, ("encoding took %.3f s"):format(encode_s))
    assert.are.equal(text, tok:decode(ids))
    -- merges go by rank: (a b) and (c d) come before (ab c), so "abcd" ends as "ab" "cd"
    assert.are.same({ "ab", "cd", "Ġ", "ef", "gh", "Ġ", "z", "yx", "Ġ" },
      { tok:piece(ids[1]), tok:piece(ids[2]), tok:piece(ids[3]), tok:piece(ids[4]), tok:piece(ids[5]),
        tok:piece(ids[6]), tok:piece(ids[7]), tok:piece(ids[8]), tok:piece(ids[9]) })
    assert.are.equal(9 * 7500, #ids)
    os.execute("rm -rf " .. H.quote(dir))
  end)
end)
