-- `yaie convert IN OUTDIR [--tokenizer PATH]`: writes a Hugging Face directory (config.json,
-- model.safetensors, tokenizer.json) from any model yaie loads: a llama2.c .bin, a GGUF file or
-- another HF directory.
local ffi = require "ffi"
local C = require "yaie.c"

local help = [[
usage: yaie convert IN OUTDIR [--tokenizer PATH]

Writes OUTDIR as a Hugging Face model directory: config.json, model.safetensors (float32) and,
when a tokenizer is known, tokenizer.json and tokenizer_config.json.

  IN                 a llama2.c checkpoint (.bin), a GGUF file or a Hugging Face directory
  OUTDIR             created when missing; files already there are overwritten
  --tokenizer PATH   the tokenizer to write (tokenizer.bin, GGUF, tokenizer.json); by default
                     the model's own, or for a llama2.c checkpoint tokenizer.bin or tok*.bin
                     beside it
]]

local function parse_args(args)
  local opts, pos = {}, {}
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--tokenizer" then
      opts.tokenizer = args[i + 1] or error("convert: --tokenizer needs a path", 0)
      i = i + 1
    elseif a:sub(1, 2) == "--" then
      error("convert: unknown option " .. a .. " (yaie convert --help)", 0)
    else
      pos[#pos + 1] = a
    end
    i = i + 1
  end
  if #pos ~= 2 then error("convert: expected IN and OUTDIR (yaie convert --help)", 0) end
  opts.input, opts.outdir = pos[1], pos[2]
  return opts
end

local function load_model(path)
  local out = ffi.new("yaie_model *[1]")
  C.check(C.lib.yaie_model_load(path, out))
  return ffi.gc(out[0], C.lib.yaie_model_free)
end

local function load_tokenizer(path)
  local out = ffi.new("yaie_tokenizer *[1]")
  C.check(C.lib.yaie_tokenizer_load(path, out))
  return ffi.gc(out[0], C.lib.yaie_tokenizer_free)
end

local function is_file(path)
  local f = io.open(path, "rb")
  if not f then return false end
  local ok = f:read(0) ~= nil -- reading a directory fails
  f:close()
  return ok
end

-- A llama2.c checkpoint is any file that is not GGUF (the loader decides the same way).
local function is_llama2c(path)
  local f = io.open(path, "rb")
  if not f then return false end
  local magic = f:read(4)
  f:close()
  return magic ~= nil and magic ~= "GGUF"
end

-- llama2.c keeps its tokenizer beside the checkpoint: tokenizer.bin, or a tok*.bin such as
-- tok512.bin for the small models.
local function find_llama2c_tokenizer(model_path)
  local dir = model_path:match("^(.*)/[^/]*$") or "."
  if is_file(dir .. "/tokenizer.bin") then return dir .. "/tokenizer.bin" end
  local found = {}
  local ls = io.popen("ls -1 '" .. dir:gsub("'", "'\\''") .. "' 2>/dev/null")
  for name in ls:lines() do
    local path = dir .. "/" .. name
    if name:match("^tok.*%.bin$") and path ~= model_path then found[#found + 1] = path end
  end
  ls:close()
  if #found > 1 then
    error("convert: several tokenizers beside " .. model_path .. " (" .. table.concat(found, ", ") ..
      "): choose one with --tokenizer", 0)
  end
  return found[1]
end

local function file_size(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local size = f:seek("end")
  f:close()
  return size
end

local function report(outdir, model)
  local cfg = C.lib.yaie_model_config(model)
  io.stdout:write(string.format("wrote %s (%s, %d layers, dim %d, vocab %d)\n", outdir,
    ffi.string(cfg.arch), cfg.n_layers, cfg.dim, cfg.vocab_size))
  for _, name in ipairs { "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json" } do
    local size = file_size(outdir .. "/" .. name)
    if size then io.stdout:write(string.format("  %-22s %d bytes\n", name, size)) end
  end
end

local function convert(args)
  local opts = parse_args(args)
  local model = load_model(opts.input)
  local tok_path = opts.tokenizer
  if not tok_path and is_file(opts.input) and is_llama2c(opts.input) then
    tok_path = find_llama2c_tokenizer(opts.input)
  end
  local tok = tok_path and load_tokenizer(tok_path) or C.lib.yaie_model_tokenizer(model)
  if tok == nil then
    tok = nil
    io.stderr:write("yaie: convert: no tokenizer for ", opts.input, "; writing none (use --tokenizer)\n")
  else
    local n_tok, n_model = C.lib.yaie_tokenizer_vocab_size(tok), C.lib.yaie_model_config(model).vocab_size
    if n_tok > n_model then
      error(string.format("convert: the tokenizer has %d tokens, more than the model's vocabulary of %d",
        n_tok, n_model), 0)
    end
  end
  C.check(C.lib.yaie_model_save_hf(model, tok, opts.outdir))
  report(opts.outdir, model)
  return 0
end

return { help = help, fn = convert }
