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
mod members;
pub mod metrics;
mod oauth;
mod policy;
mod sink;
mod tls;
mod transfer;
pub use transfer::ImportHook;
mod webhooks;
mod work;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{self, MethodFilter, MethodRouter};
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
pub use sink::AuditSink;
pub use tls::Certificates;

use crate::api::Role;
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
    /// Whether a client may name itself by the URL of its metadata document instead of
    /// registering (advertised as `client_id_metadata_document_supported`); off with
    /// `--no-client-metadata-documents`, for a server that cannot fetch them.
    pub client_metadata_documents: bool,
    /// OAuth client registrations one source network may make per minute
    /// (`limiter::registration_group`: an IPv4 /24, an IPv6 /48).
    pub oauth_registrations_per_minute: u32,
    /// How long each call's record is kept, and each key's hourly totals.
    pub audit_retention: Period,
    pub usage_retention: Period,
    /// Called between an import's slices (tests hold an import there); nothing by default.
    pub import_hook: transfer::ImportHook,
    /// Whether webhooks may be sent to loopback and private addresses
    /// (`--allow-private-webhooks`: a receiver on your own network, and the tests).
    pub allow_private_webhooks: bool,
    /// Where every audit event and call record is streamed (`--audit-sink`), if anywhere.
    pub audit_sink: Option<Arc<AuditSink>>,
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
            client_metadata_documents: true,
            oauth_registrations_per_minute: 20,
            metrics: false,
            audit_retention: Period::days(30),
            usage_retention: Period::days(400),
            import_hook: transfer::ImportHook::default(),
            allow_private_webhooks: false,
            audit_sink: None,
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
    /// OAuth client registrations per source network: they need no credential.
    pub registrations: governor::DefaultKeyedRateLimiter<ipnet::IpNet>,
    /// Leaked-token reports per address group (`POST /api/tokens/revoke` needs no credential).
    pub reports: governor::DefaultKeyedRateLimiter<std::net::IpAddr>,
    /// Fetches and caches client ID metadata documents.
    pub metadata: client_metadata::MetadataFetcher,
    /// The writer's queue (see `work.rs`).
    pub(crate) writes: work::Writes,
}

impl AppState {
    pub fn new(store: Arc<Store>, config: ServerConfig) -> Self {
        let limiter = AuthLimiter::new(config.auth_failures_per_window, config.auth_failure_window);
        let shares = limits::KeyShares::new(config.per_key_concurrency, config.per_key_wait);
        let rates = limits::KeyRates::new(config.key_requests, config.key_writes);
        let transfers = Arc::new(tokio::sync::Semaphore::new(1));
        let per_minute = std::num::NonZeroU32::new(config.oauth_registrations_per_minute)
            .unwrap_or(std::num::NonZeroU32::MIN);
        let registrations = governor::RateLimiter::keyed(
            governor::Quota::per_minute(per_minute).allow_burst(per_minute),
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
            writes: work::Writes::default(),
        }))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// Who may call a route: what its handler checks before anything else. Each route names its
/// guard in [`routes`], and the integration tests walk that table to show every guarded route
/// refusing a missing, wrong or other kind of credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// Anyone, with no credential: health, leaked-token reports, OAuth discovery,
    /// registration and tokens, and the sign-in page.
    Public,
    /// An admin credential as a bearer token (`admission::Caller`): the owner credential
    /// (`csa_…`, the server's administrator) or a member's (`csm_…`), then the route's
    /// [`Allow`] rule. The admin API.
    Owner,
    /// An MCP key (`cst_…`) as a bearer token (`admission::McpCaller`): the MCP endpoint.
    McpKey,
    /// The owner credential typed into the sign-in form, beside the form's CSRF token.
    OwnerSignIn,
    /// The owner's signed-in session (a cookie), beside the form's CSRF token: the consent.
    OwnerSession,
}

