-- Shared by the specs: where the project, the binary and ../shared are, and a way to run the
-- real yaie binary and capture what it prints.
local H = {}

local host = package.loaded["yaie.host"] or {}
local src = debug.getinfo(1, "S").source:gsub("^@", "")
H.root = host.root or src:match("^(.*)/spec/helper%.lua$") or "."
H.bin = os.getenv("YAIE_BIN") or host.exe or (H.root .. "/build/yaie")
H.shared = os.getenv("YAIE_SHARED") or (H.root .. "/../shared")
H.stories = H.shared .. "/models/stories260K"

function H.tmpdir()
  local p = io.popen("mktemp -d /tmp/yaie-spec.XXXXXX")
  local dir = p:read("*l")
  p:close()
  return dir
end

function H.read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

function H.write(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

local function shell_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
H.quote = shell_quote

-- Runs `yaie ARGS...` with optional stdin text; returns exit code, stdout, stderr.
function H.yaie(args, stdin)
  local dir = H.tmpdir()
  -- Leak checking applies to the binary's own runs (a sanitizer build reads ASAN_OPTIONS).
  local parts = { "ASAN_OPTIONS=detect_leaks=1", shell_quote(H.bin) }
  for _, a in ipairs(args) do parts[#parts + 1] = shell_quote(a) end
  local cmd = table.concat(parts, " ")
  if stdin then
    H.write(dir .. "/in", stdin)
    cmd = cmd .. " < " .. shell_quote(dir .. "/in")
  else
    cmd = cmd .. " < /dev/null"
  end
  cmd = cmd .. " > " .. shell_quote(dir .. "/out") .. " 2> " .. shell_quote(dir .. "/err")
  local ok, how, code = os.execute(cmd)
  if type(ok) == "number" then code = ok / 256 end -- Lua 5.1 returns the raw status
  local out, err = H.read(dir .. "/out"), H.read(dir .. "/err")
  os.execute("rm -rf " .. shell_quote(dir))
  return code, out, err
end

return H
