#!/usr/bin/env bash
# Stage, from this (Debian) machine, the build dependencies a GPU machine
# without a package manager lacks: GoogleTest's sources and cJSON (headers
# and shared library; it needs only libc). Written to .gpu-deps/ (ignored
# by git); carry that folder to the GPU machine, where scripts/gpu-check.sh
# finds it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh >/dev/null
dest=.gpu-deps
rm -rf "$dest"
mkdir -p "$dest/prefix/include/cjson" "$dest/prefix/lib"
cp -r /usr/src/googletest "$dest/googletest"
cp /usr/include/cjson/cJSON.h "$dest/prefix/include/cjson/"
lib=$(readlink -f "$(dpkg -L libcjson1 | grep -m1 'libcjson.so.1$')")
cp "$lib" "$dest/prefix/lib/libcjson.so.1"
ln -s libcjson.so.1 "$dest/prefix/lib/libcjson.so"
du -sh "$dest"
