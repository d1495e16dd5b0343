-- The runnable examples in scripts/examples/ on stories260K: their structure, not their prose.
local H = require "helper"

local function run_example(name)
  local chunk = assert(loadfile(H.root .. "/scripts/examples/" .. name .. ".lua"))
  local saved_arg, saved_print = rawget(_G, "arg"), print
  rawset(_G, "arg", { [0] = name })
  rawset(_G, "print", function() end)
  local ok, a, b = pcall(chunk)
  rawset(_G, "arg", saved_arg)
  rawset(_G, "print", saved_print)
  assert(ok, a)
  return a, b
end

describe("the examples", function()
  it("few-shot Q&A answers every question, reusing the few-shot prefix", function()
    local states = run_example("few_shot_qa")
    assert.are.equal(6, #states)
    local cached = 0
    for _, st in ipairs(states) do
      assert.is_string(st.answer)
      assert.is_nil(st.answer:find("\n"))
      cached = cached + st:meta("answer").cached_tokens
    end
    assert.is_true(cached > 0)
  end)

  it("tree of thought gathers 3 ideas with 3 details each", function()
    local st = run_example("tree_of_thought")
    assert.are.equal(3, #st.idea)
    for i = 1, 3 do assert.are.equal(3, #st.details[i]) end
    assert.is_string(st.verdict)
    assert.is_true(st:meta("idea")[1].cached_tokens > 0)
  end)

  it("multi-turn chat answers each turn, each prompt mostly cached", function()
    local st = run_example("multi_turn_chat")
    for i = 1, 3 do assert.is_string(st["answer" .. i]) end
    assert.are.equal(7, #st:messages())
    assert.is_true(st:meta("answer3").cached_tokens > 0)
  end)

  it("JSON through a regex always matches it", function()
    local states, pattern = run_example("json_regex")
    local rx = require("yaie.constrain")
    for _, st in ipairs(states) do
      assert.truthy(st.json:match('^{"name": "[A-Z][a-z]+", "age": [1-9][0-9]?, "likes": "[a-z ]+"}$'), st.json)
      assert.are.equal("number", type(st.age))
    end
    assert.is_string(pattern)
    assert.truthy(rx)
  end)

  it("the ReAct loop picks actions, calls Lua tools and answers", function()
    local st = run_example("react_tool")
    assert.truthy(({ calculator = true, lookup = true, answer = true })[st.action1])
    if st.action1 ~= "answer" then assert.is_string(st.observation1) end
    assert.is_string(st.answer)
  end)
end)
