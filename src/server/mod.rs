//! The HTTP server: `/healthz`, the admin API and the MCP endpoint on one axum router.
//!
//! [`run`] is the seam: production binds a listener and waits for a signal; tests pass a
//! listener on `127.0.0.1:0` and a future they resolve themselves.

mod admin;
mod admission;
mod client_addr;
mod client_metadata;
mod connection;
mod error;
mod extract;
mod leaks;
mod limiter;
mod limits;
mod listen;
mod mcp;
pub mod metrics;
mod oauth;
mod tls;
mod transfer;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::net::TcpListener;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate as _, SizeAbove};
use tower_http::set_header::SetResponseHeaderLayer;

pub use client_addr::ForwardedHeader;
pub use client_metadata::FetchPolicy;
use error::ApiError;
use limiter::AuthLimiter;
pub use limits::Rate;
pub use listen::ConnectionLimits;
pub use tls::Certificates;

use crate::period::Period;
use crate::store::Store;

/// Largest request body accepted anywhere (413 above it).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// MCP answers at least this large go gzip-compressed to clients that accept it (the tool
/// list, large tool results); smaller ones are not worth the CPU.
const COMPRESS_ABOVE_BYTES: u16 = 8 * 1024;

/// Where the protected resource's metadata is (RFC 9728 §3.1, for the resource `/api/mcp`),
/// when OAuth is on.
pub const PROTECTED_RESOURCE_PATH: &str = "/.well-known/oauth-protected-resource/api/mcp";
/// Leaked-token reports one address may send per minute (each may list 100 tokens).
const REPORTS_PER_MINUTE: std::num::NonZeroU32 = std::num::NonZeroU32::new(60).unwrap();
/// OAuth client registrations one address may make per minute.
const REGISTRATIONS_PER_MINUTE: std::num::NonZeroU32 = std::num::NonZeroU32::new(20).unwrap();

/// Settings of a running server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Origins allowed to call the MCP endpoint from a browser (requests without `Origin`,
    /// as CLI and IDE clients send them, are always allowed).
    pub allowed_origins: Vec<String>,
    /// Host names (without port) that requests may address, against DNS rebinding; `None`
    /// accepts any (a server on a public address behind its own proxy).
    pub allowed_hosts: Option<Vec<String>>,
    /// How often pending last-used values are written to the database.
    pub usage_flush_interval: Duration,
    /// Failed authentications an address may make per window before it gets 429.
    pub auth_failures_per_window: u32,
    pub auth_failure_window: Duration,
    /// MCP requests one key may have running at once; more wait for one of them to finish.
    pub per_key_concurrency: usize,
    /// How long such a request waits before it is refused (429).
    pub per_key_wait: Duration,
    /// Connections: how many, how long a request head may take, how long shutdown waits.
    pub connections: ConnectionLimits,
    /// How long a request body may take to arrive.
    pub body_timeout: Duration,
    /// How long one MCP request's work may take before its answer is given up.
    pub call_deadline: Duration,
    /// Each key's rate of MCP messages, and of write tool calls.
    pub key_requests: Rate,
    pub key_writes: Rate,
    /// Whether the server is the OAuth authorization server of its MCP endpoint (`--oauth`).
    pub oauth: bool,
    /// The origin clients reach the server at (`https://mcp.example.com`), for the OAuth
    /// metadata; without it, `http://` and the request's `Host`.
    pub public_url: Option<String>,
    /// Proxies whose `Forwarded` / `X-Forwarded-For` name the client (`--trusted-proxy`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The header those proxies set.
    pub forwarded_header: ForwardedHeader,
    /// HTTPS, with this certificate (`--tls-cert`, `--tls-key`); plain HTTP without it.
    pub tls: Option<Arc<Certificates>>,
    /// Whether a metrics recorder is installed (`--metrics-listen`): requests are timed then.
    pub metrics: bool,
    /// Which client metadata documents may be fetched (public https only, but in tests).
    pub oauth_metadata: FetchPolicy,
    /// How long each call's record is kept, and each key's hourly totals.
    pub audit_retention: Period,
    pub usage_retention: Period,
}

