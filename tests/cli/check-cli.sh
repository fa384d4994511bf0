#!/usr/bin/env bash
# The cudl command line: exit codes and output of info, inspect, demo,
# and train / eval / predict on a tiny dataset written here.
# usage: check-cli.sh CUDL_BINARY CORPUS_DIR SCRATCH_DIR
set -uo pipefail
cudl=$1
corpus=$2
scratch=$3
mkdir -p "$scratch"
failures=0

expect() { # expect DESCRIPTION EXPECTED_EXIT ACTUAL_EXIT
  if [ "$2" -ne "$3" ]; then
    echo "FAIL: $1: exit $3, expected $2"
    failures=$((failures + 1))
  else
    echo "ok: $1"
  fi
}
expect_grep() { # expect_grep DESCRIPTION PATTERN FILE
  if grep -q -- "$2" "$3"; then
    echo "ok: $1"
  else
    echo "FAIL: $1: '$2' not in:"
    cat "$3"
    failures=$((failures + 1))
  fi
}

"$cudl" info >"$scratch/info.out" 2>&1
expect "info" 0 $?
expect_grep "info names the version" "^cudl [0-9]" "$scratch/info.out"
expect_grep "info lists the CPU" "^  cpu$" "$scratch/info.out"
expect_grep "info says whether there is a GPU" "cuda:0\|no GPU: " "$scratch/info.out"

"$cudl" inspect "$corpus/valid_cudl_small.safetensors" >"$scratch/inspect.out" 2>"$scratch/inspect.err"
expect "inspect a valid file" 0 $?
expect_grep "inspect says it is valid" "valid safetensors" "$scratch/inspect.out"
expect_grep "inspect lists a dtype and shape" "F32 *\[" "$scratch/inspect.out"

"$cudl" inspect "$corpus/valid_foreign_dtypes.safetensors" >"$scratch/foreign.out" 2>&1
expect "inspect a file with dtypes cudl cannot hold" 0 $?
expect_grep "inspect marks them" "not loadable by cudl" "$scratch/foreign.out"

for bad in "$corpus"/bad_*.safetensors "$scratch/does-not-exist.safetensors"; do
  "$cudl" inspect "$bad" >"$scratch/bad.out" 2>"$scratch/bad.err"
  rc=$?
  expect "inspect $(basename "$bad") fails" 1 $rc
  lines=$(wc -l <"$scratch/bad.err")
  expect "inspect $(basename "$bad") says why in one line" 1 "$lines"
  expect_grep "the line names the status" "\[CUDL_ERR_" "$scratch/bad.err"
done

"$cudl" >/dev/null 2>&1
expect "no command is a usage error" 2 $?
"$cudl" inspect >/dev/null 2>&1
expect "inspect without a file is a usage error" 2 $?
"$cudl" frobnicate >/dev/null 2>&1
expect "an unknown command is a usage error" 2 $?

TMPDIR="$scratch" "$cudl" demo --device cpu >"$scratch/demo.out" 2>&1
expect "demo on the CPU" 0 $?
expect_grep "demo round trip" "round trip: bit-identical" "$scratch/demo.out"
if ls "$scratch"/cudl-demo-* >/dev/null 2>&1; then
  echo "FAIL: demo left its temporary file behind"
  failures=$((failures + 1))
fi

