#!/usr/bin/env bash
# bash sweep.sh BUILD_DIR MODEL.gguf [OUT_DIR]: runs the patched CPU forward pass (README.md) with
# each set of bf16 rounding points on, at each grid scale in $SCALES (default "1"), and scores it
# against the unpatched fp32 run. Results: OUT_DIR/results.jsonl (summarize with summary.py).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$1 model=$2 out=${3:-/tmp/bf16-emulation}
mkdir -p "$out"
run() { YAIE_EMU=$1 YAIE_EMU_SCALE=$2 "$build/yaie" run "$here/logits.lua" "$model" "$here/prompts.json" "$3"; }
run 0 1 "$out/ref.logits"
declare -A bit=([W]=1 [N]=2 [QKV]=4 [ROPE]=8 [P]=16 [ATT]=32 [GU]=64 [GLU]=128)
configs=("all 255")
for x in W N QKV ROPE P ATT GU GLU; do configs+=("only_$x ${bit[$x]}" "allbut_$x $((255 & ~bit[$x]))"); done
configs+=("allbut_QKV+GU $((255 & ~4 & ~64))" "allbut_QKV+GU+GLU $((255 & ~4 & ~64 & ~128))"
  "allbut_QKV+ROPE $((255 & ~4 & ~8))" "allbut_N+QKV $((255 & ~2 & ~4))" "allbut_W+N $((255 & ~1 & ~2))"
  "allbut_N+GU $((255 & ~2 & ~64))")
for c in ${SCALES:-1}; do
  for cfg in "${configs[@]}"; do
    set -- $cfg
    run "$2" "$c" "$out/got.logits" 2>/dev/null
    python3 "$here/score.py" "$1" "$c" "$out/ref.logits" "$out/got.logits" "$here/prompts.json" "$out/results.jsonl"
  done
done
