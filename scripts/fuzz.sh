#!/usr/bin/env bash
# Fuzz every libFuzzer target of tests/fuzz for a bounded time under
# AddressSanitizer + UndefinedBehaviorSanitizer (what CI runs last):
#
#   scripts/fuzz.sh [SECONDS] [OUTDIR]
#
# SECONDS: per target (default $CUDL_FUZZ_SECONDS, else 60). OUTDIR
# (default <build>/fuzz-out) receives, per target, fuzz.log, the working
# corpus (the committed seeds copied, plus what the fuzzer added: the
# committed corpus is never written to) and any reproducer (crash-*,
# leak-*, timeout-*, oom-*), and summary.md: executions, coverage and the
# outcome of each target. CUDL_FUZZ_BUILD_DIR picks the build (default
# build-fuzz: clang, -DCUDL_FUZZ=ON, CPU only). Exit status 1 when any
# target crashed, leaked, broke one of its checks, hung or ran out of
# memory; the reproducer is named in the summary.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-${CUDL_FUZZ_SECONDS:-60}}
build_dir=${CUDL_FUZZ_BUILD_DIR:-build-fuzz}
out=${2:-$build_dir/fuzz-out}
case $seconds in
  '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS] [OUTDIR]" >&2; exit 2 ;;
esac

scripts/install-deps.sh # clang, and libclang-rt-dev for libFuzzer itself

# Fail here, saying what is missing, rather than in the middle of the build.
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n)\n{ (void)d; (void)n; return 0; }\n' \
  >"$probe/probe.c"
if ! clang -fsanitize=fuzzer,address,undefined "$probe/probe.c" -o "$probe/probe" \
  >"$probe/log" 2>&1; then
  cat "$probe/log" >&2
  echo "fuzz.sh: clang cannot link libFuzzer: install clang and libclang-rt-dev" \
    "(scripts/install-deps.sh)" >&2
  exit 1
fi

CC=clang CXX=clang++ cmake -S . -B "$build_dir" -G Ninja -DCUDL_CUDA=OFF \
  -DCUDL_FUZZ=ON -DCUDL_WERROR=ON
cmake --build "$build_dir" --target fuzz_safetensors fuzz_data fuzz_checkpoint \
  fuzz_image fuzz_model_file
# Every committed seed once, before spending time on mutations.
ctest --test-dir "$build_dir" -R '^fuzz_.*_seeds$' --output-on-failure

# Reports of both sanitizers end the run (libFuzzer saves the input);
# leaks are checked after every input.
export ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

root=$PWD
mkdir -p "$out"
out=$(cd "$out" && pwd)
bin=$(cd "$build_dir/tests/fuzz" && pwd)
summary=$out/summary.md
{
  echo "# scripts/fuzz.sh: ${seconds} s per target"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $(clang --version | head -1)," \
    "ASan + UBSan, one process per target"
  echo
  echo "Edges (libFuzzer's cov), features (ft) and corpus: after the seeds -> at the end."
  echo
  echo "| target | seeds | executions | exec/s | edges | features | corpus | new units | peak RSS MB | result |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
} >"$summary"

failed=0
for spec in safetensors:corpus:safetensors.dict data:corpus-data:data.dict \
  image:corpus-image:image.dict \
  checkpoint:corpus-checkpoint:checkpoint.dict \
  model_file:corpus-model-file:model_file.dict; do
  IFS=: read -r name corpus dict <<<"$spec"
  target=fuzz_$name
  dir=$out/$target
  rm -rf "$dir"
  mkdir -p "$dir/corpus" "$dir/tmp"
  cp "$root/tests/fuzz/$corpus"/* "$dir/corpus/"
  seeds=$(find "$dir/corpus" -type f | wc -l)
  echo "=== $target: $seconds s from $seeds seeds (tests/fuzz/$corpus) ==="
  rc=0
  # -timeout: an input that takes this long is a hang, which fails too.
  (cd "$dir" && TMPDIR="$dir/tmp" "$bin/$target" -max_total_time="$seconds" \
    -timeout=60 -dict="$root/tests/fuzz/$dict" -print_final_stats=1 \
    -artifact_prefix="$dir/" corpus) >"$dir/fuzz.log" 2>&1 || rc=$?
  final_stat() { sed -n "s/^stat::$1: *//p" "$dir/fuzz.log" | tail -1; }
  runs=$(final_stat number_of_executed_units)
  speed=$(final_stat average_exec_per_sec)
  added=$(final_stat new_units_added)
  rss=$(final_stat peak_rss_mb)
  # libFuzzer's status lines: "#N INITED cov: E ft: F corp: C/size ...".
  field() { sed -n "s/.* $1: \([0-9]*\).*/\1/p" <<<"$2"; }
  first=$(grep -E '^#[0-9]+.*INITED.* cov: ' "$dir/fuzz.log" | head -1 || true)
  last=$(grep -E '^#[0-9]+.* cov: ' "$dir/fuzz.log" | tail -1 || true)
  cov="$(field cov "$first") -> $(field cov "$last")"
  ft="$(field ft "$first") -> $(field ft "$last")"
  corp="$(field corp "$first") -> $(field corp "$last")"
  grep -E '^Done [0-9]+ runs' "$dir/fuzz.log" || true
  grep '^stat::' "$dir/fuzz.log" || true
  artifacts=$(find "$dir" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' \
    -o -name 'timeout-*' -o -name 'oom-*' -o -name 'slow-unit-*' \) -printf '%f ')
  if [ "$rc" -eq 0 ]; then
    result=ok
  else
    failed=1
    result="FAILED (exit $rc) ${artifacts:-no reproducer saved}"
    echo "--- $target failed; the end of $dir/fuzz.log: ---"
    tail -60 "$dir/fuzz.log"
  fi
  echo "| $target | $seeds | ${runs:--} | ${speed:--} | $cov | $ft | $corp | ${added:--} | ${rss:--} | $result |" \
    >>"$summary"
done

echo
cat "$summary"
if [ "$failed" -ne 0 ]; then
  echo "fuzz.sh: a target failed; reproduce with <build>/tests/fuzz/<target> <reproducer>" >&2
  exit 1
fi
