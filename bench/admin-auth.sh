#!/usr/bin/env bash
# The cost of authenticating an admin request, per credential: the same requests sent one after
# another on one keep-alive connection with the owner credential (the server's administrator,
# checked in memory) and with a member's personal credential (looked up in the database on every
# request, with the member's role in the route's workspace), against a release server.
#
#   bench/admin-auth.sh [REQUESTS=3000]      (BENCH_DATABASE=postgres for PostgreSQL)
#
# Prints, for each request and credential, the mean, median and 99th percentile in µs.
set -euo pipefail
cd "$(dirname "$0")/.."
requests="${1:-3000}"

source bench/lib.sh
start_server

python3 - "$SERVER_URL" "$OWNER" "$requests" <<'PY'
import http.client, json, statistics, sys, time, urllib.parse
server, owner, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
url = urllib.parse.urlparse(server)
conn = http.client.HTTPConnection(url.hostname, url.port)

def call(method, path, token=None, body=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn.request(method, path, json.dumps(body) if body is not None else None, headers)
    response = conn.getresponse()
    data = response.read()
    return response.status, data

status, data = call("POST", "/api/admin/workspaces/acme/invitations", owner,
                    {"name": "Bench", "role": "editor"})
assert status == 201, (status, data)
code = json.loads(data)["code"]
status, data = call("POST", "/api/admin/invitations/redeem", None, {"code": code})
assert status == 201, (status, data)
member = json.loads(data)["credential"]
status, _ = call("POST", "/api/admin/workspaces/acme/mcp-keys", owner,
                 {"name": "bench", "expires": "30d"})
assert status == 201

paths = ["/api/admin/whoami", "/api/admin/workspaces/acme/mcp-keys?limit=1"]
print(f"{'request':<45} {'credential':<10} {'mean µs':>8} {'p50 µs':>8} {'p99 µs':>8}")
for path in paths:
    for label, token in [("owner", owner), ("member", member)]:
        for _ in range(200):  # warm-up
            call("GET", path, token)
        took = []
        for _ in range(n):
            start = time.perf_counter()
            status, _ = call("GET", path, token)
            took.append((time.perf_counter() - start) * 1e6)
            assert status == 200, status
        took.sort()
        p99 = took[int(len(took) * 0.99) - 1]
        print(f"GET {path:<41} {label:<10} {statistics.mean(took):8.0f} "
              f"{statistics.median(took):8.0f} {p99:8.0f}")
PY
echo "command: bench/admin-auth.sh $requests (database: ${BENCH_DATABASE:-sqlite})"
