-- Constrained decoding: `local con = require("yaie.constrain").new(tok, spec)` where spec is
-- { regex = "..." }, { choices = { "yes", "no" } } or { dtype = "int" | "float" | "bool" |
-- "string" }, plus vocab_size (the model's, when it exceeds the tokenizer's). Then
-- con:start() gives the first state, con:mask(state) the mask to pass to the sampler (a cdata
-- pointer, one byte per token), con:advance(state, token) the next state, con:accepting(state)
-- whether the text so far fully matches, con:can_continue(state) whether any more text may
-- follow. The regex matches the concatenated bytes of the generated tokens, whole.
local C = require "yaie.c"
local ffi, lib = C.ffi, C.lib

local M = {}

-- The regex that matches exactly the string s: a backslash before every ASCII punctuation mark.
function M.escape(s)
  assert(type(s) == "string", "escape: give a string")
  return (s:gsub("%p", "\\%0"))
end

M.dtypes = {
  int = [[-?(0|[1-9][0-9]*)]],
  float = [[-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?]],
  bool = [[true|false]],
  string = [["([^"\\\x00-\x1F]|\\(["\\/bfnrt]|u[0-9a-fA-F]{4}))*"]], -- a JSON string
}

-- The pattern a spec stands for.
function M.pattern(spec)
  assert(type(spec) == "table", "constrain: give { regex = ... }, { choices = ... } or { dtype = ... }")
  if spec.regex then
    assert(type(spec.regex) == "string", "constrain: regex must be a string")
    return spec.regex
  elseif spec.choices then
    assert(type(spec.choices) == "table" and #spec.choices > 0, "constrain: choices must be a non-empty list")
    local alts = {}
    for i, s in ipairs(spec.choices) do alts[i] = M.escape(tostring(s)) end
    return "(?:" .. table.concat(alts, "|") .. ")"
  elseif spec.dtype then
    local p = M.dtypes[spec.dtype]
    if not p then error("constrain: unknown dtype " .. tostring(spec.dtype) .. " (int, float, bool, string)", 0) end
    return p
  end
  error("constrain: give { regex = ... }, { choices = ... } or { dtype = ... }", 0)
end

-- A compiled regex: re:match(text) is true when all of text matches.
local Regex = {}
Regex.__index = Regex

function M.regex(pattern)
  assert(type(pattern) == "string", "regex: give a pattern string")
  local out = ffi.new("yaie_regex*[1]")
  C.check(lib.yaie_regex_new(pattern, #pattern, out))
  return setmetatable({ ptr = ffi.gc(out[0], lib.yaie_regex_free), pattern = pattern,
                        matched = ffi.new("int[1]") }, Regex)
end

function Regex:match(text)
  C.check(lib.yaie_regex_match(self.ptr, text, #text, self.matched))
  return self.matched[0] ~= 0
end

local Constraint = {}
Constraint.__index = Constraint

function M.new(tok, spec)
  local tptr = type(tok) == "table" and tok.ptr or tok
  assert(tptr ~= nil, "constrain: give a tokenizer")
  local pattern = M.pattern(spec)
  local re = M.regex(pattern)
  local out = ffi.new("yaie_constraint*[1]")
  C.check(lib.yaie_constraint_new(re.ptr, tptr, spec.vocab_size or 0, out))
  local ptr = ffi.gc(out[0], lib.yaie_constraint_free)
  return setmetatable({
    ptr = ptr, pattern = pattern, regex = re,
    vocab_size = lib.yaie_constraint_vocab_size(ptr),
    mask_out = ffi.new("const uint8_t*[1]"), state_out = ffi.new("int[1]"),
  }, Constraint)
end

function Constraint:start() return lib.yaie_constraint_start(self.ptr) end

-- The state's mask: a `const uint8_t *` of vocab_size bytes, valid while the constraint lives.
function Constraint:mask(state)
  C.check(lib.yaie_constraint_mask(self.ptr, state, self.mask_out))
  return self.mask_out[0]
end

function Constraint:advance(state, token)
  C.check(lib.yaie_constraint_advance(self.ptr, state, token, self.state_out))
  return self.state_out[0]
end

function Constraint:accepting(state) return lib.yaie_constraint_is_accepting(self.ptr, state) ~= 0 end

function Constraint:can_continue(state) return lib.yaie_constraint_can_continue(self.ptr, state) ~= 0 end

function Constraint:stats()
  local s = ffi.new("yaie_constraint_stats")
  lib.yaie_constraint_get_stats(self.ptr, s)
  return { dfa_states = s.dfa_states, masks = s.masks, unique_masks = s.unique_masks,
           mask_bytes = tonumber(s.mask_bytes), trie_nodes = s.trie_nodes }
end

return M
