#!/usr/bin/env bash
# The audit stream (`serve --audit-sink`) under load, measured in one run on loopback:
#   1. the collector is down: LOAD_SECONDS of tools/call search (wrk, CONNECTIONS); every call
#      waits in the database, the stream's queue, and the server keeps answering
#   2. the collector comes up: when the first batch arrives (the sender backs off up to a
#      minute while the collector is down), how long the backlog then takes (lines/s), and the
#      largest lag `custory_audit_sink_lag_seconds` showed meanwhile
#   3. LOAD_SECONDS more with the collector up, the stream sending while the load runs
# Then: calls the server counted (`custory_tool_calls_total`) against the lines the collector
# got, duplicates and lines out of order (both must be 0 here), requests/s in 1 and 3, and the
# compressed bytes per line.
#
#   bench/audit-sink.sh [LOAD_SECONDS=10] [CONNECTIONS=32]
#   COLLECTOR_DELAY=0.5 bench/audit-sink.sh …     # a slow collector: each batch answered late
#   BENCH_DATABASE=postgres bench/audit-sink.sh … # on PostgreSQL (see bench/lib.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-10}"
connections="${2:-32}"
delay="${COLLECTOR_DELAY:-0}"

source bench/lib.sh
need wrk wrk
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
SERVE_ARGS="$UNLIMITED_KEYS --metrics-listen 127.0.0.1:0 --audit-sink http://127.0.0.1:$port/ingest"
start_server
metrics="$(json_field "$LAST_ANNOUNCEMENT" metrics_url)"
TOKEN="$(create_key "$SERVER_URL" "$OWNER")"
export TOKEN
mcp_lua '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{"query":"onboarding"}}}' >"$WORK/search.lua"

metric() { # metric NAME: the sum of its samples on the metrics page
  curl -sf "$metrics" | awk -v n="$1" '$1 == n || index($1, n "{") == 1 {s += $2} END {printf "%d\n", s}'
}
gauge() { curl -sf "$metrics" | awk -v n="$1" '$1 == n {print $2}'; }
rps() { # rps: wrk for LOAD_SECONDS; prints requests/s
  local out
  out="$(wrk -t2 -c"$connections" -d"${seconds}s" -s "$WORK/search.lua" "$SERVER_URL/api/mcp")"
  if grep -q "Non-2xx" <<<"$out"; then echo "$out" >&2; exit 1; fi
  awk '/^Requests\/sec:/ {print $2}' <<<"$out"
}
stats() { curl -sf "http://127.0.0.1:$port/stats"; }
server_ticks() { # CPU time (user + system, clock ticks) the server has used so far
  sed 's/.*) //' "/proc/${SERVER_PIDS[0]}/stat" | awk '{print $12 + $13}'
}
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

down_rps="$(rps)"
sleep 6 # the last calls reach the database (written every 5 s)
made="$(metric custory_tool_calls_total)"
backlog="$made"
python3 bench/audit_collector.py "$port" "$delay" &
collector=$!
trap 'kill $collector 2>/dev/null; stop_server' EXIT
started="$(date +%s.%N)"
ticks="$(server_ticks)"
lag_max=0
until [ "$(field "$(stats 2>/dev/null || echo '{"calls":0}')" calls)" -ge "$made" ]; do
  lag="$(gauge custory_audit_sink_lag_seconds)"
  lag_max="$(python3 -c "print(max($lag_max, ${lag:-0}))")"
  sleep 0.2
done
caught="$(date +%s.%N)"
backlog_stats="$(stats)"
ticks=$(($(server_ticks) - ticks))
up_rps="$(rps)"
sleep 6
made="$(metric custory_tool_calls_total)"
until [ "$(field "$(stats)" calls)" -ge "$made" ]; do sleep 0.2; done
final="$(stats)"

echo "custory-mcp $("${BENCH_BIN:-./target/release/custory-mcp}" --version | cut -d' ' -f2)," \
  "$(nproc) cores, database: ${BENCH_DATABASE:-sqlite}, wrk -t2 -c$connections -d${seconds}s" \
  "tools/call search, collector delay ${delay}s"
python3 - "$final" "$made" "$down_rps" "$up_rps" "$started" "$caught" "$lag_max" "$backlog" \
  "$backlog_stats" "$ticks" "$(getconf CLK_TCK)" <<'PY'
import json, sys
s = json.loads(sys.argv[1]); made = int(sys.argv[2])
b = json.loads(sys.argv[9])
down, up = float(sys.argv[3]), float(sys.argv[4])
took = float(sys.argv[6]) - float(sys.argv[5])
backlog = int(sys.argv[8])
print(f"calls the server counted      {made}")
print(f"call lines the collector got  {s['calls']} (missing {made - s['calls']}), audit lines {s['audit']}")
print(f"duplicates / out of order     {s['duplicates']} / {s['out_of_order']}")
print(f"batches                       {s['batches']}, {s['bytes_gzip'] / max(s['lines'], 1):.0f} B/line gzip "
      f"({s['bytes_plain'] / max(s['lines'], 1):.0f} plain)")
print(f"1. collector down             {down:.0f} requests/s")
first = b["first_at"] - float(sys.argv[5])
sending = b["last_at"] - b["first_at"]
print(f"2. catch-up after it came up  {backlog} calls: the first batch {first:.1f} s after it came up "
      f"(the sender's backoff), all of them {took:.1f} s after; sent in {sending:.1f} s "
      f"({backlog / max(sending, 0.001):.0f} lines/s); largest lag seen {sys.argv[7]} s")
cpu = int(sys.argv[10]) / int(sys.argv[11])
print(f"   the server's CPU meanwhile  {cpu:.2f} s, {cpu / backlog * 1e6:.1f} µs per line "
      f"(reading, encoding, compressing, sending)")
print(f"3. collector up, streaming    {up:.0f} requests/s ({up / down:.2f} of 1)")
PY
