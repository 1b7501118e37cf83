#!/usr/bin/env bash
# The whole test suite: host unit and end-to-end tests (which build every guest
# component first, through runtime/build.rs), then the guests' own unit tests.
# Ends with one summary line of the Rust test counts.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

mkdir -p target
log=target/test-output.log
: >"$log"
run() { "$@" 2>&1 | tee -a "$log"; }

# The apalis peer queue is a bench-only binary without tests (built by scripts/bench.sh).
# `test-hooks`: failpoints (the crash-point suite, tests/e2e/crash.rs, kills the server at them)
# and the scheduler's file clock, which tests/e2e/schedules.rs drives.
run cargo test --workspace --exclude bench-peer-apalis --locked --features alephauto/test-hooks -- --test-threads=2

# The non-Rust workers' own unit tests (node --test, python3 -m unittest); builds are up to date.
./scripts/build-polyglot.sh --unit-tests

# The benchmark suite in miniature (tiny sizes, no timing asserts), so it never rots.
./scripts/bench.sh --smoke >target/bench-smoke.log 2>&1 || { cat target/bench-smoke.log; exit 1; }
echo "bench smoke: ok (table in target/bench-smoke.log)"

if [ -f workers/Cargo.toml ]; then
  # Worker logic compiled for the host, with plain tempdir fixtures.
  CARGO_TARGET_DIR=target/wasm-native run cargo test --locked --manifest-path workers/Cargo.toml
fi

passed=$(awk '/^test result:/ {s += $4} END {print s + 0}' "$log")
failed=$(awk '/^test result:/ {s += $6} END {print s + 0}' "$log")
echo "$passed passed, $failed failed"
