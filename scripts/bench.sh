#!/usr/bin/env bash
# The benchmark table documented in BENCHMARKS.md, reproduced from scratch on this machine:
# builds the runtime, the bench and the peer queues (release), installs the pinned Node tools
# (bench/package-lock.json) and wrk when missing, then runs `bench` and prints the table
# (also written to target/bench/latest.md).
#
#   scripts/bench.sh               the full table (about 1-2 minutes after the first build)
#   scripts/bench.sh --write-doc   ... and replace the figures in BENCHMARKS.md
#   scripts/bench.sh --polyglot    ... plus the JavaScript and Python workers' rows in section 1
#                                  (builds them with scripts/build-polyglot.sh: npm + pip, ~1 min)
#   scripts/bench.sh --smoke       tiny sizes, debug build, no peers / wrk / polyglot / jscpd, 50 PostgreSQL
#                                  jobs (a skip row without a server), the repomix worker's file selection
#                                  against the repomix CLI (npm install) on an edge-case tree; asserts no timings
#
# Other arguments go to the bench binary (--skip-instantiate, --skip-peers, --skip-http, --skip-tools, --skip-pg).
# PostgreSQL for section 7: ALEPHAUTO_BENCH_PG (else ALEPHAUTO_TEST_PG, else postgres://postgres@127.0.0.1:5432/test).
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=0
polyglot=0
write_doc=()
pass=()
for arg in "$@"; do
    case "$arg" in
        --smoke) smoke=1 ;;
        --write-doc) write_doc=(--write-doc BENCHMARKS.md) ;;
        --polyglot) polyglot=1; pass+=("$arg") ;;
        *) pass+=("$arg") ;;
    esac
done

rustup target add wasm32-wasip2 >/dev/null 2>&1 || true

if [ "$smoke" = 1 ]; then
    # Debug build: shares the artifacts of `cargo test`, so the CI hook stays cheap.
    cargo build --locked -q -p alephauto -p alephauto-bench
    # The smoke run compares the repomix worker's file selection with the repomix CLI's (pinned in
    # bench/package.json): install the Node tools when missing or stale.
    if [ ! -x bench/node_modules/.bin/repomix ] || ! cmp -s bench/package-lock.json bench/node_modules/.bench-installed-lock; then
        (cd bench && npm install --no-audit --no-fund --loglevel=error && cp package-lock.json node_modules/.bench-installed-lock)
    fi
    exec target/debug/bench --smoke --alephauto target/debug/alephauto "${pass[@]+"${pass[@]}"}"
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
apt_install() {
    if command -v apt-get >/dev/null 2>&1; then
        $SUDO apt-get update -qq
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
    else
        echo "bench: $* missing and apt-get unavailable" >&2
        return 1
    fi
}
missing=()
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)

# On a fresh machine the builds are most of the time, and the two cores are the limit:
# wrk and Node.js (Debian), the Node tools (and with --polyglot the polyglot components) and
# the effectum peer (its own workspace) are prepared in the background while the workspace builds, so waits
# on the network and single-crate tails of one build fill with work from the others.
mkdir -p target/bench
node_tools() {
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "bench: installing ${missing[*]}"
        apt_install "${missing[@]}"
    fi
    if [ ! -x bench/node_modules/.bin/repomix ] || ! cmp -s bench/package-lock.json bench/node_modules/.bench-installed-lock; then
        # `npm install`, not `npm ci`: npm drops the platform-specific optional packages of the
        # aliased jscpd 5 (`jscpd5`) from the lockfile and then refuses `npm ci`; every version
        # is still exact (package.json) and locked (package-lock.json).
        (cd bench && npm install --no-audit --no-fund --loglevel=error && cp package-lock.json node_modules/.bench-installed-lock)
    fi
    # Section 7's PostgreSQL peers (graphile-worker, pg-boss), pinned in their own package.json.
    if [ ! -d bench/peers/pg-node/node_modules/pg-boss ] || ! cmp -s bench/peers/pg-node/package-lock.json bench/peers/pg-node/node_modules/.bench-installed-lock; then
        (cd bench/peers/pg-node && npm install --no-audit --no-fund --loglevel=error && cp package-lock.json node_modules/.bench-installed-lock)
    fi
    if [ "$polyglot" = 1 ]; then ./scripts/build-polyglot.sh; fi
}
background="guest components, Node tools, "
if [ "$polyglot" = 1 ]; then background+="polyglot components, "; fi
echo "bench: building (release); ${missing[*]+"${missing[*]} (Debian), "}${background}the effectum peer in the background" >&2
# A failed foreground build must not leave the background ones running.
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
node_tools >target/bench/prepare-tools.log 2>&1 &
tools_pid=$!
# effectum pins rusqlite 0.31, whose libsqlite3-sys cannot join the workspace's graph. Its
# SQLite keeps libsqlite3-sys 0.28's options rather than taking the runtime's
# LIBSQLITE3_FLAGS (.cargo/config.toml), which slowed effectum's WAL burn-down here (10.1k vs
# 12.7-16.5k jobs/s), less the full-text, R-tree and dbstat modules: no queue statement
# uses them, and they are a third of the C compile.
LIBSQLITE3_FLAGS="-USQLITE_ENABLE_FTS3 -USQLITE_ENABLE_FTS3_PARENTHESIS -USQLITE_ENABLE_FTS5 -USQLITE_ENABLE_RTREE -USQLITE_ENABLE_DBSTAT_VTAB" \
    CARGO_TARGET_DIR=target/bench-peers cargo build --release --locked -q \
    --manifest-path bench/peers/effectum/Cargo.toml >target/bench/prepare-effectum.log 2>&1 &
effectum_pid=$!
# The guest components are only needed by the table, not by the compiler: built beside the
# host build instead of in the runtime's build script, so the runtime crate (the start of the
# build's single-crate tail) does not wait for them. Same commands and target folder as
# runtime/build.rs. The table runs four components: repomix,
# duplicate-detection, the no-op test fixture and the echo fixture (section 7's waiting jobs) (the HTTP section configures every built-in
# pipeline, but workers load lazily and it triggers only the no-op one); the other six
# workers would cost ~8 CPU-s more.
guests() {
    cargo build --release --target wasm32-wasip2 --manifest-path workers/Cargo.toml --target-dir target/wasm \
        -p repomix -p duplicate-detection
    cargo build --release --target wasm32-wasip2 --manifest-path tests/fixtures/Cargo.toml --target-dir target/wasm \
        -p fixture-noop -p fixture-echo
}
guests >target/bench/prepare-guests.log 2>&1 &
guests_pid=$!
ALEPHAUTO_SKIP_GUEST_BUILD=1 cargo build --release --locked -p alephauto -p alephauto-bench -p bench-peer-apalis
wait "$guests_pid" || { cat target/bench/prepare-guests.log >&2; echo "bench: building the guest components failed" >&2; exit 1; }
wait "$effectum_pid" || { cat target/bench/prepare-effectum.log >&2; echo "bench: building the effectum peer failed" >&2; exit 1; }
wait "$tools_pid" || { cat target/bench/prepare-tools.log >&2; echo "bench: installing wrk, the Node tools or the polyglot components failed" >&2; exit 1; }

target/release/bench --wrk "$(command -v wrk)" --node-modules bench/node_modules \
    --out target/bench/latest.md "${write_doc[@]+"${write_doc[@]}"}" "${pass[@]+"${pass[@]}"}"
