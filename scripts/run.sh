#!/usr/bin/env bash
# The main job: install what is missing, build, then show what cudl sees and
# run the demo (tensors on the best device, RNG fills, a safetensors round
# trip).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
build_dir=${CUDL_BUILD_DIR:-build}
"$build_dir/tools/cudl" info
"$build_dir/tools/cudl" demo
