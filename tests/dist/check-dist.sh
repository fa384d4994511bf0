#!/usr/bin/env bash
# check-dist.sh CUDL BUILD SCRATCH: data-parallel `cudl train` over MPI
# ranks on this machine's CPUs (docs/distributed.md). BUILD is "mpi" when
# the library has its MPI backend; without it, or without mpirun, the test
# is skipped (exit 77, ctest's SKIP_RETURN_CODE) saying why.
#
# Equivalence: N ranks of per-rank batch B end a run with the weights of
# one process with batch N*B, within 1e-5 * (1 + |w|) per weight. The two
# differ only in the order of the additions in the gradient's batch sum
# (each rank sums its rows, then the ranks' means are averaged), a few
# float ulps per step that the run's 12 SGD steps carry on; the bound is
# two orders above the differences measured (largest about 1e-7) and four
# below what a different batch gives (checked: one process of batch B is
# outside it). The MLP has no batch norm, whose per-rank statistics are
# the one intended difference (--sync-bn below).
set -u
. "$(dirname "$0")/../cli/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)

if [ "$2" != mpi ]; then
  # What such a build does when a launcher starts it: one line saying what
  # is missing (a launcher's environment, faked: there may be no mpirun).
  begin "$1" "$3"
  OMPI_COMM_WORLD_RANK=0 OMPI_COMM_WORLD_SIZE=2 "$cudl" train --model mlp \
    --data mnist --data-dir "$scratch/none" --device cpu \
    >"$scratch/nompi.out" 2>"$scratch/nompi.err"
  expect "a build without MPI refuses a launcher's rank" 1 $?
  expect_grep "saying what is missing" "built without MPI: install Open MPI" \
    "$scratch/nompi.err"
  [ "$failures" -eq 0 ] || exit 1
  echo "SKIP: this cudl was built without MPI (Debian: libopenmpi-dev; CMake -DCUDL_MPI=ON)"
  exit 77
fi
if ! command -v mpirun >/dev/null 2>&1; then
  echo "SKIP: no mpirun on PATH (Debian: openmpi-bin)"
  exit 77
fi
begin "$1" "$3"

mpi=(mpirun)
if mpirun --version 2>&1 | grep -q "Open MPI"; then
  # More ranks than cores (2 here), no binding (the ranks share them), and
  # root allowed (CI runs as root; Open MPI refuses it otherwise).
  mpi+=(--oversubscribe --bind-to none)
  if [ "$(id -u)" -eq 0 ]; then mpi+=(--allow-run-as-root); fi
  # One machine: shared memory only, without the cross-memory attach that
  # containers forbid (ptrace).
  export OMPI_MCA_btl=self,vader
  export OMPI_MCA_btl_vader_single_copy_mechanism=none
fi
export OMP_NUM_THREADS=1
# Under AddressSanitizer, Open MPI's runtime keeps what MPI_Init allocated
# to the end: suppressed by library (lsan-mpi.supp), with full stacks so
# that each allocation's stack reaches the library that made it (the fast
# unwinder stops at the first library built without frame pointers).
if [ -n "${ASAN_OPTIONS:-}" ]; then
  export ASAN_OPTIONS="$ASAN_OPTIONS:fast_unwind_on_malloc=0"
  export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$here/lsan-mpi.supp:print_suppressions=0"
fi

data="$scratch/tiny-mnist"
mkdir -p "$data"
python3 "$here/../cli/tiny_mnist.py" "$data" 96 40 8
train=(train --model mlp --data mnist --data-dir "$data" --device cpu --epochs 2
       --augment)

weights_within() { # weights_within DESCRIPTION A B TOLERANCE [--differ]
  local desc=$1
  shift
  if python3 "$here/compare_weights.py" "$@" >"$scratch/compare.out" 2>&1; then
    echo "ok: $desc ($(cat "$scratch/compare.out"))"
  else
    echo "FAIL: $desc:"
    cat "$scratch/compare.out"
    failures=$((failures + 1))
  fi
}

# ---- one process against 2 and 3 ranks ----
"$cudl" "${train[@]}" --batch 16 --out "$scratch/one16" \
  >"$scratch/one16.out" 2>"$scratch/one16.err"
expect "one process, batch 16" 0 $?
"$cudl" "${train[@]}" --batch 8 --out "$scratch/one8" \
  >"$scratch/one8.out" 2>"$scratch/one8.err"
expect "one process, batch 8" 0 $?
timeout 300 "${mpi[@]}" -np 2 "$cudl" "${train[@]}" --batch 8 \
  --out "$scratch/two" --metrics "$scratch/two.jsonl" \
  >"$scratch/two.out" 2>"$scratch/two.err"
