#!/usr/bin/env bash
# What a training run settles and tells: --val-split (per-epoch validation,
# best.safetensors, kept exactly across --resume), the test set once at the
# end unless --test-every-epoch, --steps, the derived values printed at
# start, the metrics file's lines against the schema of docs/cli.md, eval's
# and predict's --help against the options they accept, and cudl-plot.
# usage: check-train-run.sh CUDL_BINARY CUDL_PLOT SCRATCH_DIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/cli/lib.sh
. "$here/lib.sh"
plot=$2
begin "$1" "$3"

data="$scratch/data"
mkdir -p "$data"
python3 "$here/tiny_mnist.py" "$data" 96 40 8
# 96 training images of 3 classes (32 each); --val-split 0.25 holds 8 of
# each out: 72 left, 4 batches of 16 an epoch.
T=(train --model small-cnn --dropout 0.25 --data mnist --data-dir "$data"
  --device cpu --batch 16 --epochs 4 --log-every 1)
V=("${T[@]}" --val-split 0.25)

# meta FILE KEY: a metadata value as `cudl inspect` lists it.
meta() { "$cudl" inspect "$1" 2>/dev/null | sed -n "s/^  metadata $2 = //p"; }

# ---- --val-split and best.safetensors ----
ref="$scratch/ref"
"$cudl" "${V[@]}" --out "$ref" --metrics "$ref.jsonl" >"$ref.out" 2>"$ref.err"
expect "a run with --val-split" 0 $?
expect_grep "it says how many images it holds out" \
  "using validation: 24 of the 96 training images held out (--val-split 0.25" "$ref.err"
expect_grep "it trains on the rest" "training small-cnn on mnist (72 images, 4 batches of 16)" "$ref.err"
expect_grep "the summary has the validation figures" "^epoch 1/4  train loss .*  val loss .*  val acc " "$ref.out"
expect_grep "it names the best epoch" "^best validation accuracy .* at epoch [1-4]; weights in $ref/best.safetensors" "$ref.out"
expect_true "best.safetensors is beside model.safetensors" test -f "$ref/best.safetensors"
# The schema of every line, the validation in each epoch line, the test set
# only in the last (and the end line), and the best epoch: the first of the
# highest validation accuracy.
python3 - "$ref.jsonl" >"$scratch/ref.check" 2>&1 <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert lines[0]["type"] == "run", lines[0]
assert all(l["type"] in ("run", "step", "epoch", "end") for l in lines), lines
run = lines[0]
assert run["dataset"]["train_images"] == 72 and run["dataset"]["val_images"] == 24, run
assert run["dataset"]["test_images"] == 40 and run["dataset"]["image_shape"] == [1, 8, 8], run
assert run["config"]["val_split"] == 0.25 and run["config"]["batches_per_epoch"] == 4, run
assert run["config"]["lr"] == 0.05 and run["config"]["weight_decay"] == 0.0005, run
assert run["config"]["schedule"] == {"kind": "cosine", "warmup_epochs": 0,
                                     "total_epochs": 4, "eta_min": 0}, run
# --layout auto: channels-last on the CPU
assert run["seed"] == 1 and run["precision"] == "fp32" and run["layout"] == "nhwc", run
assert run["model"]["name"] == "small-cnn" and run["model"]["parameters"] > 0, run
assert not any("second" in k or "time" in k for k in json.dumps(run).split('"')), run
epochs = [l for l in lines if l["type"] == "epoch"]
assert [e["epoch"] for e in epochs] == [1, 2, 3, 4], epochs
assert [e["step"] for e in epochs] == [4, 8, 12, 16], epochs
assert all("val_loss" in e and "val_accuracy" in e for e in epochs), epochs
assert [("test_accuracy" in e) for e in epochs] == [False, False, False, True], epochs
best = max(range(4), key=lambda i: (epochs[i]["val_accuracy"], -i)) + 1
assert all(e["best_epoch"] == max(range(e["epoch"]), key=lambda i: (epochs[i]["val_accuracy"], -i)) + 1
           for e in epochs), epochs
