-- Tree of thought: three first thoughts, each explored three ways, then gathered. Every fork
-- commits the text so far once, so the branches find it in the radix cache.
-- Usage: yaie run scripts/examples/tree_of_thought.lua [stories260K | smollm2 | MODEL]
local yaie = require "yaie"
local demo = require "yaie.demo"
local engine = demo.engine(arg[1])

local tot = yaie.program(function(s, question)
  s("Question: " .. question .. "\nLet us think about it in several ways.\n")
  local ideas = s:fork(3)
  ideas(function(i) return "Idea " .. i .. ":" end)
  ideas:gen("idea", { max_tokens = 24, stop = "\n", temperature = 0.8, seed = 1 })
  local details = {}
  for i = 1, 3 do
    local b = ideas[i]
    b "\nIn more detail:"
    local d = b:fork(3)
    d:gen("detail", { max_tokens = 24, stop = "\n", temperature = 0.8, seed = 10 * i })
    d:join("gather_variable")
    details[i] = b.detail
  end
  ideas:join("gather_variable")
  s:set("details", details)
  s "\nThe best idea is"
  s:gen("verdict", { max_tokens = 16, stop = "\n" })
end)

local st = tot:run(engine, "How can a small dog help its friends?")
for i, idea in ipairs(st.idea) do
  print(("idea %d: %q"):format(i, idea))
  for j, d in ipairs(st.details[i]) do print(("   detail %d.%d: %q"):format(i, j, d)) end
end
print("verdict: " .. st.verdict)
demo.report(engine, "tree of thought")
return st
