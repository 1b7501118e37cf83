#!/usr/bin/env bash
# Builds {{wasm}} with componentize-py (pip install -r requirements.txt first, ideally in a venv).
set -euo pipefail
cd "$(dirname "$0")"
componentize-py -d wit -w pipeline-worker componentize app -o {{wasm}}
