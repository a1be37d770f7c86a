//! `custory-mcp serve`: open (or create) the database, bind, announce, serve until a signal.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use serde_json::json;

use super::GlobalArgs;
use crate::error::{CliError, ExitStatus};
use crate::output::Printer;
use crate::period::Period;
use crate::secrets::{self, CredentialStore};
use std::time::Duration;

use crate::server::{
    AppState, AuditSink, ConnectionLimits, ForwardedHeader, LOOPBACK_HOSTS, Rate, ServerConfig,
};
use crate::store::access::OwnerCredentialSetup;
use crate::store::{Clock, Database, OpenError, Quotas, Store, StoreOptions};

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  custory-mcp serve
  custory-mcp serve --listen 127.0.0.1:9000 --database ./custory.db
  custory-mcp serve --oauth
  custory-mcp serve --listen 0.0.0.0:8787 --allow-host mcp.example.com
  custory-mcp serve --database postgres://custory:secret@db.internal/custory")]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port)
    #[arg(long, default_value = "127.0.0.1:8787", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Where the data lives: a SQLite file (a path or sqlite://PATH) or a PostgreSQL database
    /// (postgres://USER:PASSWORD@HOST/DB, shared by several replicas) [default: custory.db in
    /// the user's data directory]
    #[arg(
        long,
        visible_alias = "db",
        env = "DATABASE_URL",
        value_name = "URL|PATH",
        hide_env_values = true,
        value_hint = clap::ValueHint::AnyPath
    )]
    pub database: Option<String>,
    /// Let browser pages from this Origin call the MCP endpoint (repeatable)
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    pub allow_origin: Vec<String>,
    /// Accept requests addressed to this host name (repeatable; loopback names are always
    /// accepted on a loopback address)
    #[arg(long = "allow-host", value_name = "HOST")]
    pub allow_host: Vec<String>,
    /// Accept requests addressed to any host name (behind a proxy that checks it); without
    /// it, a non-loopback --listen needs --allow-host
    #[arg(long, conflicts_with = "allow_host")]
    pub allow_any_host: bool,
    /// Issue a new owner credential and revoke the old one (needs the database file)
    #[arg(long)]
    pub reset_owner_credential: bool,
    /// Be the OAuth authorization server of the MCP endpoint: clients that answer a 401 with
    /// a browser sign-in (mcp-remote, Codex, Gemini CLI, MCP Inspector) get one, and the
    /// owner's consent mints an ordinary MCP key. Clients with a key in a header are unaffected
    #[arg(long)]
    pub oauth: bool,
    /// With --oauth: do not take client ids given as the URL of a metadata document (and do
    /// not advertise them), so every client registers; for a server that cannot reach the
    /// internet to fetch those documents
    #[arg(long, requires = "oauth")]
    pub no_client_metadata_documents: bool,
    /// Let webhooks go to loopback and private addresses (a receiver on your own network);
    /// without it they go to public addresses only
    #[arg(long)]
    pub allow_private_webhooks: bool,
    /// Stream every audit event and call record, of every workspace, to this collector:
    /// gzip-compressed NDJSON batches by POST (Splunk HEC, Vector, any HTTP endpoint), at least
    /// once and in order, resumed after a restart (docs/AUDIT_STREAM.md). A URL holding a token
    /// is better set in CUSTORY_AUDIT_SINK
    #[arg(long, env = "CUSTORY_AUDIT_SINK", hide_env_values = true, value_name = "URL")]
    pub audit_sink: Option<String>,
    /// A header the collector needs, as `Name: value` (repeatable). For a secret set
    /// CUSTORY_AUDIT_SINK_HEADERS instead (a header per line), which no process list shows
    #[arg(
        long = "audit-sink-header",
        value_name = "HEADER",
        requires = "audit_sink",
        env = "CUSTORY_AUDIT_SINK_HEADERS",
        hide_env_values = true,
        value_delimiter = '\n'
    )]
    pub audit_sink_header: Vec<String>,
    /// A proxy or load balancer (an address or CIDR, repeatable) whose Forwarded or
    /// X-Forwarded-For header names the client: for last-used addresses, the failed-auth
    /// limit and the log. Anyone else's forwarding headers are ignored
    #[arg(long = "trusted-proxy", value_name = "CIDR", value_parser = trusted_proxy)]
    pub trusted_proxy: Vec<ipnet::IpNet>,
    /// The header the trusted proxies set to name the client (only that one is read)
    #[arg(long, value_enum, default_value_t = ForwardedHeader::XForwardedFor, value_name = "HEADER")]
    pub forwarded_header: ForwardedHeader,
    /// Serve HTTPS with this certificate chain (PEM); read again on SIGHUP
    #[arg(long, value_name = "FILE", requires = "tls_key", value_hint = clap::ValueHint::FilePath)]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_cert", value_hint = clap::ValueHint::FilePath)]
    pub tls_key: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics, apart from the API (requests, tool
    /// calls, auth failures, 429s, latencies, pool use, last-used flush lag)
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// How log lines are written to stderr: text, or one JSON object per line
    #[arg(long, value_enum, default_value_t = LogFormat::Text, value_name = "FORMAT")]
    pub log_format: LogFormat,
    /// The URL clients reach this server at, when it differs from what they send as Host
    /// (behind a TLS proxy: https://mcp.example.com); OAuth's metadata names it
    #[arg(long, value_name = "URL", value_parser = public_url)]
    pub public_url: Option<String>,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Every bound the server keeps, with its default: what one client, key or workspace may use.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Limits")]
pub struct LimitArgs {
    /// Connections open at once (kept below the open-files limit, which is raised at start)
    #[arg(long, default_value_t = 1024, value_name = "N", value_parser = clap::value_parser!(u32).range(16..))]
    pub max_connections: u32,
    /// Connections open at once from one address (an IPv6 /64 counts as one)
    #[arg(long, default_value_t = 256, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_address: u32,
    /// Seconds a client has to send a request's head (also ends idle kept-alive connections)
    #[arg(long, default_value_t = 10, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_timeout: u64,
    /// Seconds a request's body may take to arrive
    #[arg(long, default_value_t = 10, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub body_timeout: u64,
    /// Seconds one MCP request's work may take before its answer is given up
    #[arg(long, default_value_t = 30, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub call_deadline: u64,
    /// Milliseconds one database statement may run before it is stopped
    #[arg(long, default_value_t = 2000, value_name = "MS", value_parser = clap::value_parser!(u64).range(10..=600_000))]
    pub statement_timeout: u64,
    /// MCP requests one key may have running at once (more wait their turn)
    #[arg(long, default_value_t = 4, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub key_concurrency: u32,
    /// MCP messages one key may send per second (bursts of twice as many pass)
    #[arg(long, default_value_t = 500, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub key_requests_per_second: u32,
    /// Write tool calls one key may make per second (bursts of ten times as many pass)
    #[arg(long, default_value_t = 200, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub key_writes_per_second: u32,
    /// Items one workspace may hold
    #[arg(long, default_value_t = 1_000_000, value_name = "N", value_parser = clap::value_parser!(i64).range(1..))]
    pub max_items: i64,
    /// Comments one workspace may hold
    #[arg(long, default_value_t = 2_000_000, value_name = "N", value_parser = clap::value_parser!(i64).range(1..))]
    pub max_comments: i64,
    /// Bytes of text one workspace may hold (titles, descriptions, fields, comments)
    #[arg(long, default_value_t = 4 << 30, value_name = "BYTES", value_parser = clap::value_parser!(i64).range(1..))]
    pub max_text_bytes: i64,
    /// How long the record of each call a key made (tool, ids, outcome, size) is kept
    #[arg(long, default_value_t = Period::days(30), value_name = "PERIOD")]
    pub audit_retention: Period,
    /// How long each key's hourly totals of calls are kept (audit --usage)
    #[arg(long, default_value_t = Period::days(400), value_name = "PERIOD")]
    pub usage_retention: Period,
}

impl LimitArgs {
    fn store_options(&self) -> StoreOptions {
        StoreOptions {
            statement_limit: Duration::from_millis(self.statement_timeout),
            quotas: Quotas {
                items: self.max_items,
                comments: self.max_comments,
                text_bytes: self.max_text_bytes,
            },
            ..StoreOptions::default()
        }
    }

    /// The API's connection bounds, capped below the open-files limit `files` with room for
    /// the metrics listener's connections when there is one.
    fn connections(&self, files: Option<u64>, metrics: bool) -> ConnectionLimits {
        // Descriptors the server needs beside connections: the database, its pools, logs.
        const RESERVED_FILES: u64 = 64;
        let metrics_files =
            if metrics { crate::server::metrics::MAX_CONNECTIONS as u64 } else { 0 };
        let mut max_connections = u64::from(self.max_connections);
        if let Some(files) = files {
            let budget = files.saturating_sub(RESERVED_FILES + metrics_files);
            max_connections = max_connections.min(budget.max(16));
        }
        ConnectionLimits {
            max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
            max_per_address: self.max_connections_per_address as usize,
            header_timeout: Duration::from_secs(self.header_timeout),
            ..ConnectionLimits::default()
        }
    }

    /// The server's settings, with connections capped below the open-files limit `files`.
    fn apply(&self, config: &mut ServerConfig, files: Option<u64>) {
        config.connections = self.connections(files, config.metrics);
        config.body_timeout = Duration::from_secs(self.body_timeout);
        config.call_deadline = Duration::from_secs(self.call_deadline);
        config.per_key_concurrency = self.key_concurrency as usize;
        config.audit_retention = self.audit_retention;
        config.usage_retention = self.usage_retention.max(self.audit_retention);
        config.key_requests = Rate {
            per_second: self.key_requests_per_second,
            burst: self.key_requests_per_second.saturating_mul(2),
        };
        config.key_writes = Rate {
            per_second: self.key_writes_per_second,
            burst: self.key_writes_per_second.saturating_mul(10),
        };
    }
}

pub fn run(args: ServeArgs, global: &GlobalArgs, printer: Printer) -> anyhow::Result<ExitStatus> {
    init_logging(global.verbose, global.quiet, args.log_format);
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            Some(crate::server::Certificates::load(cert.clone(), key.clone()).map_err(|error| {
                CliError::failure(error)
                    .hint("pass a PEM certificate chain with --tls-cert and its key with --tls-key")
            })?)
        }
        _ => None,
    };
    // On loopback, only loopback names may address the server (DNS rebinding); on another
    // address, only the names given with --allow-host, or any with --allow-any-host (behind a
    // proxy that checks them), but never any by accident. Checked before anything is opened.
    let listen = args.listen;
    let log_format = args.log_format;
    let mut allowed_hosts = args.allow_host;
    let allowed_hosts = if listen.ip().is_loopback() {
        allowed_hosts.extend(LOOPBACK_HOSTS.map(String::from));
        Some(allowed_hosts)
    } else if args.allow_any_host {
        None
    } else if allowed_hosts.is_empty() {
        return Err(CliError::usage(format!(
            "--listen {listen} is reachable from other machines, so the server must know the host \
             names clients use for it (a browser page could otherwise reach it through a name of \
             its own: DNS rebinding)"
        ))
        .hint(
            "pass --allow-host NAME for each name (e.g. --allow-host mcp.example.com), or \
             --allow-any-host behind a proxy that checks the Host header",
        )
        .into());
    } else {
        Some(allowed_hosts)
    };
    let audit_sink = match &args.audit_sink {
        // Never repeated in the error: the URL may carry the collector's token.
        Some(url) => {
            Some(Arc::new(AuditSink::new(url, &args.audit_sink_header).map_err(|error| {
                CliError::usage(format!("invalid --audit-sink: {error}")).hint(
                    "pass the collector's http(s) URL, and each header as `Name: value` (a \
                     secret one in CUSTORY_AUDIT_SINK_HEADERS, a header per line)",
                )
            })?))
        }
        None => None,
    };
    let database = match args.database {
        // Parsed here rather than by clap, whose error would repeat the value, password and all.
        Some(value) => Database::parse(&value).map_err(|error| {
            CliError::usage(format!("invalid --database: {error}"))
                .hint("pass a postgres://USER:PASSWORD@HOST/DB URL or a SQLite file path")
        })?,
        None => Database::Sqlite(default_database()?),
    };
    let store = Store::open_with(&database, Clock::default(), args.limits.store_options())
        .map_err(open_error)?;
    // As many open files as the system lets this process have: connections are capped below.
    let files = rlimit::increase_nofile_limit(u64::MAX).ok();

    // Tool calls run on the blocking pool, reads on a pool of connections (8 readers on SQLite).
    // Eight threads keep two cores busy; more only hold more memory (each thread keeps its own
    // allocator heap: 16 threads peaked at 126 MiB under load at 100k items, 8 at 77 MiB). No
    // key holds more than a few of them (ServerConfig::per_key_concurrency).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(8)
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    let served = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await.map_err(|error| {
            let hint = if error.kind() == std::io::ErrorKind::AddrInUse {
                busy_port_hint(listen)
            } else {
                "pass another address with --listen".to_owned()
            };
            CliError::failure(format!("could not listen on {}: {error}", listen)).hint(hint)
        })?;
        let addr = listener.local_addr()?;
        let metrics_url = match args.metrics_listen {
            Some(at) => {
                let metrics = tokio::net::TcpListener::bind(at).await.map_err(|error| {
                    CliError::failure(format!("could not listen on {at} for metrics: {error}"))
                        .hint("pass another address with --metrics-listen")
                })?;
                let url = crate::server::metrics::url(metrics.local_addr()?);
                let handle = crate::server::metrics::install()?;
                let limits = args.limits.connections(files, true);
                let limits = crate::server::metrics::connection_limits(&limits);
                tokio::spawn(crate::server::metrics::serve(metrics, handle, limits));
                Some(url)
            }
            None => None,
        };
        // The owner credential is issued only once the listener is bound: a start that fails
        // (a busy port) loses nothing.
        let owner = store.access().ensure_owner_credential(args.reset_owner_credential)?;
        let url = base_url(addr, tls.is_some());
        let shutdown = shutdown_signal().context("could not listen for stop signals")?;
        let sink_label = audit_sink.as_ref().map(|sink| sink.label().to_owned());
        let shown = Shown {
            oauth: args.oauth,
            metrics_url: metrics_url.as_deref(),
            audit_sink: sink_label.as_deref(),
        };
        announce(&store, &owner, &url, shown, printer)?;

        let mut config = ServerConfig {
            allowed_origins: args.allow_origin,
            allowed_hosts,
            oauth: args.oauth,
            client_metadata_documents: !args.no_client_metadata_documents,
            public_url: args.public_url,
            trusted_proxies: args.trusted_proxy,
            forwarded_header: args.forwarded_header,
            tls,
            metrics: metrics_url.is_some(),
            allow_private_webhooks: args.allow_private_webhooks,
            audit_sink,
            ..ServerConfig::default()
        };
        args.limits.apply(&mut config, files);
        let state = AppState::new(Arc::new(store), config);
        crate::server::run(listener, state, shutdown).await?;
        match log_format {
            LogFormat::Json => tracing::info!("custory-mcp stopped"),
            LogFormat::Text => printer.info("custory-mcp stopped"),
        }
        Ok(ExitStatus::Success)
    });
    // Requests still waiting on a stalled database are not waited for: the connections are
    // closed and the last flush has run (or given up) by now.
    runtime.shutdown_timeout(Duration::from_millis(500));
    served
}

