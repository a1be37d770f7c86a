#!/usr/bin/env bash
# Throughput and p99 latency of the MCP endpoint against the bare /healthz of the same server,
# measured in one run on loopback. Prints requests/s, p99, the server's CPU time per request
# (user + system of every custory-mcp process, from /proc; PostgreSQL's own is not counted),
# which drifts less than requests/s when wrk and the server share the cores, and the ratios to (a).
#
#   bench/mcp.sh [DURATION_SECONDS=3] [CONNECTIONS=16,32,64,128] [WRK_THREADS=2] [ROUNDS=3]
#   BENCH_DATABASE=postgres bench/mcp.sh …                    # on a throwaway PostgreSQL
#   BENCH_DATABASE=postgres BENCH_REPLICAS=2 bench/mcp.sh …   # two replicas, one database
#   BENCH_SCOPES='"tools":["read"]' bench/mcp.sh …            # the key limited (JSON members of
#                                                              # the create-key body)
#
# Installs its load generator (wrk, from Debian's packages) when missing. Starts a release
# server on a free port with a throwaway database, creates a key, runs:
#   (a) GET /healthz                     no auth, no database
#   (b) POST /api/mcp tools/list         authenticated, with Accept-Encoding: gzip as real clients
#                                        send (httpx, Node's fetch): the ~49 KB answer (24 tools
#                                        with schemas, bench/tool-lists.sh) goes out as ~6.5 KB
#                                        of gzip (tower-http's compression, per request)
#   (b0) the same without Accept-Encoding: the plain ~49 KB answer
#   (c) POST /api/mcp tools/call search  authenticated text search over the demo data
#   (d) POST /api/mcp ping               authenticated; a tiny answer, so (d)/(a) is the cost of
#                                        the endpoint itself (auth, checks, JSON-RPC)
#
# Throughput is each endpoint's peak: every endpoint is loaded at each number of connections in
# CONNECTIONS and its figures are those of the one where it served most (shown as "at"). wrk
# and the server share the 2 cores, and which concurrency suits an endpoint depends on the
# endpoint (/healthz peaks at fewer connections than tools/list), so a ratio taken at one fixed
# concurrency would also measure that; the ratios at each concurrency are printed too. Give one
# number (e.g. 32) to measure at that concurrency only.
#
# The machine's other load drifts over seconds, so everything is measured in turn ROUNDS times
# and each figure is the median over the rounds; ratios are the medians of each round's ratio
# (both sides measured seconds apart). With BENCH_REPLICAS=N, N replicas share the database and
# each gets its own wrk (-t1, 1/N of the connections): requests/s is their sum, p99 the worst
# replica's.
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-3}"
connections="${2:-16,32,64,128}"
threads="${3:-2}"
rounds="${4:-3}"
replicas="${BENCH_REPLICAS:-1}"

source bench/lib.sh
SERVE_ARGS="$UNLIMITED_KEYS"
need wrk wrk
start_server
for _ in $(seq 2 "$replicas"); do start_replica; done
url="$SERVER_URL"
owner="$OWNER"
work="$WORK"

TOKEN="$(create_key "$url" "$owner" "${BENCH_SCOPES:-}")"
export TOKEN
mcp_lua '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' 'wrk.headers["Accept-Encoding"] = "gzip"' \
  >"$work/list.lua"
mcp_lua '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' >"$work/list-plain.lua"
mcp_lua '{"jsonrpc":"2.0","id":1,"method":"ping"}' >"$work/ping.lua"
mcp_lua '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{"query":"onboarding"}}}' >"$work/search.lua"

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

run() { # $1 = connections, $2 = path, rest = wrk arguments;
         # prints "rps p99-in-ms server-cpu-µs-per-request"
  local before result
  before="$(server_ticks)"
  result="$(load "$@")"
  awk -v r="$result" -v t="$(($(server_ticks) - before))" -v hz="$(getconf CLK_TCK)" \
    -v d="$duration" 'BEGIN {split(r, f, " "); printf "%s %s %.2f\n", f[1], f[2], t / hz * 1e6 / (f[1] * d)}'
}

