
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'custory-mcp' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'custory-mcp'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'custory-mcp' {
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'The Custory server to manage')
            [CompletionResult]::new('--workspace', '--workspace', [CompletionResultType]::ParameterName, 'The workspace to act on (may be omitted when the server has one workspace)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colors (NO_COLOR is respected)')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust the CA certificates in this PEM file too, for an https --server with a private CA')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Run the local Custory server (admin API and MCP endpoint)')
            [CompletionResult]::new('login', 'login', [CompletionResultType]::ParameterValue, 'Store the owner credential for --server')
            [CompletionResult]::new('logout', 'logout', [CompletionResultType]::ParameterValue, 'Forget the owner credential for --server')
            [CompletionResult]::new('workspaces', 'workspaces', [CompletionResultType]::ParameterValue, 'Manage workspaces')
            [CompletionResult]::new('keys', 'keys', [CompletionResultType]::ParameterValue, 'Manage MCP keys: create, list, show, revoke, rotate')
            [CompletionResult]::new('audit', 'audit', [CompletionResultType]::ParameterValue, 'Show the workspace''s key and MCP activity, newest first')
            [CompletionResult]::new('config', 'config', [CompletionResultType]::ParameterValue, 'Print or write the MCP config for a client (Cursor, Claude Code, VS Code, …)')
            [CompletionResult]::new('test', 'test', [CompletionResultType]::ParameterValue, 'Check a connection to the MCP endpoint, stage by stage')
            [CompletionResult]::new('export', 'export', [CompletionResultType]::ParameterValue, 'Write a workspace (or, with --all, every workspace) as a JSON document')
            [CompletionResult]::new('import', 'import', [CompletionResultType]::ParameterValue, 'Import a workspace that `export` wrote, or a journey from a CSV file (all or nothing)')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print the shell completion script')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'custory-mcp;serve' {
            [CompletionResult]::new('--listen', '--listen', [CompletionResultType]::ParameterName, 'Address to listen on (port 0 picks a free port)')
            [CompletionResult]::new('--database', '--database', [CompletionResultType]::ParameterName, 'Where the data lives: a SQLite file (a path or sqlite://PATH) or a PostgreSQL database (postgres://USER:PASSWORD@HOST/DB, shared by several replicas) [default: custory.db in the user''s data directory]')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'Where the data lives: a SQLite file (a path or sqlite://PATH) or a PostgreSQL database (postgres://USER:PASSWORD@HOST/DB, shared by several replicas) [default: custory.db in the user''s data directory]')
            [CompletionResult]::new('--allow-origin', '--allow-origin', [CompletionResultType]::ParameterName, 'Let browser pages from this Origin call the MCP endpoint (repeatable)')
            [CompletionResult]::new('--allow-host', '--allow-host', [CompletionResultType]::ParameterName, 'Accept requests addressed to this host name (repeatable; loopback names are always accepted on a loopback address)')
            [CompletionResult]::new('--trusted-proxy', '--trusted-proxy', [CompletionResultType]::ParameterName, 'A proxy or load balancer (an address or CIDR, repeatable) whose Forwarded or X-Forwarded-For header names the client: for last-used addresses, the failed-auth limit and the log. Anyone else''s forwarding headers are ignored')
            [CompletionResult]::new('--forwarded-header', '--forwarded-header', [CompletionResultType]::ParameterName, 'The header the trusted proxies set to name the client (only that one is read)')
            [CompletionResult]::new('--tls-cert', '--tls-cert', [CompletionResultType]::ParameterName, 'Serve HTTPS with this certificate chain (PEM); read again on SIGHUP')
            [CompletionResult]::new('--tls-key', '--tls-key', [CompletionResultType]::ParameterName, 'The certificate''s private key (PEM)')
            [CompletionResult]::new('--metrics-listen', '--metrics-listen', [CompletionResultType]::ParameterName, 'Serve Prometheus metrics at http://ADDR/metrics, apart from the API (requests, tool calls, auth failures, 429s, latencies, pool use, last-used flush lag)')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'How log lines are written to stderr: text, or one JSON object per line')
            [CompletionResult]::new('--public-url', '--public-url', [CompletionResultType]::ParameterName, 'The URL clients reach this server at, when it differs from what they send as Host (behind a TLS proxy: https://mcp.example.com); OAuth''s metadata names it')
            [CompletionResult]::new('--max-connections', '--max-connections', [CompletionResultType]::ParameterName, 'Connections open at once (kept below the open-files limit, which is raised at start)')
            [CompletionResult]::new('--max-connections-per-address', '--max-connections-per-address', [CompletionResultType]::ParameterName, 'Connections open at once from one address (an IPv6 /64 counts as one)')
            [CompletionResult]::new('--header-timeout', '--header-timeout', [CompletionResultType]::ParameterName, 'Seconds a client has to send a request''s head (also ends idle kept-alive connections)')
            [CompletionResult]::new('--body-timeout', '--body-timeout', [CompletionResultType]::ParameterName, 'Seconds a request''s body may take to arrive')
            [CompletionResult]::new('--call-deadline', '--call-deadline', [CompletionResultType]::ParameterName, 'Seconds one MCP request''s work may take before its answer is given up')
            [CompletionResult]::new('--statement-timeout', '--statement-timeout', [CompletionResultType]::ParameterName, 'Milliseconds one database statement may run before it is stopped')
            [CompletionResult]::new('--key-concurrency', '--key-concurrency', [CompletionResultType]::ParameterName, 'MCP requests one key may have running at once (more wait their turn)')
            [CompletionResult]::new('--key-requests-per-second', '--key-requests-per-second', [CompletionResultType]::ParameterName, 'MCP messages one key may send per second (bursts of twice as many pass)')
            [CompletionResult]::new('--key-writes-per-second', '--key-writes-per-second', [CompletionResultType]::ParameterName, 'Write tool calls one key may make per second (bursts of ten times as many pass)')
            [CompletionResult]::new('--max-items', '--max-items', [CompletionResultType]::ParameterName, 'Items one workspace may hold')
            [CompletionResult]::new('--max-comments', '--max-comments', [CompletionResultType]::ParameterName, 'Comments one workspace may hold')
            [CompletionResult]::new('--max-text-bytes', '--max-text-bytes', [CompletionResultType]::ParameterName, 'Bytes of text one workspace may hold (titles, descriptions, fields, comments)')
            [CompletionResult]::new('--audit-retention', '--audit-retention', [CompletionResultType]::ParameterName, 'How long the record of each call a key made (tool, ids, outcome, size) is kept')
            [CompletionResult]::new('--usage-retention', '--usage-retention', [CompletionResultType]::ParameterName, 'How long each key''s hourly totals of calls are kept (audit --usage)')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'The Custory server to manage')
            [CompletionResult]::new('--workspace', '--workspace', [CompletionResultType]::ParameterName, 'The workspace to act on (may be omitted when the server has one workspace)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colors (NO_COLOR is respected)')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust the CA certificates in this PEM file too, for an https --server with a private CA')
            [CompletionResult]::new('--allow-any-host', '--allow-any-host', [CompletionResultType]::ParameterName, 'Accept requests addressed to any host name (behind a proxy that checks it); without it, a non-loopback --listen needs --allow-host')
            [CompletionResult]::new('--reset-owner-credential', '--reset-owner-credential', [CompletionResultType]::ParameterName, 'Issue a new owner credential and revoke the old one (needs the database file)')
            [CompletionResult]::new('--oauth', '--oauth', [CompletionResultType]::ParameterName, 'Be the OAuth authorization server of the MCP endpoint: clients that answer a 401 with a browser sign-in (mcp-remote, Codex, Gemini CLI, MCP Inspector) get one, and the owner''s consent mints an ordinary MCP key. Clients with a key in a header are unaffected')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'custory-mcp;login' {
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'The Custory server to manage')
            [CompletionResult]::new('--workspace', '--workspace', [CompletionResultType]::ParameterName, 'The workspace to act on (may be omitted when the server has one workspace)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colors (NO_COLOR is respected)')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust the CA certificates in this PEM file too, for an https --server with a private CA')
            [CompletionResult]::new('--token-stdin', '--token-stdin', [CompletionResultType]::ParameterName, 'Read the credential from standard input instead of prompting for it')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'custory-mcp;logout' {
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'The Custory server to manage')
            [CompletionResult]::new('--workspace', '--workspace', [CompletionResultType]::ParameterName, 'The workspace to act on (may be omitted when the server has one workspace)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colors (NO_COLOR is respected)')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust the CA certificates in this PEM file too, for an https --server with a private CA')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'custory-mcp;workspaces' {
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'The Custory server to manage')
            [CompletionResult]::new('--workspace', '--workspace', [CompletionResultType]::ParameterName, 'The workspace to act on (may be omitted when the server has one workspace)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colors (NO_COLOR is respected)')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust the CA certificates in this PEM file too, for an https --server with a private CA')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the server''s workspaces')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create a workspace')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'custory-mcp;workspaces;list' {
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'The Custory server to manage')
            [CompletionResult]::new('--workspace', '--workspace', [CompletionResultType]::ParameterName, 'The workspace to act on (may be omitted when the server has one workspace)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colors (NO_COLOR is respected)')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust the CA certificates in this PEM file too, for an https --server with a private CA')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'custory-mcp;workspaces;create' {
            [CompletionResult]::new('--slug', '--slug', [CompletionResultType]::ParameterName, 'Its URL slug [default: made from the name]')
            [CompletionResult]::new('--template', '--template', [CompletionResultType]::ParameterName, 'What it starts with: nothing, or a journey with a persona and example items')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'The Custory server to manage')
            [CompletionResult]::new('--workspace', '--workspace', [CompletionResultType]::ParameterName, 'The workspace to act on (may be omitted when the server has one workspace)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colors (NO_COLOR is respected)')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust the CA certificates in this PEM file too, for an https --server with a private CA')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'custory-mcp;workspaces;help' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the server''s workspaces')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create a workspace')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'custory-mcp;workspaces;help;list' {
            break
        }
        'custory-mcp;workspaces;help;create' {
            break
        }
        'custory-mcp;workspaces;help;help' {
            break
        }
        'custory-mcp;keys' {
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'The Custory server to manage')
            [CompletionResult]::new('--workspace', '--workspace', [CompletionResultType]::ParameterName, 'The workspace to act on (may be omitted when the server has one workspace)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colors (NO_COLOR is respected)')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust the CA certificates in this PEM file too, for an https --server with a private CA')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create a key; prints its token once')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the workspace''s keys')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show one key in full, with its recent activity')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke a key: its very next request is refused')
            [CompletionResult]::new('rotate', 'rotate', [CompletionResultType]::ParameterValue, 'Replace a key with a new one of the same name and access; the old one is revoked')
            [CompletionResult]::new('review', 'review', [CompletionResultType]::ParameterValue, 'What needs a decision, per workspace: shared, stale, never-used and expiring keys, and read-write keys that only read; with the command that settles each')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'custory-mcp;keys;create' {
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'A name that says where the key is used, e.g. "Cursor on MacBook"')
            [CompletionResult]::new('--expires', '--expires', [CompletionResultType]::ParameterName, 'When the key expires')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'The Custory server to manage')
            [CompletionResult]::new('--workspace', '--workspace', [CompletionResultType]::ParameterName, 'The workspace to act on (may be omitted when the server has one workspace)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colors (NO_COLOR is respected)')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust the CA certificates in this PEM file too, for an https --server with a private CA')
            [CompletionResult]::new('--read-only', '--read-only', [CompletionResultType]::ParameterName, 'Only read tools: the key can read journey context but change nothing')
            [CompletionResult]::new('--save', '--save', [CompletionResultType]::ParameterName, 'Keep the token in the OS keyring (or a 0600 file) for `config --key` and `test --key`')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'custory-mcp;keys;list' {
            [CompletionResult]::new('--status', '--status', [CompletionResultType]::ParameterName, 'Show only keys with this status')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'Show at most this many keys, newest first')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'The Custory server to manage')
            [CompletionResult]::new('--workspace', '--workspace', [CompletionResultType]::ParameterName, 'The workspace to act on (may be omitted when the server has one workspace)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colors (NO_COLOR is respected)')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust the CA certificates in this PEM file too, for an https --server with a private CA')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Show every key, however many pages that takes')
            [CompletionResult]::new('--shared', '--shared', [CompletionResultType]::ParameterName, 'Only keys used by more than one client, or from more than one address, in the last 7 days (one key per client or machine)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'custory-mcp;keys;show' {
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'The Custory server to manage')
            [CompletionResult]::new('--workspace', '--workspace', [CompletionResultType]::ParameterName, 'The workspace to act on (may be omitted when the server has one workspace)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colors (NO_COLOR is respected)')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust the CA certificates in this PEM file too, for an https --server with a private CA')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'custory-mcp;keys;revoke' {
            [CompletionResult]::new('--unused-for', '--unused-for', [CompletionResultType]::ParameterName, 'Revoke, in bulk, every active key not used for this long (24h, 30d, 90d…; a key never used counts from its creation); the list is shown and confirmed first')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'The Custory server to manage')
            [CompletionResult]::new('--workspace', '--workspace', [CompletionResultType]::ParameterName, 'The workspace to act on (may be omitted when the server has one workspace)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colors (NO_COLOR is respected)')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust the CA certificates in this PEM file too, for an https --server with a private CA')
            [CompletionResult]::new('--token-stdin', '--token-stdin', [CompletionResultType]::ParameterName, 'Revoke the key a found token belongs to, in whichever workspace it is: the token is read from stdin (a leak: you have the token, not the key''s name)')
            [CompletionResult]::new('--never-used', '--never-used', [CompletionResultType]::ParameterName, 'Only keys never used (created more than --unused-for ago, 7 days by default)')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'With --unused-for or --never-used: show what would be revoked, revoke nothing')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'custory-mcp;keys;rotate' {
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'The Custory server to manage')
            [CompletionResult]::new('--workspace', '--workspace', [CompletionResultType]::ParameterName, 'The workspace to act on (may be omitted when the server has one workspace)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colors (NO_COLOR is respected)')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust the CA certificates in this PEM file too, for an https --server with a private CA')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'custory-mcp;keys;review' {
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'The Custory server to manage')
            [CompletionResult]::new('--workspace', '--workspace', [CompletionResultType]::ParameterName, 'The workspace to act on (may be omitted when the server has one workspace)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colors (NO_COLOR is respected)')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust the CA certificates in this PEM file too, for an https --server with a private CA')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'custory-mcp;keys;help' {
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create a key; prints its token once')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the workspace''s keys')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show one key in full, with its recent activity')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke a key: its very next request is refused')
            [CompletionResult]::new('rotate', 'rotate', [CompletionResultType]::ParameterValue, 'Replace a key with a new one of the same name and access; the old one is revoked')
            [CompletionResult]::new('review', 'review', [CompletionResultType]::ParameterValue, 'What needs a decision, per workspace: shared, stale, never-used and expiring keys, and read-write keys that only read; with the command that settles each')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'custory-mcp;keys;help;create' {
            break
        }
        'custory-mcp;keys;help;list' {
            break
        }
        'custory-mcp;keys;help;show' {
            break
        }
        'custory-mcp;keys;help;revoke' {
            break
        }
        'custory-mcp;keys;help;rotate' {
            break
        }
        'custory-mcp;keys;help;review' {
            break
        }
        'custory-mcp;keys;help;help' {
            break
        }
        'custory-mcp;audit' {
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'Only the events of this key (id, name or prefix), with every call it made, reads included')
            [CompletionResult]::new('--since', '--since', [CompletionResultType]::ParameterName, 'With --usage: how far back (24h, 7d, 30d…; hourly totals are kept for `serve --usage-retention`)')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'How many rows to show, newest (or busiest) first (1-1000)')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'The Custory server to manage')
            [CompletionResult]::new('--workspace', '--workspace', [CompletionResultType]::ParameterName, 'The workspace to act on (may be omitted when the server has one workspace)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colors (NO_COLOR is respected)')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust the CA certificates in this PEM file too, for an https --server with a private CA')
            [CompletionResult]::new('--calls', '--calls', [CompletionResultType]::ParameterName, 'Include the calls keys made (tools, resources, prompts), not only lifecycle and writes')
            [CompletionResult]::new('--usage', '--usage', [CompletionResultType]::ParameterName, 'Totals instead of events: each key''s calls, errors and bytes sent (with --key, that key''s hour by hour)')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Show every row, however many pages that takes')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'custory-mcp;config' {
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'Embed the token saved for KEY (id, name or prefix) with `keys create --save`; implies --inline-token')
            [CompletionResult]::new('--token-env', '--token-env', [CompletionResultType]::ParameterName, 'Reference the token through this environment variable [default: CUSTORY_MCP_TOKEN]')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'The MCP endpoint [default: <server>/api/mcp]')
            [CompletionResult]::new('--scope', '--scope', [CompletionResultType]::ParameterName, 'Whose config file: the user''s, or the project''s in the current directory')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'The Custory server to manage')
            [CompletionResult]::new('--workspace', '--workspace', [CompletionResultType]::ParameterName, 'The workspace to act on (may be omitted when the server has one workspace)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colors (NO_COLOR is respected)')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust the CA certificates in this PEM file too, for an https --server with a private CA')
            [CompletionResult]::new('--inline-token', '--inline-token', [CompletionResultType]::ParameterName, 'Embed the token itself: the one saved for --key, else one line read from stdin')
            [CompletionResult]::new('--write', '--write', [CompletionResultType]::ParameterName, 'Merge the entry into the client''s config file (diff shown, backup kept, 0600)')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Write without asking for confirmation')
            [CompletionResult]::new('--oauth', '--oauth', [CompletionResultType]::ParameterName, 'No token at all: the client signs in in a browser on first use (the server must run with `serve --oauth`), and the owner''s consent creates its key')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'custory-mcp;test' {
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'The MCP endpoint to check [default: <server>/api/mcp]')
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'Use the token of a key saved with `keys create --save` (id, name or prefix)')
            [CompletionResult]::new('--token-env', '--token-env', [CompletionResultType]::ParameterName, 'Read the token from this environment variable')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Seconds to wait for each request')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'The Custory server to manage')
            [CompletionResult]::new('--workspace', '--workspace', [CompletionResultType]::ParameterName, 'The workspace to act on (may be omitted when the server has one workspace)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colors (NO_COLOR is respected)')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust the CA certificates in this PEM file too, for an https --server with a private CA')
            [CompletionResult]::new('--curl', '--curl', [CompletionResultType]::ParameterName, 'Print the equivalent curl command (token read from the environment) instead of checking')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'custory-mcp;export' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Write to this file (with --all: this directory, one SLUG.json per workspace) instead of stdout')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Write to this file (with --all: this directory, one SLUG.json per workspace) instead of stdout')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'The Custory server to manage')
            [CompletionResult]::new('--workspace', '--workspace', [CompletionResultType]::ParameterName, 'The workspace to act on (may be omitted when the server has one workspace)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colors (NO_COLOR is respected)')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust the CA certificates in this PEM file too, for an https --server with a private CA')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Export every workspace of the server (a backup); needs --output DIR')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'custory-mcp;import' {
            [CompletionResult]::new('--new', '--new', [CompletionResultType]::ParameterName, 'Import into a new workspace with this name [default: JSON: the document''s name and slug, or the existing, empty workspace that --workspace names; CSV: the existing workspace that --workspace names]')
            [CompletionResult]::new('--slug', '--slug', [CompletionResultType]::ParameterName, 'The new workspace''s slug [default: made from its name]')
            [CompletionResult]::new('--journey', '--journey', [CompletionResultType]::ParameterName, 'CSV: the name of the journey the rows become; its slug is made from it [default: the file''s name without .csv]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'The file''s format [default: csv for a file named *.csv, else json]')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'The Custory server to manage')
            [CompletionResult]::new('--workspace', '--workspace', [CompletionResultType]::ParameterName, 'The workspace to act on (may be omitted when the server has one workspace)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colors (NO_COLOR is respected)')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust the CA certificates in this PEM file too, for an https --server with a private CA')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Check everything and write nothing')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'custory-mcp;completions' {
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'The Custory server to manage')
            [CompletionResult]::new('--workspace', '--workspace', [CompletionResultType]::ParameterName, 'The workspace to act on (may be omitted when the server has one workspace)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colors (NO_COLOR is respected)')
            [CompletionResult]::new('--ca-cert', '--ca-cert', [CompletionResultType]::ParameterName, 'Trust the CA certificates in this PEM file too, for an https --server with a private CA')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Log more (repeat for more detail)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Log more (repeat for more detail)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'custory-mcp;help' {
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Run the local Custory server (admin API and MCP endpoint)')
            [CompletionResult]::new('login', 'login', [CompletionResultType]::ParameterValue, 'Store the owner credential for --server')
            [CompletionResult]::new('logout', 'logout', [CompletionResultType]::ParameterValue, 'Forget the owner credential for --server')
            [CompletionResult]::new('workspaces', 'workspaces', [CompletionResultType]::ParameterValue, 'Manage workspaces')
            [CompletionResult]::new('keys', 'keys', [CompletionResultType]::ParameterValue, 'Manage MCP keys: create, list, show, revoke, rotate')
            [CompletionResult]::new('audit', 'audit', [CompletionResultType]::ParameterValue, 'Show the workspace''s key and MCP activity, newest first')
            [CompletionResult]::new('config', 'config', [CompletionResultType]::ParameterValue, 'Print or write the MCP config for a client (Cursor, Claude Code, VS Code, …)')
            [CompletionResult]::new('test', 'test', [CompletionResultType]::ParameterValue, 'Check a connection to the MCP endpoint, stage by stage')
            [CompletionResult]::new('export', 'export', [CompletionResultType]::ParameterValue, 'Write a workspace (or, with --all, every workspace) as a JSON document')
            [CompletionResult]::new('import', 'import', [CompletionResultType]::ParameterValue, 'Import a workspace that `export` wrote, or a journey from a CSV file (all or nothing)')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print the shell completion script')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'custory-mcp;help;serve' {
            break
        }
        'custory-mcp;help;login' {
            break
        }
        'custory-mcp;help;logout' {
            break
        }
        'custory-mcp;help;workspaces' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the server''s workspaces')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create a workspace')
            break
        }
        'custory-mcp;help;workspaces;list' {
            break
        }
        'custory-mcp;help;workspaces;create' {
            break
        }
        'custory-mcp;help;keys' {
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create a key; prints its token once')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the workspace''s keys')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show one key in full, with its recent activity')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke a key: its very next request is refused')
            [CompletionResult]::new('rotate', 'rotate', [CompletionResultType]::ParameterValue, 'Replace a key with a new one of the same name and access; the old one is revoked')
            [CompletionResult]::new('review', 'review', [CompletionResultType]::ParameterValue, 'What needs a decision, per workspace: shared, stale, never-used and expiring keys, and read-write keys that only read; with the command that settles each')
            break
        }
        'custory-mcp;help;keys;create' {
            break
        }
        'custory-mcp;help;keys;list' {
            break
        }
        'custory-mcp;help;keys;show' {
            break
        }
        'custory-mcp;help;keys;revoke' {
            break
        }
        'custory-mcp;help;keys;rotate' {
            break
        }
        'custory-mcp;help;keys;review' {
            break
        }
        'custory-mcp;help;audit' {
            break
        }
        'custory-mcp;help;config' {
            break
        }
        'custory-mcp;help;test' {
            break
        }
        'custory-mcp;help;export' {
            break
        }
        'custory-mcp;help;import' {
            break
        }
        'custory-mcp;help;completions' {
            break
        }
        'custory-mcp;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
