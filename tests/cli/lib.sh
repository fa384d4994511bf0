# Shared by the CLI test scripts (sourced). They set:
#   cudl     the binary (an absolute path: cases cd)
#   scratch  a directory of their own for outputs
#   area     the directory expect_error runs in and watches for changes
# and count failures in $failures, ending with `finish`.
failures=0

# begin CUDL_BINARY SCRATCH_DIR: set cudl (made absolute: cases cd), an
# emptied scratch and the area inside it.
begin() {
  cudl=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
  scratch=$2
  area="$scratch/area"
  rm -rf "$scratch"
  mkdir -p "$area"
}

expect() { # expect DESCRIPTION EXPECTED ACTUAL: an exit status, a count, a text
  # Compared as text: an arithmetic test of words errs, and its status
  # would read as equal.
  if [ "$2" != "$3" ]; then
    echo "FAIL: $1: got '$3', expected '$2'"
    failures=$((failures + 1))
  else
    echo "ok: $1"
  fi
}

expect_grep() { # expect_grep DESCRIPTION PATTERN FILE
  if grep -q -- "$2" "$3"; then
    echo "ok: $1"
  else
    echo "FAIL: $1: '$2' not in:"
    cat "$3"
    failures=$((failures + 1))
  fi
}

expect_true() { # expect_true DESCRIPTION COMMAND...: the command succeeds
  local desc=$1
  shift
  if "$@"; then
    echo "ok: $desc"
  else
    echo "FAIL: $desc"
    failures=$((failures + 1))
  fi
}

snapshot() { # every path under $area; files with size, time and checksum
  (cd "$area" && find . -type d -printf '%p dir\n' &&
    find . ! -type d -printf '%p %y %s %T@\n' &&
    find . -type f -exec md5sum {} + 2>/dev/null) | sort
}

# The lines of a stderr file that are neither notes of a run that started
# (what it trains, where it resumes) nor its progress lines.
error_lines() {
  grep -v -E '^cudl [a-z ]+: (training|resuming|removed|using|keeping|skipped) |^cudl: warning: skipped | epoch [0-9]+/[0-9]+  step [0-9]+/' "$1"
}

# expect_error DESCRIPTION STATUS PATTERN CUDL_ARGS...: the command exits
# with STATUS, prints exactly one error line on stderr (beside a started
# run's notes) that starts with the command and matches PATTERN, and makes
# or changes no file under $area.
expect_error() {
  local desc=$1 status=$2 pattern=$3 prefix before after rc
  shift 3
  case $1 in
    train | eval | predict | inspect | demo | info) prefix="cudl $1: " ;;
    bench)
      case ${2:-} in
        ops | train) prefix="cudl bench $2: " ;;
        *) prefix="cudl bench: " ;;
      esac ;;
    data)
      case ${2:-} in
        check) prefix="cudl data check: " ;;
        *) prefix="cudl data: " ;;
      esac ;;
    *) prefix="cudl: " ;; # no such command
  esac
  before=$(snapshot)
  (cd "$area" && timeout 60 "$cudl" "$@") >"$scratch/bad.out" 2>"$scratch/bad.err"
  rc=$?
  after=$(snapshot)
  sed 's/^/  stderr: /' "$scratch/bad.err"
  error_lines "$scratch/bad.err" >"$scratch/bad.line"
  expect "$desc: exit $status" "$status" "$rc"
  expect "$desc: one error line on stderr" 1 "$(wc -l <"$scratch/bad.line")"
  expect_grep "$desc: the line starts '$prefix'" "^$prefix" "$scratch/bad.line"
  expect_grep "$desc: the line says what" "$pattern" "$scratch/bad.line"
  if [ "$before" != "$after" ]; then
    echo "FAIL: $desc: files made or changed:"
    diff <(echo "$before") <(echo "$after")
    failures=$((failures + 1))
  fi
}

finish() {
  echo "$failures failure(s)"
  [ "$failures" -eq 0 ]
}

# fifo_reader_ready PID: wait until the reader that PID (a `timeout`
# wrapping it) started is blocked opening its FIFO, where the kernel
# already counts it as a reader, so that a writer opening the FIFO next
# finds it instead of racing the reader's start (the writer's open does
# not wait: a FIFO nobody reads is an error). Where the kernel does not say
# (/proc/PID/wchan), goes on after 5 s.
fifo_reader_ready() {
  local parent=$1 child i
  for ((i = 0; i < 500; ++i)); do
    for child in $(pgrep -P "$parent"); do
      [ "$(cat "/proc/$child/wchan" 2>/dev/null)" = wait_for_partner ] && return 0
    done
    sleep 0.01
  done
  echo "note: cannot see the FIFO's reader open it; going on"
}
