#!/usr/bin/env bash
# CPU layer benchmarks: cudl's convolution and linear layers against
# oneDNN, an im2col convolution, the machine's sgemm (bench_layers) and
# PyTorch (benchmarks/cpu/torch_layers.py, Debian's python3-torch), in one
# run on one machine. Writes OUT_DIR (default bench-cpu-out): the JSON lines
# of both programs, their tables, machine.txt, and table.md joining them.
#   scripts/bench-cpu.sh [OUT_DIR] [MIN_SECONDS_PER_FIGURE]
# Run it on an otherwise idle machine: other load changes the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench-cpu-out}
min_time=${2:-0.5}
mkdir -p "$out"
# An optimised CPU-only build of its own: what is measured is the CPU path.
build=${CUDL_BUILD_DIR:-build-release}
CUDL_BUILD_DIR=$build scripts/build.sh -DCMAKE_BUILD_TYPE=Release \
  -DCUDL_CUDA=OFF -DCUDL_BUILD_TESTS=OFF >/dev/null
{
  date -u '+%Y-%m-%d %H:%M UTC'
  echo "commit $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (with uncommitted changes)')"
  lscpu | grep -E '^(Model name|CPU\(s\)|Thread|Core|Socket|Flags)' | cut -c1-300
  free -g | head -n 2
  dpkg-query -W libdnnl2 libopenblas0-pthread python3-torch 2>/dev/null || true
} >"$out/machine.txt"
"$build/benchmarks/bench_layers" --min-time "$min_time" \
  --json "$out/cudl.jsonl" >"$out/cudl.md"
if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  /usr/bin/python3 benchmarks/cpu/torch_layers.py --min-time "$min_time" \
    --json "$out/torch.jsonl" >"$out/torch.md"
else
  echo "bench-cpu: PyTorch not importable by /usr/bin/python3 (Debian package python3-torch); no peer" >&2
  : >"$out/torch.jsonl"
fi
python3 benchmarks/cpu/compare.py "$out/cudl.jsonl" "$out/torch.jsonl" >"$out/table.md"
echo "bench-cpu: wrote $out/table.md"
