#!/usr/bin/env bash
# Builds the non-Rust pipeline workers in workers-polyglot/ into target/polyglot/:
#   js/<id>/guest.js     -> target/polyglot/<id_with_underscores>.wasm  (guest-sdk-js's alephauto-guest-build:
#                           rolldown + ComponentizeJS, pinned in package-lock.json)
#   python/<id>/app.py   -> target/polyglot/<id_with_underscores>.wasm  (componentize-py, pinned in requirements.txt,
#                           with guest-sdk-py on the module path)
# Tools are installed by this script: `npm ci` in workers-polyglot/ and a venv at target/polyglot/venv.
# A language whose tool (npm, python3) is missing is skipped with a message, not a failure.
# Incremental: a component newer than its sources and the WIT is not rebuilt.
#
# Usage: scripts/build-polyglot.sh [--unit-tests] [--force]
#   --unit-tests  also run the SDKs' and the workers' native unit tests (node --test, python3 -m unittest)
#   --force       rebuild every component
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SRC=$ROOT/workers-polyglot
OUT=$ROOT/target/polyglot
WIT=$ROOT/wit
WORLD=pipeline-worker
UNIT_TESTS=0
FORCE=0
for arg in "$@"; do
  case "$arg" in
    --unit-tests) UNIT_TESTS=1 ;;
    --force) FORCE=1 ;;
    *) echo "usage: $0 [--unit-tests] [--force]" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT"

# True when $1 (a .wasm) is missing or older than any file in the folders that follow or the WIT.
stale() {
  local wasm=$1
  shift
  [ "$FORCE" = 1 ] && return 0
  [ -f "$wasm" ] || return 0
  [ -n "$(find -L "$@" "$WIT" -type f -newer "$wasm" -not -path '*/__pycache__/*' -not -path '*/node_modules/*' -print -quit)" ]
}

# ---- JavaScript (ComponentizeJS) ----
if command -v node >/dev/null && command -v npm >/dev/null; then
  # npm ci wipes node_modules; only run it when the lockfile changed since the last install.
  if [ ! -x "$SRC/node_modules/.bin/componentize-js" ] || [ "$SRC/package-lock.json" -nt "$SRC/node_modules/.package-lock.json" ]; then
    echo "build-polyglot: npm ci (the JS SDK, rolldown, ComponentizeJS)"
    (cd "$SRC" && npm ci --no-audit --no-fund --loglevel=error)
  fi
  JS_SDK=$ROOT/guest-sdk-js
  if [ "$UNIT_TESTS" = 1 ]; then
    echo "build-polyglot: node --test guest-sdk-js"
    (cd "$JS_SDK" && node --test test/)
  fi
  for dir in "$SRC"/js/*/; do
    [ -f "$dir/guest.js" ] || continue
    id=$(basename "$dir")
    wasm=$OUT/${id//-/_}.wasm
    if stale "$wasm" "$dir" "$JS_SDK/src" "$JS_SDK/bin" "$JS_SDK/wit"; then
      echo "build-polyglot: alephauto-guest-build $id -> ${wasm#$ROOT/}"
      # Bundles guest.js with its imports (rolldown), then ComponentizeJS against the SDK's
      # pipeline-worker-js world (pipeline-worker + wasi:filesystem), without wasi:http.
      (cd "$dir" && node "$JS_SDK/bin/build.mjs" guest.js -o "$wasm" >/dev/null)
    fi
    if [ "$UNIT_TESTS" = 1 ] && ls "$dir"/*.test.mjs >/dev/null 2>&1; then
      (cd "$dir" && node --test ./*.test.mjs)
    fi
  done
else
  echo "build-polyglot: SKIP JavaScript workers: node/npm not found (install Node.js 20+ to build them)"
fi

# ---- Python (componentize-py) ----
if command -v python3 >/dev/null && python3 -c 'import venv, ensurepip' 2>/dev/null; then
  VENV=$OUT/venv
  if [ ! -x "$VENV/bin/componentize-py" ] || [ "$SRC/requirements.txt" -nt "$VENV/.installed" ]; then
    echo "build-polyglot: pip install -r workers-polyglot/requirements.txt (into target/polyglot/venv)"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$SRC/requirements.txt"
    touch "$VENV/.installed"
  fi
  PY_SDK=$ROOT/guest-sdk-py
  if [ "$UNIT_TESTS" = 1 ]; then
    echo "build-polyglot: python3 -m unittest guest-sdk-py"
    (cd "$PY_SDK" && python3 -m unittest discover -q -s tests -t .)
  fi
  for dir in "$SRC"/python/*/; do
    [ -f "$dir/app.py" ] || continue
    id=$(basename "$dir")
    wasm=$OUT/${id//-/_}.wasm
    if stale "$wasm" "$dir" "$PY_SDK/alephauto_guest"; then
      echo "build-polyglot: componentize-py $id -> ${wasm#$ROOT/}"
      "$VENV/bin/componentize-py" -d "$WIT" -w "$WORLD" componentize app -p "$dir" -p "$PY_SDK" -o "$wasm.tmp" >/dev/null
      mv "$wasm.tmp" "$wasm"
    fi
    if [ "$UNIT_TESTS" = 1 ] && ls "$dir"/test_*.py >/dev/null 2>&1; then
      (cd "$dir" && PYTHONPATH="$PY_SDK" python3 -m unittest -q)
    fi
  done
else
  echo "build-polyglot: SKIP Python workers: python3 with venv/ensurepip not found (install Python 3.10+ to build them)"
fi
