# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_custory_mcp_global_optspecs
    string join \n server= workspace= json color= q/quiet v/verbose ca-cert= h/help V/version
end

function __fish_custory_mcp_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_custory_mcp_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_custory_mcp_using_subcommand
    set -l cmd (__fish_custory_mcp_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c custory-mcp -n "__fish_custory_mcp_needs_command" -l server -d 'The Custory server to manage' -r
complete -c custory-mcp -n "__fish_custory_mcp_needs_command" -l workspace -d 'The workspace to act on (may be omitted when the server has one workspace)' -r
complete -c custory-mcp -n "__fish_custory_mcp_needs_command" -l color -d 'When to use colors (NO_COLOR is respected)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c custory-mcp -n "__fish_custory_mcp_needs_command" -l ca-cert -d 'Trust the CA certificates in this PEM file too, for an https --server with a private CA' -r -F
complete -c custory-mcp -n "__fish_custory_mcp_needs_command" -l json -d 'Print machine-readable JSON on stdout'
complete -c custory-mcp -n "__fish_custory_mcp_needs_command" -s q -l quiet -d 'Print only data and errors'
complete -c custory-mcp -n "__fish_custory_mcp_needs_command" -s v -l verbose -d 'Log more (repeat for more detail)'
complete -c custory-mcp -n "__fish_custory_mcp_needs_command" -s h -l help -d 'Print help'
complete -c custory-mcp -n "__fish_custory_mcp_needs_command" -s V -l version -d 'Print version'
complete -c custory-mcp -n "__fish_custory_mcp_needs_command" -f -a "serve" -d 'Run the local Custory server (admin API and MCP endpoint)'
complete -c custory-mcp -n "__fish_custory_mcp_needs_command" -f -a "login" -d 'Store the owner credential for --server'
complete -c custory-mcp -n "__fish_custory_mcp_needs_command" -f -a "logout" -d 'Forget the owner credential for --server'
complete -c custory-mcp -n "__fish_custory_mcp_needs_command" -f -a "workspaces" -d 'Manage workspaces'
complete -c custory-mcp -n "__fish_custory_mcp_needs_command" -f -a "keys" -d 'Manage MCP keys: create, list, show, revoke, rotate'
complete -c custory-mcp -n "__fish_custory_mcp_needs_command" -f -a "audit" -d 'Show the workspace\'s key and MCP activity, newest first'
complete -c custory-mcp -n "__fish_custory_mcp_needs_command" -f -a "config" -d 'Print or write the MCP config for a client (Cursor, Claude Code, VS Code, …)'
complete -c custory-mcp -n "__fish_custory_mcp_needs_command" -f -a "test" -d 'Check a connection to the MCP endpoint, stage by stage'
complete -c custory-mcp -n "__fish_custory_mcp_needs_command" -f -a "export" -d 'Write a workspace (or, with --all, every workspace) as a JSON document'
complete -c custory-mcp -n "__fish_custory_mcp_needs_command" -f -a "import" -d 'Import a workspace that `export` wrote, or a journey from a CSV file (all or nothing)'
complete -c custory-mcp -n "__fish_custory_mcp_needs_command" -f -a "completions" -d 'Print the shell completion script'
complete -c custory-mcp -n "__fish_custory_mcp_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand serve" -l listen -d 'Address to listen on (port 0 picks a free port)' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand serve" -l database -l db -d 'Where the data lives: a SQLite file (a path or sqlite://PATH) or a PostgreSQL database (postgres://USER:PASSWORD@HOST/DB, shared by several replicas) [default: custory.db in the user\'s data directory]' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand serve" -l allow-origin -d 'Let browser pages from this Origin call the MCP endpoint (repeatable)' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand serve" -l allow-host -d 'Accept requests addressed to this host name (repeatable; loopback names are always accepted on a loopback address)' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand serve" -l trusted-proxy -d 'A proxy or load balancer (an address or CIDR, repeatable) whose Forwarded or X-Forwarded-For header names the client: for last-used addresses, the failed-auth limit and the log. Anyone else\'s forwarding headers are ignored' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand serve" -l forwarded-header -d 'The header the trusted proxies set to name the client (only that one is read)' -r -f -a "x-forwarded-for\t'`X-Forwarded-For: client, proxy1` (nginx, HAProxy, most load balancers)'
forwarded\t'`Forwarded: for=client` (RFC 7239)'"
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand serve" -l tls-cert -d 'Serve HTTPS with this certificate chain (PEM); read again on SIGHUP' -r -F
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand serve" -l tls-key -d 'The certificate\'s private key (PEM)' -r -F
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand serve" -l metrics-listen -d 'Serve Prometheus metrics at http://ADDR/metrics, apart from the API (requests, tool calls, auth failures, 429s, latencies, pool use, last-used flush lag)' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand serve" -l log-format -d 'How log lines are written to stderr: text, or one JSON object per line' -r -f -a "text\t'One line of text per event'
json\t'One JSON object per line, for log shippers'"
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand serve" -l public-url -d 'The URL clients reach this server at, when it differs from what they send as Host (behind a TLS proxy: https://mcp.example.com); OAuth\'s metadata names it' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand serve" -l max-connections -d 'Connections open at once (kept below the open-files limit, which is raised at start)' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand serve" -l max-connections-per-address -d 'Connections open at once from one address (an IPv6 /64 counts as one)' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand serve" -l header-timeout -d 'Seconds a client has to send a request\'s head (also ends idle kept-alive connections)' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand serve" -l body-timeout -d 'Seconds a request\'s body may take to arrive' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand serve" -l call-deadline -d 'Seconds one MCP request\'s work may take before its answer is given up' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand serve" -l statement-timeout -d 'Milliseconds one database statement may run before it is stopped' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand serve" -l key-concurrency -d 'MCP requests one key may have running at once (more wait their turn)' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand serve" -l key-requests-per-second -d 'MCP messages one key may send per second (bursts of twice as many pass)' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand serve" -l key-writes-per-second -d 'Write tool calls one key may make per second (bursts of ten times as many pass)' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand serve" -l max-items -d 'Items one workspace may hold' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand serve" -l max-comments -d 'Comments one workspace may hold' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand serve" -l max-text-bytes -d 'Bytes of text one workspace may hold (titles, descriptions, fields, comments)' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand serve" -l audit-retention -d 'How long the record of each call a key made (tool, ids, outcome, size) is kept' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand serve" -l usage-retention -d 'How long each key\'s hourly totals of calls are kept (audit --usage)' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand serve" -l server -d 'The Custory server to manage' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand serve" -l workspace -d 'The workspace to act on (may be omitted when the server has one workspace)' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand serve" -l color -d 'When to use colors (NO_COLOR is respected)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand serve" -l ca-cert -d 'Trust the CA certificates in this PEM file too, for an https --server with a private CA' -r -F
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand serve" -l allow-any-host -d 'Accept requests addressed to any host name (behind a proxy that checks it); without it, a non-loopback --listen needs --allow-host'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand serve" -l reset-owner-credential -d 'Issue a new owner credential and revoke the old one (needs the database file)'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand serve" -l oauth -d 'Be the OAuth authorization server of the MCP endpoint: clients that answer a 401 with a browser sign-in (mcp-remote, Codex, Gemini CLI, MCP Inspector) get one, and the owner\'s consent mints an ordinary MCP key. Clients with a key in a header are unaffected'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand serve" -l json -d 'Print machine-readable JSON on stdout'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand serve" -s q -l quiet -d 'Print only data and errors'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand serve" -s v -l verbose -d 'Log more (repeat for more detail)'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand serve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand login" -l server -d 'The Custory server to manage' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand login" -l workspace -d 'The workspace to act on (may be omitted when the server has one workspace)' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand login" -l color -d 'When to use colors (NO_COLOR is respected)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand login" -l ca-cert -d 'Trust the CA certificates in this PEM file too, for an https --server with a private CA' -r -F
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand login" -l token-stdin -d 'Read the credential from standard input instead of prompting for it'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand login" -l json -d 'Print machine-readable JSON on stdout'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand login" -s q -l quiet -d 'Print only data and errors'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand login" -s v -l verbose -d 'Log more (repeat for more detail)'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand login" -s h -l help -d 'Print help'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand logout" -l server -d 'The Custory server to manage' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand logout" -l workspace -d 'The workspace to act on (may be omitted when the server has one workspace)' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand logout" -l color -d 'When to use colors (NO_COLOR is respected)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand logout" -l ca-cert -d 'Trust the CA certificates in this PEM file too, for an https --server with a private CA' -r -F
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand logout" -l json -d 'Print machine-readable JSON on stdout'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand logout" -s q -l quiet -d 'Print only data and errors'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand logout" -s v -l verbose -d 'Log more (repeat for more detail)'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand logout" -s h -l help -d 'Print help'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand workspaces; and not __fish_seen_subcommand_from list create help" -l server -d 'The Custory server to manage' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand workspaces; and not __fish_seen_subcommand_from list create help" -l workspace -d 'The workspace to act on (may be omitted when the server has one workspace)' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand workspaces; and not __fish_seen_subcommand_from list create help" -l color -d 'When to use colors (NO_COLOR is respected)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand workspaces; and not __fish_seen_subcommand_from list create help" -l ca-cert -d 'Trust the CA certificates in this PEM file too, for an https --server with a private CA' -r -F
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand workspaces; and not __fish_seen_subcommand_from list create help" -l json -d 'Print machine-readable JSON on stdout'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand workspaces; and not __fish_seen_subcommand_from list create help" -s q -l quiet -d 'Print only data and errors'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand workspaces; and not __fish_seen_subcommand_from list create help" -s v -l verbose -d 'Log more (repeat for more detail)'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand workspaces; and not __fish_seen_subcommand_from list create help" -s h -l help -d 'Print help'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand workspaces; and not __fish_seen_subcommand_from list create help" -f -a "list" -d 'List the server\'s workspaces'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand workspaces; and not __fish_seen_subcommand_from list create help" -f -a "create" -d 'Create a workspace'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand workspaces; and not __fish_seen_subcommand_from list create help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand workspaces; and __fish_seen_subcommand_from list" -l server -d 'The Custory server to manage' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand workspaces; and __fish_seen_subcommand_from list" -l workspace -d 'The workspace to act on (may be omitted when the server has one workspace)' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand workspaces; and __fish_seen_subcommand_from list" -l color -d 'When to use colors (NO_COLOR is respected)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand workspaces; and __fish_seen_subcommand_from list" -l ca-cert -d 'Trust the CA certificates in this PEM file too, for an https --server with a private CA' -r -F
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand workspaces; and __fish_seen_subcommand_from list" -l json -d 'Print machine-readable JSON on stdout'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand workspaces; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print only data and errors'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand workspaces; and __fish_seen_subcommand_from list" -s v -l verbose -d 'Log more (repeat for more detail)'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand workspaces; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand workspaces; and __fish_seen_subcommand_from create" -l slug -d 'Its URL slug [default: made from the name]' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand workspaces; and __fish_seen_subcommand_from create" -l template -d 'What it starts with: nothing, or a journey with a persona and example items' -r -f -a "blank\t'An empty workspace'
onboarding\t'A customer-onboarding journey: sign up, set up, first value, habit'
trial-to-paid\t'A trial-to-paid journey: discover, start the trial, evaluate, decide'"
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand workspaces; and __fish_seen_subcommand_from create" -l server -d 'The Custory server to manage' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand workspaces; and __fish_seen_subcommand_from create" -l workspace -d 'The workspace to act on (may be omitted when the server has one workspace)' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand workspaces; and __fish_seen_subcommand_from create" -l color -d 'When to use colors (NO_COLOR is respected)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand workspaces; and __fish_seen_subcommand_from create" -l ca-cert -d 'Trust the CA certificates in this PEM file too, for an https --server with a private CA' -r -F
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand workspaces; and __fish_seen_subcommand_from create" -l json -d 'Print machine-readable JSON on stdout'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand workspaces; and __fish_seen_subcommand_from create" -s q -l quiet -d 'Print only data and errors'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand workspaces; and __fish_seen_subcommand_from create" -s v -l verbose -d 'Log more (repeat for more detail)'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand workspaces; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand workspaces; and __fish_seen_subcommand_from help" -f -a "list" -d 'List the server\'s workspaces'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand workspaces; and __fish_seen_subcommand_from help" -f -a "create" -d 'Create a workspace'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand workspaces; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and not __fish_seen_subcommand_from create list show revoke rotate review help" -l server -d 'The Custory server to manage' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and not __fish_seen_subcommand_from create list show revoke rotate review help" -l workspace -d 'The workspace to act on (may be omitted when the server has one workspace)' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and not __fish_seen_subcommand_from create list show revoke rotate review help" -l color -d 'When to use colors (NO_COLOR is respected)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and not __fish_seen_subcommand_from create list show revoke rotate review help" -l ca-cert -d 'Trust the CA certificates in this PEM file too, for an https --server with a private CA' -r -F
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and not __fish_seen_subcommand_from create list show revoke rotate review help" -l json -d 'Print machine-readable JSON on stdout'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and not __fish_seen_subcommand_from create list show revoke rotate review help" -s q -l quiet -d 'Print only data and errors'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and not __fish_seen_subcommand_from create list show revoke rotate review help" -s v -l verbose -d 'Log more (repeat for more detail)'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and not __fish_seen_subcommand_from create list show revoke rotate review help" -s h -l help -d 'Print help'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and not __fish_seen_subcommand_from create list show revoke rotate review help" -f -a "create" -d 'Create a key; prints its token once'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and not __fish_seen_subcommand_from create list show revoke rotate review help" -f -a "list" -d 'List the workspace\'s keys'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and not __fish_seen_subcommand_from create list show revoke rotate review help" -f -a "show" -d 'Show one key in full, with its recent activity'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and not __fish_seen_subcommand_from create list show revoke rotate review help" -f -a "revoke" -d 'Revoke a key: its very next request is refused'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and not __fish_seen_subcommand_from create list show revoke rotate review help" -f -a "rotate" -d 'Replace a key with a new one of the same name and access; the old one is revoked'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and not __fish_seen_subcommand_from create list show revoke rotate review help" -f -a "review" -d 'What needs a decision, per workspace: shared, stale, never-used and expiring keys, and read-write keys that only read; with the command that settles each'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and not __fish_seen_subcommand_from create list show revoke rotate review help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from create" -l name -d 'A name that says where the key is used, e.g. "Cursor on MacBook"' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from create" -l expires -d 'When the key expires' -r -f -a "30d\t''
90d\t''
never\t''"
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from create" -l server -d 'The Custory server to manage' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from create" -l workspace -d 'The workspace to act on (may be omitted when the server has one workspace)' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from create" -l color -d 'When to use colors (NO_COLOR is respected)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from create" -l ca-cert -d 'Trust the CA certificates in this PEM file too, for an https --server with a private CA' -r -F
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from create" -l read-only -d 'Only read tools: the key can read journey context but change nothing'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from create" -l save -d 'Keep the token in the OS keyring (or a 0600 file) for `config --key` and `test --key`'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from create" -l json -d 'Print machine-readable JSON on stdout'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from create" -s q -l quiet -d 'Print only data and errors'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from create" -s v -l verbose -d 'Log more (repeat for more detail)'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from list" -l status -d 'Show only keys with this status' -r -f -a "active\t''
expired\t''
revoked\t''"
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from list" -l limit -d 'Show at most this many keys, newest first' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from list" -l server -d 'The Custory server to manage' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from list" -l workspace -d 'The workspace to act on (may be omitted when the server has one workspace)' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from list" -l color -d 'When to use colors (NO_COLOR is respected)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from list" -l ca-cert -d 'Trust the CA certificates in this PEM file too, for an https --server with a private CA' -r -F
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from list" -l all -d 'Show every key, however many pages that takes'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from list" -l shared -d 'Only keys used by more than one client, or from more than one address, in the last 7 days (one key per client or machine)'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from list" -l json -d 'Print machine-readable JSON on stdout'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print only data and errors'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from list" -s v -l verbose -d 'Log more (repeat for more detail)'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from show" -l server -d 'The Custory server to manage' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from show" -l workspace -d 'The workspace to act on (may be omitted when the server has one workspace)' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from show" -l color -d 'When to use colors (NO_COLOR is respected)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from show" -l ca-cert -d 'Trust the CA certificates in this PEM file too, for an https --server with a private CA' -r -F
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from show" -l json -d 'Print machine-readable JSON on stdout'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from show" -s q -l quiet -d 'Print only data and errors'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from show" -s v -l verbose -d 'Log more (repeat for more detail)'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from revoke" -l unused-for -d 'Revoke, in bulk, every active key not used for this long (24h, 30d, 90d…; a key never used counts from its creation); the list is shown and confirmed first' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from revoke" -l server -d 'The Custory server to manage' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from revoke" -l workspace -d 'The workspace to act on (may be omitted when the server has one workspace)' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from revoke" -l color -d 'When to use colors (NO_COLOR is respected)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from revoke" -l ca-cert -d 'Trust the CA certificates in this PEM file too, for an https --server with a private CA' -r -F
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from revoke" -l token-stdin -d 'Revoke the key a found token belongs to, in whichever workspace it is: the token is read from stdin (a leak: you have the token, not the key\'s name)'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from revoke" -l never-used -d 'Only keys never used (created more than --unused-for ago, 7 days by default)'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from revoke" -l dry-run -d 'With --unused-for or --never-used: show what would be revoked, revoke nothing'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from revoke" -s y -l yes -d 'Do not ask for confirmation'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from revoke" -l json -d 'Print machine-readable JSON on stdout'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from revoke" -s q -l quiet -d 'Print only data and errors'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from revoke" -s v -l verbose -d 'Log more (repeat for more detail)'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from revoke" -s h -l help -d 'Print help'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from rotate" -l server -d 'The Custory server to manage' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from rotate" -l workspace -d 'The workspace to act on (may be omitted when the server has one workspace)' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from rotate" -l color -d 'When to use colors (NO_COLOR is respected)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from rotate" -l ca-cert -d 'Trust the CA certificates in this PEM file too, for an https --server with a private CA' -r -F
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from rotate" -s y -l yes -d 'Do not ask for confirmation'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from rotate" -l json -d 'Print machine-readable JSON on stdout'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from rotate" -s q -l quiet -d 'Print only data and errors'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from rotate" -s v -l verbose -d 'Log more (repeat for more detail)'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from rotate" -s h -l help -d 'Print help'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from review" -l server -d 'The Custory server to manage' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from review" -l workspace -d 'The workspace to act on (may be omitted when the server has one workspace)' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from review" -l color -d 'When to use colors (NO_COLOR is respected)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from review" -l ca-cert -d 'Trust the CA certificates in this PEM file too, for an https --server with a private CA' -r -F
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from review" -l json -d 'Print machine-readable JSON on stdout'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from review" -s q -l quiet -d 'Print only data and errors'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from review" -s v -l verbose -d 'Log more (repeat for more detail)'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from review" -s h -l help -d 'Print help'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from help" -f -a "create" -d 'Create a key; prints its token once'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from help" -f -a "list" -d 'List the workspace\'s keys'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show one key in full, with its recent activity'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from help" -f -a "revoke" -d 'Revoke a key: its very next request is refused'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from help" -f -a "rotate" -d 'Replace a key with a new one of the same name and access; the old one is revoked'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from help" -f -a "review" -d 'What needs a decision, per workspace: shared, stale, never-used and expiring keys, and read-write keys that only read; with the command that settles each'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand keys; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand audit" -l key -d 'Only the events of this key (id, name or prefix), with every call it made, reads included' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand audit" -l since -d 'With --usage: how far back (24h, 7d, 30d…; hourly totals are kept for `serve --usage-retention`)' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand audit" -l limit -d 'How many rows to show, newest (or busiest) first (1-1000)' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand audit" -l server -d 'The Custory server to manage' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand audit" -l workspace -d 'The workspace to act on (may be omitted when the server has one workspace)' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand audit" -l color -d 'When to use colors (NO_COLOR is respected)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand audit" -l ca-cert -d 'Trust the CA certificates in this PEM file too, for an https --server with a private CA' -r -F
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand audit" -l calls -d 'Include the calls keys made (tools, resources, prompts), not only lifecycle and writes'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand audit" -l usage -d 'Totals instead of events: each key\'s calls, errors and bytes sent (with --key, that key\'s hour by hour)'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand audit" -l all -d 'Show every row, however many pages that takes'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand audit" -l json -d 'Print machine-readable JSON on stdout'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand audit" -s q -l quiet -d 'Print only data and errors'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand audit" -s v -l verbose -d 'Log more (repeat for more detail)'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand audit" -s h -l help -d 'Print help'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand config" -l key -d 'Embed the token saved for KEY (id, name or prefix) with `keys create --save`; implies --inline-token' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand config" -l token-env -d 'Reference the token through this environment variable [default: CUSTORY_MCP_TOKEN]' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand config" -l url -d 'The MCP endpoint [default: <server>/api/mcp]' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand config" -l scope -d 'Whose config file: the user\'s, or the project\'s in the current directory' -r -f -a "user\t'The user\'s own config file (every project)'
project\t'The project\'s config file in the current directory (shared with the repository)'"
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand config" -l server -d 'The Custory server to manage' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand config" -l workspace -d 'The workspace to act on (may be omitted when the server has one workspace)' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand config" -l color -d 'When to use colors (NO_COLOR is respected)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand config" -l ca-cert -d 'Trust the CA certificates in this PEM file too, for an https --server with a private CA' -r -F
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand config" -l inline-token -d 'Embed the token itself: the one saved for --key, else one line read from stdin'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand config" -l write -d 'Merge the entry into the client\'s config file (diff shown, backup kept, 0600)'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand config" -l yes -d 'Write without asking for confirmation'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand config" -l oauth -d 'No token at all: the client signs in in a browser on first use (the server must run with `serve --oauth`), and the owner\'s consent creates its key'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand config" -l json -d 'Print machine-readable JSON on stdout'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand config" -s q -l quiet -d 'Print only data and errors'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand config" -s v -l verbose -d 'Log more (repeat for more detail)'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand config" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand test" -l url -d 'The MCP endpoint to check [default: <server>/api/mcp]' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand test" -l key -d 'Use the token of a key saved with `keys create --save` (id, name or prefix)' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand test" -l token-env -d 'Read the token from this environment variable' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand test" -l timeout -d 'Seconds to wait for each request' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand test" -l server -d 'The Custory server to manage' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand test" -l workspace -d 'The workspace to act on (may be omitted when the server has one workspace)' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand test" -l color -d 'When to use colors (NO_COLOR is respected)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand test" -l ca-cert -d 'Trust the CA certificates in this PEM file too, for an https --server with a private CA' -r -F
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand test" -l curl -d 'Print the equivalent curl command (token read from the environment) instead of checking'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand test" -l json -d 'Print machine-readable JSON on stdout'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand test" -s q -l quiet -d 'Print only data and errors'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand test" -s v -l verbose -d 'Log more (repeat for more detail)'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand test" -s h -l help -d 'Print help'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand export" -s o -l output -d 'Write to this file (with --all: this directory, one SLUG.json per workspace) instead of stdout' -r -F
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand export" -l server -d 'The Custory server to manage' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand export" -l workspace -d 'The workspace to act on (may be omitted when the server has one workspace)' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand export" -l color -d 'When to use colors (NO_COLOR is respected)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand export" -l ca-cert -d 'Trust the CA certificates in this PEM file too, for an https --server with a private CA' -r -F
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand export" -l all -d 'Export every workspace of the server (a backup); needs --output DIR'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand export" -l json -d 'Print machine-readable JSON on stdout'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand export" -s q -l quiet -d 'Print only data and errors'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand export" -s v -l verbose -d 'Log more (repeat for more detail)'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand export" -s h -l help -d 'Print help'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand import" -l new -d 'Import into a new workspace with this name [default: JSON: the document\'s name and slug, or the existing, empty workspace that --workspace names; CSV: the existing workspace that --workspace names]' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand import" -l slug -d 'The new workspace\'s slug [default: made from its name]' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand import" -l journey -d 'CSV: the name of the journey the rows become; its slug is made from it [default: the file\'s name without .csv]' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand import" -l format -d 'The file\'s format [default: csv for a file named *.csv, else json]' -r -f -a "json\t'A workspace document (`custory-workspace/1`), as `export` writes it'
csv\t'A spreadsheet\'s rows, one item each: one new journey'"
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand import" -l server -d 'The Custory server to manage' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand import" -l workspace -d 'The workspace to act on (may be omitted when the server has one workspace)' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand import" -l color -d 'When to use colors (NO_COLOR is respected)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand import" -l ca-cert -d 'Trust the CA certificates in this PEM file too, for an https --server with a private CA' -r -F
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand import" -l dry-run -d 'Check everything and write nothing'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand import" -l json -d 'Print machine-readable JSON on stdout'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand import" -s q -l quiet -d 'Print only data and errors'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand import" -s v -l verbose -d 'Log more (repeat for more detail)'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand import" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand completions" -l server -d 'The Custory server to manage' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand completions" -l workspace -d 'The workspace to act on (may be omitted when the server has one workspace)' -r
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand completions" -l color -d 'When to use colors (NO_COLOR is respected)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand completions" -l ca-cert -d 'Trust the CA certificates in this PEM file too, for an https --server with a private CA' -r -F
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand completions" -l json -d 'Print machine-readable JSON on stdout'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand completions" -s q -l quiet -d 'Print only data and errors'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand completions" -s v -l verbose -d 'Log more (repeat for more detail)'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand completions" -s h -l help -d 'Print help'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand help; and not __fish_seen_subcommand_from serve login logout workspaces keys audit config test export import completions help" -f -a "serve" -d 'Run the local Custory server (admin API and MCP endpoint)'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand help; and not __fish_seen_subcommand_from serve login logout workspaces keys audit config test export import completions help" -f -a "login" -d 'Store the owner credential for --server'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand help; and not __fish_seen_subcommand_from serve login logout workspaces keys audit config test export import completions help" -f -a "logout" -d 'Forget the owner credential for --server'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand help; and not __fish_seen_subcommand_from serve login logout workspaces keys audit config test export import completions help" -f -a "workspaces" -d 'Manage workspaces'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand help; and not __fish_seen_subcommand_from serve login logout workspaces keys audit config test export import completions help" -f -a "keys" -d 'Manage MCP keys: create, list, show, revoke, rotate'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand help; and not __fish_seen_subcommand_from serve login logout workspaces keys audit config test export import completions help" -f -a "audit" -d 'Show the workspace\'s key and MCP activity, newest first'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand help; and not __fish_seen_subcommand_from serve login logout workspaces keys audit config test export import completions help" -f -a "config" -d 'Print or write the MCP config for a client (Cursor, Claude Code, VS Code, …)'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand help; and not __fish_seen_subcommand_from serve login logout workspaces keys audit config test export import completions help" -f -a "test" -d 'Check a connection to the MCP endpoint, stage by stage'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand help; and not __fish_seen_subcommand_from serve login logout workspaces keys audit config test export import completions help" -f -a "export" -d 'Write a workspace (or, with --all, every workspace) as a JSON document'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand help; and not __fish_seen_subcommand_from serve login logout workspaces keys audit config test export import completions help" -f -a "import" -d 'Import a workspace that `export` wrote, or a journey from a CSV file (all or nothing)'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand help; and not __fish_seen_subcommand_from serve login logout workspaces keys audit config test export import completions help" -f -a "completions" -d 'Print the shell completion script'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand help; and not __fish_seen_subcommand_from serve login logout workspaces keys audit config test export import completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand help; and __fish_seen_subcommand_from workspaces" -f -a "list" -d 'List the server\'s workspaces'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand help; and __fish_seen_subcommand_from workspaces" -f -a "create" -d 'Create a workspace'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand help; and __fish_seen_subcommand_from keys" -f -a "create" -d 'Create a key; prints its token once'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand help; and __fish_seen_subcommand_from keys" -f -a "list" -d 'List the workspace\'s keys'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand help; and __fish_seen_subcommand_from keys" -f -a "show" -d 'Show one key in full, with its recent activity'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand help; and __fish_seen_subcommand_from keys" -f -a "revoke" -d 'Revoke a key: its very next request is refused'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand help; and __fish_seen_subcommand_from keys" -f -a "rotate" -d 'Replace a key with a new one of the same name and access; the old one is revoked'
complete -c custory-mcp -n "__fish_custory_mcp_using_subcommand help; and __fish_seen_subcommand_from keys" -f -a "review" -d 'What needs a decision, per workspace: shared, stale, never-used and expiring keys, and read-write keys that only read; with the command that settles each'
