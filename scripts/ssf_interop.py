#!/usr/bin/env python3
"""Shared Signals checked by a receiver roster did not write: Python's PyJWT.

Starts a fresh roster (embedded log), issues an `ssf` token with `roster token issue --scope ssf`,
gets an access token by OAuth client credentials (HTTP Basic), reads the issuer's metadata, and
creates two streams through the management API: push to a receiver on 127.0.0.1 (which checks
the authorization header it gave and answers 503 once, so a retry is exercised) and poll. It then
deactivates and deletes a user over SCIM and checks, with `jwt.PyJWKClient` on the served
`jwks_uri` and `jwt.decode`, that every SET is RS256, `typ` `secevent+jwt`, from the issuer, for
the receiver, without `sub` or `exp`, with one event, and that exactly RISC `account-disabled`,
CAEP `session-revoked`, RISC `account-purged`, CAEP `session-revoked` arrived in order, naming
the user by email; the polled ones are acknowledged and then gone. Exits 0 on success.

Usage: PYTHONPATH=<dir with PyJWT[crypto]> scripts/ssf_interop.py [ROSTER_BINARY]
"""

import base64
import http.server
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

import jwt

ROSTER = sys.argv[1] if len(sys.argv) > 1 else "target/debug/roster"
RISC = "https://schemas.openid.net/secevent/risc/event-type/"
CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
EXPECTED = [RISC + "account-disabled", CAEP + "session-revoked", RISC + "account-purged",
            CAEP + "session-revoked"]
AUTHORIZATION = "Bearer push-receiver-secret"


class Receiver(http.server.BaseHTTPRequestHandler):
    sets = []
    requests = 0
    lock = threading.Lock()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        with Receiver.lock:
            Receiver.requests += 1
            first = Receiver.requests == 1
        if first:
            self.send_response(503)  # down for a moment: roster must retry
            self.end_headers()
            return
        if self.headers.get("authorization") != AUTHORIZATION:
            self.send_response(401)
            self.end_headers()
            return
        if self.headers.get("content-type") != "application/secevent+jwt":
            self.send_response(400)
            self.end_headers()
            return
        with Receiver.lock:
            Receiver.sets.append(body.decode())
        self.send_response(202)
        self.end_headers()

    def log_message(self, *args):
        pass


def call(url, method="GET", body=None, token=None, form=None, basic=None):
    headers = {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["content-type"] = "application/json"
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["content-type"] = "application/x-www-form-urlencoded"
    if token:
        headers["authorization"] = f"Bearer {token}"
    if basic:
        pair = ":".join(urllib.parse.quote(part, safe="") for part in basic)
        headers["authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    request = urllib.request.Request(url, method=method, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=40) as response:
        text = response.read()
        return response.status, (json.loads(text) if text else None)


def verify(token, jwks, issuer, audience, problems):
    header = jwt.get_unverified_header(token)
    if header.get("typ") != "secevent+jwt" or header.get("alg") != "RS256":
        problems.append(f"bad JOSE header {header}")
    key = jwks.get_signing_key_from_jwt(token).key
    claims = jwt.decode(token, key, algorithms=["RS256"], issuer=issuer, audience=audience,
                        options={"require": ["iss", "aud", "iat", "jti"]})
    if "sub" in claims or "exp" in claims:
        problems.append(f"sub or exp in {claims}")
    if len(claims["events"]) != 1:
        problems.append(f"not exactly one event in {claims}")
    return claims


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
        scim_token = subprocess.check_output(
            [ROSTER, "tenant", "create", "interop", *common], text=True).strip().splitlines()[-1]
        ssf_token = subprocess.check_output(
            [ROSTER, "token", "issue", "interop", "--name", "receiver", "--scope", "ssf", *common],
            text=True).strip().splitlines()[-1]
        client_id = ssf_token.split("_")[1]
        origin = f"http://{http_addr}"
        _, metadata = call(f"{origin}/.well-known/ssf-configuration/ssf/interop")
        issuer = metadata["issuer"]
        _, grant = call(f"{origin}/oauth/token", "POST",
                        form={"grant_type": "client_credentials"}, basic=(client_id, ssf_token))
        access = grant["access_token"]
        jwks = jwt.PyJWKClient(metadata["jwks_uri"])

        receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        threading.Thread(target=receiver.serve_forever, daemon=True).start()
        push_url = f"http://127.0.0.1:{receiver.server_address[1]}/events"
        status, stream = call(metadata["configuration_endpoint"], "POST", token=access, body={
            "delivery": {"method": "urn:ietf:rfc:8935", "endpoint_url": push_url,
                         "authorization_header": AUTHORIZATION},
            "events_requested": EXPECTED[:3]})
        problems = []
        if status != 201:
            problems.append(f"create answered {status}")

        # A second receiver polls.
        poll_token = subprocess.check_output(
            [ROSTER, "token", "issue", "interop", "--name", "poller", "--scope", "ssf", *common],
            text=True).strip().splitlines()[-1]
        poll_client = poll_token.split("_")[1]
        _, grant = call(f"{origin}/oauth/token", "POST", form={
            "grant_type": "client_credentials", "client_id": poll_client,
            "client_secret": poll_token})
        poll_access = grant["access_token"]
        _, poll_stream = call(metadata["configuration_endpoint"], "POST", token=poll_access,
                              body={"events_requested": EXPECTED[:3]})
        poll_url = poll_stream["delivery"]["endpoint_url"]

        base = f"{origin}/scim/v2/interop"
        _, user = call(base + "/Users", "POST", token=scim_token, body={
            "userName": "leaver", "emails": [{"value": "leaver@example.com", "primary": True}]})
        call(base + f"/Users/{user['id']}", "PATCH", token=scim_token, body={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "value": {"active": False}}]})
        call(base + f"/Users/{user['id']}", "DELETE", token=scim_token)

        deadline = time.time() + 30
        while time.time() < deadline and len(Receiver.sets) < 4:
            time.sleep(0.05)
        time.sleep(0.3)
        pushed = [verify(token, jwks, issuer, client_id, problems) for token in Receiver.sets]
        types = [next(iter(claims["events"])) for claims in pushed]
        if types != EXPECTED:
            problems.append(f"pushed {types}, expected {EXPECTED}")
        for claims in pushed:
            if claims["sub_id"] != {"format": "email", "email": "leaver@example.com"}:
                problems.append(f"sub_id {claims['sub_id']}")
        if Receiver.requests < len(EXPECTED) + 1:
            problems.append(f"the 503 was not retried ({Receiver.requests} requests)")

        polled = {}
        deadline = time.time() + 30
        while time.time() < deadline and len(polled) < 4:
            _, answer = call(poll_url, "POST", token=poll_access, body={"returnImmediately": True})
            polled = answer["sets"]
            time.sleep(0.1)
        polled_claims = [verify(token, jwks, issuer, poll_client, problems)
                         for token in polled.values()]
        if sorted(next(iter(c["events"])) for c in polled_claims) != sorted(EXPECTED):
            problems.append(f"polled {polled_claims}")
        _, answer = call(poll_url, "POST", token=poll_access,
                         body={"returnImmediately": True, "ack": list(polled)})
        if answer["sets"]:
            problems.append(f"acknowledged SETs came back: {list(answer['sets'])}")
        if problems:
            print("SSF interop FAILED: " + "; ".join(problems), file=sys.stderr)
            return 1
        print(f"SSF interop: {len(pushed)} pushed and {len(polled)} polled SETs verified by PyJWT "
              f"({Receiver.requests} push requests, one 503 retried)")
        return 0
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
