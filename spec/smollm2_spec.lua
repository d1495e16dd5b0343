-- A real chat model against an independent implementation: SmolLM2-135M-Instruct (Q4_1 GGUF,
-- Llama architecture, byte-level BPE, ChatML) tokenizes and greedily continues three chat
-- prompts exactly as Hugging Face transformers does.
--
-- The reference, spec/fixtures/smollm2_reference.json, was made by
--   python3 scripts/reference/smollm2_reference.py \
--     "$(bash scripts/fetch_smollm2.sh)" spec/fixtures/smollm2_reference.json
-- with Python 3.11.7, torch 2.15.0+cu132 (PyPI's wheel, run on the CPU), transformers 5.23.0,
-- gguf 0.19.0, tokenizers 0.23.3, accelerate 1.15.0, numpy 2.4.6
-- (python3 -m pip install torch transformers gguf numpy accelerate). transformers loads the same
-- GGUF (AutoModelForCausalLM / AutoTokenizer .from_pretrained(dir, gguf_file=name), every tensor
-- dequantized to float32), renders each question with the GGUF's chat template
-- (add_generation_prompt=True), and decodes greedily in float32 on the CPU for at most 48 new
-- tokens, stopping at <|im_end|> (EOS, id 2). The fixture keeps, per prompt, the prompt string,
-- its ids, the generated ids, their text and each step's top-2 logit margin. Rerunning the
-- script gives the same file byte for byte. When it was made, yaie's logits at every position
-- of the three runs were within 1e-4 of transformers' (logits up to 39), and the smallest
-- reference margin was 0.052.
local H = require "helper"
local json = require "dkjson"

local N_NEW = 48
-- Below this margin between the reference's two best logits a step is a near-tie: float32 sums
-- taken in another order (yaie's kernels against PyTorch's) may pick either token.
local NEAR_TIE = 1e-3
-- One thread: the spec checks numbers, and on a busy 2-core machine a second thread waiting at
-- every matmul's barrier makes decoding several times slower.
local THREADS = 1

-- The model's path, or nil and why not: the fetch script downloads it when missing.
local function locate_model()
  local dir = H.tmpdir()
  local cmd = "bash " .. H.quote(H.root .. "/scripts/fetch_smollm2.sh") .. " > " .. H.quote(dir .. "/out")
    .. " 2> " .. H.quote(dir .. "/err")
  local ok = os.execute(cmd)
  local out, err = H.read(dir .. "/out"), H.read(dir .. "/err")
  os.execute("rm -rf " .. H.quote(dir))
  local path = out:match("([^\n]+)\n?$")
  local f = path and io.open(path, "rb")
  if (ok == 0 or ok == true) and f then
    f:close()
    return path
  end
  if f then f:close() end
  return nil, "scripts/fetch_smollm2.sh could not provide the model (no network?): "
    .. (err:match("([^\n]+)\n?$") or "no message")
end

-- The first step (1-based) where the two greedy runs part, counting a stop as a token; nil
-- when they agree throughout.
local function divergence(ref, got_ids, got_stopped)
  local want, got = ref.generated_ids, got_ids
  for i = 1, math.max(#want, #got) do
    if want[i] ~= got[i] then return i end
  end
  if ref.stopped_at_eos ~= got_stopped then return #want + 1 end
  return nil
end

local fixture = json.decode(H.read(H.root .. "/spec/fixtures/smollm2_reference.json"))
local gguf, why = locate_model()

describe("SmolLM2-135M-Instruct against transformers", function()
  if not gguf then
    pending(why)
    return
  end

  local model
  setup(function()
    model = require("yaie").load { model = gguf, threads = THREADS }
  end)

  for i, ref in ipairs(fixture.prompts) do
    local name = ("prompt %d (%q)"):format(i, ref.question)

    it("tokenizes " .. name .. " to the reference ids", function()
      local code, out, err = H.yaie({ "tokenize", "--tokenizer", gguf }, ref.prompt)
      assert.are.equal(0, code, err)
      local ids = {}
      for id in out:gmatch("%-?%d+") do ids[#ids + 1] = tonumber(id) end
      assert.are.same(ref.prompt_ids, ids)
      assert.are.same(ref.prompt_ids, model:tokenize(ref.prompt))
    end)

    it("continues " .. name .. " greedily as the reference does", function()
      local text, stats = model:generate(ref.prompt, { max_tokens = N_NEW, temperature = 0 })
      local step = divergence(ref, stats.tokens, stats.finish_reason == "stop")
      local expected_text = ref.text
      if step then
        -- Greedy tokens must be identical, except that from a near-tie on the reference's side
        -- either continuation is right: the rest of the run is then yaie's own.
        local margin = ref.steps[step].margin
        assert.is_true(margin < NEAR_TIE, ("yaie's greedy run parts from the reference at step %d "
          .. "(reference %s, yaie %s; reference top-2 margin %.4g)"):format(step,
          tostring(ref.generated_ids[step] or "EOS"), tostring(stats.tokens[step] or "stop"), margin))
        expected_text = text
      end
      assert.are.equal(expected_text, text)
      local code, out, err = H.yaie { "generate", "--model", gguf, "--prompt", ref.prompt,
        "--temperature", "0", "-n", tostring(N_NEW), "--threads", tostring(THREADS), "--quiet" }
      assert.are.equal(0, code, err)
      assert.are.equal(ref.prompt .. expected_text .. "\n", out)
    end)
  end
end)
