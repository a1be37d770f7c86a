//! The token endpoint: a code and its PKCE verifier for the key the owner approved, created
//! in the same transaction that spends the code. A request that can be refused without a
//! write is: a stranger's guesses never wait for (or hold up) the writer.

use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{OAuthError, no_store, origin};
use crate::api::Key;
use crate::server::client_addr::ClientAddr;
use crate::server::{AppState, work};
use crate::store::Store;
use crate::store::access::oauth::{RedeemError, Redemption, UNKNOWN_CODE, plausible_code};
use crate::token::PlainToken;

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
    // Refusals are decided before any write, each counted as a failed authentication of the
    // address: an unknown client or a code never issued (or expired) on a reader, a code of the
    // wrong shape without a query. Only a code that can still be spent takes the writer.
    let asked = Asked {
        code: code.to_owned(),
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        code_verifier: code_verifier.to_owned(),
        resource: form.resource.clone(),
    };
    let asked = std::sync::Arc::new(asked);
    let checking = std::sync::Arc::clone(&asked);
    let outcome = match work::read(&state, move |store| Ok::<_, OAuthError>(checking.check(store)))
        .await?
    {
        Some(refused) => refused,
        None => work::write(&state, move |store| Ok::<_, OAuthError>(asked.redeem(store))).await?,
    };
    let refused = match outcome {
        Outcome::Minted(key, token) => {
            let mut answer = json!({
                "access_token": token.expose(),
                "token_type": "Bearer",
            });
            if let Some(expires_at) = key.expires_at {
                answer["expires_in"] = json!((expires_at - state.store.now()).num_seconds().max(0));
            }
            return Ok((StatusCode::OK, no_store(), Json(answer)).into_response());
        }
        Outcome::Refused(RedeemError::Store(error)) => return Err(error.into()),
        Outcome::UnknownClient => OAuthError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "the client is not registered with this server",
        ),
        Outcome::Refused(refused) => {
            let error = match refused {
                RedeemError::InvalidTarget => "invalid_target",
                _ => "invalid_grant",
            };
            OAuthError::new(StatusCode::BAD_REQUEST, error, refused.to_string())
        }
    };
    match state.limiter.failed(peer) {
        Some(wait) => Err(OAuthError::new(
            StatusCode::TOO_MANY_REQUESTS,
            refused.error,
            "too many failed token requests from this address",
        )
        .retry_after(wait)),
        None => Err(refused),
    }
}

/// A token request's fields, owned, for the blocking pool.
struct Asked {
    code: String,
    client_id: String,
    redirect_uri: String,
    code_verifier: String,
    resource: Option<String>,
}

/// What became of a token request in the store.
enum Outcome {
    Minted(Box<Key>, PlainToken),
    UnknownClient,
    Refused(RedeemError),
}

impl Asked {
    /// What a reader can tell: an unknown client, a code of the wrong shape, or one never
    /// issued (or expired) are refused here, without the writer.
    fn check(&self, store: &Store) -> Option<Outcome> {
        match store.access().oauth_client(&self.client_id) {
            Ok(Some(_)) => {}
            Ok(None) => return Some(Outcome::UnknownClient),
            Err(error) => return Some(Outcome::Refused(error.into())),
        }
        if !plausible_code(&self.code) {
            return Some(Outcome::Refused(RedeemError::InvalidGrant(UNKNOWN_CODE)));
        }
        store.access().check_code(&self.code).err().map(Outcome::Refused)
    }

    /// Spends the code (on the writer).
    fn redeem(&self, store: &Store) -> Outcome {
        let redemption = Redemption {
            code: &self.code,
            client_id: &self.client_id,
            redirect_uri: &self.redirect_uri,
            code_verifier: &self.code_verifier,
            resource: self.resource.as_deref(),
        };
        match store.access().redeem_code(&redemption) {
            Ok((key, token)) => Outcome::Minted(Box::new(key), token),
            Err(refused) => Outcome::Refused(refused),
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
