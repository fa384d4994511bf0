#!/usr/bin/env bash
# Install what is missing, build, and run every test. Extra arguments go to
# CMake (CUDL_BUILD_DIR picks the build directory, default: build).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh "$@"
ctest --test-dir "${CUDL_BUILD_DIR:-build}" --output-on-failure -j "$(nproc)"
