#!/usr/bin/env bash
# Start-up, memory and authentication with many keys (SQLite): how long `serve` takes to
# announce itself and its resident memory then, on a database holding KEYS keys (made by SQL,
# behind the server's back), with default flags; then the authenticated ping's requests/s and
# p99 with one key in use (wrk), and the memory after USED distinct keys were each used once.
#
#   bench/keys-scale.sh [KEYS=1000000] [USED=20000] [DURATION_SECONDS=5] [ROUNDS=3]
#   BENCH_BIN=/path/to/custory-mcp bench/keys-scale.sh …   # another build, to compare
#
# The keys used once are made through the admin API (their tokens are needed), so USED costs
# a few seconds per thousand.
set -euo pipefail
cd "$(dirname "$0")/.."
keys="${1:-1000000}"
used="${2:-20000}"
duration="${3:-5}"
rounds="${4:-3}"

source bench/lib.sh
need wrk wrk
SERVE_ARGS="$UNLIMITED_KEYS"
start_server
owner="$OWNER"
for pid in "${SERVER_PIDS[@]}"; do kill "$pid"; wait "$pid" 2>/dev/null || true; done
SERVER_PIDS=()
SERVER_URLS=()

python3 - "$DATABASE" "$keys" <<'PY'
import sqlite3, sys
db, n = sys.argv[1], int(sys.argv[2])
conn = sqlite3.connect(db)
conn.execute("""
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
INSERT INTO mcp_keys (id, workspace_id, name, prefix, token_hash, access, expires, created_at)
SELECT 'key_bulk' || i, w.id, 'bulk ' || i, printf('cst_%08d', i), randomblob(32),
       'read-write', 'never', 1
FROM n, workspaces w WHERE w.slug = 'acme'""", (n,))
conn.commit()
PY
echo "database: $keys keys, $(du -h "$DATABASE" | cut -f1)" >&2

rss_mib() { awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$1/status"; }
started=$(date +%s%N)
serve_one
announced=$(date +%s%N)
pid="${SERVER_PIDS[0]}"
url="${SERVER_URLS[0]}"
printf 'start (to the announcement)  %d ms\n' $(((announced - started) / 1000000))
printf 'RSS at start                 %d MiB\n' "$(rss_mib "$pid")"

TOKEN="$(create_key "$url" "$owner")"
export TOKEN
mcp_lua '{"jsonrpc":"2.0","id":1,"method":"ping"}' >"$WORK/ping.lua"
for round in $(seq 1 "$rounds"); do
  out="$(wrk -t2 -c32 -d"${duration}s" --latency -s "$WORK/ping.lua" "$url/api/mcp")"
  rps="$(awk '/Requests\/sec/ {print int($2)}' <<<"$out")"
  p99="$(awk '$1 == "99%" {print $2}' <<<"$out")"
  printf 'auth + ping, round %d         %s req/s, p99 %s\n' "$round" "$rps" "$p99"
done

python3 - "$url" "$owner" "$used" <<'PY'
import json, sys, urllib.request
url, owner, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def call(method, path, body, token):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), method=method,
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/json",
                 "Accept": "application/json, text/event-stream",
                 "MCP-Protocol-Version": "2025-11-25"})
    with urllib.request.urlopen(req) as answer:
        return json.loads(answer.read() or b"{}")
for i in range(n):
    token = call("POST", "/api/admin/workspaces/acme/mcp-keys",
                 {"name": f"used {i}", "expires": "30d"}, owner)["token"]
    call("POST", "/api/mcp", {"jsonrpc": "2.0", "id": 1, "method": "ping"}, token)
PY
printf 'RSS after %d keys used once  %d MiB\n' "$used" "$(rss_mib "$pid")"
