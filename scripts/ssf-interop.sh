#!/usr/bin/env bash
# Shared Signals SETs verified by Python's PyJWT (PyPI, pinned), a receiver roster did not write.
# Usage: scripts/ssf-interop.sh [ROSTER_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."

ROSTER=${1:-target/debug/roster}
if [ ! -x "$ROSTER" ]; then
  cargo build -p roster-gateway --bin roster
fi

TOOLS=target/python-ssf-receiver
if [ ! -d "$TOOLS/jwt" ]; then
  python3 -m pip install --quiet --disable-pip-version-check --target "$TOOLS" \
    'PyJWT[crypto]==2.10.1' >&2
fi
PYTHONPATH="$TOOLS" python3 scripts/ssf_interop.py "$ROSTER"