/// Who, beyond the server's administrator (who may call every admin route), may call an admin
/// route: each one names its rule in [`routes`], and the integration tests walk the table for
/// every role. A route without a rule is the administrator's only, and fails those tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allow {
    /// The administrator only: workspaces, imports, a found token revoked anywhere.
    Administrator,
    /// Members with at least this role in the route's workspace (`{ws}`).
    Role(crate::api::Role),
    /// Any member (what they see is theirs): who am I, the workspaces I am in.
    AnyCaller,
}

/// Which browser pages may read a route's answers (CORS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cors {
    /// No page of another origin.
    None,
    /// The origins `--allow-origin` names.
    AllowedOrigins,
    /// Any origin: what browser-based OAuth clients call.
    AnyOrigin,
}

/// One route of the HTTP surface: a method on a path, its guard, and when it is served.
#[derive(Debug)]
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub guard: Guard,
    /// For an admin route: who beyond the administrator may call it.
    pub allow: Option<Allow>,
    /// Served only by a server started with `--oauth`.
    pub oauth: bool,
    pub cors: Cors,
    /// The handler, as a method router for this route's method.
    endpoint: fn(MethodFilter) -> MethodRouter<AppState>,
}

impl Route {
    const fn new(
        method: Method,
        path: &'static str,
        guard: Guard,
        endpoint: fn(MethodFilter) -> MethodRouter<AppState>,
    ) -> Self {
        Self { method, path, guard, allow: None, oauth: false, cors: Cors::None, endpoint }
    }

    const fn allow(mut self, allow: Allow) -> Self {
        self.allow = Some(allow);
        self
    }

    const fn with_oauth(mut self) -> Self {
        self.oauth = true;
        self
    }

    const fn with_cors(mut self, cors: Cors) -> Self {
        self.cors = cors;
        self
    }
}

