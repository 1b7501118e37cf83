#!/usr/bin/env bash
# One-time set-up of a fresh machine: everything beyond the Rust toolchain that the
# project needs. Idempotent; safe to run before every build.
set -euo pipefail
cd "$(dirname "$0")/.."

# rust-toolchain.toml names the target, but rustup only installs it on its own when
# it installs the toolchain; make sure it is there.
rustup target add wasm32-wasip2 >/dev/null

command -v git >/dev/null || { echo "git is required" >&2; exit 1; }

# cargo-deny for the lint gate's license and ban checks (scripts/lint.sh, deny.toml); built
# from crates.io once (about 3.5 CPU-minutes), skipped when the pinned version is installed.
CARGO_DENY_VERSION=0.20.2
if [ "$(cargo deny --version 2>/dev/null)" != "cargo-deny $CARGO_DENY_VERSION" ]; then
    echo "setup: cargo install cargo-deny@$CARGO_DENY_VERSION" >&2
    # Its own target folder: not the project's CARGO_TARGET_DIR / build dir.
    env -u CARGO_TARGET_DIR -u CARGO_BUILD_BUILD_DIR cargo install --locked --quiet "cargo-deny@$CARGO_DENY_VERSION"
fi

# Headless Chromium for the dashboard's browser test (tests/e2e/dashboard.rs drives it
# over the DevTools protocol). Installed only when missing; needs apt (Debian/Ubuntu).
if ! command -v chromium >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        SUDO=""
        if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
        $SUDO apt-get update -qq
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core
    else
        echo "chromium not found and apt-get unavailable: the dashboard browser test will be skipped" >&2
    fi
fi

# Non-Rust workers (workers-polyglot/): installs the pinned ComponentizeJS and componentize-py
# and builds their components into target/polyglot/; skips a language whose tools are missing.
./scripts/build-polyglot.sh

# The metrics test (tests/e2e/client.rs) parses /metrics with the reference Python parser,
# prometheus_client, pinned, in its own venv under target/ (the test names this script when it
# is missing).
PROM_VENV=target/prom-venv
PROM_CLIENT=prometheus_client==0.26.0
if command -v python3 >/dev/null && python3 -c 'import venv, ensurepip' 2>/dev/null; then
    if [ "$(cat "$PROM_VENV/.installed" 2>/dev/null)" != "$PROM_CLIENT" ]; then
        python3 -m venv "$PROM_VENV"
        "$PROM_VENV/bin/pip" install --quiet --disable-pip-version-check "$PROM_CLIENT"
        echo "$PROM_CLIENT" > "$PROM_VENV/.installed"
    fi
else
    echo "python3 with venv/ensurepip not found: the metrics parse test will fail until it is installed" >&2
fi

# The API contract tests (tests/e2e/contract.rs) run openapi-spec-validator and schemathesis,
# pinned, from a venv at target/contract/venv; (re)installed only when missing or the pins change.
CONTRACT_VENV=target/contract/venv
CONTRACT_PINS="openapi-spec-validator==0.9.0 schemathesis==4.32.5"
if [ "$(cat "$CONTRACT_VENV/.pins" 2>/dev/null)" != "$CONTRACT_PINS" ]; then
    if command -v python3 >/dev/null && python3 -c 'import venv, ensurepip' 2>/dev/null; then
        echo "setup: pip install $CONTRACT_PINS (into $CONTRACT_VENV)"
        python3 -m venv "$CONTRACT_VENV"
        # shellcheck disable=SC2086 # the pins are separate words on purpose
        "$CONTRACT_VENV/bin/pip" install --quiet --disable-pip-version-check $CONTRACT_PINS
        echo "$CONTRACT_PINS" > "$CONTRACT_VENV/.pins"
    else
        echo "python3 with venv not found: the API contract tests (tests/e2e/contract.rs) will fail until it is installed" >&2
    fi
fi

# The cluster tests use PostgreSQL at 127.0.0.1:5432; machines of this kind run it, but
# start it when it is installed and stopped.
if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then
    if command -v pg_ctlcluster >/dev/null 2>&1; then
        for v in $(ls /etc/postgresql 2>/dev/null); do pg_ctlcluster --skip-systemctl-redirect "$v" main start || true; done
    fi
fi
