#!/usr/bin/env bash
# Training throughput of two cudl builds and PyTorch on the CPU, interleaved:
# each round runs every case of the base build, of the new build (fused, and
# with --no-fusion) and of PyTorch 1.13 (benchmarks/torch_ref.py train), in
# NCHW and channels-last, so that the machine's drift over minutes falls on
# all of them alike. Writes one JSON per run and summary.md (medians over
# rounds of each run's median step, and the range of the rounds).
#   benchmarks/cpu/train_ab.sh BASE_CUDL NEW_CUDL OUT_DIR
# BASE_CUDL and NEW_CUDL are `cudl` programs (e.g. built at two commits with
# scripts/build.sh -DCMAKE_BUILD_TYPE=Release -DCUDL_CUDA=OFF). ROUNDS
# (default 3), MODELS (default "resnet20 small-cnn"), BATCH (default 128),
# PRECISION (fp32, the default, or bf16: cudl --precision bf16 against
# PyTorch's bf16 autocast), LAYOUTS (default "nchw nhwc") and SIDES (default
# "base new unfused": the new build unfused is what fusing saves) choose the
# runs. Run on an otherwise idle
# machine, after
# `scripts/install-deps.sh --bench` (PyTorch).
set -euo pipefail
cd "$(dirname "$0")/../.."
. benchmarks/cpu/ab_common.sh
batch=${BATCH:-128}
precision=${PRECISION:-fp32}
torch_layouts=$(echo ${LAYOUTS:-nchw nhwc} | tr ' ' ',')
for round in $(seq 1 "${ROUNDS:-3}"); do
  for model in ${MODELS:-resnet20 small-cnn}; do
    for layout in ${LAYOUTS:-nchw nhwc}; do
      for side in ${SIDES:-base new unfused}; do
        cudl=$new fusion=()
        if [ $side = base ]; then cudl=$base; fi
        if [ $side = unfused ]; then fusion=(--no-fusion); fi
        "$cudl" bench train --device cpu --model "$model" --batch "$batch" --layout $layout \
          --precision "$precision" "${fusion[@]}" \
          --json "$out/$side-$model-$layout-r$round.json" >/dev/null
      done
    done
    "${torch_env[@]}" /usr/bin/python3 benchmarks/torch_ref.py train --device cpu \
      --threads "$threads" --model "$model" --batch "$batch" --precisions "$precision" \
      --layouts "$torch_layouts" --json-dir "$out" --tag "r$round" >/dev/null
  done
done
python3 - "$out" "$batch" "$precision" <<'EOF'
import glob, json, os, statistics, sys
out, batch, precision = sys.argv[1], sys.argv[2], sys.argv[3]
rows = {}
for path in sorted(glob.glob(os.path.join(out, "*.json"))):
    name = os.path.basename(path)
    run = json.load(open(path))
    if name.startswith("train-pytorch-"):
        model = run["model"]
        key = ("pytorch", model, run.get("layout", "nchw"))
    else:
        side, rest = name.split("-", 1)
        model, layout = run["model"], run["layout"]
        key = (side, model, layout)
    rows.setdefault(key, []).append(run["step_ms_median"])
with open(os.path.join(out, "summary.md"), "w") as f:
    f.write(f"Training step, batch {batch}, {precision}: median over rounds of each run's median "
            "step (ms), the rounds' range, and images/s from that median.\n\n")
    f.write("| side | model | layout | rounds | step ms | range | images/s |\n")
    f.write("| --- | --- | --- | --- | --- | --- | --- |\n")
    for key in sorted(rows):
        v = rows[key]
        med = statistics.median(v)
        f.write(f"| {key[0]} | {key[1]} | {key[2]} | {len(v)} | {med:.1f} | "
                f"{min(v):.1f}-{max(v):.1f} | {float(batch) / med * 1e3:.0f} |\n")
print(open(os.path.join(out, "summary.md")).read())
EOF