rc=$?
expect "mpirun -np 2, batch 8 per rank" 0 $rc
[ $rc -eq 0 ] || cat "$scratch/two.err"
weights_within "2 ranks of 8 end with the weights of one process of 16" \
  "$scratch/two/model.safetensors" "$scratch/one16/model.safetensors" 1e-5
weights_within "and not with those of one process of 8 (the check can fail)" \
  "$scratch/two/model.safetensors" "$scratch/one8/model.safetensors" 1e-5 --differ
expect_grep "rank 0 notes the layout" \
  "^cudl train: data parallel over 2 ranks (mpi): --batch 8 per rank, a global batch of 16" \
  "$scratch/two.err"
expect "one summary line per epoch, from rank 0 alone" 1 \
  "$(grep -c '^epoch 2/2' "$scratch/two.out")"
expect "the epoch has the global batches (6 of 16)" 1 \
  "$(grep -c ' 6 batches of 8) on' "$scratch/two.err")"
expect "one metrics file's lines, as one process writes" \
  "$(grep -c '"type": "epoch"' "$scratch/two.jsonl")" 2
if grep -q "rank 1" "$scratch/two.err"; then
  echo "FAIL: rank 1 printed:"
  grep "rank 1" "$scratch/two.err"
  failures=$((failures + 1))
fi
"$cudl" inspect "$scratch/two/checkpoint.safetensors" >"$scratch/two.inspect" 2>&1
expect_grep "the checkpoint records the world" "metadata train.world = 2$" \
  "$scratch/two.inspect"
"$cudl" inspect "$scratch/one16/checkpoint.safetensors" >"$scratch/one.inspect" 2>&1
expect_grep "one process records a world of 1" "metadata train.world = 1$" \
  "$scratch/one.inspect"

# ---- gradient buckets: when the gradients move, never their values ----
# The run above averaged in buckets of 25 MB (the mlp's 0.94 MB is one,
# started when backward passes the first layer); --bucket-mb 0.05 cuts it
# into 4 started while backward runs, --bucket-mb 0 averages all of it
# after backward. Each value's sum is the same reduce and broadcast, so
# the weights must be the same bits (a bucket started before backward
# finished its gradients would send stale ones and change them).
for mb in 0 0.05; do
  timeout 300 "${mpi[@]}" -np 2 "$cudl" "${train[@]}" --batch 8 \
    --bucket-mb $mb --out "$scratch/two-b$mb" \
    >"$scratch/two-b$mb.out" 2>"$scratch/two-b$mb.err"
  rc=$?
  expect "mpirun -np 2 --bucket-mb $mb" 0 $rc
  [ $rc -eq 0 ] || cat "$scratch/two-b$mb.err"
done
expect_true "--bucket-mb 0.05 (4 buckets) ends bit for bit as --bucket-mb 0" \
  cmp "$scratch/two-b0.05/model.safetensors" "$scratch/two-b0/model.safetensors"
expect_true "and as the default 25 MB (one bucket during backward)" \
  cmp "$scratch/two/model.safetensors" "$scratch/two-b0/model.safetensors"
expect_true "with the same checkpoint (--bucket-mb is not recorded)" \
  cmp "$scratch/two-b0.05/checkpoint.safetensors" "$scratch/two-b0/checkpoint.safetensors"
"$cudl" train --bucket-mb -1 >/dev/null 2>"$scratch/bucket-bad.err"
expect "--bucket-mb -1 is a usage error" 2 $?
expect_grep "saying what it takes" "bucket-mb.*from 0 (one bucket) to 1e6" \
  "$scratch/bucket-bad.err"

"$cudl" "${train[@]}" --batch 24 --out "$scratch/one24" \
  >"$scratch/one24.out" 2>"$scratch/one24.err"
expect "one process, batch 24" 0 $?
timeout 300 "${mpi[@]}" -np 3 "$cudl" "${train[@]}" --batch 8 \
  --out "$scratch/three" >"$scratch/three.out" 2>"$scratch/three.err"
rc=$?
expect "mpirun -np 3, batch 8 per rank" 0 $rc
[ $rc -eq 0 ] || cat "$scratch/three.err"
weights_within "3 ranks of 8 end with the weights of one process of 24" \
  "$scratch/three/model.safetensors" "$scratch/one24/model.safetensors" 1e-5

