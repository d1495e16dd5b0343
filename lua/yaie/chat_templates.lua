-- Chat templates: how roles wrap their content. Each template maps a role to a prefix and a
-- suffix; `pick` chooses one from the model's own template string (tokenizer_config or GGUF
-- metadata) by the markers it uses, or takes the user's: a name, a table { role = { prefix,
-- suffix } }, or a function(role, state) returning prefix, suffix.
local M = {}

M.chatml = {
  name = "chatml",
  system = { "<|im_start|>system\n", "<|im_end|>\n" },
  user = { "<|im_start|>user\n", "<|im_end|>\n" },
  assistant = { "<|im_start|>assistant\n", "<|im_end|>\n" },
}

M.llama3 = {
  name = "llama3",
  system = { "<|start_header_id|>system<|end_header_id|>\n\n", "<|eot_id|>" },
  user = { "<|start_header_id|>user<|end_header_id|>\n\n", "<|eot_id|>" },
  assistant = { "<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>" },
}

-- Llama 2 puts the system prompt inside the first [INST]; the user prefix after a system
-- message is therefore empty (see prefix_suffix).
M.llama2 = {
  name = "llama2",
  system = { "[INST] <<SYS>>\n", "\n<</SYS>>\n\n" },
  user = { "[INST] ", " [/INST]" },
  assistant = { " ", " </s><s>" },
}

M.plain = {
  name = "plain",
  system = { "System: ", "\n" },
  user = { "User: ", "\n" },
  assistant = { "Assistant: ", "\n" },
}

function M.pick(choice, model_template)
  if type(choice) == "function" then return { name = "custom", fn = choice } end
  if type(choice) == "table" then return choice end
  if type(choice) == "string" then
    local t = M[choice]
    if type(t) ~= "table" then error("unknown chat template '" .. choice .. "' (chatml, llama3, llama2, plain)", 3) end
    return t
  end
  local s = model_template or ""
  if s:find("<|im_start|>", 1, true) then return M.chatml end
  if s:find("<|start_header_id|>", 1, true) then return M.llama3 end
  if s:find("[INST]", 1, true) then return M.llama2 end
  return M.plain
end

-- The prefix and suffix of `role` in `template`, given the role of the message before.
function M.prefix_suffix(template, role, previous_role, state)
  if template.fn then return template.fn(role, state) end
  local ps = template[role]
  if not ps then error("chat template '" .. tostring(template.name) .. "' has no role '" .. role .. "'", 3) end
  if template == M.llama2 and role == "user" and previous_role == "system" then return "", ps[2] end
  return ps[1], ps[2]
end

return M
