#!/usr/bin/env bash
# Throughput and p99 latency of the MCP endpoint against the bare /healthz of the same server,
# measured in one run on loopback. Prints requests/s, p99 and the ratios to (a).
#
#   bench/mcp.sh [DURATION_SECONDS=10] [CONNECTIONS=32] [WRK_THREADS=2]
#
# Installs its load generator (wrk, from Debian's packages) when missing. Starts a release
# server on a free port with a throwaway database, creates a key, runs:
#   (a) GET /healthz                     no auth, no database
#   (b) POST /api/mcp tools/list         authenticated, with Accept-Encoding: gzip as real clients
#                                        send (httpx, Node's fetch): the ~20 KB answer (11 tools
#                                        with schemas) goes out as ~3.5 KB of gzip, deflated once and
#                                        spliced around each request's id
#   (b0) the same without Accept-Encoding: the plain ~20 KB answer
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

lua() { # $1 = JSON-RPC body, $2 = extra Lua lines (optional)
  cat <<LUA
wrk.method = "POST"
wrk.body = [[$1]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2025-11-25"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
${2:-}
LUA
}
lua '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' 'wrk.headers["Accept-Encoding"] = "gzip"' \
  >"$work/list.lua"
lua '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' >"$work/list-plain.lua"
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

# (b) must really be measuring the compressed answer, and (b0) the plain one.
list_encoding() { # $1 = Accept-Encoding ("" for none); prints the answer's Content-Encoding
  curl -sf -o /dev/null -D - -X POST "$url/api/mcp" -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
    ${1:+-H "Accept-Encoding: $1"} -d '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' |
    awk -F': *' 'tolower($1) == "content-encoding" {print $2}' | tr -d '\r'
}
if [ "$(list_encoding gzip)" != gzip ] || [ -n "$(list_encoding "")" ]; then
  echo "tools/list is not gzip-compressed exactly when Accept-Encoding admits it" >&2; exit 1
fi

# Warm up, then measure each in turn against the same server.
wrk -t1 -c8 -d2s "$url/healthz" >/dev/null
read -r a_rps a_p99 < <(run healthz "$url/healthz")
read -r b_rps b_p99 < <(run tools/list -s "$work/list.lua" "$url/api/mcp")
read -r b0_rps b0_p99 < <(run tools/list-plain -s "$work/list-plain.lua" "$url/api/mcp")
read -r c_rps c_p99 < <(run search -s "$work/search.lua" "$url/api/mcp")
read -r d_rps d_p99 < <(run ping -s "$work/ping.lua" "$url/api/mcp")

echo "custory-mcp $(./target/release/custory-mcp --version | cut -d' ' -f2), $(nproc) cores, wrk -t$threads -c$connections -d${duration}s"
printf '%-34s %12s %10s\n' "endpoint" "requests/s" "p99"
printf '%-34s %12s %10s\n' "(a) GET /healthz" "$a_rps" "$a_p99"
printf '%-34s %12s %10s\n' "(b) tools/list (gzip)" "$b_rps" "$b_p99"
printf '%-34s %12s %10s\n' "(b0) tools/list (no gzip)" "$b0_rps" "$b0_p99"
printf '%-34s %12s %10s\n' "(c) tools/call search" "$c_rps" "$c_p99"
printf '%-34s %12s %10s\n' "(d) ping (authenticated)" "$d_rps" "$d_p99"
python3 -c 'import sys; a,b,b0,c,d=map(float,sys.argv[1:]); print(f"ratio (b)/(a) = {b/a:.2f}   (b0)/(a) = {b0/a:.2f}   (c)/(a) = {c/a:.2f}   (d)/(a) = {d/a:.2f}")' \
  "$a_rps" "$b_rps" "$b0_rps" "$c_rps" "$d_rps"
echo "command: bench/mcp.sh $duration $connections $threads"
