#!/usr/bin/env bash
# The README's second command (and what CI runs): install, build, run every spec; then build
# with AddressSanitizer + UBSan and run the suite again there.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

log="$(mktemp)"
trap 'rm -f "$log"' EXIT

echo "== specs (release build)"
build/yaie run /usr/bin/busted --output=utfTerminal 2>&1 | tee -a "$log"

# cmake --install, the C examples, plain LuaJIT and luarocks make against the release build.
bash scripts/test_install.sh

echo "== specs (ASan + UBSan build)"
cmake -S . -B build-asan -DYAIE_SANITIZE=ON -DYAIE_CUDA=OFF >/dev/null
cmake --build build-asan -j"$(nproc)" >/dev/null
# Leaks are checked in the binary's own runs (it closes its Lua state, so every FFI object is
# finalized); inside busted, objects still referenced at exit would read as leaks.
ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 YAIE_SPEC_QUICK=1 \
  YAIE_BIN="$PWD/build-asan/yaie" build-asan/yaie run /usr/bin/busted --output=utfTerminal 2>&1 | tee -a "$log"

# Both runs' totals on one line (busted exits non-zero on any failure, and set -e stops above).
awk '/successes \/ .* failures \/ .* errors/ { p += $1; f += $4 + $7 } END { printf "%d passed, %d failed\n", p, f }' "$log"
