#!/usr/bin/env bash
# Crash safety of `cudl train`: kill a training run with SIGKILL at random
# moments, many times. After every kill the checkpoint on disk must load
# (the old one or the new one, never a torn file), --resume must continue
# from its epoch and step and finish, and the temporaries of saves that
# were cut short must not be taken for the checkpoint nor pile up.
#
# usage: crash-safety.sh CUDL_BINARY SCRATCH_DIR
# environment:
#   CUDL_CRASH_KILLS      how many runs to kill [25]
#   CUDL_CRASH_SEED       seed of the kill delays [1]; the figures depend
#                         on timing too, but a failure names its kill
#   CUDL_CRASH_MAX_MS     longest delay before a kill, in ms [1200]
#   CUDL_CRASH_AIM_EVERY  every Nth kill waits for a save to begin (a
#                         temporary to appear) instead [3]; 0: never
#
# How often a random delay lands in a save depends on the machine's load
# (from one kill in ten to one in two here: an epoch of the small run below
# takes about as long as its two saves' fsyncs); the aimed kills make sure
# the window between a temporary's creation and its rename is hit in
# every run.
set -uo pipefail
cudl=$1
scratch=$2
kills=${CUDL_CRASH_KILLS:-25}
seed=${CUDL_CRASH_SEED:-1}
max_ms=${CUDL_CRASH_MAX_MS:-1200}
aim_every=${CUDL_CRASH_AIM_EVERY:-3}
rm -rf "$scratch"
mkdir -p "$scratch"
failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}
echo "crash safety: $kills kills, delays up to $max_ms ms, seed $seed," \
  "one in $aim_every aimed at a save (CUDL_CRASH_KILLS, CUDL_CRASH_MAX_MS," \
  "CUDL_CRASH_SEED, CUDL_CRASH_AIM_EVERY)"
RANDOM=$seed

# A small MNIST-format set: 96 training and 32 test images of 28x28, so
# that an epoch and a checkpoint write take comparable times (the MLP's
# checkpoint is about 2 MB) and kills land in both.
data="$scratch/data"
mkdir -p "$data"
python3 "$(dirname "$0")/tiny_mnist.py" "$data" 96 32 28

run="$scratch/run"
ckpt="$run/checkpoint.safetensors"
metrics="$scratch/metrics.jsonl"
common=(--model mlp --data mnist --data-dir "$data" --device cpu --batch 32
  --lr 0.01)

# meta FILE KEY: a metadata value as `cudl inspect` lists it ("" if none).
meta() {
  "$cudl" inspect "$1" 2>/dev/null | sed -n "s/^  metadata $2 = //p"
}

