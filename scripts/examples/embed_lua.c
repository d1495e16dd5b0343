/* Embedding LuaJIT and yaie's Lua library in a C program: the serving engine with a scheduling
 * policy written in Lua, its steps driven from C, each finished request handed back to C.
 *
 *   cc embed_lua.c $(pkg-config --cflags --libs luajit) \
 *      -DYAIE_LUA_DIR="\"$(pkg-config --variable=luadir yaie)\"" -o embed_lua
 *   ./embed_lua MODEL N PROMPT...
 *
 * The engine admits one request at a time (max_running = 1) under the policy "shortest prompt
 * first", so the requests finish in that order; each is printed as its prompt followed by its
 * greedy continuation of up to N tokens (what `yaie generate --temperature 0` prints). The
 * installed Lua library finds libyaie itself: nothing here links it. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef YAIE_LUA_DIR
#error "define YAIE_LUA_DIR: the installed Lua library's directory (pkg-config --variable=luadir yaie)"
#endif

/* Called with (model path, max tokens, report function); returns the functions C drives. */
static const char engine_lua[] =
    "local model, max_tokens, report = ...\n"
    "local yaie = require 'yaie'\n"
    "local shortest_first = { name = 'shortest_first', order = function(waiting)\n"
    "  table.sort(waiting, function(a, b)\n"
    "    if #a.prompt_tokens ~= #b.prompt_tokens then return #a.prompt_tokens < #b.prompt_tokens end\n"
    "    return a.id < b.id\n"
    "  end)\n"
    "  return waiting\n"
    "end }\n"
    "local engine = yaie.engine { model = model, policy = shortest_first, max_running = 1 }\n"
    "local prompts = {}\n"
    "engine.on_finish = function(req) report(prompts[req] .. req.text) end\n"
    "return {\n"
    "  submit = function(prompt)\n"
    "    prompts[engine:submit(prompt, { max_tokens = max_tokens, temperature = 0 })] = prompt\n"
    "  end,\n"
    "  step = function() return engine:step() end,\n"
    "}\n";

static int n_finished;

/* The engine's on_finish, in C: one line per finished request. */
static int report(lua_State *L) {
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  fwrite(text, 1, len, stdout);
  fputc('\n', stdout);
  fflush(stdout);
  n_finished++;
  return 0;
}

static int traceback(lua_State *L) {
  luaL_traceback(L, L, lua_tostring(L, 1), 1);
  return 1;
}

/* Calls the function on the stack's top with nargs arguments below it, through traceback. */
static int call(lua_State *L, int nargs, int nresults) {
  int base = lua_gettop(L) - nargs;
  lua_pushcfunction(L, traceback);
  lua_insert(L, base);
  int status = lua_pcall(L, nargs, nresults, base);
  lua_remove(L, base);
  if (status != 0)
    fprintf(stderr, "embed_lua: %s\n", lua_tostring(L, -1));
  return status;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: embed_lua MODEL N PROMPT...\n");
    return 2;
  }
  lua_State *L = luaL_newstate();
  if (!L) {
    fprintf(stderr, "embed_lua: cannot create the Lua state\n");
    return 1;
  }
  luaL_openlibs(L);
  /* The installed library first on package.path: require "yaie" finds it there. */
  lua_getglobal(L, "package");
  lua_pushstring(L, YAIE_LUA_DIR "/?.lua;" YAIE_LUA_DIR "/?/init.lua;");
  lua_getfield(L, -2, "path");
  lua_concat(L, 2);
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);

  int status = 1, steps = 0;
  if (luaL_loadstring(L, engine_lua) != 0) {
    fprintf(stderr, "embed_lua: %s\n", lua_tostring(L, -1));
    goto done;
  }
  lua_pushstring(L, argv[1]);
  lua_pushinteger(L, atoi(argv[2]));
  lua_pushcfunction(L, report);
  if (call(L, 3, 1) != 0)
    goto done;
  int engine = lua_gettop(L);

  for (int i = 3; i < argc; i++) {
    lua_getfield(L, engine, "submit");
    lua_pushstring(L, argv[i]);
    if (call(L, 1, 0) != 0)
      goto done;
  }
  /* The host owns the loop: one engine step per call, until there is nothing left to do. */
  for (;;) {
    lua_getfield(L, engine, "step");
    if (call(L, 0, 1) != 0)
      goto done;
    int more = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (!more)
      break;
    steps++;
  }
  if (n_finished != argc - 3) {
    fprintf(stderr, "embed_lua: %d of %d requests finished\n", n_finished, argc - 3);
    goto done;
  }
  fprintf(stderr, "embed_lua: %d requests in %d steps\n", n_finished, steps);
  status = 0;
done:
  lua_close(L);
  return status;
}
