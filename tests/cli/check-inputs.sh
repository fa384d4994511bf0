#!/usr/bin/env bash
# What the cudl tool reads and is told, checked before anything is made:
# weights with NaN or infinities, normalisation metadata, datasets whose
# splits disagree, batch sizes against the data (memory goes by the
# batch), model names, options of another command, odd values, and the
# thread count. Each failure is one line on stderr with its exit status
# (docs/cli.md), and no file is made or changed.
# usage: check-inputs.sh CUDL_BINARY SCRATCH_DIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/cli/lib.sh
. "$here/lib.sh"
begin "$1" "$2"
data="$area/data"
mkdir -p "$data"
python3 "$here/tiny_mnist.py" "$data" 96 40 8
edit() { python3 "$here/edit_safetensors.py" "$@"; }

T=(train --model small-cnn --data mnist --data-dir "$data" --device cpu
  --batch 16 --epochs 1)
E=(--model small-cnn --data mnist --data-dir "$data" --device cpu)
"$cudl" "${T[@]}" --out "$scratch/run" >/dev/null 2>&1
expect "train the weights the cases start from" 0 $?
weights="$scratch/run/model.safetensors"
ckpt="$scratch/run/checkpoint.safetensors"

# ---- weights that are not finite ----
edit "$weights" "$area/nan.safetensors" --set fc2.weight 3 nan
edit "$weights" "$area/inf-var.safetensors" --set bn1.running_var 0 inf
edit "$ckpt" "$area/inf-state.safetensors" --set optimizer.momentum_buffer 5 inf
expect_error "eval of weights with a NaN" 1 \
  "nan.safetensors.*fc2.weight.*1 NaN.*\[CUDL_ERR_FILE_VALUE\]" \
  eval "${E[@]}" --weights "$area/nan.safetensors"
expect_error "predict with an infinite running variance" 1 \
  "inf-var.safetensors.*bn1.running_var.*\[CUDL_ERR_FILE_VALUE\]" \
  predict "${E[@]}" --weights "$area/inf-var.safetensors" --index 0
expect_error "train --init from weights with a NaN" 1 \
  "--init $area/nan.safetensors: .*fc2.weight.*\[CUDL_ERR_FILE_VALUE\]" \
  "${T[@]}" --out "$area/new" --init "$area/nan.safetensors"
expect_error "train --resume with an infinite optimizer state" 1 \
  "--resume $area/inf-state.safetensors: .*optimizer.momentum_buffer.*\[CUDL_ERR_FILE_VALUE\]" \
  "${T[@]}" --epochs 2 --override epochs --out "$area/new" \
  --resume "$area/inf-state.safetensors"

# ---- the training configuration a checkpoint records ----
edit "$ckpt" "$area/lr-abc.safetensors" --meta train.lr=abc
edit "$ckpt" "$area/augment-maybe.safetensors" --meta train.augment=maybe
edit "$ckpt" "$area/schedule-x.safetensors" --meta train.schedule=linear
edit "$ckpt" "$area/old.safetensors" --drop-meta train.lr --drop-meta train.epochs \
  --drop-meta train.optimizer --drop-meta train.momentum \
  --drop-meta train.weight-decay --drop-meta train.schedule \
  --drop-meta train.warmup --drop-meta train.clip --drop-meta train.dropout \
  --drop-meta train.augment --drop-meta train.shuffle --drop-meta train.sync-bn \
  --drop-meta train.deterministic \
  --drop-meta train.precision --drop-meta train.layout --drop-meta train.grad-wire \
  --drop-meta train.seed
expect_error "train --resume a checkpoint whose lr is not a number" 1 \
  "--resume $area/lr-abc.safetensors: its metadata \"train.lr\" is \"abc\", not a finite number above 0" \
  "${T[@]}" --out "$area/new" --resume "$area/lr-abc.safetensors"
expect_error "train --resume a checkpoint whose augment is neither on nor off" 1 \
  "its metadata \"train.augment\" is \"maybe\", not on or off" \
  "${T[@]}" --out "$area/new" --resume "$area/augment-maybe.safetensors"
edit "$ckpt" "$area/wire-x.safetensors" --meta train.grad-wire=fp8
expect_error "train --resume a checkpoint of an unknown gradient wire" 1 \
  "its metadata \"train.grad-wire\" is \"fp8\", not auto, f32, bf16 or f16" \
  "${T[@]}" --out "$area/new" --resume "$area/wire-x.safetensors"
expect_error "train --resume a checkpoint of an unknown schedule" 1 \
  "its metadata \"train.schedule\" is \"linear\", not constant, cosine or step" \
  "${T[@]}" --out "$area/new" --resume "$area/schedule-x.safetensors"
