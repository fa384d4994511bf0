#!/usr/bin/env bash
# ONNX export against the ONNX checker and ONNX Runtime (docs/deploy.md).
#
# usage: onnx-interop.sh tiny|fashion ONNX_CASES CUDL ORT_DIR WORK [COUNT]
#
#   tiny     models of every node kind (onnx_cases tiny, exported through the
#            C API), then `cudl export`'s errors and outputs
#   fashion  small-cnn and ResNet-20 on the first COUNT Fashion-MNIST test
#            images (all 10,000 by default), exported by `cudl export` from
#            their weights files; cudl and ONNX Runtime must predict the same
#            class for every image
#
# Each file must pass onnx.checker.check_model(full_check=True) (Debian's
# python3-onnx, under /usr/bin/python3) and give cudl's outputs in
# onnxruntime-node (installed in ORT_DIR by scripts/install-onnxruntime.sh).
# Exit 77 (ctest: skipped) when either is missing, saying which.
set -euo pipefail
mode=$1 cases=$2 cudl=$3 ort_dir=$4 work=$5 count=${6:-10000}
here=$(cd "$(dirname "$0")" && pwd)
python=${CUDL_ONNX_PYTHON:-/usr/bin/python3}

if ! "$python" -c 'import onnx' 2>/dev/null; then
  echo "SKIP: $python has no onnx module (Debian package python3-onnx; scripts/install-deps.sh)"
  exit 77
fi
if ! command -v node >/dev/null ||
   ! NODE_PATH="$ort_dir/node_modules" node -e "require('onnxruntime-node')" 2>/dev/null; then
  echo "SKIP: no onnxruntime-node in $ort_dir (scripts/install-onnxruntime.sh; needs node and npm)"
  exit 77
fi

if [ "$mode" = fashion ] && [ ! -e /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
  echo "SKIP: no Fashion-MNIST test set (Debian package dataset-fashion-mnist)"
  exit 77
fi

rm -rf "$work"
mkdir -p "$work"
run_ort() { NODE_PATH="$ort_dir/node_modules" node "$here/onnx_run.js" "$@"; }

# Runs a command that must fail with exit status $1 and print $2 (a grep
# pattern) on stderr.
expect_fail() {
  local want=$1 pattern=$2 rc=0
  shift 2
  "$@" 2>"$work/err" >/dev/null || rc=$?
  if [ "$rc" -ne "$want" ] || ! grep -q -- "$pattern" "$work/err"; then
    echo "FAIL: $* exited $rc (want $want) with:"; cat "$work/err"
    echo "(want a message matching: $pattern)"
    exit 1
  fi
}

if [ "$mode" = tiny ]; then
  "$cases" tiny "$work"
  "$python" "$here/onnx_check.py" "$work" 'classes=["a", "b"]' normalize.mean=0.5
  run_ort "$work"

  # `cudl export`: a weights file written by cudl (with its architecture and
  # metadata) to an ONNX file, replacing one there, or to a device.
  w="$work/cli/weights.safetensors"
  echo stale >"$work/cli/weights.onnx"
  "$cudl" export --weights "$w" --onnx "$work/cli/weights.onnx" --probabilities
  "$python" "$here/onnx_check.py" "$work/cli" 'classes=["x", "y", "z"]' \
    model=tiny-cli dataset=made-up normalize.mean=0.25 normalize.std=0.5
  run_ort "$work/cli"
  "$cudl" export --weights "$w" --onnx /dev/null
  [ -z "$(find "$work" -name '*.tmp.*')" ] || { echo "FAIL: a temporary left behind"; exit 1; }

  expect_fail 2 "give --weights FILE and --onnx OUT" "$cudl" export --weights "$w"
  expect_fail 2 "unknown option '--bogus'" "$cudl" export --bogus
  expect_fail 2 "is the weights file itself" "$cudl" export --weights "$w" --onnx "$w"
  expect_fail 1 "no-such.safetensors" \
    "$cudl" export --weights "$work/no-such.safetensors" --onnx "$work/x.onnx"
  expect_fail 1 "cudl.architecture" \
    "$cudl" export --weights "$work/no_arch.safetensors" --onnx "$work/x.onnx"
  expect_fail 1 "the ONNX file" "$cudl" export --weights "$w" --onnx "$work"
  [ ! -e "$work/x.onnx" ] || { echo "FAIL: a failed export left $work/x.onnx"; exit 1; }
  "$cudl" export --help | grep -q "opset 17"
  echo "onnx-interop: cudl export: files, devices and errors as documented"
else
  "$cases" fashion "$work" "$count"
  for model in small-cnn resnet20; do
    "$cudl" export --weights "$work/$model.safetensors" --onnx "$work/$model.onnx"
  done
  "$python" "$here/onnx_check.py" "$work" dataset=fashion-mnist \
    'classes=["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]'
  # A random network that answered one class for everything would agree
  # trivially: cudl's own answers must spread over most classes.
  run_ort "$work" 5
fi
