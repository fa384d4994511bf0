#!/usr/bin/env bash
# check-module.sh CUDL LIBCUDL MODULE FOREIGN_MODULE PROGRAM...
#
# The CUDA backend is a module loaded at run time (src/core/cuda_module.h):
# neither libcudl nor the cudl program nor the listed programs (the test
# suites) link a CUDA library, `cudl info` says where the module came from,
# and a missing file, a file that is no module and a module of another
# build are each refused with their reason while the CPU side works.
set -euo pipefail
cudl=$1 libcudl=$2 module=$3 foreign=$4
shift 4
fail() { echo "FAIL: $*" >&2; exit 1; }
cuda_libraries='libcudart|libcublas|libcudnn|libnccl|libcuda\.so'

for f in "$libcudl" "$cudl" "$@"; do
  needed=$(readelf -d "$f" | awk '/NEEDED/ {print $5}' | tr -d '[]')
  if grep -Eq "$cuda_libraries" <<<"$needed"; then
    fail "$f links a CUDA library itself: $(grep -E "$cuda_libraries" <<<"$needed" | tr '\n' ' ')"
  fi
done
echo "ok: libcudl, cudl and $# test programs link no CUDA library"
grep -Eq "$cuda_libraries" <<<"$(readelf -d "$module" | awk '/NEEDED/ {print $5}')" ||
  fail "$module does not link the CUDA libraries: is it the backend?"

info=$(env -u CUDL_CUDA_MODULE "$cudl" info)
loaded=$(sed -n 's/^CUDA backend: \(\/.*\)/\1/p' <<<"$info")
[ -n "$loaded" ] && [ "$(readlink -f "$loaded")" = "$(readlink -f "$module")" ] ||
  fail "cudl info does not name the module beside libcudl ($module): $info"
echo "ok: the module beside libcudl is loaded"

# expect_refusal VALUE TEXT: with CUDL_CUDA_MODULE=VALUE, `cudl info`
# succeeds, shows the CPU and says TEXT about the backend.
expect_refusal() {
  local out
  out=$(CUDL_CUDA_MODULE=$1 "$cudl" info) || fail "cudl info failed with CUDL_CUDA_MODULE=$1"
  grep -q "^CUDA backend: not loaded: .*$2" <<<"$out" || fail "CUDL_CUDA_MODULE=$1: no '$2' in: $out"
  grep -qx "  cpu" <<<"$out" || fail "CUDL_CUDA_MODULE=$1: the CPU is not listed: $out"
  grep -q "^CUDA libraries: none (the CUDA backend is not loaded)" <<<"$out" || fail "CUDL_CUDA_MODULE=$1: $out"
  echo "ok: CUDL_CUDA_MODULE=$1 is refused: $(grep '^CUDA backend' <<<"$out")"
}
expect_refusal "$(dirname "$module")/no-such-module.so" "cannot open shared object file"
expect_refusal "$libcudl" "is not a cudl CUDA backend (it has no cudl_cuda_module_entry)"
expect_refusal "$foreign" "belongs to another build of cudl (interface 0.0.0-foreign0000000; this library's is "
