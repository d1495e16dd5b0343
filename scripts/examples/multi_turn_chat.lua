-- A multi-turn chat with roles, in the model's chat template (ChatML for SmolLM2, plain text
-- for stories260K). Each turn's prompt extends the last, so it is mostly cached.
-- Usage: yaie run scripts/examples/multi_turn_chat.lua [stories260K | smollm2 | MODEL]
local yaie = require "yaie"
local demo = require "yaie.demo"
local engine = demo.engine(arg[1])

local chat = yaie.program(function(s, turns)
  s:system("You are a helpful assistant who answers briefly.")
  for i, question in ipairs(turns) do
    s:user(question)
    s:assistant(function(a) a:gen("answer" .. i, { max_tokens = 40, stop = "\n\n" }) end)
  end
end)

local turns = { "What is a good name for a cat?", "Why is that a good name?", "Give me one more." }
local st = chat:run(engine, turns)
for i, q in ipairs(turns) do
  local m = st:meta("answer" .. i)
  print(("user: %s\nassistant: %s\n  (prompt %d tokens, %d cached)"):format(q, st["answer" .. i], m.prompt_tokens, m.cached_tokens))
end
print(#st:messages() .. " messages")
demo.report(engine, "chat")
return st
