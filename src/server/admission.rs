//! Who may come in, decided before a body is read: axum extractors for both APIs, with one
//! rejection type ([`ApiError`]).
//!
//! - [`Caller`]: the admin API's guard (Host, then the owner credential `csa_…` or a member's
//!   `csm_…`, then the route's rule for the caller's role).
//! - [`McpCaller`]: the MCP endpoint's (Origin, Host, an MCP key `cst_…`, `Content-Type`,
//!   `Accept`, `MCP-Protocol-Version`), in that order.
//! - [`McpKey`]: Origin, Host and the MCP key only, for the methods the endpoint does not offer,
//!   so a bad token is a 401 whatever the method.
//!
//! Failed authentications count against the client's address ([`super::AuthLimiter`]); past the
//! limit the answer is 429 with `Retry-After`, and nothing more is looked up or recorded.

use crate::text::shell_quote;
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, ORIGIN};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};

use super::AppState;
use super::error::{ApiError, retry_seconds};
use crate::api::{Author, AuthorKind, KeyStatus, Role};
use crate::mcp::protocol::{
    ACCEPT_BOTH, DEFAULT_VERSION, ErrorCode, METHOD_HEADER, Mirror, NAME_HEADER, RpcError,
    VERSION_HEADER, is_modern, supported_version,
};
use crate::store::access::{KeyIdentity, NewEvent};
use crate::token::{PlainToken, TokenFormatError, TokenHash, TokenKind};

/// Why a request's `Authorization` header does not carry a usable token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    #[error("no Authorization header was sent")]
    Missing,
    #[error("the Authorization header is not of the form `Bearer <token>`")]
    NotBearer,
    #[error("{0}")]
    Format(TokenFormatError),
}

/// The well-formed token of `Authorization: Bearer <token>`. The checksum is verified here,
/// so a mistyped or truncated token never reaches the database.
pub fn bearer_token(headers: &HeaderMap) -> Result<PlainToken, BearerError> {
    let value = headers.get(AUTHORIZATION).ok_or(BearerError::Missing)?;
    let value = value.to_str().map_err(|_| BearerError::NotBearer)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(BearerError::NotBearer)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(BearerError::NotBearer);
    }
    PlainToken::parse(token).map_err(BearerError::Format)
}

/// Which API a refusal belongs to: it decides the body's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Surface {
    Admin,
    Mcp,
}

impl Surface {
    fn error(self, status: StatusCode, code: &'static str, message: String) -> ApiError {
        match self {
            Self::Admin => ApiError::new(status, code, message),
            Self::Mcp => {
                let rpc = match status {
                    StatusCode::UNAUTHORIZED | StatusCode::TOO_MANY_REQUESTS => {
                        ErrorCode::Unauthorized
                    }
                    StatusCode::SERVICE_UNAVAILABLE => ErrorCode::InternalError,
                    _ => ErrorCode::InvalidRequest,
                };
                let refusal = ApiError::mcp(status, rpc, message);
                if status == StatusCode::FORBIDDEN {
                    // Which refusal, for a program (`custory-mcp test` gives each its own
                    // remedy): `{"reason": "address_not_allowed"}`.
                    let reason = serde_json::json!({ "reason": code });
                    ApiError { rpc_data: Some(Box::new(reason)), ..refusal }
                } else {
                    refusal
                }
            }
        }
    }
}

/// The client's address (`client_addr.rs`: the peer, or whom a trusted proxy forwards).
fn peer(parts: &Parts) -> Option<IpAddr> {
    parts.extensions.get::<super::client_addr::ClientAddr>().map(|c| c.0)
}

/// 403 unless the `Host` header names this server (DNS rebinding).
fn check_host(state: &AppState, headers: &HeaderMap, surface: Surface) -> Result<(), ApiError> {
    if state.config.host_allowed(headers) {
        return Ok(());
    }
    let message = match surface {
        Surface::Admin => "the Host header does not name this server (start it with --allow-host)",
        Surface::Mcp => {
            "Forbidden: the Host header does not name this server (start the server with \
             --allow-host to permit that name)"
        }
    };
    Err(surface.error(StatusCode::FORBIDDEN, "host_not_allowed", message.to_owned()))
}

