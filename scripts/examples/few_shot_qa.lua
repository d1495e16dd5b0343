-- Few-shot Q&A over many questions at once: the shared few-shot prefix is computed once and
-- reused from the radix cache by every other question.
-- Usage: yaie run scripts/examples/few_shot_qa.lua [stories260K | smollm2 | MODEL]
local yaie = require "yaie"
local demo = require "yaie.demo"
local engine = demo.engine(arg[1])

local qa = yaie.program(function(s, question)
  s "Q: What is the capital of France?\nA: Paris\n"
  s "Q: What color is the sky on a clear day?\nA: Blue\n"
  s "Q: How many legs does a cat have?\nA: Four\n"
  s("Q: " .. question .. "\nA:")
  s:gen("answer", { max_tokens = 16, stop = "\n" })
end)

local questions = { "What is the capital of Spain?", "What do bees make?", "What is frozen water called?",
  "Which animal says moo?", "What is the opposite of hot?", "How many days are in a week?" }
local args = {}
for i, q in ipairs(questions) do args[i] = { q } end
local states = qa:run_batch(engine, args, { progress = true })
for i, st in ipairs(states) do
  local m = st:meta("answer")
  print(("%-32s -> %-24q cached %d of %d prompt tokens"):format(questions[i], st.answer, m.cached_tokens, m.prompt_tokens))
end
demo.report(engine, "few-shot")
return states
