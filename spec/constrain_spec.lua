-- Constrained decoding (engine/constrain/regex_*.c, engine/constrain/constrain.c, lua/yaie/constrain.lua): the regex
-- engine against hand-written expectations and against PCRE2, bad patterns, the constraint API,
-- a property spec (random regexes and seeds, sampled with random logits through the mask, every
-- finished output fully matching and every mask exactly the tokens that keep a match possible),
-- and stories260K decoding greedily under a regex.
local H = require "helper"
local C = require "yaie.c"
local con = require "yaie.constrain"
local T = require "yaie.tokenizer"
local ffi, lib = C.ffi, C.lib

local TOK512 = H.stories .. "/tok512.bin"
local GPT2 = H.shared .. "/tokenizer-tests/ggml-vocab-gpt-2.gguf"

pcall(ffi.cdef, "int memcmp(const void *a, const void *b, size_t n);")
-- Internal (engine/constrain/regex.h): a mask computed without the cache, over the trie or token by token.
pcall(ffi.cdef, "yaie_status yaie_constraint_mask_compute(yaie_constraint *c, int state, int use_trie, uint8_t *out);")

-- ---------------------------------------------------------------------------------------------
-- PCRE2, the independent matcher: the pattern anchored at both ends, UTF mode, LF newlines.
pcall(ffi.cdef, [[
typedef struct pcre2_real_code_8 pcre2_code_8;
typedef struct pcre2_real_match_data_8 pcre2_match_data_8;
pcre2_code_8 *pcre2_compile_8(const char *pattern, size_t length, uint32_t options, int *errorcode,
                              size_t *erroroffset, void *ccontext);
void pcre2_code_free_8(pcre2_code_8 *code);
pcre2_match_data_8 *pcre2_match_data_create_from_pattern_8(const pcre2_code_8 *code, void *gcontext);
void pcre2_match_data_free_8(pcre2_match_data_8 *md);
int pcre2_match_8(const pcre2_code_8 *code, const char *subject, size_t length, size_t startoffset,
                  uint32_t options, pcre2_match_data_8 *md, void *mcontext);
]])
local pcre = ffi.load("pcre2-8")
local PCRE2_ANCHORED, PCRE2_UTF, PCRE2_PARTIAL_HARD = 0x80000000, 0x00080000, 0x20
local PCRE2_ERROR_NOMATCH, PCRE2_ERROR_PARTIAL = -1, -2

