#!/usr/bin/env bash
# The files the cudl tool writes (docs/cli.md, "Files it writes"): a device,
# a FIFO or a descriptor is written in place and never replaced; a link is
# followed and kept; a directory or socket is refused; an output that is
# also an input or another output is refused; a failed write fails the run
# in one line and leaves no torn line; a run that fails before its first
# checkpoint leaves no directory it made.
# usage: check-outputs.sh CUDL_BINARY SCRATCH_DIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/cli/lib.sh
. "$here/lib.sh"
mounts=()
cleanup() {
  local m
  for m in "${mounts[@]}"; do umount "$m" 2>/dev/null; done
}
trap cleanup EXIT
for m in "$2"/tiny-*; do umount "$m" 2>/dev/null; done # a killed run's
begin "$1" "$2"

# A tmpfs of KIB kibibytes at DIR (root only; 1 when this machine cannot).
tiny_fs() {
  mkdir -p "$1"
  mount -t tmpfs -o "size=$2k" tmpfs "$1" 2>/dev/null || return 1
  mounts+=("$1")
}

data="$scratch/data"
mkdir -p "$data"
python3 "$here/tiny_mnist.py" "$data" 96 40 8
T=(train --model mlp --data mnist --data-dir "$data" --device cpu --batch 16
  --epochs 1)
B=(bench ops --device cpu --ops relu --samples 1 --warmup 0 --min-sample-ms 0
  --max-seconds 0.01)
