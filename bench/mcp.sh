#!/usr/bin/env bash
# Throughput and p99 latency of the MCP endpoint against the bare /healthz of the same server,
# measured in one run on loopback. Prints requests/s, p99, the server's CPU time per request
# (user + system of every custory-mcp process, from /proc; PostgreSQL's own is not counted),
# which drifts less than requests/s when wrk and the server share the cores, and the ratios to (a).
#
#   bench/mcp.sh [DURATION_SECONDS=5] [CONNECTIONS=32] [WRK_THREADS=2] [ROUNDS=3]
#   BENCH_DATABASE=postgres bench/mcp.sh …                    # on a throwaway PostgreSQL
#   BENCH_DATABASE=postgres BENCH_REPLICAS=2 bench/mcp.sh …   # two replicas, one database
#
# Installs its load generator (wrk, from Debian's packages) when missing. Starts a release
# server on a free port with a throwaway database, creates a key, runs:
#   (a) GET /healthz                     no auth, no database
#   (b) POST /api/mcp tools/list         authenticated, with Accept-Encoding: gzip as real clients
#                                        send (httpx, Node's fetch): the ~20 KB answer (11 tools
#                                        with schemas) goes out as ~3.5 KB of gzip, deflated once and
#                                        spliced around each request's id
#   (b0) the same without Accept-Encoding: the plain ~20 KB answer
#   (c) POST /api/mcp tools/call search  authenticated text search over the demo data
#   (d) POST /api/mcp ping               authenticated; a tiny answer, so (d)/(a) is the cost of
#                                        the endpoint itself (auth, checks, JSON-RPC)
#
# The machine's other load drifts over seconds, so the five are measured in turn ROUNDS times
# and each figure is the median over the rounds; ratios are the medians of each round's ratio
# (both sides measured seconds apart). With BENCH_REPLICAS=N, N replicas share the database and
# each gets its own wrk (-t1, CONNECTIONS/N): requests/s is their sum, p99 the worst replica's.
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-5}"
connections="${2:-32}"
threads="${3:-2}"
rounds="${4:-3}"
replicas="${BENCH_REPLICAS:-1}"

source bench/lib.sh
need wrk wrk
start_server
for _ in $(seq 2 "$replicas"); do start_replica; done
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

wrk_once() { # $1 = URL, rest = wrk arguments; prints "rps p99-in-ms"
  local out
  out="$(wrk --latency "${@:2}" -d"${duration}s" "$1")"
  if grep -q "Non-2xx" <<<"$out"; then
    echo "some responses were not 2xx:" >&2; echo "$out" >&2; exit 1
  fi
  awk '/^Requests\/sec:/ {rps = $2}
       $1 == "99%" {v = $2; ms = v + 0; if (v ~ /us$/) ms /= 1000; else if (v ~ /[^m]s$/) ms *= 1000;
                    p99 = ms}
       END {print rps, p99}' <<<"$out"
}

server_ticks() { # CPU time (user + system, in clock ticks) used so far by every server process
  local total=0 pid
  for pid in "${SERVER_PIDS[@]}"; do
    # Fields 14 and 15 of /proc/PID/stat, counted after the ")" that ends the command name.
    total=$((total + $(sed 's/.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')))
  done
  echo "$total"
}

run() { # $1 = path, rest = wrk arguments; prints "rps p99-in-ms server-cpu-µs-per-request"
  local before result
  before="$(server_ticks)"
  result="$(load "$@")"
  awk -v r="$result" -v t="$(($(server_ticks) - before))" -v hz="$(getconf CLK_TCK)" \
    -v d="$duration" 'BEGIN {split(r, f, " "); printf "%s %s %.2f\n", f[1], f[2], t / hz * 1e6 / (f[1] * d)}'
}

load() { # $1 = path, rest = wrk arguments; prints "rps p99-in-ms" over every replica
  if [ "$replicas" = 1 ]; then
    wrk_once "$url$1" -t"$threads" -c"$connections" "${@:2}"
    return
  fi
  local i=0 files=()
  for replica in "${SERVER_URLS[@]}"; do
    files+=("$work/run.$i")
    wrk_once "$replica$1" -t1 -c$((connections / replicas)) "${@:2}" >"$work/run.$i" &
    i=$((i + 1))
  done
  wait
  cat "${files[@]}" | awk '{rps += $1; if ($2 > p99) p99 = $2} END {print rps, p99}'
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

# Warm up, then measure each in turn, ROUNDS times.
wrk -t1 -c8 -d2s "$url/healthz" >/dev/null
: >"$work/results"
for round in $(seq 1 "$rounds"); do
  for probe in "a /healthz" "b /api/mcp -s $work/list.lua" "b0 /api/mcp -s $work/list-plain.lua" \
               "c /api/mcp -s $work/search.lua" "d /api/mcp -s $work/ping.lua"; do
    set -- $probe
    echo "$round $1 $(run "${@:2}")" >>"$work/results"
  done
done

echo "custory-mcp $(./target/release/custory-mcp --version | cut -d' ' -f2), $(nproc) cores," \
  "database: ${BENCH_DATABASE:-sqlite}, replicas: $replicas, wrk -t$threads -c$connections" \
  "-d${duration}s, $rounds rounds (medians)"
python3 - "$work/results" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
rps, p99, cpu = {}, {}, {}
for round_, probe, r, p, c in rows:
    rps.setdefault(probe, []).append(float(r)); p99.setdefault(probe, []).append(float(p))
    cpu.setdefault(probe, []).append(float(c))
labels = {"a": "(a) GET /healthz", "b": "(b) tools/list (gzip)", "b0": "(b0) tools/list (no gzip)",
          "c": "(c) tools/call search", "d": "(d) ping (authenticated)"}
print(f"{'endpoint':<34} {'requests/s':>12} {'p99':>10} {'server CPU':>11}   per round")
for probe, label in labels.items():
    rounds = " ".join(f"{v:,.0f}" for v in rps[probe])
    print(f"{label:<34} {statistics.median(rps[probe]):>12,.0f} {statistics.median(p99[probe]):>8.2f}ms"
          f" {statistics.median(cpu[probe]):>8.1f} µs   {rounds}")
def ratio(probe):
    per_round = [b / a for a, b in zip(rps["a"], rps[probe])]
    return statistics.median(per_round), per_round
parts = []
for probe in ["b", "b0", "c", "d"]:
    median, per_round = ratio(probe)
    parts.append(f"({probe})/(a) = {median:.2f} [{' '.join(f'{r:.2f}' for r in per_round)}]")
print("ratio " + "   ".join(parts))
PY
echo "command: ${BENCH_DATABASE:+BENCH_DATABASE=$BENCH_DATABASE }${BENCH_REPLICAS:+BENCH_REPLICAS=$BENCH_REPLICAS }bench/mcp.sh $duration $connections $threads $rounds"
