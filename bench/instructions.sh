#!/usr/bin/env bash
# Instructions the server executes per request, counted by valgrind's callgrind: a figure that
# does not drift with the machine's other load, for comparing two builds of the request path.
#
#   bench/instructions.sh [REQUESTS=2000]
#
# Installs valgrind (Debian package) when missing. Starts the release server under callgrind on
# a free loopback port with a throwaway database, creates a key, warms up, then sends REQUESTS
# requests of each kind one after another on one keep-alive connection (Python's http.client),
# zeroing the counters before and dumping them after each kind:
#   (a) GET /healthz
#   (b) POST /api/mcp tools/list, Accept-Encoding: gzip
#   (d) POST /api/mcp ping
# Under valgrind the CPU reports no SHA extensions, so SHA-256 runs in software: ~3,000
# instructions of each MCP figure that hardware with SHA-NI does not spend.
set -euo pipefail
cd "$(dirname "$0")/.."
requests="${1:-2000}"

source bench/lib.sh
need valgrind valgrind
cargo build --release --quiet
WORK="$(mktemp -d)"
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT
export CUSTORY_CONFIG_DIR="$WORK/config" CUSTORY_CREDENTIAL_STORE=file
launch valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.out" \
  ./target/release/custory-mcp serve --json --listen 127.0.0.1:0 --database "$WORK/bench.db"
pid="$LAUNCHED_PID"
url="$(json_field "$LAUNCHED_ANNOUNCEMENT" url)"
token="$(create_key "$url" "$(json_field "$LAUNCHED_ANNOUNCEMENT" owner_credential)")"

send() { # $1 = healthz | list | ping, $2 = how many
  python3 - "$url" "$token" "$1" "$2" <<'PY'
import http.client, sys, urllib.parse
url, token, kind, count = urllib.parse.urlparse(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
conn = http.client.HTTPConnection(url.hostname, url.port)
headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
           "MCP-Protocol-Version": "2025-11-25", "Authorization": f"Bearer {token}",
           "Accept-Encoding": "gzip"}
method = {"list": "tools/list", "ping": "ping"}.get(kind)
for _ in range(count):
    if kind == "healthz":
        conn.request("GET", "/healthz")
    else:
        conn.request("POST", "/api/mcp", f'{{"jsonrpc":"2.0","id":1,"method":"{method}"}}', headers)
    response = conn.getresponse()
    response.read()
    assert response.status == 200, response.status
PY
}

send list 50 # warm up: lazy statics, buffers, the key index
for kind in healthz list ping; do
  callgrind_control --zero "$pid" >/dev/null 2>&1
  send "$kind" "$requests"
  callgrind_control --dump="$kind" "$pid" >/dev/null 2>&1
done

echo "custory-mcp $(./target/release/custory-mcp --version | cut -d' ' -f2), callgrind," \
  "$requests requests of each kind on one connection"
# Dumps are numbered in order (callgrind.out.1, .2, .3); each has a "summary:" line, the
# instructions executed since the counters were last zeroed.
i=1
for label in "(a) GET /healthz" "(b) tools/list (gzip)" "(d) ping (authenticated)"; do
  total="$(awk '/^summary:/ {print $2}' "$WORK/callgrind.out.$i")"
  printf '%-26s %8d instructions/request\n' "$label" $((total / requests))
  i=$((i + 1))
done
echo "command: bench/instructions.sh $requests"
