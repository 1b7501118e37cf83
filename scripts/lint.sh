#!/usr/bin/env bash
# The lint gate, run by .ci/run before the tests (it fails in minutes, not after the suite):
# formatting and clippy (-D warnings) on the host workspace and both guest workspaces, the
# three copies of the lint table kept equal, and cargo-deny's licenses and bans (deny.toml)
# when cargo-deny is installed (scripts/setup.sh installs it).
#
#   scripts/lint.sh          everything
#   scripts/lint.sh --fix    cargo fmt in every workspace first, then the checks
set -euo pipefail
cd "$(dirname "$0")/.."

guests=(workers/Cargo.toml tests/fixtures/Cargo.toml)
step() { echo "lint: $*" >&2; }

if [ "${1:-}" = "--fix" ]; then
    cargo fmt --all
    for m in "${guests[@]}"; do cargo fmt --all --manifest-path "$m"; done
fi

step "rustfmt --check (host, workers, fixtures)"
cargo fmt --all --check
for m in "${guests[@]}"; do cargo fmt --all --check --manifest-path "$m"; done

step "one lint table in three workspaces"
lints() { sed -n '/^\[workspace\.lints/,/^\[workspace\.dependencies\]/p' "$1" | grep -v '^#\|^\[workspace\.dependencies\]'; }
for m in "${guests[@]}"; do
    if ! diff <(lints Cargo.toml) <(lints "$m") >&2; then
        echo "lint: the [workspace.lints] tables of Cargo.toml and $m differ" >&2
        exit 1
    fi
done

step "clippy -D warnings (host workspace, all targets)"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "clippy -D warnings (runtime with the test hooks the suite builds: failpoints, the test clock)"
cargo clippy -p alephauto --all-targets --locked --features test-hooks -- -D warnings
# The guests' own target folders, as runtime/build.rs (wasm) and scripts/test.sh (native
# unit tests) use them, so the builds after this one reuse what it compiled.
step "clippy -D warnings (workers and guest SDK: native with tests, and wasm32-wasip2)"
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/wasm-native" \
    cargo clippy --workspace --all-targets --locked --manifest-path workers/Cargo.toml -- -D warnings
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/wasm" \
    cargo clippy --workspace --locked --target wasm32-wasip2 --manifest-path workers/Cargo.toml -- -D warnings
step "clippy -D warnings (test fixtures, wasm32-wasip2)"
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/wasm" \
    cargo clippy --workspace --locked --target wasm32-wasip2 --manifest-path tests/fixtures/Cargo.toml -- -D warnings

if command -v cargo-deny >/dev/null 2>&1; then
    # Licenses and bans need no advisory database (no network beyond crates.io for metadata).
    step "cargo deny check licenses bans (host, workers, fixtures)"
    for m in Cargo.toml "${guests[@]}"; do
        cargo deny --locked --config deny.toml --manifest-path "$m" check licenses bans
    done
else
    echo "lint: cargo-deny is not installed (scripts/setup.sh installs it); licenses and bans not checked" >&2
    if [ -n "${CI:-}" ]; then exit 1; fi
fi
step "ok"
