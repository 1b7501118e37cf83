"""Puts the AlephAuto Python SDK (alephauto_guest) on the module path: $ALEPHAUTO_GUEST_PY, else the
guest-sdk-py folder of the AlephAuto tree this worker was scaffolded from. build.sh passes the same
folder to componentize-py."""

import os
import sys

SDK = os.environ.get("ALEPHAUTO_GUEST_PY", "{{guest_sdk_py}}")
if SDK not in sys.path:
    sys.path.insert(0, SDK)
