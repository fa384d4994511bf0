#!/usr/bin/env bash
# Install ONNX Runtime for Node.js (onnxruntime-node, pinned) into
# .onnxruntime/ at the top of the tree (ignored by git), where the ONNX
# interop tests (tests/interop/onnx-interop.sh) find it. From the npm
# registry only: the package ships its CPU library; its install script
# would fetch GPU libraries from elsewhere, which ONNXRUNTIME_NODE_INSTALL=skip
# turns off. Idempotent: an installed copy of the pinned version is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
version=1.30.0
dir=.onnxruntime
installed=$(node -p "require('./$dir/node_modules/onnxruntime-node/package.json').version" 2>/dev/null || true)
if [ "$installed" = "$version" ]; then
  echo "install-onnxruntime: onnxruntime-node $version present in $dir"
  exit 0
fi
if ! command -v npm >/dev/null; then
  echo "install-onnxruntime: npm not found (Debian package npm; scripts/install-deps.sh)" >&2
  exit 1
fi
mkdir -p "$dir"
[ -f "$dir/package.json" ] || echo '{"name": "cudl-onnx-tests", "private": true}' >"$dir/package.json"
ONNXRUNTIME_NODE_INSTALL=skip npm install --prefix "$dir" --no-audit --no-fund \
  --save-exact "onnxruntime-node@$version"
echo "install-onnxruntime: onnxruntime-node $version installed in $dir"