/// The names a loopback server answers to.
pub const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            allowed_hosts: Some(LOOPBACK_HOSTS.map(String::from).to_vec()),
            usage_flush_interval: Duration::from_secs(5),
            auth_failures_per_window: 30,
            auth_failure_window: Duration::from_secs(60),
            per_key_concurrency: 4,
            per_key_wait: Duration::from_secs(10),
            connections: ConnectionLimits::default(),
            body_timeout: Duration::from_secs(10),
            call_deadline: Duration::from_secs(30),
            key_requests: Rate { per_second: 500, burst: 1000 },
            key_writes: Rate { per_second: 200, burst: 2000 },
            oauth: false,
            public_url: None,
            trusted_proxies: Vec::new(),
            forwarded_header: ForwardedHeader::default(),
            tls: None,
            oauth_metadata: FetchPolicy::default(),
            metrics: false,
            audit_retention: Period::days(30),
            usage_retention: Period::days(400),
        }
    }
}

impl ServerConfig {
    /// Whether the `Host` header names this server (or no check is configured). Requests
    /// without `Host` (HTTP/1.0) are allowed: DNS rebinding needs a browser, which sends one.
    pub fn host_allowed(&self, headers: &axum::http::HeaderMap) -> bool {
        self.allowed_hosts.as_deref().is_none_or(|allowed| admission::host_in(allowed, headers))
    }
}

/// What every handler can reach: [`Shared`] behind one `Arc`, since axum clones the state for
/// every request that extracts it (one reference count to touch, not three).
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

#[derive(Debug)]
pub struct Shared {
    pub store: Arc<Store>,
    pub config: ServerConfig,
    pub limiter: AuthLimiter,
    pub shares: limits::KeyShares,
    pub rates: limits::KeyRates,
    /// One import or export at a time: each holds a workspace's document in memory and a
    /// blocking thread while it runs.
    pub transfers: Arc<tokio::sync::Semaphore>,
    /// OAuth client registrations per address: they need no credential.
    pub registrations: governor::DefaultKeyedRateLimiter<std::net::IpAddr>,
    /// Leaked-token reports per address group (`POST /api/tokens/revoke` needs no credential).
    pub reports: governor::DefaultKeyedRateLimiter<std::net::IpAddr>,
    /// Fetches and caches client ID metadata documents.
    pub metadata: client_metadata::MetadataFetcher,
}

impl AppState {
    pub fn new(store: Arc<Store>, config: ServerConfig) -> Self {
        let limiter = AuthLimiter::new(config.auth_failures_per_window, config.auth_failure_window);
        let shares = limits::KeyShares::new(config.per_key_concurrency, config.per_key_wait);
        let rates = limits::KeyRates::new(config.key_requests, config.key_writes);
        let transfers = Arc::new(tokio::sync::Semaphore::new(1));
        let registrations = governor::RateLimiter::keyed(
            governor::Quota::per_minute(REGISTRATIONS_PER_MINUTE)
                .allow_burst(REGISTRATIONS_PER_MINUTE),
        );
        let metadata = client_metadata::MetadataFetcher::new(&config.oauth_metadata);
        let reports = governor::RateLimiter::keyed(
            governor::Quota::per_minute(REPORTS_PER_MINUTE).allow_burst(REPORTS_PER_MINUTE),
        );
        Self(Arc::new(Shared {
            store,
            config,
            limiter,
            shares,
            rates,
            transfers,
            registrations,
            reports,
            metadata,
        }))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The whole HTTP surface on one screen.
pub fn router(state: AppState) -> Router {
    let admin = Router::new()
        .route("/workspaces", get(admin::list_workspaces).post(admin::create_workspace))
        .route("/workspaces/{ws}/mcp-keys", get(admin::list_keys).post(admin::create_key))
        .route("/workspaces/{ws}/mcp-keys/{id}", get(admin::get_key))
        .route("/workspaces/{ws}/mcp-keys/{id}/revoke", post(admin::revoke_key))
        .route("/workspaces/{ws}/mcp-keys/{id}/rotate", post(admin::rotate_key))
        .route("/workspaces/{ws}/mcp-keys/{id}/usage", get(admin::key_usage))
        .route("/workspaces/{ws}/audit", get(admin::audit))
        .route("/workspaces/{ws}/usage", get(admin::workspace_usage))
        .route("/mcp-keys/revoke-token", post(admin::revoke_token))
        .route("/workspaces/{ws}/export", get(transfer::export))
        .route("/imports", post(transfer::import));
    // Answers vary with Accept-Encoding whether or not this one was compressed.
    // Level 3: the tool list shrinks ~5x for a third of the default level's CPU.
    let compression = CompressionLayer::new()
        .gzip(true)
        .quality(tower_http::CompressionLevel::Precise(3))
        .compress_when(SizeAbove::new(COMPRESS_ABOVE_BYTES).and(NotForContentType::SSE));
    let mut mcp = Router::new()
        .route("/api/mcp", post(mcp::handle).fallback(mcp::method_not_allowed))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::VARY,
            HeaderValue::from_static("Accept-Encoding"),
        ))
        .layer(compression);
    if let Some(cors) = cors(&state.config.allowed_origins) {
        mcp = mcp.layer(cors);
    }
    let mut router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/tokens/revoke", post(leaks::report))
        .merge(mcp);
    if state.config.oauth {
        router = router.merge(oauth_routes());
    }
    let mut router = router
        .nest("/api/admin", admin)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(connection::close_if_body_unread));
    // Counted only where someone reads the counts: nothing on the request path otherwise.
    if state.config.metrics {
        router = router.layer(axum::middleware::from_fn(metrics::record_request));
    }
    router.layer(request_log()).with_state(state)
}

