-- A loaded model with its tokenizer: `yaie.load{ model = PATH, tokenizer = PATH }`, then
-- m:generate(prompt, opts), m:tokenize(text), m:detokenize(ids), m.config.
local C = require "yaie.c"
local ffi, lib = C.ffi, C.lib

local Model = {}
Model.__index = Model

local config_fields = {
  "dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "head_dim", "vocab_size", "max_seq_len",
  "norm_eps", "rope_theta", "rope_scaling_factor", "qkv_bias", "qk_norm", "tied_embeddings",
}

local function config_table(cfg)
  local t = { arch = ffi.string(cfg.arch), rope_layout = cfg.rope_layout == 1 and "half" or "adjacent" }
  for _, k in ipairs(config_fields) do t[k] = tonumber(cfg[k]) end
  for _, k in ipairs { "qkv_bias", "qk_norm", "tied_embeddings" } do t[k] = t[k] ~= 0 end
  return t
end

-- llama2.c checkpoints carry no tokenizer: look for tokenizer.bin or tok*.bin beside them.
local function tokenizer_beside(path)
  local dir = path:match("^(.*)/[^/]*$") or "."
  local f = io.open(dir .. "/tokenizer.bin", "rb")
  if f then f:close() return dir .. "/tokenizer.bin" end
  local p = io.popen("ls " .. "'" .. dir:gsub("'", "'\\''") .. "'" .. "/tok*.bin 2>/dev/null")
  local found = p:read("*l")
  p:close()
  return found
end

local M = {}

-- yaie_context_params.device for a device name.
local devices = { cpu = 0, cuda = 1 }
function M.device_code(name)
  local code = devices[name or "cpu"]
  if not code then error("unknown device '" .. tostring(name) .. "' (cpu or cuda)", 0) end
  return code
end

function M.load(opts)
  if type(opts) == "string" then opts = { model = opts } end
  assert(type(opts) == "table" and opts.model, "yaie.load: give { model = PATH [, tokenizer = PATH] }")
  local out = ffi.new("yaie_model*[1]")
  C.check(lib.yaie_model_load(opts.model, out))
  local ptr = ffi.gc(out[0], lib.yaie_model_free)
  local self = setmetatable({ ptr = ptr, path = opts.model, threads = opts.threads or 0,
    device = opts.device or "cpu" }, Model)
  M.device_code(self.device)
  self.config = config_table(lib.yaie_model_config(ptr))
  local tok_path = opts.tokenizer
  if tok_path == false then return self end -- no tokenizer wanted: token ids in and out only
  local Tokenizer = require "yaie.tokenizer"
  if tok_path then
    self.tokenizer = Tokenizer.load(tok_path)
  elseif lib.yaie_model_tokenizer(ptr) ~= nil then
    self.tokenizer = Tokenizer.wrap(lib.yaie_model_tokenizer(ptr), self)
  else
    tok_path = tokenizer_beside(opts.model)
    if tok_path then self.tokenizer = Tokenizer.load(tok_path) end
  end
  return self
end

-- A model made in C (yaie_model_random), owned from here on: token ids in and out only.
function M.wrap(ptr, opts)
  opts = opts or {}
  local self = setmetatable({ ptr = ffi.gc(ptr, lib.yaie_model_free), path = "(random weights)",
    threads = opts.threads or 0, device = opts.device or "cpu" }, Model)
  M.device_code(self.device)
  self.config = config_table(lib.yaie_model_config(ptr))
  return self
end

local function need_tokenizer(self)
  if not self.tokenizer then
    error(self.path .. ": no tokenizer found with the model; give one with tokenizer = PATH (--tokenizer)", 0)
  end
  return self.tokenizer
end

function Model:tokenize(text, opts)
  return need_tokenizer(self):encode(text, opts)
end

function Model:detokenize(ids)
  return need_tokenizer(self):decode(ids)
end

function Model:generate(prompt, opts)
  return require("yaie.generate").generate(self, prompt, opts)
end

-- A KV context holding one sequence of up to n_tokens positions, pages 0..n-1 in order.
function Model:context(n_tokens, page_size, max_batch_tokens)
  page_size = page_size or 16
  local params = ffi.new("yaie_context_params", {
    n_pages = math.max(1, math.ceil(n_tokens / page_size)), page_size = page_size,
    max_batch_tokens = max_batch_tokens or math.min(n_tokens, 512), n_threads = self.threads,
    device = M.device_code(self.device),
  })
  local out = ffi.new("yaie_context*[1]")
  C.check(lib.yaie_context_new(self.ptr, params, out))
  return ffi.gc(out[0], lib.yaie_context_free), params
end

-- Runs ids as one sequence from position 0 on a fresh context. Returns the logits (floats, a
-- row per position when all, else the last position's row), the number of rows, and the context
-- that holds them (keep it while reading them).
function Model:prompt_logits(ids, all)
  local ctx, params = self:context(#ids, 16, #ids)
  local pages = ffi.new("int32_t[?]", params.n_pages)
  for i = 0, params.n_pages - 1 do pages[i] = i end
  local toks = C.int32_array(ids)
  local seq = ffi.new("yaie_seq[1]", { { tokens = toks, n_tokens = #ids, pos = 0, pages = pages,
    n_pages = params.n_pages, all_logits = all and 1 or 0 } })
  C.check(lib.yaie_forward(ctx, ffi.new("yaie_batch", { seqs = seq, n_seqs = 1 })))
  local n = ffi.new("int[1]")
  return lib.yaie_context_logits(ctx, n), n[0], ctx
end

return M
