#!/usr/bin/env bash
# Regenerate the PyTorch golden files in tests/golden/ (committed data that
# tests/unit/test_golden.cpp reads) with tests/golden/make_goldens.py.
#
#   scripts/make-goldens.sh           rewrite tests/golden/*.safetensors and *.txt
#   scripts/make-goldens.sh --check   generate into a temporary directory and
#                                     compare with the committed files byte
#                                     for byte (another CPU or PyTorch build
#                                     may legitimately differ in last bits)
#
# Needs PyTorch from Debian's python3-torch package, run with the system
# interpreter /usr/bin/python3 (a pyenv or venv python will not see it).
# The normal build and tests never need torch.
set -euo pipefail
cd "$(dirname "$0")/.."
python=/usr/bin/python3
if [[ ! -x $python ]] || ! "$python" -c 'import torch' 2>/dev/null; then
  echo "make-goldens: PyTorch is not importable by $python:" \
       "install python3-torch (Debian): apt-get install python3-torch" >&2
  exit 1
fi
case "${1:-}" in
  "")
    exec "$python" tests/golden/make_goldens.py tests/golden
    ;;
  --check)
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    "$python" tests/golden/make_goldens.py "$tmp" >/dev/null
    status=0
    for f in "$tmp"/*.safetensors "$tmp"/*.txt; do
      name=$(basename "$f")
      if ! cmp -s "$f" "tests/golden/$name"; then
        echo "make-goldens: tests/golden/$name differs from a fresh run" >&2
        status=1
      fi
    done
    [[ $status -eq 0 ]] && echo "make-goldens: the committed goldens equal a fresh run"
    exit $status
    ;;
  *)
    echo "usage: scripts/make-goldens.sh [--check]" >&2
    exit 2
    ;;
esac
