//! Why a stage failed, in words a person can act on: HTTP statuses (401 with its reason, 403,
//! a wrong path, redirects) and network failures (DNS, refused, TLS, timeout).

use reqwest::header;

use super::http::{
    Answer, MCP_PATH, Target, auth_param, clean, excerpt, host_port, server_message, status_text,
    with_path,
};
use super::report::Stage;

/// The stage for an HTTP status that is not a success, with the cause and the fix.
pub(super) fn http_failure(answer: &Answer, target: &Target<'_>) -> Option<Stage> {
    const NAME: &str = "initialize";
    let status = answer.status;
    if status.is_success() {
        return None;
    }
    let url = target.url;
    let said = server_message(answer, &target.token);
    let stage = match status.as_u16() {
        401 => unauthorized(answer, target),
        403 => forbidden(answer, target, said),
        404 if url.path() == MCP_PATH => Stage::fail(
            NAME,
            format!("{}: nothing answers at {MCP_PATH} here", status_text(status)),
            "check --url, and any proxy in front of the server: it must pass POST /api/mcp \
             through unchanged",
        ),
        404 => Stage::fail(
            NAME,
            format!(
                "{}: wrong path ({}); the MCP endpoint is {MCP_PATH}",
                status_text(status),
                url.path()
            ),
            format!("use --url {}", with_path(url, MCP_PATH)),
        ),
        _ if status.is_redirection() => {
            let to = answer
                .headers
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map_or_else(|| "another address".to_owned(), |l| clean(l, &target.token));
            Stage::fail(
                NAME,
                format!("{}: the server redirects to {to}", status_text(status)),
                "clients may not follow a redirected POST (301 and 302 turn it into a GET): \
                 point --url and the client's config at the final address",
            )
        }
        _ => {
            let excerpt = said.unwrap_or_else(|| excerpt(&answer.body, &target.token));
            let detail = if excerpt.is_empty() {
                status_text(status)
            } else {
                format!("{}: {excerpt}", status_text(status))
            };
            let hint = if status.is_server_error() {
                "the server failed: look at its log (`custory-mcp serve` prints it), then try again"
            } else {
                "is --url the MCP endpoint of a custory-mcp server? (it is POST /api/mcp)"
            };
            Stage::fail(NAME, detail, hint)
        }
    };
    Some(stage)
}

/// 403: which refusal (the JSON-RPC error's `data.reason`), with its own remedy; the server's
/// sentence shown once, without the status it repeats.
fn forbidden(answer: &Answer, target: &Target<'_>, said: Option<String>) -> Stage {
    let reason = serde_json::from_slice::<serde_json::Value>(&answer.body).ok().and_then(|body| {
        body.pointer("/error/data/reason").and_then(|r| r.as_str()).map(str::to_owned)
    });
    let said = said.map(|s| s.strip_prefix("Forbidden: ").map(str::to_owned).unwrap_or(s));
    let detail = format!(
        "{}: {}",
        status_text(answer.status),
        said.as_deref().unwrap_or("the server refused the request")
    );
    let hint = match reason.as_deref() {
        Some("address_not_allowed") => match &target.next.show {
            Some(show) => format!(
                "the key is limited to some addresses and this one is not among them: `{show}` \
                 lists them; use the key from one of them, or make a key for this address"
            ),
            None => "the key is limited to some addresses and this one is not among them: use \
                     it from one of them, or make a key for this address"
                .to_owned(),
        },
        Some("host_not_allowed") => "the server does not answer to this host name: use the \
            address it listens on in --url, or start it with `custory-mcp serve --allow-host HOST`"
            .to_owned(),
        Some("origin_not_allowed") => "custory-mcp refuses browser Origins it was not told \
            about: start it with `custory-mcp serve --allow-origin ORIGIN`"
            .to_owned(),
        Some(_) => match &target.next.show {
            Some(show) => format!("the server says why above; `{show}` shows the key's limits"),
            None => "the server says why above".to_owned(),
        },
        None => "a proxy or gateway in front of the server refused the request: check its \
                 access rules"
            .to_owned(),
    };
    Stage::fail("initialize", detail, hint)
}

/// 401: unknown, revoked or expired key, from `WWW-Authenticate: … error_description="…"`.
pub(super) fn unauthorized(answer: &Answer, target: &Target<'_>) -> Stage {
    const NAME: &str = "initialize";
    let challenge = answer
        .headers
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(", ");
    let description = auth_param(&challenge, "error_description")
        .map(|d| clean(&d, &target.token))
        .or_else(|| server_message(answer, &target.token))
        .unwrap_or_default();
    let lower = description.to_ascii_lowercase();
    let oauth = if auth_param(&challenge, "resource_metadata").is_some() {
        " (the server also advertises OAuth metadata, so clients will start an OAuth flow)"
    } else {
        ""
    };
    let (detail, hint) = if lower.contains("revoked") {
        (
            "this MCP key was revoked".to_owned(),
            format!(
                "a revoked key cannot be brought back: create a new one with `{}` and give its \
                 token to the client (`custory-mcp config --help` lists the clients)",
                target.next.create
            ),
        )
    } else if lower.contains("expired") {
        (
            "this MCP key has expired".to_owned(),
            format!(
                "rotate it with `{}` (same name and access, new token) and give the new token \
                 to the client",
                target.next.rotate.as_deref().unwrap_or("custory-mcp keys rotate KEY")
            ),
        )
    } else if lower.contains("unknown") {
        (
            "the server does not know this key: it was issued by another server, or this \
             server's database was replaced"
                .to_owned(),
            format!(
                "check that --url points at the server that issued the key, or create a key on \
                 this one with `{}`",
                target.next.create
            ),
        )
    } else {
        let said =
            if description.is_empty() { "the token was refused".to_owned() } else { description };
        (said, format!("create a new key with `{}`", target.next.create))
    };
    Stage::fail(NAME, format!("401 Unauthorized: {detail}{oauth}"), hint)
}

