-- Hugging Face directories both ways: `yaie convert` writes them from llama2.c and GGUF files,
-- yaie_load_hf reads them back (and synthetic Llama/Mistral/Qwen2/Qwen3 checkpoints written here
-- in F32, F16 and BF16, single-file and sharded), and corrupt directories fail with a message
-- naming the file and the tensor.
local H = require "helper"
local C = require "yaie.c"
local ffi, lib = C.ffi, C.lib

local function load(path)
  local out = ffi.new("yaie_model*[1]")
  C.check(lib.yaie_model_load(path, out))
  return ffi.gc(out[0], lib.yaie_model_free)
end

-- The load's error message (the load must fail).
local function load_error(path)
  local ok, err = pcall(load, path)
  assert.is_false(ok, path .. " loaded but should not have")
  return err
end

local function save(model, tok, dir)
  C.check(lib.yaie_model_save_hf(model, tok, dir))
end

-- Logits of every position for `tokens` run as one sequence from position 0.
local function logits(model, tokens)
  local vocab = lib.yaie_model_config(model).vocab_size
  local ctx_out = ffi.new("yaie_context*[1]")
  local params = ffi.new("yaie_context_params", { n_pages = math.ceil(#tokens / 4), page_size = 4,
    max_batch_tokens = #tokens, n_threads = 1 })
  C.check(lib.yaie_context_new(model, params, ctx_out))
  local ctx = ffi.gc(ctx_out[0], lib.yaie_context_free)
  local pages = {}
  for i = 1, params.n_pages do pages[i] = i - 1 end
  local toks, page_arr = C.int32_array(tokens), C.int32_array(pages)
  local seq = ffi.new("yaie_seq[1]", { { tokens = toks, n_tokens = #tokens, pos = 0, pages = page_arr,
    n_pages = #pages, all_logits = 1 } })
  C.check(lib.yaie_forward(ctx, ffi.new("yaie_batch", { seqs = seq, n_seqs = 1 })))
  local n = ffi.new("int[1]")
  local p = lib.yaie_context_logits(ctx, n)
  local out = {}
  for i = 0, n[0] * vocab - 1 do out[i + 1] = p[i] end
  return out
end

-- max |a - b| over max |a|: the error relative to the logits' scale.
local function rel_diff(a, b)
  assert.are.equal(#a, #b)
  local worst, scale = 0, 0
  for i = 1, #a do
    scale = math.max(scale, math.abs(a[i]))
    worst = math.max(worst, math.abs(a[i] - b[i]))
  end
  return worst / scale
end

local function rm(dir) os.execute("rm -rf " .. H.quote(dir)) end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- ---------------------------------------------------------------------------------------------
-- Writing synthetic checkpoints: a small JSON encoder, F16/BF16 encoders and a safetensors writer.

local NULL = setmetatable({}, { __tostring = function() return "null" end })

local function json(v)
  if v == NULL then return "null" end
  local t = type(v)
  if t == "string" then return string.format("%q", v) end
  if t == "boolean" then return tostring(v) end
  if t == "number" then
    return v == math.floor(v) and string.format("%d", v) or string.format("%.17g", v)
  end
  local parts = {}
  if v[1] ~= nil then
    for _, x in ipairs(v) do parts[#parts + 1] = json(x) end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do parts[#parts + 1] = json(k) .. ":" .. json(v[k]) end
  return "{" .. table.concat(parts, ",") .. "}"
end

local bits = ffi.new("union { float f; uint32_t u; }")

local function to_bf16(x) -- round to nearest even on the float32 bits
  bits.f = x
  local u = tonumber(bits.u)
  return math.floor((u + 0x7fff + math.floor(u / 65536) % 2) / 65536) % 65536
end

local function to_f16(x) -- normal and subnormal halves, round to nearest
  local sign = (x < 0 or 1 / x < 0) and 0x8000 or 0
  x = math.abs(x)
  if x == 0 then return sign end
  local m, e = math.frexp(x) -- x = m * 2^e, m in [0.5, 1)
  local exp = e - 1 + 15
  if exp <= 0 then return sign + math.floor(x / 2 ^ -24 + 0.5) end
  local man = math.floor((m * 2 - 1) * 1024 + 0.5)
  if man == 1024 then exp, man = exp + 1, 0 end
  assert(exp < 31, "value too large for f16")
  return sign + exp * 1024 + man
end

local function encode(values, dtype)
  local n = #values
  if dtype == "F32" then
    local a = ffi.new("float[?]", n)
    for i = 1, n do a[i - 1] = values[i] end
    return ffi.string(a, 4 * n)
  end
  local a, conv = ffi.new("uint16_t[?]", n), dtype == "F16" and to_f16 or to_bf16
  for i = 1, n do a[i - 1] = conv(values[i]) end
  return ffi.string(a, 2 * n)
end

local function u64le(n)
  local b = {}
  for i = 1, 8 do
    b[i] = string.char(n % 256)
    n = math.floor(n / 256)
  end
  return table.concat(b)
end

-- tensors: { name, shape, values, dtype (optional override), bytes (optional raw data) }
local function safetensors(tensors, dtype)
  local data, offset = {}, 0
  local header = { '"__metadata__":{"format":"pt"}' }
  for _, t in ipairs(tensors) do
    local bytes = t.bytes or encode(t.values, t.encode_as or t.dtype or dtype)
    header[#header + 1] = string.format('"%s":{"dtype":"%s","shape":%s,"data_offsets":[%d,%d]}', t.name,
      t.dtype or dtype, #t.shape > 0 and json(t.shape) or "[]", offset, offset + #bytes)
    data[#data + 1] = bytes
    offset = offset + #bytes
  end
  local text = "{" .. table.concat(header, ",") .. "}"
  return u64le(#text) .. text .. table.concat(data)
end

-- The tensors of a model described by o, with weights from value() (norm weights near 1).
local function model_tensors(o, value)
  local q, kv = o.heads * o.head_dim, o.kv_heads * o.head_dim
  local list = {}
  local function add(name, shape, norm)
    local n, values = 1, {}
    for _, d in ipairs(shape) do n = n * d end
    for i = 1, n do values[i] = norm and 1 + value() or value() end
    list[#list + 1] = { name = name, shape = shape, values = values }
  end
  add("model.embed_tokens.weight", { o.vocab, o.dim })
  for l = 0, o.layers - 1 do
    local p = "model.layers." .. l .. "."
    add(p .. "input_layernorm.weight", { o.dim }, true)
    add(p .. "self_attn.q_proj.weight", { q, o.dim })
    add(p .. "self_attn.k_proj.weight", { kv, o.dim })
    add(p .. "self_attn.v_proj.weight", { kv, o.dim })
    add(p .. "self_attn.o_proj.weight", { o.dim, q })
    if o.bias then
      add(p .. "self_attn.q_proj.bias", { q })
      add(p .. "self_attn.k_proj.bias", { kv })
      add(p .. "self_attn.v_proj.bias", { kv })
    end
    if o.qk_norm then
      add(p .. "self_attn.q_norm.weight", { o.head_dim }, true)
      add(p .. "self_attn.k_norm.weight", { o.head_dim }, true)
    end
    add(p .. "post_attention_layernorm.weight", { o.dim }, true)
    add(p .. "mlp.gate_proj.weight", { o.hidden, o.dim })
    add(p .. "mlp.up_proj.weight", { o.hidden, o.dim })
    add(p .. "mlp.down_proj.weight", { o.dim, o.hidden })
  end
  add("model.norm.weight", { o.dim }, true)
  if not o.tied then add("lm_head.weight", { o.vocab, o.dim }) end
  return list
end

local function config_json(o)
  local c = { architectures = { o.arch }, hidden_size = o.dim, intermediate_size = o.hidden,
    num_hidden_layers = o.layers, num_attention_heads = o.heads, num_key_value_heads = o.kv_heads,
    vocab_size = o.vocab, max_position_embeddings = 128, rms_norm_eps = 1e-6, rope_theta = o.theta,
    tie_word_embeddings = o.tied or false, hidden_act = "silu", torch_dtype = "float32" }
  if o.head_dim ~= o.dim / o.heads then c.head_dim = o.head_dim end
  for k, v in pairs(o.config or {}) do c[k] = v end
  return json(c)
end

-- Writes a synthetic checkpoint into dir. opts: dtype ("F32"), shards (nil: one file),
-- exact (weights k/64, which F16 and BF16 hold exactly), mutate(tensors) (to corrupt them).
local function write_model(dir, o, opts)
  opts = opts or {}
  os.execute("mkdir -p " .. H.quote(dir))
  math.randomseed(o.seed or 7)
  local value = opts.exact and function() return math.random(-16, 16) / 64 end
    or function() return (math.random() * 2 - 1) * 0.4 end
  local tensors = model_tensors(o, value)
  if opts.mutate then opts.mutate(tensors) end
  H.write(dir .. "/config.json", opts.config_text or config_json(o))
  local dtype = opts.dtype or "F32"
  if not opts.shards then
    H.write(dir .. "/model.safetensors", safetensors(tensors, dtype))
    return
  end
  local per, map = math.ceil(#tensors / opts.shards), {}
  for s = 1, opts.shards do
    local name = string.format("model-%05d-of-%05d.safetensors", s, opts.shards)
    local part = {}
    for i = (s - 1) * per + 1, math.min(s * per, #tensors) do
      part[#part + 1] = tensors[i]
      map[tensors[i].name] = name
    end
    H.write(dir .. "/" .. name, safetensors(part, dtype))
  end
  H.write(dir .. "/model.safetensors.index.json", json { metadata = { total_size = 0 }, weight_map = map })
end

local archs = {
  qwen2 = { arch = "Qwen2ForCausalLM", dim = 32, hidden = 48, layers = 2, heads = 4, kv_heads = 2,
    head_dim = 8, vocab = 64, theta = 1000000, bias = true, tied = true },
  qwen3 = { arch = "Qwen3ForCausalLM", dim = 32, hidden = 48, layers = 2, heads = 4, kv_heads = 2,
    head_dim = 16, vocab = 64, theta = 1000000, qk_norm = true },
  mistral = { arch = "MistralForCausalLM", dim = 32, hidden = 64, layers = 2, heads = 4, kv_heads = 1,
    head_dim = 8, vocab = 64, theta = 10000, config = { sliding_window = 4096 } },
  llama3 = { arch = "LlamaForCausalLM", dim = 32, hidden = 48, layers = 2, heads = 2, kv_heads = 2,
    head_dim = 16, vocab = 64, theta = 500000, config = { rope_scaling = { rope_type = "llama3",
      factor = 8, low_freq_factor = 1, high_freq_factor = 4, original_max_position_embeddings = 16 } } },
}
local small_tokens = { 1, 5, 9, 20, 33, 2, 60, 7, 7, 41 }

-- ---------------------------------------------------------------------------------------------

describe("yaie convert", function()
  local tmp, bin_dir, gguf_dir
  local from_bin, from_gguf -- { code, stdout, stderr } of the two conversions the tests read
  local stories_tokens = { 1, 403, 407, 261, 378, 8, 44, 102, 500, 2, 17 }
  setup(function()
    tmp = H.tmpdir()
    bin_dir, gguf_dir = tmp .. "/from-bin", tmp .. "/from-gguf/nested"
    from_bin = { H.yaie { "convert", H.stories .. "/stories260K.bin", bin_dir } }
    from_gguf = { H.yaie { "convert", H.stories .. "/stories260K.gguf", gguf_dir } }
  end)
  teardown(function() rm(tmp) end)

  it("writes a HF directory from stories260K.bin, with tok512.bin found beside it", function()
    local code, out, err = unpack(from_bin)
    assert.are.equal(0, code, err)
    assert.truthy(out:find("wrote " .. bin_dir .. " (llama, 5 layers, dim 64, vocab 512)", 1, true), out)
    for _, f in ipairs { "config.json", "model.safetensors", "tokenizer.json" } do
      assert.is_true(exists(bin_dir .. "/" .. f), f)
      assert.truthy(out:find(f, 1, true), out)
    end
    local config = H.read(bin_dir .. "/config.json")
    assert.truthy(config:find('"architectures":%s*%[%s*"LlamaForCausalLM"%s*%]'), config)
    assert.truthy(config:find('"tie_word_embeddings":%s*true'), config)
    assert.truthy(config:find('"torch_dtype":%s*"float32"'), config)
    assert.truthy(config:find('"rms_norm_eps":%s*1e%-05'), config)
    assert.truthy(config:find('"bos_token_id":%s*1'), config)
    assert.truthy(config:find('"eos_token_id":%s*2'), config)
    -- Tied: no separate classifier is written.
    assert.is_nil(H.read(bin_dir .. "/model.safetensors"):sub(1, 4096):find("lm_head", 1, true))
  end)

  it("writes a HF directory from stories260K.gguf, creating missing parents", function()
    local code, out, err = unpack(from_gguf)
    assert.are.equal(0, code, err)
    assert.truthy(out:find("model.safetensors", 1, true), out)
    assert.is_true(exists(gguf_dir .. "/tokenizer.json"))
  end)

  it("reads the converted directories back with the same config, in the HF RoPE layout", function()
    for _, pair in ipairs { { "stories260K.bin", bin_dir }, { "stories260K.gguf", gguf_dir } } do
      local a = lib.yaie_model_config(load(H.stories .. "/" .. pair[1]))
      local b = lib.yaie_model_config(load(pair[2]))
      assert.are.equal("llama", ffi.string(b.arch))
      for _, k in ipairs { "dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "head_dim", "vocab_size",
        "max_seq_len", "norm_eps", "rope_theta", "tied_embeddings", "qkv_bias", "qk_norm" } do
        assert.are.equal(tonumber(a[k]), tonumber(b[k]), pair[1] .. " " .. k)
      end
      assert.are.equal(0, a.rope_layout)
      assert.are.equal(1, b.rope_layout)
    end
  end)

  it("gives the logits of the original model (Q/K permuted, not changed)", function()
    for _, pair in ipairs { { "stories260K.bin", bin_dir }, { "stories260K.gguf", gguf_dir } } do
      local want = logits(load(H.stories .. "/" .. pair[1]), stories_tokens)
      local got = logits(load(pair[2]), stories_tokens)
      assert.is_true(rel_diff(want, got) < 1e-5, pair[1] .. ": " .. rel_diff(want, got))
    end
  end)

  it("loads the tokenizer.json it wrote with the directory", function()
    local model = load(bin_dir)
    local tok = lib.yaie_model_tokenizer(model)
    assert.is_true(tok ~= nil)
    assert.are.equal(512, lib.yaie_tokenizer_vocab_size(tok))
  end)

  it("converts a HF directory again, unchanged (no second permutation)", function()
    local again = tmp .. "/again"
    local code, _, err = H.yaie { "convert", bin_dir, again }
    assert.are.equal(0, code, err)
    assert.are.equal(H.read(bin_dir .. "/model.safetensors"), H.read(again .. "/model.safetensors"))
  end)

  it("takes --tokenizer, and writes no tokenizer when none is known", function()
    local code, _, err = H.yaie { "convert", H.stories .. "/stories260K.bin", tmp .. "/with-tok",
      "--tokenizer", H.stories .. "/tok512.bin" }
    assert.are.equal(0, code, err)
    assert.is_true(exists(tmp .. "/with-tok/tokenizer.json"))
    -- The C call with no tokenizer writes config.json and the weights only.
    save(load(H.stories .. "/stories260K.bin"), nil, tmp .. "/no-tok")
    assert.is_true(exists(tmp .. "/no-tok/model.safetensors"))
    assert.is_false(exists(tmp .. "/no-tok/tokenizer.json"))
    assert.is_nil(H.read(tmp .. "/no-tok/config.json"):find("bos_token_id", 1, true))
    assert.is_true(lib.yaie_model_tokenizer(load(tmp .. "/no-tok")) == nil)
  end)

  it("never changes the loaded model while saving it", function()
    local model = load(H.stories .. "/stories260K.bin")
    local before = logits(model, stories_tokens)
    save(model, nil, tmp .. "/scratch")
    assert.are.same(before, logits(model, stories_tokens))
  end)

  it("reports bad arguments and unreadable inputs on one line", function()
    local code, _, err = H.yaie { "convert", tmp .. "/missing.bin", tmp .. "/x" }
    assert.are.equal(1, code)
    assert.truthy(err:find("missing.bin: cannot open", 1, true), err)
    assert.are.equal(1, select(2, err:gsub("\n", "")))
    code, _, err = H.yaie { "convert", H.stories .. "/stories260K.bin" }
    assert.are.equal(1, code)
    assert.truthy(err:find("expected IN and OUTDIR", 1, true), err)
    code, _, err = H.yaie { "convert", H.stories .. "/stories260K.bin", tmp .. "/x", "--tokenizer" }
    assert.truthy(err:find("--tokenizer needs a path", 1, true), err)
    code, _, err = H.yaie { "convert", H.stories .. "/stories260K.bin", H.stories .. "/tok512.bin" }
    assert.are.equal(1, code)
    assert.truthy(err:find("not a directory", 1, true), err)
    local help_code, help = H.yaie { "convert", "--help" }
    assert.are.equal(0, help_code)
    assert.truthy(help:find("usage: yaie convert IN OUTDIR", 1, true))
  end)
end)

describe("synthetic Hugging Face checkpoints", function()
  local tmp
  setup(function() tmp = H.tmpdir() end)
  teardown(function() rm(tmp) end)

  local function config_of(dir) return lib.yaie_model_config(load(dir)) end

  it("load Qwen2 with QKV biases and tied embeddings", function()
    write_model(tmp .. "/qwen2", archs.qwen2)
    local c = config_of(tmp .. "/qwen2")
    assert.are.equal("qwen2", ffi.string(c.arch))
    assert.are.same({ 1, 0, 1, 1, 8, 2, 1000000, 128 }, { c.qkv_bias, c.qk_norm, c.tied_embeddings, c.rope_layout,
      c.head_dim, c.n_kv_heads, c.rope_theta, c.max_seq_len })
    assert.is_true(math.abs(c.norm_eps - 1e-6) < 1e-12)
  end)

  it("load Qwen3 with Q/K norms and a head_dim that is not hidden / heads", function()
    write_model(tmp .. "/qwen3", archs.qwen3)
    local c = config_of(tmp .. "/qwen3")
    assert.are.equal("qwen3", ffi.string(c.arch))
    assert.are.same({ 0, 1, 0, 16, 4, 2 }, { c.qkv_bias, c.qk_norm, c.tied_embeddings, c.head_dim, c.n_heads, c.n_kv_heads })
    assert.are.equal(#small_tokens * 64, #logits(load(tmp .. "/qwen3"), small_tokens))
  end)

  it("load Mistral, cutting the context to a sliding window shorter than it", function()
    write_model(tmp .. "/mistral", archs.mistral)
    local c = config_of(tmp .. "/mistral")
    assert.are.same({ "mistral", 1, 8, 128 }, { ffi.string(c.arch), c.n_kv_heads, c.head_dim, c.max_seq_len })
    local windowed = setmetatable({ config = { sliding_window = 64 } }, { __index = archs.mistral })
    write_model(tmp .. "/mistral-window", windowed)
    assert.are.equal(64, config_of(tmp .. "/mistral-window").max_seq_len)
  end)

  it("load llama3 RoPE scaling", function()
    write_model(tmp .. "/llama3", archs.llama3)
    local c = config_of(tmp .. "/llama3")
    assert.are.same({ "llama", 8, 1, 4, 16, 500000 }, { ffi.string(c.arch), c.rope_scaling_factor,
      c.rope_low_freq_factor, c.rope_high_freq_factor, c.rope_original_max_pos, c.rope_theta })
    -- transformers 5 writes rope_parameters, holding rope_theta too, in place of rope_scaling.
    local params = {}
    for k, v in pairs(archs.llama3.config.rope_scaling) do params[k] = v end
    params.rope_theta = 500000 -- and no top-level rope_theta
    local v5 = setmetatable({ theta = NULL, config = { rope_parameters = params } }, { __index = archs.llama3 })
    write_model(tmp .. "/llama3-v5", v5)
    assert.are.same(logits(load(tmp .. "/llama3"), small_tokens), logits(load(tmp .. "/llama3-v5"), small_tokens))
    c = config_of(tmp .. "/llama3-v5")
    assert.are.same({ 8, 16, 500000 }, { c.rope_scaling_factor, c.rope_original_max_pos, c.rope_theta })
  end)

  for _, name in ipairs { "qwen2", "qwen3", "mistral", "llama3" } do
    it(name .. " in F16 and BF16 gives the F32 logits: exactly for exact weights, closely otherwise", function()
      local base = tmp .. "/dtypes-" .. name
      local results = {}
      for _, exact in ipairs { true, false } do
        for _, dtype in ipairs { "F32", "F16", "BF16" } do
          local dir = base .. "/" .. dtype .. (exact and "-exact" or "")
          write_model(dir, archs[name], { dtype = dtype, exact = exact })
          results[dtype .. tostring(exact)] = logits(load(dir), small_tokens)
        end
      end
      assert.are.equal(0, rel_diff(results.F32true, results.F16true))
      assert.are.equal(0, rel_diff(results.F32true, results.BF16true))
      assert.is_true(rel_diff(results.F32false, results.F16false) < 5e-3, rel_diff(results.F32false, results.F16false))
      assert.is_true(rel_diff(results.F32false, results.BF16false) < 5e-2, rel_diff(results.F32false, results.BF16false))
    end)
  end

  it("convert tensors large enough to be split across threads exactly", function()
    local big = setmetatable({ vocab = 9000 }, { __index = archs.qwen3 }) -- 288000-element tables
    local got = {}
    for _, dtype in ipairs { "F32", "F16", "BF16" } do
      write_model(tmp .. "/big-" .. dtype, big, { dtype = dtype, exact = true })
      got[dtype] = logits(load(tmp .. "/big-" .. dtype), { 1, 8999, 4500, 17 })
    end
    assert.are.equal(0, rel_diff(got.F32, got.F16))
    assert.are.equal(0, rel_diff(got.F32, got.BF16))
  end)

  it("load sharded checkpoints through model.safetensors.index.json", function()
    for _, name in ipairs { "qwen2", "qwen3" } do
      write_model(tmp .. "/one-" .. name, archs[name], { dtype = "BF16" })
      write_model(tmp .. "/sharded-" .. name, archs[name], { dtype = "BF16", shards = 3 })
      assert.is_true(exists(tmp .. "/sharded-" .. name .. "/model-00003-of-00003.safetensors"))
      assert.are.same(logits(load(tmp .. "/one-" .. name), small_tokens),
        logits(load(tmp .. "/sharded-" .. name), small_tokens))
    end
  end)

  it("save and load back unchanged: config, RoPE scaling, biases, norms, classifier", function()
    for _, name in ipairs { "qwen2", "qwen3", "mistral", "llama3" } do
      local src, dst = tmp .. "/save-src-" .. name, tmp .. "/save-dst-" .. name
      write_model(src, archs[name], { dtype = "BF16" })
      local model = load(src)
      save(model, nil, dst)
      local a, b = lib.yaie_model_config(model), config_of(dst)
      for _, k in ipairs { "dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "head_dim", "vocab_size",
        "max_seq_len", "norm_eps", "rope_theta", "rope_layout", "rope_scaling_factor", "rope_low_freq_factor",
        "rope_high_freq_factor", "rope_original_max_pos", "qkv_bias", "qk_norm", "tied_embeddings" } do
        assert.are.equal(tonumber(a[k]), tonumber(b[k]), name .. " " .. k)
      end
      assert.are.equal(ffi.string(a.arch), ffi.string(b.arch))
      assert.are.same(logits(model, small_tokens), logits(load(dst), small_tokens))
    end
  end)
end)

describe("corrupt Hugging Face directories", function()
  local tmp
  setup(function() tmp = H.tmpdir() end)
  teardown(function() rm(tmp) end)

  -- Writes a Qwen2 checkpoint changed by opts and returns the load's error message.
  local n = 0
  local function broken(opts, arch)
    n = n + 1
    local dir = tmp .. "/case" .. n
    write_model(dir, arch or archs.qwen2, opts)
    return load_error(dir), dir
  end

  local function find(haystack, ...)
    for _, needle in ipairs { ... } do
      assert.truthy(haystack:find(needle, 1, true), "'" .. needle .. "' not in: " .. haystack)
    end
  end

  it("a missing config.json, or one that is not JSON", function()
    os.execute("mkdir -p " .. H.quote(tmp .. "/empty"))
    find(load_error(tmp .. "/empty"), "empty: no config.json")
    find(broken { config_text = '{"architectures": ["Qwen2ForCausalLM"' }, "config.json: invalid JSON")
  end)

  it("an unknown architecture, or an unsupported feature, named", function()
    local gpt2 = setmetatable({ arch = "GPT2LMHeadModel" }, { __index = archs.qwen2 })
    local err = broken({}, gpt2)
    find(err, "architecture 'GPT2LMHeadModel' is not supported")
    local status = lib.yaie_model_load(tmp .. "/case" .. n, ffi.new("yaie_model*[1]"))
    assert.are.equal(lib.YAIE_ERR_UNSUPPORTED, status)
    local yarn = setmetatable({ config = { rope_scaling = { rope_type = "yarn", factor = 4 } } }, { __index = archs.qwen2 })
    find(broken({}, yarn), "rope_scaling type 'yarn' is not supported")
    local gelu = setmetatable({ config = { hidden_act = "gelu" } }, { __index = archs.qwen2 })
    find(broken({}, gelu), "hidden_act 'gelu' is not supported")
  end)

  it("a config key of the wrong type or missing", function()
    local bad = setmetatable({ config = { num_hidden_layers = "two" } }, { __index = archs.qwen2 })
    find(broken({}, bad), "config.json: num_hidden_layers is not a number")
    local half = setmetatable({ config = { hidden_size = 32.5 } }, { __index = archs.qwen2 })
    find(broken({}, half), "hidden_size = 32.5 is not an integer")
    find(broken { config_text = '{"architectures": ["Qwen2ForCausalLM"]}' }, "config.json: missing key hidden_size")
  end)

  it("a truncated safetensors file, naming the file and the tensor", function()
    local dir = tmp .. "/truncated"
    write_model(dir, archs.qwen2)
    local whole = H.read(dir .. "/model.safetensors")
    H.write(dir .. "/model.safetensors", whole:sub(1, math.floor(#whole * 0.6)))
    find(load_error(dir), dir .. "/model.safetensors: tensor ", "lie past the end", "truncated")
    H.write(dir .. "/model.safetensors", whole:sub(1, 5))
    find(load_error(dir), "model.safetensors: truncated safetensors file (5 bytes)")
  end)

  it("a header length past the end of the file, and a header that is not JSON", function()
    local dir = tmp .. "/header"
    write_model(dir, archs.qwen2)
    H.write(dir .. "/model.safetensors", u64le(1e12) .. "{}")
    find(load_error(dir), "model.safetensors: header length 1000000000000 runs past the end of the file")
    H.write(dir .. "/model.safetensors", u64le(10) .. "{not json}")
    find(load_error(dir), "model.safetensors: the header is not a JSON object")
  end)

  it("a tensor of the wrong shape, dtype or size, or one that is missing", function()
    local function mutate_named(suffix, f)
      return { mutate = function(ts)
        for i, t in ipairs(ts) do
          if t.name:find(suffix, 1, true) then return f(ts, i, t) end
        end
      end }
    end
    find(broken(mutate_named("layers.1.mlp.down_proj.weight", function(_, _, t) t.shape = { t.shape[2], t.shape[1] } end)),
      "tensor model.layers.1.mlp.down_proj.weight has shape [48, 32], expected [32, 48]")
    find(broken(mutate_named("layers.1.mlp.up_proj.weight", function(ts, i) table.remove(ts, i) end)),
      "missing tensor model.layers.1.mlp.up_proj.weight")
    find(broken(mutate_named("layers.0.self_attn.k_proj.bias", function(ts, i) table.remove(ts, i) end)),
      "missing tensor model.layers.0.self_attn.k_proj.bias")
    find(broken(mutate_named("model.norm.weight", function(_, _, t) t.dtype, t.encode_as = "I32", "F32" end)),
      "tensor model.norm.weight has dtype I32; yaie reads F32, F16 and BF16", "torch_dtype float32")
    find(broken(mutate_named("layers.0.input_layernorm.weight", function(_, _, t) t.dtype, t.encode_as = "F16", "F32" end)),
      "tensor model.layers.0.input_layernorm.weight: 128 bytes do not hold its 32 F16 elements")
    local untied = setmetatable({ tied = false, config = { tie_word_embeddings = false } }, { __index = archs.qwen2 })
    find(broken(mutate_named("embed_tokens", function(ts) ts[#ts] = nil end), untied),
      "no lm_head.weight, and config.json does not set tie_word_embeddings")
  end)

  it("a sharded index naming a missing shard, or a tensor in the wrong shard", function()
    local dir = tmp .. "/sharded"
    write_model(dir, archs.qwen2, { shards = 2 })
    os.remove(dir .. "/model-00002-of-00002.safetensors")
    find(load_error(dir), dir .. "/model-00002-of-00002.safetensors: cannot open")
    write_model(dir, archs.qwen2, { shards = 2 })
    local index = H.read(dir .. "/model.safetensors.index.json")
    H.write(dir .. "/model.safetensors.index.json",
      (index:gsub('("model.norm.weight":")model%-00002', "%1model-00001")))
    find(load_error(dir), "weight_map puts tensor model.norm.weight in model-00001-of-00002.safetensors")
    H.write(dir .. "/model.safetensors.index.json", "{]")
    find(load_error(dir), "model.safetensors.index.json: invalid JSON")
    os.remove(dir .. "/model.safetensors.index.json")
    find(load_error(dir), "no model.safetensors or model.safetensors.index.json")
  end)
end)
