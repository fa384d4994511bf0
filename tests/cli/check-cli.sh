#!/usr/bin/env bash
# The cudl command line: exit codes and output of info, inspect and demo.
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

echo "$failures failure(s)"
[ "$failures" -eq 0 ]