/// [`failed_auth`] for the admin API's surface.
pub(super) fn failed_auth_admin(state: &AppState, ip: Option<IpAddr>, message: &str) -> ApiError {
    failed_auth(state, ip, Surface::Admin, message)
}

/// The answer to a failed authentication: 401 with `message`, or 429 once the address is over
/// its limit.
fn failed_auth(state: &AppState, ip: Option<IpAddr>, surface: Surface, message: &str) -> ApiError {
    failed_auth_with(state, ip, surface, message, true)
}

/// 429 for an address over its failed-authentication limit, with `Retry-After`.
fn too_many_failures(surface: Surface, wait: std::time::Duration) -> ApiError {
    metrics::counter!("custory_rate_limited_total", "reason" => "auth_failures").increment(1);
    let message = format!(
        "too many failed authentications from this address; retry in {} s",
        retry_seconds(wait)
    );
    surface.error(StatusCode::TOO_MANY_REQUESTS, "too_many_failures", message).retry_after(wait)
}

/// [`failed_auth`]; `token_sent` says whether the request carried credentials at all: RFC 6750
/// §3.1 has the challenge of a request without any carry no error code.
fn failed_auth_with(
    state: &AppState,
    ip: Option<IpAddr>,
    surface: Surface,
    message: &str,
    token_sent: bool,
) -> ApiError {
    let surface_name = match surface {
        Surface::Admin => "admin",
        Surface::Mcp => "mcp",
    };
    metrics::counter!("custory_auth_failures_total", "surface" => surface_name).increment(1);
    if let Some(wait) = ip.and_then(|ip| state.limiter.failed(ip)) {
        return too_many_failures(surface, wait);
    }
    let error = surface.error(StatusCode::UNAUTHORIZED, "unauthorized", message.to_owned());
    match surface {
        Surface::Admin => error,
        // RFC 6750 §3: the challenge, with the reason a client can show.
        Surface::Mcp if token_sent => error.challenge(format!(
            "Bearer realm=\"custory\", error=\"invalid_token\", error_description=\"{}\"",
            message.replace(['"', '\\'], "'")
        )),
        Surface::Mcp => error.challenge("Bearer realm=\"custory\"".to_owned()),
    }
}

// ---------------------------------------------------------------------------------------------
// The admin API

/// Who calls an admin route, and their role in the workspace the route names: the server's
/// administrator (the owner credential, `csa_…`), or a member (their personal credential,
/// `csm_…`, looked up in the database on every request, so a removal is in force on the next
/// one through every replica). Extracting it also enforces the route's rule
/// ([`super::Allow`], set by the router from the route table), before the body is read.
#[derive(Debug, Clone)]
pub struct Caller {
    pub who: Who,
    /// A member's role in the route's workspace (`None` for the administrator, or a route
    /// without a workspace).
    pub role: Option<Role>,
}

/// The admin API's callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    Administrator,
    Member { id: String, name: String },
}

/// The admin handlers' name for [`Caller`].
pub type Owner = Caller;

impl Caller {
    /// Who the audit trail and a new key's `created_by` name.
    pub fn author(&self) -> Author {
        match &self.who {
            Who::Administrator => Author::of(AuthorKind::Administrator),
            Who::Member { id, name } => Author::member(AuthorKind::Member, id, name),
        }
    }

    /// The member's id (`None`: the administrator).
    pub fn member_id(&self) -> Option<&str> {
        match &self.who {
            Who::Administrator => None,
            Who::Member { id, .. } => Some(id),
        }
    }

    /// Whether the caller may rotate or revoke `key`: the administrator and owners any key,
    /// an editor only the keys they created.
    pub fn may_manage(&self, key: &crate::api::Key) -> Result<(), ApiError> {
        match (&self.who, self.role) {
            (Who::Administrator, _) | (_, Some(Role::Owner)) => Ok(()),
            (Who::Member { id, .. }, _) if key.created_by.member_id.as_deref() == Some(id) => {
                Ok(())
            }
            _ => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "not_your_key",
                format!(
                    "the key {:?} was created by {}; an editor rotates and revokes only the keys \
                     they created (ask an owner of the workspace)",
                    key.name,
                    key.created_by
                        .name
                        .clone()
                        .unwrap_or_else(|| format!("the {}", key.created_by.kind))
                ),
            )),
        }
    }
}

