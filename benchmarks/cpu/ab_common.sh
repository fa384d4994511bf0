# ab_common.sh - what train_ab.sh and infer_ab.sh share, sourced by both
# from the repository root after `set -euo pipefail`: their three arguments
# (base, new, out), PyTorch's presence, the output folder, the thread count
# both sides get, and the environment PyTorch runs in (glibc's malloc kept
# from returning memory to the system between steps, as a long-running
# trainer's would).
ab_name=$(basename "$0")
if [ $# -ne 3 ]; then
  echo "usage: $ab_name BASE_CUDL NEW_CUDL OUT_DIR" >&2
  exit 2
fi
base=$1 new=$2 out=$3
if ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
  echo "$ab_name: PyTorch is missing: run scripts/install-deps.sh --bench" >&2
  exit 1
fi
mkdir -p "$out"
threads=$(nproc)
torch_env=(env GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184)
