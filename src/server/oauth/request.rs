//! The authorization request (RFC 6749 §4.1.1): its parameters, carried from the query
//! through the sign-in and consent forms; their check, the client and its redirect URI
//! first; and the redirect that answers the client.

use std::net::IpAddr;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{OAuthError, Refusal, no_store, origin, resource_of};
use crate::server::client_metadata::{FETCH_FAILED, is_document_url};
use crate::server::{AppState, work};
use crate::store::access::oauth::{OAuthClient, check_redirect_uri, redirect_registered};

/// The authorization request's parameters, as the query (GET) or a form (POST) carries them.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct AuthorizeParams {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    resource: Option<String>,
    scope: Option<String>,
}

impl AuthorizeParams {
    /// The parameters that were sent, by name: what the forms carry back as hidden fields.
    pub(super) fn fields(&self) -> Vec<(&'static str, &str)> {
        [
            ("response_type", &self.response_type),
            ("client_id", &self.client_id),
            ("redirect_uri", &self.redirect_uri),
            ("state", &self.state),
            ("code_challenge", &self.code_challenge),
            ("code_challenge_method", &self.code_challenge_method),
            ("resource", &self.resource),
            ("scope", &self.scope),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.as_deref().map(|v| (name, v)))
        .collect()
    }

    /// The parameters as a query string, to come back to `/oauth/authorize` with.
    pub(super) fn query(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new()).extend_pairs(self.fields()).finish()
    }
}

/// A checked authorization request.
pub(super) struct Request {
    pub client: OAuthClient,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub code_challenge: String,
    pub resource: String,
    pub issuer: String,
}

impl Request {
    /// Answers the client at its redirect URI with `pairs`, its `state` and our `iss`.
    pub fn answer(&self, pairs: &[(&str, &str)]) -> Response {
        redirect_to(&self.redirect_uri, &self.issuer, self.state.as_deref(), pairs)
    }
}

/// Checks an authorization request (RFC 6749 §4.1.2.1): the client and its redirect URI
/// first, since only a trusted redirect URI may receive an error.
pub(super) async fn check(
    state: &AppState,
    headers: &HeaderMap,
    peer: IpAddr,
    params: &AuthorizeParams,
) -> Result<Request, Refusal> {
    let origin = origin(state, headers)?;
    let Some(client_id) = params.client_id.as_deref() else {
        return Err(Refusal::Page(
            StatusCode::BAD_REQUEST,
            "The request names no client_id.".into(),
        ));
    };
    let client = if is_document_url(client_id) && !state.config.client_metadata_documents {
        return Err(Refusal::Page(
            StatusCode::BAD_REQUEST,
            "The client names itself by the URL of a metadata document, which this server does \
             not take (it runs with --no-client-metadata-documents and does not advertise \
             them): the client has to register. Start the sign-in again from the application; \
             one that read this server's metadata anew registers first."
                .into(),
        ));
    } else if is_document_url(client_id) {
        // A fetch that fails counts against the asking address: the server is nobody's
        // request relay.
        state.metadata.client(client_id).await.map_err(|why| match state.limiter.failed(peer) {
            Some(wait) => Refusal::too_many_sign_ins(wait),
            None if why.starts_with(FETCH_FAILED) => Refusal::Page(
                StatusCode::BAD_REQUEST,
                format!(
                    "The client cannot sign in here: {why}. If this server cannot reach the \
                     internet, its operator can restart it with `custory-mcp serve --oauth \
                     --no-client-metadata-documents`: clients then register with the server \
                     instead, and the next sign-in works."
                ),
            ),
            None => Refusal::Page(
                StatusCode::BAD_REQUEST,
                format!("The client cannot sign in here: {why}."),
            ),
        })?
    } else {
        let id = client_id.to_owned();
        work::read(state, move |store| store.access().oauth_client(&id).map_err(OAuthError::from))
            .await?
            .ok_or_else(|| {
                Refusal::Page(
                    StatusCode::BAD_REQUEST,
                    "The client is not registered with this server. Start the sign-in again from \
                     the application."
                        .into(),
                )
            })?
    };
    let Some(redirect_uri) = params
        .redirect_uri
        .as_deref()
        .filter(|uri| redirect_registered(&client.redirect_uris, uri))
    else {
        return Err(Refusal::Page(
            StatusCode::BAD_REQUEST,
            "The redirect_uri is not one the client registered, so the answer is sent nowhere."
                .into(),
        ));
    };
    // Checked again here, for clients registered before the scheme rules were what they are.
    if let Err(why) = check_redirect_uri(redirect_uri) {
        return Err(Refusal::Page(
            StatusCode::BAD_REQUEST,
            format!("The redirect_uri is refused (invalid_redirect_uri): {why}."),
        ));
    }
    let issuer = format!("{origin}/oauth");
    let refuse = |error: &str, description: &str| {
        Refusal::Redirect(Box::new(redirect_to(
            redirect_uri,
            &issuer,
            params.state.as_deref(),
            &[("error", error), ("error_description", description)],
        )))
    };
    if params.response_type.as_deref() != Some("code") {
        return Err(refuse("unsupported_response_type", "response_type must be code"));
    }
    let Some(challenge) = params.code_challenge.as_deref() else {
        return Err(refuse("invalid_request", "PKCE is required: send code_challenge (S256)"));
    };
    if params.code_challenge_method.as_deref() != Some("S256") {
        return Err(refuse("invalid_request", "code_challenge_method must be S256"));
    }
    if challenge.len() != 43
        || !challenge.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(refuse("invalid_request", "code_challenge is not a base64url SHA-256"));
    }
    let resource = resource_of(&origin);
    if let Some(asked) = params.resource.as_deref()
        && asked.trim_end_matches('/') != resource
    {
        return Err(refuse("invalid_target", "this server grants access to its MCP endpoint only"));
    }
    Ok(Request {
        client,
        redirect_uri: redirect_uri.to_owned(),
        state: params.state.clone(),
        code_challenge: challenge.to_owned(),
        resource,
        issuer,
    })
}