end = lines[-1]
assert end["type"] == "end" and end["reason"] == "epochs" and end["step"] == 16, end
assert end["best_epoch"] == best and end["test_accuracy"] == epochs[-1]["test_accuracy"], end
print(best)
PY
expect "the metrics follow the schema; the best epoch is the first of the highest accuracy" 0 $?
best=$(tail -n 1 "$scratch/ref.check")
case $best in [1-4]) ;; *) cat "$scratch/ref.check"; best=1 ;; esac
echo "best epoch: $best"
expect "the checkpoint records the best epoch" "$best" "$(meta "$ref/checkpoint.safetensors" best.epoch)"
# best.safetensors holds the weights at the end of the best epoch: those of
# the same run stopped there (--steps keeps the run's schedule).
"$cudl" "${V[@]}" --out "$scratch/upto" --steps $((best * 4)) >/dev/null 2>&1
expect "the same run stopped after the best epoch" 0 $?
expect_true "best.safetensors is that run's model.safetensors, bit for bit" \
  cmp -s "$ref/best.safetensors" "$scratch/upto/model.safetensors"

# Resume: interrupted within an epoch after the best one and at an epoch's
# end, the resumed run, given only the checkpoint (its model with dropout,
# batch, --val-split, epochs, optimizer settings and seed are the
# checkpoint's), ends with the uninterrupted run's weights and best weights
# (a best forgotten on resume would be replaced by a later tie; a split by
# another seed would train on other images; a setting taken from the
# defaults instead would train otherwise).
steps_to_try="8 15"
[ "$best" -lt 4 ] && steps_to_try="$((best * 4 + 1)) $steps_to_try"
for k in $steps_to_try; do
  run="$scratch/int-$k"
  CUDL_TEST_INTERRUPT_AT_STEP=$k "$cudl" "${V[@]}" --out "$run" >/dev/null 2>&1
  expect "--val-split run interrupted after step $k" 130 $?
  "$cudl" train --resume "$run/checkpoint.safetensors" --data-dir "$data" \
    --device cpu >"$run.out" 2>"$run.err"
  expect "step $k: resumed to the end" 0 $?
  expect_true "step $k: the weights are the uninterrupted run's" \
    cmp -s "$run/model.safetensors" "$ref/model.safetensors"
  expect_true "step $k: the best weights are the uninterrupted run's" \
    cmp -s "$run/best.safetensors" "$ref/best.safetensors"
  expect_grep "step $k: the same best epoch" "at epoch $best; weights in" "$run.out"
done
# --override dropout: small-cnn is built anew with the new dropout (it has
# no weights), the change noted and recorded; not named, it is refused.
run="$scratch/dropout"
CUDL_TEST_INTERRUPT_AT_STEP=3 "$cudl" "${V[@]}" --out "$run" >/dev/null 2>&1
expect "a run to resume with another dropout, interrupted" 130 $?
expect_error "another --dropout without --override" 1 \
  "the run was trained with --dropout 0.25, not --dropout 0.5; .*--override dropout" \
  train --resume "$run/checkpoint.safetensors" --data-dir "$data" --device cpu \
  --dropout 0.5
"$cudl" train --resume "$run/checkpoint.safetensors" --data-dir "$data" \
  --device cpu --dropout 0.5 --override dropout >"$run.out" 2>"$run.err"
expect "resumed with --dropout 0.5 --override dropout" 0 $?
expect_grep "the change is noted" \
  "^cudl train: using --dropout 0.5 instead of the run's --dropout 0.25 (--override dropout)$" "$run.err"
expect_true "and recorded" test "$(meta "$run/checkpoint.safetensors" train.dropout)" = 0.5
# The tensors, not the files: the metadata differ anyway.
tensor_bytes() {
  python3 -c 'import struct, sys
b = open(sys.argv[1], "rb").read()
sys.stdout.buffer.write(b[8 + struct.unpack("<Q", b[:8])[0]:])' "$1"
}
tensor_bytes "$run/model.safetensors" >"$run.tensors"
tensor_bytes "$ref/model.safetensors" >"$ref.tensors"
expect_true "the run trained with the new dropout (not the uninterrupted run's weights)" \
  test "$(cmp -s "$run.tensors" "$ref.tensors"; echo $?)" = 1
expect_error "resuming with another --val-split" 1 \
  "the run was trained --val-split 0.25, not --val-split 0.5" \
  "${T[@]}" --val-split 0.5 --out "$area/r" --resume "$ref/checkpoint.safetensors"
