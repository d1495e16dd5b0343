-- The interactive shell behind `yaie repl`: a Lua prompt with `yaie`, `engine` and `gen` at
-- hand, commands (:policy, :tree, :pool, :stats, :help, :quit), tokens streamed as they come.
--
-- Errors in typed code print their traceback and the prompt comes back. Ctrl-C is held (see
-- lua/yaie/readline.lua) everywhere but in typed code, and typed code reaches the engine's
-- step through a guard that holds it too, so a Ctrl-C never cuts a scheduler step in half:
-- during gen() it cancels that request between two steps, and the engine's other requests
-- keep their state.
local term = require "yaie.readline"

local M = {}
local Repl = {}
Repl.__index = Repl

-- What gen() raises after a Ctrl-C cancelled its request: back to the prompt, quietly.
local CANCELLED = setmetatable({}, { __tostring = function() return "generation cancelled (Ctrl-C)" end })
M.CANCELLED = CANCELLED

M.help = [[
Lua, with `yaie`, `engine` and `gen` at hand. An expression prints its values (a trailing ';'
keeps them quiet); a line that leaves a chunk unfinished continues on the >> prompt.

  gen(prompt, opts)   generate for prompt, streaming the tokens; returns the text. opts as
                      engine:submit's: max_tokens, temperature, top_k, top_p, stop, seed,
                      ignore_eos, on_token = function(piece, id, req) ... end
  :policy NAME|FILE   swap the scheduling policy now: fcfs, lpm, dfs_weight, lof, random,
                      priority, or a .lua file returning { order = function(waiting, ctx) }
  :tree               the radix tree (the prefix cache)
  :pool               the KV page pool
  :stats              the engine's statistics
  :help               this message
  :quit               leave (Ctrl-D too)

Ctrl-C cancels the running generation, or stops the running code, and returns to the prompt;
at the prompt it clears the line. History is kept in ~/.yaie_history.
]]

-- ---------------------------------------------------------------------------------------------
-- Showing values

local MAX_FIELDS, WIDTH = 32, 96

local function quote(s) return (string.format("%q", s):gsub("\\\n", "\\n")) end

local function scalar(v)
  if type(v) == "string" then return quote(v) end
  return tostring(v)
end

local function key_text(k)
  if type(k) == "string" and k:match("^[%a_][%w_]*$") then return k end
  return "[" .. scalar(k) .. "]"
end

