#!/usr/bin/env bash
# ctest: the quick experiments still show the chapter's claims.
#   check.sh CHAPTER_BINARY SCRATCH_DIR
# boolean: XOR stays at ln 2 without a hidden layer and is learned with one;
# init: zero initialisation leaves the hidden units identical (one distinct
# unit where the GEMM computes every row alike; a few groups where its row
# blocks round differently), Xavier's all distinct.
set -euo pipefail
chapter=$1
out=$2
mkdir -p "$out"
# The init experiment trains on Fashion-MNIST; without it (a GPU machine
# with no package manager, say) the test reports itself skipped (exit 77)
# once the boolean claims are checked.
fashion=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
"$chapter" boolean --json "$out/boolean.json" >/dev/null
have_fashion=1
if [ -r "$fashion" ]; then
  "$chapter" init --json "$out/init.json" >/dev/null
else
  have_fashion=0
fi
python3 - "$out/boolean.json" "$out/init.json" "$have_fashion" <<'PY'
import json, sys
runs = json.load(open(sys.argv[1]))["runs"]
xor = [r for r in runs if r["function"] == "xor"]
flat = [r for r in xor if r["model"] == "no-hidden"]
hidden = [r for r in xor if r["model"] == "one-hidden"]
assert flat and all(r["final_loss"] > 0.69 and r["max_abs_logit"] < 1e-3 for r in flat), flat
assert hidden and all(r["final_loss"] < 0.01 and r["accuracy"] == 1.0 for r in hidden), hidden
for f in ("and", "or"):
    assert all(r["accuracy"] == 1.0 for r in runs if r["function"] == f), f
if sys.argv[3] == "0":
    print("experiments: XOR as the chapter says; the init experiment was not run "
          "(no Fashion-MNIST: Debian package dataset-fashion-mnist)")
    sys.exit(77)
init = {r["init"]: r for r in json.load(open(sys.argv[2]))["runs"]}
# Units computed by the same code from the same numbers stay bit-identical.
# oneDNN's AVX2 sgemm computes the last rows of hidden.0's gradient in a
# tail block that rounds differently (rows 30-31 of 32), so there the
# symmetry breaks by one rounding and the layer ends as 2 groups; with
# AVX-512 it stays 1. Never more than the GEMM's row blocks, never 32.
assert 1 <= init["zeros"]["distinct_units"] <= 4, init["zeros"]
assert init["xavier"]["distinct_units"] == 32, init["xavier"]
assert init["xavier"]["train_accuracy"] > init["zeros"]["train_accuracy"] + 0.15, init
print("experiments: XOR and the symmetry of zero initialisation as the chapter says")
PY
