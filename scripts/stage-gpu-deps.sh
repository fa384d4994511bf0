#!/usr/bin/env bash
# Stage, from this (Debian) machine, the build dependencies a GPU machine
# without a package manager lacks: GoogleTest's sources; Jansson and oneDNN
# (headers and shared libraries, with the OpenCL loader that Debian's oneDNN
# loads); zlib's headers. Written to .gpu-deps/ (ignored by git): googletest/
# as is, and the rest as prefix.tar.xz (about 7 MB; oneDNN alone is 40 MB, a large share
# of what a device run may carry). Carry .gpu-deps to the GPU machine, where
# scripts/gpu-check.sh unpacks the prefix and points the build at it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh >/dev/null
dest=.gpu-deps
rm -rf "$dest"
mkdir -p "$dest"
cp -r /usr/src/googletest "$dest/googletest"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
prefix=$stage/prefix
mkdir -p "$prefix/include" "$prefix/lib"
# The file a package installs under the given name (symlinks resolved).
pkg_file() { readlink -f "$(dpkg -L "$1" | grep -m1 "/$2\$")"; }
cp /usr/include/jansson.h /usr/include/jansson_config.h "$prefix/include/"
cp "$(pkg_file libjansson4 libjansson.so.4)" "$prefix/lib/libjansson.so.4"
cp -r /usr/include/oneapi "$prefix/include/"
cp /usr/include/dnnl*.h "$prefix/include/"
cp "$(pkg_file libdnnl2 libdnnl.so.2)" "$prefix/lib/libdnnl.so.2"
cp "$(pkg_file ocl-icd-libopencl1 libOpenCL.so.1)" "$prefix/lib/libOpenCL.so.1"
# zlib's headers, in case the GPU machine has the library but not them. The
# library goes in under its link-time name alone, so that at run time the
# machine's own libz.so.1 is loaded, not this older copy.
cp /usr/include/zlib.h /usr/include/zconf.h "$prefix/include/"
cp "$(pkg_file zlib1g libz.so.1)" "$prefix/lib/libz.so"
for lib in jansson.so.4 dnnl.so.2; do
  ln -s "lib$lib" "$prefix/lib/lib${lib%.*}"
done
tar -C "$stage" -cf - prefix | xz -T0 -6 >"$dest/prefix.tar.xz"
du -sh "$dest"
