#!/usr/bin/env bash
# One prepared run on a GPU machine (H100/H200, CUDA 13, CMake and PyTorch in
# python3, no network). Builds for sm_90 alone, runs the whole test suite,
# runs cudl inside a CUDA program of its own (test_cuda_interop,
# examples/embed_cuda), runs the CUDA tests of every suite again under
# compute-sanitizer memcheck,
# runs the CLI on the GPU, and checks files against PyTorch's safetensors
# package when present, and benchmarks cudl against cuDNN and PyTorch (cudl
# bench, benchmarks/torch_ref.py, joined by benchmarks/report.py into bench/).
# Logs and summary.md go to the output directory: $1, else $OUT, else
# ./gpu-check-out. Meant to finish in under 9.5 minutes on 16 cores: build
# under 1 (27 s on an H200 machine), tests 1, benchmarks at most
# BENCH_SECONDS (default 270; about 4 by estimate, docs/benchmarks.md),
# racecheck and initcheck of the 16-bit kernels 1 minute each at most,
# memcheck what is left of TOTAL_SECONDS (default 540), at most
# MEMCHECK_SECONDS (default 270).
#
# Dependencies the GPU machine lacks (GoogleTest, Jansson, oneDNN, libpng,
# libjpeg) come from .gpu-deps/, made by scripts/stage-gpu-deps.sh on a
# Debian machine and carried along (the device tool's carry: .gpu-deps).
# Order: build, tests, the CLI on the GPU, benchmarks, sanitizers, so that a
# run cut short by its time limit has checked the code before it times it.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-gpu-check-out}}
mkdir -p "$out"
out=$(cd "$out" && pwd)
summary="$out/summary.md"
build=build-gpu
jobs=$(nproc)
failures=0

step() { # step NAME LOGFILE COMMAND... : run, time, record pass/fail
  local name=$1 log=$2 start end rc
  shift 2
  start=$(date +%s)
  "$@" >>"$log" 2>&1
  rc=$?
  end=$(date +%s)
  if [ $rc -eq 0 ]; then
    echo "| $name | pass | $((end - start)) s |" >>"$summary"
  else
    echo "| $name | FAIL (exit $rc, see $(basename "$log")) | $((end - start)) s |" >>"$summary"
    failures=$((failures + 1))
  fi
  return $rc
}

find_cudnn() {
  if [ -n "${CUDNN_ROOT:-}" ]; then echo "$CUDNN_ROOT"; return; fi
  for d in /usr/local/cuda /usr; do
    if [ -f "$d/include/cudnn_version.h" ]; then echo "$d"; return; fi
  done
  # PyTorch's wheels keep cuDNN in site-packages/nvidia/cudnn (a namespace
  # package, so ask for its path rather than its __file__).
  python3 - <<'PY' 2>/dev/null
import importlib.util, os
spec = importlib.util.find_spec("nvidia.cudnn")
for p in (spec.submodule_search_locations or []) if spec else []:
    if os.path.exists(os.path.join(p, "include", "cudnn_version.h")):
        print(p)
        break
PY
}

{
  echo "# cudl gpu-check, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
  echo
} >"$summary"

{
  nvidia-smi
  nvcc --version
  cmake --version | head -n 1
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
  command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer
} >"$out/env.txt" 2>&1
gpu=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -n 1)
echo "GPU: ${gpu:-none found}" >>"$summary"

cudnn=$(find_cudnn)
echo "cuDNN root: ${cudnn:-not found}" >>"$summary"
echo >>"$summary"
echo "| step | result | time |" >>"$summary"
echo "| --- | --- | --- |" >>"$summary"

# sm_90 SASS and PTX alone, on purpose: the H100/H200 this runs on needs
# nothing else, and the default list (CMakeLists.txt: sm_80, 86, 89, 90)
# would spend the build's minutes on code no card here runs.
args=(-G Ninja -DCUDL_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DCUDL_WERROR=ON
      -DCMAKE_BUILD_TYPE=RelWithDebInfo)
