#!/usr/bin/env bash
# Installs what is missing, builds Herald twice (build/ and the sanitizer
# build build-asan/), runs the CUnit unit tests, then runs the integration
# suite against the sanitizer build and fails if any server log contains a
# sanitizer report or a secret that a test run used. Exits non-zero on any
# failure.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

step() {
  printf '\n==> %s\n' "$*"
}

step "Installing missing dependencies"
scripts/install-deps.sh

step "Building build/"
scripts/build.sh

step "Building build-asan/ (AddressSanitizer + UndefinedBehaviorSanitizer)"
scripts/build.sh --sanitize

step "Running the unit tests"
unit_args=()
if [[ -f tests/unit/package.json ]]; then
  # Signature vectors computed by the official pusher Node SDK, so the C
  # code is checked against an independent implementation.
  vectors_file=$(mktemp)
  trap 'rm -f "$vectors_file"' EXIT
  node tests/unit/sdk-vectors.mjs >"$vectors_file"
  unit_args=(--sdk-vectors "$vectors_file")
fi
build/tests/unit/herald-unit-tests "${unit_args[@]}"

step "Running the CUnit suites through ctest (common/ and the relay)"
ctest --test-dir build --output-on-failure
bash tests/fuzz/run.sh 15

step "Running the integration tests against build-asan/"
artifacts="$repo/tests/integration/artifacts"
rm -rf "$artifacts"
integration_status=0
(
  cd tests/integration
  HERALD_BUILD_DIR=build-asan \
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    npm test
) || integration_status=$?

step "Running the relay checks (tests/relay) against build-asan/"
relay_status=0
(
  cd tests/relay
  if [[ -f package-lock.json ]]; then
    npm ci --no-audit --no-fund
  fi
  HERALD_RELAY_BINARY="$repo/build-asan/relay/herald-relay" \
    RELAY_CHECK_LOG_DIR="$artifacts/relay-check" \
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    npm test
) || relay_status=$?

step "Scanning server logs for sanitizer reports"
pattern='ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:'
reports=$(grep -rlE "$pattern" "$artifacts" 2>/dev/null || true)
if [[ -n "$reports" ]]; then
  echo "Sanitizer reports found in:" >&2
  while IFS= read -r log; do
    echo "--- $log" >&2
    grep -nE -A30 "$pattern" "$log" | head -60 >&2
  done <<<"$reports"
  exit 1
fi
echo "No sanitizer reports in $artifacts"

# Each run of the integration harness and of the relay checks lists the
# secrets it used in a secrets.json beside its logs.
scan_logs_for_secrets() {
  step "Scanning server logs for secrets"
  node tests/integration/scan-secrets.mjs "$artifacts"
}
scan_logs_for_secrets

if ((integration_status != 0)); then
  echo "Integration tests failed (exit status $integration_status); server logs are in $artifacts" >&2
  exit "$integration_status"
fi
if ((relay_status != 0)); then
  echo "Relay checks failed (exit status $relay_status); server logs are in $artifacts/relay-check" >&2
  exit "$relay_status"
fi
tests/deploy/run.sh

step "Running the browser tests (tests/browser) against build/"
tests/browser/run.sh
# The browser tests' servers log to the same artifacts directory.
scan_logs_for_secrets

echo "All tests passed."
