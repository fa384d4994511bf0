#!/usr/bin/env bash
# A new user's run on their own images, with nothing but files: train on a
# folder (make_images folder writes train/ and test/ of three classes, gray
# PNGs and RGB JPEGs, with a corrupt, a truncated and a text file) with a
# model file; the unreadable files skipped and named; eval, predict of one
# image file with class names, and --resume from the weights or the
# checkpoint alone; one tree split by --val-split; the same runs streamed
# from disk (--cache-limit); --strict; and the errors of each new option,
# one line each.
# usage: check-folder-run.sh CUDL_BINARY MAKE_IMAGES_BINARY SCRATCH_DIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/cli/lib.sh
. "$here/lib.sh"
begin "$1" "$3"
make_images=$2
folder="$area/photos"
"$make_images" folder "$folder"
expect "make_images writes the folder" 0 $?
net="$area/net.json"
cat >"$net" <<'JSON'
{
  "input_shape": [3, 8, 8],
  "layers": [
    {"kind": "conv2d", "name": "conv", "out_channels": 4, "kernel_size": 3, "padding": 1},
    {"kind": "silu"},
    {"kind": "max_pool2d", "kernel_size": 3, "stride": 2, "ceil_mode": true},
    {"kind": "flatten"},
    {"kind": "linear", "name": "fc", "out_features": 3}
  ]
}
JSON
run="$area/run"
common=(--device cpu --batch 5 --lr 0.04 --momentum 0.8 --seed 3)

"$cudl" train --data "folder:$folder" --model-file "$net" --epochs 2 \
  --out "$run" --metrics "$area/m.jsonl" "${common[@]}" \
  >"$scratch/train.out" 2>"$scratch/train.err"
expect "train on a folder with a model file" 0 $?
cat "$scratch/train.out" "$scratch/train.err"
expect_grep "the corrupt file named" "^cudl: warning: skipped '.*/train/circle/corrupt.png': PNG" "$scratch/train.err"
expect_grep "the truncated file named" "^cudl: warning: skipped '.*/train/circle/truncated.png': " "$scratch/train.err"
expect_grep "the text file named" "^cudl: warning: skipped '.*/train/square/notes.txt': not a PNG or JPEG" "$scratch/train.err"
expect_grep "their count" "skipped 3 unreadable files of .*/train" "$scratch/train.err"
expect_grep "the test set at the end" "^final test accuracy " "$scratch/train.out"
expect_grep "the run line names the folder" '"name": "folder:' "$area/m.jsonl"
expect_grep "the run line counts its images" '"train_images": 18, "val_images": 0, "test_images": 9, "classes": 3, "image_shape": \[3, 8, 8\]' "$area/m.jsonl"

"$cudl" inspect "$run/model.safetensors" >"$scratch/inspect.out" 2>&1
expect "inspect the weights" 0 $?
expect_grep "the weights hold their architecture" 'cudl.architecture' "$scratch/inspect.out"
expect_grep "and the class names" 'classes.*\["circle","square","triangle"\]' "$scratch/inspect.out"
expect_grep "and how they were trained" 'metadata train.lr = 0.04$' "$scratch/inspect.out"
expect_grep "in which precision" 'metadata train.precision = fp32$' "$scratch/inspect.out"
expect "the whole training configuration and the world" 18 "$(grep -c 'metadata train\.' "$scratch/inspect.out")"

# Eval and predict with the weights file alone.
"$cudl" eval --weights "$run/model.safetensors" --device cpu \
  >"$scratch/eval.out" 2>"$scratch/eval.err"
expect "eval with only the weights" 0 $?
cat "$scratch/eval.out"
expect_grep "eval names the model file and the folder" "^net on folder:.*photos test set (9 images): loss [0-9.]*  accuracy [0-9.]*$" "$scratch/eval.out"
acc_train=$(sed -n 's/^final test accuracy \([0-9.]*\) .*/\1/p' "$scratch/train.out")
acc_eval=$(sed -n 's/.*accuracy \([0-9.]*\)$/\1/p' "$scratch/eval.out")
expect_true "eval's accuracy is training's final test accuracy ($acc_eval, $acc_train)" \
  test "$acc_train" = "$acc_eval"