# ---- fp16 over the ranks: one loss scale, the same skipped steps ----
# The overflow check of the dynamic loss scale runs on the averaged
# gradients, so every rank skips the same steps (this run overflows once
# an epoch at the initial scale, as one process of 16 does). fp16's
# rounding of each rank's 8-row gradient sums differs from the 16-row sum's:
# 2 ranks end within 1e-3 of one process (measured 6.4e-4 with the f16
# wire that --precision fp16 brings, 1.8e-4 with an f32 one), one process
# of 8 ends 0.2 away.
fp16=(--precision fp16 --allow-emulated-precision)
"$cudl" "${train[@]}" "${fp16[@]}" --batch 16 --out "$scratch/h16" \
  --metrics "$scratch/h16.jsonl" >/dev/null 2>"$scratch/h16.err"
expect "one process, fp16, batch 16" 0 $?
"$cudl" "${train[@]}" "${fp16[@]}" --batch 8 --out "$scratch/h8" \
  >/dev/null 2>"$scratch/h8.err"
expect "one process, fp16, batch 8" 0 $?
timeout 300 "${mpi[@]}" -np 2 "$cudl" "${train[@]}" "${fp16[@]}" --batch 8 \
  --out "$scratch/h2" --metrics "$scratch/h2.jsonl" \
  >"$scratch/h2.out" 2>"$scratch/h2.err"
rc=$?
expect "mpirun -np 2 --precision fp16, batch 8 per rank" 0 $rc
[ $rc -eq 0 ] || cat "$scratch/h2.err"
weights_within "fp16: 2 ranks of 8 end near one process of 16" \
  "$scratch/h2/model.safetensors" "$scratch/h16/model.safetensors" 1e-3
weights_within "and not near one process of 8" \
  "$scratch/h2/model.safetensors" "$scratch/h8/model.safetensors" 1e-3 --differ
scales() { grep -o '"loss_scale": [0-9.e+]*, "skipped_steps": [0-9]*' "$1"; }
expect "the epochs' loss scales and skipped steps are one process's" \
  "$(scales "$scratch/h16.jsonl" | tr '\n' ' ')" "$(scales "$scratch/h2.jsonl" | tr '\n' ' ')"
expect_true "and some step overflowed (the check can fail)" \
  grep -q '"skipped_steps": [1-9]' "$scratch/h2.jsonl"

# ---- bench train under mpirun: the scaling figures (docs/benchmarks.md) ----
# Their consistency, not the timings: the job's images/s the sum of the
# ranks', the all-reduce's share of the step a fraction, its bytes the f32
# gradient of the MLP, NCCL's bus bandwidth from them.
timeout 300 "${mpi[@]}" -np 2 "$cudl" bench train --device cpu --model mlp \
  --batch 8 --samples 3 --warmup 1 --json "$scratch/bench2.json" \
  >"$scratch/bench2.out" 2>"$scratch/bench2.err"
rc=$?
expect "mpirun -np 2 cudl bench train" 0 $rc
[ $rc -eq 0 ] || cat "$scratch/bench2.err"
expect "rank 0 alone prints the table" 1 "$(grep -c 'images/s (step' "$scratch/bench2.out")"
expect_grep "with the job's line, naming the backend" "^  2 ranks (mpi): .* images/s in all; all-reduce of 940608 bytes" \
  "$scratch/bench2.out"
