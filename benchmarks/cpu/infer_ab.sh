#!/usr/bin/env bash
# Inference latency of two cudl builds and PyTorch on the CPU, interleaved:
# each round runs every point (model, batch, precision and layout) with the
# base build's `cudl bench infer`, the new build's, and
# benchmarks/torch_ref.py infer (eval, inference_mode, frozen TorchScript),
# so that the machine's drift over minutes falls on all of them alike. Writes
# one JSON per run, and summary.md: per point and variant the median over
# rounds of each run's median latency, the rounds' range in brackets, and
# new / base and fastest PyTorch / new (above 1: the new build is faster).
#   benchmarks/cpu/infer_ab.sh BASE_CUDL NEW_CUDL OUT_DIR
# BASE_CUDL and NEW_CUDL are `cudl` programs whose bench infer takes
# --precision and --layout (e.g. built at two commits with scripts/build.sh
# -DCMAKE_BUILD_TYPE=Release -DCUDL_CUDA=OFF). ROUNDS (default 3), MODELS
# (default "resnet20 small-cnn"), BATCHES (default "1 64") and POINTS
# (default "fp32:nchw fp32:nhwc bf16:nhwc", PRECISION:LAYOUT) choose the
# runs. Run on an otherwise idle machine, after scripts/install-deps.sh
# --bench (PyTorch).
set -euo pipefail
cd "$(dirname "$0")/../.."
. benchmarks/cpu/ab_common.sh
batches=${BATCHES:-1 64}
for round in $(seq 1 "${ROUNDS:-3}"); do
  for model in ${MODELS:-resnet20 small-cnn}; do
    if [ "$model" = resnet20 ]; then c=3 size=32; else c=1 size=28; fi
    for point in ${POINTS:-fp32:nchw fp32:nhwc bf16:nhwc}; do
      precision=${point%%:*} layout=${point##*:}
      tag=$model-$precision-$layout
      for batch in $batches; do
        for side in base new; do
          cudl=$new
          [ $side = base ] && cudl=$base
          "$cudl" bench infer --device cpu --model "$model" --channels $c --size $size \
            --batch "$batch" --precision "$precision" --layout "$layout" --samples 30 \
            --json "$out/$side-$tag-b$batch-r$round.json" >/dev/null
        done
      done
      "${torch_env[@]}" /usr/bin/python3 benchmarks/torch_ref.py infer --device cpu \
        --threads "$threads" --model "$model" --inputs ${c}x${size}x${size} \
        --batch "${batches// /,}" --precision "$precision" --layout "$layout" --samples 30 \
        --json "$out/pytorch-$tag-r$round.json" >/dev/null 2>&1
    done
  done
done
python3 - "$out" <<'EOF'
import glob, json, os, statistics, sys
out = sys.argv[1]
runs = {}  # (model, batch, precision, layout) -> {variant: [medians over rounds]}
for path in sorted(glob.glob(os.path.join(out, "*.json"))):
    name = os.path.basename(path)
    data = json.load(open(path))
    for doc in data if isinstance(data, list) else [data]:
        key = (doc["model"], doc["batch"], doc["precision"], doc["layout"])
        side = name.split("-", 1)[0]
        for r in doc["results"]:
            if "latency_ms_median" not in r:
                continue
            variant = r["impl"] if side == "pytorch" else f"{side} {r['impl']}"
            runs.setdefault(key, {}).setdefault(variant, []).append(r["latency_ms_median"])
def med(v):
    return statistics.median(v)
lines = ["| model | batch | precision | layout | variant | median ms (rounds' range) |",
         "| --- | --- | --- | --- | --- | --- |"]
ratios = ["| model | batch | precision | layout | base / new (speed-up) | fastest PyTorch / new |",
          "| --- | --- | --- | --- | --- | --- |"]
for key in sorted(runs, key=lambda k: (k[0], k[2], k[3], k[1])):
    cell = runs[key]
    for variant in sorted(cell):
        v = cell[variant]
        lines.append(f"| {' | '.join(str(x) for x in key)} | {variant} | "
                     f"{med(v):.3g} ({min(v):.3g}-{max(v):.3g}) |")
    new = cell.get("new cudl-inference")
    base = cell.get("base cudl-inference")
    torch = [med(v) for k, v in cell.items() if k.startswith("pytorch")]
    ratios.append(f"| {' | '.join(str(x) for x in key)} | "
                  f"{med(base) / med(new):.2f} | "
                  f"{min(torch) / med(new):.2f} |" if new and base and torch else
                  f"| {' | '.join(str(x) for x in key)} | – | – |")
with open(os.path.join(out, "summary.md"), "w") as f:
    f.write("\n".join(ratios + [""] + lines) + "\n")
print("\n".join(ratios))
EOF