-- A value as the REPL prints it: strings quoted, tables one level deep (their tables as
-- addresses), anything with a __tostring through it.
local function show(v)
  if type(v) ~= "table" then return scalar(v) end
  local mt = getmetatable(v)
  if mt and mt.__tostring then return tostring(v) end
  local parts, n = {}, #v
  for i = 1, math.min(n, MAX_FIELDS) do parts[i] = scalar(rawget(v, i)) end
  local keys = {}
  for k in pairs(v) do
    if not (type(k) == "number" and k >= 1 and k <= n and k % 1 == 0) then keys[#keys + 1] = k end
  end
  table.sort(keys, function(a, b)
    if type(a) ~= type(b) then return type(a) < type(b) end
    return tostring(a) < tostring(b)
  end)
  for _, k in ipairs(keys) do
    if #parts >= MAX_FIELDS then break end
    parts[#parts + 1] = key_text(k) .. " = " .. scalar(rawget(v, k))
  end
  local more = n + #keys - #parts
  if more > 0 then parts[#parts + 1] = ("... (%d more)"):format(more) end
  if #parts == 0 then return "{}" end
  local one_line = "{ " .. table.concat(parts, ", ") .. " }"
  if #one_line <= WIDTH then return one_line end
  return "{\n  " .. table.concat(parts, ",\n  ") .. "\n}"
end
M.show = show

-- ---------------------------------------------------------------------------------------------
-- Errors

-- The host's Ctrl-C hook raises "interrupted!" (maybe with a position, maybe a traceback after).
local function is_interrupt(e) return type(e) == "string" and e:match("^[^\n]*"):match("interrupted!$") ~= nil end

-- The error with its traceback, cut where the REPL called the typed code.
local function traceback(e)
  if e == CANCELLED then return e end
  local msg = type(e) == "string" and e or ("error object: " .. show(e))
  if msg:find("\nstack traceback:", 1, true) then return msg end
  local tb = debug.traceback(msg, 2)
  local cut = tb:find("\n%s*%[C%]: in function 'xpcall'")
  return cut and tb:sub(1, cut - 1) or tb
end

-- ---------------------------------------------------------------------------------------------
-- The engine side: gen() and the step guard

-- engine:step() with Ctrl-C held: from typed code (engine:run() at the prompt) a Ctrl-C then
-- stops the code between two steps, never inside one, so queues, pages and cache stay whole.
local function guard_steps(engine)
  local step = engine.step
  engine.step = function(self, ...)
    local held = term.hold_sigint()
    local res = { xpcall(step, traceback, self, ...) }
    term.restore_sigint(held)
    if not res[1] then error(res[2], 0) end
    return unpack(res, 2, table.maxn(res))
  end
end

-- Steps the engine until req finishes; "interrupted" when a Ctrl-C came first.
local function drive(engine, req)
  while req.state ~= "finished" do
    if term.take_sigint() then return "interrupted" end
    if not engine:step() and #engine.scheduler.running == 0 and req.state == "waiting" then
      error("gen: the request cannot be admitted (the KV pool is too small for it)", 0)
    end
  end
  return term.take_sigint() and "interrupted" or "done"
end

function Repl:need_engine()
  if not self.engine then error("no model loaded (start with: yaie repl --model PATH)", 0) end
  return self.engine
end

-- Submits prompt, streams its tokens to the output as the engine steps, returns the text.
-- Ctrl-C cancels the request and raises CANCELLED; other requests keep their state.
function Repl:gen(prompt, opts)
  local engine, out = self:need_engine(), self.out
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  local user_on_token, streamed = o.on_token, false
  o.on_token = function(piece, id, req)
    if #piece > 0 then
      out:write(piece)
      out:flush()
      streamed = true
    end
    if user_on_token then return user_on_token(piece, id, req) end
  end
  local req = engine:submit(prompt, o)
  local held = term.hold_sigint()
  local ok, res = xpcall(drive, traceback, engine, req)
  if req.state ~= "finished" then engine:cancel(req) end
  local ctrl_c = res == "interrupted" or is_interrupt(res) or term.take_sigint()
  term.restore_sigint(held)
  if streamed then out:write("\n") end
  if ctrl_c then
    out:write("^C cancelled\n")
    out:flush()
    error(CANCELLED, 0)
  end
  if not ok then error(res, 0) end
  if req.error then error("gen: " .. req.error, 0) end
  return req.text
end

-- ---------------------------------------------------------------------------------------------
-- Commands

local commands = {}

function commands.help(self) self.out:write(M.help) end

function commands.quit() return "quit" end

function commands.policy(self, arg)
  local engine = self:need_engine()
  if arg ~= "" then engine:set_policy(arg) end
  self.out:write("policy = ", engine:stats().policy, "\n")
end

function commands.tree(self)
  local engine = self:need_engine()
  self.out:write(engine.tree:dump(engine.model.tokenizer))
end

function commands.pool(self) self.out:write(tostring(self:need_engine().pool), "\n") end

function commands.stats(self)
  local s = self:need_engine():stats()
  local keys = {}
  for k in pairs(s) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local v = s[k]
    if type(v) == "number" and v % 1 ~= 0 then v = ("%.4g"):format(v) end
    self.out:write(k, " = ", tostring(v), "\n")
  end
end

-- Runs `:name arg`; its errors are messages for the user (an unknown policy, no model).
function Repl:command(line)
  local name, arg = line:match("^%s*:(%S*)%s*(.-)%s*$")
  local cmd = commands[name]
  if not cmd then
    self.out:write("unknown command :", name, " (:help lists them)\n")
    return
  end
  local ok, res = pcall(cmd, self, arg)
  if not ok then
    -- Errors raised for the caller of set_policy point into this file: drop that position.
    local msg = tostring(res):gsub("^[^\n]-yaie/repl%.lua:%d+: ", "")
    self.out:write("error: ", msg, "\n")
    return
  end
  return res
end

-- ---------------------------------------------------------------------------------------------
-- Reading and running Lua

local function values(...) return { n = select("#", ...), ... } end

-- A function for the typed source: as an expression first, so that its values show, else as
-- statements; and whether it is an expression. Returns nil, "incomplete" when the chunk is
-- unfinished. The expression goes through values(...) rather than `return SOURCE`, which would
-- make a call a tail call and lose its line from tracebacks; it stays on the source's lines.
function Repl:compile(src)
  local f, err, is_expr
  if not src:match(";%s*$") then
    f = loadstring("local values = ...; return values(" .. src .. "\n)", "=stdin")
    is_expr = f ~= nil
  end
  if not f then f, err = loadstring(src, "=stdin") end
  if not f then
    if err:sub(-7) == "'<eof>'" then return nil, "incomplete" end
    return nil, err
  end
  -- Typed code runs in the interpreter, where the Ctrl-C hook can stop even a tight loop.
  jit.off(f, true)
  return setfenv(f, self.env), is_expr
end

-- Runs typed code with Ctrl-C let through to the host's hook, then prints values or traceback.
function Repl:execute(f, is_expr)
  term.restore_sigint(false)
  local ok, res = xpcall(f, traceback, values)
  term.hold_sigint()
  debug.sethook() -- a Ctrl-C that came as the code returned must not stop the REPL itself
  if not ok then
    if is_interrupt(res) then
      -- After the terminal's own "^C": the message on a line of its own, without a position.
      res = (term.interactive() and "\n" or "") .. tostring(res):gsub("^[^\n]*interrupted!", "interrupted (Ctrl-C)")
    end
    if res ~= CANCELLED then self.out:write(tostring(res), "\n") end
    return
  end
  if is_expr and res.n > 0 then
    local shown = {}
    for i = 1, res.n do shown[i] = show(res[i]) end
    self.out:write(table.concat(shown, "\t"), "\n")
  end
end

-- Reads one chunk (continuing on >> while unfinished) or command, and runs it.
-- Returns "quit" when the session ends.
function Repl:round()
  local lines = {}
  while true do
    local line, why = term.readline(#lines == 0 and "> " or ">> ")
    if not line then return why == "eof" and "quit" or nil end
    term.add_history(line)
    if #lines == 0 and line:match("^%s*:") then return self:command(line) end
    lines[#lines + 1] = line
    local src = table.concat(lines, "\n")
    if not src:match("%S") then return end
    local f, err = self:compile(src)
    if f then return self:execute(f, err) end
    if err ~= "incomplete" then
      self.out:write(err, "\n")
      return
    end
  end
end

-- The loop: rounds until :quit or end of input; saves the history. Returns the exit code.
function Repl:run()
  self.out:write(self.banner, "\n")
  self.out:flush()
  while true do
    local ok, res = pcall(self.round, self)
    self.out:flush()
    if ok and res == "quit" then break end
    if not ok then
      term.hold_sigint()
      debug.sethook()
      self.out:write(is_interrupt(res) and "^C\n" or ("yaie repl: " .. tostring(res) .. "\n"))
    end
  end
  term.save_history()
  self.out:flush()
  return 0
end
jit.off(Repl.run)
jit.off(Repl.execute)

-- ---------------------------------------------------------------------------------------------
-- Completion of globals, fields and methods (`engine:st<Tab>`) and of commands (`:po<Tab>`).

local function keys_of(v, methods, into)
  local depth = 0
  while type(v) == "table" and depth < 4 do
    for k in pairs(v) do
      if type(k) == "string" and k:match("^[%a_][%w_]*$") and (not methods or type(v[k]) == "function") then
        into[k] = true
      end
    end
    local mt = getmetatable(v)
    v = mt and type(mt) == "table" and rawget(mt, "__index") or nil
    depth = depth + 1
  end
  return into
end

function Repl:complete(text)
  local path, sep, partial = text:match("^(.-)([.:]?)([%w_]*)$")
  local found = {}
  if path == "" and sep == ":" then
    for name in pairs(commands) do found[name] = true end
  else
    local v = self.env
    if sep ~= "" then
      for part in path:gmatch("[^.:]+") do
        local ok, nv = pcall(function() return v[part] end)
        if not ok or type(nv) ~= "table" then return {} end
        v = nv
      end
    end
    keys_of(v, sep == ":", found) -- the environment's keys, then _G's through its __index
  end
  local out = {}
  for k in pairs(found) do
    if k:sub(1, #partial) == partial then out[#out + 1] = path .. sep .. k end
  end
  table.sort(out)
  return out
end

-- ---------------------------------------------------------------------------------------------

-- opts: engine (or nil: no model), model (its path, for the banner), out (default io.stdout),
-- history (a file, or false for none; default ~/.yaie_history).
function M.new(opts)
  opts = opts or {}
  local self = setmetatable({ engine = opts.engine, out = opts.out or io.stdout }, Repl)
  if self.engine then guard_steps(self.engine) end
  self.env = setmetatable({
    yaie = require "yaie",
    engine = self.engine,
    gen = function(prompt, o) return self:gen(prompt, o) end,
  }, { __index = _G })
  local history = opts.history
  if history == nil and os.getenv("HOME") then history = os.getenv("HOME") .. "/.yaie_history" end
  term.hold_sigint()
  term.init { name = "yaie", history = history or nil, completer = function(text) return self:complete(text) end }
  if self.engine then
    self.banner = ("yaie repl: %s, policy %s. :help lists the commands; Ctrl-D quits."):format(
      (opts.model or "model"):match("[^/]*$"), self.engine:stats().policy)
  else
    self.banner = "yaie repl: no model loaded (yaie repl --model PATH). :help lists the commands; Ctrl-D quits."
  end
  return self
end

return M
