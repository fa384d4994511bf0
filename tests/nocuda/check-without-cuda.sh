#!/usr/bin/env bash
# check-without-cuda.sh CUDL MODULE SCRATCH PROGRAM...
#
# The CUDA-enabled build on a host without the CUDA libraries: in a private
# mount namespace (unshare; skipped, status 77, where the kernel or the
# user may not make one) the files of cudart, cuBLAS, cuDNN and NCCL that
# the module needs are hidden, which the dynamic loader then confirms;
# `cudl info` must still start and say why there is no CUDA backend, and
# every listed test program (the suites that do not link CUDA themselves)
# must pass, its CUDA tests skipping with that reason.
set -euo pipefail
cudl=$1 module=$2 scratch=$3
shift 3

if [ "${CUDL_IN_NAMESPACE:-}" != 1 ]; then
  if ! unshare -rm true 2>/dev/null; then
    echo "SKIP: unshare -rm is not permitted here (no private mount namespace to hide the CUDA libraries in)"
    exit 77
  fi
  # The files behind each CUDA library the module loads, links included.
  hidden=()
  while read -r name path; do
    case $name in libcudart*|libcublas*|libcudnn*|libnccl*) ;; *) continue ;; esac
    for f in "$(dirname "$path")/${name%%.so*}".so*; do hidden+=("$f"); done
  done < <(ldd "$module" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}')
  for f in /usr/local/cuda*/lib*/libnccl.so* /usr/lib/*/libnccl.so*; do
    [ -e "$f" ] && hidden+=("$f")
  done
  [ ${#hidden[@]} -gt 0 ] || { echo "FAIL: ldd finds no CUDA library behind $module" >&2; exit 1; }
  rm -rf "$scratch" && mkdir -p "$scratch"
  exec unshare -rm env CUDL_IN_NAMESPACE=1 CUDL_HIDE="${hidden[*]}" "$0" "$cudl" "$module" "$scratch" "$@"
fi

# Inside the namespace: each file replaced by an empty one.
for f in $CUDL_HIDE; do mount --bind /dev/null "$f"; done
unset CUDL_CUDA_MODULE
fail() { echo "FAIL: $*" >&2; exit 1; }
info=$("$cudl" info) || fail "cudl info failed without the CUDA libraries"
grep -q "^CUDA backend: not loaded: the CUDA backend .* could not be loaded: .*libcu" <<<"$info" ||
  fail "cudl info does not say that a CUDA library is missing: $info"
echo "ok: without the CUDA libraries: $(grep '^CUDA backend' <<<"$info")"
export CUDL_TEST_TMPDIR=$scratch
failed=0
for program in "$@"; do
  if out=$("$program" --gtest_brief=1 2>&1); then
    echo "ok: $(basename "$program"): $(grep -E '^\[  PASSED  \]' <<<"$out" | head -1)$(grep -E '^\[  SKIPPED \]' <<<"$out" | head -1 | sed 's/^/, /')"
  else
    echo "$out" | tail -30
    echo "FAIL: $(basename "$program") without the CUDA libraries" >&2
    failed=1
  fi
done
exit $failed
