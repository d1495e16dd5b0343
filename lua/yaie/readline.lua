-- The terminal side of the REPL: reading a line with GNU readline (libreadline.so.8, through
-- the FFI) for editing, history and completion, and holding Ctrl-C.
--
-- Ctrl-C is held, not caught: SIGINT stays blocked in this thread (and in every thread started
-- after hold_sigint(), such as the CPU backend's workers), so a Ctrl-C waits as a pending
-- signal until the REPL asks for it: while reading (a signalfd polled beside stdin, which
-- clears the line) and between engine steps (take_sigint()). Only around user code is it let
-- through to the host's handler, which stops Lua at its next instruction ("interrupted!").
-- That way a Ctrl-C never lands in the middle of a scheduler step.
--
-- Without a terminal on stdin, or without the library, lines come from io.read.
local ffi = require "ffi"
local M = {}

ffi.cdef [[
  typedef struct yaie_rl_sigset { unsigned long val[16]; } yaie_rl_sigset;
  typedef struct yaie_rl_pollfd { int fd; short events; short revents; } yaie_rl_pollfd;
  typedef void yaie_rl_vcpfunc(char *line);
  typedef char *yaie_rl_compentry(const char *text, int state);
  int sigemptyset(yaie_rl_sigset *set);
  int sigaddset(yaie_rl_sigset *set, int sig);
  int sigismember(const yaie_rl_sigset *set, int sig);
  int sigprocmask(int how, const yaie_rl_sigset *set, yaie_rl_sigset *old);
  int signalfd(int fd, const yaie_rl_sigset *mask, int flags);
  int poll(yaie_rl_pollfd *fds, unsigned long n, int timeout);
  long read(int fd, void *buf, unsigned long n);
  int isatty(int fd);
  char *strdup(const char *s);
  void free(void *p);
]]

local SIGINT, SIG_BLOCK, SIG_UNBLOCK = 2, 0, 1
local SFD_NONBLOCK, SFD_CLOEXEC, POLLIN, EINTR = 2048, 524288, 1, 4

-- ---------------------------------------------------------------------------------------------
-- Ctrl-C

local sigint_set = ffi.new("yaie_rl_sigset")
ffi.C.sigemptyset(sigint_set)
ffi.C.sigaddset(sigint_set, SIGINT)
local sigfd -- a signalfd for SIGINT, made on first use
local sigbuf = ffi.new("uint8_t[128]") -- one struct signalfd_siginfo
local old = ffi.new("yaie_rl_sigset")

-- Blocks SIGINT; returns whether it was already blocked, for restore_sigint.
function M.hold_sigint()
  ffi.C.sigprocmask(SIG_BLOCK, sigint_set, old)
  if not sigfd then sigfd = ffi.C.signalfd(-1, sigint_set, SFD_NONBLOCK + SFD_CLOEXEC) end
  return ffi.C.sigismember(old, SIGINT) == 1
end

-- Puts SIGINT back as hold_sigint found it (false: unblocked, so a pending Ctrl-C is delivered
-- to the host's handler now).
function M.restore_sigint(was_held)
  if was_held then return end
  ffi.C.sigprocmask(SIG_UNBLOCK, sigint_set, nil)
end

-- True when a Ctrl-C came while SIGINT was held; consumes it.
function M.take_sigint()
  if not sigfd or sigfd < 0 then return false end
  local got = false
  while ffi.C.read(sigfd, sigbuf, 128) == 128 do got = true end
  return got
end

-- ---------------------------------------------------------------------------------------------
-- GNU readline

-- Opened once with RTLD_NODELETE first: LuaJIT unloads what ffi.load loaded when its state
-- closes, and readline's memory (history, keymaps) would then look leaked to LeakSanitizer.
ffi.cdef "void *dlopen(const char *file, int mode);"
local RTLD_NOW, RTLD_NODELETE = 2, 4096
local rl, ok_rl, lib
for _, name in ipairs { "libreadline.so.8", "libreadline.so" } do
  if ffi.C.dlopen(name, RTLD_NOW + RTLD_NODELETE) ~= nil then
    ok_rl, lib = pcall(ffi.load, name)
    if ok_rl then break end
  end
end
if ok_rl then
  ffi.cdef [[
    void rl_callback_handler_install(const char *prompt, yaie_rl_vcpfunc *handler);
    void rl_callback_read_char(void);
    void rl_callback_handler_remove(void);
    void rl_callback_sigcleanup(void);
    void rl_free_line_state(void);
    void rl_redisplay(void);
    void rl_reset_screen_size(void);
    extern int rl_catch_signals;
    extern int rl_point;
    extern int rl_end;
    extern const char *rl_readline_name;
    extern const char *rl_basic_word_break_characters;
    extern int rl_completion_append_character;
    extern yaie_rl_compentry *rl_completion_entry_function;
    void using_history(void);
    void add_history(const char *line);
    void stifle_history(int max);
    int read_history(const char *file);
    int write_history(const char *file);
    int history_truncate_file(const char *file, int lines);
  ]]
  rl = lib
end

M.HISTORY_LINES = 1000

local names = {} -- strings handed to readline as const char*, kept alive here
local history_path
local line_state -- what the line handler got: { line = string | nil, done = bool }

local on_line = ffi.cast("yaie_rl_vcpfunc*", function(line)
  line_state.done = true
  if line ~= nil then
    line_state.line = ffi.string(line)
    ffi.C.free(line)
  end
  rl.rl_callback_handler_remove()
end)

-- Completion: readline asks for match number `state` (0, 1, ...) of `text`; the answers come
-- from M.completer(text), a list of strings, and are handed over as malloc'd copies.
local matches
local on_complete = ffi.cast("yaie_rl_compentry*", function(text, state)
  if state == 0 then
    rl.rl_completion_append_character = 0 -- `engine.` goes on with a field, not a space
    local ok, list = pcall(M.completer or function() return {} end, ffi.string(text))
    matches = ok and type(list) == "table" and list or {}
  end
  local m = matches[state + 1]
  return m and ffi.C.strdup(tostring(m)) or nil
end)

-- Whether lines come through readline: stdin and stdout are terminals and the library loaded.
function M.interactive()
  return rl ~= nil and ffi.C.isatty(0) == 1 and ffi.C.isatty(1) == 1
end

-- Sets readline up and loads the history file (nil: no history). Call once.
function M.init(opts)
  opts = opts or {}
  M.completer = opts.completer
  if not M.interactive() then return end
  names.app = opts.name or "yaie"
  names.breaks = " \t\n\"'()[]{},;=+-*/%^~<>#"
  rl.rl_readline_name = names.app
  rl.rl_catch_signals = 0 -- Ctrl-C is ours (see the top of this file)
  rl.rl_basic_word_break_characters = names.breaks
  rl.rl_completion_entry_function = on_complete
  rl.using_history()
  rl.stifle_history(M.HISTORY_LINES)
  history_path = opts.history
  if history_path then rl.read_history(history_path) end
end

-- Writes the history file given to init.
function M.save_history()
  if rl and history_path and M.interactive() then
    if rl.write_history(history_path) == 0 then rl.history_truncate_file(history_path, M.HISTORY_LINES) end
  end
end

function M.add_history(line)
  if rl and M.interactive() and line:match("%S") then rl.add_history(line) end
end

-- Waits until stdin has input (true) or a Ctrl-C came (false).
local fds = ffi.new("yaie_rl_pollfd[2]")
local function wait_input()
  while true do
    fds[0].fd, fds[0].events, fds[0].revents = 0, POLLIN, 0
    fds[1].fd, fds[1].events, fds[1].revents = sigfd or -1, POLLIN, 0 -- poll skips fd -1
    local n = ffi.C.poll(fds, 2, -1)
    if n < 0 and ffi.errno() ~= EINTR then return true end -- let the read report the problem
    if n > 0 then
      if fds[1].revents ~= 0 and M.take_sigint() then return false end
      if fds[0].revents ~= 0 then return true end
    end
  end
end

local function read_readline(prompt)
  -- The terminal may have been resized since the last line (readline reads the size itself
  -- on the first, when rl_instream is still unset).
  if line_state then rl.rl_reset_screen_size() end
  line_state = { done = false }
  rl.rl_callback_handler_install(prompt, on_line)
  while not line_state.done do
    if not wait_input() then
      -- Ctrl-C: show it after what was typed, drop the line, start afresh. The "^C" goes out
      -- before readline lets the terminal go, which ends with a carriage return.
      rl.rl_point = rl.rl_end
      rl.rl_redisplay()
      io.stdout:write("^C")
      io.stdout:flush()
      rl.rl_free_line_state()
      rl.rl_callback_sigcleanup()
      rl.rl_callback_handler_remove()
      io.stdout:write("\n")
      io.stdout:flush()
      return nil, "interrupt"
    end
    rl.rl_callback_read_char()
  end
  if line_state.line == nil then
    io.stdout:write("\n")
    return nil, "eof"
  end
  return line_state.line
end
-- The line handler and the completer are Lua callbacks run from inside rl_callback_read_char;
-- LuaJIT forbids that from a compiled trace.
jit.off(read_readline)

-- Reads one line after showing prompt (only on a terminal). Returns the line; or nil, "eof" at
-- end of input (Ctrl-D); or nil, "interrupt" when Ctrl-C cleared the line.
function M.readline(prompt)
  if M.interactive() then return read_readline(prompt) end
  local tty = ffi.C.isatty(0) == 1
  if tty then
    io.stdout:write(prompt)
    io.stdout:flush()
    -- A terminal in line mode: poll sees a whole line, or the Ctrl-C (which the terminal
    -- driver answers by dropping the typed line).
    if not wait_input() then
      io.stdout:write("\n") -- after the terminal's own echo of ^C
      return nil, "interrupt"
    end
  end
  local line = io.read("*l")
  if line == nil then
    if tty then io.stdout:write("\n") end
    return nil, "eof"
  end
  return line
end

return M
