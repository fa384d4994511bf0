#!/usr/bin/env bash
# The cudl command line: exit codes and output of info, inspect, demo,
# and train / eval / predict on a tiny dataset written here.
# usage: check-cli.sh CUDL_BINARY CORPUS_DIR SCRATCH_DIR
set -uo pipefail
cudl=$(cd "$(dirname "$1")" && pwd)/$(basename "$1") # absolute: cases cd
corpus=$2
scratch=$3
mkdir -p "$scratch"

# shellcheck source=tests/cli/lib.sh
. "$(dirname "$0")/lib.sh"

"$cudl" info >"$scratch/info.out" 2>&1
expect "info" 0 $?
expect_grep "info names the version" "^cudl [0-9]" "$scratch/info.out"
expect_grep "info lists the CPU" "^  cpu$" "$scratch/info.out"
expect_grep "info says whether there is a GPU" "cuda:0\|no GPU: " "$scratch/info.out"
if ! grep -q "^CUDA libraries: none" "$scratch/info.out"; then
  expect_grep "info lists the GPU code built" \
    "^GPU code: \(sm\|compute\)_[1-9][0-9]*a\?\( \(sm\|compute\)_[1-9][0-9]*a\?\)*$" \
    "$scratch/info.out"
fi
if grep -q "^  cuda:" "$scratch/info.out"; then
  expect_true "info says for each GPU whether the build runs on it" \
    test "$(grep -c "^  cuda:" "$scratch/info.out")" = \
    "$(grep -c "^  cuda:.*, \(supported\|NOT supported by this build\)$" "$scratch/info.out")"
fi

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

# cudl model describe: the zoo's files as committed, a bad file in one line.
models=$(cd "$(dirname "$0")/../../examples/models" && pwd)
"$cudl" model describe --model resnet20 >"$scratch/resnet20.json" 2>"$scratch/describe.err"
expect "model describe a zoo model" 0 $?
expect_true "it writes examples/models/resnet20.json" \
  cmp -s "$scratch/resnet20.json" "$models/resnet20.json"
"$cudl" model describe --model-file "$models/small-cnn.json" \
  --output "$scratch/small-cnn.json" 2>"$scratch/describe.err"
expect "model describe --model-file --output" 0 $?
expect_true "a canonical file describes to itself" \
  cmp -s "$scratch/small-cnn.json" "$models/small-cnn.json"
printf '{"input_shape": [1, 8, 8],\n "layers": [{"kind": "conv2d", "name": "c", "out_channels": 2, "kernal_size": 3}]}\n' \
  >"$scratch/typo.json"
"$cudl" model describe --model-file "$scratch/typo.json" >"$scratch/typo.out" 2>"$scratch/typo.err"
expect "a model file with a misspelt key fails" 1 $?
expect "it says why in one line" 1 "$(wc -l <"$scratch/typo.err")"
expect_grep "the line names the layer and the key" \
  'typo.json: layers\[0\] ("c").kernal_size: unknown key' "$scratch/typo.err"
expect "it writes nothing on standard output" 0 "$(wc -c <"$scratch/typo.out")"
"$cudl" model describe --model nonet >/dev/null 2>&1
expect "an unknown zoo model is a usage error" 2 $?
"$cudl" model >/dev/null 2>&1
expect "model without a subcommand is a usage error" 2 $?

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
python3 "$(dirname "$0")/tiny_mnist.py" "$data" 96 40 8
run="$scratch/run"
rm -rf "$run"
"$cudl" train --model mlp --data mnist --data-dir "$data" --epochs 2 --batch 16 \
  --device cpu --out "$run" --metrics "$run.jsonl" --log-every 3 \
  >"$scratch/train.out" 2>"$scratch/train.err"
expect "train a tiny MLP" 0 $?
expect_grep "train prints a summary per epoch" "^epoch 2/2 .*test acc" "$scratch/train.out"
expect_grep "train prints the final accuracy" "^final test accuracy" "$scratch/train.out"
expect_grep "metrics per epoch" '"type": "epoch", "epoch": 2, "step": 12, "train_loss": .*"train_accuracy": .*"test_loss": .*"test_accuracy": .*"images_per_second": .*"seconds"' "$run.jsonl"
expect_grep "metrics per step" '"step": 3, ' "$run.jsonl"
[ -f "$run/checkpoint.safetensors" ] && [ -f "$run/model.safetensors" ]
expect "train wrote a checkpoint and the weights" 0 $?
# A resumed run goes on as it began: a longer run is asked for by name.
"$cudl" train --model mlp --data mnist --data-dir "$data" --epochs 3 --batch 16 \
  --device cpu --out "$run" --resume "$run/checkpoint.safetensors" \
  >"$scratch/resume.out" 2>"$scratch/resume.err"
