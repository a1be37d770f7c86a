#!/usr/bin/env bash
# End-to-end time of `custory-mcp keys list` (table and --json) against a release server
# holding 10,000 keys in one workspace, measured with hyperfine.
#
#   bench/keys-list.sh [KEYS=10000]
#
# Installs hyperfine (Debian package) when missing. Everything runs on loopback with a
# throwaway database and config directory.
set -euo pipefail
cd "$(dirname "$0")/.."
count="${1:-10000}"

source bench/lib.sh
need hyperfine hyperfine
start_server
export CUSTORY_SERVER="$SERVER_URL"

echo "creating $count keys through the admin API..." >&2
python3 - "$CUSTORY_SERVER" "$count" "$CUSTORY_CONFIG_DIR/credentials.json" <<'PY'
import http.client, json, sys, urllib.parse
server, count, creds = sys.argv[1], int(sys.argv[2]), sys.argv[3]
owner = json.load(open(creds))[f"owner@{server}"]
url = urllib.parse.urlparse(server)
conn = http.client.HTTPConnection(url.hostname, url.port)
for i in range(count):
    body = json.dumps({"name": f"key {i:05d}", "expires": ["30d", "90d", "never"][i % 3]})
    conn.request("POST", "/api/admin/workspaces/acme/mcp-keys", body,
                 {"Authorization": f"Bearer {owner}", "Content-Type": "application/json"})
    response = conn.getresponse(); response.read()
    assert response.status == 201, response.status
PY

bin="./target/release/custory-mcp"
rows="$("$bin" keys list | wc -l)"
echo "keys list prints $rows lines (header + $count keys)"
COLUMNS=120 hyperfine --warmup 3 --runs 20 --style basic \
  "$bin keys list" "$bin --json keys list" "$bin keys list --status revoked"
echo "command: bench/keys-list.sh $count"
