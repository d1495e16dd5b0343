-- The bridge to libyaie: cdef's the public header and loads the shared library.
-- Inside the yaie host, package.loaded["yaie.host"] says where both are; under a plain LuaJIT
-- they are found from this file's location (lua/yaie/ -> ../../build/) or $YAIE_LIB.
local ffi = require "ffi"

local function this_root()
  local src = debug.getinfo(1, "S").source:gsub("^@", "")
  local dir = src:match("^(.*)/lua/yaie/c%.lua$")
  return dir or "."
end

local host = package.loaded["yaie.host"] or {}
local root = host.root or os.getenv("YAIE_ROOT") or this_root()
local header_path = host.header or (root .. "/engine/include/yaie.h")
local lib_path = os.getenv("YAIE_LIB") or host.lib or (root .. "/build/libyaie.so")

-- The public headers are written to be cdef'able once preprocessor lines are gone: yaie.h
-- (models, tokenizers, the forward pass, sampling), yaie_cache.h (page pool, radix tree) and
-- yaie_constrain.h (regex-constrained decoding).
-- Each header is declared once per process: busted reloads modules for every spec file, but
-- the FFI's C declarations outlive them (a type named in the header marks it as done).
local include_dir = header_path:match("^(.*)/[^/]*$") or "."
local headers = { { "yaie.h", "yaie_config" }, { "yaie_cache.h", "yaie_pool_usage" },
  { "yaie_constrain.h", "yaie_constraint_stats" } }
for _, h in ipairs(headers) do
  local name, marker = h[1], h[2]
  local f = not pcall(ffi.typeof, marker) and io.open(include_dir .. "/" .. name, "r")
  if f then
    local header = f:read("*a")
    f:close()
    ffi.cdef((header:gsub("\n#[^\n]*", "\n"):gsub("^#[^\n]*", "")))
  elseif name == "yaie.h" and not pcall(ffi.typeof, marker) then
    error("yaie: cannot open the C header " .. include_dir .. "/" .. name, 0)
  end
end
if not pcall(ffi.typeof, "yaie_timespec") then
  ffi.cdef [[
    void free(void *p);
    typedef struct yaie_timespec { long tv_sec; long tv_nsec; } yaie_timespec;
    int clock_gettime(int clk_id, yaie_timespec *tp);
  ]]
end

local ok, lib = pcall(ffi.load, lib_path)
if not ok then
  error("yaie: cannot load " .. lib_path .. " (build it first, or set YAIE_LIB): " .. tostring(lib), 0)
end

local M = { lib = lib, ffi = ffi, root = root, lib_path = lib_path, host = host }

-- Raises the last C error as a Lua error (a plain message, no position) when status is not OK.
function M.check(status, context)
  if status ~= 0 then
    local msg = ffi.string(lib.yaie_last_error())
    if context then msg = context .. ": " .. msg end
    error(msg, 0)
  end
end

local ts = ffi.new("yaie_timespec")
-- Monotonic seconds, for timing steps and tokens/s.
function M.now()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

-- A fresh C array of int32 holding a Lua list of numbers.
function M.int32_array(list, n)
  n = n or #list
  local arr = ffi.new("int32_t[?]", math.max(n, 1))
  for i = 1, n do arr[i - 1] = list[i] end
  return arr, n
end

function M.to_list(arr, n)
  local out = {}
  for i = 0, n - 1 do out[i + 1] = tonumber(arr[i]) end
  return out
end

return M
