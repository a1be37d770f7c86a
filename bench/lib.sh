# Shared by the bench scripts: source it, then call start_server (and start_replica for more).
#
# start_server: builds the release binary and starts `serve` on a free loopback port with a
# throwaway database and config directory. The database is a SQLite file, or, with
# BENCH_DATABASE=postgres, a new database on a throwaway PostgreSQL server (.ci/postgres, on its
# own port and directory). Sets SERVER_URL, OWNER (the owner credential), DATABASE, WORK (the
# scratch directory) and SERVER_URLS (every replica's URL). Everything is cleaned up on exit.
# BENCH_PG_URL=postgres://…/postgres: use that server instead (a database created and dropped).
# start_replica: one more `serve` on the same database; appends its URL to SERVER_URLS.
# BENCH_BIN: the binary to run (default: ./target/release/custory-mcp, built first), to compare
# two builds. SERVE_ARGS: extra `serve` flags (word-split). A benchmark of the data plane lifts the per-key
# rates with $UNLIMITED_KEYS, since one key stands in for many clients there; bench/abuse.sh
# keeps every default.

need() { # need COMMAND PACKAGE: install a Debian package when the command is missing
  if ! command -v "$1" >/dev/null; then
    echo "installing $2 (Debian package)..." >&2
    apt-get update -qq >/dev/null && apt-get install -y -qq "$2" >/dev/null
  fi
}

json_field() { # json_field JSON KEY
  python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"
}

# launch COMMAND...: runs a command that ends in `serve --json` in the background and waits for
# the JSON line the server prints once its listener is bound (in $WORK, stderr to
# $WORK/server.log). Sets LAUNCHED_PID and LAUNCHED_ANNOUNCEMENT.
launch() {
  local fifo
  fifo="$(mktemp -u "$WORK/announce.XXXXXX")"
  mkfifo "$fifo"
  "$@" >"$fifo" 2>>"$WORK/server.log" &
  LAUNCHED_PID=$!
  read -r LAUNCHED_ANNOUNCEMENT <"$fifo"
}

create_key() { # create_key URL OWNER_CREDENTIAL [SCOPES]: prints the token of a new key for
               # acme; SCOPES are more members of the body, e.g. "tools":["read"]
  local created
  created="$(curl -sf -X POST "$1/api/admin/workspaces/acme/mcp-keys" \
    -H "Authorization: Bearer $2" -H 'Content-Type: application/json' \
    -d "{\"name\":\"bench\",\"expires\":\"30d\"${3:+,$3}}")"
  json_field "$created" token
}

mcp_lua() { # mcp_lua JSON-RPC-BODY [EXTRA-LUA]: a wrk script POSTing it with the bearer $TOKEN
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

UNLIMITED_KEYS="--key-requests-per-second 1000000000 --key-writes-per-second 1000000000"
SERVER_PIDS=()
SERVER_URLS=()
BENCH_PG=""

# Starts one `serve` on $DATABASE; sets LAST_ANNOUNCEMENT.
serve_one() {
  # shellcheck disable=SC2086 # SERVE_ARGS is a list of flags
  launch "${BENCH_BIN:-./target/release/custory-mcp}" serve --json --listen 127.0.0.1:0 --database "$DATABASE" \
    ${SERVE_ARGS:-}
  SERVER_PIDS+=("$LAUNCHED_PID")
  LAST_ANNOUNCEMENT="$LAUNCHED_ANNOUNCEMENT"
  SERVER_URLS+=("$(json_field "$LAST_ANNOUNCEMENT" url)")
}

start_server() {
  if [ -z "${BENCH_BIN:-}" ]; then cargo build --release --quiet; fi
  WORK="$(mktemp -d)"
  trap 'stop_server' EXIT
  export CUSTORY_CONFIG_DIR="$WORK/config" CUSTORY_CREDENTIAL_STORE=file
  case "${BENCH_DATABASE:-sqlite}" in
    sqlite) DATABASE="$WORK/bench.db" ;;
    postgres)
      if [ -n "${BENCH_PG_URL:-}" ]; then
        # An existing server: a database of its own, dropped at the end.
        BENCH_PG_DB="bench_$$"
        psql -q "$BENCH_PG_URL" -c "CREATE DATABASE $BENCH_PG_DB"
        DATABASE="${BENCH_PG_URL%/*}/$BENCH_PG_DB"
      else
        # Outside $WORK: as root, the server runs as the postgres user, who cannot enter it.
        export CUSTORY_PG_DIR="/tmp/custory-bench-pg-$$" CUSTORY_PG_PORT="${CUSTORY_PG_PORT:-55433}"
        BENCH_PG="$(.ci/postgres start)"
        psql -q "$BENCH_PG" -c "CREATE DATABASE bench"
        DATABASE="${BENCH_PG%/*}/bench"
      fi
      ;;
    *) echo "BENCH_DATABASE must be sqlite or postgres" >&2; exit 2 ;;
  esac
  serve_one
  SERVER_URL="${SERVER_URLS[0]}"
  OWNER="$(json_field "$LAST_ANNOUNCEMENT" owner_credential)"
  export SERVER_URL OWNER DATABASE WORK
}

start_replica() {
  serve_one
}

stop_server() {
  for pid in "${SERVER_PIDS[@]}"; do
    kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  if [ -n "$BENCH_PG" ]; then .ci/postgres stop; fi
  if [ -n "${BENCH_PG_DB:-}" ]; then psql -q "$BENCH_PG_URL" -c "DROP DATABASE IF EXISTS $BENCH_PG_DB" || true; fi
  rm -rf "$WORK"
}