/// A 303 to the client's redirect URI with `pairs`, its `state` and our `iss` (RFC 9207).
fn redirect_to(uri: &str, issuer: &str, state: Option<&str>, pairs: &[(&str, &str)]) -> Response {
    // Only registered (parsed) URIs get here.
    let Ok(mut url) = url::Url::parse(uri) else {
        return Refusal::Page(StatusCode::BAD_REQUEST, "Bad redirect URI.".into()).into_response();
    };
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in pairs {
            query.append_pair(name, value);
        }
        if let Some(state) = state {
            query.append_pair("state", state);
        }
        query.append_pair("iss", issuer);
    }
    let location = HeaderValue::from_str(url.as_str())
        .unwrap_or_else(|_| HeaderValue::from_static("about:blank"));
    (StatusCode::SEE_OTHER, no_store(), [(header::LOCATION, location)]).into_response()
}

#[cfg(test)]
mod tests {
    use crate::store::access::oauth::{check_redirect_uri, redirect_registered};

    #[test]
    fn redirect_uris_are_exact_but_loopback_ports_vary() {
        let registered = vec![
            "http://127.0.0.1:3334/oauth/callback".to_owned(),
            "https://app.example/cb".to_owned(),
            "cursor://anysphere.cursor-retrieval/oauth/cb".to_owned(),
        ];
        for ok in [
            "http://127.0.0.1:3334/oauth/callback",
            "http://127.0.0.1:49152/oauth/callback",
            "https://app.example/cb",
            "cursor://anysphere.cursor-retrieval/oauth/cb",
        ] {
            assert!(redirect_registered(&registered, ok), "{ok}");
        }
        for refused in [
            "http://127.0.0.1:3334/oauth/callback/more",
            "http://127.0.0.2:3334/oauth/callback",
            "http://localhost:3334/oauth/callback",
            "https://app.example/cb?next=evil",
            "https://app.example:444/cb",
            "https://evil.example/cb",
        ] {
            assert!(!redirect_registered(&registered, refused), "{refused}");
        }
        for bad in ["http://evil.example/cb", "javascript:alert(1)", "https://a.example/#x", "nope"]
        {
            assert!(check_redirect_uri(bad).is_err(), "{bad}");
        }
        assert!(check_redirect_uri("http://[::1]:9/cb").is_ok());
    }
}
