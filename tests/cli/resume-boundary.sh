#!/usr/bin/env bash
# Resume is exact wherever Ctrl-C lands: before, at and after the end of an
# epoch, the interrupted and resumed run ends with the uninterrupted run's
# weights bit for bit, and between them the two runs log every step and
# every epoch once, under the right epoch. The interrupt is put exactly
# where it is wanted with CUDL_TEST_INTERRUPT_AT_STEP (tools/train.c), so
# nothing here depends on timing.
# usage: resume-boundary.sh CUDL_BINARY SCRATCH_DIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/cli/lib.sh
. "$here/lib.sh"
begin "$1" "$2"

data="$scratch/data"
mkdir -p "$data"
python3 "$here/tiny_mnist.py" "$data" 96 40 8
# 96 images in batches of 16: 6 steps an epoch, 18 in all. The small CNN
# with dropout, so that the random generator's position matters too.
T=(train --model small-cnn --dropout 0.25 --data mnist --data-dir "$data"
  --device cpu --batch 16 --epochs 3 --log-every 1)

# meta FILE KEY: a metadata value as `cudl inspect` lists it.
meta() { "$cudl" inspect "$1" 2>/dev/null | sed -n "s/^  metadata $2 = //p"; }

# Every step 1..18 logged once under its epoch, every epoch once.
logged_once() {
  python3 - "$1" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
steps = [l for l in lines if "loss" in l]
epochs = [l["epoch"] for l in lines if "train_loss" in l]
assert [l["step"] for l in steps] == list(range(1, 19)), [l["step"] for l in steps]
assert all(l["epoch"] == (l["step"] - 1) // 6 + 1 for l in steps), steps
assert epochs == [1, 2, 3], epochs
PY
}

"$cudl" "${T[@]}" --out "$scratch/ref" --metrics "$scratch/ref.jsonl" \
  >"$scratch/ref.out" 2>/dev/null
expect "the uninterrupted run" 0 $?
expect_true "it logs each step and epoch once" logged_once "$scratch/ref.jsonl"

# Interrupted after step k: within epoch 1 (5), at its end (6), after the
# first batch of epoch 2 (7), at the end of epoch 2 (12).
for k in 5 6 7 12; do
  run="$scratch/run-$k"
  CUDL_TEST_INTERRUPT_AT_STEP=$k "$cudl" "${T[@]}" --out "$run" \
    --metrics "$run.jsonl" >"$run.out" 2>"$run.err"
  expect "interrupted after step $k: exit 130" 130 $?
  if [ $((k % 6)) -eq 0 ]; then
    expect_grep "step $k ends an epoch: it is finished and saved" \
      "interrupted after epoch $((k / 6)); saved $run/checkpoint.safetensors" "$run.err"
  else
    expect_grep "step $k is within an epoch" \
      "interrupted at epoch $((k / 6 + 1)), batch $((k % 6)); saved" "$run.err"
  fi
  expect "step $k: the checkpoint's epoch" "$((k / 6))" "$(meta "$run/checkpoint.safetensors" cudl.epoch)"
  expect "step $k: the checkpoint's batch, within the epoch" "$((k % 6))" \
    "$(meta "$run/checkpoint.safetensors" cudl.batch)"
  cp "$run/checkpoint.safetensors" "$run.interrupted.safetensors"
  "$cudl" "${T[@]}" --out "$run" --metrics "$run.jsonl" \
    --resume "$run/checkpoint.safetensors" >>"$run.out" 2>>"$run.err"
  expect "step $k: the resumed run finishes" 0 $?
  expect_true "step $k: the weights are the uninterrupted run's, bit for bit" \
    cmp -s "$run/model.safetensors" "$scratch/ref/model.safetensors"
  expect_true "step $k: each step and epoch logged once, under its epoch" \
    logged_once "$run.jsonl"
  expect "step $k: each epoch's summary printed once" 3 \
    "$(grep -c '^epoch [123]/3 ' "$run.out")"
done

# A checkpoint saved after an epoch's last batch, before its evaluation (as
# a run of an earlier version could): it continues with the next epoch.
mkdir -p "$scratch/old"
python3 "$here/edit_safetensors.py" "$scratch/run-6.interrupted.safetensors" \
  "$scratch/old-format.safetensors" --meta cudl.epoch=0 --meta cudl.batch=6 \
  --drop-meta batch_size
"$cudl" "${T[@]}" --out "$scratch/old" --resume "$scratch/old-format.safetensors" \
  >"$scratch/old.out" 2>"$scratch/old.err"
expect "a checkpoint at batch 6 of 6 resumes" 0 $?
expect_grep "it says where it continues" \
  "saved after the last batch of epoch 1, before its evaluation: continuing with epoch 2" \
  "$scratch/old.err"
expect_true "and ends with the uninterrupted run's weights" \
  cmp -s "$scratch/old/model.safetensors" "$scratch/ref/model.safetensors"

# A position past the epoch, or another batch size, is refused.
mkdir -p "$area/run"
cp "$scratch/run-5.interrupted.safetensors" "$area/run/checkpoint.safetensors"
python3 "$here/edit_safetensors.py" "$scratch/run-5.interrupted.safetensors" \
  "$area/past.safetensors" --meta cudl.batch=7 --drop-meta batch_size
expect_error "a checkpoint past its epoch's end" 1 \
  "is at batch 7 of epoch 1, but an epoch has 6 batches of 16" \
  "${T[@]}" --out "$area/run" --resume "$area/past.safetensors"
expect_error "resuming with another --batch" 1 \
  "the run was trained with --batch 16, not 8" \
  "${T[@]}" --batch 8 --out "$area/run" --resume "$area/run/checkpoint.safetensors"

finish
