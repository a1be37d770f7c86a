//! The token endpoint: a code and its PKCE verifier for the key the owner approved, created
//! in the same transaction that spends the code.

use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{OAuthError, no_store, origin};
use crate::server::AppState;
use crate::server::client_addr::ClientAddr;
use crate::store::access::oauth::{RedeemError, Redemption};

/// The token request's fields (RFC 6749 §4.1.3, RFC 7636 §4.5, RFC 8707).
#[derive(Debug, Deserialize)]
pub struct TokenRequest {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    client_id: Option<String>,
    code_verifier: Option<String>,
    resource: Option<String>,
}

/// `POST /oauth/token`: a code and its PKCE verifier for the key the owner approved.
pub async fn token(
    State(state): State<AppState>,
    ClientAddr(peer): ClientAddr,
    headers: HeaderMap,
    form: Result<Form<TokenRequest>, FormRejection>,
) -> Result<Response, OAuthError> {
    origin(&state, &headers)?;
    let Form(form) = form.map_err(|e| {
        OAuthError::invalid_request(format!(
            "the body must be application/x-www-form-urlencoded: {}",
            e.body_text()
        ))
    })?;
    if form.grant_type.as_deref() != Some("authorization_code") {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "this server grants authorization_code only (it issues no refresh tokens: sign in \
             again when the key ends)",
        ));
    }
    let code = field(&form.code, "code")?;
    let redirect_uri = field(&form.redirect_uri, "redirect_uri")?;
    let client_id = field(&form.client_id, "client_id")?;
    let code_verifier = field(&form.code_verifier, "code_verifier")?;
    let verifier_ok = (43..=128).contains(&code_verifier.len())
        && code_verifier.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if !verifier_ok {
        return Err(OAuthError::invalid_request(
            "code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~ (RFC 7636)",
        ));
    }
    if state.store.access().oauth_client(client_id)?.is_none() {
        return Err(OAuthError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "the client is not registered with this server",
        ));
    }
    let store = std::sync::Arc::clone(&state.store);
    let redemption = Redemption {
        code,
        client_id,
        redirect_uri,
        code_verifier,
        resource: form.resource.as_deref(),
    };
    match store.access().redeem_code(&redemption) {
        Ok((key, token)) => {
            let mut answer = json!({
                "access_token": token.expose(),
                "token_type": "Bearer",
            });
            if let Some(expires_at) = key.expires_at {
                answer["expires_in"] = json!((expires_at - state.store.now()).num_seconds().max(0));
            }
            Ok((StatusCode::OK, no_store(), Json(answer)).into_response())
        }
        Err(RedeemError::Store(error)) => Err(error.into()),
        Err(refused) => {
            if let Some(wait) = state.limiter.failed(peer) {
                return Err(OAuthError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "invalid_grant",
                    "too many failed token requests from this address",
                )
                .retry_after(wait));
            }
            let error = match refused {
                RedeemError::InvalidTarget => "invalid_target",
                _ => "invalid_grant",
            };
            Err(OAuthError::new(StatusCode::BAD_REQUEST, error, refused.to_string()))
        }
    }
}

/// A parameter the token request must carry.
fn field<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, OAuthError> {
    value
        .as_deref()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| OAuthError::invalid_request(format!("{name} is missing")))
}