/// The rule the router attached to the route (see `super::router`); a route without one is
/// the administrator's only.
#[derive(Debug, Clone, Copy)]
pub(super) struct RouteRule(pub Option<super::Allow>);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        check_host(state, &parts.headers, Surface::Admin)?;
        let ip = peer(parts);
        let token = bearer_token(&parts.headers).map_err(|error| {
            let message = format!(
                "{error}; the admin API needs the owner credential (csa_…) or a member's \
                 credential (csm_…): run `custory-mcp login`"
            );
            failed_auth(state, ip, Surface::Admin, &message)
        })?;
        let rule = parts.extensions.get::<RouteRule>().and_then(|rule| rule.0);
        // The route's workspace, for a member (their role there decides).
        let mut workspace = None;
        let caller = match token.kind() {
            TokenKind::Mcp => {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "mcp_key_not_allowed",
                    "MCP keys (cst_…) only work at /api/mcp; the admin API needs the owner \
                     credential (csa_…): run `custory-mcp login`",
                ));
            }
            TokenKind::Invitation => {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "invitation_not_credential",
                    "an invitation code (csi_…) is no credential: redeem it with `custory-mcp \
                     login --invite`, which saves your own credential",
                ));
            }
            TokenKind::Owner => {
                if !state.store.access().is_owner_credential(&token.hash()) {
                    return Err(failed_auth(
                        state,
                        ip,
                        Surface::Admin,
                        "the owner credential is not valid for this server (was it reset?); run \
                         `custory-mcp login`, or `custory-mcp serve --reset-owner-credential` on \
                         the server machine",
                    ));
                }
                Caller { who: Who::Administrator, role: None }
            }
            TokenKind::Member => {
                let slug = workspace_param(parts, state).await;
                workspace = slug.clone();
                let hash = token.hash();
                let found = super::work::read::<_, ApiError>(state, move |store| {
                    Ok(store.access().authenticate_member(&hash, slug.as_deref())?)
                })
                .await?;
                let Some(member) = found else {
                    return Err(failed_auth(
                        state,
                        ip,
                        Surface::Admin,
                        "this member credential is not valid for this server (were you removed \
                         from the workspace?); ask an owner for a new invitation, then run \
                         `custory-mcp login --invite`",
                    ));
                };
                Caller { who: Who::Member { id: member.id, name: member.name }, role: member.role }
            }
        };
        caller.allowed(rule, parts, workspace.as_deref())?;
        Ok(caller)
    }
}

impl Caller {
    /// Whether the route's rule lets this caller in (the administrator: always).
    fn allowed(
        &self,
        rule: Option<super::Allow>,
        parts: &Parts,
        workspace: Option<&str>,
    ) -> Result<(), ApiError> {
        use super::Allow;
        let Who::Member { name, .. } = &self.who else { return Ok(()) };
        match (rule, self.role) {
            (Some(Allow::AnyCaller), _) => Ok(()),
            (None | Some(Allow::Administrator), _) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "administrator_only",
                format!(
                    "{} {} is for the server's administrator (the owner credential), not for \
                     members; {name} can run `custory-mcp whoami` to see what they may do",
                    parts.method,
                    parts.uri.path()
                ),
            )),
            // No role in the workspace: as if it did not exist (nothing says which do).
            (Some(Allow::Role(_)), None) => Err(ApiError::not_found(
                "workspace_not_found",
                "no workspace of yours has this slug; run `custory-mcp whoami` to list yours",
            )),
            (Some(Allow::Role(needed)), Some(role)) if role.includes(needed) => Ok(()),
            (Some(Allow::Role(needed)), Some(role)) => {
                // The command as an owner runs it: each word quoted, the workspace named.
                let mut words = vec!["custory-mcp".to_owned()];
                if let Some(slug) = workspace {
                    words.extend(["--workspace".to_owned(), shell_quote(slug)]);
                }
                words.extend(["members role".to_owned(), shell_quote(name), needed.to_string()]);
                Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "role_required",
                    format!(
                        "this needs the {needed} role in the workspace; {name}'s role is {role}, \
                         which may {}. An owner can run `{}`",
                        role.may(),
                        words.join(" ")
                    ),
                ))
            }
        }
    }
}

