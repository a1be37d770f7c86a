#!/usr/bin/env bash
# Is a server idle soon after a burst? KEYS keys are created through the admin API, each is
# used once at the same time (a burst of first uses: last-used times, origins and call records
# to flush), with DURATION seconds of tools/call search by one key (wrk) around it; then the
# server's CPU (user + system, /proc/PID/stat) is printed for each of the next 10 seconds.
#
#   bench/idle-after-burst.sh [KEYS=500] [DURATION_SECONDS=3]
#   BENCH_DATABASE=postgres BENCH_PG_URL=postgres://…/postgres bench/idle-after-burst.sh …
set -euo pipefail
cd "$(dirname "$0")/.."
keys="${1:-500}"
duration="${2:-3}"
source bench/lib.sh
need wrk wrk
SERVE_ARGS="$UNLIMITED_KEYS"
start_server
pid="${SERVER_PIDS[0]}"
TOKEN="$(create_key "$SERVER_URL" "$OWNER")"
export TOKEN
mcp_lua '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{"query":"onboarding"}}}' >"$WORK/search.lua"
python3 - "$SERVER_URL" "$OWNER" "$keys" "$WORK/tokens" <<'PY'
import http.client, json, sys, urllib.parse
url, owner, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
u = urllib.parse.urlparse(url)
conn = http.client.HTTPConnection(u.hostname, u.port)
tokens = []
for i in range(n):
    conn.request("POST", "/api/admin/workspaces/acme/mcp-keys",
                 json.dumps({"name": f"burst {i}", "expires": "30d"}),
                 {"Authorization": f"Bearer {owner}", "Content-Type": "application/json"})
    r = conn.getresponse(); body = r.read()
    assert r.status == 201, body
    tokens.append(json.loads(body)["token"])
open(out, "w").write("\n".join(tokens))
PY
wrk -t1 -c8 -d"${duration}s" -s "$WORK/search.lua" "$SERVER_URL/api/mcp" >/dev/null &
wrk_pid=$!
python3 - "$SERVER_URL" "$WORK/tokens" <<'PY'
import concurrent.futures, http.client, json, sys, urllib.parse
url, tokens = sys.argv[1], open(sys.argv[2]).read().split()
u = urllib.parse.urlparse(url)
def use(token):
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    conn.request("POST", "/api/mcp", json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                 "params": {"name": "list_journeys", "arguments": {}}}),
                 {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                  "Accept": "application/json, text/event-stream", "User-Agent": f"burst/{token[-4:]}"})
    return conn.getresponse().status
with concurrent.futures.ThreadPoolExecutor(16) as pool:
    statuses = list(pool.map(use, tokens))
print(f"burst: {len(tokens)} keys used once, {statuses.count(200)} answered 200", file=sys.stderr)
PY
wait "$wrk_pid"
ticks="$(getconf CLK_TCK)"
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
printf 'CPU of the server after the burst (share of one core), second by second:\n'
prev="$(cpu)"
for second in $(seq 1 10); do
  sleep 1
  now="$(cpu)"
  printf '  %2d s  %.2f\n' "$second" "$(echo "($now - $prev) / $ticks" | bc -l)"
  prev="$now"
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "command: BENCH_DATABASE=${BENCH_DATABASE:-sqlite} bench/idle-after-burst.sh $keys $duration"
