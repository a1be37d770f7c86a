#!/usr/bin/env bash
# The attacks of issue 15 (batch amplification, one key starving the rest, forged credentials,
# a revoke during a batch, slowloris and idle connections, stalled bodies, a write flood, a
# SIGTERM held open) and the OAuth strangers of issue 31 (a flood at /oauth/register and
# /oauth/token, registrations from 40 networks), replayed against a release server with its
# default limits (and --oauth), each with what a /healthz prober and a key of another workspace
# felt meanwhile. One run, one report.
#
#   bench/abuse.sh
#   BENCH_DATABASE=postgres bench/abuse.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
SERVE_ARGS="${SERVE_ARGS:-} --oauth"
start_server
python3 bench/abuse.py "$SERVER_URL" "$OWNER" "${SERVER_PIDS[0]}"
echo "command: BENCH_DATABASE=${BENCH_DATABASE:-sqlite} bench/abuse.sh"
