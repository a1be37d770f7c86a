# Shared by the bench scripts: source it, then call start_server.
#
# start_server: builds the release binary, starts `serve` on a free loopback port with a
# throwaway database and config directory, and sets SERVER_URL, OWNER (the owner credential),
# SERVER_PID and WORK (the scratch directory). Everything is cleaned up on exit.

need() { # need COMMAND PACKAGE: install a Debian package when the command is missing
  if ! command -v "$1" >/dev/null; then
    echo "installing $2 (Debian package)..." >&2
    apt-get update -qq >/dev/null && apt-get install -y -qq "$2" >/dev/null
  fi
}

json_field() { # json_field JSON KEY
  python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"
}

start_server() {
  cargo build --release --quiet
  WORK="$(mktemp -d)"
  SERVER_PID=""
  trap 'stop_server' EXIT
  export CUSTORY_CONFIG_DIR="$WORK/config" CUSTORY_CREDENTIAL_STORE=file
  # The server prints one JSON line once its listener is bound.
  mkfifo "$WORK/announce"
  ./target/release/custory-mcp serve --json --listen 127.0.0.1:0 --db "$WORK/bench.db" \
    >"$WORK/announce" 2>"$WORK/server.log" &
  SERVER_PID=$!
  local announcement
  read -r announcement <"$WORK/announce"
  SERVER_URL="$(json_field "$announcement" url)"
  OWNER="$(json_field "$announcement" owner_credential)"
  export SERVER_URL OWNER SERVER_PID WORK
}

stop_server() {
  if [ -n "${SERVER_PID:-}" ]; then
    kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  fi
  rm -rf "$WORK"
}