# Without --val-split a resumed run keeps its own: the checks get past it
# to the epochs, which this finished run has done (check-folder-run.sh
# resumes one to the end).
expect_error "resuming without --val-split keeps the run's" 2 \
  "has finished 4 epochs already" \
  "${T[@]}" --out "$area/r" --resume "$ref/checkpoint.safetensors"
for bad in 0 1 -0.1 1.5 nan x; do
  expect_error "--val-split $bad" 2 "option --val-split needs a number above 0 and below 1, not '$bad'" \
    "${T[@]}" --out "$area/r" --val-split "$bad"
done
expect_error "--val-split is train's" 2 "--val-split is an option of cudl train, not of cudl eval" \
  eval --model small-cnn --data mnist --data-dir "$data" --device cpu \
  --weights "$ref/model.safetensors" --val-split 0.1

# ---- without --val-split: no best, the test set once or every epoch ----
plain="$scratch/plain"
"$cudl" "${T[@]}" --out "$plain" --metrics "$plain.jsonl" >"$plain.out" 2>"$plain.err"
expect "a run without --val-split" 0 $?
expect_true "it writes no best.safetensors" test ! -e "$plain/best.safetensors"
expect "only the last epoch's summary has the test figures" 1 "$(grep -c '^epoch .*test acc' "$plain.out")"
expect_grep "the last epoch's does" "^epoch 4/4 .*test acc" "$plain.out"
expect_grep "it says the test set is used once" "using the test set once, at the end of training" "$plain.err"
every="$scratch/every"
"$cudl" "${T[@]}" --test-every-epoch --out "$every" --metrics "$every.jsonl" >"$every.out" 2>/dev/null
expect "a run with --test-every-epoch" 0 $?
expect "every epoch's summary has the test figures" 4 "$(grep -c '^epoch [1-4]/4 .*test acc' "$every.out")"
python3 - "$plain.jsonl" "$every.jsonl" <<'PY'
import json, sys
plain, every = ([json.loads(l) for l in open(p)] for p in sys.argv[1:])
ep = [l for l in plain if l["type"] == "epoch"]
ee = [l for l in every if l["type"] == "epoch"]
assert ["test_accuracy" in l for l in ep] == [False, False, False, True], ep
assert all("test_accuracy" in l and "val_accuracy" not in l for l in ee), ee
assert "best_epoch" not in plain[-1] and plain[-1]["type"] == "end", plain[-1]
# Evaluating the test set does not change training.
assert [l["train_loss"] for l in ep] == [l["train_loss"] for l in ee], (ep, ee)
assert ep[-1]["test_accuracy"] == ee[-1]["test_accuracy"], (ep[-1], ee[-1])
PY
expect "the metrics have the test set where it was evaluated, the same training" 0 $?
expect_true "and the same weights" cmp -s "$plain/model.safetensors" "$every/model.safetensors"