[ -n "$cudnn" ] && args+=(-DCUDNN_ROOT="$cudnn")
if [ -d .gpu-deps ]; then
  if [ -f .gpu-deps/prefix.tar.xz ] && [ ! -d .gpu-deps/prefix ]; then
    tar -C .gpu-deps -xJf .gpu-deps/prefix.tar.xz
  fi
  args+=(-DCMAKE_PREFIX_PATH="$PWD/.gpu-deps/prefix"
         -DCUDL_GTEST_SOURCE_DIR="$PWD/.gpu-deps/googletest")
  # The staged libraries' own dependencies (the OpenCL loader oneDNN
  # loads) are not on any RUNPATH.
  export LD_LIBRARY_PATH="$PWD/.gpu-deps/prefix/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

# The build keeps going past a failed target (-k 0), and the tests of the
# targets that did build still run: one device call then reports every
# problem, not only the first.
if step configure "$out/build.log" cmake -S . -B "$build" "${args[@]}"; then
  step build "$out/build.log" cmake --build "$build" -j "$jobs" -- -k 0
  # Bounded as a whole too: a hang (an event never reached) must not take
  # the rest of the device call.
  step "ctest (all tests)" "$out/ctest.log" \
    timeout 240 ctest --test-dir "$build" --output-on-failure -j 8 --timeout 120
  {
    grep -E "tests passed|tests failed" "$out/ctest.log"
    echo "$(grep -c '(Skipped)$' "$out/ctest.log") skipped; failed:"
    grep -E "^\s+[0-9]+ - .*\(Failed\)" "$out/ctest.log"
  } | sed 's/^/    /' >>"$summary"

  # The NCCL communicator (about 15 s): its GPU tests again, counted as
  # failed when they skipped (a build without NCCL, or no usable GPU, is
  # then visible here); and a data-parallel bench over NCCL under mpirun,
  # where the machine has one, whose JSON (outside bench/, so that the
  # report's grid keeps one point per configuration) gives the backend and
  # the all-reduce figures. One rank has nothing to exchange: this checks
  # that the path runs on a GPU, not NCCL's speed.
  step "test_dist_nccl: NCCL on the GPU, one rank" "$out/nccl.log" \
    timeout 60 "$build/tests/test_dist_nccl" --gtest_filter='DistNcclGpu*'
  if grep -q '^\[  SKIPPED \]' "$out/nccl.log"; then
    echo "| (test_dist_nccl above skipped its GPU tests: see nccl.log) | FAIL | |" >>"$summary"
    failures=$((failures + 1))
  fi
  if command -v mpirun >/dev/null && "$build/tools/cudl" info 2>/dev/null | grep '^MPI: yes' >/dev/null; then
    step "bench train resnet20 over NCCL (mpirun -np 1)" "$out/nccl.log" \
      timeout 60 mpirun --allow-run-as-root -np 1 "$build/tools/cudl" bench train \
      --device cuda --dist-backend nccl --model resnet20 --channels 3 --size 32 \
      --batch 128 --samples 20 --warmup 5 --json "$out/bench-train-nccl-np1.json"
  else
    echo "| bench train over NCCL (mpirun -np 1) | not run: no mpirun or no MPI in this build | |" >>"$summary"
  fi

  # cudl inside a program that already uses CUDA (a few seconds): the
  # interop tests again, counted as failed when they skipped (the one that
  # needs two GPUs is left out), and examples/embed_cuda, which exits 77 if
  # it finds no usable GPU: a failure here.
  step "test_cuda_interop: cudl on the caller's stream and memory" "$out/interop.log" \
    timeout 120 "$build/tests/test_cuda_interop" --gtest_filter='-*AnotherGpus*'
  if grep -q '^\[  SKIPPED \]' "$out/interop.log"; then
    echo "| (test_cuda_interop above skipped: see interop.log) | FAIL | |" >>"$summary"
    failures=$((failures + 1))
  fi
  step "examples/embed_cuda: a CUDA program running cudl on its stream" "$out/interop.log" \
    timeout 60 "$build/tests/embed_cuda" 8

  # The CLI on the GPU before the benchmarks: the training loop's
  # asynchronous parts (the loader's uploads, the step queue) have their
  # first run here.
  step "cudl info" "$out/extras.log" "$build/tools/cudl" info
  step "cudl demo --device cuda" "$out/extras.log" timeout 60 "$build/tools/cudl" demo --device cuda
  # --deterministic on the GPU: two runs of small-cnn (cuDNN convolutions,
  # batch norm) on a tiny set give the same weights file, byte for byte.
  det="$out/deterministic"
  mkdir -p "$det/data"
  python3 tests/cli/tiny_mnist.py "$det/data" 96 40 8 >/dev/null
  # A third run reads the losses every step instead of at the epoch's end
  # (--sync-every 1 against CUDA's 50: the step queue, cudl_count_hits and
  # cudl_l2_norm on the device), with the same weights and metrics lines.
  deterministic_twice() {
    local k
    for k in 1 2 3; do
      "$build/tools/cudl" train --device cuda --model small-cnn --data mnist \
        --data-dir "$det/data" --epochs 2 --batch 16 --deterministic \
        --log-every 2 --metrics "$det/run$k.jsonl" \
        $([ $k = 3 ] && echo --sync-every 1) --out "$det/run$k" || return 1
    done
    cmp "$det/run1/model.safetensors" "$det/run2/model.safetensors" &&
      cmp "$det/run1/model.safetensors" "$det/run3/model.safetensors" &&
      diff <(sed -E 's/"(seconds|images_per_second)": [0-9.e+-]*//g; s/run1/runK/g' "$det/run1.jsonl") \
        <(sed -E 's/"(seconds|images_per_second)": [0-9.e+-]*//g; s/run3/runK/g' "$det/run3.jsonl")
  }
  step "train --deterministic twice on the GPU, and read every step: the same bytes" \
    "$out/extras.log" env build="$build" det="$det" \
    timeout 150 bash -c "$(declare -f deterministic_twice); deterministic_twice"
  if python3 -c 'import safetensors' 2>/dev/null && [ -f scripts/safetensors_torch_check.py ]; then
    step "PyTorch safetensors interop" "$out/extras.log" \
      timeout 90 python3 scripts/safetensors_torch_check.py "$build"
  fi

  # Benchmarks: the operator table (cudl and cuDNN, then PyTorch on the same
  # cases), training throughput (cudl, then PyTorch as GPU users run it:
  # eager, CUDA graphs and torch.compile, FP32 under PyTorch's default TF32
  # setting and bf16/fp16 autocast channels-last), and the report. Each
  # command is bounded by what is left of BENCH_SECONDS; the PyTorch sweeps
  # also by their own budgets (TORCH_TRAIN_SECONDS, TORCH_COMPILE_SECONDS),
  # past which they start no new point and list what they left out.
  bench="$out/bench"
  mkdir -p "$bench"
  bench_end=$((SECONDS + ${BENCH_SECONDS:-270}))
  run_bench() { # run_bench NAME COMMAND...
    local name=$1 left=$((bench_end - SECONDS))
    shift
    if [ "$left" -lt 10 ]; then
      echo "| $name | not run: BENCH_SECONDS spent | |" >>"$summary"
      return 1
    fi
    step "$name" "$out/bench.log" timeout "$left" "$@"
  }
  cli="$build/tools/cudl"
  export PYTHONUNBUFFERED=1
  # The cuDNN each side runs on: cudl's loaded library (and its headers),
  # and PyTorch's own, which its wheels ship. Written at the end of the
  # summary; the JSON files and bench/report.md carry them too.
  cudl_cudnn() { "$cli" info 2>/dev/null | sed -n "s/^ *cuDNN ($1) *//p"; }
  torch_cudnn=$(python3 -c '
import torch
v = torch.backends.cudnn.version() or 0
d = ((v // 10000, v % 10000 // 100, v % 100) if v >= 90000
     else (v // 1000, v % 1000 // 100, v % 100))
print(torch.__version__, "uses", "%d.%d.%d" % d if v else "none")' 2>&1 | tail -n 1)
  cudl_loaded=$(cudl_cudnn loaded) cudl_headers=$(cudl_cudnn headers)
  cudnn_line="cuDNN: cudl loads ${cudl_loaded:-unknown} (built against \
${cudl_headers:-unknown} headers); PyTorch $torch_cudnn"
  run_bench "bench ops: cudl and cuDNN" "$cli" bench ops --device cuda \
    --size all --sweep --samples 10 --max-seconds 0.5 --json "$bench/ops-cudl.json"
  # The training grid: Fashion-MNIST-like and CIFAR-like inputs, batches 32
  # to 512, in fp32 and bf16 (and fp16 at batch 128, the headline point),
  # NCHW, and at batch 128 channels-last too (bf16 and fp16: the tensor-core
  # configurations PyTorch's AMP + channels-last runs). Both sides report
  # the median, fastest and slowest single step (30 steps after 5 untimed
  # ones).
  models="resnet20,small-cnn" inputs="1x28x28,3x32x32" batches="128,32,512"
  for model in ${models//,/ }; do
    for input in ${inputs//,/ }; do
      for batch in ${batches//,/ }; do
        c=${input%%x*} hw=${input##*x}
        precisions="fp32 bf16"
        [ "$batch" = 128 ] && precisions="fp32 bf16 fp16"
        for precision in $precisions; do
          layouts=nchw
          [ "$batch" = 128 ] && [ "$precision" != fp32 ] && layouts="nchw nhwc"
          for layout in $layouts; do
            run_bench "bench train $model $input batch $batch $precision $layout: cudl" \
              "$cli" bench train --device cuda --model "$model" \
              --batch "$batch" --channels "$c" --size "$hw" \
              --precision "$precision" --layout "$layout" --samples 30 --warmup 5 \
              --json "$bench/train-cudl-$model-$input-b$batch-$precision-$layout.json"
          done
        done
      done
    done
  done
  # One process for the whole eager and CUDA-graph sweep (72 points at
  # about a second each); batch 128 first, so that a budget cut loses the
  # other batches first.
  run_bench "bench train: PyTorch eager and CUDA graphs (fp32, bf16, fp16)" \
    python3 benchmarks/torch_ref.py train --device cuda --model "$models" \
    --inputs "$inputs" --batch "$batches" --modes eager,graphs \
    --precisions fp32,bf16,fp16 --steps 30 --warmup 5 \
    --time-budget "${TORCH_TRAIN_SECONDS:-100}" --json-dir "$bench"
  run_bench "bench ops: PyTorch" python3 benchmarks/torch_ref.py ops \
    --device cuda --size all --sweep --samples 10 --max-seconds 0.5 \
    --json "$bench/ops-pytorch.json"
  # torch.compile compiles forward and backward afresh for each point (tens
  # of seconds each, by estimate): ResNet-20 on CIFAR-like inputs at batch
  # 128 only, FP32 then bf16.
  run_bench "bench train: PyTorch torch.compile (fp32, bf16)" \
    python3 benchmarks/torch_ref.py train --device cuda --model resnet20 \
    --inputs 3x32x32 --batch 128 --modes compile --precisions fp32,bf16 \
    --steps 30 --warmup 5 --time-budget "${TORCH_COMPILE_SECONDS:-50}" \
    --json-dir "$bench"
  # Inference latency (issue 19): cudl's inference compile against PyTorch's
  # eval mode, inference_mode, frozen TorchScript and the forward in a CUDA
  # graph, ResNet-20 on CIFAR-like inputs at batch 1 and 64, fp32 NCHW and
  # bf16 channels-last; joined by infer_table.py into bench/infer/table.md.
  mkdir -p "$bench/infer"
  for point in fp32:nchw bf16:nhwc; do
    precision=${point%%:*} layout=${point##*:}
    for batch in 1 64; do
      run_bench "bench infer resnet20 batch $batch $precision $layout: cudl" \
        "$cli" bench infer --device cuda --model resnet20 --batch "$batch" \
        --precision "$precision" --layout "$layout" --samples 50 \
        --json "$bench/infer/cudl-resnet20-b$batch-$precision-$layout.json"
    done
    run_bench "bench infer resnet20 $precision $layout: PyTorch" \
      python3 benchmarks/torch_ref.py infer --device cuda --model resnet20 \
      --batch 1,64 --precision "$precision" --layout "$layout" --samples 50 \
      --json "$bench/infer/pytorch-resnet20-$precision-$layout.json"
  done
  if ls "$bench/infer"/*.json >/dev/null 2>&1; then
    step "bench infer table" "$out/bench.log" python3 benchmarks/infer_table.py \
      "$bench/infer" --out "$bench/infer/table.md"
  fi
  step "bench report" "$out/bench.log" python3 benchmarks/report.py "$bench"

  sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  # racecheck (shared-memory hazards of the block reductions) and initcheck
  # (reads of memory never written) on the 16-bit and channels-last
  # kernels: test_backends' bf16, f16 and nhwc CUDA rows, without the
  # 2^24 + 3 rows, 60 s each at most.
  for tool in racecheck initcheck; do
    step "$tool test_backends bf16/f16 rows" "$out/$tool.log" timeout 60 \
      "$sanitizer" --tool "$tool" --error-exitcode 1 \
      "$build/tests/test_backends" \
      --gtest_filter='*Cuda*_bf16:*Cuda*_f16:*Cuda*nhwc*:-*16777219*'
  done
  # memcheck on every suite's CUDA cases: test_cuda whole, and the *Cuda*
  # tests of each operator suite. Each run is bounded (memcheck slows
  # kernels many times over, and some tests use 2^24-element tensors), and
  # all of them together get MEMCHECK_SECONDS (default 270), so that the
  # whole script stays inside one 10-minute device call.
  memcheck_end=$((SECONDS + ${MEMCHECK_SECONDS:-270}))
  total_end=$((${TOTAL_SECONDS:-540} - 10))
  [ "$memcheck_end" -gt "$total_end" ] && memcheck_end=$total_end
  # The suites of the code that has run least on a GPU first.
  for t in "$build"/tests/test_cuda "$build"/tests/test_data "$build"/tests/test_loss \
    $(ls "$build"/tests/test_* | grep -vE '/test_(cuda|data|loss)$'); do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    left=$((memcheck_end - SECONDS))
    if [ "$left" -lt 20 ]; then
      echo "| memcheck $name | not run: MEMCHECK_SECONDS spent | |" >>"$summary"
      continue
    fi
    [ "$left" -gt 150 ] && left=150
    # The test that asks for more memory than the card has makes the CUDA
    # API report an error on purpose, which memcheck counts as one; the
    # fault-injection loop (hundreds of training steps) would take most of
    # the time allowed, and runs the code the other suites check; so would
    # test_backends' rows of 2^24 + 3 elements, whose kernels its smaller
    # rows run under memcheck (they still run, unsanitised, with the tests).
    # test_cuda_interop's *CallersStream* tests hold the stream with a
    # kernel that waits for the host: under a tool that serialises launches
    # they would only time out (they run unsanitised above).
    filter='*:-*TooLargeForTheCard*:*EveryAllocation*'
    if [ "$name" != test_cuda ]; then
      "$t" --gtest_list_tests 2>/dev/null | grep -q Cuda || continue
      filter='*Cuda*:-*TooLargeForTheCard*:*EveryAllocation*:*16777219*:*CallersStream*'
    fi
    if ! step "memcheck $name ($filter)" "$out/memcheck.log" timeout "$left" \
      "$sanitizer" --tool memcheck --leak-check full --error-exitcode 1 \
      "$t" --gtest_filter="$filter"; then
      if grep -q "Device not supported" "$out/memcheck.log"; then
        # Some machines (gVisor) refuse the sanitizer: not the code's fault.
        echo "| (memcheck above: compute-sanitizer does not support this device; not counted) | skipped | |" >>"$summary"
        failures=$((failures - 1))
        break
      fi
    fi
  done
  [ -f "$out/memcheck.log" ] && tail -n 3 "$out/memcheck.log" | sed 's/^/    /' >>"$summary"

fi

echo >>"$summary"
[ -n "${cudnn_line:-}" ] && echo "$cudnn_line" >>"$summary" && echo >>"$summary"
echo "failures: $failures" >>"$summary"
cat "$summary"
[ $failures -eq 0 ]
