#!/usr/bin/env bash
# Builds {{wasm}} with componentize-py (pip install -r requirements.txt first, ideally in a venv),
# with the AlephAuto Python SDK on the module path ($ALEPHAUTO_GUEST_PY or the tree this was scaffolded from).
set -euo pipefail
cd "$(dirname "$0")"
SDK=${ALEPHAUTO_GUEST_PY:-{{guest_sdk_py}}}
componentize-py -d wit -w pipeline-worker componentize app -p . -p "$SDK" -o {{wasm}}