/// What went wrong on the network, and what to do about it.
pub(super) fn network_cause(error: &reqwest::Error, target: &Target<'_>) -> (String, String) {
    let url = target.url;
    let host = url.host_str().unwrap_or_default();
    let place = host_port(url);
    let mut chain = Vec::new();
    let mut refused = false;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = source {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            refused |= io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        chain.push(error.to_string());
        source = error.source();
    }
    // Each layer often repeats its source's text: keep the innermost, most specific one.
    let innermost = chain.last().cloned().unwrap_or_default();
    let all = chain.join(": ").to_ascii_lowercase();

    if error.is_timeout() {
        return (
            format!("no answer from {place} within {}s", target.timeout),
            "check that the server is running and reachable from here (firewall, VPN, proxy), \
             or allow more time with --timeout SECS"
                .to_owned(),
        );
    }
    if refused {
        return (
            format!("nothing is listening at {place}"),
            "start it with `custory-mcp serve`, or check --url".to_owned(),
        );
    }
    if all.contains("dns error")
        || all.contains("failed to lookup address")
        || all.contains("name or service not known")
        || all.contains("no address associated")
    {
        return (
            format!("could not resolve {host}"),
            "check the host name in --url (or --server), and that this machine is on the \
             right network or VPN"
                .to_owned(),
        );
    }
    if all.contains("certificate")
        || all.contains("unknownissuer")
        || all.contains("notvalidforname")
    {
        let why = if all.contains("unknownissuer")
            || all.contains("unknown issuer")
            || all.contains("self-signed")
            || all.contains("self signed")
        {
            "it is self-signed or issued by an authority this machine does not trust".to_owned()
        } else if all.contains("expired") {
            "it has expired".to_owned()
        } else if all.contains("notvalidforname") || all.contains("not valid for name") {
            format!("it is not valid for the name {host}")
        } else {
            innermost
        };
        return (
            format!("TLS failed: the certificate of {place} is not trusted: {why}"),
            "give the server a certificate from an authority this machine trusts (or add its \
             CA to the system trust store); a local server is plain http://127.0.0.1:8787"
                .to_owned(),
        );
    }
    if all.contains("invalidcontenttype")
        || all.contains("corrupt message")
        || all.contains("wrong version number")
    {
        return (
            format!("TLS failed: {place} does not speak TLS"),
            "use http:// instead of https:// in --url".to_owned(),
        );
    }
    if all.contains("tls") || all.contains("handshake") || all.contains("alert") {
        return (
            format!("TLS failed with {place}: {innermost}"),
            "check the server's TLS setup, or that --url has the right scheme and port".to_owned(),
        );
    }
    (
        format!("could not reach {place}: {}", chain.join(": ")),
        "check --url, and that the server is running".to_owned(),
    )
}

// ---------------------------------------------------------------------------------------------
// Small helpers

#[cfg(test)]
mod tests {
    use super::super::http::{auth_param, clean, sse_messages};
    use crate::token::{PlainToken, TokenKind};
    use serde_json::json;

    #[test]
    fn auth_params_are_read_from_a_challenge() {
        let challenge = r#"Bearer realm="custory", error="invalid_token", error_description="this MCP key was revoked: create a new one (custory-mcp keys create)""#;
        assert_eq!(auth_param(challenge, "error").as_deref(), Some("invalid_token"));
        assert_eq!(
            auth_param(challenge, "error_description").as_deref(),
            Some("this MCP key was revoked: create a new one (custory-mcp keys create)")
        );
        assert_eq!(auth_param(challenge, "resource_metadata"), None);
        assert_eq!(auth_param(r#"Bearer error=x, realm="a\"b""#, "realm").as_deref(), Some("a\"b"));
    }

    #[test]
    fn server_text_is_scrubbed() {
        let token = PlainToken::generate(TokenKind::Mcp);
        let text = format!("echo: Bearer {}\n\x1b[31mred", token.expose());
        let cleaned = clean(&text, &token);
        assert!(!cleaned.contains(token.expose()));
        assert!(!cleaned.contains('\x1b'));
        assert_eq!(cleaned, "echo: Bearer [token] [31mred");
    }

    #[test]
    fn sse_bodies_yield_their_messages() {
        let body = b"id: 1\ndata:\n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n";
        let messages = sse_messages(body);
        assert_eq!(messages, vec![json!({"jsonrpc": "2.0", "id": 1, "result": {}})]);
    }
}
