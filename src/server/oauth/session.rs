//! The owner at the browser: signing in with the owner credential, the session cookie that
//! keeps them signed in, and the CSRF rules every form post obeys. Cookies are read and
//! written with the `cookie` crate.

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cookie::{Cookie, SameSite};
use serde::Deserialize;

use super::request::{self, AuthorizeParams};
use super::{OAuthError, Refusal, no_store, origin, pages};
use crate::server::client_addr::ClientAddr;
use crate::server::{AppState, work};
use crate::store::access::oauth::{SESSION_LIFETIME, Signer, same_secret};
use crate::token::{PlainToken, TokenKind};

const SESSION_COOKIE: &str = "custory_owner_session";
const CSRF_COOKIE: &str = "custory_csrf";

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
    let request = request::check(&state, &headers, peer, &form.params).await?;
    check_csrf(&state, &headers, &form.csrf)?;
    let (csrf, _) = csrf_token(&state, &headers);
    // The owner credential, or a member's own (looked up in the database, like every use).
    let presented = PlainToken::parse(&form.owner_credential).ok();
    let signer = match presented {
        Some(t)
            if t.kind() == TokenKind::Owner
                && state.store.access().is_owner_credential(&t.hash()) =>
        {
            Some(Signer::Administrator)
        }
        Some(t) if t.kind() == TokenKind::Member => {
            let hash = t.hash();
            work::read(&state, move |store| {
                store.access().authenticate_member(&hash, None).map_err(OAuthError::from)
            })
            .await?
            .map(|m| Signer::Member { id: m.id, name: m.name })
        }
        _ => None,
    };
    let Some(signer) = signer else {
        if let Some(wait) = state.limiter.failed(peer) {
            return Err(Refusal::too_many_sign_ins(wait));
        }
        return Ok(pages::sign_in(
            StatusCode::UNAUTHORIZED,
            &request.client.name,
            &csrf,
            &form.params.fields(),
            Some(
                "That is not this server's owner credential. It begins csa_; `custory-mcp serve` \
                 printed it at first start, and `serve --reset-owner-credential` makes a new one. \
                 A member signs in with their own credential (csm_…).",
            ),
        ));
    };
    let session = work::write(&state, move |store| {
        match &signer {
            Signer::Administrator => store.access().create_owner_session(),
            Signer::Member { id, .. } => store.access().create_member_session(id),
        }
        .map_err(OAuthError::from)
    })
    .await?;
    let location = HeaderValue::from_str(&format!("/oauth/authorize?{}", form.params.query()))
        .map_err(|_| Refusal::Page(StatusCode::BAD_REQUEST, "Bad request.".into()))?;
    let cookie = set_cookie(&state, &headers, SESSION_COOKIE, &session, SameSite::Lax);
    Ok((
        StatusCode::SEE_OTHER,
        no_store(),
        [(header::LOCATION, location), (header::SET_COOKIE, cookie)],
    )
        .into_response())
}

/// Who the browser's live session belongs to (`None`: not signed in).
pub(super) async fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Signer>, OAuthError> {
    match request_cookie(headers, SESSION_COOKIE) {
        Some(session) => {
            work::read(state, move |store| {
                store.access().session_signer(&session).map_err(OAuthError::from)
            })
            .await
        }
        None => Ok(None),
    }
}

/// The browser's CSRF token, and the cookie that sets it when it has none yet.
pub(super) fn csrf_token(state: &AppState, headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    match request_cookie(headers, CSRF_COOKIE) {
        Some(token) if token.len() >= 32 => (token, None),
        _ => {
            let token = crate::token::random_base62(43);
            let cookie = set_cookie(state, headers, CSRF_COOKIE, &token, SameSite::Strict);
            (token, Some(cookie))
        }
    }
}

/// A form post must come from this server's own page: a browser says where it posts from
/// (`Sec-Fetch-Site`, else `Origin`), and the form must carry the token its browser's cookie
/// holds (double submit). The first stops pages on the same site (another port of
/// `localhost`, a sibling subdomain), which can set cookies for this host but not forge
/// `Origin`; the second stops a post from anything that does not send those headers.
pub(super) fn check_csrf(state: &AppState, headers: &HeaderMap, sent: &str) -> Result<(), Refusal> {
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
    match request_cookie(headers, CSRF_COOKIE) {
        Some(expected) if !sent.is_empty() && same_secret(&expected, sent) => Ok(()),
        _ => Err(refuse("its CSRF token is missing or wrong")),
    }
}

/// A cookie for the OAuth pages: HttpOnly, `same_site`, for `/oauth` only, as long as a
/// session lives, and Secure when the server is reached over https.
fn set_cookie(
    state: &AppState,
    headers: &HeaderMap,
    name: &'static str,
    value: &str,
    same_site: SameSite,
) -> HeaderValue {
    let secure = origin(state, headers).is_ok_and(|o| o.starts_with("https://"));
    let cookie = Cookie::build((name, value))
        .path("/oauth")
        .http_only(true)
        .same_site(same_site)
        .max_age(cookie::time::Duration::seconds(SESSION_LIFETIME.num_seconds()))
        .secure(secure)
        .build();
    // Names are constants and values base62 or base64url: always a valid header.
    HeaderValue::from_str(&cookie.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The value of the request's cookie `name` (the first, if the browser sent it twice).
fn request_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .flatten()
        .find(|cookie| cookie.name() == name)
        .map(|cookie| cookie.value().to_owned())
}