/// The whole HTTP surface on one screen: the router is built from this table and nothing else,
/// so a route cannot exist without its guard named here.
static ROUTES: &[Route] = &[
    Route::new(Method::GET, "/healthz", Guard::Public, |on| routing::on(on, healthz)),
    Route::new(Method::GET, "/readyz", Guard::Public, |on| routing::on(on, readyz)),
    Route::new(Method::POST, "/api/tokens/revoke", Guard::Public, |on| {
        routing::on(on, leaks::report)
    }),
    Route::new(Method::POST, "/api/mcp", Guard::McpKey, mcp_endpoint)
        .with_cors(Cors::AllowedOrigins),
    Route::new(Method::GET, "/api/admin/workspaces", Guard::Owner, |on| {
        routing::on(on, admin::list_workspaces)
    })
    .allow(Allow::AnyCaller),
    Route::new(Method::POST, "/api/admin/workspaces", Guard::Owner, |on| {
        routing::on(on, admin::create_workspace)
    })
    .allow(Allow::Administrator),
    Route::new(Method::GET, "/api/admin/workspaces/{ws}", Guard::Owner, |on| {
        routing::on(on, admin::get_workspace)
    })
    .allow(Allow::Role(Role::Viewer)),
    Route::new(Method::GET, "/api/admin/mcp-keys", Guard::Owner, |on| {
        routing::on(on, admin::find_keys)
    })
    .allow(Allow::AnyCaller),
    Route::new(Method::GET, "/api/admin/workspaces/{ws}/mcp-keys", Guard::Owner, |on| {
        routing::on(on, admin::list_keys)
    })
    .allow(Allow::Role(Role::Viewer)),
    Route::new(Method::GET, "/api/admin/workspaces/{ws}/journeys", Guard::Owner, |on| {
        routing::on(on, admin::list_journeys)
    })
    .allow(Allow::Role(Role::Viewer)),
    Route::new(Method::POST, "/api/admin/workspaces/{ws}/mcp-keys", Guard::Owner, |on| {
        routing::on(on, admin::create_key)
    })
    .allow(Allow::Role(Role::Editor)),
    Route::new(Method::GET, "/api/admin/workspaces/{ws}/mcp-keys/{id}", Guard::Owner, |on| {
        routing::on(on, admin::get_key)
    })
    .allow(Allow::Role(Role::Viewer)),
    Route::new(
        Method::POST,
        "/api/admin/workspaces/{ws}/mcp-keys/{id}/revoke",
        Guard::Owner,
        |on| routing::on(on, admin::revoke_key),
    )
    .allow(Allow::Role(Role::Editor)),
    Route::new(
        Method::POST,
        "/api/admin/workspaces/{ws}/mcp-keys/{id}/rotate",
        Guard::Owner,
        |on| routing::on(on, admin::rotate_key),
    )
    .allow(Allow::Role(Role::Editor)),
    Route::new(
        Method::POST,
        "/api/admin/workspaces/{ws}/mcp-keys/{id}/narrow",
        Guard::Owner,
        |on| routing::on(on, admin::narrow_key),
    )
    .allow(Allow::Role(Role::Editor)),
    Route::new(Method::GET, "/api/admin/workspaces/{ws}/mcp-keys/{id}/usage", Guard::Owner, |on| {
        routing::on(on, admin::key_usage)
    })
    .allow(Allow::Role(Role::Viewer)),
    Route::new(Method::GET, "/api/admin/workspaces/{ws}/audit", Guard::Owner, |on| {
        routing::on(on, admin::audit)
    })
    .allow(Allow::Role(Role::Viewer)),
    Route::new(Method::GET, "/api/admin/workspaces/{ws}/usage", Guard::Owner, |on| {
        routing::on(on, admin::workspace_usage)
    })
    .allow(Allow::Role(Role::Viewer)),
    Route::new(Method::POST, "/api/admin/mcp-keys/revoke-token", Guard::Owner, |on| {
        routing::on(on, admin::revoke_token)
    })
    .allow(Allow::Administrator),
    Route::new(Method::GET, "/api/admin/workspaces/{ws}/export", Guard::Owner, |on| {
        routing::on(on, transfer::export)
    })
    .allow(Allow::Role(Role::Owner)),
    // Members and invitations (issue 33): owners manage their workspace's; who am I is anyone's;
    // an invitation is redeemed without a credential (its code is the credential).
    Route::new(Method::GET, "/api/admin/whoami", Guard::Owner, |on| {
        routing::on(on, members::whoami)
    })
    .allow(Allow::AnyCaller),
    Route::new(Method::GET, "/api/admin/workspaces/{ws}/members", Guard::Owner, |on| {
        routing::on(on, members::list)
    })
    .allow(Allow::Role(Role::Owner)),
    Route::new(Method::POST, "/api/admin/workspaces/{ws}/invitations", Guard::Owner, |on| {
        routing::on(on, members::invite)
    })
    .allow(Allow::Role(Role::Owner)),
    Route::new(Method::GET, "/api/admin/workspaces/{ws}/invitations", Guard::Owner, |on| {
        routing::on(on, members::invitations)
    })
    .allow(Allow::Role(Role::Owner)),
    Route::new(
        Method::POST,
        "/api/admin/workspaces/{ws}/invitations/{prefix}/withdraw",
        Guard::Owner,
        |on| routing::on(on, members::withdraw),
    )
    .allow(Allow::Role(Role::Owner)),
    Route::new(
        Method::POST,
        "/api/admin/workspaces/{ws}/members/{name}/role",
        Guard::Owner,
        |on| routing::on(on, members::change_role),
    )
    .allow(Allow::Role(Role::Owner)),
    Route::new(
        Method::POST,
        "/api/admin/workspaces/{ws}/members/{name}/remove",
        Guard::Owner,
        |on| routing::on(on, members::remove),
    )
    .allow(Allow::Role(Role::Owner)),
    // Webhooks (issue 35): owners manage their workspace's.
    Route::new(Method::GET, "/api/admin/workspaces/{ws}/webhooks", Guard::Owner, |on| {
        routing::on(on, webhooks::list)
    })
    .allow(Allow::Role(Role::Owner)),
    Route::new(Method::POST, "/api/admin/workspaces/{ws}/webhooks", Guard::Owner, |on| {
        routing::on(on, webhooks::add)
    })
    .allow(Allow::Role(Role::Owner)),
    Route::new(
        Method::POST,
        "/api/admin/workspaces/{ws}/webhooks/{id}/remove",
        Guard::Owner,
        |on| routing::on(on, webhooks::remove),
    )
    .allow(Allow::Role(Role::Owner)),
    Route::new(Method::POST, "/api/admin/workspaces/{ws}/webhooks/{id}/test", Guard::Owner, |on| {
        routing::on(on, webhooks::test)
    })
    .allow(Allow::Role(Role::Owner)),
    Route::new(Method::GET, "/api/admin/workspaces/{ws}/webhook-deliveries", Guard::Owner, |on| {
        routing::on(on, webhooks::deliveries)
    })
    .allow(Allow::Role(Role::Owner)),
    // The workspace's key policy (issue 34): every member reads it (editors make keys under
    // it), owners change it.
    Route::new(Method::GET, "/api/admin/workspaces/{ws}/policy", Guard::Owner, |on| {
        routing::on(on, policy::show)
    })
    .allow(Allow::Role(Role::Viewer)),
    Route::new(Method::POST, "/api/admin/workspaces/{ws}/policy", Guard::Owner, |on| {
        routing::on(on, policy::set)
    })
    .allow(Allow::Role(Role::Owner)),
    Route::new(Method::POST, "/api/admin/invitations/redeem", Guard::Public, |on| {
        routing::on(on, members::redeem)
    }),
    Route::new(Method::POST, "/api/admin/imports", Guard::Owner, |on| {
        routing::on(on, transfer::import)
    })
    .allow(Allow::Administrator),
    // OAuth (`--oauth`). Discovery, registration and the token endpoint answer pages of any
    // origin (browser-based clients call them); the sign-in and consent pages are not for
    // scripts and have no CORS.
    Route::new(Method::GET, PROTECTED_RESOURCE_PATH, Guard::Public, |on| {
        routing::on(on, oauth::protected_resource)
    })
    .with_oauth()
    .with_cors(Cors::AnyOrigin),
    Route::new(Method::GET, oauth::AUTHORIZATION_SERVER_PATH, Guard::Public, |on| {
        routing::on(on, oauth::authorization_server)
    })
    .with_oauth()
    .with_cors(Cors::AnyOrigin),
    Route::new(Method::POST, "/oauth/register", Guard::Public, |on| {
        routing::on(on, oauth::register)
    })
    .with_oauth()
    .with_cors(Cors::AnyOrigin),
    Route::new(Method::POST, "/oauth/token", Guard::Public, |on| routing::on(on, oauth::token))
        .with_oauth()
        .with_cors(Cors::AnyOrigin),
    Route::new(Method::GET, "/oauth/authorize", Guard::Public, |on| {
        routing::on(on, oauth::authorize)
    })
    .with_oauth(),
    Route::new(Method::POST, "/oauth/authorize", Guard::OwnerSession, |on| {
        routing::on(on, oauth::decide)
    })
    .with_oauth(),
    Route::new(Method::POST, "/oauth/login", Guard::OwnerSignIn, |on| {
        routing::on(on, oauth::login)
    })
    .with_oauth(),
];

