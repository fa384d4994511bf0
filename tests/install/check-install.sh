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

# A CUDA build installs its backend module beside libcudl, and the
# installed program loads that one (not the build tree's).
module=$(find "$libdir" -maxdepth 1 -name 'libcudl_cuda.so.*' | head -n 1)
if [ -n "$module" ]; then
  echo "--- the CUDA backend module: $(basename "$module")"
  test -e "$libdir/libcudl_bench_cuda.so.${module##*.so.}" ||
    { echo "no libcudl_bench_cuda beside $module"; exit 1; }
  loaded=$(env -u CUDL_CUDA_MODULE "$prefix/bin/cudl" info | sed -n 's/^CUDA backend: \(\/.*\)/\1/p')
  if [ "$(readlink -f "$loaded")" != "$(readlink -f "$module")" ]; then
    echo "the installed cudl loads '$loaded', not the installed $module"
    "$prefix/bin/cudl" info
    exit 1
  fi
  if readelf -d "$libdir"/libcudl.so.*.*.* | grep -E 'NEEDED.*(libcudart|libcublas|libcudnn|libnccl)'; then
    echo "the installed libcudl links a CUDA library itself"
    exit 1
  fi
fi

echo "--- pkg-config, shared library"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
"$cc" -std=c99 -Wall -Wextra -pedantic -Werror "${extra_flags[@]}" \
  "$here/consumer/consumer.c" -o "$scratch/pc_shared" \
  $(pkg-config --cflags --libs cudl) -Wl,-rpath,"$libdir"
"$scratch/pc_shared"
# While the major version is 0 the soname carries the minor too
# (docs/api.md): the program needs libcudl.so.0.2, not libcudl.so.0.
version=$(pkg-config --modversion cudl)
soname="libcudl.so.${version%.*}"
test -e "$libdir/$soname" || { echo "no $libdir/$soname"; exit 1; }
if command -v readelf >/dev/null; then
  if ! readelf -d "$scratch/pc_shared" | grep -q "NEEDED.*\[$soname\]"; then
    echo "pc_shared does not need $soname:"
    readelf -d "$scratch/pc_shared" | grep NEEDED
    exit 1
  fi
fi

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
echo "--- examples/classify.c: built against the install, run on weights from cudl train"
examples=$(cd "$here/../../examples" && pwd)
"$cc" -std=c99 -Wall -Wextra -pedantic -Werror "${extra_flags[@]}" \
  "$examples/classify.c" -o "$scratch/classify" \
  $(pkg-config --cflags --libs cudl) -Wl,-rpath,"$libdir"
cmake -S "$examples" -B "$scratch/examples-build" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_C_COMPILER="$cc" -DCMAKE_C_FLAGS="${extra_flags[*]}" >>"$scratch/cmake.log"
cmake --build "$scratch/examples-build" >>"$scratch/cmake.log"
# A tiny Fashion-MNIST-format dataset (48 training, 16 test images of
# 28x28), one epoch of the small CNN on it, then the example classifies.
data="$scratch/tiny-fashion"
mkdir -p "$data"
python3 - "$data" <<'PY'
import gzip, struct, sys
d = sys.argv[1]
for split, n in (("train", 48), ("t10k", 16)):
    labels = bytes(i % 10 for i in range(n))
    pixels = bytes((labels[i] * 25 + (i * 7 + j * 13) % 30) % 256
                   for i in range(n) for j in range(784))
    with gzip.open(f"{d}/{split}-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 28, 28) + pixels)
    with gzip.open(f"{d}/{split}-labels-idx1-ubyte.gz", "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + labels)
PY
"$prefix/bin/cudl" train --data fashion-mnist --data-dir "$data" --epochs 1 \
  --batch 16 --device cpu --out "$scratch/run" --metrics "$scratch/run/metrics.jsonl" \
  >"$scratch/train.log" 2>&1
# The curves of the run, by the installed cudl-plot (where matplotlib is).
if /usr/bin/python3 -c "import matplotlib" 2>/dev/null; then
  "$prefix/bin/cudl-plot" "$scratch/run" -o "$scratch/curves.png"
  test -s "$scratch/curves.png"
fi
"$scratch/classify" "$scratch/run/model.safetensors" "$data" 16 | tee "$scratch/classify.log"
grep -q "^accuracy on the first 16 test images" "$scratch/classify.log"
"$scratch/examples-build/classify" "$scratch/run/model.safetensors" "$data" 4 >/dev/null
# The same weights compiled for inference on the CPU, on PNG files: one
# line per file, naming a class of the weights' list.
python3 - "$data" <<'PY'
import struct, sys, zlib
def chunk(kind, body):
    return (struct.pack(">I", len(body)) + kind + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xffffffff))
for name, shade in (("dark", 30), ("light", 220)):
    rows = b"".join(b"\x00" + bytes((shade + x * 3 + y) % 256 for x in range(28))
                    for y in range(28))
    with open(f"{sys.argv[1]}/{name}.png", "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 28, 28, 8, 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
PY
"$scratch/classify" --device cpu "$scratch/run/model.safetensors" \
  --image "$data/dark.png" "$data/light.png" | tee "$scratch/classify-png.log"
test "$(grep -c -E "^$data/(dark|light)\.png: [A-Za-z]" "$scratch/classify-png.log")" = 2
"$scratch/classify" --device cpu "$scratch/run/model.safetensors" "$data" 16 |
  grep -q "^accuracy on the first 16 test images: .* (cpu"
# A CUDA build: examples/embed_cuda.cu, a CUDA program running cudl on its
# own stream and buffers, built with nvcc against the install; run, it
# classifies, or exits 77 without a usable GPU. Not under a sanitizer's
# flags, which nvcc's host compilation does not get.
if [ "${CUDL_EXAMPLE_CUDA:-OFF}" = ON ] && [ ${#extra_flags[@]} -eq 0 ]; then
  echo "--- examples/embed_cuda.cu: built with nvcc against the install"
  cmake -S "$examples" -B "$scratch/examples-build" -DCUDL_EXAMPLE_CUDA=ON \
    >>"$scratch/cmake.log"
  cmake --build "$scratch/examples-build" >>"$scratch/cmake.log"
  rc=0
  "$scratch/examples-build/embed_cuda" 4 >"$scratch/embed_cuda.log" 2>&1 || rc=$?
  cat "$scratch/embed_cuda.log"
  if [ $rc -eq 0 ]; then
    grep -q "^classified 4 images on the program's stream" "$scratch/embed_cuda.log"
  elif [ $rc -ne 77 ]; then
    echo "embed_cuda failed (exit $rc)"
    exit 1
  fi
fi
if "$scratch/classify" >/dev/null 2>&1; then
  echo "classify without arguments must fail"
  exit 1
fi
echo "install check passed"