python3 - "$scratch/bench2.json" >"$scratch/bench2-json.out" 2>&1 <<'PY2'
import json, sys
b = json.load(open(sys.argv[1]))
def close(a, b, rel=1e-3):
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-12)
assert b["world"] == 2 and [r["rank"] for r in b["ranks"]] == [0, 1], b
assert b["dist_backend"] == "mpi", b  # auto on CPU ranks
# mlp 784-256-128-10: weights and biases, 4 bytes each, as the gradient
# arena holds them (each tensor rounded up to 16 floats: the bytes reduced)
params = sum((n + 15) // 16 * 16 for n in (784 * 256, 256, 256 * 128, 128, 128 * 10, 10))
assert b["grad_bytes"] == 4 * params, b
assert close(b["images_per_second_total"], sum(r["images_per_second"] for r in b["ranks"])), b
assert close(b["images_per_second"], b["ranks"][0]["images_per_second"]), b
for r in b["ranks"]:
    assert close(r["images_per_second"], 8 / r["step_ms_median"] * 1e3), r
    assert 0 < r["allreduce_ms_min"] <= r["allreduce_ms_median"] <= r["allreduce_ms_max"], r
    assert 0 <= r["allreduce_share"] <= 1, r
    assert close(r["allreduce_share"], r["allreduce_ms_median"] / r["step_ms_median"]), r
    assert r["allreduce_ms_median"] <= r["step_ms_median"], r
assert b["allreduce_ms_median"] == max(r["allreduce_ms_median"] for r in b["ranks"]), b
assert b["allreduce_ms_min"] == min(r["allreduce_ms_min"] for r in b["ranks"]), b
assert b["allreduce_ms_max"] == max(r["allreduce_ms_max"] for r in b["ranks"]), b
assert 0 <= b["allreduce_share"] <= 1, b
assert b["allreduce_share"] == max(r["allreduce_share"] for r in b["ranks"]), b
assert close(b["allreduce_algbw_gbps"], b["grad_bytes"] / (b["allreduce_ms_median"] * 1e-3) * 1e-9), b
assert close(b["allreduce_busbw_gbps"], b["allreduce_algbw_gbps"] * 2 * (2 - 1) / 2), b
assert b["steps"] == 3 and b["steps_per_sample"] == 1, b
print("bench JSON under mpirun consistent")
PY2
expect "bench train's JSON under mpirun is consistent" 0 $?
expect_grep "bench JSON checked" "bench JSON under mpirun consistent" "$scratch/bench2-json.out"
# The buckets it ran with: the default 25 MB holds the MLP's gradients in
# one; --bucket-mb 0.05 cuts them into 4 (the same as cudl train's).
python3 -c 'import json, sys; b = json.load(open(sys.argv[1])); assert b["bucket_bytes"] == 25 << 20 and b["buckets"] == 1, b' \
  "$scratch/bench2.json"
expect "bench train records the default bucket cap and its one bucket" 0 $?
timeout 300 "${mpi[@]}" -np 2 "$cudl" bench train --device cpu --model mlp \
  --batch 8 --samples 2 --warmup 1 --bucket-mb 0.05 --json "$scratch/bench-b.json" \
  >"$scratch/bench-b.out" 2>"$scratch/bench-b.err"
expect "mpirun -np 2 cudl bench train --bucket-mb 0.05" 0 $?
expect_grep "naming its buckets" "all-reduce of 940608 bytes (f32) in 4 buckets (--bucket-mb 0.05): exposed" \
  "$scratch/bench-b.out"
python3 -c 'import json, sys; b = json.load(open(sys.argv[1])); assert b["bucket_bytes"] == 52429 and b["buckets"] == 4 and b["allreduce_ms_min"] >= 0, b' \
  "$scratch/bench-b.json"
expect "and its JSON" 0 $?
timeout 300 "${mpi[@]}" -np 2 "$cudl" bench train --device cpu --model mlp \
  --batch 8 --samples 2 --min-sample-ms 5 >"$scratch/bench-ms.out" 2>"$scratch/bench-ms.err"
rc=$?
expect_true "--min-sample-ms refused under mpirun (exit $rc)" [ $rc -ne 0 -a $rc -ne 124 ]
expect_grep "saying why" "min-sample-ms is not taken under mpirun" "$scratch/bench-ms.err"

# ---- batch norm: per rank by default, over every rank with --sync-bn ----
# small-cnn has two batch-norm layers. With --sync-bn, 2 ranks of 8 end
# with the weights and running statistics of one process of 16, within the
# bound above (measured: largest 2.9e-7, in a running variance: the ranks'
# statistics are combined from f32 means and variances, the process's are
# summed in double); without it, each rank normalises with its own 8 rows
# and the run ends far outside it (measured: 1.5 in a running variance,
# 0.19 in a weight), which is the control; without the all-reduce of
# backward's sums it ends 0.1 away.
cnn=(train --model small-cnn --data mnist --data-dir "$data" --device cpu
     --epochs 2 --augment)
"$cudl" "${cnn[@]}" --batch 16 --out "$scratch/cnn16" \
  >"$scratch/cnn16.out" 2>"$scratch/cnn16.err"
expect "small-cnn, one process, batch 16" 0 $?
timeout 300 "${mpi[@]}" -np 2 "$cudl" "${cnn[@]}" --batch 8 --sync-bn \
  --out "$scratch/cnn-sync" >"$scratch/cnn-sync.out" 2>"$scratch/cnn-sync.err"
rc=$?
expect "mpirun -np 2 --sync-bn, batch 8 per rank" 0 $rc
[ $rc -eq 0 ] || cat "$scratch/cnn-sync.err"
weights_within "--sync-bn: 2 ranks of 8 end with the weights and running statistics of one process of 16" \
  "$scratch/cnn-sync/model.safetensors" "$scratch/cnn16/model.safetensors" 1e-5
timeout 300 "${mpi[@]}" -np 2 "$cudl" "${cnn[@]}" --batch 8 \
  --out "$scratch/cnn-local" >"$scratch/cnn-local.out" 2>"$scratch/cnn-local.err"
expect "mpirun -np 2 without --sync-bn" 0 $?
weights_within "without --sync-bn they do not (per-rank statistics)" \
  "$scratch/cnn-local/model.safetensors" "$scratch/cnn16/model.safetensors" 1e-5 --differ
"$cudl" inspect "$scratch/cnn-sync/checkpoint.safetensors" >"$scratch/cnn-sync.inspect" 2>&1
expect_grep "the checkpoint records --sync-bn" "metadata train.sync-bn = on$" \
  "$scratch/cnn-sync.inspect"
"$cudl" "${cnn[@]}" --batch 24 --out "$scratch/cnn24" \
  >"$scratch/cnn24.out" 2>"$scratch/cnn24.err"
expect "small-cnn, one process, batch 24" 0 $?
timeout 300 "${mpi[@]}" -np 3 "$cudl" "${cnn[@]}" --batch 8 --sync-bn \
  --out "$scratch/cnn-sync3" >"$scratch/cnn-sync3.out" 2>"$scratch/cnn-sync3.err"
rc=$?
expect "mpirun -np 3 --sync-bn, batch 8 per rank" 0 $rc
[ $rc -eq 0 ] || cat "$scratch/cnn-sync3.err"
weights_within "--sync-bn: 3 ranks of 8 end as one process of 24" \
  "$scratch/cnn-sync3/model.safetensors" "$scratch/cnn24/model.safetensors" 1e-5
"$cudl" "${cnn[@]}" --batch 16 --sync-bn --steps 1 --out "$scratch/cnn-one" \
  >"$scratch/cnn-one.out" 2>"$scratch/cnn-one.err"
expect "--sync-bn with one process is accepted" 0 $?
expect_grep "with a note" "--sync-bn with one process: batch norm's statistics are already" \
  "$scratch/cnn-one.err"
# A resumed run keeps it; --override sync-bn changes it.
"$cudl" "${cnn[@]}" --batch 16 --no-sync-bn --steps 2 \
  --resume "$scratch/cnn-one/checkpoint.safetensors" --out "$scratch/cnn-one" \
  >"$scratch/cnn-off.out" 2>"$scratch/cnn-off.err"
expect "a resumed --sync-bn run refuses --no-sync-bn alone" 1 $?
expect_grep "saying why" "the run was trained with --sync-bn, not --no-sync-bn; .*--override sync-bn" \
  "$scratch/cnn-off.err"
"$cudl" "${cnn[@]}" --batch 16 --no-sync-bn --override sync-bn --steps 2 \
  --resume "$scratch/cnn-one/checkpoint.safetensors" --out "$scratch/cnn-one" \
  >"$scratch/cnn-off.out" 2>"$scratch/cnn-off.err"
expect "and takes it with --override sync-bn" 0 $?
expect_grep "with a note" "using --no-sync-bn instead of the run's --sync-bn (--override sync-bn)" \
  "$scratch/cnn-off.err"
"$cudl" inspect "$scratch/cnn-one/checkpoint.safetensors" >"$scratch/cnn-one.inspect" 2>&1
expect_grep "and records the new value" "metadata train.sync-bn = off$" \
  "$scratch/cnn-one.inspect"

# ---- resume across the world ----
timeout 300 "${mpi[@]}" -np 2 "$cudl" "${train[@]}" --batch 8 --steps 4 \
  --out "$scratch/resumed" >"$scratch/part.out" 2>"$scratch/part.err"
expect "2 ranks stop after 4 steps" 0 $?
timeout 300 "${mpi[@]}" -np 2 "$cudl" "${train[@]}" --batch 8 \
  --resume "$scratch/resumed/checkpoint.safetensors" --out "$scratch/resumed" \
  >"$scratch/rest.out" 2>"$scratch/rest.err"
rc=$?
expect "2 ranks resume the run" 0 $rc
[ $rc -eq 0 ] || cat "$scratch/rest.err"
weights_within "the resumed run ends as the uninterrupted one, bit for bit" \
  "$scratch/resumed/model.safetensors" "$scratch/two/model.safetensors" 0
"$cudl" "${train[@]}" --batch 8 --resume "$scratch/two/checkpoint.safetensors" \
  --override epochs --epochs 3 --out "$scratch/two" \
  >"$scratch/world1.out" 2>"$scratch/world1.err"
expect "one process refuses a checkpoint of 2 ranks" 1 $?
expect_grep "saying why" \
  "was saved by a run over 2 ranks, not 1: .*mpirun -np 2" "$scratch/world1.err"
timeout 300 "${mpi[@]}" -np 2 "$cudl" "${train[@]}" --batch 8 \
  --resume "$scratch/one8/checkpoint.safetensors" --override epochs --epochs 3 \
  --out "$scratch/one8" >"$scratch/world2.out" 2>"$scratch/world2.err"
rc=$?
expect_true "2 ranks refuse a checkpoint of one process" [ $rc -ne 0 -a $rc -ne 124 ]
expect_grep "saying why" "was saved by a run over 1 rank, not 2" "$scratch/world2.err"

# ---- the multi-node form of the launch, on this machine ----
# docs/distributed.md's hostfile launch with a hostfile naming localhost,
# the environment passed with -x, and the TCP transport that runs between
# nodes forced in place of shared memory: the same weights, bit for bit.
printf 'localhost slots=2\n' >"$scratch/hosts"
OMPI_MCA_btl=self,tcp timeout 300 "${mpi[@]}" --hostfile "$scratch/hosts" \
  -np 2 -x OMP_NUM_THREADS "$cudl" "${train[@]}" --batch 8 --out "$scratch/tcp" \
  >"$scratch/tcp.out" 2>"$scratch/tcp.err"
rc=$?
expect "mpirun --hostfile, -np 2 over TCP" 0 $rc
[ $rc -eq 0 ] || cat "$scratch/tcp.err"
weights_within "ends with the shared-memory run's weights, bit for bit" \
  "$scratch/tcp/model.safetensors" "$scratch/two/model.safetensors" 0

# ---- interrupted: every rank stops at the same step, rank 0 saves ----
# CUDL_TEST_INTERRUPT_AT_STEP=3 given to rank 1 alone (as a signal that
# reaches one rank) raises SIGINT there before step 3's exchange; the
# exchange tells rank 0, both stop after step 3, rank 0 saves there, and
# the resumed run ends with the uninterrupted run's weights bit for bit.
timeout 300 "${mpi[@]}" -np 1 "$cudl" "${train[@]}" --batch 8 \
  --out "$scratch/int" : -np 1 env CUDL_TEST_INTERRUPT_AT_STEP=3 "$cudl" \
  "${train[@]}" --batch 8 --out "$scratch/int" \
  >"$scratch/int.out" 2>"$scratch/int.err"
rc=$?
expect_true "a rank interrupted ends the job with a non-zero status (exit $rc)" \
  [ $rc -ne 0 -a $rc -ne 124 ]
expect_grep "rank 0 says where every rank stopped" \
  "^cudl train: interrupted at epoch 1, batch 3; saved .*(continue with --resume)" \
  "$scratch/int.err"
"$cudl" inspect "$scratch/int/checkpoint.safetensors" >"$scratch/int.inspect" 2>&1
expect_grep "the checkpoint is at step 3" "metadata cudl.step = 3$" "$scratch/int.inspect"
timeout 300 "${mpi[@]}" -np 2 "$cudl" "${train[@]}" --batch 8 \
  --resume "$scratch/int/checkpoint.safetensors" --out "$scratch/int" \
  >"$scratch/int-rest.out" 2>"$scratch/int-rest.err"
expect "2 ranks resume the interrupted run" 0 $?
weights_within "and end as the uninterrupted run, bit for bit" \
  "$scratch/int/model.safetensors" "$scratch/two/model.safetensors" 0

# Ctrl-C on mpirun: Open MPI sends each rank SIGCONT, then SIGTERM a
# second later (odls_base_sigkill_timeout), then SIGKILL another second
# later; the ranks stop together at the next step and rank 0 saves. A
# constant, small learning rate keeps the long run finite.
long=(train --model mlp --data mnist --data-dir "$data" --device cpu
      --epochs 100000 --schedule constant --lr 0.01 --batch 8)
timeout 300 "${mpi[@]}" -np 2 "$cudl" "${long[@]}" --out "$scratch/ctrlc" \
  >"$scratch/ctrlc.out" 2>"$scratch/ctrlc.err" &
job=$!
launcher=""
for _ in $(seq 1 600); do
  launcher=$(pgrep -P "$job" | head -1)
  [ -n "$launcher" ] && [ -f "$scratch/ctrlc/checkpoint.safetensors" ] && break
  sleep 0.1
done
if [ -n "$launcher" ]; then
  kill -INT "$launcher"
  wait "$job"
  rc=$?
  expect_true "Ctrl-C on mpirun ends the job (exit $rc)" [ $rc -ne 0 -a $rc -ne 124 ]
  expect_grep "rank 0 saves where the ranks stopped" \
    "^cudl train: interrupted \(at\|after\) epoch .*; saved .*(continue with --resume)" \
    "$scratch/ctrlc.err"
  step=$("$cudl" inspect "$scratch/ctrlc/checkpoint.safetensors" 2>&1 |
    sed -n 's/^  metadata cudl.step = //p')
  timeout 300 "${mpi[@]}" -np 2 "$cudl" "${long[@]}" --steps $((step + 2)) \
    --resume "$scratch/ctrlc/checkpoint.safetensors" --out "$scratch/ctrlc" \
    >"$scratch/ctrlc-rest.out" 2>"$scratch/ctrlc-rest.err"
  expect "the run resumes from step ${step:-?}" 0 $?
  timeout 300 "${mpi[@]}" -np 2 "$cudl" "${long[@]}" --steps $((step + 2)) \
    --out "$scratch/ctrlc-whole" >/dev/null 2>&1
  expect "the same run uninterrupted" 0 $?
  weights_within "and ends with its weights, bit for bit" \
    "$scratch/ctrlc/model.safetensors" "$scratch/ctrlc-whole/model.safetensors" 0
else
  echo "FAIL: the job to interrupt did not start"
  failures=$((failures + 1))
  kill "$job" 2>/dev/null
  wait "$job"
fi

# ---- --deterministic: a run reproduces itself, and records the setting ----
for k in 1 2; do
  timeout 300 "${mpi[@]}" -np 2 "$cudl" "${train[@]}" --batch 8 --deterministic \
    --out "$scratch/det$k" >/dev/null 2>"$scratch/det$k.err"
  expect "mpirun -np 2 --deterministic, run $k" 0 $?
done
cmp "$scratch/det1/model.safetensors" "$scratch/det2/model.safetensors"
expect "the two runs' weights files are the same bytes" 0 $?
"$cudl" inspect "$scratch/det1/model.safetensors" >"$scratch/det.inspect" 2>&1
expect_grep "the weights record it" "metadata train.deterministic = on$" \
  "$scratch/det.inspect"

# ---- --grad-wire: the gradients summed in 16 bits ----
# Each rank's gradients leave rounded to bf16 (f16) and their sum is
# rounded again: 2 ranks end near the f32 wire's weights (two above) but
# not on them, two runs give the same bytes (the sum is still computed
# once, on rank 0), and the checkpoint records the wire.
for k in 1 2; do
  timeout 300 "${mpi[@]}" -np 2 "$cudl" "${train[@]}" --batch 8 --grad-wire bf16 \
    --out "$scratch/bf16wire$k" >/dev/null 2>"$scratch/bf16wire$k.err"
  expect "mpirun -np 2 --grad-wire bf16, run $k" 0 $?
done
cmp "$scratch/bf16wire1/model.safetensors" "$scratch/bf16wire2/model.safetensors"
expect "the two bf16-wire runs' weights files are the same bytes" 0 $?
weights_within "bf16 wire: 2 ranks end near the f32 wire's weights (measured 1.1e-3)" \
  "$scratch/bf16wire1/model.safetensors" "$scratch/two/model.safetensors" 5e-3
weights_within "but not on them (the wire rounds)" \
  "$scratch/bf16wire1/model.safetensors" "$scratch/two/model.safetensors" 1e-5 --differ
"$cudl" inspect "$scratch/bf16wire1/model.safetensors" >"$scratch/wire.inspect" 2>&1
expect_grep "the weights record the wire" "metadata train.grad-wire = bf16$" \
  "$scratch/wire.inspect"
timeout 300 "${mpi[@]}" -np 2 "$cudl" "${train[@]}" --batch 8 --grad-wire f16 \
  --out "$scratch/f16wire" >/dev/null 2>"$scratch/f16wire.err"
expect "mpirun -np 2 --grad-wire f16" 0 $?
weights_within "f16 wire: nearer the f32 wire's weights (11 bits; measured 9.6e-5)" \
  "$scratch/f16wire/model.safetensors" "$scratch/two/model.safetensors" 5e-4

# ---- bad launches ----
timeout 300 "${mpi[@]}" -np 1 "$cudl" "${train[@]}" --batch 8 --lr 0.05 \
  --out "$scratch/mismatch" : -np 1 "$cudl" "${train[@]}" --batch 8 --lr 0.04 \
  --out "$scratch/mismatch" >"$scratch/mismatch.out" 2>"$scratch/mismatch.err"
rc=$?
expect_true "ranks with different options are refused (exit $rc)" [ $rc -ne 0 -a $rc -ne 124 ]
expect_grep "saying so" "the ranks do not train the same configuration" \
  "$scratch/mismatch.err"
expect_true "and before anything is written" [ ! -e "$scratch/mismatch" ]
timeout 300 "${mpi[@]}" -np 1 "$cudl" "${train[@]}" --batch 8 --dist-backend mpi \
  --out "$scratch/mixed" : -np 1 "$cudl" "${train[@]}" --batch 8 --dist-backend nccl \
  --out "$scratch/mixed" >"$scratch/mixed.out" 2>"$scratch/mixed.err"
rc=$?
expect_true "ranks choosing different communicators are refused, not left waiting (exit $rc)" \
  [ $rc -ne 0 -a $rc -ne 124 ]
expect_grep "saying so" "the ranks do not choose the same communicator: this rank takes mpi, another nccl" \
  "$scratch/mixed.err"
expect_true "and before anything is written" [ ! -e "$scratch/mixed" ]

# ---- a rank that hangs (alive, never exchanging) ends the job ----
# CUDL_TEST_HANG_AT_STEP=8 stops rank 1 forever before step 8's backward
# (epoch 2: epoch 1's checkpoint is written). Rank 0 waits --dist-timeout 3
# seconds in the gradients' reduce, fails saying so, and MPI_Abort ends
# both; `timeout 120` only turns a hang into a failure here (exit 124).
CUDL_TEST_HANG_AT_STEP=8 timeout 120 "${mpi[@]}" -np 2 "$cudl" "${train[@]}" \
  --batch 8 --epochs 3 --dist-timeout 3 --out "$scratch/hung" \
  >"$scratch/hung.out" 2>"$scratch/hung.err"
rc=$?
expect_true "a hung rank 1 ends the job within the timeout, not in a hang (exit $rc)" \
  [ $rc -ne 0 -a $rc -ne 124 ]
expect_grep "rank 0 says which exchange timed out, and after how long" \
  "^cudl train: training step 8: averaging the gradients: MPI_Ireduce did not complete within the timeout of 3 s (rank 0 of 2 waited 3\.[0-9] s)" \
  "$scratch/hung.err"
"$cudl" inspect "$scratch/hung/checkpoint.safetensors" >"$scratch/hung.inspect" 2>&1
expect "the last checkpoint stays valid" 0 $?
expect_grep "and is epoch 1's" "metadata cudl.step = 6$" "$scratch/hung.inspect"
"$cudl" train --dist-timeout -1 >/dev/null 2>"$scratch/timeout-bad.err"
expect "--dist-timeout -1 is a usage error" 2 $?
expect_grep "saying what it takes" "dist-timeout.*from 0 (no limit) to 1e9" \
  "$scratch/timeout-bad.err"

# ---- --dist-backend ----
"$cudl" train --dist-backend gloo >/dev/null 2>"$scratch/backend-bad.err"
expect "--dist-backend gloo is a usage error" 2 $?
expect_grep "saying what it takes" "dist-backend.*auto, mpi or nccl" "$scratch/backend-bad.err"
# NCCL connects GPUs: CPU ranks that ask for it fail before anything is
# written, saying why (this build's reason: a CPU context, or NCCL not
# available: a build without CUDA or NCCL, or a host without their libraries).
timeout 300 "${mpi[@]}" -np 2 "$cudl" "${train[@]}" --batch 8 --dist-backend nccl \
  --out "$scratch/nccl-cpu" >"$scratch/nccl-cpu.out" 2>"$scratch/nccl-cpu.err"
rc=$?
expect_true "--dist-backend nccl on CPU ranks fails (exit $rc)" [ $rc -ne 0 -a $rc -ne 124 ]
expect_grep "saying why" \
  "dist-backend nccl: cudl_comm_create_nccl: \(the context is not a CUDA one\|NCCL is not available: \)" \
  "$scratch/nccl-cpu.err"
expect_true "and writes nothing" [ ! -e "$scratch/nccl-cpu/checkpoint.safetensors" ]

# ---- a rank killed mid-run ends the job ----
timeout 300 "${mpi[@]}" -np 2 "$cudl" "${train[@]}" --batch 8 --epochs 100000 \
  --out "$scratch/killed" >"$scratch/killed.out" 2>"$scratch/killed.err" &
job=$!
victim=""
for _ in $(seq 1 600); do
  if [ -f "$scratch/killed/checkpoint.safetensors" ]; then
    for p in $(pgrep -P "$(pgrep -P "$job" | head -1)" 2>/dev/null); do
      if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1"; then
        victim=$p
      fi
    done
    [ -n "$victim" ] && break
  fi
  sleep 0.1
done
if [ -n "$victim" ]; then
  kill -KILL "$victim"
  wait "$job"
  rc=$?
  expect_true "killing rank 1 ends the job, not in a hang (exit $rc)" [ $rc -ne 0 -a $rc -ne 124 ]
  "$cudl" inspect "$scratch/killed/checkpoint.safetensors" >/dev/null 2>&1
  expect "the last checkpoint stays valid" 0 $?
else
  echo "FAIL: rank 1 of the job to kill was not found"
  failures=$((failures + 1))
  kill "$job" 2>/dev/null
  wait "$job"
fi

finish
