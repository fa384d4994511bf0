#!/usr/bin/env bash
# Run one of the chapter's experiments and plot it (docs/experiments.md):
#   examples/experiments/run.sh boolean|vanishing|dying|init|overfit|degradation [--full] [OUT_DIR]
# Builds cudl into build/ if needed; writes OUT_DIR/NAME.json and NAME.png
# (OUT_DIR defaults to experiments-out). The plot needs python3-matplotlib.
set -euo pipefail
cd "$(dirname "$0")/../.."
name=${1:?usage: run.sh boolean|vanishing|dying|init|overfit|degradation [--full] [OUT_DIR]}
shift
full=()
if [ "${1:-}" = "--full" ]; then full=(--full); shift; fi
out=${1:-experiments-out}
mkdir -p "$out"
build=${CUDL_BUILD_DIR:-build}
[ -x "$build/examples/experiments/chapter" ] || CUDL_BUILD_DIR=$build scripts/build.sh >/dev/null
cmake --build "$build" --target chapter >/dev/null
"$build/examples/experiments/chapter" "$name" "${full[@]}" --json "$out/$name.json"
/usr/bin/python3 examples/experiments/plot.py "$out/$name.json" "$out/$name.png"