/// Every route the server can serve, with its guard (the `--oauth` ones marked).
pub fn routes() -> &'static [Route] {
    ROUTES
}

/// `POST /api/mcp`. Other methods are refused after the key is checked (a bad token is a 401
/// whatever the method). Answers vary with Accept-Encoding whether or not this one was
/// compressed; level 3: the tool list shrinks ~5x for a third of the default level's CPU.
fn mcp_endpoint(on: MethodFilter) -> MethodRouter<AppState> {
    let compression = CompressionLayer::new()
        .gzip(true)
        .quality(tower_http::CompressionLevel::Precise(3))
        .compress_when(SizeAbove::new(COMPRESS_ABOVE_BYTES).and(NotForContentType::SSE));
    routing::on(on, mcp::handle)
        .fallback(mcp::method_not_allowed)
        .layer::<_, std::convert::Infallible>(SetResponseHeaderLayer::if_not_present(
            header::VARY,
            HeaderValue::from_static("Accept-Encoding"),
        ))
        .layer(compression)
}

/// The router of [`routes`] (the `--oauth` ones when the server is started so).
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for route in routes().iter().filter(|route| state.config.oauth || !route.oauth) {
        let filter = MethodFilter::try_from(route.method.clone())
            .expect("the route table names methods a method router can serve");
        let mut endpoint = (route.endpoint)(filter);
        let cors = match route.cors {
            Cors::None => None,
            Cors::AllowedOrigins => cors(&state.config.allowed_origins),
            Cors::AnyOrigin => Some(any_origin_cors()),
        };
        if let Some(cors) = cors {
            endpoint = endpoint.layer(cors);
        }
        if route.guard == Guard::Owner {
            // What `admission::Caller` checks the caller's role against.
            endpoint = endpoint.layer(axum::Extension(admission::RouteRule(route.allow)));
        }
        router = router.route(route.path, endpoint);
    }
    let mut router = router
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

