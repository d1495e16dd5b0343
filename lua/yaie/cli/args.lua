-- A small option parser for the CLI commands: `--name VALUE`, `--name=VALUE`, `-x VALUE`,
-- flags, and positional arguments. Each option is { "name", short = "x", type = "number" |
-- "string" | "flag", default = ... }.
local M = {}

function M.parse(args, options, command)
  local by_name, out, positional = {}, {}, {}
  for _, o in ipairs(options) do
    by_name["--" .. o[1]] = o
    if o.short then by_name["-" .. o.short] = o end
    out[(o[1]:gsub("-", "_"))] = o.default
  end
  local i = 1
  while i <= #args do
    local a = args[i]
    local name, inline = a:match("^(%-%-?[^=]+)=(.*)$")
    name = name or a
    local o = by_name[name]
    if o then
      local key, value = o[1]:gsub("-", "_"), inline
      if o.type == "flag" then
        value = true
      else
        if value == nil then
          i = i + 1
          value = args[i]
        end
        if value == nil then error(command .. ": option " .. name .. " needs a value", 0) end
        if o.type == "number" then
          local n = tonumber(value)
          if not n then error(command .. ": option " .. name .. " wants a number, got '" .. value .. "'", 0) end
          value = n
        end
      end
      out[key] = value
    elseif a:match("^%-") and a ~= "-" then
      error(command .. ": unknown option " .. a .. " (yaie " .. command .. " --help)", 0)
    else
      positional[#positional + 1] = a
    end
    i = i + 1
  end
  return out, positional
end

return M
