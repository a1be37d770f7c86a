#!/usr/bin/env bash
# Two builds of the server side by side: /healthz, gzip tools/list and a list_items page (the
# demo workspace's items, read row by row from the store) on each, measured in turn (A, B, A,
# B, …) so that the machine's drifting load falls on both alike.
#
#   bench/compare.sh BINARY_A BINARY_B [ROUNDS=6] [DURATION_SECONDS=3] [CONNECTIONS=32]
#
# e.g. to compare against an older commit:
#   git worktree add /tmp/old OLD_COMMIT && (cd /tmp/old && cargo build --release)
#   cargo build --release && bench/compare.sh /tmp/old/target/release/custory-mcp target/release/custory-mcp
#
# Installs wrk (Debian package) when missing. Each binary serves its own throwaway database on a
# free loopback port. Prints, per binary, the medians over the rounds of requests/s, of the
# server's CPU time per request (user + system, from /proc) and of each round's ratio
# tools/list ÷ /healthz.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: bench/compare.sh BINARY_A BINARY_B [ROUNDS] [SECONDS] [CONNECTIONS]" >&2; exit 2; }
binaries=("$(realpath "$1")" "$(realpath "$2")")
rounds="${3:-6}"
duration="${4:-3}"
connections="${5:-32}"

source bench/lib.sh
need wrk wrk
WORK="$(mktemp -d)"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT
export CUSTORY_CREDENTIAL_STORE=file
urls=() tokens=()
for i in 0 1; do
  CUSTORY_CONFIG_DIR="$WORK/config.$i" launch "${binaries[$i]}" serve --json \
    --listen 127.0.0.1:0 --database "$WORK/bench.$i.db" $UNLIMITED_KEYS --key-concurrency 64
  pids+=("$LAUNCHED_PID")
  urls+=("$(json_field "$LAUNCHED_ANNOUNCEMENT" url)")
  tokens+=("$(create_key "${urls[$i]}" "$(json_field "$LAUNCHED_ANNOUNCEMENT" owner_credential)")")
done
mcp_lua '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' 'wrk.headers["Accept-Encoding"] = "gzip"' \
  >"$WORK/list.lua"
mcp_lua '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_items","arguments":{"limit":50}}}' \
  >"$WORK/items.lua"

ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; } # user + system, clock ticks
measure() { # $1 = binary index, $2 = healthz | list | items; prints "rps cpu-µs-per-request"
  local url="${urls[$1]}" script=() before out rps
  case "$2" in
    healthz) url="$url/healthz" ;;
    *) url="$url/api/mcp"; script=(-s "$WORK/$2.lua") ;;
  esac
  before="$(ticks "${pids[$1]}")"
  out="$(TOKEN="${tokens[$1]}" wrk -t2 -c"$connections" -d"${duration}s" "${script[@]}" "$url")"
  if grep -q "Non-2xx" <<<"$out"; then echo "some responses were not 2xx:" >&2; echo "$out" >&2; exit 1; fi
  rps="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
  awk -v r="$rps" -v t="$(($(ticks "${pids[$1]}") - before))" -v hz="$(getconf CLK_TCK)" -v d="$duration" \
    'BEGIN {printf "%s %.2f\n", r, t / hz * 1e6 / (r * d)}'
}

for i in 0 1; do wrk -t1 -c8 -d1s "${urls[$i]}/healthz" >/dev/null; done # warm up
: >"$WORK/results"
for round in $(seq 1 "$rounds"); do
  for kind in healthz list items; do
    for i in 0 1; do echo "$round $i $kind $(measure "$i" "$kind")" >>"$WORK/results"; done
  done
done

echo "wrk -t2 -c$connections -d${duration}s, $rounds rounds, A and B in turn (medians)"
python3 - "$WORK/results" "${binaries[@]}" <<'PY'
import statistics, sys
from collections import defaultdict
runs = defaultdict(dict)  # (round, binary) -> kind -> (rps, cpu)
for line in open(sys.argv[1]):
    round_, binary, kind, rps, cpu = line.split()
    runs[(round_, int(binary))][kind] = (float(rps), float(cpu))
print(f"{'':<3} {'/healthz req/s':>15} {'CPU/req':>8} {'tools/list req/s':>17} {'CPU/req':>8}"
      f" {'list_items req/s':>17} {'CPU/req':>8}  {'ratio':>5}  per round")
for binary, name in enumerate(sys.argv[2:]):
    mine = [kinds for (r, b), kinds in sorted(runs.items()) if b == binary]
    med = lambda kind, field: statistics.median(k[kind][field] for k in mine)
    ratios = [k["list"][0] / k["healthz"][0] for k in mine]
    print(f"{'AB'[binary]:<3} {med('healthz', 0):>15,.0f} {med('healthz', 1):>6.1f}µs"
          f" {med('list', 0):>17,.0f} {med('list', 1):>6.1f}µs"
          f" {med('items', 0):>17,.0f} {med('items', 1):>6.1f}µs  {statistics.median(ratios):>5.2f}"
          f"  {' '.join(f'{r:.2f}' for r in ratios)}   {name}")
PY
echo "command: bench/compare.sh $*"
