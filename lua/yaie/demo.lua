-- For the runnable examples: an engine on the model named on the command line ("smollm2" for
-- SmolLM2-135M-Instruct, fetched by scripts/fetch_smollm2.sh; a path; or stories260K by default).
local C = require "yaie.c"
local root = C.root or "." -- an installed library has no checkout: paths from the current directory

local M = {}

function M.model_path(name)
  if name == nil or name == "" or name == "stories260K" then
    return root .. "/../shared/models/stories260K/stories260K.gguf"
  end
  if name == "smollm2" then
    local p = io.popen("bash " .. root .. "/scripts/fetch_smollm2.sh")
    local path = p:read("*l")
    p:close()
    if not path then error("could not fetch SmolLM2 (scripts/fetch_smollm2.sh)", 0) end
    return path
  end
  return name
end

function M.engine(name, opts)
  opts = opts or {}
  opts.model = M.model_path(name)
  return require("yaie").engine(opts)
end

-- Prints a program's variables and the cache statistics the examples are about.
function M.report(engine, label)
  local s = engine:stats()
  print(("[%s] prompt tokens %d, cached %d (hit rate %.0f%%), computed %d, steps %d"):format(
    label or "engine", s.prompt_tokens, s.cached_tokens, 100 * s.hit_rate, s.computed_tokens, s.steps))
end

return M