/// The `{ws}` of the route's path, if it has one.
async fn workspace_param(parts: &mut Parts, state: &AppState) -> Option<String> {
    let params = axum::extract::RawPathParams::from_request_parts(parts, state).await.ok()?;
    params.iter().find(|(name, _)| *name == "ws").map(|(_, value)| value.to_owned())
}

// ---------------------------------------------------------------------------------------------
// The MCP endpoint

/// An MCP key that may use the endpoint: Origin and Host checked, token active.
#[derive(Debug, Clone)]
pub struct McpKey {
    pub identity: Arc<KeyIdentity>,
    pub ip: Option<IpAddr>,
    /// The presented token's hash, to look the key up again while the request runs.
    pub token: TokenHash,
}

impl FromRequestParts<AppState> for McpKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(origin) = parts.headers.get(ORIGIN) {
            // Allowed: an origin the owner allowed, or this server's own (a page it served, or a
            // client that names where it connects). A rebinding page's Host is refused below.
            let own = public_origin(state, &parts.headers);
            let allowed = origin.to_str().is_ok_and(|o| {
                state.config.allowed_origins.iter().any(|a| a.eq_ignore_ascii_case(o))
                    || own.as_deref().is_some_and(|own| own.eq_ignore_ascii_case(o))
            });
            if !allowed {
                return Err(Surface::Mcp.error(
                    StatusCode::FORBIDDEN,
                    "origin_not_allowed",
                    "Forbidden: this Origin is not allowed to call the MCP endpoint (start the \
                     server with --allow-origin to permit it)"
                        .into(),
                ));
            }
        }
        check_host(state, &parts.headers, Surface::Mcp)?;
        let ip = peer(parts);
        let (identity, token) = authenticate(state, &parts.headers, ip)
            .await
            .map_err(|error| offer_oauth(state, &parts.headers, error))?;
        if !identity.allows_address(ip) {
            return Err(refuse_address(state, &identity, ip));
        }
        check_policy(state, &identity).await?;
        let identity = narrowed(&parts.headers, identity)?;
        Ok(Self { identity, ip, token })
    }
}

/// The key as this request's headers narrow it: `X-MCP-Tools` (names and groups, as
/// `keys create --tools`) keeps only the tools both it and the key allow, `X-MCP-Readonly:
/// true` takes the write tools away. Headers never widen: a tool the key lacks stays out,
/// `X-MCP-Readonly: false` leaves a read-only key read-only. Without them, the key as it is.
fn narrowed(headers: &HeaderMap, identity: Arc<KeyIdentity>) -> Result<Arc<KeyIdentity>, ApiError> {
    let tools = headers.get("x-mcp-tools");
    let readonly = headers.get("x-mcp-readonly");
    if tools.is_none() && readonly.is_none() {
        return Ok(identity);
    }
    let bad = |message: String| Surface::Mcp.error(StatusCode::BAD_REQUEST, "bad_header", message);
    let mut access = identity.access;
    if let Some(value) = readonly {
        match value.to_str().map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            Ok("true" | "1" | "yes") => access = crate::api::Access::ReadOnly,
            Ok("false" | "0" | "no") => {}
            _ => return Err(bad("X-MCP-Readonly must be true or false".into())),
        }
    }
    let mut scopes = identity.scopes.clone();
    if let Some(value) = tools {
        let names: Vec<String> = value
            .to_str()
            .map_err(|_| bad("X-MCP-Tools must be plain text: tool names and groups".into()))?
            .split(',')
            .map(str::to_owned)
            .collect();
        let asked = crate::mcp::expand_tool_names(&names)
            .map_err(|message| bad(format!("X-MCP-Tools: {message}")))?;
        let kept = asked.into_iter().filter(|name| scopes.allows_tool(name)).collect();
        scopes.tools = Some(kept);
    }
    Ok(Arc::new(KeyIdentity { access, scopes, ..KeyIdentity::clone(&identity) }))
}