/// CORS for any origin: the OAuth endpoints that browser-based clients call.
fn any_origin_cors() -> tower_http::cors::CorsLayer {
    use tower_http::cors::{Any, CorsLayer};
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
        .max_age(Duration::from_secs(600))
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
            .allow_methods([Method::POST])
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
    let webhooks = tokio::spawn(webhooks::deliver(state.clone()));
    let sink = state.config.audit_sink.clone();
    let streamer = sink.clone().map(|sink| tokio::spawn(sink::stream(state.clone(), sink)));
    let releaser = state.clone();
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
    // A delivery cut short is sent again when its lease runs out (at least once).
    webhooks.abort();
    // So is a batch of the audit stream; the sink's lease is given up so another replica
    // sends at once.
    if let Some(streamer) = streamer {
        streamer.abort();
    }
    // The last flush runs whatever happened to the connections, so no recorded use is lost.
    // On a thread of its own, not behind blocking tasks still waiting on a stalled database,
    // and for at most LAST_FLUSH_WAIT: a replica stops when told to, whatever its database.
    let (done, flushed) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let result = store.access().flush_usage().and_then(|_| store.access().flush_activity());
        if let Some(sink) = sink {
            sink::release(&releaser, &sink);
        }
        // The store is let go before `run` returns: a caller that opens the database again
        // next (a test's restart) finds its lock free.
        drop((store, releaser));
        let _ = done.send(result);
    });
    match tokio::time::timeout(LAST_FLUSH_WAIT, flushed).await {
        Ok(Ok(result)) => {
            result?;
            Ok(())
        }
        Ok(Err(_)) => anyhow::bail!("the last flush of last-used times stopped unexpectedly"),
        Err(_) => anyhow::bail!(
            "stopped without writing the last uses of keys: the database did not answer within              {} s (check it with `custory-mcp status`)",
            LAST_FLUSH_WAIT.as_secs()
        ),
    }
}

