#!/usr/bin/env bash
# The main job: install what is missing, build, show what cudl sees, then
# train. With no arguments: the small CNN on Fashion-MNIST (Debian's
# dataset-fashion-mnist) on the best device, printing the test accuracy
# after each epoch. Arguments go to `cudl train` (see `cudl train --help`),
# e.g. scripts/run.sh --model resnet20 --epochs 30.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
build_dir=${CUDL_BUILD_DIR:-build}
"$build_dir/tools/cudl" info
exec "$build_dir/tools/cudl" train "$@"
