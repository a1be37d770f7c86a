#!/usr/bin/env bash
# How the data plane grows: the demo workspace is grown through the MCP write path (create_item
# in JSON-RPC batches) to each size, and at each size the read tools are measured as users meet
# them. Prints one growth table from one run.
#
#   bench/scale.sh [SIZES=1000,10000,100000] [KEYS=100000]
#   BENCH_DATABASE=postgres bench/scale.sh …     # on a throwaway PostgreSQL
#
# Text is generated from a 40,000-word vocabulary with a Zipf-like spread; one word is put in
# about a sixth of the items ("common"), another in a sixth independently ("two common" finds
# the items holding both), one in a handful ("rare"), one in none ("absent"). At each size:
# search p50/p99 for each of those (ranked, top 20), list_items (default, and kind + owner),
# get_journey of the largest journey (time, bytes), the journey as a resource, the
# summarise_changes prompt over 30 days and a stage-name completion, mixed read throughput at 8 and 32
# connections (wrk; search, list_items, get_item, get_journey, get_workspace in turn), get_item
# p50/p99 while 8 connections search for the common word, and the server's peak RSS. Then KEYS
# keys are created through the admin API and the first page of `keys list` is timed (the API
# call, and the whole CLI process). Latencies are measured by one keep-alive client, one request
# after another; wrk and the server share the cores.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes="${1:-1000,10000,100000}"
keys="${2:-100000}"

source bench/lib.sh
SERVE_ARGS="$UNLIMITED_KEYS"
need wrk wrk
start_server
pid="${SERVER_PIDS[0]}"
python3 bench/scale.py "$SERVER_URL" "$OWNER" "$pid" "$WORK" "$sizes" "$keys" ./target/release/custory-mcp
echo "command: BENCH_DATABASE=${BENCH_DATABASE:-sqlite} bench/scale.sh $sizes $keys"
