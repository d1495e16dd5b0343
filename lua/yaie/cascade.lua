-- Cascade grouping: which decoding rows of a step share which prefix pages. The radix tree hands
-- every request that matched a cached prefix the same pages for it, so equal page ids at the
-- start of two page tables mean a shared prefix. Rows are grouped level by level: by their
-- first shared page, the group running as far as all its members' pages agree; then, inside a
-- group, by the page after it (few-shot examples under a system prompt), up to MAX_LEVELS.
--
-- When to use it (`cascade` on the engine): true groups every shared prefix of two or more rows,
-- false never, and by default (nil) the scheduler decides per group from a cost estimate: a group
-- saves (members - 1) x length K/V position reads a step and costs one extra partial result per
-- member and head to merge, so it is used when the reads saved reach MIN_SAVED positions.
local C = require "yaie.c"
local ffi = C.ffi

local Cascade = {}
Cascade.__index = Cascade

Cascade.MAX_LEVELS = 3
Cascade.MIN_SAVED = 1024

function Cascade.new(mode, page_size)
  if mode ~= nil and type(mode) ~= "boolean" then
    error("engine: cascade must be true, false or nil (the scheduler decides), not " .. tostring(mode), 3)
  end
  return setmetatable({ mode = mode, page_size = page_size, cap = 0, member_cap = 0, steps = 0 }, Cascade)
end

-- Splits members (rows sharing pages [0, from)) by their page at `from`; appends groups to out.
local function split(self, members, from, level, out)
  local buckets, order = {}, {}
  for _, m in ipairs(members) do
    if m.req.n_shared > from then
      local key = m.req.pages[from]
      if not buckets[key] then
        buckets[key] = {}
        order[#order + 1] = key
      end
      local b = buckets[key]
      b[#b + 1] = m
    end
  end
  for _, key in ipairs(order) do
    local b = buckets[key]
    if #b >= 2 then
      local to = from + 1
      while true do
        local page, same = nil, true
        for _, m in ipairs(b) do
          if m.req.n_shared <= to then same = false break end
          page = page or m.req.pages[to]
          if m.req.pages[to] ~= page then same = false break end
        end
        if not same then break end
        to = to + 1
      end
      local len = (to - from) * self.page_size
      if self.mode == true or (#b - 1) * len >= Cascade.MIN_SAVED then
        out[#out + 1] = { start = from * self.page_size, stop = to * self.page_size, members = b }
        if level < Cascade.MAX_LEVELS then split(self, b, to, level + 1, out) end
      end
    end
  end
end

-- Fills batch.groups for rows {req, seq} (seq: the row's index in the batch) that decode; returns
-- the number of groups. The arrays stay valid until the next call.
function Cascade:fill(batch, rows)
  batch.groups, batch.n_groups = nil, 0
  if self.mode == false or #rows < 2 then return 0 end
  local groups = {}
  split(self, rows, 0, 1, groups)
  if #groups == 0 then return 0 end
  local n_members = 0
  for _, g in ipairs(groups) do n_members = n_members + #g.members end
  if self.cap < #groups then self.cap, self.arr = #groups, ffi.new("yaie_group[?]", #groups) end
  if self.member_cap < n_members then
    self.member_cap, self.members = n_members, ffi.new("int32_t[?]", n_members)
  end
  local k = 0
  for i, g in ipairs(groups) do
    local a = self.arr[i - 1]
    a.start, a["end"], a.rows, a.n_rows = g.start, g.stop, self.members + k, #g.members
    for _, m in ipairs(g.members) do
      self.members[k] = m.seq
      k = k + 1
    end
  end
  batch.groups, batch.n_groups = self.arr, #groups
  return #groups
end

return Cascade
