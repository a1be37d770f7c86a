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

use std::net::IpAddr;

use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Query, State};

use super::client_addr::ClientAddr;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::admission::public_origin;
use super::client_metadata::is_document_url;
use super::error::{ApiError, retry_seconds};
use crate::api::{Access, ExpiryPolicy, validate_name};
use crate::store::StoreError;
use crate::store::oauth::{
    Grant, OAuthClient, REDIRECT_URIS_MAX, RedeemError, Redemption, SESSION_LIFETIME,
    check_redirect_uri, redirect_registered, same_secret,
};
use crate::token::{PlainToken, TokenKind};

/// Where the authorization server's metadata is (RFC 8414 §3.1, for the issuer `/oauth`).
pub const AUTHORIZATION_SERVER_PATH: &str = "/.well-known/oauth-authorization-server/oauth";
const SESSION_COOKIE: &str = "custory_owner_session";
const CSRF_COOKIE: &str = "custory_csrf";
/// Workspaces the consent page offers at most.
const WORKSPACES_SHOWN: i64 = 500;

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

// ---------------------------------------------------------------------------------------------
// Errors: the RFC 6749 §5.2 shape, or a page for the person at the browser.

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
}

impl From<StoreError> for OAuthError {
    fn from(error: StoreError) -> Self {
        let api = ApiError::from(error);
        let code = if api.status.is_server_error() { "server_error" } else { "invalid_request" };
        Self::new(api.status, code, api.message)
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

/// Metadata is worked out from the request (its Host, without `--public-url`): no shared
/// cache may keep one request's answer for another.
trait NoStore {
    fn into_response_no_store(self) -> Response;
}

impl NoStore for Json<Value> {
    fn into_response_no_store(self) -> Response {
        (no_store(), self).into_response()
    }
}

fn no_store() -> [(header::HeaderName, HeaderValue); 2] {
    [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (header::PRAGMA, HeaderValue::from_static("no-cache")),
    ]
}

// ---------------------------------------------------------------------------------------------
// Discovery

/// `GET /.well-known/oauth-protected-resource/api/mcp` (RFC 9728).
pub async fn protected_resource(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    let origin = origin(&state, &headers)?;
    Ok(Json(json!({
        "resource": resource_of(&origin),
        "authorization_servers": [format!("{origin}/oauth")],
        "bearer_methods_supported": ["header"],
        "resource_name": "Custory workspace (custory-mcp)",
    }))
    .into_response_no_store())
}

/// `GET /.well-known/oauth-authorization-server/oauth` (RFC 8414).
pub async fn authorization_server(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    let origin = origin(&state, &headers)?;
    Ok(Json(json!({
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
        "client_id_metadata_document_supported": true,
    }))
    .into_response_no_store())
}

// ---------------------------------------------------------------------------------------------
// Dynamic client registration (RFC 7591)

/// `POST /oauth/register`: a public client (no secret) with exact redirect URIs.
pub async fn register(
    State(state): State<AppState>,
    ClientAddr(peer): ClientAddr,
    headers: HeaderMap,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, OAuthError> {
    origin(&state, &headers)?;
    let group = super::limiter::address_group(peer);
    if let Err(wait) = state.registrations.check_key(&group) {
        use governor::clock::Clock as _;
        let wait = wait.wait_time_from(governor::clock::DefaultClock::default().now());
        return Err(OAuthError {
            retry_after: Some(wait),
            ..OAuthError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "invalid_client_metadata",
                format!(
                    "too many registrations from this address; retry in {} s",
                    retry_seconds(wait)
                ),
            )
        });
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
    let client = state.store.register_client(name, &uris, Some(group))?;
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

// ---------------------------------------------------------------------------------------------
// The authorization request and the consent page

/// The authorization request's parameters, as the query (GET) or the consent form (POST)
/// carries them.
#[derive(Debug, Default, Clone, Deserialize, serde::Serialize)]
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

/// A checked authorization request.
struct Request {
    client: OAuthClient,
    redirect_uri: String,
    state: Option<String>,
    code_challenge: String,
    resource: String,
    issuer: String,
}

/// What a request that cannot go on gets: a page, when the redirect URI is not trusted
/// (nothing redirects anywhere then), or a redirect to the client with the error.
pub enum Refusal {
    Page(StatusCode, String),
    Redirect(Box<Response>),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Self::Page(status, message) => {
                page(status, "Cannot sign in", &paragraph(&message), None)
            }
            Self::Redirect(response) => *response,
        }
    }
}

impl From<OAuthError> for Refusal {
    fn from(error: OAuthError) -> Self {
        Self::Page(error.status, error.description)
    }
}

/// Checks an authorization request (RFC 6749 §4.1.2.1): the client and its redirect URI
/// first, since only a trusted redirect URI may receive an error.
async fn check_request(
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
    let client = if is_document_url(client_id) {
        // A fetch that fails counts against the asking address: the server is nobody's
        // request relay.
        state.metadata.client(client_id).await.map_err(|why| match state.limiter.failed(peer) {
            Some(wait) => Refusal::Page(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "Too many failed sign-ins from this address; retry in {} s.",
                    retry_seconds(wait)
                ),
            ),
            None => Refusal::Page(
                StatusCode::BAD_REQUEST,
                format!("The client cannot sign in here: {why}."),
            ),
        })?
    } else {
        state.store.oauth_client(client_id).map_err(OAuthError::from)?.ok_or_else(|| {
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
        return page(StatusCode::BAD_REQUEST, "Cannot sign in", "<p>Bad redirect URI.</p>", None);
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

/// `GET /oauth/authorize`: the sign-in form, or the consent page for a signed-in owner.
pub async fn authorize(
    State(state): State<AppState>,
    ClientAddr(peer): ClientAddr,
    headers: HeaderMap,
    Query(params): Query<AuthorizeParams>,
) -> Result<Response, Refusal> {
    let request = check_request(&state, &headers, peer, &params).await?;
    let (csrf, set_csrf) = csrf_token(&state, &headers);
    let mut response = if signed_in(&state, &headers)? {
        consent_page(&state, &request, &params, &csrf, peer, None)?
    } else {
        sign_in_page(&request, &params, &csrf, None, StatusCode::OK)
    };
    if let Some(cookie) = set_csrf {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// The sign-in form's fields.
#[derive(Debug, Deserialize)]
pub struct SignIn {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    owner_credential: String,
    #[serde(flatten)]
    params: AuthorizeParams,
}

/// `POST /oauth/login`: checks the owner credential, starts a session, and goes back to the
/// consent page.
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(peer): ClientAddr,
    headers: HeaderMap,
    form: Result<Form<SignIn>, FormRejection>,
) -> Result<Response, Refusal> {
    let Form(form) = form.map_err(|e| Refusal::Page(StatusCode::BAD_REQUEST, e.body_text()))?;
    let request = check_request(&state, &headers, peer, &form.params).await?;
    check_csrf(&state, &headers, &form.csrf)?;
    let (csrf, _) = csrf_token(&state, &headers);
    let owner = PlainToken::parse(&form.owner_credential)
        .ok()
        .filter(|t| t.kind() == TokenKind::Owner && state.store.is_owner_credential(&t.hash()));
    if owner.is_none() {
        if let Some(wait) = state.limiter.failed(peer) {
            return Err(Refusal::Page(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "Too many failed sign-ins from this address; retry in {} s.",
                    retry_seconds(wait)
                ),
            ));
        }
        return Ok(sign_in_page(
            &request,
            &form.params,
            &csrf,
            Some(
                "That is not this server's owner credential. It begins csa_; `custory-mcp serve` \
                 printed it at first start, and `serve --reset-owner-credential` makes a new one.",
            ),
            StatusCode::UNAUTHORIZED,
        ));
    }
    let session = state.store.create_owner_session().map_err(OAuthError::from)?;
    let query = serde_urlencoded_params(&form.params);
    let location = HeaderValue::from_str(&format!("/oauth/authorize?{query}"))
        .map_err(|_| Refusal::Page(StatusCode::BAD_REQUEST, "Bad request.".into()))?;
    let cookie = cookie(&state, &headers, SESSION_COOKIE, &session, "Lax");
    Ok((
        StatusCode::SEE_OTHER,
        no_store(),
        [(header::LOCATION, location), (header::SET_COOKIE, cookie)],
    )
        .into_response())
}

/// The consent form's fields.
#[derive(Debug, Deserialize)]
pub struct Decision {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    decision: String,
    #[serde(default)]
    workspace: String,
    #[serde(default)]
    key_name: String,
    #[serde(default)]
    expires: String,
    #[serde(default)]
    access: String,
    #[serde(flatten)]
    params: AuthorizeParams,
}

/// `POST /oauth/authorize`: the owner's answer. Approving records a code for the key they
/// chose; denying tells the client so.
pub async fn decide(
    State(state): State<AppState>,
    ClientAddr(peer): ClientAddr,
    headers: HeaderMap,
    form: Result<Form<Decision>, FormRejection>,
) -> Result<Response, Refusal> {
    let Form(form) = form.map_err(|e| Refusal::Page(StatusCode::BAD_REQUEST, e.body_text()))?;
    let request = check_request(&state, &headers, peer, &form.params).await?;
    check_csrf(&state, &headers, &form.csrf)?;
    if !signed_in(&state, &headers)? {
        let (csrf, _) = csrf_token(&state, &headers);
        return Ok(sign_in_page(
            &request,
            &form.params,
            &csrf,
            Some("Your sign-in has ended; sign in again."),
            StatusCode::UNAUTHORIZED,
        ));
    }
    let back = |message: &str| {
        consent_page(&state, &request, &form.params, &form.csrf, peer, Some(message))
            .map_err(Refusal::from)
    };
    match form.decision.as_str() {
        "deny" => {
            return Ok(redirect_to(
                &request.redirect_uri,
                &request.issuer,
                request.state.as_deref(),
                &[("error", "access_denied"), ("error_description", "the owner declined")],
            ));
        }
        "approve" => {}
        _ => return back("Choose Approve or Deny."),
    }
    let Some(workspace) =
        state.store.workspace_by_slug(&form.workspace).map_err(OAuthError::from)?
    else {
        return back("Choose one of the workspaces listed.");
    };
    let key_name = match validate_name(&form.key_name) {
        Ok(name) => name.to_owned(),
        Err(why) => return back(&format!("The key's {why}.")),
    };
    let (Some(expires), Some(access)) =
        (ExpiryPolicy::parse(&form.expires), Access::parse(&form.access))
    else {
        return back("Choose an expiry and an access.");
    };
    if is_document_url(&request.client.id) {
        state.store.save_document_client(&request.client).map_err(OAuthError::from)?;
    }
    let code = state
        .store
        .issue_code(&Grant {
            client_id: request.client.id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            code_challenge: request.code_challenge.clone(),
            resource: request.resource.clone(),
            workspace_id: workspace.id,
            key_name,
            expires,
            access,
        })
        .map_err(OAuthError::from)?;
    Ok(redirect_to(
        &request.redirect_uri,
        &request.issuer,
        request.state.as_deref(),
        &[("code", &code)],
    ))
}

fn signed_in(state: &AppState, headers: &HeaderMap) -> Result<bool, OAuthError> {
    match cookie_value(headers, SESSION_COOKIE) {
        Some(session) => Ok(state.store.owner_session_valid(session)?),
        None => Ok(false),
    }
}

/// The browser's CSRF token, and the cookie that sets it when it has none yet.
fn csrf_token(state: &AppState, headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    match cookie_value(headers, CSRF_COOKIE) {
        Some(token) if token.len() >= 32 => (token.to_owned(), None),
        _ => {
            let token = crate::token::random_base62(43);
            let cookie = cookie(state, headers, CSRF_COOKIE, &token, "Strict");
            (token, Some(cookie))
        }
    }
}

/// A form post must come from this server's own page: a browser says where it posts from
/// (`Sec-Fetch-Site`, else `Origin`), and the form must carry the token its browser's cookie
/// holds (double submit). The first stops pages on the same site (another port of
/// `localhost`, a sibling subdomain), which can set cookies for this host but not forge
/// `Origin`; the second stops a post from anything that does not send those headers.
fn check_csrf(state: &AppState, headers: &HeaderMap, sent: &str) -> Result<(), Refusal> {
    let refuse = |why: &str| {
        Refusal::Page(
            StatusCode::FORBIDDEN,
            format!(
                "The form was not sent from this server's own page ({why}). Start the sign-in \
                 again from the application."
            ),
        )
    };
    // `Sec-Fetch-Site` first: browsers send it whatever the referrer policy, which turns
    // `Origin` into "null" on these pages (`no-referrer`).
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let same_origin = match (text("sec-fetch-site"), text("origin")) {
        (Some(site), _) => site == "same-origin",
        (None, Some(sent_from)) => origin(state, headers).is_ok_and(|ours| sent_from == ours),
        (None, None) => true,
    };
    if !same_origin {
        return Err(refuse("it was posted from another origin"));
    }
    match cookie_value(headers, CSRF_COOKIE) {
        Some(expected) if !sent.is_empty() && same_secret(expected, sent) => Ok(()),
        _ => Err(refuse("its CSRF token is missing or wrong")),
    }
}

/// A cookie for the OAuth pages: HttpOnly, `same_site`, Secure when the server is reached
/// over https.
fn cookie(
    state: &AppState,
    headers: &HeaderMap,
    name: &str,
    value: &str,
    same_site: &str,
) -> HeaderValue {
    let secure = origin(state, headers).is_ok_and(|o| o.starts_with("https://"));
    let text = format!(
        "{name}={value}; Path=/oauth; HttpOnly; SameSite={same_site}; Max-Age={}{}",
        SESSION_LIFETIME.num_seconds(),
        if secure { "; Secure" } else { "" }
    );
    // Names are constants and values base62 or base64url.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

fn serde_urlencoded_params(params: &AuthorizeParams) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in hidden_fields(params) {
        out.append_pair(name, value);
    }
    out.finish()
}

/// The request's parameters, carried through the forms.
fn hidden_fields(params: &AuthorizeParams) -> Vec<(&'static str, &str)> {
    [
        ("response_type", &params.response_type),
        ("client_id", &params.client_id),
        ("redirect_uri", &params.redirect_uri),
        ("state", &params.state),
        ("code_challenge", &params.code_challenge),
        ("code_challenge_method", &params.code_challenge_method),
        ("resource", &params.resource),
        ("scope", &params.scope),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.as_deref().map(|v| (name, v)))
    .collect()
}

fn hidden_inputs(params: &AuthorizeParams, csrf: &str) -> String {
    let mut out = format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", esc(csrf));
    for (name, value) in hidden_fields(params) {
        out.push_str(&format!("<input type=\"hidden\" name=\"{name}\" value=\"{}\">", esc(value)));
    }
    out
}

fn sign_in_page(
    request: &Request,
    params: &AuthorizeParams,
    csrf: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let body = format!(
        "{error}<p><strong>{client}</strong> asks for access to a Custory workspace on this \
         server. Sign in as the server's owner to choose what it may do.</p>\
         <form method=\"post\" action=\"/oauth/login\">{hidden}\
         <label>Owner credential<br><input type=\"password\" name=\"owner_credential\" \
         autocomplete=\"current-password\" placeholder=\"csa_…\" required autofocus></label>\
         <p><button type=\"submit\">Sign in</button></p></form>\
         <p class=\"hint\">The owner credential was printed when <code>custory-mcp serve</code> \
         first started; it is not an MCP key.</p>",
        error = error
            .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e)))
            .unwrap_or_default(),
        client = esc(&request.client.name),
        hidden = hidden_inputs(params, csrf),
    );
    page(status, "Sign in to custory-mcp", &body, None)
}

fn consent_page(
    state: &AppState,
    request: &Request,
    params: &AuthorizeParams,
    csrf: &str,
    peer: IpAddr,
    error: Option<&str>,
) -> Result<Response, OAuthError> {
    let workspaces = state.store.first_workspaces(WORKSPACES_SHOWN)?;
    let options: String = workspaces
        .iter()
        .map(|w| {
            format!(
                "<option value=\"{}\">{} ({})</option>",
                esc(&w.slug),
                esc(&w.name),
                esc(&w.slug)
            )
        })
        .collect();
    // Where the code goes, scheme and all: `evil://claude.ai/cb` must not read as claude.ai.
    let redirect_host = url::Url::parse(&request.redirect_uri)
        .ok()
        .map(|u| match u.host_str() {
            Some(host) => format!("{}://{host}", u.scheme()),
            None => format!("{}:", u.scheme()),
        })
        .unwrap_or_default();
    let key_name = default_key_name(&request.client.name, peer);
    let expiries = choices(&ExpiryPolicy::ALL, ExpiryPolicy::Days30, |policy| {
        policy.days().map_or_else(|| policy.lifetime(), |_| format!("in {}", policy.lifetime()))
    });
    let accesses = choices(&Access::ALL, Access::default(), |access| match access {
        Access::ReadWrite => format!("{access}: read and update the workspace"),
        Access::ReadOnly => access.to_string(),
    });
    let body = format!(
        "{error}<p><strong>{client}</strong> (registered as <code>{client_id}</code>, answering \
         at <code>{redirect_host}</code>) asks for an MCP key. Approving creates an ordinary key: \
         it is listed by <code>custory-mcp keys list</code>, and revoked, rotated and audited \
         like every key.</p>\
         <form method=\"post\" action=\"/oauth/authorize\">{hidden}\
         <p><label>Workspace<br><select name=\"workspace\">{options}</select></label></p>\
         <p><label>Key name<br><input type=\"text\" name=\"key_name\" value=\"{key_name}\" \
         maxlength=\"100\" required></label></p>\
         <p><label>Expires<br><select name=\"expires\">{expiries}</select></label></p>\
         <p><label>Access<br><select name=\"access\">{accesses}</select></label></p>\
         <p><button type=\"submit\" name=\"decision\" value=\"approve\">Approve</button> \
         <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></p></form>",
        error = error
            .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e)))
            .unwrap_or_default(),
        client = esc(&request.client.name),
        client_id = esc(&request.client.id),
        redirect_host = esc(&redirect_host),
        hidden = hidden_inputs(params, csrf),
        key_name = esc(&key_name),
    );
    Ok(page(StatusCode::OK, "Approve an MCP client", &body, Some(&request.redirect_uri)))
}

