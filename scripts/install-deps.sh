#!/usr/bin/env bash
# Install every Debian package cudl needs to build and test (--bench: and
# to run the benchmarks). Idempotent: when everything is present it only
# checks (no apt-get update).
#
# The CUDA toolkit (nvcc, cuBLAS) and cuDNN 9 are not Debian packages; the
# CUDA backend is built when they are found and skipped otherwise. NCCL
# (the communicator between GPU ranks, CUDL_NCCL) is not one either: it is
# built when nccl.h and libnccl are found in the CUDA toolkit's prefix
# (NVIDIA's CUDA images put them there), NCCL_ROOT or the system paths;
# elsewhere install NVIDIA's libnccl2 and libnccl-dev from NVIDIA's CUDA
# apt repository. This script installs none of them (CI builds CPU-only).
set -euo pipefail

packages=(
  cmake            # build system (>= 3.25)
  ninja-build      # fast builds
  gcc g++ make     # C99 library, C++17 tests
  pkg-config       # the install test builds a consumer with pkg-config
  libjansson-dev   # strict JSON parser (exact integers) for safetensors headers
  zlib1g-dev       # gzip-compressed datasets (IDX files such as Fashion-MNIST's)
  libpng-dev       # PNG decoding for image-folder datasets and predict --image
  libjpeg62-turbo-dev  # JPEG decoding (libjpeg-turbo) for the same
  dataset-fashion-mnist  # the real Fashion-MNIST files (/usr/share/datasets/fashion-mnist): tests, training
  libdnnl-dev      # oneDNN: the CPU backend's convolutions and sgemm
  libgtest-dev     # GoogleTest (also ships its sources in /usr/src/googletest)
  clang            # libFuzzer builds (CUDL_FUZZ=ON, scripts/fuzz.sh)
  libclang-rt-dev  # libclang_rt.fuzzer and the ASan/UBSan runtimes (Debian 12:
                   # libclang-rt-14-dev, which clang only recommends)
  python3          # the independent safetensors reader/writer used by tests
  python3-matplotlib  # cudl-plot (tools/cudl_plot.py): training curves; benchmarks/report.py's plots
  python3-jsonschema # ctest model_file_schema: docs/model-file.schema.json
  python3-numpy    # the Python binding (python/cudl) and its ctest suites
  python3-pip python3-setuptools  # ctest python_install: pip install ./python offline
  diffutils mount  # the CLI tests: cmp, and a small tmpfs to fill (as root)
  procps           # the CLI tests: pgrep (a FIFO's reader, check-outputs.sh)
  libopenmpi-dev   # MPI between CPU ranks of a data-parallel run (src/dist/comm_mpi.c)
  openmpi-bin      # mpirun: the distributed tests (tests/dist) and launching runs
  python3-onnx     # the ONNX checker on exported files (tests/interop, for /usr/bin/python3)
  nodejs           # ONNX Runtime for Node.js runs exported files (scripts/install-onnxruntime.sh)
)

# With --bench, also what the benchmarks need (scripts/bench-cpu.sh):
# PyTorch as the peer, OpenBLAS as the sgemm peer of bench_layers.
if [ "${1:-}" = "--bench" ]; then
  packages+=(
    python3-torch       # benchmarks/torch_ref.py and the goldens' generator
    libopenblas-dev     # bench_layers' OpenBLAS sgemm peer
  )
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# npm comes with some builds of nodejs (NodeSource's): the Debian package
# only where the command is missing, as the two conflict.
if ! command -v npm >/dev/null; then missing+=(npm); fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  "$(dirname "$0")/install-onnxruntime.sh"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"

# ONNX Runtime from the npm registry, into .onnxruntime/ (tests/interop).
"$(dirname "$0")/install-onnxruntime.sh"
