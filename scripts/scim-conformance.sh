#!/usr/bin/env bash
# SCIM conformance: runs scim2-tester (PyPI, pinned) against a fresh roster on the embedded log,
# for Users and Groups. Usage: scripts/scim-conformance.sh [ROSTER_BINARY] [-v]
set -euo pipefail
cd "$(dirname "$0")/.."

ROSTER=${1:-target/debug/roster}
shift || true
if [ ! -x "$ROSTER" ]; then
  cargo build -p roster-gateway --bin roster
fi

TOOLS=target/scim-tester-0.5.2
if [ ! -d "$TOOLS/scim2_tester" ]; then
  python3 -m pip install --quiet --disable-pip-version-check --target "$TOOLS" \
    'scim2-tester[httpx2]==0.5.2' >&2
fi

WORK=$(mktemp -d)
"$ROSTER" serve --data-dir "$WORK/data" --http 127.0.0.1:0 --grpc 127.0.0.1:0 >"$WORK/serve.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
HTTP= GRPC=
for _ in $(seq 300); do
  HTTP=$(sed -n 's/.*SCIM HTTP listening address=\([0-9.:]*\).*/\1/p' "$WORK/serve.log" | head -n 1)
  GRPC=$(sed -n 's/.*gRPC listening address=\([0-9.:]*\).*/\1/p' "$WORK/serve.log" | head -n 1)
  [ -n "$HTTP" ] && [ -n "$GRPC" ] && break
  sleep 0.1
done
if [ -z "$HTTP" ] || [ -z "$GRPC" ]; then
  cat "$WORK/serve.log" >&2
  echo "roster did not start" >&2
  exit 1
fi
TOKEN=$("$ROSTER" tenant create conformance --grpc "$GRPC" --data-dir "$WORK/data" | tail -n 1)
PYTHONPATH="$TOOLS" python3 scripts/scim_conformance.py "http://$HTTP/scim/v2/conformance" "$TOKEN" "$@"
