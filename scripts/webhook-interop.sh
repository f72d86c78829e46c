#!/usr/bin/env bash
# Webhooks verified by Python's `standardwebhooks` package (PyPI, pinned), a receiver roster did
# not write. Usage: scripts/webhook-interop.sh [ROSTER_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."

ROSTER=${1:-target/debug/roster}
if [ ! -x "$ROSTER" ]; then
  cargo build -p roster-gateway --bin roster
fi

TOOLS=target/python-receivers
if [ ! -d "$TOOLS/standardwebhooks" ]; then
  python3 -m pip install --quiet --disable-pip-version-check --target "$TOOLS" \
    'standardwebhooks==1.1.0' >&2
fi
PYTHONPATH="$TOOLS" python3 scripts/webhook_interop.py "$ROSTER"