-- Returns match(s, partial): true on a full match, "partial" when s is a proper prefix of a
-- match (partial only), false otherwise; nil when PCRE2 hits its own limits.
local function pcre_matcher(pat)
  local p = "(*LF)(?:" .. pat .. ")\\z"
  local err, off = ffi.new("int[1]"), ffi.new("size_t[1]")
  local code = pcre.pcre2_compile_8(p, #p, PCRE2_ANCHORED + PCRE2_UTF, err, off, nil)
  assert(code ~= nil, "PCRE2 cannot compile " .. pat .. " (error " .. err[0] .. ")")
  code = ffi.gc(code, pcre.pcre2_code_free_8)
  local md = ffi.gc(pcre.pcre2_match_data_create_from_pattern_8(code, nil), pcre.pcre2_match_data_free_8)
  return function(s, partial)
    local rc = pcre.pcre2_match_8(code, s, #s, 0, partial and PCRE2_PARTIAL_HARD or 0, md, nil)
    if rc > 0 then return true end
    if rc == PCRE2_ERROR_PARTIAL then return "partial" end
    if rc == PCRE2_ERROR_NOMATCH or (rc <= -3 and rc >= -24) then return false end -- -3..-24: bad UTF-8
    return nil
  end
end

local function utf8(cp)
  if cp < 0x80 then return string.char(cp) end
  if cp < 0x800 then return string.char(0xC0 + math.floor(cp / 64), 0x80 + cp % 64) end
  if cp < 0x10000 then
    return string.char(0xE0 + math.floor(cp / 4096), 0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
  end
  return string.char(0xF0 + math.floor(cp / 262144), 0x80 + math.floor(cp / 4096) % 64,
                     0x80 + math.floor(cp / 64) % 64, 0x80 + cp % 64)
end

-- ---------------------------------------------------------------------------------------------
describe("the regex engine", function()
  local cases = {
    { "abc", { "abc" }, { "", "ab", "abcd", "xabc" } },
    { "a|bc|", { "a", "bc", "" }, { "b", "abc" } },
    { "(ab)*c", { "c", "abc", "ababc" }, { "ab", "abac", "aabc" } },
    { "(?:x|y)+z?", { "x", "yxz", "xyxy" }, { "", "z", "xzz" } },
    { "(?<year>[0-9]{4})-(?P<m>[0-9]{2})", { "2024-01" }, { "24-01", "2024-1" } },
    { "[a-z0-9_]+", { "a_1", "zz9" }, { "", "A", "a-b" } },
    { "[^a-c]", { "d", "é", "\n", "😀" }, { "a", "c", "", "dd" } },
    { ".", { "a", "é", "€", "😀", "\t" }, { "\n", "", "ab", "\xC3", "\x80", "\xC0\x80", "\xED\xA0\x80", "\xF4\x90\x80\x80" } },
    { "\\d\\w\\s", { "1a ", "9_\n", "0Z\t" }, { "a1 ", "11a", "1a" } },
    { "\\D\\W\\S", { "a-x", "é€😀" }, { "1-x", "a_x", "a- " } },
    { "[\\d\\s]+", { "1 2\n3" }, { "1a" } },
    { "a{3}", { "aaa" }, { "aa", "aaaa" } },
    { "a{2,}", { "aa", "aaaaaaa" }, { "a" } },
    { "a{1,3}b{0}", { "a", "aaa" }, { "", "aaaa", "ab" } },
    { "a{0,2}?b+?", { "b", "aab", "abbb" }, { "aaab", "a" } },
    { "é+€?😀{2}", { "é😀😀", "éé€😀😀" }, { "é😀", "€😀😀" } },
    { "[é-ë]", { "é", "ê", "ë" }, { "è", "e", "ì" } },
    { "[\\x{7F}-\\x{800}]", { utf8(0x7F), utf8(0x80), utf8(0x7FF), utf8(0x800) }, { utf8(0x7E), utf8(0x801) } },
    { "[\\x{FFFF}-\\x{10000}]", { utf8(0xFFFF), utf8(0x10000) }, { utf8(0xFFFE), utf8(0x10001) } },
    { "[^\\x00-\\x{D7FF}]", { utf8(0xE000), utf8(0x10FFFF) }, { utf8(0xD7FF), "\xED\xA0\x80", "\xED\xBF\xBF" } },
    { "\\u00e9\\uD83D\\uDE00\\u{1F600}\\x41\\x{42}", { "é😀😀AB" }, { "é😀AB" } },
    { "\\.\\\\\\n\\t\\\"\\/\\[\\]\\(\\)\\{\\}\\*\\+\\?\\|\\^\\$", { ".\\\n\t\"/[](){}*+?|^$" }, { "." } },
    { "{\"a\":1}", { "{\"a\":1}" }, { "{\"a\":2}" } },
    { "x{,3}", { "x{,3}" }, { "xxx" } },
    { "^a+$", { "a", "aa" }, { "" } },
    { "[]a]", { "]", "a" }, { "" } },
    { "[a-]", { "a", "-" }, { "b" } },
    { "((a*)*b)*", { "", "b", "aab", "babab" }, { "a", "aba" } },
  }

  it("matches what it should and rejects the rest", function()
    for _, case in ipairs(cases) do
      local re = con.regex(case[1])
      for _, s in ipairs(case[2]) do
        assert.is_true(re:match(s), case[1] .. " should match " .. ("%q"):format(s))
      end
      for _, s in ipairs(case[3]) do
        assert.is_false(re:match(s), case[1] .. " should not match " .. ("%q"):format(s))
      end
    end
  end)

  it("splits code point ranges into UTF-8 byte sequences exactly", function()
    math.randomseed(11)
    local edges = { 0, 0x7F, 0x80, 0x7FF, 0x800, 0xFFF, 0x1000, 0xD7FF, 0xE000, 0xFFFF, 0x10000, 0x3FFFF, 0x40000, 0x10FFFF }
    local function cp_any()
      local r = math.random()
      if r < 0.4 then return edges[math.random(#edges)] + math.random(-2, 2) end
      return math.random(0, 0x10FFFF)
    end
    local function valid(cp) return cp >= 0 and cp <= 0x10FFFF and (cp < 0xD800 or cp > 0xDFFF) end
    for _ = 1, 150 do
      local lo, hi = cp_any(), cp_any()
      if lo > hi then lo, hi = hi, lo end
      lo, hi = math.max(lo, 0), math.min(hi, 0x10FFFF)
      if lo >= 0xD800 and lo <= 0xDFFF then lo = 0xE000 end -- \x{D800} is no character
      if hi >= 0xD800 and hi <= 0xDFFF then hi = 0xD7FF end
      local neg = math.random() < 0.3
      local pat = ("[%s\\x{%X}-\\x{%X}]"):format(neg and "^" or "", lo, hi)
      local ok, re = pcall(con.regex, pat)
      if ok then
        for _ = 1, 40 do
          local cp = math.random() < 0.5 and cp_any() or math.random(lo, hi)
          if valid(cp) then
            local inside = cp >= lo and cp <= hi
            assert.are.equal(inside ~= neg, re:match(utf8(cp)), ("%s on U+%X"):format(pat, cp))
          end
        end
      else -- only a class of nothing but surrogates, negated or not, matches no text
        assert.matches("matches no text", re)
      end
    end
  end)

  it("reports bad patterns with what and where", function()
    local bad = {
      { "a)", "unmatched '%)' at position 1" },
      { "(ab", "missing '%)' at position 0" },
      { "[abc", "missing '%]' at position 0" },
      { "*a", "nothing to repeat at position 0" },
      { "a|+", "nothing to repeat at position 2" },
      { "a**", "cannot follow a quantifier.* at position 2" },
      { "a*+", "possessive quantifiers are not supported at position 2" },
      { "{2}", "nothing to repeat at position 0" },
      { "a{3,2}", "n < m at position 1" },
      { "a{1001}", "above 1000 at position 1" },
      { "[z-a]", "range out of order at position 1" },
      { "[\\d-z]", "" }, -- a class escape then '-' is literal: no error
      { "\\q", "unknown escape at position 0" },
      { "ab\\", "trailing backslash at position 2" },
      { "\\1", "backreferences are not supported" },
      { "\\bx", "word boundaries" },
      { "\\p{L}", "Unicode properties" },
      { "\\xZZ", "expected hex digits at position 0" },
      { "\\x{110000}", "beyond U%+10FFFF" },
      { "\\uD800", "lone surrogate" },
      { "(?i)a", "unsupported group syntax" },
      { "(?<>a)", "bad group name" },
      { "a^", "'%^' is only supported at the start" },
      { "$a", "'%$' is only supported at the end" },
      { "ab\xFFc", "invalid UTF%-8 at position 2" },
      { "[^\\s\\S]", "matches no text at all" },
      { ("("):rep(300) .. "a" .. (")"):rep(300), "nested too deeply" },
      { "(a{1000}){1000}", "regex too large" },
    }
    for _, case in ipairs(bad) do
      local ok, err = pcall(con.regex, case[1])
      if case[2] == "" then
        assert.is_true(ok, case[1])
      else
        assert.is_false(ok, case[1] .. " should fail")
        assert.matches("^regex", err)
        assert.matches(case[2], err)
      end
    end
  end)

  it("fails cleanly with 'regex too complex' when the DFA outgrows its bound", function()
    local re = con.regex("(a|b)*a(a|b){15}") -- the last 16 letters matter: 2^16 states
    math.randomseed(3)
    local t = {}
    for i = 1, 60000 do t[i] = math.random() < 0.5 and "a" or "b" end
    local ok, err = pcall(re.match, re, table.concat(t))
    assert.is_false(ok)
    assert.matches("regex too complex", err)
  end)
end)

-- ---------------------------------------------------------------------------------------------
-- Random regexes from a small grammar, each node able to produce a matching string.
local ATOMS = {
  { "a", { "a" } }, { "b", { "b" } }, { "c", { "c" } }, { "1", { "1" } }, { " ", { " " } },
  { "é", { "é" } }, { "€", { "€" } }, { "😀", { "😀" } }, { "\\n", { "\n" } }, { "\\.", { "." } },
  { "[ab]", { "a", "b" } }, { "[a-c]", { "a", "b", "c" } }, { "[é😀]", { "é", "😀" } },
  { "[€-😀]", { "€", "😀", "\u{FFFF}", "\u{10000}" } },
  { "[^a]", { "b", "Z", "\n", "é", "€", "😀", "\u{10FFFF}" } },
  { "[^a-c\\n]", { "d", " ", "é", "😀" } },
  { ".", { "a", " ", "é", "€", "😀", "\u{E000}" } },
  { "\\d", { "0", "1", "9" } }, { "\\s", { " ", "\n", "\t" } }, { "\\w", { "a", "Z", "_", "1" } },
  { "\\S", { "a", "é", "😀" } },
}
local POOL = { "a", "b", "c", "d", "1", " ", "\n", ".", "é", "€", "😀", "Z", "_" }
-- Every range endpoint of the grammar, so that completing a truncated character tries them.
local EDGE_CPS = { 0x0, 0x7F, 0x80, 0x7FF, 0x800, 0xD7FF, 0xE000, 0xFFFF, 0x10000, 0x10FFFF, 0x20AC, 0x1F600, 0xE9 }

local QUANTS = { { "*", 0, -1 }, { "+", 1, -1 }, { "?", 0, 1 }, { "{2}", 2, 2 }, { "{0,2}", 0, 2 },
                 { "{1,}", 1, -1 }, { "{1,3}", 1, 3 }, { "*?", 0, -1 }, { "{2,3}?", 2, 3 } }

local function gen(depth)
  local r = math.random()
  if depth <= 0 or r < 0.3 then
    local a = ATOMS[math.random(#ATOMS)]
    return { k = "atom", pat = a[1], pool = a[2] }
  elseif r < 0.55 then
    local n = { k = "cat" }
    for i = 1, math.random(2, 3) do n[i] = gen(depth - 1) end
    return n
  elseif r < 0.72 then
    local n = { k = "alt" }
    for i = 1, math.random(2, 3) do n[i] = math.random() < 0.1 and { k = "cat" } or gen(depth - 1) end
    return n
  end
  local q = QUANTS[math.random(#QUANTS)]
  return { k = "rep", q = q[1], min = q[2], max = q[3], gen(depth - 1) }
end

local function to_pattern(n)
  if n.k == "atom" then return n.pat end
  local parts = {}
  for i, c in ipairs(n) do
    local p = to_pattern(c)
    if (n.k ~= "alt" and c.k == "alt") or (n.k == "rep" and c.k ~= "atom") then
      p = (math.random() < 0.5 and "(?:" or "(") .. p .. ")"
    end
    parts[i] = p
  end
  if n.k == "alt" then return table.concat(parts, "|") end
  if n.k == "rep" then return parts[1] .. n.q end
  return table.concat(parts)
end

local function sample(n, out)
  if n.k == "atom" then
    out[#out + 1] = n.pool[math.random(#n.pool)]
  elseif n.k == "cat" then
    for _, c in ipairs(n) do sample(c, out) end
  elseif n.k == "alt" then
    sample(n[math.random(#n)], out)
  else
    local hi = n.max < 0 and n.min + 3 or n.max
    for _ = 1, math.random(n.min, hi) do sample(n[1], out) end
  end
  return out
end

local function mutate(chars)
  local t = { unpack(chars) }
  local r = math.random()
  if r < 0.3 and #t > 0 then
    table.remove(t, math.random(#t))
  elseif r < 0.6 then
    table.insert(t, math.random(#t + 1), POOL[math.random(#POOL)])
  elseif #t > 0 then
    t[math.random(#t)] = POOL[math.random(#POOL)]
  end
  return table.concat(t)
end

describe("random regexes", function()
  it("match exactly the strings PCRE2 matches", function()
    math.randomseed(2024)
    local n_strings, n_match = 0, 0
    for _ = 1, 300 do
      local tree = gen(3)
      local pat = to_pattern(tree)
      local re, pc = con.regex(pat), pcre_matcher(pat)
      local subjects = {}
      for _ = 1, 6 do
        local chars = sample(tree, {})
        subjects[#subjects + 1] = table.concat(chars)
        subjects[#subjects + 1] = mutate(chars)
        local rnd = {}
        for k = 1, math.random(0, 5) do rnd[k] = POOL[math.random(#POOL)] end
        subjects[#subjects + 1] = table.concat(rnd)
      end
      for _, s in ipairs(subjects) do
        local want = pc(s)
        if want ~= nil then
          n_strings = n_strings + 1
          if want then n_match = n_match + 1 end
          assert.are.equal(want, re:match(s), ("%s on %q"):format(pat, s))
        end
      end
    end
    assert.is_true(n_strings > 4000 and n_match > 1500, n_strings .. " strings, " .. n_match .. " matching")
  end)
end)

-- ---------------------------------------------------------------------------------------------
local function new_sampler(seed, temperature, vocab)
  return require("yaie.generate").sampler({ temperature = temperature, seed = seed }, vocab)
end

local function count(mask, n)
  local k = 0
  for i = 0, n - 1 do if mask[i] ~= 0 then k = k + 1 end end
  return k
end

describe("a constraint", function()
  local tok
  setup(function() tok = T.load(TOK512) end)

  it("allows the tokens that fit, EOS only where the text matches, never control tokens", function()
    local c = con.new(tok, { regex = "ab|abc" })
    local s = c:start()
    assert.is_false(c:accepting(s))
    assert.is_true(c:can_continue(s))
    local m = c:mask(s)
    for id = 0, tok.vocab_size - 1 do
      local b = tok:bytes(id)
      local want = #b > 0 and ("abc"):sub(1, #b) == b
      assert.are.equal(want, m[id] ~= 0, ("token %d %q"):format(id, b))
    end
    assert.are.equal(0, m[tok.eos])
    assert.are.equal(0, m[tok.bos])
  end)

  it("walks a token's bytes, stops where nothing more can follow, and rejects what does not fit", function()
    local c = con.new(tok, { choices = { "yes", "no" } })
    local function byte_tok(ch) return 3 + ch:byte() end -- tok512's <0xXX> tokens sit at 3..258
    assert.are.equal("y", tok:bytes(byte_tok("y")))
    local s = c:start()
    s = c:advance(s, byte_tok("n"))
    assert.is_false(c:accepting(s))
    s = c:advance(s, byte_tok("o"))
    assert.is_true(c:accepting(s))
    assert.is_false(c:can_continue(s))
    local m = c:mask(s)
    assert.are.equal(1, count(m, tok.vocab_size))
    assert.are.equal(1, m[tok.eos])
    assert.are.equal(s, c:advance(s, tok.eos))
    assert.has_error(function() c:advance(c:start(), byte_tok("x")) end,
      'constraint: token ' .. byte_tok("x") .. ' ("x") is not allowed in state ' .. c:start())
    assert.has_error(function() c:advance(c:start(), tok.eos) end)
    assert.has_error(function() c:advance(c:start(), tok.bos) end)
    assert.has_error(function() c:advance(c:start(), 512) end)
    assert.has_error(function() c:mask(9999) end, "constraint: state 9999 does not exist (the DFA has " .. c:stats().dfa_states .. " states)")
    assert.is_false(c:accepting(-1))
    assert.is_false(c:can_continue(9999))
  end)

  it("builds patterns for choices and dtypes and escapes literals", function()
    assert.are.equal("(?:a\\.b|c\\(d\\)|\\[\\*\\])", con.pattern { choices = { "a.b", "c(d)", "[*]" } })
    local lits = { "a.b*c", "(x|y)", "[^]", "\\n", "{1,2}", "é?", "$^" }
    for _, s in ipairs(lits) do assert.is_true(con.regex(con.escape(s)):match(s), s) end
    local int, float = con.regex(con.pattern { dtype = "int" }), con.regex(con.pattern { dtype = "float" })
    for _, s in ipairs { "0", "-7", "120" } do assert.is_true(int:match(s), s) end
    for _, s in ipairs { "", "-", "01", "1.5", "+1" } do assert.is_false(int:match(s), s) end
    for _, s in ipairs { "0", "-7.25", "1e10", "3.0E-2" } do assert.is_true(float:match(s), s) end
    for _, s in ipairs { ".5", "1.", "1e", "--1" } do assert.is_false(float:match(s), s) end
    local str = con.regex(con.pattern { dtype = "string" })
    assert.is_true(str:match('"a\\"b\\u00e9 é"'))
    assert.is_false(str:match('"a"b"'))
    assert.has_error(function() con.new(tok, { dtype = "date" }) end, "constrain: unknown dtype date (int, float, bool, string)")
    local c = con.new(tok, { dtype = "int", vocab_size = 600 })
    assert.are.equal(600, c.vocab_size)
    assert.are.equal(0, c:mask(c:start())[599])
  end)

  it("computes the same masks over the trie as token by token, and stores equal masks once", function()
    local gpt2 = T.load(GPT2)
    for _, t in ipairs { tok, gpt2 } do
      local c = con.new(t, { regex = [[\{"name": "[^"]{0,20}", "age": [0-9]{1,3}\}]] })
      local n = c.vocab_size
      local a, b = ffi.new("uint8_t[?]", n), ffi.new("uint8_t[?]", n)
      local byte_token = {} -- each single-byte string's token
      for id = n - 1, 0, -1 do
        local s = t:bytes(id)
        if #s == 1 then byte_token[s] = id end
      end
      local s, text = c:start(), '{"name": "Ann", "age": 42}'
      for i = 1, #text do
        C.check(lib.yaie_constraint_mask_compute(c.ptr, s, 1, a))
        C.check(lib.yaie_constraint_mask_compute(c.ptr, s, 0, b))
        assert.are.equal(0, ffi.C.memcmp(a, b, n))
        assert.are.equal(0, ffi.C.memcmp(a, c:mask(s), n))
        assert.is_true(count(a, n) > 0)
        s = c:advance(s, byte_token[text:sub(i, i)])
      end
      assert.is_true(c:accepting(s))
      local st = c:stats()
      assert.is_true(st.unique_masks < st.masks, st.unique_masks .. " of " .. st.masks)
      assert.are.equal(st.unique_masks * n, st.mask_bytes)
    end
  end)
end)

-- ---------------------------------------------------------------------------------------------
-- The mask oracle: token t is allowed after text exactly when PCRE2 says text .. bytes(t) is a
-- match or a proper prefix of one. A truncated UTF-8 character at the end is completed with
-- every candidate code point of that prefix (the grammar's range endpoints and the extremes).
local function complete_candidates(s)
  local i = #s
  while i > 0 and i > #s - 3 and s:byte(i) >= 0x80 and s:byte(i) < 0xC0 do i = i - 1 end
  local lead = i > 0 and s:byte(i) or 0
  local n = lead >= 0xF0 and 4 or lead >= 0xE0 and 3 or lead >= 0xC0 and 2 or 1
  if i == 0 or lead < 0xC0 or #s - i + 1 >= n then return { s } end
  local head, prefix = s:sub(1, i - 1), s:sub(i)
  local out, cps = {}, { unpack(EDGE_CPS) }
  local fill = n - #prefix
  for _, cont in ipairs { "\x80", "\xBF" } do
    local bytes = prefix .. cont:rep(fill)
    local cp = bytes:byte(1) % (lead >= 0xF0 and 8 or lead >= 0xE0 and 16 or 32)
    for k = 2, #bytes do cp = cp * 64 + bytes:byte(k) % 64 end
    cps[#cps + 1] = cp
  end
  for _, cp in ipairs(cps) do
    if cp <= 0x10FFFF and (cp < 0xD800 or cp > 0xDFFF) then
      local e = utf8(cp)
      if #e == n and e:sub(1, #prefix) == prefix then out[#out + 1] = head .. e end
    end
  end
  for _, ch in ipairs(POOL) do
    if #ch == n and ch:sub(1, #prefix) == prefix then out[#out + 1] = head .. ch end
  end
  return out
end

local function viable(pc, text)
  local verdict = false
  for _, s in ipairs(complete_candidates(text)) do
    local r = pc(s, true)
    if r == nil then return nil end
    if r then verdict = true end
  end
  return verdict
end

-- Random logits: a window at a random offset into 2 * vocab uniform numbers in [-4, 4).
local noises = {}
local function noise_for(vocab)
  if not noises[vocab] then
    local a = ffi.new("float[?]", 2 * vocab)
    for i = 0, 2 * vocab - 1 do a[i] = math.random() * 8 - 4 end
    noises[vocab] = a
  end
  return noises[vocab]
end

-- Samples under the constraint with random logits (EOS pushed up so that most runs finish) until
-- EOS, a state that cannot continue, or max_tokens. Returns the text, the states visited and
-- whether it finished.
local function run_constrained(c, t, seed, max_tokens, on_state)
  local vocab = c.vocab_size
  local smp = new_sampler(seed, 1, vocab)
  local logits, noise = ffi.new("float[?]", vocab), noise_for(vocab)
  local id = ffi.new("int32_t[1]")
  local s, pieces = c:start(), {}
  for _ = 1, max_tokens do
    if not c:can_continue(s) then return table.concat(pieces), s, true end
    local mask = c:mask(s)
    if on_state then on_state(s, table.concat(pieces), mask) end
    ffi.copy(logits, noise + math.random(0, vocab), vocab * 4)
    if t.eos >= 0 then logits[t.eos] = logits[t.eos] + 7 end
    C.check(lib.yaie_sampler_sample(smp, logits, mask, id, nil))
    local tok_id = tonumber(id[0])
    assert.are_not.equal(0, mask[tok_id])
    if tok_id == t.eos then return table.concat(pieces), s, true end
    s = c:advance(s, tok_id)
    pieces[#pieces + 1] = t:bytes(tok_id)
  end
  return table.concat(pieces), s, false
end

describe("the property: sampled output always fully matches", function()
  for _, which in ipairs { { "tok512", TOK512, 250, true }, { "gpt-2", GPT2, 120, false } } do
    it("with random regexes and seeds over the " .. which[1] .. " vocabulary", function()
      local t = T.load(which[2])
      math.randomseed(#which[1] * 977)
      local bytes = {}
      for id = 0, t.vocab_size - 1 do bytes[id] = t:bytes(id) end
      local finished, masks_checked, empty = 0, 0, 0
      for trial = 1, which[3] do
        local seed = math.random(1, 2 ^ 30)
        local pat = to_pattern(gen(3))
        local where = ("trial %d, pattern %q, seed %d"):format(trial, pat, seed)
        local c, pc = con.new(t, { regex = pat }), pcre_matcher(pat)
        local on_state
        if which[4] then -- every mask against the PCRE2 oracle, token by token
          on_state = function(_, text, mask)
            masks_checked = masks_checked + 1
            for id = 0, t.vocab_size - 1 do
              local b = bytes[id]
              if #b > 0 and id ~= t.eos then
                local v = viable(pc, text .. b)
                if v ~= nil then
                  assert.are.equal(v, mask[id] ~= 0, ("%s: after %q, token %d %q"):format(where, text, id, b))
                end
              end
            end
          end
        end
        local text, s, done = run_constrained(c, t, seed, 24, on_state)
        assert.are_not.equal(0, s, where)
        if done then
          finished = finished + 1
          if text == "" then empty = empty + 1 end
          assert.is_true(c:accepting(s), where)
          assert.is_true(c.regex:match(text), where .. " on " .. ("%q"):format(text))
          local want = pc(text)
          if want ~= nil then assert.is_true(want, where .. ": PCRE2 rejects " .. ("%q"):format(text)) end
        else
          assert.are_not.equal(false, viable(pc, text), where .. ": not a prefix of a match: " .. ("%q"):format(text))
        end
      end
      assert.is_true(finished > which[3] * 0.6, finished .. " of " .. which[3] .. " finished")
      assert.is_true(finished - empty > which[3] * 0.3, (finished - empty) .. " non-empty")
      if which[4] then assert.is_true(masks_checked > 200, masks_checked .. " masks checked") end
    end)
  end
end)

-- ---------------------------------------------------------------------------------------------
describe("a real model under a constraint", function()
  local yaie = require "yaie"
  local m

  setup(function() m = yaie.load { model = H.stories .. "/stories260K.gguf" } end)

  -- Greedy decoding after the prompt, each step's logits masked by the constraint.
  local function greedy(spec, prompt, max_new)
    local t = m.tokenizer
    local c = con.new(t, spec)
    local ids = t:encode(prompt, { add_bos = true })
    local ctx, params = m:context(#ids + max_new + 1)
    local pages = ffi.new("int32_t[?]", params.n_pages)
    for i = 0, params.n_pages - 1 do pages[i] = i end
    local all = ffi.new("int32_t[?]", #ids + max_new + 1, ids)
    local seq = ffi.new("yaie_seq[1]")
    seq[0].pages, seq[0].n_pages = pages, params.n_pages
    local batch = ffi.new("yaie_batch", { seqs = seq, n_seqs = 1 })
    local n_rows = ffi.new("int[1]")
    local function forward(pos, n)
      seq[0].tokens, seq[0].n_tokens, seq[0].pos = all + pos, n, pos
      C.check(lib.yaie_forward(ctx, batch))
      return lib.yaie_context_logits(ctx, n_rows)
    end
    local smp = new_sampler(1, 0, m.config.vocab_size)
    local id = ffi.new("int32_t[1]")
    local logits = forward(0, #ids)
    local s, n, pieces, reason = c:start(), #ids, {}, "length"
    for _ = 1, max_new do
      if not c:can_continue(s) then reason = "end" break end
      C.check(lib.yaie_sampler_sample(smp, logits, c:mask(s), id, nil))
      local tok_id = tonumber(id[0])
      if tok_id == t.eos then reason = "eos" break end
      s = c:advance(s, tok_id)
      pieces[#pieces + 1] = t:bytes(tok_id)
      all[n] = tok_id
      n = n + 1
      logits = forward(n - 1, 1)
    end
    return table.concat(pieces), reason, c:accepting(s)
  end

  it("writes text that fully matches the regex", function()
    local pat = "[A-Z][a-z]{1,10} (is|was) [0-9]{1,3}\\."
    local text, reason, accepting = greedy({ regex = pat }, "Once upon a time, there was a girl named Lily.", 40)
    assert.are_not.equal("length", reason)
    assert.is_true(accepting)
    assert.is_true(pcre_matcher(pat)(text), ("%q"):format(text))
  end)

  it("picks one of the choices, and an integer", function()
    local text = greedy({ choices = { "happy", "sad", "very happy" } }, "Lily was very", 10)
    assert.is_true(text == "happy" or text == "sad" or text == "very happy", text)
    local n = greedy({ dtype = "int" }, "Tom had", 10)
    assert.matches("^%-?%d+$", n)
  end)
end)
