#!/usr/bin/env bash
# Throughput and p99 latency of the MCP endpoint against the bare /healthz of the same server,
# measured in one run on loopback. Prints requests/s, p99 and the ratio (b)/(a).
#
#   bench/mcp.sh [DURATION_SECONDS=10] [CONNECTIONS=32] [WRK_THREADS=2]
#
# Installs its load generator (wrk, from Debian's packages) when missing. Starts a release
# server on a free port with a throwaway database, creates a key, runs:
#   (a) GET /healthz                     no auth, no database
#   (b) POST /api/mcp tools/list         authenticated; a ~20 KB answer (11 tools with schemas)
#   (c) POST /api/mcp tools/call search  authenticated, SQLite text search over the demo data
#   (d) POST /api/mcp ping               authenticated; a tiny answer, so (d)/(a) is the cost of
#                                        the endpoint itself (auth, checks, JSON-RPC)
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-10}"
connections="${2:-32}"
threads="${3:-2}"

source bench/lib.sh
need wrk wrk
start_server
url="$SERVER_URL"
owner="$OWNER"
work="$WORK"
field() { json_field "$@"; }

created="$(curl -sf -X POST "$url/api/admin/workspaces/acme/mcp-keys" \
  -H "Authorization: Bearer $owner" -H 'Content-Type: application/json' \
  -d '{"name":"bench","expires":"30d"}')"
export TOKEN="$(field "$created" token)"

lua() { # $1 = JSON-RPC body
  cat <<LUA
wrk.method = "POST"
wrk.body = [[$1]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2025-11-25"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
LUA
}
lua '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' >"$work/list.lua"
lua '{"jsonrpc":"2.0","id":1,"method":"ping"}' >"$work/ping.lua"
lua '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{"query":"onboarding"}}}' >"$work/search.lua"

run() { # $1 = label, rest = wrk arguments; prints "rps p99"
  local out
  out="$(wrk --latency -t"$threads" -c"$connections" -d"${duration}s" "${@:2}")"
  if grep -q "Non-2xx" <<<"$out"; then
    echo "$1: some responses were not 2xx:" >&2; echo "$out" >&2; exit 1
  fi
  local rps p99
  rps="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
  p99="$(awk '$1 == "99%" {print $2}' <<<"$out")"
  echo "$rps $p99"
}

# Warm up, then measure each in turn against the same server.
wrk -t1 -c8 -d2s "$url/healthz" >/dev/null
read -r a_rps a_p99 < <(run healthz "$url/healthz")
read -r b_rps b_p99 < <(run tools/list -s "$work/list.lua" "$url/api/mcp")
read -r c_rps c_p99 < <(run search -s "$work/search.lua" "$url/api/mcp")
read -r d_rps d_p99 < <(run ping -s "$work/ping.lua" "$url/api/mcp")

echo "custory-mcp $(./target/release/custory-mcp --version | cut -d' ' -f2), $(nproc) cores, wrk -t$threads -c$connections -d${duration}s"
printf '%-34s %12s %10s\n' "endpoint" "requests/s" "p99"
printf '%-34s %12s %10s\n' "(a) GET /healthz" "$a_rps" "$a_p99"
printf '%-34s %12s %10s\n' "(b) tools/list (authenticated)" "$b_rps" "$b_p99"
printf '%-34s %12s %10s\n' "(c) tools/call search" "$c_rps" "$c_p99"
printf '%-34s %12s %10s\n' "(d) ping (authenticated)" "$d_rps" "$d_p99"
python3 -c 'import sys; a,b,c,d=map(float,sys.argv[1:]); print(f"ratio (b)/(a) = {b/a:.2f}   (c)/(a) = {c/a:.2f}   (d)/(a) = {d/a:.2f}")' "$a_rps" "$b_rps" "$c_rps" "$d_rps"
echo "command: bench/mcp.sh $duration $connections $threads"
