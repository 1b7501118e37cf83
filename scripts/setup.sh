#!/usr/bin/env bash
# One-time set-up of a fresh machine: everything beyond the Rust toolchain that the
# project needs. Idempotent; safe to run before every build.
set -euo pipefail
cd "$(dirname "$0")/.."

# rust-toolchain.toml names the target, but rustup only installs it on its own when
# it installs the toolchain; make sure it is there.
rustup target add wasm32-wasip2 >/dev/null

command -v git >/dev/null || { echo "git is required" >&2; exit 1; }
