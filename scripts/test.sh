#!/usr/bin/env bash
# Install what is missing, build, and run every test. Extra arguments go to
# CMake (CUDL_BUILD_DIR picks the build directory, default: build;
# CUDL_CTEST_ARGS adds ctest options, e.g. "--repeat until-fail:2").
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh "$@"
# shellcheck disable=SC2086 # CUDL_CTEST_ARGS is a list of options
ctest --test-dir "${CUDL_BUILD_DIR:-build}" --output-on-failure -j "$(nproc)" \
  ${CUDL_CTEST_ARGS:-}
