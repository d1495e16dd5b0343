-- Generation programs: state, roles and templates, gen, select, fork/join, var_scope, meta,
-- streaming, batching through the engine, and errors confined to their program.
local H = require "helper"
local yaie = require "yaie"

local engine
setup(function()
  engine = yaie.engine { model = H.stories .. "/stories260K.gguf", check = true, max_running = 32 }
end)

local story = "Once upon a time, there was a little girl named Lily."

describe("a program", function()
  it("appends text, generates into variables and reports meta", function()
    local p = yaie.program(function(s, name)
      s(story)
      s(" She had a dog named " .. name .. ".")
      s:gen("next", { max_tokens = 12 })
    end)
    local st = p:run(engine, "Max")
    local alone = engine.model:generate(story .. " She had a dog named Max.", { max_tokens = 12, temperature = 0 })
    assert.are.equal(alone, st.next)
    assert.are.equal(story .. " She had a dog named Max." .. alone, st:text())
    local m = st:meta("next")
    assert.are.equal(12, m.completion_tokens)
    assert.are.equal("length", m.finish_reason)
    assert.is_true(m.prompt_tokens > 10)
  end)

  it("runs a batch concurrently, in order, sharing the common prefix", function()
    local p = yaie.program(function(s, animal)
      s(story .. " She loved her " .. animal .. ".")
      s:gen("rest", { max_tokens = 8 })
    end)
    local animals = { "cat", "dog", "bird", "fish", "frog", "duck" }
    local args = {}
    for i, a in ipairs(animals) do args[i] = { a } end
    local states = p:run_batch(engine, args)
    for i, st in ipairs(states) do
      local alone = engine.model:generate(story .. " She loved her " .. animals[i] .. ".", { max_tokens = 8, temperature = 0 })
      assert.are.equal(alone, st.rest)
    end
  end)

  it("streams generated text as it arrives, never splitting a character", function()
    local pieces = {}
    local p = yaie.program(function(s)
      s(story)
      s:gen("a", { max_tokens = 20, stream = function(piece) pieces[#pieces + 1] = piece end })
    end)
    local st = p:run(engine)
    assert.is_true(#pieces > 1)
    assert.are.equal(st.a, table.concat(pieces))
    for _, piece in ipairs(pieces) do assert.is_truthy(piece:find("^[%z\1-\127\194-\244][\128-\191]*") or piece == "") end
  end)

  it("stops at a stop string and leaves it out", function()
    local p = yaie.program(function(s)
      s(story)
      s:gen("a", { max_tokens = 60, stop = "." })
    end)
    local st = p:run(engine)
    assert.is_nil(st.a:find(".", 1, true))
    assert.are.equal("stop", st:meta("a").finish_reason)
  end)

  it("wraps roles in the chat template and records messages", function()
    local p = yaie.program(function(s)
      s:system("Be brief.")
      s:user("Tell me a story.")
      s:assistant(function(a) a:gen("reply", { max_tokens = 6 }) end)
    end, { chat_template = "chatml" })
    local st = p:run(engine)
    local text = st:text()
    assert.truthy(text:find("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nTell me a story.<|im_end|>\n<|im_start|>assistant\n", 1, true))
    assert.are.equal(3, #st:messages())
    assert.are.equal("assistant", st:messages()[3].role)
    assert.are.equal(st.reply, st:messages()[3].content)
    local custom = yaie.program(function(s) s:user("hi") end, {
      chat_template = function(role) return "<" .. role .. ">", "</" .. role .. ">" end })
    assert.are.equal("<user>hi</user>", custom:run(engine):text())
  end)

  it("captures text with var_scope", function()
    local st = yaie.program(function(s)
      s "A: "
      s:var_scope("inner", function(t) t "one " t "two" end)
    end):run(engine)
    assert.are.equal("one two", st.inner)
    assert.are.equal("A: one two", st:text())
  end)

  it("forks, commits the shared prefix once, and joins", function()
    local prefix = story .. " One day, she went to the park with her mom and saw many things."
    local st = yaie.program(function(s)
      s(prefix)
      local f = s:fork(3)
      f(function(i) return " Thing " .. i .. ":" end)
      f:gen("thing", { max_tokens = 6 })
      f:join("gather_variable")
    end):run(engine)
    assert.are.equal(3, #st.thing)
    for i = 1, 3 do
      local alone = engine.model:generate(prefix .. " Thing " .. i .. ":", { max_tokens = 6, temperature = 0 })
      assert.are.equal(alone, st.thing[i])
      assert.is_true(st:meta("thing")[i].cached_tokens > 0, "branch " .. i .. " reused the committed prefix")
    end
    local st2 = yaie.program(function(s)
      s "X"
      local f = s:fork(2)
      f(function(i) return "-" .. i end)
      f:join("concat_and_append")
    end):run(engine)
    assert.are.equal("X-1-2", st2:text())
  end)

  it("selects among choices by their logprobs", function()
    local p = yaie.program(function(s)
      s(story .. " Lily had a")
      s:select("pet", { " dog", " big red ball", " xylophone quantum" })
    end)
    local st = p:run(engine)
    local m = st:meta("pet")
    assert.are.equal(3, #m.choice_logprobs)
    local best, best_score = nil, -math.huge
    for i, lp in ipairs(m.choice_logprobs) do
      local sum = 0
      for _, v in ipairs(lp) do sum = sum + v end
      if sum / #lp > best_score then best, best_score = i, sum / #lp end
    end
    assert.are.equal(({ " dog", " big red ball", " xylophone quantum" })[best], st.pet)
    for _, method in ipairs { "greedy_token_selection", "unconditional_likelihood_normalized" } do
      local q = yaie.program(function(s)
        s(story .. " Lily had a")
        s:select("pet", { " dog", " xylophone quantum" }, { method = method })
      end)
      assert.truthy(q:run(engine).pet)
    end
  end)

  it("constrains gen with regex, choices and dtype", function()
    local st = yaie.program(function(s)
      s(story .. " Her age was ")
      s:gen("age", { dtype = "int", max_tokens = 6 })
      s " and her friend was "
      s:gen("friend", { choices = { "Tom", "Sue", "Max" } })
      s " who said "
      s:gen("word", { regex = "[a-z]+!", max_tokens = 12 })
    end):run(engine)
    assert.are.equal("number", type(st.age))
    assert.truthy(({ Tom = true, Sue = true, Max = true })[st.friend])
    assert.truthy(st.word:match("^[a-z]+!$"), st.word)
  end)

  it("confines an error to its program, with a traceback", function()
    local p = yaie.program(function(s, bad)
      s(story)
      s:gen("a", { max_tokens = 4 })
      if bad then error("boom in program") end
      s:gen("b", { max_tokens = 4 })
    end)
    local states = p:run_batch(engine, { { false }, { true }, { false } })
    assert.is_nil(rawget(states[1], "error"))
    assert.matches("boom in program", states[2].error)
    assert.matches("stack traceback", states[2].error)
    assert.truthy(states[3].b)
    assert.has_error(function() p:run(engine, true) end)
    assert.are.equal(0, engine:stats().running)
  end)
end)
