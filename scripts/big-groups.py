#!/usr/bin/env python3
"""Peak RSS of a roster process while clients page through large groups.

Usage: scripts/big-groups.py ROSTER-BINARY LABEL USERS GROUPS READERS

Starts `ROSTER-BINARY serve` on a fresh /tmp/bg-LABEL (SCIM on 127.0.0.1:18180), creates USERS
users and GROUPS groups that each hold every user, then has READERS clients fetch
`GET /Groups?count=GROUPS` (every group with its members) twice each, sampling the server's VmRSS.
"""
import json, os, subprocess, sys, threading, time, urllib.request, concurrent.futures as cf

BIN, LABEL = sys.argv[1], sys.argv[2]
USERS, GROUPS, READERS = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
D = f"/tmp/bg-{LABEL}"
subprocess.run(["rm", "-rf", D])
HTTP, GRPC = "127.0.0.1:18180", "127.0.0.1:18181"
server = subprocess.Popen([BIN, "serve", "--data-dir", D, "--http", HTTP, "--grpc", GRPC],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
for _ in range(100):
    try:
        urllib.request.urlopen(f"http://{HTTP}/healthz"); break
    except Exception:
        time.sleep(0.1)
token = subprocess.run([BIN, "tenant", "create", "big", "--data-dir", D, "--grpc", GRPC],
                       capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
base = f"http://{HTTP}/scim/v2/big"

def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"})
    with urllib.request.urlopen(req, timeout=300) as r:
        return r.read()

with cf.ThreadPoolExecutor(32) as pool:
    ids = list(pool.map(lambda n: json.loads(call("POST", "/Users", {"userName": f"u{n}"}))["id"], range(USERS)))
for g in range(GROUPS):
    gid = json.loads(call("POST", "/Groups", {"displayName": f"g{g}"}))["id"]
    for i in range(0, USERS, 1000):
        call("PATCH", f"/Groups/{gid}", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
             "Operations": [{"op": "add", "path": "members", "value": [{"value": x} for x in ids[i:i+1000]]}]})

def rss():
    with open(f"/proc/{server.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
time.sleep(2)
idle = rss()
peak = idle
stop = False
def sample():
    global peak
    while not stop:
        peak = max(peak, rss()); time.sleep(0.05)
t = threading.Thread(target=sample); t.start()
started = time.time()
sizes = []
with cf.ThreadPoolExecutor(READERS) as pool:
    for body in pool.map(lambda _: call("GET", f"/Groups?startIndex=1&count={GROUPS}"), range(READERS * 2)):
        sizes.append(len(body))
elapsed = time.time() - started
stop = True; t.join()
server.terminate(); server.wait()
print(f"{LABEL}: {USERS} users, {GROUPS} groups of {USERS} members; {READERS} readers x2 pages of {GROUPS} groups "
      f"({sizes[0]/1e6:.1f} MB each) in {elapsed:.1f}s; RSS idle {idle} MiB, peak {peak} MiB, above idle {peak-idle} MiB")