/// 403 for a key used from outside the networks it is limited to (`keys create --allow-ip`),
/// recorded in the audit trail. The holder has the token, so saying why leaks nothing.
/// Counted as a failed authentication of the address: past the limit, 429 and nothing more
/// recorded (a flood must not turn into database writes).
fn refuse_address(state: &AppState, identity: &Arc<KeyIdentity>, ip: Option<IpAddr>) -> ApiError {
    let from = ip.map_or_else(|| "an unknown address".to_owned(), |ip| ip.to_string());
    let counted = failed_auth(state, ip, Surface::Mcp, "address not allowed");
    if counted.status == StatusCode::TOO_MANY_REQUESTS {
        return counted;
    }
    let store = Arc::clone(&state.store);
    let identity = Arc::clone(identity);
    let detail = format!("refused a call from {from}, outside the key's allowed addresses");
    tokio::task::spawn_blocking(move || {
        let event = NewEvent {
            workspace_id: identity.workspace_id,
            kind: crate::api::EventKind::AuthRejected,
            key_id: Some(&identity.key_id),
            key_prefix: Some(&identity.key_prefix),
            detail: &detail,
            actor: &Author::of(AuthorKind::Server),
        };
        if let Err(error) = store.access().record_event(&event) {
            tracing::warn!(%error, "could not record a refused address");
        }
    });
    Surface::Mcp.error(
        StatusCode::FORBIDDEN,
        "address_not_allowed",
        format!(
            "Forbidden: this MCP key may not be used from {from}; it is limited to some \
             addresses (custory-mcp keys show KEY lists them)"
        ),
    )
}

/// An MCP request that may be answered: an [`McpKey`], media types accepted, and the protocol
/// version it speaks.
#[derive(Debug, Clone)]
pub struct McpCaller {
    pub key: McpKey,
    pub version: &'static str,
    /// `Mcp-Method` and `Mcp-Name`, as sent.
    pub mirror: Mirror,
}

impl FromRequestParts<AppState> for McpCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = McpKey::from_request_parts(parts, state).await?;
        let headers = &parts.headers;
        let refuse = |status: StatusCode, message: String| {
            Surface::Mcp.error(status, "mcp_refused", message)
        };
        if !is_json_content_type(headers) {
            return Err(refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Unsupported Media Type: Content-Type must be application/json".into(),
            ));
        }
        if !accepts_json_and_sse(headers) {
            return Err(refuse(
                StatusCode::NOT_ACCEPTABLE,
                "Not Acceptable: the Accept header must list both application/json and \
                 text/event-stream"
                    .into(),
            ));
        }
        let version = match headers.get(VERSION_HEADER).map(|v| v.to_str()) {
            None => DEFAULT_VERSION,
            Some(Ok(asked)) if let Some(known) = supported_version(asked) => known,
            Some(asked) => {
                let shown = asked.unwrap_or("(not text)");
                return Err(ApiError::rpc(
                    StatusCode::BAD_REQUEST,
                    RpcError::unsupported_version(shown),
                ));
            }
        };
        // The modern revision mirrors the body's method and name in headers; the body is
        // checked against them once it is read (`mcp::Session`). Earlier revisions have no such
        // headers, so whatever a client sends under those names there is not read.
        let mirrored = |name: &str| -> Result<Option<String>, ApiError> {
            let mismatch = |why: &str| {
                ApiError::rpc(
                    StatusCode::BAD_REQUEST,
                    RpcError::new(ErrorCode::HeaderMismatch, format!("Header mismatch: {why}")),
                )
            };
            let mut values = headers.get_all(name).iter();
            let Some(value) = values.next() else { return Ok(None) };
            if values.next().is_some() {
                return Err(mismatch(&format!("the {name} header is sent more than once")));
            }
            match value.to_str() {
                Ok(value) => Ok(Some(value.to_owned())),
                Err(_) => Err(mismatch(&format!("the {name} header is not visible ASCII"))),
            }
        };
        let mirror = if is_modern(version) {
            Mirror { method: mirrored(METHOD_HEADER)?, name: mirrored(NAME_HEADER)? }
        } else {
            Mirror::default()
        };
        Ok(Self { key, version, mirror })
    }
}