/// What the start-up message names besides the address.
struct Shown<'a> {
    oauth: bool,
    metrics_url: Option<&'a str>,
    /// The audit sink's host and path.
    audit_sink: Option<&'a str>,
}

/// Tells the user where the server is and, on first start, the owner credential (once).
fn announce(
    store: &Store,
    owner: &OwnerCredentialSetup,
    url: &str,
    shown: Shown<'_>,
    printer: Printer,
) -> anyhow::Result<()> {
    let Shown { oauth, metrics_url, audit_sink } = shown;
    let credentials = CredentialStore::open()?;
    let account = secrets::owner_account(url);
    let (token, saved) = match owner {
        OwnerCredentialSetup::Issued(token) => {
            let saved = credentials.set(&account, token);
            if let Err(error) = &saved {
                printer.warn(&format!("could not save the owner credential locally: {error:#}"));
            }
            (Some(token), saved.ok())
        }
        OwnerCredentialSetup::Existing { .. } => (None, None),
    };
    // How many workspaces, and the first few: never the whole list (a server may host
    // thousands).
    let workspaces = store.access().workspace_count()?;
    let first: Vec<String> =
        store.access().first_workspaces(3)?.into_iter().map(|w| w.slug).collect();
    if printer.json {
        // One line, so a supervisor or test can read the announcement line by line.
        let line = json!({
            "url": url,
            "mcp_url": format!("{url}/api/mcp"),
            "database": store.database().to_string(),
            "workspaces": workspaces,
            "oauth": oauth,
            "metrics_url": metrics_url,
            "audit_sink": audit_sink,
            "owner_credential": token.map(|t| t.expose()),
            "owner_credential_saved_to": saved.as_ref().map(ToString::to_string),
        });
        printer.data(&line.to_string());
        return Ok(());
    }
    printer.info(&format!("custory-mcp {} listening on {url}", env!("CARGO_PKG_VERSION")));
    printer.info(&format!("  MCP endpoint  {url}/api/mcp"));
    printer.info(&format!("  database      {}", store.database()));
    let shown = match workspaces {
        1 => first.join(", "),
        n if n <= 3 => format!("{n} ({})", first.join(", ")),
        n => format!("{n} ({}, …)", first.join(", ")),
    };
    printer.info(&format!("  workspaces    {shown}"));
    if let Some(metrics_url) = metrics_url {
        printer.info(&format!("  metrics       {metrics_url}"));
    }
    if let Some(sink) = audit_sink {
        printer.info(&format!("  audit sink    {sink} (every audit event and call)"));
    }
    if oauth {
        printer.info("  OAuth         on: clients without a key sign in in a browser, with the owner credential");
    }
    match (token, &saved) {
        (Some(token), _) => {
            printer.info("");
            printer.info("Owner credential for the admin API (shown only this once):");
            // The credential is the one piece of data this command produces.
            printer.data(token.expose());
            if let Some(saved) = &saved {
                printer.info(&format!("Saved to {saved} for {url}."));
            }
            printer.info("");
            let mut next = vec!["custory-mcp"];
            if url != super::DEFAULT_SERVER {
                next.extend(["--server", url]);
            }
            next.extend(["keys", "create", "--name", "Cursor on MacBook", "--expires", "90d"]);
            let next: Vec<String> = next.iter().map(|w| super::shared::shell_quote(w)).collect();
            printer.info(&format!("Next: {}", next.join(" ")));
        }
        (None, _) => {
            let known = credentials
                .get(&account)
                .ok()
                .flatten()
                .is_some_and(|t| store.access().is_owner_credential(&t.hash()));
            if !known {
                let what_then = match store.database() {
                    // A shared database: a reset would revoke the credential of every replica.
                    Database::Postgres(_) => {
                        " with the one the first server on this database printed (`serve \
                         --reset-owner-credential` replaces it for every replica)"
                    }
                    Database::Sqlite(_) => {
                        ", or `custory-mcp serve --reset-owner-credential` to issue a new one"
                    }
                };
                printer.info(&format!(
                    "  note: no owner credential for {url} is saved on this machine; run \
                     `custory-mcp login --server {url}`{what_then}"
                ));
            }
        }
    }
    printer.info("Press Ctrl-C to stop.");
    Ok(())
}