/// The OAuth endpoints (`--oauth`). Discovery, registration and the token endpoint answer
/// pages of any origin (browser-based clients call them); the consent pages are not for
/// scripts and have no CORS.
fn oauth_routes() -> Router<AppState> {
    use tower_http::cors::{Any, CorsLayer};
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
        .max_age(Duration::from_secs(600));
    let open = Router::new()
        .route(PROTECTED_RESOURCE_PATH, get(oauth::protected_resource))
        .route(oauth::AUTHORIZATION_SERVER_PATH, get(oauth::authorization_server))
        .route("/oauth/register", post(oauth::register))
        .route("/oauth/token", post(oauth::token))
        .layer(cors);
    Router::new()
        .route("/oauth/authorize", get(oauth::authorize).post(oauth::decide))
        .route("/oauth/login", post(oauth::login))
        .merge(open)
}

/// CORS for the Origins `--allow-origin` names, so a browser page there can call the MCP
/// endpoint: its preflight is answered, and its answers carry the headers browsers need.
fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let origins: Vec<HeaderValue> =
        origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    if origins.is_empty() {
        return None;
    }
    let name = axum::http::HeaderName::from_static;
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([axum::http::Method::POST])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::ACCEPT,
                name("mcp-protocol-version"),
                name("mcp-method"),
                name("mcp-name"),
            ])
            .expose_headers([header::WWW_AUTHENTICATE, header::RETRY_AFTER])
            .max_age(Duration::from_secs(600)),
    )
}

/// Every request at `-v` (info): method, path, status, time. Headers are never logged (they
/// carry tokens), nor bodies.
/// One span per request: method, path (never the query) and the client's address.
fn request_log() -> tower_http::trace::TraceLayer<
    tower_http::classify::SharedClassifier<tower_http::classify::ServerErrorsAsFailures>,
    fn(&axum::extract::Request) -> tracing::Span,
> {
    use tower_http::trace::{DefaultOnResponse, TraceLayer};
    fn span(request: &axum::extract::Request) -> tracing::Span {
        let client = request.extensions().get::<client_addr::ClientAddr>().map(|c| c.0);
        tracing::info_span!(
            "request",
            method = %request.method(),
            path = %request.uri().path(),
            client = client.map(tracing::field::display),
        )
    }
    TraceLayer::new_for_http()
        .make_span_with(span as fn(&axum::extract::Request) -> tracing::Span)
        .on_response(DefaultOnResponse::new().level(tracing::Level::INFO).include_headers(false))
}

