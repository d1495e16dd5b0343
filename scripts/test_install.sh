#!/usr/bin/env bash
# The install check (scripts/test.sh runs it): `cmake --install build` into a temporary prefix;
# the C examples (scripts/examples/embed*.c) built against it with pkg-config and with
# find_package(yaie); the installed program and `require "yaie"` from plain LuaJIT, run outside
# the checkout; `luarocks make` into a temporary tree. Every output is compared with what the
# installed `yaie generate --temperature 0` prints. Needs build/ (scripts/setup.sh makes it), or
# the build directory named by $YAIE_BUILD_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
models=$(cd "${YAIE_SHARED:-$src/../shared}/models/stories260K" && pwd)
gguf=$models/stories260K.gguf
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix tree=$tmp/tree build=${YAIE_BUILD_DIR:-build}
fail() { echo "test_install: FAILED: $*" >&2; exit 1; }
# same NAME EXPECTED ACTUAL: the two files are equal, or the test fails showing how they differ.
same() {
  cmp -s "$2" "$3" || { diff "$2" "$3" >&2 || true; fail "$1: output differs from the expected"; }
  echo "ok  $1"
}

echo "== install (cmake --install, pkg-config, find_package, plain LuaJIT, luarocks make)"
cmake --install "$build" --prefix "$prefix" >/dev/null
if [ -f "$build/libyaie_cuda.so" ] && [ ! -f "$prefix/lib/libyaie_cuda.so" ]; then
  fail "libyaie_cuda.so was built but not installed"
fi
version=$(sed -n 's/^project(yaie VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
[ -f "yaie-$version-1.rockspec" ] || fail "no yaie-$version-1.rockspec for the version in CMakeLists.txt"
cd "$tmp" # from here on nothing is found through the checkout

# The installed program runs its installed Lua library and libyaie; its version is project()'s.
[ "$("$prefix/bin/yaie" --version)" = "yaie $version" ] || fail "yaie --version: $("$prefix/bin/yaie" --version)"
echo 'print(package.searchpath("yaie.c", package.path)) print(require("yaie.c").lib_path)' > where.lua
"$prefix/bin/yaie" run where.lua > where.txt
grep -vq "^$prefix/" where.txt && fail "the installed yaie loads from outside its prefix: $(cat where.txt)"
echo "ok  yaie --version, yaie runs from its prefix"

# What the examples must print: the installed program's greedy text for each prompt.
greedy() { "$prefix/bin/yaie" generate -q -m "$gguf" --temperature 0 -n "$1" -p "$2"; }
prompt="Once upon a time, there was a little dog"
greedy 48 "$prompt" > embed.expected
for p in "Lily" "The sun was" "One day, a big red ball"; do greedy 24 "$p"; done > embed_lua.expected
{ cat "$models/EXPECTED.txt"; echo; } > bos.expected # llama2.c's greedy story, ended by a newline
run_examples() { # DIR: the built examples; the policy runs the shortest prompt first
  "$1/embed" "$gguf" "$prompt" 48 > "$1/embed.out"
  same "$2: embed.c = yaie generate" embed.expected "$1/embed.out"
  "$1/embed" "$models/stories260K.bin" "" 200 "$models/tok512.bin" > "$1/bos.out"
  same "$2: embed.c from BOS = EXPECTED.txt" bos.expected "$1/bos.out"
  "$1/embed_lua" "$gguf" 24 "One day, a big red ball" "Lily" "The sun was" > "$1/embed_lua.out" 2> "$1/embed_lua.err" ||
    { cat "$1/embed_lua.err" >&2; fail "$2: embed_lua failed"; }
  same "$2: embed_lua.c (Lua policy, steps from C) = yaie generate" embed_lua.expected "$1/embed_lua.out"
}

export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
mkdir pc
cc -std=c11 -Wall -Wextra -Werror -o pc/embed "$src/scripts/examples/embed.c" \
  $(pkg-config --cflags --libs yaie) -Wl,-rpath,"$(pkg-config --variable=libdir yaie)"
cc -std=c11 -Wall -Wextra -Werror -o pc/embed_lua "$src/scripts/examples/embed_lua.c" \
  $(pkg-config --cflags --libs luajit) -DYAIE_LUA_DIR="\"$(pkg-config --variable=luadir yaie)\""
run_examples pc pkg-config

cmake -S "$src/scripts/examples" -B cm -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build cm >/dev/null
run_examples cm find_package

# require "yaie" from plain LuaJIT: the Lua path alone, no LD_LIBRARY_PATH, no C path.
cat > gen.lua <<'EOF'
local yaie, C = require "yaie", require "yaie.c"
local want = assert(os.getenv("WANT_PREFIX"))
assert(C.lib_path:sub(1, #want) == want, "libyaie loaded from " .. C.lib_path .. ", not from " .. want)
local prompt = arg[2]
local m = yaie.load { model = arg[1] }
print(prompt .. m:generate(prompt, { max_tokens = tonumber(arg[3]), temperature = 0 }))
if os.getenv("CHECK_CUDA") == "1" then -- libyaie finds the installed libyaie_cuda.so beside itself
  C.lib.yaie_device_check(1)
  local msg = C.ffi.string(C.lib.yaie_last_error())
  assert(not msg:find("cannot load") and not msg:find("is not a CUDA backend"), msg)
end
EOF
cuda=""
[ -f "$prefix/lib/libyaie_cuda.so" ] && cuda=1
env -u LD_LIBRARY_PATH WANT_PREFIX="$prefix/" CHECK_CUDA=$cuda LUA_CPATH="" \
  LUA_PATH="$prefix/share/lua/5.1/?.lua;$prefix/share/lua/5.1/?/init.lua" \
  luajit gen.lua "$gguf" "$prompt" 48 > luajit.out
same "plain luajit + installed library = yaie generate${cuda:+ (and it loads libyaie_cuda.so)}" \
  embed.expected luajit.out

# LuaRocks: CUDACXX=false makes CMake find no CUDA compiler, so the rock is built for the CPU
# (as on a machine without nvcc), which keeps this short; build.luarocks/ is kept for next time.
(cd "$src" && CUDACXX=false CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
  luarocks --lua-version 5.1 --tree "$tree" make > "$tmp/luarocks.log" 2>&1) ||
  { tail -30 luarocks.log >&2; fail "luarocks make"; }
[ "$("$tree/bin/yaie" --version)" = "yaie $version" ] || fail "the rock's yaie --version"
(eval "$(luarocks --lua-version 5.1 --tree "$tree" path)" &&
  env -u LD_LIBRARY_PATH WANT_PREFIX="$tree/" luajit gen.lua "$gguf" "$prompt" 48) > rock.out
same "luarocks make + plain luajit = yaie generate" embed.expected rock.out
