#!/usr/bin/env bash
# Import and export of a large workspace document, as a user runs them: a generated
# `custory-workspace/1` file of ITEMS items (4 journeys, 40 stages, 400 steps, text from a large
# vocabulary, a link and a comment for every tenth item) is imported with `custory-mcp import`,
# then exported with `custory-mcp export`. Prints the wall time of each command, the CLI's peak
# RSS (/usr/bin/time) and the server's peak RSS over the command (VmHWM, reset before each).
#
#   bench/transfer.sh [ITEMS=100000]
#   BENCH_DATABASE=postgres bench/transfer.sh …
set -euo pipefail
cd "$(dirname "$0")/.."
items="${1:-100000}"
source bench/lib.sh
start_server
pid="${SERVER_PIDS[0]}"
export CUSTORY_SERVER="$SERVER_URL" CUSTORY_OWNER_TOKEN="$OWNER"

python3 - "$items" "$WORK/big.json" <<'PY'
import json, random, sys
items, path = int(sys.argv[1]), sys.argv[2]
rng = random.Random(7)
words = [f"w{n:05d}" for n in range(40_000)]
weights = [1 / (n + 1) for n in range(len(words))]
cumulative = list(__import__("itertools").accumulate(weights))
def text(n):
    return " ".join(rng.choices(words, cum_weights=cumulative, k=n))
kinds = ["touchpoint", "insight", "opportunity", "solution", "metric"]
steps = [{"name": f"Step {s}", "description": text(8), "items": []} for s in range(400)]
for i in range(items):
    steps[i % 400]["items"].append({
        "id": f"i{i}", "kind": kinds[i % 5], "title": text(6), "description": text(40),
        **({"comments": [{"author": "Sam", "body": text(20)}]} if i % 10 == 0 else {}),
    })
journeys = [{"slug": f"journey-{j}", "name": f"Journey {j}", "stages": [
    {"name": f"Stage {j}.{s}", "steps": steps[j * 100 + s * 10: j * 100 + s * 10 + 10]}
    for s in range(10)]} for j in range(4)]
# touchpoint -> insight: item i (i % 5 == 0) links to item i + 1, every tenth item.
links = [{"from": f"i{i}", "to": f"i{i + 1}"} for i in range(0, items - 1, 10)]
doc = {"format": "custory-workspace/1", "workspace": {"name": "Big", "slug": "big"},
       "journeys": journeys, "links": links, "personas": [{"name": "Sam", "goals": ["Ship"]}]}
json.dump(doc, open(path, "w"))
PY
size="$(stat -c %s "$WORK/big.json")"

reset_peak() { echo 5 >"/proc/$pid/clear_refs"; }
server_peak() { awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status"; }
timed() { # timed LABEL COMMAND...: runs it, prints one line of figures
  local label="$1"; shift
  reset_peak
  local start end
  start="$(date +%s.%N)"
  /usr/bin/time -f "%M" -o "$WORK/time" "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err"; exit 1; }
  end="$(date +%s.%N)"
  printf '%-8s %7.1f s   CLI peak RSS %4.0f MiB   server peak RSS %4s MiB\n' "$label" \
    "$(echo "$end - $start" | bc)" "$(( $(cat "$WORK/time") / 1024 ))" "$(server_peak)"
}

echo "custory-mcp transfer, $(nproc) cores, database: ${BENCH_DATABASE:-sqlite}: a document of $items items, $((size / 1000000)) MB"
echo "server RSS before: $(awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status") MiB"
timed import ./target/release/custory-mcp import "$WORK/big.json"
timed export ./target/release/custory-mcp --workspace big export -o "$WORK/out.json"
echo "exported $(( $(stat -c %s "$WORK/out.json") / 1000000 )) MB (pretty-printed, with ids and times)"

# Archive and restore of the first journey (a quarter of the items) over MCP: the whole subtree
# is re-marked and reindexed in one write transaction.
token="$(curl -sf -X POST "$SERVER_URL/api/admin/workspaces/big/mcp-keys" \
  -H "Authorization: Bearer $OWNER" -H 'Content-Type: application/json' \
  -d '{"name": "bench", "expires": "30d"}' | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')"
call() { # call TOOL ARGS: prints the wall time and the tool result's first 120 characters
  local start end out
  start="$(date +%s.%N)"
  out="$(curl -sf "$SERVER_URL/api/mcp" -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
    -d "{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": \"tools/call\", \"params\": {\"name\": \"$1\", \"arguments\": $2}}")"
  end="$(date +%s.%N)"
  printf '%-8s %7.2f s   %s\n' "$1" "$(echo "$end - $start" | bc)" \
    "$(echo "$out" | python3 -c 'import json, sys; r = json.load(sys.stdin)["result"]; print(json.dumps(r.get("structuredContent") or r["content"][0]["text"])[:120])')"
}
# search for a common word (in most items), 30 times: the median, while nothing is archived and
# while a quarter of the workspace is (its hidden documents are left out one by one).
search_ms() {
  for _ in $(seq 30); do
    curl -sf -o /dev/null -w '%{time_total}\n' "$SERVER_URL/api/mcp" -H "Authorization: Bearer $token" \
      -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
      -d '{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "search", "arguments": {"query": "w00001"}}}'
  done | sort -n | awk '{ t[NR] = $1 } END { printf "%.1f ms", t[int((NR + 1) / 2)] * 1000 }'
}
echo "search (common word), nothing archived: median $(search_ms)"
call archive '{"id": "journey-0"}'
echo "search (common word), a quarter archived: median $(search_ms)"
call restore '{"id": "journey-0"}'


# The worst a key can do with archive: archive and restore the 25k-item journey back to back
# (20 times), while another key writes. The other key's create_item latencies: median and max.
other="$(curl -sf -X POST "$SERVER_URL/api/admin/workspaces/big/mcp-keys" \
  -H "Authorization: Bearer $OWNER" -H 'Content-Type: application/json' \
  -d '{"name": "victim", "expires": "30d"}' | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')"
step="$(curl -sf "$SERVER_URL/api/mcp" -H "Authorization: Bearer $other" -H 'Content-Type: application/json' \
  -H 'Accept: application/json, text/event-stream' \
  -d '{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "get_journey", "arguments": {"journey": "journey-1"}}}' \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["result"]["structuredContent"]["stages"][0]["steps"][0]["id"])')"
write_ms() {
  for n in $(seq "$1"); do
    curl -sf -o /dev/null -w '%{time_total}\n' "$SERVER_URL/api/mcp" -H "Authorization: Bearer $other" \
      -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
      -d "{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": \"tools/call\", \"params\": {\"name\": \"create_item\", \"arguments\": {\"step_id\": \"$step\", \"kind\": \"insight\", \"title\": \"Victim $n\"}}}"
  done | sort -n | awk '{ t[NR] = $1 } END { printf "median %.1f ms, max %.1f ms", t[int((NR + 1) / 2)] * 1000, t[NR] * 1000 }'
}
echo "another key's create_item, alone: $(write_ms 20)"
( for _ in $(seq 20); do call archive '{"id": "journey-0"}' >/dev/null; call restore '{"id": "journey-0"}' >/dev/null; done ) &
hog=$!
echo "another key's create_item, while one key archives and restores: $(write_ms 40)"
wait "$hog"
echo "command: BENCH_DATABASE=${BENCH_DATABASE:-sqlite} bench/transfer.sh $items"