image=$(ls "$folder"/test/square/*.png | head -1)
"$cudl" predict --weights "$run/model.safetensors" --image "$image" --top 3 \
  --device cpu >"$scratch/predict.out" 2>"$scratch/predict.err"
expect "predict an image file" 0 $?
cat "$scratch/predict.out"
expect_grep "the first class by name" "^$image: class \(circle\|square\|triangle\) (p = 0\.[0-9]*)$" "$scratch/predict.out"
expect_grep "the third" "^  3\. \(circle\|square\|triangle\) (p = 0\.[0-9]*)$" "$scratch/predict.out"
expect "three lines" 3 "$(wc -l <"$scratch/predict.out")"
"$cudl" predict --weights "$run/model.safetensors" --index 0 --count 2 \
  --device cpu >"$scratch/predict-index.out" 2>&1
expect "predict test images of the folder by index" 0 $?
expect_grep "the label by name" "^image 1: class [a-z]* (p = .*), label [a-z]*$" "$scratch/predict-index.out"

# Streamed from disk (--cache-limit 0): the same run byte for byte (the
# same losses in the metrics, the same weights), and notes that say so.
losses() { grep -o '"[a-z]*_\(loss\|accuracy\)": [0-9.e+-]*' "$1"; }
"$cudl" train --data "folder:$folder" --model-file "$net" --epochs 2 \
  --out "$area/streamed" --metrics "$area/ms.jsonl" --cache-limit 0 "${common[@]}" \
  >"$scratch/streamed.out" 2>"$scratch/streamed.err"
expect "train on a streamed folder" 0 $?
expect_grep "the note for train/" "^cudl train: .*/train is streamed (--cache-limit 0): its images (3.9 KiB decoded) are decoded from disk for every batch$" "$scratch/streamed.err"
expect_grep "the note for test/" "^cudl train: .*/test is streamed (--cache-limit 0)" "$scratch/streamed.err"
expect_true "the losses in the metrics are there" test "$(losses "$area/ms.jsonl" | wc -l)" -ge 6
expect_true "the same losses as the cached run" cmp -s <(losses "$area/m.jsonl") <(losses "$area/ms.jsonl")
expect_true "the same weights as the cached run" cmp -s "$run/model.safetensors" "$area/streamed/model.safetensors"
if grep -q "is streamed" "$scratch/train.err"; then
  echo "FAIL: the cached run said it was streamed"; failures=$((failures + 1))
fi
# A limit below the folder's size streams it too, and says by how much.
"$cudl" train --data "folder:$folder" --model-file "$net" --epochs 1 \
  --out "$area/limited" --cache-limit 1K "${common[@]}" >/dev/null 2>"$scratch/limited.err"
expect "train with a cache limit below the folder" 0 $?
expect_grep "the note gives the size and the limit" "^cudl train: .*/train is streamed: its 21 files decode to 3.9 KiB, above the cache limit of 1.0 KiB (--cache-limit); its images are decoded from disk for every batch$" "$scratch/limited.err"
# Predict reads a streamed test set's images from their files.
"$cudl" predict --weights "$run/model.safetensors" --index 0 --count 2 \
  --cache-limit 0 --device cpu >"$scratch/predict-streamed.out" 2>"$scratch/predict-streamed.err"
expect "predict by index on a streamed folder" 0 $?
expect_true "the same predictions" cmp -s <(grep "^image" "$scratch/predict-index.out") "$scratch/predict-streamed.out"
expect_grep "a streamed test set said" "/test is streamed (--cache-limit 0)" "$scratch/predict-streamed.err"
expect_error "a bad --cache-limit" 2 "--cache-limit needs a size in bytes" \
  train --data "folder:$folder" --cache-limit 12X "${common[@]}"
expect_error "--cache-limit on a named dataset" 2 "--cache-limit bounds the memory of a folder" \
  train --cache-limit 1G "${common[@]}"

# Resume with the checkpoint alone: the model, the folder, the batch, the
# training options (--lr, --seed, --epochs) and the run directory are its
# own, so the same run interrupted in its second epoch ends with the
# uninterrupted run's weights.
CUDL_TEST_INTERRUPT_AT_STEP=4 "$cudl" train --data "folder:$folder" \
  --model-file "$net" --epochs 2 --out "$area/int" "${common[@]}" \
  >/dev/null 2>&1
expect "the same run interrupted after step 4" 130 $?
"$cudl" train --resume "$area/int/checkpoint.safetensors" --device cpu \
  >"$scratch/int.out" 2>"$scratch/int.err"
expect "resume with only the checkpoint" 0 $?
cat "$scratch/int.err"
expect_grep "it went on in epoch 2" "^epoch 2/2" "$scratch/int.out"
expect_true "the weights are the uninterrupted run's" \
  cmp -s "$area/int/model.safetensors" "$run/model.safetensors"
# Training longer than the run began is a change: named with --override.
cp "$run/checkpoint.safetensors" "$area/before.safetensors"
expect_error "a longer run without --override" 1 \
  "the run was trained with --epochs 2, not --epochs 3; .*add --override epochs" \
  train --resume "$run/checkpoint.safetensors" --epochs 3 --device cpu
"$cudl" train --resume "$run/checkpoint.safetensors" --epochs 3 \
  --override epochs --device cpu >"$scratch/resume.out" 2>"$scratch/resume.err"
expect "resume for a third epoch with --override epochs" 0 $?
cat "$scratch/resume.err"
expect_grep "the third epoch ran" "^epoch 3/3" "$scratch/resume.out"
expect_true "in the checkpoint's directory" \
  test "$(cmp -s "$run/checkpoint.safetensors" "$area/before.safetensors"; echo $?)" = 1
expect_true "its weights too" test "$run/model.safetensors" -nt "$area/before.safetensors"

# --strict: the first unreadable file ends the run before anything is made.
expect_error "--strict names the first bad file" 1 \
  "train/circle/corrupt.png" \
  train --data "folder:$folder" --model-file "$net" --strict --out "$area/strict" "${common[@]}"
expect_true "--strict made no run directory" test ! -e "$area/strict"

# One tree of classes: --val-split holds out validation, no test set.
expect_error "one tree without --val-split" 2 \
  "one tree of classes .*give --val-split" \
  train --data "folder:$folder/test" --model-file "$net" --out "$area/tree" "${common[@]}"
"$cudl" train --data "folder:$folder/test" --model-file "$net" --val-split 0.34 \
  --epochs 1 --batch 3 --out "$area/tree" --device cpu \
  >"$scratch/tree.out" 2>"$scratch/tree.err"
expect "one tree with --val-split" 0 $?
cat "$scratch/tree.out"
expect_grep "no test set" "^done after 1 epoch (no test set)" "$scratch/tree.out"
expect_true "best.safetensors by validation" test -s "$area/tree/best.safetensors"
"$cudl" train --resume "$area/tree/checkpoint.safetensors" --epochs 2 \
  --override epochs --device cpu >"$scratch/tree2.out" 2>"$scratch/tree2.err"
expect "resume the one tree with only the checkpoint (its --val-split, --batch)" 0 $?
cat "$scratch/tree2.err"
expect_grep "its second epoch, validated" "^epoch 2/2 .*val acc" "$scratch/tree2.out"
# The split of a streamed tree (its parts, their statistics) trains as the
# cached one, with augmentation.
for mode in cached streamed; do
  limit=()
  [ "$mode" = streamed ] && limit=(--cache-limit 0)
  "$cudl" train --data "folder:$folder/test" --model-file "$net" --val-split 0.34 \
    --epochs 2 --batch 3 --augment --out "$area/tree-$mode" \
    --metrics "$area/tree-$mode.jsonl" --device cpu "${limit[@]}" >/dev/null 2>&1
  expect "one tree with --val-split, $mode" 0 $?
done
expect_true "a streamed split trains as the cached one" \
  cmp -s <(losses "$area/tree-cached.jsonl") <(losses "$area/tree-streamed.jsonl")
expect_true "with validation losses" grep -q '"val_loss"' "$area/tree-streamed.jsonl"

# --size resizes; a model for another size or class count is refused.
"$cudl" train --data "folder:$folder" --size 12x10 --model small-cnn --epochs 1 \
  --out "$area/sized" "${common[@]}" >"$scratch/sized.out" 2>&1
expect "--size 12x10 with a zoo model" 0 $?
expect_error "--size other than the model file's input" 1 \
  "net.json reads 3x8x8 images; folder:.* has 3x12x10" \
  train --data "folder:$folder" --size 12x10 --model-file "$net" --out "$area/other" "${common[@]}"
# A model for gray images reads the folder in gray.
sed 's/"input_shape": \[3, 8, 8\]/"input_shape": [1, 8, 8]/' "$net" >"$area/gray.json"
"$cudl" train --data "folder:$folder" --model-file "$area/gray.json" --epochs 1 \
  --out "$area/gray" --metrics "$area/gray.jsonl" "${common[@]}" >/dev/null 2>&1
expect "a model file for gray images" 0 $?
expect_grep "read in gray" '"image_shape": \[1, 8, 8\]' "$area/gray.jsonl"
sed 's/"out_features": 3/"out_features": 5/' "$net" >"$area/five.json"
expect_error "a model file with 5 outputs for 3 classes" 1 \
  "has 5 outputs; folder:.* has 3 classes" \
  train --data "folder:$folder" --model-file "$area/five.json" --out "$area/five" "${common[@]}"
expect_error "--model and --model-file" 2 "exclude each other" \
  train --model small-cnn --model-file "$net" "${common[@]}"
expect_error "--size on a named dataset" 2 "--size resizes the images of a folder" \
  train --size 8x8 "${common[@]}"
expect_error "a bad --size" 2 "--size needs HxW" \
  train --data "folder:$folder" --size 8 "${common[@]}"
expect_error "folder: without a path" 2 "needs a PATH" \
  train --data folder: "${common[@]}"
expect_error "a missing folder" 1 "--data folder:$area/nothing" \
  train --data "folder:$area/nothing" --model-file "$net" "${common[@]}"
expect_error "--image that is not an image" 1 "--image .*notes.txt" \
  predict --weights "$run/model.safetensors" --image "$folder/train/square/notes.txt" --device cpu
expect_error "--index and --image" 2 "exclude each other" \
  predict --weights "$run/model.safetensors" --image "$image" --index 0 --device cpu
# Weights whose metadata is broken: one line each, naming the file and key.
edit() { python3 "$here/edit_safetensors.py" "$@"; }
edit "$run/model.safetensors" "$area/classes-num.safetensors" --meta 'classes=[1,2,3]'
expect_error "class names that are not strings" 1 \
  'classes-num.safetensors: its metadata "classes"\[0\] is not a class name' \
  predict --weights "$area/classes-num.safetensors" --image "$image" --device cpu
edit "$run/model.safetensors" "$area/classes-obj.safetensors" --meta 'classes={}'
expect_error "class names that are not an array" 1 \
  'classes-obj.safetensors: its metadata "classes" is not a JSON array' \
  predict --weights "$area/classes-obj.safetensors" --image "$image" --device cpu
edit "$run/model.safetensors" "$area/classes-two.safetensors" --meta 'classes=["a","b"]'
expect_error "two class names for three outputs" 1 \
  'lists 2 class names for 3 outputs' \
  predict --weights "$area/classes-two.safetensors" --image "$image" --device cpu
edit "$run/model.safetensors" "$area/arch-bad.safetensors" --meta 'cudl.architecture={"version": 1'
expect_error "a broken architecture" 1 \
  'arch-bad.safetensors: cudl.architecture:1:[0-9]*: ' \
  eval --weights "$area/arch-bad.safetensors" --device cpu
edit "$run/model.safetensors" "$area/no-arch.safetensors" --drop-meta cudl.architecture \
  --drop-meta model
expect_error "--image with weights that do not say their model" 1 \
  '--image needs the model: --weights .*no-arch.safetensors has no architecture' \
  predict --weights "$area/no-arch.safetensors" --image "$image" --device cpu
printf '{"input_shape": [3, 8, 8],' >"$area/net-bad.json"
expect_error "a broken model file" 1 "net-bad.json:1:[0-9]*: " \
  train --data "folder:$folder" --model-file "$area/net-bad.json" "${common[@]}"
finish
