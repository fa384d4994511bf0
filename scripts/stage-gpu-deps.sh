#!/usr/bin/env bash
# Stage, from this (Debian) machine, the build dependencies a GPU machine
# without a package manager lacks: GoogleTest's sources; Jansson and oneDNN
# (headers and shared libraries, with the OpenCL loader that Debian's oneDNN
# loads); libpng and libjpeg(-turbo) (headers and shared libraries: the
# image decoders the build requires since 6380d13); zlib's headers. Written
# to .gpu-deps/ (ignored by git): googletest/
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
# libpng and libjpeg: required at configure time (src/CMakeLists.txt), and
# shipped under their sonames, since a GPU machine that lacks the headers
# may lack the libraries too (Ubuntu's libjpeg-turbo is libjpeg.so.8).
cp /usr/include/png.h /usr/include/pngconf.h /usr/include/pnglibconf.h \
  /usr/include/jpeglib.h /usr/include/jmorecfg.h /usr/include/jerror.h \
  /usr/include/x86_64-linux-gnu/jconfig.h "$prefix/include/"
cp "$(pkg_file libpng16-16 libpng16.so.16)" "$prefix/lib/libpng16.so.16"
cp "$(pkg_file libjpeg62-turbo libjpeg.so.62)" "$prefix/lib/libjpeg.so.62"
ln -s libpng16.so.16 "$prefix/lib/libpng16.so"
ln -s libpng16.so "$prefix/lib/libpng.so"
for lib in jansson.so.4 dnnl.so.2 jpeg.so.62; do
  ln -s "lib$lib" "$prefix/lib/lib${lib%.*}"
done
tar -C "$stage" -cf - prefix | xz -T0 -6 >"$dest/prefix.tar.xz"
du -sh "$dest"
