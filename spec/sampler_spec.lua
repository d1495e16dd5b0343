-- Sampling: greedy, the truncations, penalties, masks and seeds.
local C = require "yaie.c"
local ffi, lib = C.ffi, C.lib

local function sampler(params, vocab)
  local p = ffi.new("yaie_sampler_params", { temperature = 1, top_k = 0, top_p = 1, min_p = 0,
    repetition_penalty = 1, frequency_penalty = 0, presence_penalty = 0, seed = 1 })
  for k, v in pairs(params) do p[k] = v end
  local out = ffi.new("yaie_sampler*[1]")
  C.check(lib.yaie_sampler_new(p, vocab, out))
  return ffi.gc(out[0], lib.yaie_sampler_free)
end

local function sample(s, logits, mask)
  local arr = ffi.new("float[?]", #logits, logits)
  local id, lp = ffi.new("int32_t[1]"), ffi.new("float[1]")
  local m = mask and ffi.new("uint8_t[?]", #mask, mask) or nil
  C.check(lib.yaie_sampler_sample(s, arr, m, id, lp))
  return tonumber(id[0]), tonumber(lp[0])
end

local logits = { 1.0, 3.0, 2.5, -1.0, 0.5, 2.9 }

describe("the sampler", function()
  it("is greedy at temperature 0 and reports the raw logprob", function()
    local id, lp = sample(sampler({ temperature = 0 }, 6), logits)
    assert.are.equal(1, id)
    local z = 0
    for _, l in ipairs(logits) do z = z + math.exp(l) end
    assert.is_true(math.abs(lp - (3.0 - math.log(z))) < 1e-5)
  end)

  it("gives the same tokens for the same seed and different ones for another", function()
    local function draw(seed)
      local s, out = sampler({ temperature = 1.5, seed = seed }, 6), {}
      for i = 1, 50 do out[i] = sample(s, logits) end
      return table.concat(out, ",")
    end
    assert.are.equal(draw(7), draw(7))
    assert.are_not.equal(draw(7), draw(8))
  end)

  it("keeps only the top k, the top-p nucleus and tokens above min-p", function()
    local seen = {}
    local s = sampler({ temperature = 2, top_k = 2, seed = 3 }, 6)
    for _ = 1, 200 do seen[sample(s, logits)] = true end
    assert.are.same({ [1] = true, [5] = true }, seen)
    seen = {}
    s = sampler({ temperature = 1, top_p = 0.5, seed = 3 }, 6) -- p(1) ~ 0.36, p(5) ~ 0.33
    for _ = 1, 200 do seen[sample(s, logits)] = true end
    assert.are.same({ [1] = true, [5] = true }, seen)
    seen = {}
    s = sampler({ temperature = 1, min_p = 0.5, seed = 3 }, 6) -- keeps p >= 0.5 p(1): 1, 2, 5
    for _ = 1, 300 do seen[sample(s, logits)] = true end
    assert.are.same({ [1] = true, [2] = true, [5] = true }, seen)
  end)

  it("applies repetition, frequency and presence penalties to accepted tokens", function()
    local s = sampler({ temperature = 0, repetition_penalty = 2 }, 6)
    lib.yaie_sampler_accept(s, 1)
    assert.are.equal(5, sample(s, logits)) -- 3.0 / 2 = 1.5 < 2.9
    s = sampler({ temperature = 0, frequency_penalty = 0.05 }, 6)
    lib.yaie_sampler_accept(s, 1)
    assert.are.equal(1, sample(s, logits)) -- 3.0 - 0.05 > 2.9
    lib.yaie_sampler_accept(s, 1)
    lib.yaie_sampler_accept(s, 1)
    assert.are.equal(5, sample(s, logits)) -- 3.0 - 0.15 < 2.9
    s = sampler({ temperature = 0, presence_penalty = 0.2 }, 6)
    lib.yaie_sampler_accept(s, 1)
    assert.are.equal(5, sample(s, logits))
  end)

  it("samples only tokens the mask allows, and fails cleanly when it allows none", function()
    local s = sampler({ temperature = 1, seed = 5 }, 6)
    for _ = 1, 100 do
      local id = sample(s, logits, { 1, 0, 0, 1, 0, 0 })
      assert.is_true(id == 0 or id == 3)
    end
    local arr = ffi.new("float[6]", logits)
    local id = ffi.new("int32_t[1]")
    assert.are_not.equal(0, lib.yaie_sampler_sample(s, arr, ffi.new("uint8_t[6]"), id, nil))
    assert.matches("forbids every token", ffi.string(lib.yaie_last_error()))
  end)

  it("rejects bad parameters", function()
    local p = ffi.new("yaie_sampler_params", { temperature = -1, top_p = 1, repetition_penalty = 1 })
    local out = ffi.new("yaie_sampler*[1]")
    assert.are_not.equal(0, lib.yaie_sampler_new(p, 6, out))
    assert.matches("temperature", ffi.string(lib.yaie_last_error()))
  end)
end)
