-- The state of a generation program: its text, variables, chat messages and the metadata of
-- each gen/select. `s(text)` appends; `s:gen`, `s:select` ask the engine and wait (the program
-- is a coroutine, so waiting lets the other programs' requests batch with this one);
-- `s:fork(n)` branches. Reading `s.name` (or `s[name]`) gives a variable.
local templates = require "yaie.chat_templates"

local State = {}
local methods = {}

local function new_state(runner, fields)
  local self = {
    _runner = runner, _text = fields.text or "", _vars = fields.vars or {}, _metas = fields.metas or {},
    _messages = fields.messages or {}, _template = fields.template, _role = nil, _last_role = fields.last_role,
    _stream = fields.stream,
  }
  return setmetatable(self, State)
end

State.__index = function(self, k)
  local m = methods[k]
  if m ~= nil then return m end
  return rawget(self, "_vars")[k]
end
State.__call = function(self, text) return self:append(text) end

function methods:append(text)
  text = tostring(text)
  self._text = self._text .. text
  if self._stream then self._stream(text) end
  return self
end

function methods:text() return self._text end
function methods:messages() return self._messages end
function methods:meta(name) return self._metas[name] end
function methods:set(name, value) self._vars[name] = value end
function methods:vars() return self._vars end

-- Roles: x is text, or a function(s) appending inside the role.
local function role(name)
  return function(self, x)
    if self._role then error("s:" .. name .. " inside s:" .. self._role .. ": roles do not nest", 2) end
    local prefix, suffix = templates.prefix_suffix(self._template, name, self._last_role, self)
    self:append(prefix)
    local start = #self._text
    self._role = name
    local ok, err = pcall(function()
      if type(x) == "function" then x(self) else self:append(x) end
    end)
    self._role = nil
    if not ok then error(err, 0) end
    self._messages[#self._messages + 1] = { role = name, content = self._text:sub(start + 1) }
    self:append(suffix)
    self._last_role = name
    return self
  end
end
methods.system, methods.user, methods.assistant = role "system", role "user", role "assistant"

-- gen: one request through the engine; the result becomes a variable and is appended.
function methods:gen(name, opts)
  local req = self._runner:submit_gen(self, opts or {})
  self._runner:await { req }
  self:_take_gen(name, req, opts or {})
  return self._vars[name]
end

function methods:_take_gen(name, req, opts)
  if req.error or req.meta.finish_reason == "error" then
    error("gen '" .. tostring(name) .. "': " .. tostring(req.error or "the engine could not run the request"), 0)
  end
  local text = req.text
  self._text = self._text .. text
  local value = text
  if opts.dtype == "int" or opts.dtype == "float" then value = tonumber(text) end
  if name then
    self._vars[name] = value
    local meta = {}
    for k, v in pairs(req.meta) do meta[k] = v end
    self._metas[name] = meta
  end
end

-- select: scores every choice's tokens after the current text, picks one by `method`.
function methods:select(name, choices, opts)
  local choice, meta = self._runner:select(self, choices, opts or {})
  self:append(choice)
  if name then
    self._vars[name] = choice
    self._metas[name] = meta
  end
  return choice
end

-- Captures the text appended inside fn as variable `name`.
function methods:var_scope(name, fn)
  local start = #self._text
  fn(self)
  self._vars[name] = self._text:sub(start + 1)
  return self
end

-- ---------------------------------------------------------------------------------------------
-- fork / join

local Fork = {}
local fork_methods = {}
Fork.__index = function(f, k)
  if type(k) == "number" then return rawget(f, "_branches")[k] end
  return fork_methods[k]
end
Fork.__len = function(f) return #f._branches end
Fork.__call = function(f, text) return f:append(text) end

-- The branches start from this state's text, which is committed (prefilled) once first, so
-- that every branch finds it in the radix cache.
function methods:fork(n)
  if self._role then error("s:fork inside a role", 2) end
  self._runner:commit(self)
  local branches = {}
  for i = 1, n do
    local vars = {}
    for k, v in pairs(self._vars) do vars[k] = v end
    local messages = {}
    for k, v in ipairs(self._messages) do messages[k] = v end
    branches[i] = new_state(self._runner, {
      text = self._text, vars = vars, metas = {}, messages = messages, template = self._template,
      last_role = self._last_role, stream = self._stream,
    })
    branches[i]._fork_base = #self._text
    branches[i]._fork_vars = self._vars
  end
  return setmetatable({ _branches = branches, _parent = self }, Fork)
end

-- Appends to every branch: text, or a function(i) giving each branch its text.
function fork_methods:append(text)
  for i, b in ipairs(self._branches) do b:append(type(text) == "function" and text(i) or text) end
  return self
end

-- gen on every branch at once: all requests are submitted before waiting, so they batch.
function fork_methods:gen(name, opts)
  opts = opts or {}
  local runner, reqs = self._parent._runner, {}
  for i, b in ipairs(self._branches) do
    local o = opts
    if opts.seed then
      o = {}
      for k, v in pairs(opts) do o[k] = v end
      o.seed = opts.seed + i - 1
    end
    reqs[i] = runner:submit_gen(b, o)
  end
  runner:await(reqs)
  for i, b in ipairs(self._branches) do b:_take_gen(name, reqs[i], opts) end
  return self
end

for _, r in ipairs { "system", "user", "assistant" } do
  fork_methods[r] = function(f, x)
    for _, b in ipairs(f._branches) do b[r](b, x) end
    return f
  end
end

function fork_methods:join(mode)
  mode = mode or "gather_variable"
  local parent = self._parent
  if mode == "gather_variable" then
    local names = {}
    for _, b in ipairs(self._branches) do
      for k, v in pairs(b._vars) do
        if b._fork_vars[k] ~= v and not names[k] then names[k] = true end
      end
    end
    for k in pairs(names) do
      local list = {}
      for i, b in ipairs(self._branches) do list[i] = b._vars[k] end
      parent._vars[k] = list
      local metas = {}
      for i, b in ipairs(self._branches) do metas[i] = b._metas[k] end
      parent._metas[k] = metas
    end
  elseif mode == "concat_and_append" then
    for _, b in ipairs(self._branches) do parent:append(b._text:sub(b._fork_base + 1)) end
  else
    error("join: mode '" .. tostring(mode) .. "' (gather_variable or concat_and_append)", 2)
  end
  return parent
end

return { new = new_state, State = State }
