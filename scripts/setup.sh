#!/usr/bin/env bash
# Installs the Debian packages yaie builds and tests with, then builds it into build/.
# Usage: bash scripts/setup.sh [TARGET...]   (as root, or with sudo available; default: all
# targets, the CUDA backend included when nvcc is found; the demo builds only `yaie_host`)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(cmake gcc make pkg-config luajit libluajit-5.1-dev libjemalloc-dev lua-busted
          libopenblas-openmp-dev libpcre2-dev libcjson-dev libreadline-dev tmux python3 python3-pip)
packages+=(luarocks) # the rockspec, checked by scripts/test_install.sh
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# nvcc lives outside PATH on a stock CUDA install; CMake builds the CUDA backend when it finds it.
[ -d /usr/local/cuda/bin ] && export PATH="/usr/local/cuda/bin:$PATH"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
targets=()
for t in "$@"; do targets+=(--target "$t"); done
cmake --build build -j"$(nproc)" "${targets[@]}"