expect "resume with another --epochs and no --override" 1 $?
expect_grep "it says what differs and how to change it" \
  "^cudl train: --resume $run/checkpoint.safetensors: the run was trained with --epochs 2, not --epochs 3; a resumed run goes on exactly as it began: add --override epochs to change it, or start from its weights with --init\$" \
  "$scratch/resume.err"
"$cudl" train --model mlp --data mnist --data-dir "$data" --epochs 3 --batch 16 \
  --device cpu --out "$run" --resume "$run/checkpoint.safetensors" \
  --override epochs >"$scratch/resume.out" 2>"$scratch/resume.err"
expect "resume for a third epoch" 0 $?
expect_grep "it notes the change" \
  "^cudl train: using --epochs 3 instead of the run's --epochs 2 (--override epochs)$" \
  "$scratch/resume.err"
expect_grep "resume starts at the third epoch" "^epoch 3/3" "$scratch/resume.out"
"$cudl" inspect "$run/checkpoint.safetensors" >"$scratch/resume.inspect" 2>&1
expect_grep "its checkpoint records the new length" "metadata train.epochs = 3$" \
  "$scratch/resume.inspect"
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
# Ctrl-C: the run stops at the current batch (or, after an epoch's last
# batch, once the epoch is evaluated), saves a checkpoint there and exits
# 130. Where it lands is up to the scheduler; resume-boundary.sh puts it
# at each position on purpose.
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
expect_grep "Ctrl-C says where it stopped and how to continue" \
  "interrupted \(at\|after\) epoch .*; saved .*(continue with --resume)" "$scratch/int.err"
[ -f "$run-int/checkpoint.safetensors" ]
expect "Ctrl-C keeps the checkpoint" 0 $?
# SIGTERM (a batch system ending the job, mpirun after a Ctrl-C) likewise.
rm -rf "$run-term"
"$cudl" train --model mlp --data mnist --data-dir "$data" --epochs 100000 \
  --batch 16 --device cpu --out "$run-term" >"$scratch/term.out" 2>"$scratch/term.err" &
pid=$!
for _ in $(seq 1 100); do
  [ -f "$run-term/checkpoint.safetensors" ] && break
  sleep 0.1
done
kill -TERM "$pid"
wait "$pid"
expect "SIGTERM stops training with status 130" 130 $?
expect_grep "SIGTERM says where it stopped and how to continue" \
  "interrupted \(at\|after\) epoch .*; saved .*(continue with --resume)" "$scratch/term.err"
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
# A diverging run stops with one line naming the step and the layer; with
# --check-numerics the line names the first layer and pass that went bad.
"$cudl" train --model mlp --data mnist --data-dir "$data" --epochs 1 --batch 16 \
  --device cpu --lr 1e30 --out "$scratch/diverge" >/dev/null 2>"$scratch/diverge.err"
expect "a diverging run fails" 1 $?
expect_grep "it names the loss, the step and a layer" \
  "^cudl train: the loss is .* at step [0-9]* (epoch 1, batch [0-9]*); the first non-finite output is node [0-9]* (.*). Stopping; no checkpoint was saved yet" \
  "$scratch/diverge.err"
# Read every 4 steps (--sync-every), the step that diverged is still named,
# and the line says when it was read and why the layer is not.
"$cudl" train --model mlp --data mnist --data-dir "$data" --epochs 1 --batch 16 \
  --device cpu --lr 1e30 --sync-every 4 --out "$scratch/diverge4" >/dev/null \
  2>"$scratch/diverge4.err"
expect "a diverging run read every 4 steps fails" 1 $?
expect_grep "it names the step and when the loss was read" \
  "^cudl train: the loss is .* at step [0-9]* (epoch 1, batch [0-9]*); read [1-3] steps later (--sync-every 4), .*no layer is named (--sync-every 1 stops at the step itself and names it). Stopping; no checkpoint was saved yet" \
  "$scratch/diverge4.err"
# How often the host reads the losses changes nothing a run computes or
# writes but its timings: every 7 steps and every step give the same
# weights, the same metrics lines (steps, validation, epochs) and the same
# progress lines off a terminal.
for k in 1 7; do
  "$cudl" train --model mlp --data mnist --data-dir "$data" --epochs 2 --batch 16 \
    --device cpu --val-split 0.25 --log-every 3 --sync-every $k --out "$scratch/sync$k" \
    --metrics "$scratch/sync$k.jsonl" >"$scratch/sync$k.out" 2>"$scratch/sync$k.err"
  expect "train --sync-every $k" 0 $?
done
expect "--sync-every 7 gives the weights of --sync-every 1" 0 \
  "$(cmp -s "$scratch/sync1/model.safetensors" "$scratch/sync7/model.safetensors"; echo $?)"
untimed() { sed -E 's/"(seconds|images_per_second)": [0-9.e+-]*//g; s/[0-9.]+ img\/s.*//; s/ [0-9.]+ s$//; s/sync[17]/syncK/g' "$1"; }
expect "--sync-every 7 gives the metrics lines of --sync-every 1" 0 \
  "$(diff <(untimed "$scratch/sync1.jsonl") <(untimed "$scratch/sync7.jsonl") >&2; echo $?)"
