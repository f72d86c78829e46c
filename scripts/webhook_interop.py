#!/usr/bin/env python3
"""Webhooks checked by a receiver roster did not write: Python's `standardwebhooks` package.

Starts a fresh roster (embedded log), a receiver on 127.0.0.1 that verifies every request with
`standardwebhooks.Webhook.verify`, subscribes it with `roster webhook add`, provisions,
deactivates and deletes a user over SCIM, and checks that exactly `user.deactivated` then
`user.deleted` arrived, verified, with `webhook-id` equal to the event id. The receiver answers
503 to its first request, so a retry is exercised too. Exits 0 on success, 1 otherwise.

Usage: PYTHONPATH=<dir with standardwebhooks> scripts/webhook_interop.py [ROSTER_BINARY]
"""

import http.server
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from standardwebhooks import Webhook

ROSTER = sys.argv[1] if len(sys.argv) > 1 else "target/debug/roster"


class Receiver(http.server.BaseHTTPRequestHandler):
    secret = None
    received = []
    requests = 0
    lock = threading.Lock()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        with Receiver.lock:
            Receiver.requests += 1
            first = Receiver.requests == 1
        if first or Receiver.secret is None:
            self.send_response(503)  # down for a moment: roster must retry
            self.end_headers()
            return
        try:
            payload = Webhook(Receiver.secret).verify(body, dict(self.headers))
        except Exception as error:  # a bad signature is a failure of the test
            print(f"signature check failed: {error}", file=sys.stderr)
            self.send_response(401)
            self.end_headers()
            return
        with Receiver.lock:
            Receiver.received.append((self.headers["webhook-id"], payload))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def scim(base, token, method, path, body=None):
    request = urllib.request.Request(
        base + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"authorization": f"Bearer {token}", "content-type": "application/scim+json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read()
        return json.loads(text) if text else None


def main():
    work = tempfile.mkdtemp()
    data = os.path.join(work, "data")
    log = open(os.path.join(work, "serve.log"), "w+")
    server = subprocess.Popen(
        [ROSTER, "serve", "--data-dir", data, "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0",
         "--admin-http", "off", "--webhook-retry-schedule", "100ms,200ms,400ms,800ms"],
        stderr=log, stdout=subprocess.DEVNULL)
    try:
        http_addr = grpc_addr = None
        for _ in range(300):
            log.seek(0)
            text = log.read()
            http_match = re.search(r"SCIM HTTP listening address=([0-9.:]+)", text)
            grpc_match = re.search(r"gRPC listening address=([0-9.:]+)", text)
            if http_match and grpc_match:
                http_addr, grpc_addr = http_match.group(1), grpc_match.group(1)
                break
            time.sleep(0.1)
        if not http_addr:
            log.seek(0)
            print(log.read(), file=sys.stderr)
            print("roster did not start", file=sys.stderr)
            return 1
        common = ["--grpc", grpc_addr, "--data-dir", data]
        token = subprocess.check_output(
            [ROSTER, "tenant", "create", "interop", *common], text=True).strip().splitlines()[-1]

        receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        threading.Thread(target=receiver.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
        added = subprocess.check_output(
            [ROSTER, "webhook", "add", "interop", url, "--events", "user.deactivated,user.deleted",
             *common], text=True).strip().splitlines()
        Receiver.secret = added[-1]

        base = f"http://{http_addr}/scim/v2/interop"
        user = scim(base, token, "POST", "/Users", {"userName": "leaver"})
        scim(base, token, "PATCH", f"/Users/{user['id']}", {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "value": {"active": False}}]})
        scim(base, token, "DELETE", f"/Users/{user['id']}")

        deadline = time.time() + 30
        while time.time() < deadline and len(Receiver.received) < 2:
            time.sleep(0.05)
        time.sleep(0.3)
        received = list(Receiver.received)
        types = [payload["type"] for _, payload in received]
        problems = []
        if types != ["user.deactivated", "user.deleted"]:
            problems.append(f"expected user.deactivated then user.deleted, got {types}")
        for webhook_id, payload in received:
            if webhook_id != payload["data"]["event_id"]:
                problems.append(f"webhook-id {webhook_id} is not the event id")
            if payload["data"]["tenant"] != "interop":
                problems.append(f"wrong tenant in {payload}")
        if received:
            deactivated = received[0][1]["data"].get("user_deactivated", {})
            if deactivated.get("user_id") != user["id"]:
                problems.append(f"user_deactivated names {deactivated}, not {user['id']}")
        if Receiver.requests < 3:
            problems.append(f"the 503 was not retried ({Receiver.requests} requests)")
        if problems:
            print("webhook interop FAILED: " + "; ".join(problems), file=sys.stderr)
            return 1
        print(f"webhook interop: {len(received)} deliveries verified by standardwebhooks "
              f"({Receiver.requests} requests, one 503 retried)")
        return 0
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