/// What to say when the `Authorization` header holds a placeholder instead of a token: a
/// variable the client did not expand (`Bearer ${CUSTORY_MCP_TOKEN}`) or a template never
/// filled in (`Bearer <token>`).
fn placeholder(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let token = value.split_once(' ').map_or(value, |(_, token)| token.trim());
    let variable = token
        .strip_prefix("${")
        .and_then(|rest| rest.strip_suffix('}'))
        .map(|name| name.trim_start_matches("env:"))
        .or_else(|| token.strip_prefix('$'))
        .filter(|name| {
            !name.is_empty()
                && name.len() <= 64
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        });
    if let Some(name) = variable {
        return Some(format!(
            "the Authorization header holds ${{{name}}} unexpanded: the environment variable \
             {name} was not set in the environment the MCP client started from. Set it (export \
             {name}=cst_...) where the client starts, then restart the client"
        ));
    }
    let template = (token.starts_with('<') && token.ends_with('>'))
        || token.eq_ignore_ascii_case("token")
        || token.to_ascii_uppercase().starts_with("YOUR_");
    template.then(|| {
        "the Authorization header holds a placeholder, not a token: it was never replaced. Put \
         the MCP key there (Bearer cst_...), or run `custory-mcp config CLIENT` for a config \
         that reads it from the environment"
            .to_owned()
    })
}

/// Resolves the bearer token to an active MCP key. A key in SQLite's key cache is answered from
/// memory; any other lookup runs on the blocking pool, not on an async worker, and only when
/// the address is not over its failed-authentication limit or the key was found valid lately
/// ([`super::AuthLimiter::blocked`], [`super::AuthLimiter::vouch`]).
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    ip: Option<IpAddr>,
) -> Result<(Arc<KeyIdentity>, TokenHash), ApiError> {
    let refuse = |message: &str| failed_auth(state, ip, Surface::Mcp, message);
    let token = bearer_token(headers).map_err(|error| match error {
        BearerError::Missing => failed_auth_with(
            state,
            ip,
            Surface::Mcp,
            "missing bearer token: send Authorization: Bearer cst_... (an MCP key)",
            false,
        ),
        other => match placeholder(headers) {
            Some(message) => refuse(&message),
            None => refuse(&other.to_string()),
        },
    })?;
    if token.kind() == TokenKind::Owner {
        return Err(refuse(
            "owner credentials (csa_) are not accepted at the MCP endpoint: use an MCP key \
             (custory-mcp keys create)",
        ));
    }
    if token.kind() != TokenKind::Mcp {
        return Err(refuse(
            "member credentials (csm_) and invitation codes (csi_) are not accepted at the MCP \
             endpoint: use an MCP key (custory-mcp keys create)",
        ));
    }
    let hash = token.hash();
    // A key in use is in memory (SQLite's key cache); any other is read off the workers,
    // unless the address is over its limit: then only a key this server found valid lately
    // is looked up, and anything else is refused without a query.
    let found = if let Some(key) = state.store.access().cached_key(&hash) {
        Ok(Some(key))
    } else if let Some(wait) = ip.and_then(|ip| state.limiter.blocked(ip))
        && !state.limiter.is_vouched(&hash)
    {
        return Err(too_many_failures(Surface::Mcp, wait));
    } else {
        let (store, lookup) = (Arc::clone(&state.store), hash);
        match tokio::task::spawn_blocking(move || store.access().authenticate_key(&lookup)).await {
            Ok(found) => found,
            Err(error) => Err(crate::store::StoreError::Invalid(error.to_string())),
        }
    };
    if let Ok(Some(key)) = &found
        && key.status == KeyStatus::Active
        && !state.store.access().keys_in_memory()
    {
        state.limiter.vouch(&hash);
    }
    let key = match found {
        Ok(Some(key)) => key,
        Ok(None) => {
            return Err(refuse(
                "unknown MCP key: this server never issued it (or its database was replaced)",
            ));
        }
        Err(error) => {
            tracing::error!(%error, "authentication lookup failed");
            return Err(Surface::Mcp.error(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                "the server could not check the key; try again".into(),
            ));
        }
    };
    let reason = match key.status {
        KeyStatus::Active if key.importing => {
            return Err(Surface::Mcp.error(
                StatusCode::SERVICE_UNAVAILABLE,
                "being_imported",
                "this key's workspace is being imported into; try again when the import has \
                 finished"
                    .into(),
            ));
        }
        KeyStatus::Active => return Ok((key.identity, hash)),
        KeyStatus::Revoked => {
            "this MCP key was revoked: create a new one (custory-mcp keys create)"
        }
        KeyStatus::Expired => "this MCP key has expired: rotate it (custory-mcp keys rotate)",
    };
    let refusal = refuse(reason);
    if refusal.status == StatusCode::TOO_MANY_REQUESTS {
        // Past the limit nothing more is recorded: a flood must not turn into database writes.
        return Err(refusal);
    }
    // Recorded on the blocking pool: the refusal does not wait for the write.
    let store = Arc::clone(&state.store);
    let identity = Arc::clone(&key.identity);
    let detail = format!("refused a {} key", key.status.as_str());
    tokio::task::spawn_blocking(move || {
        let event = NewEvent {
            workspace_id: identity.workspace_id,
            kind: crate::api::EventKind::AuthRejected,
            key_id: Some(&identity.key_id),
            key_prefix: Some(&identity.key_prefix),
            detail: &detail,
            actor: &crate::api::Author::of(crate::api::AuthorKind::Server),
        };
        if let Err(error) = store.access().record_event(&event) {
            tracing::warn!(%error, "could not record a rejected authentication");
        }
    });
    Err(refusal)
}

