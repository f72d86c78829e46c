"""Runs scim2-tester against a live roster tenant; prints every check and a final count.

Usage: scim_conformance.py BASE_URL TOKEN [--types User,Group] [-v]

roster is discovered as any SCIM client would: /ServiceProviderConfig, /ResourceTypes and
/Schemas decide what is tested. Exits 1 when any check fails (SKIPPED is neutral).
"""

import argparse
import json
import sys

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

PASSED = {Status.SUCCESS, Status.COMPLIANT, Status.ACCEPTABLE}
NEUTRAL = {Status.SKIPPED}

parser = argparse.ArgumentParser()
parser.add_argument("url")
parser.add_argument("token")
parser.add_argument("--types", default="User,Group")
parser.add_argument("-v", "--verbose", action="store_true")
args = parser.parse_args()

http = httpx2.Client(
    base_url=args.url,
    headers={"Authorization": f"Bearer {args.token}"},
    timeout=30,
)
results = check_server(SyncSCIMClient(http), resource_types=args.types.split(","))

passed = failed = skipped = 0
for result in results:
    if result.status in PASSED:
        passed += 1
    elif result.status in NEUTRAL:
        skipped += 1
    else:
        failed += 1
    resource_type = f"[{result.resource_type}] " if result.resource_type else ""
    print(f"{result.status.name:10} {resource_type}{result.title}")
    if result.reason and result.status not in PASSED:
        print("    " + str(result.reason).replace("\n", "\n    "))
    if args.verbose and result.data is not None and result.status not in PASSED:
        try:
            data = json.dumps(result.data, default=str)[:2000]
        except (TypeError, ValueError):
            data = repr(result.data)[:2000]
        print("    data: " + data)

print(f"scim2-tester: {passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed or not passed else 0)
