
use builtin;
use str;

set edit:completion:arg-completer[custory-mcp] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'custory-mcp'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'custory-mcp'= {
            cand --server 'The Custory server to manage'
            cand --workspace 'The workspace to act on (may be omitted when the server has one workspace)'
            cand --color 'When to use colors (NO_COLOR is respected)'
            cand --ca-cert 'Trust the CA certificates in this PEM file too, for an https --server with a private CA'
            cand --json 'Print machine-readable JSON on stdout'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Log more (repeat for more detail)'
            cand --verbose 'Log more (repeat for more detail)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand serve 'Run the local Custory server (admin API and MCP endpoint)'
            cand login 'Store the owner credential for --server'
            cand logout 'Forget the owner credential for --server'
            cand workspaces 'Manage workspaces'
            cand keys 'Manage MCP keys: create, list, show, revoke, rotate'
            cand audit 'Show the workspace''s key and MCP activity, newest first'
            cand config 'Print or write the MCP config for a client (Cursor, Claude Code, VS Code, …)'
            cand test 'Check a connection to the MCP endpoint, stage by stage'
            cand export 'Write a workspace (or, with --all, every workspace) as a JSON document'
            cand import 'Import a workspace that `export` wrote, or a journey from a CSV file (all or nothing)'
            cand completions 'Print the shell completion script'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'custory-mcp;serve'= {
            cand --listen 'Address to listen on (port 0 picks a free port)'
            cand --database 'Where the data lives: a SQLite file (a path or sqlite://PATH) or a PostgreSQL database (postgres://USER:PASSWORD@HOST/DB, shared by several replicas) [default: custory.db in the user''s data directory]'
            cand --db 'Where the data lives: a SQLite file (a path or sqlite://PATH) or a PostgreSQL database (postgres://USER:PASSWORD@HOST/DB, shared by several replicas) [default: custory.db in the user''s data directory]'
            cand --allow-origin 'Let browser pages from this Origin call the MCP endpoint (repeatable)'
            cand --allow-host 'Accept requests addressed to this host name (repeatable; loopback names are always accepted on a loopback address)'
            cand --trusted-proxy 'A proxy or load balancer (an address or CIDR, repeatable) whose Forwarded or X-Forwarded-For header names the client: for last-used addresses, the failed-auth limit and the log. Anyone else''s forwarding headers are ignored'
            cand --forwarded-header 'The header the trusted proxies set to name the client (only that one is read)'
            cand --tls-cert 'Serve HTTPS with this certificate chain (PEM); read again on SIGHUP'
            cand --tls-key 'The certificate''s private key (PEM)'
            cand --metrics-listen 'Serve Prometheus metrics at http://ADDR/metrics, apart from the API (requests, tool calls, auth failures, 429s, latencies, pool use, last-used flush lag)'
            cand --log-format 'How log lines are written to stderr: text, or one JSON object per line'
            cand --public-url 'The URL clients reach this server at, when it differs from what they send as Host (behind a TLS proxy: https://mcp.example.com); OAuth''s metadata names it'
            cand --max-connections 'Connections open at once (kept below the open-files limit, which is raised at start)'
            cand --max-connections-per-address 'Connections open at once from one address (an IPv6 /64 counts as one)'
            cand --header-timeout 'Seconds a client has to send a request''s head (also ends idle kept-alive connections)'
            cand --body-timeout 'Seconds a request''s body may take to arrive'
            cand --call-deadline 'Seconds one MCP request''s work may take before its answer is given up'
            cand --statement-timeout 'Milliseconds one database statement may run before it is stopped'
            cand --key-concurrency 'MCP requests one key may have running at once (more wait their turn)'
            cand --key-requests-per-second 'MCP messages one key may send per second (bursts of twice as many pass)'
            cand --key-writes-per-second 'Write tool calls one key may make per second (bursts of ten times as many pass)'
            cand --max-items 'Items one workspace may hold'
            cand --max-comments 'Comments one workspace may hold'
            cand --max-text-bytes 'Bytes of text one workspace may hold (titles, descriptions, fields, comments)'
            cand --audit-retention 'How long the record of each call a key made (tool, ids, outcome, size) is kept'
            cand --usage-retention 'How long each key''s hourly totals of calls are kept (audit --usage)'
            cand --server 'The Custory server to manage'
            cand --workspace 'The workspace to act on (may be omitted when the server has one workspace)'
            cand --color 'When to use colors (NO_COLOR is respected)'
            cand --ca-cert 'Trust the CA certificates in this PEM file too, for an https --server with a private CA'
            cand --allow-any-host 'Accept requests addressed to any host name (behind a proxy that checks it); without it, a non-loopback --listen needs --allow-host'
            cand --reset-owner-credential 'Issue a new owner credential and revoke the old one (needs the database file)'
            cand --oauth 'Be the OAuth authorization server of the MCP endpoint: clients that answer a 401 with a browser sign-in (mcp-remote, Codex, Gemini CLI, MCP Inspector) get one, and the owner''s consent mints an ordinary MCP key. Clients with a key in a header are unaffected'
            cand --json 'Print machine-readable JSON on stdout'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Log more (repeat for more detail)'
            cand --verbose 'Log more (repeat for more detail)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'custory-mcp;login'= {
            cand --server 'The Custory server to manage'
            cand --workspace 'The workspace to act on (may be omitted when the server has one workspace)'
            cand --color 'When to use colors (NO_COLOR is respected)'
            cand --ca-cert 'Trust the CA certificates in this PEM file too, for an https --server with a private CA'
            cand --token-stdin 'Read the credential from standard input instead of prompting for it'
            cand --json 'Print machine-readable JSON on stdout'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Log more (repeat for more detail)'
            cand --verbose 'Log more (repeat for more detail)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'custory-mcp;logout'= {
            cand --server 'The Custory server to manage'
            cand --workspace 'The workspace to act on (may be omitted when the server has one workspace)'
            cand --color 'When to use colors (NO_COLOR is respected)'
            cand --ca-cert 'Trust the CA certificates in this PEM file too, for an https --server with a private CA'
            cand --json 'Print machine-readable JSON on stdout'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Log more (repeat for more detail)'
            cand --verbose 'Log more (repeat for more detail)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'custory-mcp;workspaces'= {
            cand --server 'The Custory server to manage'
            cand --workspace 'The workspace to act on (may be omitted when the server has one workspace)'
            cand --color 'When to use colors (NO_COLOR is respected)'
            cand --ca-cert 'Trust the CA certificates in this PEM file too, for an https --server with a private CA'
            cand --json 'Print machine-readable JSON on stdout'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Log more (repeat for more detail)'
            cand --verbose 'Log more (repeat for more detail)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand list 'List the server''s workspaces'
            cand create 'Create a workspace'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'custory-mcp;workspaces;list'= {
            cand --server 'The Custory server to manage'
            cand --workspace 'The workspace to act on (may be omitted when the server has one workspace)'
            cand --color 'When to use colors (NO_COLOR is respected)'
            cand --ca-cert 'Trust the CA certificates in this PEM file too, for an https --server with a private CA'
            cand --json 'Print machine-readable JSON on stdout'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Log more (repeat for more detail)'
            cand --verbose 'Log more (repeat for more detail)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'custory-mcp;workspaces;create'= {
            cand --slug 'Its URL slug [default: made from the name]'
            cand --template 'What it starts with: nothing, or a journey with a persona and example items'
            cand --server 'The Custory server to manage'
            cand --workspace 'The workspace to act on (may be omitted when the server has one workspace)'
            cand --color 'When to use colors (NO_COLOR is respected)'
            cand --ca-cert 'Trust the CA certificates in this PEM file too, for an https --server with a private CA'
            cand --json 'Print machine-readable JSON on stdout'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Log more (repeat for more detail)'
            cand --verbose 'Log more (repeat for more detail)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'custory-mcp;workspaces;help'= {
            cand list 'List the server''s workspaces'
            cand create 'Create a workspace'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'custory-mcp;workspaces;help;list'= {
        }
        &'custory-mcp;workspaces;help;create'= {
        }
        &'custory-mcp;workspaces;help;help'= {
        }
        &'custory-mcp;keys'= {
            cand --server 'The Custory server to manage'
            cand --workspace 'The workspace to act on (may be omitted when the server has one workspace)'
            cand --color 'When to use colors (NO_COLOR is respected)'
            cand --ca-cert 'Trust the CA certificates in this PEM file too, for an https --server with a private CA'
            cand --json 'Print machine-readable JSON on stdout'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Log more (repeat for more detail)'
            cand --verbose 'Log more (repeat for more detail)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand create 'Create a key; prints its token once'
            cand list 'List the workspace''s keys'
            cand show 'Show one key in full, with its recent activity'
            cand revoke 'Revoke a key: its very next request is refused'
            cand rotate 'Replace a key with a new one of the same name and access; the old one is revoked'
            cand review 'What needs a decision, per workspace: shared, stale, never-used and expiring keys, and read-write keys that only read; with the command that settles each'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'custory-mcp;keys;create'= {
            cand --name 'A name that says where the key is used, e.g. "Cursor on MacBook"'
            cand --expires 'When the key expires'
            cand --server 'The Custory server to manage'
            cand --workspace 'The workspace to act on (may be omitted when the server has one workspace)'
            cand --color 'When to use colors (NO_COLOR is respected)'
            cand --ca-cert 'Trust the CA certificates in this PEM file too, for an https --server with a private CA'
            cand --read-only 'Only read tools: the key can read journey context but change nothing'
            cand --save 'Keep the token in the OS keyring (or a 0600 file) for `config --key` and `test --key`'
            cand --json 'Print machine-readable JSON on stdout'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Log more (repeat for more detail)'
            cand --verbose 'Log more (repeat for more detail)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'custory-mcp;keys;list'= {
            cand --status 'Show only keys with this status'
            cand --limit 'Show at most this many keys, newest first'
            cand --server 'The Custory server to manage'
            cand --workspace 'The workspace to act on (may be omitted when the server has one workspace)'
            cand --color 'When to use colors (NO_COLOR is respected)'
            cand --ca-cert 'Trust the CA certificates in this PEM file too, for an https --server with a private CA'
            cand --all 'Show every key, however many pages that takes'
            cand --shared 'Only keys used by more than one client, or from more than one address, in the last 7 days (one key per client or machine)'
            cand --json 'Print machine-readable JSON on stdout'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Log more (repeat for more detail)'
            cand --verbose 'Log more (repeat for more detail)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'custory-mcp;keys;show'= {
            cand --server 'The Custory server to manage'
            cand --workspace 'The workspace to act on (may be omitted when the server has one workspace)'
            cand --color 'When to use colors (NO_COLOR is respected)'
            cand --ca-cert 'Trust the CA certificates in this PEM file too, for an https --server with a private CA'
            cand --json 'Print machine-readable JSON on stdout'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Log more (repeat for more detail)'
            cand --verbose 'Log more (repeat for more detail)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'custory-mcp;keys;revoke'= {
            cand --unused-for 'Revoke, in bulk, every active key not used for this long (24h, 30d, 90d…; a key never used counts from its creation); the list is shown and confirmed first'
            cand --server 'The Custory server to manage'
            cand --workspace 'The workspace to act on (may be omitted when the server has one workspace)'
            cand --color 'When to use colors (NO_COLOR is respected)'
            cand --ca-cert 'Trust the CA certificates in this PEM file too, for an https --server with a private CA'
            cand --token-stdin 'Revoke the key a found token belongs to, in whichever workspace it is: the token is read from stdin (a leak: you have the token, not the key''s name)'
            cand --never-used 'Only keys never used (created more than --unused-for ago, 7 days by default)'
            cand --dry-run 'With --unused-for or --never-used: show what would be revoked, revoke nothing'
            cand -y 'Do not ask for confirmation'
            cand --yes 'Do not ask for confirmation'
            cand --json 'Print machine-readable JSON on stdout'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Log more (repeat for more detail)'
            cand --verbose 'Log more (repeat for more detail)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'custory-mcp;keys;rotate'= {
            cand --server 'The Custory server to manage'
            cand --workspace 'The workspace to act on (may be omitted when the server has one workspace)'
            cand --color 'When to use colors (NO_COLOR is respected)'
            cand --ca-cert 'Trust the CA certificates in this PEM file too, for an https --server with a private CA'
            cand -y 'Do not ask for confirmation'
            cand --yes 'Do not ask for confirmation'
            cand --json 'Print machine-readable JSON on stdout'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Log more (repeat for more detail)'
            cand --verbose 'Log more (repeat for more detail)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'custory-mcp;keys;review'= {
            cand --server 'The Custory server to manage'
            cand --workspace 'The workspace to act on (may be omitted when the server has one workspace)'
            cand --color 'When to use colors (NO_COLOR is respected)'
            cand --ca-cert 'Trust the CA certificates in this PEM file too, for an https --server with a private CA'
            cand --json 'Print machine-readable JSON on stdout'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Log more (repeat for more detail)'
            cand --verbose 'Log more (repeat for more detail)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'custory-mcp;keys;help'= {
            cand create 'Create a key; prints its token once'
            cand list 'List the workspace''s keys'
            cand show 'Show one key in full, with its recent activity'
            cand revoke 'Revoke a key: its very next request is refused'
            cand rotate 'Replace a key with a new one of the same name and access; the old one is revoked'
            cand review 'What needs a decision, per workspace: shared, stale, never-used and expiring keys, and read-write keys that only read; with the command that settles each'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'custory-mcp;keys;help;create'= {
        }
        &'custory-mcp;keys;help;list'= {
        }
        &'custory-mcp;keys;help;show'= {
        }
        &'custory-mcp;keys;help;revoke'= {
        }
        &'custory-mcp;keys;help;rotate'= {
        }
        &'custory-mcp;keys;help;review'= {
        }
        &'custory-mcp;keys;help;help'= {
        }
        &'custory-mcp;audit'= {
            cand --key 'Only the events of this key (id, name or prefix), with every call it made, reads included'
            cand --since 'With --usage: how far back (24h, 7d, 30d…; hourly totals are kept for `serve --usage-retention`)'
            cand --limit 'How many rows to show, newest (or busiest) first (1-1000)'
            cand --server 'The Custory server to manage'
            cand --workspace 'The workspace to act on (may be omitted when the server has one workspace)'
            cand --color 'When to use colors (NO_COLOR is respected)'
            cand --ca-cert 'Trust the CA certificates in this PEM file too, for an https --server with a private CA'
            cand --calls 'Include the calls keys made (tools, resources, prompts), not only lifecycle and writes'
            cand --usage 'Totals instead of events: each key''s calls, errors and bytes sent (with --key, that key''s hour by hour)'
            cand --all 'Show every row, however many pages that takes'
            cand --json 'Print machine-readable JSON on stdout'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Log more (repeat for more detail)'
            cand --verbose 'Log more (repeat for more detail)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'custory-mcp;config'= {
            cand --key 'Embed the token saved for KEY (id, name or prefix) with `keys create --save`; implies --inline-token'
            cand --token-env 'Reference the token through this environment variable [default: CUSTORY_MCP_TOKEN]'
            cand --url 'The MCP endpoint [default: <server>/api/mcp]'
            cand --scope 'Whose config file: the user''s, or the project''s in the current directory'
            cand --server 'The Custory server to manage'
            cand --workspace 'The workspace to act on (may be omitted when the server has one workspace)'
            cand --color 'When to use colors (NO_COLOR is respected)'
            cand --ca-cert 'Trust the CA certificates in this PEM file too, for an https --server with a private CA'
            cand --inline-token 'Embed the token itself: the one saved for --key, else one line read from stdin'
            cand --write 'Merge the entry into the client''s config file (diff shown, backup kept, 0600)'
            cand --yes 'Write without asking for confirmation'
            cand --oauth 'No token at all: the client signs in in a browser on first use (the server must run with `serve --oauth`), and the owner''s consent creates its key'
            cand --json 'Print machine-readable JSON on stdout'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Log more (repeat for more detail)'
            cand --verbose 'Log more (repeat for more detail)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'custory-mcp;test'= {
            cand --url 'The MCP endpoint to check [default: <server>/api/mcp]'
            cand --key 'Use the token of a key saved with `keys create --save` (id, name or prefix)'
            cand --token-env 'Read the token from this environment variable'
            cand --timeout 'Seconds to wait for each request'
            cand --server 'The Custory server to manage'
            cand --workspace 'The workspace to act on (may be omitted when the server has one workspace)'
            cand --color 'When to use colors (NO_COLOR is respected)'
            cand --ca-cert 'Trust the CA certificates in this PEM file too, for an https --server with a private CA'
            cand --curl 'Print the equivalent curl command (token read from the environment) instead of checking'
            cand --json 'Print machine-readable JSON on stdout'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Log more (repeat for more detail)'
            cand --verbose 'Log more (repeat for more detail)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'custory-mcp;export'= {
            cand -o 'Write to this file (with --all: this directory, one SLUG.json per workspace) instead of stdout'
            cand --output 'Write to this file (with --all: this directory, one SLUG.json per workspace) instead of stdout'
            cand --server 'The Custory server to manage'
            cand --workspace 'The workspace to act on (may be omitted when the server has one workspace)'
            cand --color 'When to use colors (NO_COLOR is respected)'
            cand --ca-cert 'Trust the CA certificates in this PEM file too, for an https --server with a private CA'
            cand --all 'Export every workspace of the server (a backup); needs --output DIR'
            cand --json 'Print machine-readable JSON on stdout'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Log more (repeat for more detail)'
            cand --verbose 'Log more (repeat for more detail)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'custory-mcp;import'= {
            cand --new 'Import into a new workspace with this name [default: JSON: the document''s name and slug, or the existing, empty workspace that --workspace names; CSV: the existing workspace that --workspace names]'
            cand --slug 'The new workspace''s slug [default: made from its name]'
            cand --journey 'CSV: the name of the journey the rows become; its slug is made from it [default: the file''s name without .csv]'
            cand --format 'The file''s format [default: csv for a file named *.csv, else json]'
            cand --server 'The Custory server to manage'
            cand --workspace 'The workspace to act on (may be omitted when the server has one workspace)'
            cand --color 'When to use colors (NO_COLOR is respected)'
            cand --ca-cert 'Trust the CA certificates in this PEM file too, for an https --server with a private CA'
            cand --dry-run 'Check everything and write nothing'
            cand --json 'Print machine-readable JSON on stdout'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Log more (repeat for more detail)'
            cand --verbose 'Log more (repeat for more detail)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'custory-mcp;completions'= {
            cand --server 'The Custory server to manage'
            cand --workspace 'The workspace to act on (may be omitted when the server has one workspace)'
            cand --color 'When to use colors (NO_COLOR is respected)'
            cand --ca-cert 'Trust the CA certificates in this PEM file too, for an https --server with a private CA'
            cand --json 'Print machine-readable JSON on stdout'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Log more (repeat for more detail)'
            cand --verbose 'Log more (repeat for more detail)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'custory-mcp;help'= {
            cand serve 'Run the local Custory server (admin API and MCP endpoint)'
            cand login 'Store the owner credential for --server'
            cand logout 'Forget the owner credential for --server'
            cand workspaces 'Manage workspaces'
            cand keys 'Manage MCP keys: create, list, show, revoke, rotate'
            cand audit 'Show the workspace''s key and MCP activity, newest first'
            cand config 'Print or write the MCP config for a client (Cursor, Claude Code, VS Code, …)'
            cand test 'Check a connection to the MCP endpoint, stage by stage'
            cand export 'Write a workspace (or, with --all, every workspace) as a JSON document'
            cand import 'Import a workspace that `export` wrote, or a journey from a CSV file (all or nothing)'
            cand completions 'Print the shell completion script'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'custory-mcp;help;serve'= {
        }
        &'custory-mcp;help;login'= {
        }
        &'custory-mcp;help;logout'= {
        }
        &'custory-mcp;help;workspaces'= {
            cand list 'List the server''s workspaces'
            cand create 'Create a workspace'
        }
        &'custory-mcp;help;workspaces;list'= {
        }
        &'custory-mcp;help;workspaces;create'= {
        }
        &'custory-mcp;help;keys'= {
            cand create 'Create a key; prints its token once'
            cand list 'List the workspace''s keys'
            cand show 'Show one key in full, with its recent activity'
            cand revoke 'Revoke a key: its very next request is refused'
            cand rotate 'Replace a key with a new one of the same name and access; the old one is revoked'
            cand review 'What needs a decision, per workspace: shared, stale, never-used and expiring keys, and read-write keys that only read; with the command that settles each'
        }
        &'custory-mcp;help;keys;create'= {
        }
        &'custory-mcp;help;keys;list'= {
        }
        &'custory-mcp;help;keys;show'= {
        }
        &'custory-mcp;help;keys;revoke'= {
        }
        &'custory-mcp;help;keys;rotate'= {
        }
        &'custory-mcp;help;keys;review'= {
        }
        &'custory-mcp;help;audit'= {
        }
        &'custory-mcp;help;config'= {
        }
        &'custory-mcp;help;test'= {
        }
        &'custory-mcp;help;export'= {
        }
        &'custory-mcp;help;import'= {
        }
        &'custory-mcp;help;completions'= {
        }
        &'custory-mcp;help;help'= {
        }
    ]
    $completions[$command]
}
