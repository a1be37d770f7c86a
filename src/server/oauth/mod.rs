//! OAuth 2.1 for the MCP endpoint (`serve --oauth`): this server is the authorization server
//! of its own resource, as the MCP authorization spec has it. Discovery (RFC 9728, RFC 8414),
//! dynamic client registration (RFC 7591), the authorization code flow with PKCE S256 only,
//! loopback redirects on any port (RFC 8252), and the resource parameter (RFC 8707).
//!
//! Consent, by the owner signed in with the owner credential, mints an ordinary MCP key at the
//! token endpoint: the access token *is* that key's `cst_` token, seen by no person. There are
//! no refresh tokens: a refresh token would be a second secret outliving nothing the key does
//! not already bound. When the key expires or is revoked, the next request gets 401 and the
//! client starts over at the consent page (docs/OAUTH.md says why).
//!
//! Only a 401 leads here: the challenge names the metadata, while the root well-known paths
//! stay 404, so a client holding a valid static header is never drawn into OAuth.
//!
//! One file per reason to change: `metadata` (discovery), `register` (RFC 7591), `request`
//! (the authorization request: its parameters, its check, the redirect back to the client),
//! `session` (the owner's sign-in, the session and CSRF cookies), `authorize` (the consent
//! page and the owner's decision), `pages` (the HTML, rendered from `templates/oauth/`) and
//! `token` (the token endpoint). This file holds what they share: the origin and the errors.
//!
//! Every database call goes through `server::work` (`read`, or `write` in the writer's queue), on the blocking pool: a stranger's request
//! never holds an async worker, and what can be refused without a write (a bad or unknown
//! code, an address past its failure limit, a refused redirect URI) is refused before the
//! writer is asked for.

mod authorize;
mod metadata;
mod pages;
mod register;
mod request;
mod session;
mod token;

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub use self::authorize::{authorize, decide};
pub use self::metadata::{AUTHORIZATION_SERVER_PATH, authorization_server, protected_resource};
pub use self::register::register;
pub use self::session::login;
pub use self::token::token;
use crate::server::AppState;
use crate::server::admission::public_origin;
use crate::server::error::{ApiError, retry_seconds};
use crate::store::StoreError;

/// The origin clients reach this server at, from the (checked) `Host` header.
fn origin(state: &AppState, headers: &HeaderMap) -> Result<String, OAuthError> {
    public_origin(state, headers).ok_or_else(|| {
        OAuthError::new(
            StatusCode::FORBIDDEN,
            "invalid_request",
            "this server does not answer to that Host (start it with --allow-host to add one)",
        )
    })
}

/// The MCP endpoint's URL: the resource every key minted here is for.
fn resource_of(origin: &str) -> String {
    format!("{origin}/api/mcp")
}

/// Nothing here may be kept by a cache: metadata is worked out from the request's Host, and
/// the rest carries secrets or one browser's forms.
fn no_store() -> [(header::HeaderName, HeaderValue); 2] {
    [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (header::PRAGMA, HeaderValue::from_static("no-cache")),
    ]
}

// ---------------------------------------------------------------------------------------------
// Errors: the RFC 6749 §5.2 shape for a client, or a page for the person at the browser.

/// An error a client reads: `{"error", "error_description"}`, never cached.
#[derive(Debug)]
pub struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    retry_after: Option<std::time::Duration>,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self { status, error, description: description.into(), retry_after: None }
    }

    fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    /// The same error, telling the client when to come back (429).
    fn retry_after(self, wait: std::time::Duration) -> Self {
        Self { retry_after: Some(wait), ..self }
    }
}

impl From<ApiError> for OAuthError {
    fn from(api: ApiError) -> Self {
        let code = match api.status {
            // RFC 6749 §4.1.2.1: the server is overloaded or busy (the writer's queue).
            StatusCode::SERVICE_UNAVAILABLE => "temporarily_unavailable",
            status if status.is_server_error() => "server_error",
            _ => "invalid_request",
        };
        Self { retry_after: api.retry_after, ..Self::new(api.status, code, api.message) }
    }
}

impl From<StoreError> for OAuthError {
    fn from(error: StoreError) -> Self {
        ApiError::from(error).into()
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.error, "error_description": self.description});
        let mut response = (self.status, no_store(), Json(body)).into_response();
        if let Some(wait) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_seconds(wait)));
        }
        response
    }
}

/// What a browser request that cannot go on gets: a page, when the redirect URI is not
/// trusted (nothing redirects anywhere then), or a redirect to the client with the error.
pub enum Refusal {
    Page(StatusCode, String),
    Redirect(Box<Response>),
}

impl Refusal {
    /// Too many failures from the browser's address.
    fn too_many_sign_ins(wait: std::time::Duration) -> Self {
        Self::Page(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Too many failed sign-ins from this address; retry in {} s.",
                retry_seconds(wait)
            ),
        )
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Self::Page(status, message) => pages::cannot_sign_in(status, &message),
            Self::Redirect(response) => *response,
        }
    }
}

impl From<OAuthError> for Refusal {
    fn from(error: OAuthError) -> Self {
        Self::Page(error.status, error.description)
    }
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Self {
        OAuthError::from(error).into()
    }
}
