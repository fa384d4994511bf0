#!/usr/bin/env bash
# CPU benchmarks, every peer in the same run on one machine:
#  1. layers: cudl's convolution and linear layers against oneDNN, an im2col
#     convolution, the machine's sgemm (bench_layers) and PyTorch
#     (benchmarks/cpu/torch_layers.py): cudl.jsonl, torch.jsonl, table.md;
#  2. the harness: `cudl bench ops` and `cudl bench train` (small CNN and
#     ResNet-20 at batch 32..256) against benchmarks/torch_ref.py (Debian's
#     python3-torch, the same threads, glibc malloc tuned not to return
#     memory to the system; training in FP32 and bf16 autocast, NCHW and
#     channels-last), joined by benchmarks/report.py: harness/;
#  3. inference: `cudl bench infer` (inference and training compiles) then
#     `torch_ref.py infer` (eval mode, inference_mode, frozen TorchScript)
#     for mlp, small-cnn and resnet20 at batch 1, 8 and 64, fp32 in NCHW and
#     channels-last and bf16 channels-last where the CPU has it, joined by
#     benchmarks/infer_table.py: infer/ (docs/results.md's table).
# Writes OUT_DIR (default bench-cpu-out), with machine.txt.
#   scripts/bench-cpu.sh [OUT_DIR] [MIN_SECONDS_PER_FIGURE]
# Run it on an otherwise idle machine: other load changes the figures.
# Needs scripts/install-deps.sh --bench (PyTorch, matplotlib).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench-cpu-out}
min_time=${2:-0.5}
mkdir -p "$out"
# An optimised CPU-only build of its own: what is measured is the CPU path.
build=${CUDL_BUILD_DIR:-build-release}
CUDL_BUILD_DIR=$build scripts/build.sh -DCMAKE_BUILD_TYPE=Release \
  -DCUDL_CUDA=OFF -DCUDL_BUILD_TESTS=OFF >/dev/null
threads=$(nproc)
{
  date -u '+%Y-%m-%d %H:%M UTC'
  echo "commit $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (with uncommitted changes)')"
  lscpu | grep -E '^(Model name|CPU\(s\)|Thread|Core|Socket|Flags)' | cut -c1-300
  free -g | head -n 2
  dpkg-query -W libdnnl2 libopenblas0-pthread python3-torch 2>/dev/null || true
} >"$out/machine.txt"
# PyTorch allocates every output afresh; glibc would hand large blocks back
# to the system and fault them in again on each call (measured: batch-norm
# forward 3x slower). These settings keep them, as a tuned malloc would.
torch_env=(env GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184)
# PARTS (default "layers harness infer") picks which of the three run.
part() { case " ${PARTS:-layers harness infer} " in *" $1 "*) return 0 ;; esac; return 1; }
if part layers; then
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
fi

if part harness; then
harness="$out/harness"
mkdir -p "$harness"
"$build/tools/cudl" bench ops --device cpu --json "$harness/ops-cudl.json" \
  >"$harness/ops-cudl.txt"
"${torch_env[@]}" /usr/bin/python3 benchmarks/torch_ref.py ops --device cpu \
  --threads "$threads" --json "$harness/ops-pytorch.json" >"$harness/ops-pytorch.txt"
# Training: ROUNDS (default 3) interleaved rounds of every case, cudl then
# PyTorch (its CPU default: FP32 and bf16 autocast, each in NCHW and
# channels-last; TORCH_PRECISIONS=fp32 leaves out bf16, which a CPU without
# avx512_bf16 runs in software); report.py takes each one's median, since a
# shared machine drifts by 10-20 % over minutes and one pair can land on
# either side of it.
# cudl runs in both layouts too (report.py compares PyTorch with cudl's
# fastest). BATCHES (default 32 64 128 256) narrows the sweep.
for round in $(seq 1 "${ROUNDS:-3}"); do
  for model in small-cnn resnet20; do
    for batch in ${BATCHES:-32 64 128 256}; do
      for layout in nchw nhwc; do
        "$build/tools/cudl" bench train --device cpu --model $model --batch $batch \
          --layout $layout \
          --json "$harness/train-cudl-$model-b$batch-$layout-r$round.json" >>"$harness/train.txt"
      done
      "${torch_env[@]}" /usr/bin/python3 benchmarks/torch_ref.py train --device cpu \
        --threads "$threads" --model $model --batch $batch \
        --precisions "${TORCH_PRECISIONS:-fp32,bf16}" --tag "r$round" \
        --json-dir "$harness" >>"$harness/train.txt"
    done
  done
done
/usr/bin/python3 benchmarks/report.py "$harness" --title "cudl against PyTorch on the CPU"
echo "bench-cpu: wrote $harness/report.md"
fi
if part infer; then
infer="$out/infer"
mkdir -p "$infer"
# fp32 in both layouts; bf16 channels-last where the CPU computes bf16
# itself (cudl refuses it elsewhere, docs/precision.md).
points="fp32:nchw fp32:nhwc"
grep -qE 'avx512_bf16|amx_bf16' /proc/cpuinfo && points="$points bf16:nhwc"
for point in $points; do
  precision=${point%%:*} layout=${point##*:}
  for model in mlp small-cnn resnet20; do
    if [ $model = resnet20 ]; then c=3 size=32; else c=1 size=28; fi
    for batch in 1 8 64; do
      tag=$model-b$batch-$precision-$layout
      "$build/tools/cudl" bench infer --device cpu --model $model --channels $c \
        --size $size --batch $batch --precision $precision --layout $layout \
        --json "$infer/cudl-$tag.json" >>"$infer/infer.txt"
      "${torch_env[@]}" /usr/bin/python3 benchmarks/torch_ref.py infer --device cpu \
        --threads "$threads" --model $model --inputs ${c}x${size}x${size} --batch $batch \
        --precision $precision --layout $layout \
        --json "$infer/pytorch-$tag.json" >>"$infer/infer.txt"
    done
  done
done
python3 benchmarks/infer_table.py "$infer" --out "$infer/table.md"
echo "bench-cpu: wrote $infer/infer.txt and $infer/table.md"
fi
