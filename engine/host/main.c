/* The yaie host program: LuaJIT with yaie's Lua library on its path. Every command (generate,
 * tokenize, convert, run, repl) is Lua in lua/yaie/cli.lua; this file only finds the library
 * and the Lua sources, runs the CLI, and turns a Lua error into a message and exit status 1. */
#include <lauxlib.h>
#include <limits.h>
#include <lua.h>
#include <lualib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

/* The directory holding this executable, which also holds libyaie.so. */
static void exe_dir(char *out, size_t cap) {
  ssize_t n = readlink("/proc/self/exe", out, cap - 1);
  if (n <= 0) {
    snprintf(out, cap, ".");
    return;
  }
  out[n] = 0;
  char *slash = strrchr(out, '/');
  if (slash)
    *slash = 0;
}

/* Where this program's Lua library lies. A source checkout (lua/ and engine/include/yaie.h under
 * its root, libyaie.so beside this binary): $YAIE_ROOT, the executable's parent directory (the
 * binary in build/), or the source directory it was built from. An installed prefix: the Lua
 * library YAIE_LUA_FROM_BIN away from the binary, holding yaie/install.lua (written by the
 * install step), which tells the library where libyaie is. Returns 1 for an installed prefix. */
static int find_layout(const char *bin, char *root, char *lua_dir, size_t cap) {
  const char *env = getenv("YAIE_ROOT");
  char probe[PATH_MAX + 64];
  if (env && *env) {
    snprintf(root, cap, "%s", env);
  } else {
    snprintf(probe, sizeof probe, "%s/../lua/yaie/init.lua", bin);
    if (file_exists(probe)) {
      snprintf(root, cap, "%s/..", bin);
    } else {
      snprintf(probe, sizeof probe, "%s/%s/yaie/install.lua", bin, YAIE_LUA_FROM_BIN);
      if (file_exists(probe)) {
        snprintf(lua_dir, cap, "%s/%s", bin, YAIE_LUA_FROM_BIN);
        return 1;
      }
      snprintf(root, cap, "%s", YAIE_SOURCE_DIR);
    }
  }
  snprintf(lua_dir, cap, "%s/lua", root);
  return 0;
}

static lua_State *interrupted_state;

/* Ctrl-C stops the running Lua code at its next instruction with an "interrupted!" error. */
static void stop_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  luaL_error(L, "interrupted!");
}

static void on_sigint(int sig) {
  (void)sig;
  if (interrupted_state)
    lua_sethook(interrupted_state, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

static int traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (!msg)
    msg = "(error object is not a string)";
  luaL_traceback(L, L, msg, 1);
  return 1;
}

int main(int argc, char **argv) {
  char bin[PATH_MAX], root[PATH_MAX], lua_dir[PATH_MAX], buf[3 * PATH_MAX];
  exe_dir(bin, sizeof bin);
  int installed = find_layout(bin, root, lua_dir, sizeof root);

  lua_State *L = luaL_newstate();
  if (!L) {
    fprintf(stderr, "yaie: cannot create the Lua state\n");
    return 1;
  }
  luaL_openlibs(L);

  /* package.path gets our Lua library first, so its modules win over other installed ones. */
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "path");
  snprintf(buf, sizeof buf, "%s/?.lua;%s/?/init.lua;%s", lua_dir, lua_dir, lua_tostring(L, -1));
  lua_pop(L, 1);
  lua_pushstring(L, buf);
  lua_setfield(L, -2, "path");

  /* package.loaded["yaie.host"] tells the Lua library where the shared library and header are
   * in a source checkout; an installed library reads them from its install.lua. */
  lua_getfield(L, -1, "loaded");
  lua_newtable(L);
  if (!installed) {
    snprintf(buf, sizeof buf, "%s/libyaie.so", bin);
    lua_pushstring(L, buf);
    lua_setfield(L, -2, "lib");
    snprintf(buf, sizeof buf, "%s/engine/include/yaie.h", root);
    lua_pushstring(L, buf);
    lua_setfield(L, -2, "header");
    lua_pushstring(L, root);
    lua_setfield(L, -2, "root");
  }
  snprintf(buf, sizeof buf, "%s/yaie", bin);
  lua_pushstring(L, buf);
  lua_setfield(L, -2, "exe");
  lua_setfield(L, -2, "yaie.host");
  lua_pop(L, 2);

  interrupted_state = L;
  signal(SIGINT, on_sigint);

  lua_pushcfunction(L, traceback);
  lua_getglobal(L, "require");
  lua_pushstring(L, "yaie.cli");
  int status = lua_pcall(L, 1, 1, 1);
  if (status == 0) {
    lua_getfield(L, -1, "main");
    lua_newtable(L);
    for (int i = 1; i < argc; i++) {
      lua_pushstring(L, argv[i]);
      lua_rawseti(L, -2, i);
    }
    status = lua_pcall(L, 1, 1, 1);
  }
  int code = 0;
  if (status != 0) {
    fprintf(stderr, "yaie: %s\n", lua_tostring(L, -1));
    code = 1;
  } else if (lua_isnumber(L, -1)) {
    code = (int)lua_tointeger(L, -1);
  }
  fflush(stdout);
  lua_close(L);
  return code;
}