/// What to do about a database that cannot be opened.
fn open_error(error: OpenError) -> CliError {
    let hint = match &error {
        OpenError::Unwritable(_) => "pass --db with a path in a directory you can write to",
        OpenError::NotADatabase(_) => {
            "pass another --db PATH, or move the file aside to start a new database"
        }
        OpenError::NewerSchema(_) => "upgrade custory-mcp, or pass another --db PATH",
        OpenError::InUse(_) => "stop that server first, or pass a different --db",
        OpenError::Unreachable(_) => {
            "check that PostgreSQL is running and that the URL's host, port, user, password and \
             database are right (psql URL tells)"
        }
    };
    CliError::failure(error.to_string()).hint(hint)
}

/// The URL clients use for a listener: a wildcard address is reached through loopback; over
/// https, loopback is `localhost`, the name certificates for a local server carry.
pub fn base_url(addr: SocketAddr, https: bool) -> String {
    if https {
        let host = if addr.ip().is_loopback() || addr.ip().is_unspecified() {
            "localhost".to_owned()
        } else {
            match addr.ip() {
                std::net::IpAddr::V6(ip) => format!("[{ip}]"),
                ip => ip.to_string(),
            }
        };
        return format!("https://{host}:{}", addr.port());
    }
    let host = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_owned(),
        ip if ip.is_unspecified() => "[::1]".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    format!("http://{host}:{}", addr.port())
}