load() { # $1 = connections, $2 = path, rest = wrk arguments; prints "rps p99-in-ms" over every
          # replica
  local conns="$1"
  shift
  if [ "$replicas" = 1 ]; then
    wrk_once "$url$1" -t"$threads" -c"$conns" "${@:2}"
    return
  fi
  local i=0 files=()
  for replica in "${SERVER_URLS[@]}"; do
    files+=("$work/run.$i")
    wrk_once "$replica$1" -t1 -c$((conns / replicas)) "${@:2}" >"$work/run.$i" &
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
    for conns in ${connections//,/ }; do
      echo "$round $1 $conns $(run "$conns" "${@:2}")" >>"$work/results"
    done
  done
done

echo "custory-mcp $(./target/release/custory-mcp --version | cut -d' ' -f2), $(nproc) cores," \
  "database: ${BENCH_DATABASE:-sqlite}, replicas: $replicas, wrk -t$threads -c{$connections}" \
  "-d${duration}s, $rounds rounds (medians), key scopes: {${BENCH_SCOPES:-}}, tools/list" \
  "$(curl -sf -X POST "$url/api/mcp" -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
    -d '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' | wc -c) bytes"
python3 - "$work/results" <<'PY'
import statistics, sys
from collections import Counter, defaultdict
# (round, probe) -> {connections: (rps, p99, cpu)}
runs = defaultdict(dict)
for line in open(sys.argv[1]):
    round_, probe, conns, r, p, c = line.split()
    runs[(round_, probe)][int(conns)] = (float(r), float(p), float(c))
rounds = sorted({r for r, _ in runs}, key=int)
levels = sorted({c for by_conns in runs.values() for c in by_conns})
def peak(round_, probe):  # (connections, (rps, p99, cpu)) where the probe served most
    return max(runs[(round_, probe)].items(), key=lambda item: item[1][0])
labels = {"a": "(a) GET /healthz", "b": "(b) tools/list (gzip)", "b0": "(b0) tools/list (no gzip)",
          "c": "(c) tools/call search", "d": "(d) ping (authenticated)"}
median = statistics.median
print(f"{'endpoint':<27} {'peak req/s':>10} {'at':>4} {'p99':>9} {'server CPU':>10}   peak per round"
      + ("   │ req/s at " + " ".join(f"{c:>7}" for c in levels) if len(levels) > 1 else ""))
for probe, label in labels.items():
    peaks = [peak(r, probe) for r in rounds]
    at = Counter(c for c, _ in peaks).most_common(1)[0][0]
    line = (f"{label:<27} {median(f[0] for _, f in peaks):>10,.0f} {at:>4}"
            f" {median(f[1] for _, f in peaks):>7.2f}ms {median(f[2] for _, f in peaks):>7.1f} µs   "
            + " ".join(f"{f[0]:,.0f}" for _, f in peaks))
    if len(levels) > 1:
        line += "   │ " + " ".join(f"{median(runs[(r, probe)][c][0] for r in rounds):>7,.0f}"
                                  for c in levels)
    print(line)
def ratios(value):  # value(round, probe) -> rps; median and per-round ratios to (a)
    out = []
    for probe in ["b", "b0", "c", "d"]:
        per_round = [value(r, probe) / value(r, "a") for r in rounds]
        out.append(f"({probe})/(a) = {median(per_round):.2f} [{' '.join(f'{x:.2f}' for x in per_round)}]")
    return "   ".join(out)
print("ratio of peaks " + ratios(lambda r, probe: peak(r, probe)[1][0]))
if len(levels) > 1:
    for c in levels:
        print(f"ratio at {c:>3} connections " + ratios(lambda r, probe: runs[(r, probe)][c][0]))
PY
echo "command: ${BENCH_DATABASE:+BENCH_DATABASE=$BENCH_DATABASE }${BENCH_REPLICAS:+BENCH_REPLICAS=$BENCH_REPLICAS }bench/mcp.sh $duration $connections $threads $rounds"