/// How long the last flush at shutdown may take (a statement's limit).
const LAST_FLUSH_WAIT: Duration = Duration::from_secs(2);

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
    // Pruning goes by the process's clock: a test that moves the store's clock keeps its
    // records. What keys are due for (expiry warnings, the policy's revoke-unused rule) goes
    // by the store's clock, which the tests move.
    let mut pruned: Option<std::time::Instant> = None;
    let mut keys_due: Option<chrono::DateTime<chrono::Utc>> = None;
    loop {
        tick.tick().await;
        let shared = state.clone();
        let now = state.store.now();
        let keys_hourly = keys_due.is_none_or(|due| now >= due);
        if keys_hourly {
            keys_due = Some(now + chrono::Duration::hours(1));
        }
        let prune = pruned.is_none_or(|at| at.elapsed() >= Duration::from_secs(3600));
        if prune {
            pruned = Some(std::time::Instant::now());
        }
        let chores = tokio::task::spawn_blocking(move || {
            if let Err(error) = shared.store.access().flush_usage() {
                tracing::warn!(%error, "could not write last-used times; will retry");
            }
            if let Err(error) = shared.store.access().flush_activity() {
                tracing::warn!(%error, "could not write the record of calls; will retry");
            }
            if prune {
                let now = shared.store.now();
                let calls_before = now - shared.config.audit_retention.duration();
                let totals_before = now - shared.config.usage_retention.duration();
                match shared.store.access().prune_activity(calls_before, totals_before) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(rows = n, "deleted call records past their retention"),
                    Err(error) => tracing::warn!(%error, "could not prune the record of calls"),
                }
                match shared.store.access().prune_webhook_deliveries(calls_before) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(rows = n, "deleted webhook deliveries past retention"),
                    Err(error) => tracing::warn!(%error, "could not prune webhook deliveries"),
                }
                // An ended invitation is kept a while so that redeeming it says why it fails.
                match shared
                    .store
                    .access()
                    .prune_invitations(now - Duration::from_secs(30 * 86_400))
                {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(rows = n, "deleted invitations ended 30 days ago"),
                    Err(error) => tracing::warn!(%error, "could not delete ended invitations"),
                }
            }
            if keys_hourly {
                match shared.store.access().announce_key_expiries() {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(keys = n, "announced key expiries"),
                    Err(error) => tracing::warn!(%error, "could not announce key expiries"),
                }
            }
            if !shared.store.access().keys_in_memory()
                && let Err(error) = shared.store.access().load_owner_credentials()
            {
                tracing::warn!(%error, "could not read the owner credential; will retry");
            }
            // The workspace policies' revoke-unused rule, hourly by the store's clock.
            if keys_hourly {
                match shared.store.access().revoke_unused_keys() {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(keys = n, "revoked keys unused past their policy"),
                    Err(error) => tracing::warn!(%error, "could not revoke unused keys"),
                }
            }
            shared.rates.forget_idle();
            shared.shares.forget_idle();
            shared.store.access().forget_idle_keys();
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

/// An unknown path: 404. Without `--oauth`, the paths an OAuth client tries after the MCP
/// endpoint's 401 (discovery, registration, authorization, token) say why there is no sign-in
/// and what to do about the refused key, in the OAuth error shape a client shows
/// (`error_description`); still 404, so a client stops looking as it would anyway.
async fn not_found(
    axum::extract::State(state): axum::extract::State<AppState>,
    uri: axum::http::Uri,
) -> axum::response::Response {
    if !state.config.oauth && is_oauth_path(uri.path()) {
        let body = serde_json::json!({
            "error": "access_denied",
            "error_description": KEY_REFUSED_WITHOUT_OAUTH,
        });
        return (
            StatusCode::NOT_FOUND,
            [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
            Json(body),
        )
            .into_response();
    }
    ApiError::not_found("not_found", "no such endpoint; the MCP endpoint is POST /api/mcp")
        .into_response()
}

/// What a client that falls back to OAuth after a 401 is told when the server has no OAuth.
pub const KEY_REFUSED_WITHOUT_OAUTH: &str = "The Custory MCP server refused this client's key \
     (revoked, expired or mistyped) and has no OAuth sign-in (it runs without --oauth). Give \
     the client a new key: `custory-mcp keys create --name NAME --save`, then `custory-mcp \
     config CLIENT --key NAME --write` (or ask the workspace's admin for one).";

/// Whether `path` is one an OAuth client tries on its own (RFC 9728 and RFC 8414 discovery,
/// with or without a path suffix; OpenID discovery; the endpoints it assumes when discovery
/// finds nothing).
fn is_oauth_path(path: &str) -> bool {
    let path = path.trim_end_matches('/');
    [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ]
    .iter()
    .any(|well_known| path == *well_known || path.starts_with(&format!("{well_known}/")))
        || path.ends_with("/.well-known/openid-configuration")
        || ["/register", "/authorize", "/token"]
            .iter()
            .any(|endpoint| path == *endpoint || path == format!("/oauth{endpoint}"))
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this path",
    )
}
