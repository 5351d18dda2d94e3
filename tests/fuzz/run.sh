#!/usr/bin/env bash
# Builds the libFuzzer harnesses of tests/fuzz in build-fuzz/ and runs each
# one from its seed corpus for a fixed time.
#
#   tests/fuzz/run.sh [SECONDS] [HARNESS...]
#
# SECONDS is the time per harness (default 20). HARNESS names a directory
# of tests/fuzz/corpus (client_frame, config, envelope, handshake,
# http_request, laravel_payload, trigger_body); without one, every harness
# runs, one after the other. Inputs the fuzzer finds go to build-fuzz/fuzz-corpus/HARNESS,
# never into the repository.
#
# Exits non-zero when a harness crashes, leaks, hits undefined behaviour or
# fails one of its checks. The failing input is saved as
# build-fuzz/fuzz-artifacts/HARNESS-crash-* (or -leak-, -timeout-), and the
# run's output as build-fuzz/fuzz-logs/HARNESS.log.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
seconds=${1:-20}
shift || true

if ! [[ $seconds =~ ^[1-9][0-9]*$ ]]; then
  echo "run.sh: SECONDS must be a positive whole number, got \"$seconds\"" >&2
  exit 2
fi

harnesses=("$@")
if ((${#harnesses[@]} == 0)); then
  for dir in "$repo"/tests/fuzz/corpus/*/; do
    harnesses+=("$(basename "$dir")")
  done
fi
for harness in "${harnesses[@]}"; do
  if [[ ! -d $repo/tests/fuzz/corpus/$harness ]]; then
    echo "run.sh: unknown harness \"$harness\": no tests/fuzz/corpus/$harness" >&2
    exit 2
  fi
done

if ! command -v clang >/dev/null 2>&1; then
  echo "run.sh: clang is not installed; install the Debian packages clang and libclang-rt-14-dev (scripts/install-deps.sh does)" >&2
  exit 1
fi

build="$repo/build-fuzz"
echo "run.sh: building the harnesses in $build"
CC=clang cmake -S "$repo" -B "$build" -DHERALD_FUZZ=ON -DHERALD_TESTS=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target herald-fuzzers -j"$(nproc)" >/dev/null

mkdir -p "$build/fuzz-artifacts" "$build/fuzz-logs"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

failed=()
for harness in "${harnesses[@]}"; do
  corpus="$build/fuzz-corpus/$harness"
  log="$build/fuzz-logs/$harness.log"
  mkdir -p "$corpus"
  echo "run.sh: fuzzing $harness for $seconds s"
  # The first directory receives new inputs; the seeds are only read.
  # -timeout fails an input that runs for 10 s, so a hang overruns the
  # time budget by at most that much.
  if "$build/tests/fuzz/fuzz_$harness" -max_total_time="$seconds" -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$build/fuzz-artifacts/$harness-" \
    "$corpus" "$repo/tests/fuzz/corpus/$harness" >"$log" 2>&1; then
    runs=$(grep -m1 '^stat::number_of_executed_units:' "$log" | awk '{print $2}')
    echo "run.sh: $harness passed: ${runs:-?} inputs"
  else
    echo "run.sh: $harness FAILED; the end of $log:" >&2
    grep -v '^#' "$log" | tail -40 >&2
    failed+=("$harness")
  fi
done

if ((${#failed[@]} > 0)); then
  echo "run.sh: failing harnesses: ${failed[*]}; inputs in $build/fuzz-artifacts" >&2
  exit 1
fi
echo "run.sh: all ${#harnesses[@]} harnesses passed"
