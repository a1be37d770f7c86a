//! The pages of the flow, rendered by askama from `templates/oauth/`: typed contexts checked
//! when the crate compiles, and every value escaped unless a template says otherwise (none
//! does). No script, no framing, nothing cached; forms post here and, from the consent page,
//! may be redirected to the client.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::no_store;
use crate::api::{Access, ExpiryPolicy, Workspace};

/// The expiry the consent form offers first.
const DEFAULT_EXPIRY: ExpiryPolicy = ExpiryPolicy::Days30;

/// How the consent form words an expiry.
fn expiry_label(expiry: ExpiryPolicy) -> &'static str {
    match expiry {
        ExpiryPolicy::Days30 => "in 30 days",
        ExpiryPolicy::Days90 => "in 90 days",
        ExpiryPolicy::Never => "never",
    }
}

/// How the consent form words an access.
fn access_label(access: Access) -> &'static str {
    match access {
        Access::ReadWrite => "read-write: read and update the workspace",
        Access::ReadOnly => "read-only",
    }
}

/// One `<option>` of a choice the consent form offers.
struct Choice {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

#[derive(Template)]
#[template(path = "oauth/sign_in.html")]
struct SignInPage<'a> {
    title: &'a str,
    client: &'a str,
    csrf: &'a str,
    fields: &'a [(&'a str, &'a str)],
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "oauth/consent.html")]
struct ConsentPage<'a> {
    title: &'a str,
    page: &'a Consent<'a>,
    redirect_host: String,
    expiries: Vec<Choice>,
    accesses: Vec<Choice>,
}

#[derive(Template)]
#[template(path = "oauth/cannot_sign_in.html")]
struct CannotSignInPage<'a> {
    title: &'a str,
    message: &'a str,
}

/// The sign-in form: the owner credential, with the authorization request's `fields` and the
/// browser's `csrf` token carried along.
pub(super) fn sign_in(
    status: StatusCode,
    client: &str,
    csrf: &str,
    fields: &[(&str, &str)],
    error: Option<&str>,
) -> Response {
    let page = SignInPage { title: "Sign in to custory-mcp", client, csrf, fields, error };
    respond(status, &page, None)
}

/// What the consent page shows and carries.
pub(super) struct Consent<'a> {
    pub client_name: &'a str,
    pub client_id: &'a str,
    /// Where the code goes: named on the page, and allowed as a form target.
    pub redirect_uri: &'a str,
    pub csrf: &'a str,
    pub fields: &'a [(&'a str, &'a str)],
    pub workspaces: &'a [Workspace],
    /// The key name the form suggests.
    pub key_name: &'a str,
    pub error: Option<&'a str>,
    /// The expiries and accesses every workspace offered allows (their key policies); empty:
    /// all of them.
    pub allowed: (&'a [ExpiryPolicy], &'a [Access]),
}

/// The consent form: workspace, key name, expiry and access, then Approve or Deny.
pub(super) fn consent(consent: &Consent<'_>) -> Response {
    respond(StatusCode::OK, &consent_page(consent), Some(consent.redirect_uri))
}

fn consent_page<'a>(consent: &'a Consent<'a>) -> ConsentPage<'a> {
    // Where the code goes, scheme and all: `evil://claude.ai/cb` must not read as claude.ai.
    let redirect_host = url::Url::parse(consent.redirect_uri)
        .ok()
        .map(|u| match u.host_str() {
            Some(host) => format!("{}://{host}", u.scheme()),
            None => format!("{}:", u.scheme()),
        })
        .unwrap_or_default();
    // Only what the workspace policies allow; the default when it is allowed, else the first.
    let (expiries, accesses) = consent.allowed;
    let expiries = if expiries.is_empty() { &ExpiryPolicy::ALL[..] } else { expiries };
    let accesses = if accesses.is_empty() { &Access::ALL[..] } else { accesses };
    let first_expiry =
        if expiries.contains(&DEFAULT_EXPIRY) { DEFAULT_EXPIRY } else { expiries[0] };
    let first_access =
        if accesses.contains(&Access::default()) { Access::default() } else { accesses[0] };
    let expiries = expiries
        .iter()
        .map(|&e| Choice { value: e.as_str(), label: expiry_label(e), selected: e == first_expiry })
        .collect();
    let accesses = accesses
        .iter()
        .map(|&a| Choice { value: a.as_str(), label: access_label(a), selected: a == first_access })
        .collect();
    ConsentPage { title: "Approve an MCP client", page: consent, redirect_host, expiries, accesses }
}

