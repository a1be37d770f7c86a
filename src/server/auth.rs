//! Reading bearer tokens, and the owner-credential guard of the admin API.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};

use super::AppState;
use super::error::ApiError;
use crate::token::{PlainToken, TokenFormatError, TokenKind};

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

/// Proof that the request carries this server's active owner credential.
#[derive(Debug, Clone, Copy)]
pub struct Owner;

impl FromRequestParts<AppState> for Owner {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if !state.config.host_allowed(&parts.headers) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "host_not_allowed",
                "the Host header does not name this server (start it with --allow-host)",
            ));
        }
        let ip = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        let unauthorized = |message: String| match ip.and_then(|ip| state.limiter.failed(ip)) {
            Some(wait) => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_failures",
                format!(
                    "too many failed authentications from this address; retry in {} s",
                    wait.as_secs().max(1)
                ),
            )
            .retry_after(wait),
            None => ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message),
        };
        let token = bearer_token(&parts.headers).map_err(|error| {
            unauthorized(format!(
                "{error}; the admin API needs the owner credential (csa_…): run `custory-mcp login`"
            ))
        })?;
        if token.kind() == TokenKind::Mcp {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "mcp_key_not_allowed",
                "MCP keys (cst_…) only work at /api/mcp; the admin API needs the owner \
                 credential (csa_…): run `custory-mcp login`",
            ));
        }
        if state.store.is_owner_credential(&token.hash())? {
            Ok(Owner)
        } else {
            Err(unauthorized(
                "the owner credential is not valid for this server (was it reset?); run \
                 `custory-mcp login`, or `custory-mcp serve --reset-owner-credential` on the \
                 server machine"
                    .into(),
            ))
        }
    }
}
