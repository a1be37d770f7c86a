//! Discovery: the protected resource's metadata (RFC 9728) and the authorization server's
//! (RFC 8414), both worked out from the request's origin.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{OAuthError, no_store, origin, resource_of};
use crate::server::AppState;

/// Where the authorization server's metadata is (RFC 8414 §3.1, for the issuer `/oauth`).
pub const AUTHORIZATION_SERVER_PATH: &str = "/.well-known/oauth-authorization-server/oauth";

/// `GET /.well-known/oauth-protected-resource/api/mcp` (RFC 9728).
pub async fn protected_resource(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    let origin = origin(&state, &headers)?;
    let metadata = json!({
        "resource": resource_of(&origin),
        "authorization_servers": [format!("{origin}/oauth")],
        "bearer_methods_supported": ["header"],
        "resource_name": "Custory workspace (custory-mcp)",
    });
    // Worked out from the request (its Host, without `--public-url`): no shared cache may
    // keep one request's answer for another.
    Ok((no_store(), Json(metadata)).into_response())
}

/// `GET /.well-known/oauth-authorization-server/oauth` (RFC 8414).
pub async fn authorization_server(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    let origin = origin(&state, &headers)?;
    let metadata = json!({
        "issuer": format!("{origin}/oauth"),
        "authorization_endpoint": format!("{origin}/oauth/authorize"),
        "token_endpoint": format!("{origin}/oauth/token"),
        "registration_endpoint": format!("{origin}/oauth/register"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "authorization_response_iss_parameter_supported": true,
        "client_id_metadata_document_supported": state.config.client_metadata_documents,
    });
    Ok((no_store(), Json(metadata)).into_response())
}
