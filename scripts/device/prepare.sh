#!/usr/bin/env bash
# Here, before a device call: builds with CUDA into build-cuda/ and gathers what the device
# machine lacks (it has CUDA, cuBLAS, torch and transformers, but no LuaJIT, jemalloc, cJSON,
# PCRE2 or busted) into .deps/ (git-ignored), which the call carries:
#   bash scripts/device/prepare.sh   then   run(command="bash scripts/device/run.sh", carry=[".deps"])
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/usr/local/cuda/bin:$PATH"
cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null
cmake --build build-cuda -j"${JOBS:-1}"
rm -rf .deps
mkdir -p .deps/bin .deps/lib .deps/lua .deps/clua .deps/shared/models
cp build-cuda/yaie build-cuda/libyaie.so build-cuda/libyaie_cuda.so build-cuda/yaie_cuda_test .deps/bin/
for l in libluajit-5.1.so.2 libjemalloc.so.2 libcjson.so.1 libpcre2-8.so.0; do
  cp -L "/usr/lib/x86_64-linux-gnu/$l" .deps/lib/
done
cp -rL /usr/share/lua/5.1/. .deps/lua/
cp -rL /usr/lib/x86_64-linux-gnu/lua/5.1/. .deps/clua/
cp /usr/bin/busted .deps/bin/busted.lua
cp -rL ../shared/models/stories260K .deps/shared/models/
du -sh .deps