expect "--sync-every 7 gives the progress lines of --sync-every 1" 0 \
  "$(diff <(untimed "$scratch/sync1.err") <(untimed "$scratch/sync7.err") >&2; echo $?)"
expect_grep "the metrics hold step lines" '"type": "step", "step": 3,' "$scratch/sync7.jsonl"
"$cudl" train --model mlp --data mnist --data-dir "$data" --sync-every 0 \
  --out "$scratch/sync0" >/dev/null 2>"$scratch/sync0.err"
expect "--sync-every 0 is a usage error" 2 $?
rm -rf "$scratch/keep"
cp -r "$run" "$scratch/keep"
"$cudl" train --model mlp --data mnist --data-dir "$data" --epochs 9 --batch 16 \
  --device cpu --lr 1e30 --out "$scratch/keep" --override epochs,lr \
  --resume "$scratch/keep/checkpoint.safetensors" >/dev/null 2>"$scratch/diverge-kept.err"
expect "a resumed run that diverges fails" 1 $?
expect_grep "it says its checkpoint is kept" \
  "Stopping; the last checkpoint in $scratch/keep is kept" "$scratch/diverge-kept.err"
"$cudl" train --model mlp --data mnist --data-dir "$data" --epochs 1 --batch 16 \
  --device cpu --lr 1e30 --check-numerics --out "$scratch/diverge" \
  >/dev/null 2>"$scratch/numerics.err"
expect "--check-numerics stops the diverging run" 1 $?
expect_grep "it names the layer, the pass and the counts" \
  "^cudl train: training step [0-9]*: check-numerics: step [0-9]*: the .* of node [0-9]* (.*) has [0-9]* NaN and [0-9]* infinite of [0-9]* values \[CUDL_ERR_NUMERICS\]" \
  "$scratch/numerics.err"
"$cudl" train --model mlp --data mnist --data-dir "$data" --diagnostics 5 \
  --device cpu >/dev/null 2>"$scratch/diag-usage.err"
expect "--diagnostics without --metrics is a usage error" 2 $?
expect_grep "it says to add --metrics" "add --metrics" "$scratch/diag-usage.err"
# Precision: a name the tool does not know is usage; fp16 on a CPU is
# refused (the CPU would only emulate it) with the reason; emulation, when
# asked for, trains the small CNN in fp16 (with the loss scale in the
# metrics) and in bf16, and the weights file is f32 either way.
"$cudl" train --model mlp --data mnist --data-dir "$data" --precision fp8 \
  --device cpu >/dev/null 2>"$scratch/prec.err"
expect "an unknown precision is a usage error" 2 $?
expect_grep "it lists the precisions" "fp32, tf32, bf16 or fp16" "$scratch/prec.err"
"$cudl" train --model mlp --data mnist --data-dir "$data" --precision fp16 \
  --epochs 1 --batch 16 --device cpu --out "$run-fp16-refused" \
  >/dev/null 2>"$scratch/fp16.err"
expect "fp16 on the CPU is refused" 1 $?
expect_grep "it says why and what to use" "fp16 mixed precision runs on GPUs; use bf16" "$scratch/fp16.err"
[ ! -e "$run-fp16-refused" ]
expect "the refused run made no directory" 0 $?
for precision in fp16 bf16; do
  "$cudl" train --model small-cnn --data mnist --data-dir "$data" --epochs 1 \
    --batch 16 --device cpu --precision "$precision" --allow-emulated-precision \
    --out "$run-$precision" --metrics "$run-$precision.jsonl" \
    >/dev/null 2>"$scratch/$precision.err"
  expect "train the small CNN in emulated $precision" 0 $?
  expect_grep "its metrics name the precision" "\"precision\": \"$precision\", \"loss_scale\": " "$run-$precision.jsonl"
  "$cudl" inspect "$run-$precision/model.safetensors" >"$scratch/$precision.inspect" 2>&1
  expect_grep "its weights are f32" "conv1.weight *F32" "$scratch/$precision.inspect"
done
# From 2^16, halved once per skipped step (no growth within 2000 steps).
python3 - "$run-fp16.jsonl" <<'PY'
import json, sys
epoch = [l for l in map(json.loads, open(sys.argv[1])) if "train_loss" in l][0]
assert epoch["loss_scale"] * 2 ** epoch["skipped_steps"] == 65536, epoch
PY
expect "fp16's scale is 2^16 halved once per skipped step" 0 $?
# Layout: an unknown one is usage; the small CNN trains channels-last
# (the metrics say so), and its weights predict the same in either layout
# (the files keep PyTorch's layout).
"$cudl" train --model mlp --data mnist --data-dir "$data" --layout chw \
  --device cpu >/dev/null 2>"$scratch/layout.err"
