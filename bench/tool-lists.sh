#!/usr/bin/env bash
# The bytes of tools/list (uncompressed and gzip) for keys of different scopes: the context a
# client's agent pays for the tool list before it does anything.
#
#   bench/tool-lists.sh
#
# Starts a release server with a throwaway database (bench/lib.sh) and creates one key per row.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
start_server
list() { # list TOKEN [ACCEPT-ENCODING]: prints the bytes of the tools/list answer
  curl -sf -X POST "$SERVER_URL/api/mcp" -H "Authorization: Bearer $1" \
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
    ${2:+-H "Accept-Encoding: $2"} -d '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' | wc -c
}
printf '%-44s %6s %6s %9s\n' "key" "tools" "bytes" "gzipped"
row() { # row LABEL SCOPES
  local token tools
  token="$(create_key "$SERVER_URL" "$OWNER" "$2")"
  tools="$(curl -sf -X POST "$SERVER_URL/api/mcp" -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
    -d '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' |
    python3 -c 'import json,sys; print(len(json.load(sys.stdin)["result"]["tools"]))')"
  printf '%-44s %6s %6s %9s\n' "$1" "$tools" "$(list "$token")" "$(list "$token" gzip)"
  curl -sf -X POST "$SERVER_URL/api/admin/workspaces/acme/mcp-keys/$(curl -sf \
    "$SERVER_URL/api/admin/workspaces/acme/mcp-keys?status=active" -H "Authorization: Bearer $OWNER" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["keys"][0]["id"])')/revoke" \
    -H "Authorization: Bearer $OWNER" >/dev/null
}
row "read-write, every tool" ''
row "read-only" '"access":"read-only"'
row "--tools read" '"tools":["read"]'
row "--tools search,get_item,add_comment" '"tools":["search","get_item","add_comment"]'