[ ! -e "$area/new" ]
expect "nothing was made for them" 0 $?
# A checkpoint of an earlier cudl (no train.* keys): the command line
# stands, and a note says so.
"$cudl" "${T[@]}" --epochs 2 --out "$area/old-run" \
  --resume "$area/old.safetensors" >/dev/null 2>"$area/old.err"
expect "train --resume a checkpoint that records no configuration" 0 $?
expect_grep "a note says the options stand" \
  "using the options as given, defaults for the others: --resume $area/old.safetensors records no training configuration (an earlier cudl wrote it)" \
  "$area/old.err"

# ---- the normalisation a weights file carries ----
edit "$weights" "$area/std0.safetensors" --meta normalize.std=0
edit "$weights" "$area/meannan.safetensors" --meta normalize.mean=nan
edit "$weights" "$area/meanabc.safetensors" --meta normalize.mean=abc
edit "$weights" "$area/meanempty.safetensors" --meta normalize.mean=
edit "$weights" "$area/meanonly.safetensors" --drop-meta normalize.std
expect_error "eval of weights normalised by std 0" 1 \
  "std0.safetensors: its normalize.std of channel 0 is 0; a standard deviation to divide by must be above 0" \
  eval "${E[@]}" --weights "$area/std0.safetensors"
expect_error "predict with std 0" 1 "normalize.std of channel 0 is 0" \
  predict "${E[@]}" --weights "$area/std0.safetensors" --index 0
for bad in meannan meanabc meanempty; do
  expect_error "eval of weights whose normalize.mean is '$bad'" 1 \
    "--weights $area/$bad.safetensors: its metadata normalize.mean is .*, not 1 to 4 finite numbers" \
    eval "${E[@]}" --weights "$area/$bad.safetensors"
done
expect_error "eval of weights with a mean and no std" 1 \
  "meanonly.safetensors: its metadata has normalize.mean but not normalize.std" \
  eval "${E[@]}" --weights "$area/meanonly.safetensors"
# Three values for one channel, the unused ones 0: as files of earlier
# versions have them.
mean=$("$cudl" inspect "$weights" | sed -n 's/^  metadata normalize.mean = //p')
std=$("$cudl" inspect "$weights" | sed -n 's/^  metadata normalize.std = //p')
edit "$weights" "$scratch/three.safetensors" --meta "normalize.mean=$mean,0,0" \
  --meta "normalize.std=$std,0,0"
"$cudl" eval "${E[@]}" --weights "$scratch/three.safetensors" >"$scratch/three.out" 2>&1
expect "weights with an earlier version's three values load" 0 $?
"$cudl" eval "${E[@]}" --weights "$weights" >"$scratch/one.out" 2>&1
expect_true "and evaluate the same" cmp -s "$scratch/three.out" "$scratch/one.out"

# ---- datasets whose splits disagree ----
mkdir -p "$area/mixed" "$scratch/ten"
python3 "$here/tiny_mnist.py" "$scratch/ten" 96 40 10
cp "$data"/train-* "$area/mixed/"
cp "$scratch/ten"/t10k-* "$area/mixed/"
expect_error "training and test images of different sizes" 1 \
  "the mnist files in $area/mixed do not match: the training images are 1x8x8 of 10 classes .*, the test images 1x10x10" \
  "${T[@]}" --data-dir "$area/mixed" --out "$area/new" --metrics "$area/new.jsonl"

# ---- memory goes by the batch, and the batch by the data ----
# Peak resident memory of a command, in MiB, against a baseline run of
# the same command with a batch the data holds.
peak() {
  python3 - "$@" <<'PY'
import resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)
PY
}
small=$(peak "$cudl" eval "${E[@]}" --weights "$weights" --batch 40)
huge=$(peak "$cudl" eval "${E[@]}" --weights "$weights" --batch 131072)
echo "peak memory: eval --batch 40: $small MiB, --batch 131072: $huge MiB"
expect_true "eval --batch 131072 on 40 images takes no more than --batch 40 (+64 MiB)" \
  test "$huge" -le $((small + 64))
"$cudl" eval "${E[@]}" --weights "$weights" --batch 131072 >"$scratch/big.out" 2>&1
expect "and it evaluates" 0 $?
expect_true "to the same figures" cmp -s "$scratch/big.out" "$scratch/one.out"
expect_error "train --batch larger than the training set" 2 \
  "--batch 131072 is more than the 96 training images: an epoch would have no whole batch" \
  "${T[@]}" --batch 131072 --out "$area/new"
refused=$(peak "$cudl" "${T[@]}" --batch 131072 --out "$area/new")
echo "peak memory: train refusing --batch 131072: $refused MiB"
expect_true "refusing it allocates nothing of its size (+64 MiB)" \
  test "$refused" -le $((small + 64))