/// A request that cannot go on, and why, with no link anywhere.
pub(super) fn cannot_sign_in(status: StatusCode, message: &str) -> Response {
    respond(status, &CannotSignInPage { title: "Cannot sign in", message }, None)
}

/// Renders `page` with the headers every page of the flow carries; forms may post to this
/// origin and, when `redirect` is given, to that URI's origin.
fn respond(status: StatusCode, page: &impl Template, redirect: Option<&str>) -> Response {
    let html = match page.render() {
        Ok(html) => html,
        Err(error) => {
            // Only a failing `Display` of a value could get here.
            tracing::error!(%error, "an OAuth page could not be rendered");
            return (StatusCode::INTERNAL_SERVER_ERROR, no_store(), "the page could not be shown")
                .into_response();
        }
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_page_shows_is_escaped_in_text_and_in_attributes() {
        let nasty = "<a href=\"x\">&'";
        let page = SignInPage {
            title: "Sign in to custory-mcp",
            client: nasty,
            csrf: nasty,
            fields: &[("state", nasty)],
            error: Some(nasty),
        };
        let html = page.render().expect("render");
        let escaped = "&#60;a href=&#34;x&#34;&#62;&#38;&#39;";
        assert!(!html.contains(nasty), "{html}");
        assert_eq!(html.matches(escaped).count(), 4, "{html}");
        for place in [
            "<strong>&#60;a href=&#34;x&#34;&#62;&#38;&#39;</strong>",
            "role=\"alert\">&#60;a href=&#34;x&#34;&#62;&#38;&#39;</p>",
            "name=\"csrf\" value=\"&#60;a href=&#34;x&#34;&#62;&#38;&#39;\"",
            "name=\"state\" value=\"&#60;a href=&#34;x&#34;&#62;&#38;&#39;\"",
        ] {
            assert!(html.contains(place), "{place} in {html}");
        }
    }

    #[test]
    fn the_consent_form_offers_every_expiry_and_access_with_the_defaults_chosen() {
        let workspaces = [Workspace {
            slug: "acme".into(),
            name: "Acme <Analytics>".into(),
            created_at: chrono::DateTime::UNIX_EPOCH,
        }];
        let consent = Consent {
            client_name: "Client",
            client_id: "ocl_x",
            redirect_uri: "cursor://anysphere.cursor-retrieval/oauth/cb",
            csrf: "c",
            fields: &[],
            workspaces: &workspaces,
            key_name: "Client on host",
            error: None,
            allowed: (&[], &[]),
        };
        let html = consent_page(&consent).render().expect("render");
        for option in [
            "<option value=\"acme\">Acme &#60;Analytics&#62; (acme)</option>",
            "<option value=\"30d\" selected>in 30 days</option>",
            "<option value=\"90d\">in 90 days</option>",
            "<option value=\"never\">never</option>",
            "<option value=\"read-write\" selected>read-write: read and update the workspace</option>",
            "<option value=\"read-only\">read-only</option>",
        ] {
            assert_eq!(html.matches(option).count(), 1, "{option} in {html}");
        }
        assert_eq!(
            html.matches("<option").count(),
            1 + ExpiryPolicy::ALL.len() + Access::ALL.len()
        );
        assert!(
            html.contains("answering at <code>cursor://anysphere.cursor-retrieval</code>"),
            "{html}"
        );
        let response = super::consent(&consent);
        let csp = response.headers()[header::CONTENT_SECURITY_POLICY].to_str().expect("text");
        assert!(csp.contains("form-action 'self' cursor:;"), "{csp}");
    }
}
