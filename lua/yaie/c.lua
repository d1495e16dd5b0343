-- The bridge to libyaie: cdef's the public headers and loads the shared library. Where both are:
--   inside the yaie host of a source checkout, package.loaded["yaie.host"] says;
--   $YAIE_LIB (and $YAIE_ROOT, a source checkout) override;
--   an installed library (cmake --install, luarocks) has yaie/install.lua beside this file,
--   written by the install step: libyaie's path from here and the headers' text;
--   else this file is in a source checkout: lua/yaie/ -> ../../build/, ../../engine/include/.
local ffi = require "ffi"

local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*)/[^/]*$") or "."
local install_file = loadfile(here .. "/install.lua")
local installed = install_file and install_file() or nil

local host = package.loaded["yaie.host"] or {}
local root = host.root or os.getenv("YAIE_ROOT")
if not root and not installed then
  root = here:match("^(.*)/lua/yaie$") or "."
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- libyaie: the installed one is looked for where install.lua says, then on package.cpath (a
-- LuaRocks tree deploys it beside the C modules).
local function installed_lib()
  local lib = installed.lib:sub(1, 1) == "/" and installed.lib or (here .. "/" .. installed.lib)
  if exists(lib) then return lib end
  return package.searchpath and package.searchpath("libyaie", package.cpath) or lib
end

local lib_path = os.getenv("YAIE_LIB") or host.lib
  or ((installed and not root) and installed_lib()) or (root .. "/build/libyaie.so")
local header_path = host.header or (root and (root .. "/engine/include/yaie.h"))

-- The public headers are written to be cdef'able once preprocessor lines are gone: yaie.h
-- (models, tokenizers, the forward pass, sampling), yaie_cache.h (page pool, radix tree) and
-- yaie_constrain.h (regex-constrained decoding).
local function header_text(name)
  if not header_path then return installed.headers[name] end
  local f = io.open((header_path:match("^(.*)/[^/]*$") or ".") .. "/" .. name, "r")
  if not f then return nil end
  local text = f:read("*a")
  f:close()
  return text
end

-- Each header is declared once per process: busted reloads modules for every spec file, but
-- the FFI's C declarations outlive them (a type named in the header marks it as done).
local headers = { { "yaie.h", "yaie_config" }, { "yaie_cache.h", "yaie_pool_usage" },
  { "yaie_constrain.h", "yaie_constraint_stats" } }
for _, h in ipairs(headers) do
  local name, marker = h[1], h[2]
  local header = not pcall(ffi.typeof, marker) and header_text(name)
  if header then
    ffi.cdef((header:gsub("\n#[^\n]*", "\n"):gsub("^#[^\n]*", "")))
  elseif name == "yaie.h" and not pcall(ffi.typeof, marker) then
    error("yaie: cannot open the C header " .. tostring(header_path), 0)
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

-- root: the source checkout, or nil for an installed library.
local M = { lib = lib, ffi = ffi, root = root, lib_path = lib_path, host = host, installed = installed }

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