# ResNet-20 in batches of 65536 needs about 130 GiB: refused at once, by
# the context's memory limit, before any of it is taken (it used to grow
# until the kernel's out-of-memory killer ended it).
expect_error "a model too large for the memory there is" 1 \
  "resnet20, batch 65536: cudl_model_compile: batches of 65536 need at least .* MiB .* more than the context's memory limit .*\[CUDL_ERR_OUT_OF_MEMORY\]" \
  bench train --device cpu --model resnet20 --batch 65536 --samples 1 \
  --warmup 0 --min-sample-ms 0
oom=$(peak "$cudl" bench train --device cpu --model resnet20 --batch 65536 \
  --samples 1 --warmup 0 --min-sample-ms 0)
echo "peak memory: bench train refusing resnet20 in batches of 65536: $oom MiB"
expect_true "refusing it takes no more than a small eval (+64 MiB)" \
  test "$oom" -le $((small + 64))

# ---- model names ----
for bad in resnet21 plain21 resnet2 resnet1208; do
  expect_error "--model $bad" 2 \
    "--model $bad: the depth of a ResNet or plain net is 6n + 2 from 8 to 1202" \
    "${T[@]}" --model "$bad" --out "$area/new"
done
expect_error "bench train --model resnet21" 2 "6n + 2 from 8 to 1202" \
  bench train --model resnet21
# resnet1202 is a name the zoo builds: the next check is the dataset's.
expect_error "--model resnet1202 is accepted" 2 "unknown dataset 'nonesuch'" \
  "${T[@]}" --model resnet1202 --data nonesuch --out "$area/new"

# ---- options of another command, empty and odd values ----
expect_error "eval --resume" 2 "--resume is an option of cudl train, not of cudl eval" \
  eval "${E[@]}" --weights "$weights" --resume "$area/nowhere"
expect_error "eval --epochs" 2 "--epochs is an option of cudl train, not of cudl eval" \
  eval "${E[@]}" --weights "$weights" --epochs 3
expect_error "predict --metrics" 2 "--metrics is an option of cudl train, not of cudl predict" \
  predict "${E[@]}" --weights "$weights" --index 0 --metrics "$area/m.jsonl"
expect_error "train --index" 2 "--index is an option of cudl predict, not of cudl train" \
  "${T[@]}" --index 3 --out "$area/new"
expect_error "predict without --index" 2 "needs --index I" \
  predict "${E[@]}" --weights "$weights"
expect_error "--data-dir ''" 2 "option --data-dir needs a value, not ''" \
  "${T[@]}" --data-dir "" --out "$area/new"
expect_error "--out ''" 2 "option --out needs a value, not ''" "${T[@]}" --out ""
expect_error "a value with a newline stays on one line" 2 \
  "unknown model 'bad\\\\nname'" "${T[@]}" --model $'bad\nname' --out "$area/new"
expect_error "bench ops --ops frob" 2 "--ops: unknown op 'frob'" \
  bench ops --device cpu --ops frob
expect_error "bench ops --ops ''" 2 "option --ops needs a value, not ''\|--ops '' has an empty name" \
  bench ops --device cpu --ops ""
expect_error "bench ops --ops relu," 2 "--ops 'relu,' has an empty name" \
  bench ops --device cpu --ops relu,
expect_error "bench ops --ops copy without --sweep" 2 "copy is timed with --sweep only" \
  bench ops --device cpu --ops copy
"$cudl" inspect --help >"$scratch/help.out" 2>&1
expect "inspect --help" 0 $?
expect_grep "inspect --help prints the usage" "^usage: cudl inspect FILE.safetensors" \
  "$scratch/help.out"
"$cudl" info >"$scratch/info.out" 2>&1
if grep -q "no GPU: " "$scratch/info.out"; then
  expect_error "--device cuda without a GPU: one line, with the reason" 1 \
    "--device cuda: cannot create a CUDA context: .*\[CUDL_ERR_NO_DEVICE\]" \
    "${T[@]}" --device cuda --out "$area/new"
else
  echo "skip: --device cuda without a GPU (this machine has one)"
fi

# ---- threads: more than the CPUs is capped, not a crash ----
OMP_NUM_THREADS=100000 "$cudl" "${T[@]}" --out "$scratch/threads" \
  >/dev/null 2>"$scratch/threads.err"
expect "OMP_NUM_THREADS=100000 trains" 0 $?
expect_grep "saying it uses the CPUs there are" \
  "OMP_NUM_THREADS asks for 100000 threads, but this process may run on [0-9]* CPUs: using" \
  "$scratch/threads.err"

finish
