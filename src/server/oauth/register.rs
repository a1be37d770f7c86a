//! Dynamic client registration (RFC 7591): public clients, exact redirect URIs, limited per
//! source network (`limiter::registration_group`) since it needs no credential.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{OAuthError, no_store, origin};
use crate::api::validate_name;
use crate::server::client_addr::ClientAddr;
use crate::server::error::retry_seconds;
use crate::server::limiter::registration_group;
use crate::server::{AppState, work};
use crate::store::access::oauth::{REDIRECT_URIS_MAX, check_redirect_uri};

/// `POST /oauth/register`: a public client (no secret) with exact redirect URIs.
pub async fn register(
    State(state): State<AppState>,
    ClientAddr(peer): ClientAddr,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, OAuthError> {
    origin(&state, &headers)?;
    let source = registration_group(peer);
    if let Err(wait) = state.registrations.check_key(&source) {
        use governor::clock::Clock as _;
        let wait = wait.wait_time_from(governor::clock::DefaultClock::default().now());
        return Err(OAuthError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "invalid_client_metadata",
            format!("too many registrations from this network; retry in {} s", retry_seconds(wait)),
        )
        .retry_after(wait));
    }
    let metadata = |description: String| {
        OAuthError::new(StatusCode::BAD_REQUEST, "invalid_client_metadata", description)
    };
    let Json(body) = body.map_err(|e| metadata(format!("the body is not client metadata: {e}")))?;
    let uris: Vec<String> = match body.get("redirect_uris") {
        Some(Value::Array(uris)) if !uris.is_empty() && uris.len() <= REDIRECT_URIS_MAX => uris
            .iter()
            .map(|u| u.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| metadata("redirect_uris must be strings".into()))?,
        _ => {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "invalid_redirect_uri",
                format!("redirect_uris must list 1 to {REDIRECT_URIS_MAX} URIs"),
            ));
        }
    };
    for uri in &uris {
        check_redirect_uri(uri)
            .map_err(|why| OAuthError::new(StatusCode::BAD_REQUEST, "invalid_redirect_uri", why))?;
    }
    if let Some(grants) = body.get("grant_types").and_then(Value::as_array)
        && !grants.iter().any(|g| g == "authorization_code")
    {
        return Err(metadata("this server grants authorization_code only".into()));
    }
    if let Some(types) = body.get("response_types").and_then(Value::as_array)
        && !types.iter().any(|t| t == "code")
    {
        return Err(metadata("this server answers response_type code only".into()));
    }
    let name = match body.get("client_name").and_then(Value::as_str) {
        Some(name) => validate_name(name).map_err(|e| metadata(format!("client_name: {e}")))?,
        None => "An unnamed MCP client",
    };
    // Registrations write in the writer's queue like every other write, so strangers hold at
    // most one blocking thread on the writer however many of them wait.
    let name = name.to_owned();
    let client = work::write(&state, move |store| {
        store.access().register_client(&name, &uris, &source.to_string()).map_err(OAuthError::from)
    })
    .await?;
    let answer = json!({
        "client_id": client.id,
        "client_id_issued_at": client.created_at.timestamp(),
        "client_name": client.name,
        "redirect_uris": client.redirect_uris,
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    });
    Ok((StatusCode::CREATED, no_store(), Json(answer)).into_response())
}
