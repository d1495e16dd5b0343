-- A ReAct-style loop: the model chooses an action with select, a Lua function runs the tool,
-- and the observation goes back into the prompt until the model answers.
-- Usage: yaie run scripts/examples/react_tool.lua [stories260K | smollm2 | MODEL]
local yaie = require "yaie"
local demo = require "yaie.demo"
local engine = demo.engine(arg[1])

local tools = {
  calculator = function(input)
    local a, op, b = input:match("(%-?%d+)%s*([%+%-%*/])%s*(%-?%d+)")
    if not a then return "cannot compute '" .. input .. "'" end
    a, b = tonumber(a), tonumber(b)
    local r = op == "+" and a + b or op == "-" and a - b or op == "*" and a * b or (b ~= 0 and a / b or "undefined")
    return tostring(r)
  end,
  lookup = function(input)
    local facts = { cat = "a small furry animal", sun = "the star at the center of our solar system" }
    return facts[input:lower():match("%a+") or ""] or "no entry for '" .. input .. "'"
  end,
}

local react = yaie.program(function(s, question)
  s("You answer questions using tools: calculator (arithmetic like 3 * 4) and lookup (a word).\n")
  s("Question: " .. question .. "\n")
  for step = 1, 3 do
    s "Action: "
    local action = s:select("action" .. step, { "calculator", "lookup", "answer" })
    if action == "answer" then break end
    s " Input: "
    s:gen("input" .. step, { max_tokens = 12, stop = "\n" })
    local observation = tools[action](s["input" .. step])
    s:set("observation" .. step, observation)
    s("\nObservation: " .. observation .. "\n")
  end
  s "\nFinal answer:"
  s:gen("answer", { max_tokens = 24, stop = "\n" })
end)

local st = react:run(engine, "What is 6 * 7?")
for step = 1, 3 do
  if not st["action" .. step] then break end
  print(("step %d: %s(%s) -> %s"):format(step, st["action" .. step], tostring(st["input" .. step]),
    tostring(st["observation" .. step])))
end
print("answer:", st.answer)
demo.report(engine, "react")
return st