expect "an unknown layout is a usage error" 2 $?
expect_grep "it lists the layouts" "auto, nchw or nhwc" "$scratch/layout.err"
"$cudl" train --model small-cnn --data mnist --data-dir "$data" --epochs 1 \
  --batch 16 --device cpu --layout nhwc --out "$run-nhwc" \
  --metrics "$run-nhwc.jsonl" >/dev/null 2>"$scratch/nhwc.err"
expect "train the small CNN channels-last" 0 $?
expect_grep "its metrics name the layout" '"layout": "nhwc"}' "$run-nhwc.jsonl"
for layout in nchw nhwc; do
  "$cudl" predict --model small-cnn --data mnist --data-dir "$data" --device cpu \
    --layout "$layout" --weights "$run-nhwc/model.safetensors" --index 0 \
    --count 8 >"$scratch/predict-$layout.out" 2>&1
  expect "predict with the channels-last weights in $layout" 0 $?
done
# The classes and probabilities (printed to 4 digits) agree: the files
# keep PyTorch's layout, and the layouts compute the same to rounding.
if grep -q "^image 7: class" "$scratch/predict-nchw.out" &&
  cmp -s "$scratch/predict-nchw.out" "$scratch/predict-nhwc.out"; then
  echo "ok: the layouts predict the same classes and probabilities"
else
  echo "FAIL: the layouts predict differently:"
  diff "$scratch/predict-nchw.out" "$scratch/predict-nhwc.out"
  failures=$((failures + 1))
fi
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