/// Serves `listener` until `shutdown` resolves, then writes pending last-used values.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store = Arc::clone(&state.store);
    let flusher = tokio::spawn(housekeeping(state.clone()));
    let limits = state.config.connections;
    let front = listen::Front {
        trusted: state.config.trusted_proxies.clone().into(),
        forwarded: state.config.forwarded_header,
        tls: state.config.tls.clone(),
    };
    let reloader =
        front.tls.clone().map(|certificates| tokio::spawn(reload_on_hangup(certificates)));
    listen::serve(listener, router(state), limits, front, shutdown).await;
    if let Some(reloader) = reloader {
        reloader.abort();
    }
    flusher.abort();
    // The last flush runs whatever happened to the connections, so no recorded use is lost.
    store.flush_usage()?;
    store.flush_activity()?;
    Ok(())
}

/// Reads the certificate again at each SIGHUP.
async fn reload_on_hangup(certificates: Arc<Certificates>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else { return };
        while hangups.recv().await.is_some() {
            match certificates.reload() {
                Ok(()) => tracing::info!("reloaded the TLS certificate"),
                Err(error) => {
                    tracing::error!(%error, "could not reload the TLS certificate; keeping the old")
                }
            }
        }
    }
    #[cfg(not(unix))]
    drop(certificates);
}

/// Every few seconds, off the async workers: last-used times and the calls keys made written,
/// idle rate buckets forgotten, and (on PostgreSQL, where another replica may reset it) the
/// owner credential read again. Once an hour (and at start), records past their retention are
/// deleted.
async fn housekeeping(state: AppState) {
    let mut tick = tokio::time::interval(state.config.usage_flush_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pruned: Option<std::time::Instant> = None;
    loop {
        tick.tick().await;
        let shared = state.clone();
        let prune = pruned.is_none_or(|at| at.elapsed() >= Duration::from_secs(3600));
        if prune {
            pruned = Some(std::time::Instant::now());
        }
        let chores = tokio::task::spawn_blocking(move || {
            if let Err(error) = shared.store.flush_usage() {
                tracing::warn!(%error, "could not write last-used times; will retry");
            }
            if let Err(error) = shared.store.flush_activity() {
                tracing::warn!(%error, "could not write the record of calls; will retry");
            }
            if prune {
                let now = shared.store.now();
                let calls_before = now - shared.config.audit_retention.duration();
                let totals_before = now - shared.config.usage_retention.duration();
                match shared.store.prune_activity(calls_before, totals_before) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(rows = n, "deleted call records past their retention"),
                    Err(error) => tracing::warn!(%error, "could not prune the record of calls"),
                }
            }
            if !shared.store.keys_in_memory()
                && let Err(error) = shared.store.load_owner_credentials()
            {
                tracing::warn!(%error, "could not read the owner credential; will retry");
            }
            shared.rates.forget_idle();
            metrics::record_store(&shared.store);
        });
        let _ = chores.await;
    }
}

async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

/// `GET /readyz`: whether this replica can serve: its database answers (within 2 s) and has
/// the schema this build writes. A load balancer takes a replica out while it fails.
async fn readyz(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> axum::response::Response {
    let store = Arc::clone(&state.store);
    let checked = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::task::spawn_blocking(move || store.schema_version()),
    )
    .await;
    let (status, problem) = match checked {
        Ok(Ok(Ok(version))) if version == crate::store::SCHEMA_VERSION => (StatusCode::OK, None),
        Ok(Ok(Ok(version))) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Some(format!(
                "the database has schema version {version}, this build writes {}",
                crate::store::SCHEMA_VERSION
            )),
        ),
        Ok(Ok(Err(error))) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Some(format!("the database does not answer: {error}")),
        ),
        Ok(Err(_)) => (StatusCode::SERVICE_UNAVAILABLE, Some("the check failed".to_owned())),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("the database did not answer within 2 s".to_owned()),
        ),
    };
    let body = match problem {
        None => {
            serde_json::json!({"status": "ready", "schema_version": crate::store::SCHEMA_VERSION})
        }
        Some(problem) => serde_json::json!({"status": "unavailable", "problem": problem}),
    };
    (status, [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))], Json(body))
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::not_found("not_found", "no such endpoint; the MCP endpoint is POST /api/mcp")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this path",
    )
}