# Training on a tiny MNIST-format dataset written here: 96 training and 40
# test images of 8x8, classes told apart by brightness.
data="$scratch/tiny-mnist"
mkdir -p "$data"
python3 - "$data" <<'PY'
import gzip, struct, sys
d = sys.argv[1]
for split, n in (("train", 96), ("t10k", 40)):
    labels = bytes(i % 3 for i in range(n))
    pixels = bytes((labels[i] * 90 + (i * 7 + j * 13) % 40) % 256
                   for i in range(n) for j in range(64))
    with gzip.open(f"{d}/{split}-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 8, 8) + pixels)
    with open(f"{d}/{split}-labels-idx1-ubyte", "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + labels)
PY
run="$scratch/run"
rm -rf "$run"
"$cudl" train --model mlp --data mnist --data-dir "$data" --epochs 2 --batch 16 \
  --device cpu --out "$run" --metrics "$run.jsonl" --log-every 3 \
  >"$scratch/train.out" 2>"$scratch/train.err"
expect "train a tiny MLP" 0 $?
expect_grep "train prints a summary per epoch" "^epoch 2/2 .*test acc" "$scratch/train.out"
expect_grep "train prints the final accuracy" "^final test accuracy" "$scratch/train.out"
expect_grep "metrics per epoch" '"epoch": 2, "train_loss": .*"train_accuracy": .*"test_loss": .*"test_accuracy": .*"images_per_second": .*"seconds"' "$run.jsonl"
expect_grep "metrics per step" '"step": 3, ' "$run.jsonl"
[ -f "$run/checkpoint.safetensors" ] && [ -f "$run/model.safetensors" ]
expect "train wrote a checkpoint and the weights" 0 $?
"$cudl" train --model mlp --data mnist --data-dir "$data" --epochs 3 --batch 16 \
  --device cpu --out "$run" --resume "$run/checkpoint.safetensors" \
  >"$scratch/resume.out" 2>"$scratch/resume.err"
expect "resume for a third epoch" 0 $?
expect_grep "resume starts at the third epoch" "^epoch 3/3" "$scratch/resume.out"
if grep -q "^epoch 1/3" "$scratch/resume.out"; then
  echo "FAIL: resume repeated the first epoch"
  failures=$((failures + 1))
fi
"$cudl" eval --model mlp --data mnist --data-dir "$data" --device cpu \
  --weights "$run/model.safetensors" >"$scratch/eval.out" 2>&1
expect "eval the weights" 0 $?
expect_grep "eval reports the accuracy" "accuracy 0\.[0-9]\|accuracy 1\.0" "$scratch/eval.out"
"$cudl" predict --model mlp --data mnist --data-dir "$data" --device cpu \
  --weights "$run/model.safetensors" --index 3 --count 2 >"$scratch/predict.out" 2>&1
expect "predict two images" 0 $?
expect_grep "predict names a class and the label" "^image 4: class [0-2] (p = .*), label 1" "$scratch/predict.out"
# Ctrl-C: the run stops at the current batch, saves a checkpoint there
# and exits 130.
rm -rf "$run-int"
"$cudl" train --model mlp --data mnist --data-dir "$data" --epochs 100000 \
  --batch 16 --device cpu --out "$run-int" >"$scratch/int.out" 2>"$scratch/int.err" &
pid=$!
for _ in $(seq 1 100); do  # until the first epoch's checkpoint exists
  [ -f "$run-int/checkpoint.safetensors" ] && break
  sleep 0.1
done
kill -INT "$pid"
wait "$pid"
expect "Ctrl-C stops training with status 130" 130 $?
expect_grep "Ctrl-C says where it stopped and how to continue" "interrupted at epoch .*--resume" "$scratch/int.err"
[ -f "$run-int/checkpoint.safetensors" ]
expect "Ctrl-C keeps the checkpoint" 0 $?
# Diagnostics: a line per K steps with every layer's figures.
"$cudl" train --model mlp --data mnist --data-dir "$data" --epochs 1 --batch 16 \
  --device cpu --out "$run-diag" --metrics "$run-diag.jsonl" --diagnostics 2 \
  >/dev/null 2>"$scratch/diag.err"
expect "train with --diagnostics" 0 $?
python3 - "$run-diag.jsonl" >"$scratch/diag.out" 2>&1 <<'PY'
import json, math, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
diag = [l for l in lines if "layers" in l]
assert diag, "no diagnostics lines"
assert all(l["step"] % 2 == 0 and l["window_steps"] == 2 for l in diag), diag[0]
kinds = [r["kind"] for r in diag[0]["layers"]]
assert kinds == ["linear", "relu", "linear", "relu", "linear"], kinds
for r in diag[-1]["layers"]:
    for key in ("output_mean", "output_std"):
        assert isinstance(r[key], float) and math.isfinite(r[key]), r
    if r["kind"] == "relu":
        assert 0.0 <= r["dead_fraction"] <= 1.0 and r["weight_grad_norm"] is None, r
    else:
        assert r["dead_fraction"] is None and r["weight_grad_norm"] > 0.0, r
assert diag[-1]["layers"][0]["input_grad_norm"] is None  # reads the data
assert all(r["input_grad_norm"] > 0.0 for r in diag[-1]["layers"][1:])
print("diagnostics lines consistent")
PY
expect "diagnostics lines hold every layer's figures" 0 $?
expect_grep "diagnostics checked" "diagnostics lines consistent" "$scratch/diag.out"
"$cudl" train --model mlp --data mnist --data-dir "$data" --diagnostics 5 \
  --device cpu >/dev/null 2>"$scratch/diag-usage.err"
expect "--diagnostics without --metrics is a usage error" 2 $?
expect_grep "it says to add --metrics" "add --metrics" "$scratch/diag-usage.err"
"$cudl" train --model nonesuch --device cpu >/dev/null 2>"$scratch/model.err"
expect "train with an unknown model is a usage error" 2 $?
expect "it says so in one line" 1 "$(wc -l <"$scratch/model.err")"
expect_grep "the line names the model and the choices" "unknown model 'nonesuch': small-cnn" "$scratch/model.err"
"$cudl" train --epochs 0 >/dev/null 2>&1
expect "train with a bad option value is a usage error" 2 $?
"$cudl" train --frobnicate >/dev/null 2>&1
expect "train with an unknown option is a usage error" 2 $?
"$cudl" train --data mnist --data-dir "$scratch/nowhere" --device cpu \
  >/dev/null 2>"$scratch/nodata.err"
expect "train without the data fails" 1 $?
expect_grep "train says which file is missing" "nowhere" "$scratch/nodata.err"
"$cudl" eval --model mlp --data mnist --data-dir "$data" --device cpu \
  >/dev/null 2>&1
expect "eval without --weights is a usage error" 2 $?

# cudl bench: the JSON of docs/benchmarks.md, its figures consistent with
# each other and with the cases' definitions (not the timings themselves).
# --no-cudnn sits between options on purpose: a flag must not take the
# next option as its value.
"$cudl" bench ops --device cpu --no-cudnn --ops relu,conv2d,sgd --samples 2 \
  --max-seconds 0.05 --min-sample-ms 0 --warmup 1 --json "$scratch/ops.json" \
  >"$scratch/ops.out" 2>&1
expect "bench ops" 0 $?
expect_grep "bench ops prints the ceilings" "^ceilings: copy .* GB/s" "$scratch/ops.out"
"$cudl" bench train --device cpu --model mlp --batch 8 --samples 2 \
  --min-sample-ms 0 --warmup 1 --json "$scratch/train.json" >"$scratch/train.out" 2>&1
expect "bench train" 0 $?
expect_grep "bench train prints images/s" "images/s" "$scratch/train.out"
python3 - "$scratch/ops.json" "$scratch/train.json" >"$scratch/bench-json.out" 2>&1 <<'PY'
import json, sys
ops = json.load(open(sys.argv[1]))
train = json.load(open(sys.argv[2]))
def close(a, b):
    return abs(a - b) <= 1e-3 * max(abs(a), abs(b), 1e-12)
assert ops["schema"] == "cudl-bench-ops/1" and ops["tool"] == "cudl", ops
assert ops["device"] == "cpu" and ops["device_name"] == "cpu" and ops["threads"] >= 1
for key in ("version", "date", "tf32"):
    assert key in ops, key
ceil = ops["ceilings"]
assert ceil["copy_gbps"] > 0 and ceil["gemm_gflops"] > 0 and ceil["gemm_size"] == 2048
seen = set()
for r in ops["results"]:
    seen.add((r["op"], r["pass"]))
    assert r["impl"] == "cudl" and r["size"] == "cifar", r
    assert 0 < r["min_ms"] <= r["median_ms"] and r["samples"] >= 1 and r["iterations"] >= 1, r
    assert close(r["gbps"], r["bytes"] / r["median_ms"] * 1e-6), r
    assert close(r["gflops"], r["flops"] / r["median_ms"] * 1e-6), r
    numel = 1
    for d in r["shape"]:
        numel *= d
    if r["op"] == "relu":
        assert r["bytes"] == 4 * numel * (2 if r["pass"] == "forward" else 3), r
        assert r["ceiling"] == "copy" and close(r["fraction_of_ceiling"], r["gbps"] / ceil["copy_gbps"]), r
    if r["op"] == "conv2d":
        n, c, h, w = r["shape"]
        k, c2, kh, kw = r["weight"]
        assert c2 == c and kh == kw == 3, r
        assert r["flops"] == 2 * n * k * h * w * c * 9, r  # stride 1, padding 1
        assert r["ceiling"] == "gemm" and close(r["fraction_of_ceiling"], r["gflops"] / ceil["gemm_gflops"]), r
    if r["op"] == "sgd":
        assert r["shape"] == [272192] and r["bytes"] == 5 * 4 * 272192, r
want = {("relu", "forward"), ("relu", "backward"), ("sgd", "step")} | {
    ("conv2d", p) for p in ("forward", "backward_data", "backward_filter")}
assert seen == want, seen
assert sum(r["op"] == "conv2d" for r in ops["results"]) == 9  # 3 shapes x 3 passes
assert train["schema"] == "cudl-bench-train/1" and train["model"] == "mlp", train
assert train["batch"] == 8 and train["device"] == "cpu" and train["input_shape"] == [1, 28, 28]
assert close(train["images_per_second"], 8 / train["step_ms_median"] * 1e3), train
# mlp: 784-256-128-10, 2 FLOPs a multiply-add, 3 passes
assert train["flops_per_image"] == 3 * 2 * (784 * 256 + 256 * 128 + 128 * 10), train
assert train["peak_memory_bytes"] > 0 and train["peak_host_memory_bytes"] >= train["peak_memory_bytes"]
assert train["peak_device_memory_bytes"] == 0
assert close(train["flop_utilisation"], train["achieved_gflops"] / train["gemm_gflops"]), train
print("bench JSON consistent")
PY
expect "bench JSON follows docs/benchmarks.md" 0 $?
expect_grep "bench JSON checked" "bench JSON consistent" "$scratch/bench-json.out"
"$cudl" bench ops --samples 0 >/dev/null 2>&1
expect "bench ops with a bad value is a usage error" 2 $?
"$cudl" bench train --model nonesuch --device cpu >/dev/null 2>"$scratch/bench-bad.err"
expect "bench train with an unknown model is a usage error" 2 $?
expect_grep "bench train names the model" "nonesuch" "$scratch/bench-bad.err"
"$cudl" bench frobnicate >/dev/null 2>&1
expect "an unknown bench is a usage error" 2 $?

echo "$failures failure(s)"
[ "$failures" -eq 0 ]