# Bad configuration: each case is one line on stderr that starts with the
# command and names the problem, the documented exit status (docs/cli.md:
# 2 for a wrong command line, 1 for a failure of what it names), and no
# file made or changed. The commands run inside $area, so that a stray
# default runs/ directory would be seen there too.
area="$scratch/bad"
rm -rf "$area"
mkdir -p "$area/data" "$area/run"
cp "$data"/* "$area/data/"
cp "$run/checkpoint.safetensors" "$run/model.safetensors" "$area/run/"
echo "a regular file" >"$area/plain"
echo '{"epoch": 1}' >"$area/old.jsonl"
# The tensors cut short (the header, with the architecture, is whole).
head -c $(($(stat -c %s "$run/checkpoint.safetensors") - 1000)) "$run/checkpoint.safetensors" >"$area/torn.safetensors"
"$cudl" train --model small-cnn --data mnist --data-dir "$data" --epochs 1 \
  --batch 16 --device cpu --out "$area/cnn" >/dev/null 2>&1
expect "train a tiny CNN for the other-model cases" 0 $?
T=(train --model mlp --data mnist --data-dir "$area/data" --device cpu --batch 16
  --epochs 2)
R=(--out "$area/run" --resume "$area/run/checkpoint.safetensors")
expect_error "train --model nonesuch" 2 "unknown model 'nonesuch': small-cnn" \
  train --model nonesuch --out "$area/new"
expect_error "train --batch 0" 2 "option --batch needs an integer .*, not '0'" \
  "${T[@]}" --batch 0 --out "$area/new"
expect_error "train --lr nan" 2 "option --lr needs a finite number above 0, not 'nan'" \
  "${T[@]}" --lr nan --out "$area/new"
expect_error "train --lr inf" 2 "option --lr .*, not 'inf'" "${T[@]}" --lr inf --out "$area/new"
expect_error "train --epochs without a value" 2 "option --epochs needs a value" \
  "${T[@]}" --out "$area/new" --epochs
expect_error "train with an unknown option" 2 "unknown option '--frobnicate'" \
  "${T[@]}" --frobnicate 3 --out "$area/new"
expect_error "train with an unknown dataset" 2 "unknown dataset 'nonesuch': fashion-mnist" \
  "${T[@]}" --data nonesuch --out "$area/new"
expect_error "train --device nonesuch" 2 "device must be auto, cpu or cuda:N, not 'nonesuch'" \
  "${T[@]}" --device nonesuch --out "$area/new"
expect_error "train --optimizer nonesuch" 2 "optimizer must be sgd, adam or adamw, not 'nonesuch'" \
  "${T[@]}" --optimizer nonesuch --out "$area/new"
expect_error "train --resume with --init" 2 "resume and --init exclude each other" \
  "${T[@]}" "${R[@]}" --init "$area/run/model.safetensors"
expect_error "train --diagnostics without --metrics" 2 "add --metrics" \
  "${T[@]}" --diagnostics 5 --out "$area/new"
expect_error "train without the dataset" 1 \
  "loading the training set: .*$area/nowhere/train-images.*No such file .*\[CUDL_ERR_IO\]" \
  "${T[@]}" --data-dir "$area/nowhere" --out "$area/new"
# Broken datasets, each in a copy of its own.
broken() { # broken NAME: a fresh copy of the tiny set in $area/NAME
  rm -rf "${area:?}/$1"
  mkdir -p "$area/$1"
  cp "$data"/* "$area/$1/"
}
broken cut
python3 -c "import sys; d = open(sys.argv[1], 'rb').read(); open(sys.argv[1], 'wb').write(d[:len(d) // 2])" \
  "$area/cut/train-images-idx3-ubyte.gz"
expect_error "train on a truncated gzip IDX file" 1 \
  "loading the training set: .*cut/train-images-idx3-ubyte.gz.*\[CUDL_ERR_FILE_TRUNCATED\]" \
  "${T[@]}" --data-dir "$area/cut" --out "$area/new"
broken short
head -c 20 "$data/t10k-labels-idx1-ubyte" >"$area/short/t10k-labels-idx1-ubyte"
expect_error "train on a truncated IDX label file" 1 \
  "loading the test set: .*short/t10k-labels-idx1-ubyte' is 20 bytes but its header describes 48" \
  "${T[@]}" --data-dir "$area/short" --out "$area/new"
broken magic
printf 'garbage!' >"$area/magic/t10k-labels-idx1-ubyte"
expect_error "train on a file that is not IDX" 1 \
  "loading the test set: .*magic/t10k-labels-idx1-ubyte' is not an IDX file.*\[CUDL_ERR_FILE_FORMAT\]" \
  "${T[@]}" --data-dir "$area/magic" --out "$area/new"
broken isdir
rm "$area/isdir/t10k-labels-idx1-ubyte"
mkdir "$area/isdir/t10k-labels-idx1-ubyte"
expect_error "train on a dataset file that is a directory" 1 \
  "isdir/t10k-labels-idx1-ubyte' is not a readable regular file" \
  "${T[@]}" --data-dir "$area/isdir" --out "$area/new"
broken fifo
rm "$area/fifo/t10k-labels-idx1-ubyte"
mkfifo "$area/fifo/t10k-labels-idx1-ubyte"
expect_error "train on a dataset file that is a FIFO (no hang)" 1 \
  "fifo/t10k-labels-idx1-ubyte' is not a readable regular file" \
  "${T[@]}" --data-dir "$area/fifo" --out "$area/new"
if [ "$(id -u)" -ne 0 ]; then
  broken unreadable
  chmod 000 "$area/unreadable/t10k-labels-idx1-ubyte"
  expect_error "train on an unreadable dataset file" 1 \
    "unreadable/t10k-labels-idx1-ubyte.*\[CUDL_ERR_IO\]" \
    "${T[@]}" --data-dir "$area/unreadable" --out "$area/new"
  chmod 644 "$area/unreadable/t10k-labels-idx1-ubyte"
  mkdir -p "$area/readonly"
  chmod 555 "$area/readonly"
  expect_error "train --out in a read-only directory" 1 \
    "cannot create the run directory $area/readonly/new: Permission denied" \
    "${T[@]}" --out "$area/readonly/new"
  chmod 755 "$area/readonly"
else
  echo "skip: unreadable files and read-only directories (root reads and writes them all)"
fi
expect_error "train --out under a regular file" 1 \
  "cannot create the run directory $area/plain/run: Not a directory" \
  "${T[@]}" --out "$area/plain/run"
expect_error "train --out that is a regular file" 1 \
  "cannot write in the run directory $area/plain: Not a directory" \
  "${T[@]}" --out "$area/plain"
if [ -d /proc/self ]; then
  expect_error "train --out in /proc" 1 "cannot write in the run directory /proc/self: " \
    "${T[@]}" --out /proc/self
fi
expect_error "train --metrics under a regular file (no run directory made)" 1 \
  "cannot write the metrics file $area/plain/m.jsonl: Not a directory" \
  "${T[@]}" --out "$area/new/deeper" --metrics "$area/plain/m.jsonl"
expect_error "train --resume a missing file" 1 \
  "--resume $area/nowhere.safetensors: .*No such file" \
  "${T[@]}" --out "$area/run" --resume "$area/nowhere.safetensors"
expect_error "train --resume a torn checkpoint" 1 \
  "--resume $area/torn.safetensors: .*file holds [0-9]* \[CUDL_ERR_FILE_TRUNCATED\]" \
  "${T[@]}" --out "$area/run" --resume "$area/torn.safetensors" --metrics "$area/old.jsonl"
expect_error "train --resume a checkpoint of another model" 1 \
  "--resume $area/cnn/checkpoint.safetensors holds the weights of small-cnn (trained on mnist), not of mlp" \
  "${T[@]}" --out "$area/run" --resume "$area/cnn/checkpoint.safetensors" --metrics "$area/old.jsonl"
expect_error "train --resume a run on another dataset" 1 \
  "is a run on mnist, not on fashion-mnist" \
  "${T[@]}" "${R[@]}" --data fashion-mnist
expect_error "train --resume a weights-only file" 1 \
  "is not a cudl checkpoint.*\[CUDL_ERR_FILE_METADATA\]" \
  "${T[@]}" --out "$area/run" --resume "$area/run/model.safetensors"
expect_error "train --resume with another optimizer" 1 \
  "the run was trained with --optimizer sgd, not --optimizer adam: the checkpoint holds this optimizer's state" \
  "${T[@]}" "${R[@]}" --optimizer adam
expect_error "train --resume with another --seed" 1 \
  "the run was trained with --seed 1, not --seed 7: the data order and the --val-split images follow it" \
  "${T[@]}" "${R[@]}" --epochs 3 --seed 7
expect_error "train --override without --resume" 2 \
  "--override names what a resumed run changes: it goes with --resume" \
  "${T[@]}" --out "$area/new" --lr 0.1 --override lr
expect_error "train --override a setting not given" 2 \
  "--override lr: give the new value (and its option)" "${T[@]}" "${R[@]}" --override lr
expect_error "train --override the seed" 2 \
  "--override seed: a resumed run cannot change its --seed: the data order" \
  "${T[@]}" "${R[@]}" --seed 7 --override seed
expect_error "train --override the batch" 2 \
  "--override batch: a resumed run cannot change its --batch: an epoch's batches" \
  "${T[@]}" "${R[@]}" --batch 8 --override batch
expect_error "train --override an unknown setting" 2 \
  "--override: unknown setting 'speed' (lr, momentum," \
  "${T[@]}" "${R[@]}" --lr 0.1 --override lr,speed
expect_error "train --override dropout of a run of mlp" 1 \
  "--override dropout: --dropout is small-cnn's; --resume $area/run/checkpoint.safetensors is a run of mlp" \
  train --data mnist --data-dir "$area/data" --device cpu "${R[@]}" --dropout 0.2 --override dropout
expect_error "train --dropout with another model than small-cnn" 2 \
  "--dropout is small-cnn's; mlp has its dropout in its architecture" \
  "${T[@]}" --out "$area/new" --dropout 0.2
expect_error "train --resume with --epochs already done" 2 \
  "has finished 3 epochs already: --epochs must be more than that, not 3" \
  "${T[@]}" "${R[@]}" --epochs 3
expect_error "train --init from another model" 1 \
  "--init $area/cnn/model.safetensors holds the weights of small-cnn" \
  "${T[@]}" --out "$area/new" --init "$area/cnn/model.safetensors"
E=(--model mlp --data mnist --data-dir "$area/data" --device cpu)
expect_error "eval without --weights" 2 "needs --weights FILE" eval "${E[@]}"
expect_error "eval --batch 0" 2 "option --batch needs" \
  eval "${E[@]}" --weights "$area/run/model.safetensors" --batch 0
expect_error "eval --weights a missing file" 1 "--weights $area/nowhere.safetensors: " \
  eval "${E[@]}" --weights "$area/nowhere.safetensors"
expect_error "eval --weights a torn file" 1 \
  "--weights $area/torn.safetensors: .*\[CUDL_ERR_FILE_TRUNCATED\]" \
  eval "${E[@]}" --weights "$area/torn.safetensors"
expect_error "eval --weights of another model" 1 "holds the weights of small-cnn .*, not of mlp" \
  eval "${E[@]}" --weights "$area/cnn/model.safetensors"
expect_error "eval without the dataset" 1 "loading the test set: .*nowhere" \
  eval "${E[@]}" --weights "$area/run/model.safetensors" --data-dir "$area/nowhere"
expect_error "predict --index past the test set" 2 "the test set has 40 images" \
  predict "${E[@]}" --weights "$area/run/model.safetensors" --index 40
expect_error "predict --weights of another model" 1 "holds the weights of small-cnn" \
  predict "${E[@]}" --weights "$area/cnn/model.safetensors" --index 0
expect_error "bench train --batch 0" 2 "bad option or value: --batch '0'" \
  bench train --model mlp --batch 0
expect_error "bench train --model nonesuch" 2 "unknown model 'nonesuch'" \
  bench train --model nonesuch
expect_error "bench train --json under a regular file" 1 \
  "cannot write the JSON file $area/plain/b.json: Not a directory" bench train --device cpu \
  --model mlp --batch 2 --samples 1 --warmup 0 --min-sample-ms 0 \
  --json "$area/plain/b.json"
# The JSON file is made before anything is measured: an unwritable one
# fails at once.
expect_error "bench ops --json under a regular file" 1 \
  "cannot write the JSON file $area/plain/o.json: Not a directory" bench ops --device cpu \
  --ops relu --json "$area/plain/o.json"
expect_error "an unknown benchmark" 2 "unknown benchmark 'frob': ops, train or infer" bench frob
expect_error "an unknown command" 2 "unknown command 'frobnicate'" frobnicate
expect_error "inspect without a file" 2 "needs one FILE.safetensors" inspect

# A run killed while saving leaves the writer's temporary: the next run in
# the directory removes it (the process is gone), keeps a live process's
# and anything not named as one, and ends a metrics line the kill cut
# short.
sleep 0 &
dead=$!
wait "$dead"
touch "$run/checkpoint.safetensors.tmp.$dead.0" "$run/.cudl-write-test.$dead" \
  "$run/model.safetensors.tmp.$$.0" "$run/checkpoint.safetensors.tmp.$dead.x"
printf '{"step": 99, "ep' >>"$run.jsonl"
"$cudl" train --model mlp --data mnist --data-dir "$data" --epochs 4 --batch 16 \
  --device cpu --out "$run" --resume "$run/checkpoint.safetensors" \
  --override epochs --metrics "$run.jsonl" --log-every 1 >"$scratch/stale.out" 2>"$scratch/stale.err"
expect "resume beside a killed run's temporaries" 0 $?
expect_grep "it says it removed two" "removed 2 temporary files left in $run" "$scratch/stale.err"
[ ! -e "$run/checkpoint.safetensors.tmp.$dead.0" ] && [ ! -e "$run/.cudl-write-test.$dead" ]
expect "the dead process's temporaries are gone" 0 $?
[ -e "$run/model.safetensors.tmp.$$.0" ] && [ -e "$run/checkpoint.safetensors.tmp.$dead.x" ]
expect "a live process's temporary and a file not named as one are kept" 0 $?
rm -f "$run/model.safetensors.tmp.$$.0" "$run/checkpoint.safetensors.tmp.$dead.x"
expect_grep "the torn metrics line is ended" '^{"step": 99, "ep$' "$run.jsonl"
expect_grep "the resumed run's lines follow whole" '^{"type": "step", "step": 19, "epoch": 4, ' "$run.jsonl"

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
assert train["layout"] == "nhwc", train  # --layout auto on the CPU
assert close(train["images_per_second"], 8 / train["step_ms_median"] * 1e3), train
# --samples 2 --min-sample-ms 0: two samples of one step each, and the
# median lies within their min-max, as torch_ref.py train reports them.
assert train["steps_per_sample"] == 1 and train["steps"] == 2, train
assert 0 < train["step_ms_min"] <= train["step_ms_median"] <= train["step_ms_max"], train
assert "cudnn" not in train, train  # a CPU run names no cuDNN
# mlp: 784-256-128-10, 2 FLOPs a multiply-add, 3 passes
assert train["flops_per_image"] == 3 * 2 * (784 * 256 + 256 * 128 + 128 * 10), train
assert train["peak_memory_bytes"] > 0 and train["peak_host_memory_bytes"] >= train["peak_memory_bytes"]
assert train["peak_device_memory_bytes"] == 0
assert close(train["flop_utilisation"], train["achieved_gflops"] / train["gemm_gflops"]), train
# One process: a world of 1, no all-reduce; the job is the process.
assert train["world"] == 1 and len(train["ranks"]) == 1 and train["ranks"][0]["rank"] == 0, train
assert train["images_per_second_total"] == train["ranks"][0]["images_per_second"], train
assert close(train["images_per_second_total"], train["images_per_second"]), train
# The f32 gradient arena: each tensor rounded up to 16 floats.
assert train["grad_bytes"] == 4 * sum((n + 15) // 16 * 16 for n in
                                      (784 * 256, 256, 256 * 128, 128, 128 * 10, 10)), train
for key in ("allreduce_ms_median", "allreduce_ms_min", "allreduce_ms_max", "allreduce_share",
            "allreduce_algbw_gbps", "allreduce_busbw_gbps"):
    assert train[key] == 0 and (key not in train["ranks"][0] or train["ranks"][0][key] == 0), (key, train)
print("bench JSON consistent")
PY
expect "bench JSON follows docs/benchmarks.md" 0 $?
expect_grep "bench JSON checked" "bench JSON consistent" "$scratch/bench-json.out"
# cudl bench infer: both compiles of the same model in one run, the
# inference compile holding no gradients and less memory in all.
"$cudl" bench infer --device cpu --model small-cnn --channels 1 --size 28 \
  --batch 4 --samples 3 --warmup 1 --json "$scratch/infer.json" >"$scratch/infer.out" 2>&1
expect "bench infer" 0 $?
expect_grep "bench infer prints both compiles" "cudl-training-eval .* ms median" "$scratch/infer.out"
python3 - "$scratch/infer.json" >"$scratch/infer-json.out" 2>&1 <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
assert doc["schema"] == "cudl-bench-infer/1" and doc["model"] == "small-cnn", doc
assert doc["batch"] == 4 and doc["input_shape"] == [1, 28, 28], doc
infer, train = doc["results"]
assert infer["impl"] == "cudl-inference" and train["impl"] == "cudl-training-eval"
for r in (infer, train):
    assert 0 < r["latency_ms_min"] <= r["latency_ms_median"] <= r["latency_ms_max"], r
    m = r["model_memory"]
    assert m["total"] == sum(m[k] for k in ("parameters", "activations", "gradients",
                                           "saved_activations", "workspace")), m
    assert r["peak_memory_bytes"] >= m["total"], r
assert infer["model_memory"]["gradients"] == 0 and train["model_memory"]["gradients"] > 0
assert (infer["model_memory"]["total"] + train["model_memory"]["gradients"]
        <= train["model_memory"]["total"]), doc
assert infer["peak_memory_bytes"] < train["peak_memory_bytes"], doc
print("bench infer JSON consistent")
PY
expect "bench infer JSON" 0 $?
expect_grep "bench infer JSON checked" "bench infer JSON consistent" "$scratch/infer-json.out"
"$cudl" bench infer --batch 0 >/dev/null 2>&1
expect "bench infer with a bad value is a usage error" 2 $?
# The layout asked for is the one run and recorded; without one the CPU
# runs channels-last, as bench train does.
"$cudl" bench infer --device cpu --model small-cnn --channels 1 --size 28 --batch 2 \
  --samples 2 --warmup 0 --precision fp32 --layout nchw --json "$scratch/infer-nchw.json" \
  >"$scratch/infer-nchw.out" 2>&1
expect "bench infer --layout nchw" 0 $?
expect_grep "bench infer prints the precision and layout" "fp32, nchw, on cpu" \
  "$scratch/infer-nchw.out"
python3 - "$scratch/infer.json" "$scratch/infer-nchw.json" >"$scratch/infer-layout.out" 2>&1 <<'PY'
import json, sys
default, nchw = (json.load(open(p)) for p in sys.argv[1:3])
assert (default["precision"], default["layout"]) == ("fp32", "nhwc"), default
assert (nchw["precision"], nchw["layout"]) == ("fp32", "nchw"), nchw
print("bench infer layouts recorded")
PY
expect_grep "bench infer records the layout" "bench infer layouts recorded" \
  "$scratch/infer-layout.out"
"$cudl" bench infer --layout sideways >/dev/null 2>&1
expect "bench infer with an unknown layout is a usage error" 2 $?
"$cudl" bench infer --precision fp64 >/dev/null 2>&1
expect "bench infer with an unknown precision is a usage error" 2 $?
# benchmarks/infer_table.py joins them: a row per precision and layout.
table_py="$(dirname "$0")/../../benchmarks/infer_table.py"
python3 "$table_py" "$scratch/infer.json" "$scratch/infer-nchw.json" \
  >"$scratch/infer-table.md" 2>&1
expect "infer_table.py" 0 $?
expect_grep "infer_table.py has the channels-last row" \
  "^| cpu | small-cnn | 1x28x28 | 4 | fp32 | nhwc | [0-9]" "$scratch/infer-table.md"
expect_grep "infer_table.py has the NCHW row" \
  "^| cpu | small-cnn | 1x28x28 | 2 | fp32 | nchw | [0-9]" "$scratch/infer-table.md"
# A GPU point made up here (the CPU runs no graphs): the graphs variant has
# its column, and the ratio is to the faster cudl variant, named.
python3 - "$scratch/infer-gpu.json" <<'PY'
import json, sys
timed = lambda impl, ms: {"impl": impl, "latency_ms_median": ms, "latency_ms_min": 0.9 * ms,
                          "latency_ms_max": 1.2 * ms, "peak_memory_bytes": 1 << 20}
json.dump({"schema": "cudl-bench-infer/1", "device_name": "GPU X", "model": "resnet20",
           "batch": 1, "input_shape": [3, 32, 32], "precision": "fp32", "layout": "nchw",
           "results": [timed("cudl-inference", 1.0), timed("cudl-inference-graphs", 0.25),
                       timed("cudl-training-eval", 1.5), timed("pytorch-graphs", 0.5)]},
          open(sys.argv[1], "w"))
PY
python3 "$table_py" "$scratch/infer-gpu.json" >"$scratch/infer-gpu.md" 2>&1
expect "infer_table.py with a graphs variant" 0 $?
expect_grep "infer_table.py has the graphs column and the ratio to the faster cudl" \
  "^| GPU X | resnet20 | 3x32x32 | 1 | fp32 | nchw | 1 (0.9-1.2) | 0.25 | 1.5 | – | – | – | 0.5 | 2.00 (graphs ÷ graphs) | 1.00 |$" \
  "$scratch/infer-gpu.md"
python3 "$table_py" "$scratch/info.out" >/dev/null 2>&1
expect "infer_table.py on a file that is not JSON" 1 $?
"$cudl" bench ops --samples 0 >/dev/null 2>&1
expect "bench ops with a bad value is a usage error" 2 $?
"$cudl" bench train --model nonesuch --device cpu >/dev/null 2>"$scratch/bench-bad.err"
expect "bench train with an unknown model is a usage error" 2 $?
expect_grep "bench train names the model" "nonesuch" "$scratch/bench-bad.err"
"$cudl" bench frobnicate >/dev/null 2>&1
expect "an unknown bench is a usage error" 2 $?

finish