epoch=-1   # the checkpoint's epoch before the current kill; -1: none yet
step=0
none=0 old=0 new=0 during_save=0 aimed=0 resumed_killed=0 verified=0 max_tmp=0
for k in $(seq 1 "$kills"); do
  resume=()
  [ -f "$ckpt" ] && resume=(--resume "$ckpt")
  "$cudl" train "${common[@]}" --out "$run" "${resume[@]}" --epochs 100000 \
    --metrics "$metrics" --log-every 1 >"$scratch/kill.out" 2>"$scratch/kill.err" &
  pid=$!
  delay=$((RANDOM % max_ms))
  if [ "$aim_every" -gt 0 ] && [ $((k % aim_every)) -eq 0 ]; then
    # Spin (no fork per look) until the run has a temporary, for 20 s
    # at most.
    aimed=$((aimed + 1))
    deadline=$((SECONDS + 20))
    until compgen -G "$run/*.tmp.$pid.*" >/dev/null; do
      [ "$SECONDS" -lt "$deadline" ] || break
    done
    when="at a save"
  else
    sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
    when="after $delay ms"
  fi
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  rc=$?
  if [ "$rc" -ne 137 ]; then
    fail "kill $k: the run ended by itself (exit $rc) before its kill:"
    cat "$scratch/kill.err"
  fi
  # The killed run's temporaries, if any: the kill landed in a save.
  own=$(find "$run" -name "*.tmp.$pid.*" -printf '%f ' 2>/dev/null)
  if [ -n "$own" ]; then
    during_save=$((during_save + 1))
    what="during a save ($own)"
  else
    what=""
  fi
  tmp_count=$(find "$run" -name '*.tmp.*' 2>/dev/null | wc -l)
  [ "$tmp_count" -gt "$max_tmp" ] && max_tmp=$tmp_count
  # A run that got as far as resuming must have resumed from the
  # checkpoint that was there.
  if grep -q "resuming" "$scratch/kill.err"; then
    resumed_killed=$((resumed_killed + 1))
    grep -q "resuming .* at epoch $((epoch + 1)), batch 0, step $step\$" \
      "$scratch/kill.err" ||
      fail "kill $k: the run resumed elsewhere than epoch $((epoch + 1)), step $step: $(grep resuming "$scratch/kill.err")"
  fi

  if [ ! -e "$ckpt" ]; then
    [ "$epoch" -ge 0 ] && fail "kill $k: the checkpoint of epoch $epoch is gone"
    none=$((none + 1))
    echo "kill $k $when: no checkpoint yet $what"
    continue
  fi
  # (1) The checkpoint loads: its header and size (inspect), its model
  # tensors (eval), and everything with the optimizer's state (resume).
  if ! "$cudl" inspect "$ckpt" >"$scratch/inspect.out" 2>&1; then
    fail "kill $k: the checkpoint does not load: $(cat "$scratch/inspect.out")"
    cp "$ckpt" "$scratch/torn-$k.safetensors"
    break
  fi
  now_epoch=$(meta "$ckpt" cudl.epoch)
  now_step=$(meta "$ckpt" cudl.step)
  if [ "$now_epoch" -lt "$epoch" ]; then
    fail "kill $k: the checkpoint went back from epoch $epoch to $now_epoch"
  elif [ "$now_epoch" -eq "$epoch" ]; then
    old=$((old + 1))
    kind=old
  else
    new=$((new + 1))
    kind=new
  fi
  echo "kill $k $when: the $kind checkpoint (epoch $now_epoch, step $now_step) $what"
  epoch=$now_epoch
  step=$now_step
  "$cudl" eval --model mlp --data mnist --data-dir "$data" --device cpu \
    --weights "$ckpt" >"$scratch/eval.out" 2>&1 ||
    fail "kill $k: eval cannot load the checkpoint: $(cat "$scratch/eval.out")"
  # The weights, saved just after the checkpoint (so they may be an epoch
  # behind it), load too.
  if [ -e "$run/model.safetensors" ]; then
    "$cudl" inspect "$run/model.safetensors" >/dev/null 2>&1 ||
      fail "kill $k: model.safetensors does not load"
  fi
  # (3) --resume continues from a copy of it, for one more epoch.
  verify="$scratch/verify"
  rm -rf "$verify"
  mkdir -p "$verify"
  cp "$ckpt" "$verify/checkpoint.safetensors"
  "$cudl" train "${common[@]}" --out "$verify" \
    --resume "$verify/checkpoint.safetensors" --epochs $((epoch + 1)) \
    --override epochs \
    >"$scratch/verify.out" 2>"$scratch/verify.err"
  rc=$?
  if [ "$rc" -eq 0 ] &&
    grep -q "resuming .* at epoch $((epoch + 1)), batch 0, step $step\$" "$scratch/verify.err" &&
    grep -q "^epoch $((epoch + 1))/$((epoch + 1)) " "$scratch/verify.out" &&
    [ "$(grep -c '^epoch ' "$scratch/verify.out")" -eq 1 ]; then
    verified=$((verified + 1))
  else
    fail "kill $k: --resume from epoch $epoch, step $step did not continue there (exit $rc):"
    cat "$scratch/verify.err" "$scratch/verify.out"
  fi
done

# (2) A last run resumes in place, finishes, and leaves no temporaries:
# those of the killed saves are removed, none is left of its own.
if [ -f "$ckpt" ]; then
  last=$((epoch + 2))
  "$cudl" train "${common[@]}" --out "$run" --resume "$ckpt" --epochs "$last" \
    --override epochs --metrics "$metrics" --log-every 1 >"$scratch/final.out" 2>"$scratch/final.err"
  rc=$?
  [ "$rc" -eq 0 ] || fail "the final resume failed (exit $rc): $(cat "$scratch/final.err")"
  if ! grep -q "^epoch $((epoch + 1))/$last " "$scratch/final.out" ||
    ! grep -q "^epoch $last/$last " "$scratch/final.out"; then
    fail "the final resume did not train epochs $((epoch + 1)) and $last"
  fi
  [ "$(meta "$ckpt" cudl.epoch)" = "$last" ] ||
    fail "the final checkpoint is not of epoch $last"
else
  fail "no kill landed after the first checkpoint: raise CUDL_CRASH_MAX_MS"
fi
left=$(find "$run" -name '*.tmp.*' | wc -l)
[ "$left" -eq 0 ] || fail "$left temporary file(s) left: $(ls "$run")"
# Every metrics line parses, torn ones of killed runs included (the next
# run ends them with a newline).
if ! python3 - "$metrics" >"$scratch/metrics.check" 2>&1 <<'PY'; then
import json, sys
lines = open(sys.argv[1]).read().split("\n")
assert lines[-1] == "", "the file does not end with a newline"
torn = 0
for line in lines[:-1]:
    try:
        json.loads(line)
    except ValueError:
        torn += 1
print(f"{len(lines) - 1} metrics lines, {torn} torn by a kill")
PY
  fail "metrics file: $(cat "$scratch/metrics.check")"
fi
cat "$scratch/metrics.check"

echo "kills: $kills (seed $seed), $aimed aimed at a save; landed during a save: $during_save;" \
  "checkpoint found: none yet $none, old $old, new $new;" \
  "resumes verified: $verified; killed runs that had resumed: $resumed_killed;" \
  "most temporaries seen at once: $max_tmp"
echo "$failures failure(s)"
[ "$failures" -eq 0 ]
