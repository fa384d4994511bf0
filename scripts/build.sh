#!/usr/bin/env bash
# Configure and build cudl into $CUDL_BUILD_DIR (default: build). Extra
# arguments go to CMake, e.g. -DCUDL_CUDA=OFF.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${CUDL_BUILD_DIR:-build}
cmake -S . -B "$build_dir" -G Ninja -DCUDL_WERROR=ON "$@"
cmake --build "$build_dir"