fn is_json_content_type(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

/// Whether `Accept` admits both JSON and SSE. Several `Accept` headers count as one list; no
/// `Accept` at all means "anything" (RFC 9110).
fn accepts_json_and_sse(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(ACCEPT).iter().peekable();
    if values.peek().is_none() {
        return true;
    }
    let (mut json, mut sse) = (false, false);
    for value in values {
        let Ok(value) = value.to_str() else { return false };
        if value == ACCEPT_BOTH {
            return true;
        }
        for range in value.split(',') {
            let range = range.split(';').next().unwrap_or_default().trim();
            let is = |name: &str| range.eq_ignore_ascii_case(name);
            json |= is("application/json") || is("application/*") || is("*/*");
            sse |= is("text/event-stream") || is("text/*") || is("*/*");
        }
    }
    json && sse
}

/// The origin clients reach this server at: `--public-url`, else `http://` and the `Host`
/// header, when the header is a plain host this server answers to.
pub fn public_origin(state: &AppState, headers: &HeaderMap) -> Option<String> {
    if !state.config.host_allowed(headers) {
        return None;
    }
    if let Some(url) = &state.config.public_url {
        return Some(url.trim_end_matches('/').to_owned());
    }
    let host = headers.get(HOST)?.to_str().ok()?;
    let scheme = if state.config.tls.is_some() { "https" } else { "http" };
    host_name(host).is_some().then(|| format!("{scheme}://{host}"))
}

/// With OAuth on, a 401 from the MCP endpoint names the resource metadata (RFC 9728 §5.1):
/// the only way a client is led to OAuth.
fn offer_oauth(state: &AppState, headers: &HeaderMap, mut error: ApiError) -> ApiError {
    if !state.config.oauth || error.status != StatusCode::UNAUTHORIZED {
        return error;
    }
    if let (Some(challenge), Some(origin)) = (&mut error.challenge, public_origin(state, headers)) {
        challenge.push_str(&format!(
            ", resource_metadata=\"{origin}{}\"",
            super::PROTECTED_RESOURCE_PATH
        ));
    }
    error
}

/// The name in a `Host` header (`localhost:8787` → `localhost`, `[::1]:8787` → `[::1]`), or
/// `None` when the header is not a plain host and port: `localhost:80@evil.example` names
/// neither.
pub fn host_name(host: &str) -> Option<&str> {
    let (name, port) = match host.strip_prefix('[') {
        Some(rest) => {
            let end = rest.find(']')?;
            let (name, after) = host.split_at(end + 2);
            let inner = &name[1..name.len() - 1];
            if inner.is_empty()
                || !inner.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
            {
                return None;
            }
            match after {
                "" => (name, None),
                after => (name, Some(after.strip_prefix(':')?)),
            }
        }
        None => {
            let (name, port) = match host.split_once(':') {
                Some((name, port)) => (name, Some(port)),
                None => (host, None),
            };
            let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
            if name.is_empty() || !name.chars().all(plain) {
                return None;
            }
            (name, port)
        }
    };
    if port.is_some_and(|p| p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    Some(name)
}

/// Whether `headers` name one of `allowed` as their `Host` (requests without `Host`, HTTP/1.0,
/// pass: DNS rebinding needs a browser, which sends one).
pub fn host_in(allowed: &[String], headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(HOST) else { return true };
    let Some(name) = host.to_str().ok().and_then(host_name) else { return false };
    allowed.iter().any(|a| a.eq_ignore_ascii_case(name))
}

/// 403 for a key that breaks its workspace's policy (made before the rule, or before it
/// tightened): the body names the rule and what settles it. The policy is asked of memory (a
/// read when this process holds no trusted copy); the first refusal of a key under a rule is
/// recorded as `key.blocked`.
async fn check_policy(state: &AppState, key: &Arc<KeyIdentity>) -> Result<(), ApiError> {
    let ws = key.workspace_id;
    let stored = match state.store.access().cached_policy(ws) {
        Some(stored) => stored,
        None => {
            let store = Arc::clone(&state.store);
            match tokio::task::spawn_blocking(move || store.access().policy(ws)).await {
                Ok(Ok(stored)) => stored,
                failed => {
                    let error = match failed {
                        Ok(Err(error)) => error.to_string(),
                        Err(error) => error.to_string(),
                        Ok(Ok(_)) => String::new(),
                    };
                    tracing::error!(%error, "could not read the workspace policy");
                    return Err(ApiError::mcp(
                        StatusCode::SERVICE_UNAVAILABLE,
                        ErrorCode::InternalError,
                        "the server could not check the key; try again",
                    ));
                }
            }
        }
    };
    if stored.policy.is_empty() {
        return Ok(());
    }
    let Some(breach) = stored.breach(key) else { return Ok(()) };
    if !stored.noted(key, breach.rule) {
        let (store, noted, identity) = (Arc::clone(&state.store), breach.clone(), Arc::clone(key));
        tokio::task::spawn_blocking(move || {
            if let Err(error) = store.access().note_blocked(&stored, &identity, &noted) {
                tracing::warn!(%error, "could not record a blocked key");
            }
        });
    }
    let rotate =
        format!("custory-mcp --workspace {} keys rotate {}", key.workspace_slug, key.key_prefix);
    let message = format!(
        "Forbidden: this MCP key is blocked by the workspace policy's {} rule: {}. Rotate it for \
         a key that keeps the policy ({rotate}), or an owner changes the policy \
         (custory-mcp policy show)",
        breach.rule, breach.message
    );
    let mut refusal = ApiError::mcp(StatusCode::FORBIDDEN, ErrorCode::InvalidRequest, message);
    refusal.rpc_data = Some(Box::new(serde_json::json!({
        "reason": "key_blocked",
        "rule": breach.rule,
        "settle": rotate,
    })));
    Err(refusal)
}

#[cfg(test)]
mod tests {
    #[test]
    fn host_names_lose_their_port_and_nothing_else_passes() {
        use super::host_name;
        assert_eq!(host_name("localhost:8787"), Some("localhost"));
        assert_eq!(host_name("127.0.0.1"), Some("127.0.0.1"));
        assert_eq!(host_name("[::1]:8787"), Some("[::1]"));
        assert_eq!(host_name("[::1]"), Some("[::1]"));
        assert_eq!(host_name("evil.example:80"), Some("evil.example"));
        for bad in [
            "localhost:80@evil.com",
            "localhost@evil.com",
            "localhost:",
            "localhost:80:81",
            "localhost:8o",
            "[::1]x",
            "[::1]:80@evil",
            "[evil.com]",
            "local host",
            "",
            "localhost/evil",
        ] {
            assert_eq!(host_name(bad), None, "{bad}");
        }
    }
}
