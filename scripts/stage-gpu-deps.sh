#!/usr/bin/env bash
# Stage, from this (Debian) machine, the build dependencies a GPU machine
# without a package manager lacks: GoogleTest's sources and Jansson (headers
# and shared library; it needs only libc). Written to .gpu-deps/ (ignored
# by git); carry that folder to the GPU machine, where scripts/gpu-check.sh
# finds it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh >/dev/null
dest=.gpu-deps
rm -rf "$dest"
mkdir -p "$dest/prefix/include" "$dest/prefix/lib"
cp -r /usr/src/googletest "$dest/googletest"
cp /usr/include/jansson.h /usr/include/jansson_config.h "$dest/prefix/include/"
lib=$(readlink -f "$(dpkg -L libjansson4 | grep -m1 'libjansson.so.4$')")
cp "$lib" "$dest/prefix/lib/libjansson.so.4"
ln -s libjansson.so.4 "$dest/prefix/lib/libjansson.so"
du -sh "$dest"