pub fn default_database() -> anyhow::Result<PathBuf> {
    directories::ProjectDirs::from("com", "usecustory", "custory-mcp")
        .map(|dirs| dirs.data_dir().join("custory.db"))
        .context("could not find a home directory for the database; pass --db PATH")
}

/// How the server's log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line of text per event
    Text,
    /// One JSON object per line, for log shippers
    Json,
}

fn init_logging(verbose: u8, quiet: bool, format: LogFormat) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CUSTORY_LOG")
        // tokio-postgres logs statement parameters at debug level: key hashes have no place in
        // a log, however verbose.
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(format!("{default},tokio_postgres=info"))
        });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
    };
}

/// Registers for SIGINT and SIGTERM now, and returns the future that resolves on either.
/// Registering before the server announces itself means a signal sent right after the
/// announcement is a graceful stop, not the default "terminate at once".
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {},
                _ = terminate.recv() => {},
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

/// `--public-url`: an http(s) origin, no path.
fn public_url(value: &str) -> Result<String, String> {
    let url = url::Url::parse(value).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("give an http or https URL such as https://mcp.example.com".into());
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err("give the origin only (https://mcp.example.com), without a path".into());
    }
    Ok(url.origin().ascii_serialization())
}

/// `--trusted-proxy`: `10.0.0.0/8`, or one address.
fn trusted_proxy(value: &str) -> Result<ipnet::IpNet, String> {
    value
        .parse::<ipnet::IpNet>()
        .or_else(|_| value.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map(|net| net.trunc())
        .map_err(|_| format!("{value:?} is not an address or CIDR (10.0.0.0/8, 192.0.2.7)"))
}

/// What to do when `listen` is taken: stop the other server, or use another *fixed* port (a
/// free one near it, when there is one). Not port 0: its port changes at every start, and the
/// owner credential saved for the server's URL would no longer be found.
fn busy_port_hint(listen: std::net::SocketAddr) -> String {
    let free = (1..=20u16)
        .filter_map(|step| listen.port().checked_add(step))
        .map(|port| std::net::SocketAddr::new(listen.ip(), port))
        .find(|at| std::net::TcpListener::bind(at).is_ok());
    match free {
        Some(at) => {
            let server = format!("http://{at}");
            format!(
                "another server is using it: stop it, or use another fixed port: `{}` (with \
                 your other options), then pass `--server {}` to the other commands",
                ["custory-mcp", "serve", "--listen", &at.to_string()]
                    .map(super::shared::shell_quote)
                    .join(" "),
                super::shared::shell_quote(&server)
            )
        }
        None => "another server is using it: stop it, or pass another fixed port with --listen \
                 ADDRESS:PORT"
            .to_owned(),
    }
}
