-- JSON-shaped output: generation constrained by a regex, so the text always parses.
-- Usage: yaie run scripts/examples/json_regex.lua [stories260K | smollm2 | MODEL]
local yaie = require "yaie"
local demo = require "yaie.demo"
local engine = demo.engine(arg[1])

local character = [[\{"name": "[A-Z][a-z]{1,12}", "age": [1-9][0-9]?, "likes": "[a-z ]{1,20}"\}]]

local describe = yaie.program(function(s, hint)
  s("Here is a character from a story about " .. hint .. ", as JSON:\n")
  s:gen("json", { regex = character, max_tokens = 64, temperature = 0.7, seed = 3 })
  s "\nTheir age in years:"
  s:gen("age", { dtype = "int", max_tokens = 4 })
end)

local states = describe:run_batch(engine, { { "a dog" }, { "a princess" }, { "the sea" } })
for _, st in ipairs(states) do
  print(st.json, "age:", st.age)
end
demo.report(engine, "json")
return states, character
