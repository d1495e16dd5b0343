#!/usr/bin/env bash
# On the device machine (GPU): everything the CUDA backend is checked and measured by, in one
# call. Needs .deps/ from scripts/device/prepare.sh (carried). Results go to $OUT.
#   bash scripts/device/run.sh [STAGE...]   stages: info kernels sanitize stories specs models
#                                          bench rounds kbench (default: all but kbench)
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT=${OUT:-/tmp/yaie-device}
mkdir -p "$OUT"
D=$ROOT/.deps
export LD_LIBRARY_PATH="$D/bin:$D/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
export YAIE_ROOT=$ROOT YAIE_SHARED=$D/shared YAIE_BIN=$D/bin/yaie
export LUA_PATH="$D/lua/?.lua;$D/lua/?/init.lua;;" LUA_CPATH="$D/clua/?.so;;"
export PYTHONUNBUFFERED=1 PATH="/usr/local/cuda/bin:$PATH"
stages=${*:-info kernels sanitize stories specs models bench rounds}
status=0
note() { echo "== $*" | tee -a "$OUT/summary.txt"; }
has() { [[ " $stages " == *" $1 "* ]]; }

if has info; then
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv | tee "$OUT/gpu.txt"
  nvcc --version | tail -1
  ldd "$D/bin/libyaie_cuda.so" "$D/bin/yaie" | grep "not found"
fi
if has kernels; then
  "$D/bin/yaie_cuda_test" > "$OUT/kernels.txt" 2>&1; rc=$?
  grep -E "FAIL|checks" "$OUT/kernels.txt"
  note "kernel tests: rc $rc ($(tail -1 "$OUT/kernels.txt"))"; [ $rc -eq 0 ] || status=1
fi
if has kbench; then
  "$D/bin/yaie_cuda_test" --quick --bench > "$OUT/kbench.txt" 2>&1
  sed -n '/-- matrix/,$p' "$OUT/kbench.txt"
fi
if has sanitize; then
  compute-sanitizer --tool memcheck --leak-check full --error-exitcode 9 "$D/bin/yaie_cuda_test" --quick \
    > "$OUT/sanitizer.txt" 2>&1; rc=$?
  note "compute-sanitizer memcheck on the kernel tests (--quick): rc $rc; $(grep -E 'ERROR SUMMARY' "$OUT/sanitizer.txt" | tail -1)"
  [ $rc -eq 0 ] || status=1
fi
if has stories; then
  S=$D/shared/models/stories260K
  "$D/bin/yaie" generate --model "$S/stories260K.bin" --tokenizer "$S/tok512.bin" --temperature 0 -n 200 \
    --device cuda > "$OUT/stories.txt" 2> "$OUT/stories.err"
  "$D/bin/yaie" run scripts/device/stories_check.lua "$S" > "$OUT/stories_check.txt" 2>&1; rc=$?
  note "$(cat "$OUT/stories_check.txt") [rc $rc; $(grep -o 'generated.*' "$OUT/stories.err")]"
  [ $rc -eq 0 ] || status=1
fi
if has specs; then
  "$D/bin/yaie" run "$D/bin/busted.lua" --run=gpu -o utfTerminal > "$OUT/specs.txt" 2>&1; rc=$?
  tail -25 "$OUT/specs.txt"
  note "GPU specs (busted --run=gpu): rc $rc"; [ $rc -eq 0 ] || status=1
fi
if has models; then
  # Real weights too when the SmolLM2 GGUF was assembled on this machine (see cuda/NOTES.md).
  gguf=${SMOL_GGUF:-/tmp/smol/SmolLM2-135M-Instruct.Q4_1.gguf}
  [ -f "$gguf" ] || gguf=""
  python3 scripts/device/check_models.py --yaie "$D/bin/yaie" ${gguf:+--gguf "$gguf"} 2>&1 | tee "$OUT/models.txt"
  rc=${PIPESTATUS[0]}
  note "transformers comparison: rc $rc"; [ $rc -eq 0 ] || status=1
fi
if has bench; then
  "$D/bin/yaie" run scripts/bench/gpu.lua ${BENCH_ARGS:-} 2>&1 | tee "$OUT/bench.txt"
fi
if has rounds; then
  # Decode rounds through the whole engine: tok/s and host microseconds per token, N = 1 and 8.
  for m in 1b 8b; do
    "$D/bin/yaie" run scripts/bench/rounds.lua --model $m --device cuda --batches 1,64 --steps 1,8 --new 128 2>&1 \
      | tee -a "$OUT/rounds.txt"
  done
fi
cat "$OUT/summary.txt" 2>/dev/null
exit $status