json_ok() { python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$1"; }
lines_ok() { # every line of FILE is JSON, and it ends with a newline
  python3 - "$1" <<'PY'
import json, sys
data = open(sys.argv[1]).read()
assert data.endswith("\n"), "no newline at the end: %r" % data[-40:]
lines = data.splitlines()
assert lines, "no lines"
for line in lines:
    json.loads(line)
PY
}

# ---- devices, FIFOs, descriptors and links are written through ----
if mknod "$scratch/null" c 1 3 2>/dev/null; then
  # A device node of the null device's numbers, in the scratch directory: a
  # tool that replaced it would replace only this one.
  "$cudl" "${B[@]}" --json "$scratch/null" >/dev/null 2>&1
  expect "bench --json to a character device" 0 $?
  expect_true "the device is still a device" test -c "$scratch/null"
  "$cudl" "${T[@]}" --out "$scratch/r-null" --metrics "$scratch/null" \
    --log-every 1 >/dev/null 2>&1
  expect "train --metrics to a character device" 0 $?
  expect_true "the device is still a device (metrics)" test -c "$scratch/null"
else
  echo "skip: character devices (mknod needs root)"
fi
mkfifo "$scratch/fifo"
timeout 120 cat "$scratch/fifo" >"$scratch/fifo.got" &
reader=$!
fifo_reader_ready "$reader"
timeout 60 "$cudl" "${B[@]}" --json "$scratch/fifo" >/dev/null 2>&1
expect "bench --json to a FIFO with a reader" 0 $?
wait "$reader"
expect_true "the reader got the JSON" json_ok "$scratch/fifo.got"
expect_true "the FIFO is still a FIFO" test -p "$scratch/fifo"
timeout 120 cat "$scratch/fifo" >"$scratch/fifo.lines" &
reader=$!
fifo_reader_ready "$reader"
timeout 60 "$cudl" "${T[@]}" --out "$scratch/r-fifo" --metrics "$scratch/fifo" \
  --log-every 1 >/dev/null 2>&1
expect "train --metrics to a FIFO with a reader" 0 $?
wait "$reader"
expect_true "the reader got whole JSON lines" lines_ok "$scratch/fifo.lines"
expect_true "the FIFO is still a FIFO (metrics)" test -p "$scratch/fifo"
# A reader that goes away: the write fails (EPIPE), the run stops in one
# line with its checkpoint, instead of being killed by SIGPIPE. (The run
# would go on for ever: it stops at the first write after the reader left,
# whenever the scheduler lets that be.)
timeout 120 head -n 1 "$scratch/fifo" >/dev/null &
reader=$!
fifo_reader_ready "$reader"
timeout 60 "$cudl" "${T[@]}" --epochs 100000 --out "$scratch/r-gone" \
  --metrics "$scratch/fifo" --log-every 1 >/dev/null 2>"$scratch/gone.err"
expect "train --metrics to a FIFO whose reader leaves fails" 1 $?
wait "$reader"
error_lines "$scratch/gone.err" >"$scratch/gone.line"
expect_grep "in one line, naming the reason" \
  "^cudl train: writing the metrics file $scratch/fifo failed: Broken pipe. Stopping;" \
  "$scratch/gone.line"
mkfifo "$area/lonely"
expect_error "bench --json to a FIFO nobody reads (no hang)" 1 \
  "cannot write the JSON file $area/lonely: no process is reading the FIFO" \
  "${B[@]}" --json "$area/lonely"
echo '{"old": true}' >"$scratch/target.json"
ln -s target.json "$scratch/link.json"
"$cudl" "${B[@]}" --json "$scratch/link.json" >/dev/null 2>&1
expect "bench --json through a symbolic link" 0 $?
expect_true "the link is still a link" test -L "$scratch/link.json"
expect_grep "the file it names has the results" '"schema": "cudl-bench-ops/1"' \
  "$scratch/target.json"
# A link to a descriptor: the JSON goes to what standard output has open,
# after the table, and the link stays.
ln -s /proc/self/fd/1 "$scratch/fd1"
"$cudl" "${B[@]}" --json "$scratch/fd1" >"$scratch/fd1.out" 2>&1
expect "bench --json to a link to standard output" 0 $?
expect_true "the link is still a link (descriptor)" test -L "$scratch/fd1"
expect_grep "standard output has the table" "^ceilings: copy" "$scratch/fd1.out"
expect_grep "and the JSON after it" '"schema": "cudl-bench-ops/1"' "$scratch/fd1.out"
mkdir "$area/dir.json"
expect_error "bench --json to a directory" 1 \
  "cannot write the JSON file $area/dir.json: it is a directory" \
  "${B[@]}" --json "$area/dir.json"
python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' \
  "$area/sock"
expect_error "train --metrics to a socket" 1 \
  "cannot write the metrics file $area/sock: it is a socket" \
  "${T[@]}" --out "$area/new" --metrics "$area/sock"
ln -s nowhere "$area/dangling"
expect_error "bench --json to a link to nothing" 1 "symbolic link to nothing" \
  "${B[@]}" --json "$area/dangling"
mkdir -p "$area/odd"
mkfifo "$area/odd/checkpoint.safetensors"
expect_error "train --out where the checkpoint would go is a FIFO" 1 \
  "$area/odd/checkpoint.safetensors is in the way: it is not a regular file" \
  "${T[@]}" --out "$area/odd"
rm -f "$area/odd/checkpoint.safetensors" && rmdir "$area/odd"

# ---- an output that is an input or another output ----
base="$scratch/base"
"$cudl" "${T[@]}" --out "$base" --epochs 1 >/dev/null 2>&1
expect "train a run to resume" 0 $?
cp -r "$base" "$area/base"
ln "$area/base/checkpoint.safetensors" "$area/hardlink"
R=(--out "$area/base" --resume "$area/base/checkpoint.safetensors" --epochs 2
  --override epochs)
expect_error "--metrics is the checkpoint being resumed" 2 \
  "metrics $area/base/checkpoint.safetensors is the run's checkpoint" \
  "${T[@]}" "${R[@]}" --metrics "$area/base/checkpoint.safetensors"
expect_error "--metrics is a hard link to the checkpoint" 2 \
  "metrics $area/hardlink is the run's checkpoint" \
  "${T[@]}" "${R[@]}" --metrics "$area/hardlink"
expect_error "--metrics is the checkpoint a new run will write" 2 \
  "metrics $area/new/checkpoint.safetensors is the run's checkpoint" \
  "${T[@]}" --out "$area/new" --metrics "$area/new/checkpoint.safetensors"
expect_error "--metrics is the weights file, spelled otherwise" 2 \
  "is the run's weights file" \
  "${T[@]}" --out "$area/new" --metrics "$area/new/../new/./model.safetensors"
cp "$base/model.safetensors" "$area/init.safetensors"
expect_error "--metrics is the --init file" 2 "is the weights --init reads" \
  "${T[@]}" --out "$area/new" --init "$area/init.safetensors" \
  --metrics "$area/init.safetensors"
cp -r "$data" "$area/data"
expect_error "--metrics is a file of the dataset" 2 \
  "metrics $area/data/t10k-labels-idx1-ubyte is a file of the test set" \
  "${T[@]}" --data-dir "$area/data" --out "$area/new" \
  --metrics "$area/data/t10k-labels-idx1-ubyte"

# ---- failed writes ----
expect_error "train --metrics /dev/full" 1 \
  "writing the metrics file /dev/full failed: No space left on device. Stopping; no checkpoint was saved yet" \
  "${T[@]}" --out "$area/new/run" --metrics /dev/full --log-every 1
if [ "$(id -u)" -eq 0 ]; then
  # Root may open it; the write then fails.
  expect_error "train --metrics /proc/version" 1 \
    "writing the metrics file /proc/version failed: .* Stopping; no checkpoint was saved yet\|cannot write the metrics file /proc/version" \
    "${T[@]}" --out "$area/new/run" --metrics /proc/version --log-every 1
fi
# Standard output is a file written too: a full one fails the command.
"$cudl" "${B[@]}" >/dev/full 2>"$scratch/stdout.err"
expect "bench ops with its standard output on /dev/full fails" 1 $?
expect_grep "saying so" "^cudl bench ops: writing the standard output failed: No space left on device" \
  "$scratch/stdout.err"
if tiny_fs "$scratch/tiny-metrics" 8; then
  # About 1 KiB a step: the second epoch fills the 8 KiB.
  "$cudl" "${T[@]}" --epochs 3 --out "$scratch/r-full" \
    --metrics "$scratch/tiny-metrics/m.jsonl" --diagnostics 1 \
    >/dev/null 2>"$scratch/full.err"
  expect "metrics on a full file system fail the run" 1 $?
  error_lines "$scratch/full.err" >"$scratch/full.line"
  expect "in one line" 1 "$(wc -l <"$scratch/full.line")"
  expect_grep "naming the file and the reason, and the checkpoint kept" \
    "writing the metrics file $scratch/tiny-metrics/m.jsonl failed: No space left on device. Stopping; the last checkpoint in $scratch/r-full is kept" \
    "$scratch/full.line"
  expect_true "the lines written are whole, the last one included" \
    lines_ok "$scratch/tiny-metrics/m.jsonl"
  expect_true "the first epoch's checkpoint is there" \
    test -f "$scratch/r-full/checkpoint.safetensors"
else
  echo "skip: a full file system (mounting a tmpfs needs root)"
fi

# ---- a run that fails before its first checkpoint leaves nothing ----
expect_error "a run diverging in its first epoch" 1 \
  "the loss is .* Stopping; no checkpoint was saved yet" \
  "${T[@]}" --lr 1e30 --out "$area/new/deeper/run" --metrics "$area/new.jsonl"
if tiny_fs "$scratch/tiny-out" 8; then
  "$cudl" "${T[@]}" --out "$scratch/tiny-out/run" >/dev/null 2>"$scratch/room.err"
  expect "--out on a full file system fails before training" 1 $?
  expect_grep "it says there is no room" \
    "no room in the run directory $scratch/tiny-out/run for the first checkpoint (.* MiB): No space left on device" \
    "$scratch/room.err"
  expect "nothing is left on it" 0 "$(find "$scratch/tiny-out" -mindepth 1 | wc -l)"
  if grep -q "^epoch" "$scratch/room.err"; then
    echo "FAIL: it trained first"
    failures=$((failures + 1))
  fi
else
  echo "skip: --out on a full file system (mounting a tmpfs needs root)"
fi

finish