/// An `<option>` for each of `values` (a closed set), `selected` chosen.
fn choices<T: Copy + PartialEq + std::fmt::Display>(
    values: &[T],
    selected: T,
    label: impl Fn(T) -> String,
) -> String {
    let option = |value: T| {
        let chosen = if value == selected { " selected" } else { "" };
        format!("<option value=\"{value}\"{chosen}>{}</option>", esc(&label(value)))
    };
    values.iter().map(|&value| option(value)).collect()
}

/// `Claude Code on <host>`: the machine the sign-in came from (this one, for a loopback
/// browser).
fn default_key_name(client: &str, peer: IpAddr) -> String {
    let host = if peer.is_loopback() {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "this machine".to_owned())
    } else {
        peer.to_string()
    };
    let name = format!("{client} on {host}");
    name.chars().take(100).collect()
}

/// A page of the flow: no script, no framing, nothing cached; forms may post here and, on the
/// consent page, be redirected to the client (`redirect`).
fn page(status: StatusCode, title: &str, body: &str, redirect: Option<&str>) -> Response {
    let redirect_source = redirect
        .and_then(|uri| url::Url::parse(uri).ok())
        .map(|url| match url.scheme() {
            "http" | "https" => url.origin().ascii_serialization(),
            scheme => format!("{scheme}:"),
        })
        .unwrap_or_default();
    let csp = format!(
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' {redirect_source}; \
         frame-ancestors 'none'; base-uri 'none'"
    );
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head><body><main><h1>{title}</h1>{body}\
         </main></body></html>",
        title = esc(title),
    );
    let mut response = (status, no_store(), Html(html)).into_response();
    let headers = response.headers_mut();
    if let Ok(csp) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f6f6f4;color:#222}\
main{max-width:34rem;margin:3rem auto;padding:2rem;background:#fff;border-radius:8px}\
input,select{font:inherit;width:100%;padding:.4rem;box-sizing:border-box}\
button{font:inherit;padding:.5rem 1.2rem}.error{color:#a00}.hint{color:#666;font-size:.9em}";

fn paragraph(text: &str) -> String {
    format!("<p>{}</p>", esc(text))
}

/// Text for HTML, in an element or a quoted attribute.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The token endpoint

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
    if state.store.oauth_client(client_id)?.is_none() {
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
    match store.redeem_code(&redemption) {
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
                return Err(OAuthError {
                    retry_after: Some(wait),
                    ..OAuthError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "invalid_grant",
                        "too many failed token requests from this address",
                    )
                });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::oauth::{check_redirect_uri, redirect_registered};

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
        assert_eq!(esc("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }
}
