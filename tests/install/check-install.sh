#!/usr/bin/env bash
# Install cudl from BUILD_DIR into a scratch prefix, then build and run a
# plain C program against it twice: through pkg-config and through
# find_package, each with the shared and the static library.
# usage: check-install.sh BUILD_DIR SCRATCH_DIR [extra C flags...]
# The C compiler is $CC (default cc): the one the library was built with,
# since the static library's flags (OpenMP) are compiler-specific.
# Exits 77 (ctest: skipped) when pkg-config is not installed.
set -euo pipefail
cc=${CC:-cc}
build_dir=$1
scratch=$2
shift 2
extra_flags=("$@")
here=$(cd "$(dirname "$0")" && pwd)

if ! command -v pkg-config >/dev/null; then
  echo "SKIP: pkg-config is not installed (scripts/install-deps.sh installs it)"
  exit 77
fi

rm -rf "$scratch"
mkdir -p "$scratch"
prefix="$scratch/prefix"
cmake --install "$build_dir" --prefix "$prefix" >"$scratch/install.log"
libdir=$(find "$prefix" -name 'cudl.pc' -path '*pkgconfig*' -printf '%h\n' | head -n 1)
libdir=${libdir%/pkgconfig}
echo "installed into $prefix (libraries in $libdir)"

echo "--- pkg-config, shared library"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
"$cc" -std=c99 -Wall -Wextra -pedantic -Werror "${extra_flags[@]}" \
  "$here/consumer/consumer.c" -o "$scratch/pc_shared" \
  $(pkg-config --cflags --libs cudl) -Wl,-rpath,"$libdir"
"$scratch/pc_shared"

echo "--- pkg-config --static, static library"
"$cc" -std=c99 -Wall -Wextra -pedantic -Werror "${extra_flags[@]}" \
  "$here/consumer/consumer.c" -o "$scratch/pc_static" \
  $(pkg-config --cflags cudl) \
  $(pkg-config --static --libs cudl | sed "s#-lcudl\\b#$libdir/libcudl.a#")
"$scratch/pc_static"

echo "--- find_package(cudl), shared and static"
cmake -S "$here/consumer" -B "$scratch/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_C_COMPILER="$cc" \
  -DCMAKE_C_FLAGS="${extra_flags[*]}" >"$scratch/cmake.log"
cmake --build "$scratch/cmake-build" >>"$scratch/cmake.log"
"$scratch/cmake-build/consumer_shared"
"$scratch/cmake-build/consumer_static"
echo "install check passed"