# ---- --clip: clipped as the step's gradient norm is queued ----
# same_tensors A B: the two files hold the same tensors (their metadata,
# which records the settings, may differ).
same_tensors() {
  python3 - "$1" "$2" <<'PY'
import json, struct, sys
def tensors(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    return header, data[8 + n:]
sys.exit(tensors(sys.argv[1]) != tensors(sys.argv[2]))
PY
}
"$cudl" "${T[@]}" --clip 1e30 --out "$scratch/clip-loose" >/dev/null 2>&1
expect "--clip 1e30" 0 $?
expect_true "a clip that never binds changes no weight" \
  same_tensors "$plain/model.safetensors" "$scratch/clip-loose/model.safetensors"
for k in 1 5; do
  "$cudl" "${T[@]}" --clip 0.05 --sync-every $k --out "$scratch/clip$k" >/dev/null 2>&1
  expect "--clip 0.05 --sync-every $k" 0 $?
done
! same_tensors "$plain/model.safetensors" "$scratch/clip1/model.safetensors"
expect "--clip 0.05 binds: other weights" 0 $?
expect_true "and clips the same whenever the norms are read" \
  cmp -s "$scratch/clip1/model.safetensors" "$scratch/clip5/model.safetensors"

# ---- --steps ----
s="$scratch/steps"
"$cudl" "${T[@]}" --epochs 3 --steps 9 --out "$s" --metrics "$s.jsonl" >"$s.out" 2>"$s.err"
expect "--steps 9 (within epoch 2 of 3)" 0 $?
expect_grep "the summary says it stopped on --steps" "^final test accuracy .* after 1 epoch and 9 steps (--steps)" "$s.out"
expect "the checkpoint is at step 9" 9 "$(meta "$s/checkpoint.safetensors" cudl.step)"
expect "at batch 3 of epoch 2" 3 "$(meta "$s/checkpoint.safetensors" cudl.batch)"
python3 - "$s.jsonl" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
end = lines[-1]
assert end == {**end, "type": "end", "reason": "steps", "step": 9, "epoch": 1}, end
assert "test_accuracy" in end, end
assert max(l["step"] for l in lines if l["type"] == "step") == 9, lines
PY
expect "the metrics end on --steps at step 9" 0 $?
"$cudl" "${T[@]}" --epochs 3 --steps 14 --out "$s" --metrics "$s.jsonl" \
  --resume "$s/checkpoint.safetensors" >"$s.2.out" 2>/dev/null
expect "resumed with --steps 14: it goes on to step 14 of the run" 0 $?
expect "the checkpoint is at step 14" 14 "$(meta "$s/checkpoint.safetensors" cudl.step)"
"$cudl" "${T[@]}" --epochs 3 --steps 14 --out "$scratch/steps14" >/dev/null 2>&1
expect "one run with --steps 14" 0 $?
expect_true "9 then 14 steps end with the weights of 14 in one run" \
  cmp -s "$s/model.safetensors" "$scratch/steps14/model.safetensors"
# --diagnostics 4 across a resume at step 9: the resumed run records the
# norms at steps 12 and 16 of the run, as one run does (it recorded those of
# step 13 and none at 12); only its first window is shorter (steps 10-12),
# which the dead units' fraction may show.
d="$scratch/diag"
"$cudl" "${T[@]}" --epochs 3 --steps 16 --diagnostics 4 --out "$d.one" --metrics "$d.one.jsonl" \
  >/dev/null 2>&1
expect "one run with --diagnostics 4" 0 $?
"$cudl" "${T[@]}" --epochs 3 --steps 9 --diagnostics 4 --out "$d" --metrics "$d.jsonl" \
  >/dev/null 2>&1
expect "--diagnostics 4 to step 9" 0 $?
"$cudl" "${T[@]}" --epochs 3 --steps 16 --diagnostics 4 --out "$d" --metrics "$d.jsonl" \
  --resume "$d/checkpoint.safetensors" >/dev/null 2>&1
expect "resumed to step 16" 0 $?
python3 - "$d.one.jsonl" "$d.jsonl" <<'PY'
import json, sys
def rows(path):
    return {l["step"]: l for l in map(json.loads, open(path)) if l["type"] == "diagnostics"}
one, resumed = rows(sys.argv[1]), rows(sys.argv[2])
assert sorted(one) == sorted(resumed) == [4, 8, 12, 16], (sorted(one), sorted(resumed))
for step in one:
    a, b = one[step], resumed[step]
    assert (a["window_steps"], b["window_steps"]) == (4, 3 if step == 12 else 4), (step, a, b)
    assert any(r["weight_grad_norm"] is not None for r in b["layers"]), (step, b)
    for x, y in zip(a["layers"], b["layers"], strict=True):
        if step == 12:
            x, y = dict(x, dead_fraction=None), dict(y, dead_fraction=None)
        assert x == y, (step, x, y)
PY
expect "the same norms at the same steps, every figure but the first window's dead units" 0 $?
"$cudl" "${T[@]}" --epochs 3 --steps 1000 --out "$scratch/steps-long" >"$scratch/steps-long.out" 2>/dev/null
expect "--steps beyond the epochs ends with the epochs" 0 $?
expect_grep "without saying --steps" "^final test accuracy .* after 3 epochs (" "$scratch/steps-long.out"
expect_error "resuming at or past --steps" 2 "has taken 14 steps already: --steps must be more than that, not 14" \
  "${T[@]}" --epochs 3 --steps 14 --out "$area/r" --resume "$s/checkpoint.safetensors"
expect_error "--steps 0" 2 "option --steps needs a positive integer, not '0'" \
  "${T[@]}" --out "$area/r" --steps 0

# ---- the values flags derive, printed at start ----
"$cudl" "${T[@]}" --epochs 10 --schedule step --steps 1 --out "$scratch/sched" \
  >/dev/null 2>"$scratch/sched.err"
expect "a step schedule over 10 epochs" 0 $?
expect_grep "its gamma and milestones" \
  "^cudl train: using schedule step: lr x 0.1 every 3 epochs, at the start of epochs 4, 7, 10$" \
  "$scratch/sched.err"
expect_grep "the optimizer's derived values" \
  "^cudl train: using optimizer sgd: lr 0.05, momentum 0.9, weight decay 0.0005$" "$scratch/sched.err"
expect_grep "augmentation's default" "^cudl train: using no augmentation (on by default for cifar10 only)$" \
  "$scratch/sched.err"
mean=$(meta "$scratch/sched/model.safetensors" normalize.mean)
expect_grep "the normalisation, as the weights record it" \
  "^cudl train: using normalisation mean $(printf '%.4f' "$mean"), std .* (per channel, of the 96 training images)$" \
  "$scratch/sched.err"
"$cudl" "${T[@]}" --optimizer adamw --warmup 2 --augment --steps 1 --out "$scratch/adamw" \
  >/dev/null 2>"$scratch/adamw.err"
expect "adamw with a warm-up and augmentation" 0 $?
expect_grep "adamw's defaults" "^cudl train: using optimizer adamw: lr 0.001, betas 0.9 and 0.999, eps 1e-08, weight decay 0.01$" "$scratch/adamw.err"
expect_grep "the warm-up" "^cudl train: using warm-up: lr rising linearly step by step to 0.001 over the first 2 epochs$" "$scratch/adamw.err"
expect_grep "the cosine after it" "^cudl train: using schedule cosine: lr from 0.001 down to 0 over 2 epochs after the warm-up$" "$scratch/adamw.err"
expect_grep "the augmentation" "^cudl train: using augmentation: random crop (zero padding 2) and horizontal flip$" "$scratch/adamw.err"
E=(--model small-cnn --data mnist --data-dir "$data" --device cpu --weights "$ref/model.safetensors")
"$cudl" eval "${E[@]}" >/dev/null 2>"$scratch/eval.err"
expect "eval" 0 $?
expect_grep "eval's batch: --batch, at most the test set" \
  "^cudl eval: using batches of 40 (--batch, at most the 40 test images)$" "$scratch/eval.err"
expect_grep "eval's normalisation: the weights file's" \
  "^cudl eval: using normalisation mean .* (per channel, from the --weights file)$" "$scratch/eval.err"

# ---- eval's and predict's --help: their own options, all of them ----
"$cudl" train --help >"$scratch/train.help"
for command in eval predict; do
  "$cudl" $command --help >"$scratch/$command.help"
  expect "$command --help" 0 $?
  grep -o -- '--[a-z][a-z-]*' "$scratch/$command.help" | sort -u >"$scratch/$command.opts"
  grep -o -- '--[a-z][a-z-]*' "$scratch/train.help" | sort -u >"$scratch/train.opts"
  bad=0
  while read -r option; do # every option its help names, it takes
    "$cudl" $command "$option" >/dev/null 2>"$scratch/opt.err"
    if grep -q "unknown option\|is an option of cudl train" "$scratch/opt.err"; then
      echo "FAIL: $command --help names $option, which it does not take"
      bad=1
    fi
  done <"$scratch/$command.opts"
  while read -r option; do # every option it takes, its help names
    [ "$option" = "--help" ] && continue
    "$cudl" $command "$option" >/dev/null 2>"$scratch/opt.err"
    if ! grep -q "is an option of\|unknown option" "$scratch/opt.err" &&
      ! grep -qx -- "$option" "$scratch/$command.opts"; then
      echo "FAIL: $command takes $option, which its --help does not name"
      bad=1
    fi
  done <"$scratch/train.opts"
  expect "$command --help names exactly the options it takes" 0 $bad
  expect_true "$command --help names no training option" \
    bash -c "! grep -q -- '--epochs\|--lr\|--resume\|--val-split\|--metrics' '$scratch/$command.help'"
done
expect_grep "train --help says there is no best.safetensors without --val-split" \
  "no best.safetensors" "$scratch/train.help"

# ---- cudl-plot ----
if ! /usr/bin/python3 -c "import matplotlib" 2>/dev/null; then
  echo "FAIL: matplotlib is missing (scripts/install-deps.sh installs python3-matplotlib)"
  failures=$((failures + 1))
else
  mkdir -p "$scratch/plots"
  cp "$ref.jsonl" "$ref/metrics.jsonl"
  "$plot" "$ref" "$plain.jsonl" "$every.jsonl" "$s.jsonl" -o "$scratch/plots/curves.png" \
    --title "four runs" >"$scratch/plot.out" 2>&1
  expect "cudl-plot of four runs (a run directory and three metrics files)" 0 $?
  expect_true "it wrote a PNG" bash -c \
    "head -c 8 '$scratch/plots/curves.png' | od -An -tx1 | tr -d ' \n' | grep -qx 89504e470d0a1a0a"
  expect_true "of some size" test "$(stat -c %s "$scratch/plots/curves.png")" -gt 10000
  expect_true "and nothing else beside it" test "$(ls -A "$scratch/plots" | wc -l)" -eq 1
  # A line a killed run cut short (ended by the resumed run) is skipped.
  { head -n 3 "$plain.jsonl"; printf '{"type": "step", "st\n'; tail -n +4 "$plain.jsonl"; } >"$scratch/torn.jsonl"
  "$plot" "$scratch/torn.jsonl" -o "$scratch/plots/torn.png" 2>"$scratch/torn.err"
  expect "a metrics file with a cut-short line" 0 $?
  expect_grep "it says it skipped it" "skipped 1 line(s) a killed run cut short" "$scratch/torn.err"
  # Malformed: one line naming the file and line, exit 1, nothing written.
  printf '{"type": "epoch", "epoch": 1, "train_loss": "low", "train_accuracy": 1}\n' >"$scratch/bad1.jsonl"
  printf 'not json}\n' >"$scratch/bad2.jsonl"
  printf '{"type": "mystery"}\n' >"$scratch/bad3.jsonl"
  printf '[1, 2]\n' >"$scratch/bad4.jsonl"
  : >"$scratch/bad5.jsonl"
  for k in 1 2 3 4 5 6; do
    "$plot" "$scratch/bad$k.jsonl" -o "$scratch/plots/bad.png" >/dev/null 2>"$scratch/bad.err"
    expect "cudl-plot of malformed metrics $k: exit 1" 1 $?
    expect "malformed metrics $k: one line" 1 "$(wc -l <"$scratch/bad.err")"
    expect_grep "malformed metrics $k: it names the file" "^cudl-plot: .*bad$k.jsonl" "$scratch/bad.err"
    expect_true "malformed metrics $k: no figure" test ! -e "$scratch/plots/bad.png"
  done
  expect_grep "the line and the problem" 'bad1.jsonl:1: "train_loss" is "low", not a number' <(
    "$plot" "$scratch/bad1.jsonl" -o "$scratch/plots/bad.png" 2>&1)
  cp "$plain.jsonl" "$scratch/input.jsonl"
  "$plot" "$scratch/input.jsonl" -o "$scratch/input.jsonl" 2>"$scratch/self.err"
  expect "cudl-plot refuses to write over its input" 2 $?
  expect_grep "saying so" "is the input" "$scratch/self.err"
  expect_true "the input is unchanged" cmp -s "$plain.jsonl" "$scratch/input.jsonl"
  ln -sf "$scratch/input.jsonl" "$scratch/link.png"
  "$plot" "$plain.jsonl" "$scratch/input.jsonl" -o "$scratch/link.png" 2>/dev/null
  expect "nor over its input through a link" 2 $?
  # An existing figure is replaced whole.
  "$plot" "$every.jsonl" -o "$scratch/plots/curves.png" 2>/dev/null
  expect "cudl-plot replaces an earlier figure" 0 $?
  expect_true "with a whole PNG, no temporary left" test "$(ls -A "$scratch/plots" | wc -l)" -eq 2
fi

finish
