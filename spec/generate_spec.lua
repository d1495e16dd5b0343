-- End to end: greedy decoding of stories260K from BOS reproduces llama2.c's output from every
-- format the model comes in, through the real binary and through the Lua API.
local H = require "helper"

local expected
setup(function() expected = H.read(H.stories .. "/EXPECTED.txt") end)

-- llama2.c's 200 steps print 200 sampled tokens (the token sampled at the last position too).
local function greedy(model, extra)
  local args = { "generate", "--model", model, "--temperature", "0", "-n", "200", "--quiet" }
  for _, a in ipairs(extra or {}) do args[#args + 1] = a end
  local code, out, err = H.yaie(args)
  assert.are.equal(0, code, err)
  return out
end

describe("yaie generate", function()
  it("prints EXPECTED.txt from the llama2.c checkpoint and tokenizer", function()
    assert.are.equal(expected .. "\n", greedy(H.stories .. "/stories260K.bin", { "--tokenizer", H.stories .. "/tok512.bin" }))
  end)

  it("prints EXPECTED.txt from the GGUF file with its own tokenizer", function()
    assert.are.equal(expected .. "\n", greedy(H.stories .. "/stories260K.gguf"))
  end)

  it("prints EXPECTED.txt from a converted Hugging Face directory", function()
    local dir = H.tmpdir()
    local code, _, err = H.yaie { "convert", H.stories .. "/stories260K.bin", dir .. "/hf", "--tokenizer", H.stories .. "/tok512.bin" }
    assert.are.equal(0, code, err)
    assert.are.equal(expected .. "\n", greedy(dir .. "/hf"))
    os.execute("rm -rf " .. H.quote(dir))
  end)

  it("stops after -n tokens and reports statistics on stderr", function()
    local code, out, err = H.yaie { "generate", "--model", H.stories .. "/stories260K.gguf", "--temperature", "0", "-n", "20" }
    assert.are.equal(0, code, err)
    assert.are.equal(expected:sub(1, #out - 1), out:sub(1, -2))
    assert.matches("generated 20 tokens at [%d.]+ tok/s", err)
  end)

  it("continues a prompt and samples reproducibly with a seed", function()
    local args = { "generate", "--model", H.stories .. "/stories260K.gguf", "--prompt", "Once upon a time",
      "--temperature", "1", "--top-p", "0.9", "--seed", "42", "-n", "40", "--quiet" }
    local code1, out1 = H.yaie(args)
    local code2, out2 = H.yaie(args)
    assert.are.equal(0, code1)
    assert.are.equal(0, code2)
    assert.are.equal(out1, out2)
    assert.matches("^Once upon a time", out1)
    args[#args - 3] = "43"
    local _, out3 = H.yaie(args)
    assert.are_not.equal(out1, out3)
  end)
end)

describe("the Lua API", function()
  it("loads, tokenizes, detokenizes and generates", function()
    local yaie = require "yaie"
    local m = yaie.load { model = H.stories .. "/stories260K.gguf" }
    assert.are.equal(64, m.config.dim)
    assert.are.equal(5, m.config.n_layers)
    local ids = m:tokenize("Once upon a time")
    assert.are.equal(1, ids[1])
    assert.are.equal("Once upon a time", m:detokenize(ids))
    local text, stats = m:generate(nil, { max_tokens = 200, temperature = 0 })
    assert.are.equal(expected, text)
    assert.are.equal(200, stats.completion_tokens)
  end)
end)
