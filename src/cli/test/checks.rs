//! The stages, in the order a real client meets them: the token's format and checksum (local),
//! the connection, OAuth discovery (which must *not* answer), `initialize` (status, JSON-RPC,
//! protocol version, server name), `tools/list`, and whether the server also speaks the stateless
//! revision 2026-07-28 (`server/discover`, with the headers it requires).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use reqwest::Url;
use reqwest::header;
use serde_json::{Value, json};

use super::diagnose::{http_failure, network_cause};
use super::http::{
    NextSteps, Target, clean, content_type, host_port, initialize_request, millis, post, post_with,
    rpc_result, show_ms, status_text,
};
use super::report::{Checklist, ServerInfo, Stage};
use crate::api::CONNECTION_CHECK_CLIENT;
use crate::mcp::protocol::{
    ClientRequest, LATEST_VERSION, MODERN_VERSION, SERVER_NAME, SUPPORTED_VERSIONS, meta,
};
use crate::token::{PlainToken, TokenKind};

/// Pages of `tools/list` followed before giving up on a server that never ends.
const MAX_TOOL_PAGES: usize = 20;

/// Where the token came from, for the report (never the token itself).
#[derive(Debug)]
pub(super) enum TokenSource {
    Env(String),
    Saved(String),
}

impl TokenSource {
    /// `$VAR` or `saved key KEY`.
    pub(super) fn name(&self) -> String {
        match self {
            TokenSource::Env(var) => format!("${var}"),
            TokenSource::Saved(key) => format!("saved key {key}"),
        }
    }
}

/// Runs every stage that can run, recording each in `list`.
pub(super) async fn run(
    list: &mut Checklist,
    url: &Url,
    raw_token: &str,
    source: &TokenSource,
    timeout: u64,
    next: &NextSteps,
) -> anyhow::Result<()> {
    let Some(token) = check_token(list, raw_token, source, next) else {
        return Ok(());
    };
    let client = crate::client::with_extra_roots(reqwest::Client::builder())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(timeout))
        .connect_timeout(Duration::from_secs(timeout))
        .user_agent(format!("{CONNECTION_CHECK_CLIENT}/{}", env!("CARGO_PKG_VERSION")))
        .build()
        .context("could not set up the HTTP client")?;
    let target = Target { url, client, token, timeout, next };

    if !check_connect_and_discovery(list, &target).await {
        return Ok(());
    }
    let Some(version) = check_initialize(list, &target).await else {
        return Ok(());
    };
    check_tools(list, &target, &version).await;
    check_modern(list, &target).await;
    Ok(())
}

/// Stage "token format": prefix, length, characters and checksum, without any network.
pub(super) fn check_token(
    list: &mut Checklist,
    raw: &str,
    source: &TokenSource,
    next: &NextSteps,
) -> Option<PlainToken> {
    const NAME: &str = "token format";
    let token = match PlainToken::parse(raw) {
        Ok(token) => token,
        Err(error) => {
            list.stop(Stage::fail(
                NAME,
                format!("{} holds no valid MCP key: {error}", source.name()),
                format!(
                    "copy the whole token again, or create a new key with `{}` (a token is \
                     shown only once)",
                    next.create
                ),
            ));
            return None;
        }
    };
    if token.kind() == TokenKind::Owner {
        list.stop(Stage::fail(
            NAME,
            format!(
                "{} holds the owner credential (csa_…), which the MCP endpoint refuses",
                source.name()
            ),
            format!("give MCP clients an MCP key (cst_…): `{}`", next.create),
        ));
        return None;
    }
    if token.kind() != TokenKind::Mcp {
        list.stop(Stage::fail(
            NAME,
            format!(
                "{} holds a member credential or an invitation code, which the MCP endpoint \
                 refuses",
                source.name()
            ),
            "give MCP clients an MCP key (cst_…): `custory-mcp keys create --save`",
        ));
        return None;
    }
    list.record(Stage::pass(
        NAME,
        format!("{}… from {}, checksum ok", token.display_prefix(), source.name()),
    ));
    Some(token)
}

/// Stages "connect" and "OAuth discovery". The first discovery request doubles as the
/// connection check: it is the first thing many clients fetch, and it needs no token.
pub(super) async fn check_connect_and_discovery(list: &mut Checklist, target: &Target<'_>) -> bool {
    let mut paths = Vec::new();
    let mcp_path = target.url.path().trim_end_matches('/');
    if !mcp_path.is_empty() {
        paths.push(format!("/.well-known/oauth-protected-resource{mcp_path}"));
    }
    paths.push("/.well-known/oauth-protected-resource".to_owned());
    paths.push("/.well-known/oauth-authorization-server".to_owned());

    let mut answers = Vec::new();
    let mut offered: Option<String> = None;
    for (index, path) in paths.iter().enumerate() {
        let mut url = target.url.clone();
        url.set_path(path);
        url.set_query(None);
        let started = Instant::now();
        crate::output::trace(|| format!("→ GET {url}"));
        let answer = target.client.get(url).header(header::ACCEPT, "application/json").send().await;
        crate::output::trace(|| match &answer {
            Ok(response) => {
                format!("← {} in {} ms", response.status(), started.elapsed().as_millis())
            }
            Err(error) => format!("← no answer: {error}"),
        });
        match answer {
            Ok(response) => {
                if index == 0 {
                    let elapsed = started.elapsed();
                    let over = if target.url.scheme() == "https" { " over TLS" } else { "" };
                    list.record(Stage::pass(
                        "connect",
                        format!("{} answered{over} in {}", host_port(target.url), show_ms(elapsed)),
                    ));
                }
                let location = response
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .map(|l| clean(l, &target.token));
                let content_type = content_type(response.headers());
                let status = response.status();
                // The resource's own metadata is read: a server with OAuth on names its
                // authorization server there.
                if index == 0 && !mcp_path.is_empty() && status.is_success() {
                    let body = response.text().await.unwrap_or_default();
                    offered = serde_json::from_str::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|m| m["authorization_servers"][0].as_str().map(str::to_owned));
                }
                answers.push((path.clone(), status, content_type, location));
            }
            Err(error) => {
                let stage = if index == 0 { "connect" } else { "OAuth discovery" };
                let (detail, hint) = network_cause(&error, target);
                list.stop(Stage::fail(stage, detail, hint));
                return false;
            }
        }
    }

    const NAME: &str = "OAuth discovery";
    let consequence = "clients such as Claude Code, Cursor and mcp-remote then ignore the \
                       configured Authorization header and start an OAuth flow";
    // OAuth as `serve --oauth` offers it: the resource's metadata names an authorization
    // server, and the root paths that clients probe without a 401 stay 404.
    let scoped = usize::from(offered.is_some());
    let offending = answers
        .iter()
        .skip(scoped)
        .find(|(_, status, _, _)| status.is_success() || status.is_redirection());
    if let (Some(server), None) = (&offered, offending) {
        list.record(Stage::pass(
            NAME,
            format!(
                "offered after a 401 only: {} names the authorization server {}, and the root \
                 /.well-known/oauth-* paths answer 404, so clients with a valid key keep using \
                 it and clients without one can sign in",
                answers[0].0,
                clean(server, &target.token)
            ),
        ));
        return true;
    }
    let offending = offending.or_else(|| {
        answers.iter().find(|(_, status, _, _)| status.is_success() || status.is_redirection())
    });
    match offending {
        None => {
            let mut statuses: Vec<u16> =
                answers.iter().map(|(_, status, _, _)| status.as_u16()).collect();
            statuses.sort_unstable();
            statuses.dedup();
            let statuses: Vec<String> = statuses.iter().map(u16::to_string).collect();
            list.record(Stage::pass(
                NAME,
                format!(
                    "not offered ({}), so clients use the configured Authorization header",
                    statuses.join(", ")
                ),
            ));
        }
        Some((path, status, _, location)) if status.is_redirection() => {
            let to = location.as_deref().unwrap_or("somewhere else");
            list.record(Stage::fail(
                NAME,
                format!(
                    "{path} redirects ({}) to {to} instead of answering 404: {consequence}",
                    status.as_u16()
                ),
                "make every /.well-known/oauth-* path answer 404 (a catch-all redirect in a \
                 proxy is the usual cause)",
            ));
        }
        Some((path, status, content_type, _)) => {
            let what = content_type.as_deref().unwrap_or("a body");
            list.record(Stage::fail(
                NAME,
                format!("{path} answers {} with {what}: {consequence}", status_text(*status)),
                "make every /.well-known/oauth-* path answer 404 (a catch-all route or proxy \
                 rule that answers 200 is the usual cause)",
            ));
        }
    }
    true
}

/// Stages "initialize", "protocol version" and "server". Returns the negotiated version when
/// the session can go on.
pub(super) async fn check_initialize(list: &mut Checklist, target: &Target<'_>) -> Option<String> {
    const NAME: &str = "initialize";
    let answer = match post(target, initialize_request(), None).await {
        Ok(answer) => answer,
        Err(error) => {
            let (detail, hint) = network_cause(&error, target);
            list.stop(Stage::fail(NAME, detail, hint));
            return None;
        }
    };
    list.round_trip.initialize = Some(millis(answer.elapsed));
    if let Some(stage) = http_failure(&answer, target) {
        list.stop(stage);
        return None;
    }
    let result = match rpc_result(&answer, 1, target) {
        Ok(result) => result,
        Err((detail, hint)) => {
            list.stop(Stage::fail(NAME, detail, hint));
            return None;
        }
    };
    list.record(Stage::pass(
        NAME,
        format!("{} in {}", status_text(answer.status), show_ms(answer.elapsed)),
    ));

    let version =
        result.get("protocolVersion").and_then(Value::as_str).map(|v| clean(v, &target.token));
    let version = match version {
        Some(version) if SUPPORTED_VERSIONS.contains(&version.as_str()) => {
            let asked = if version == LATEST_VERSION {
                String::new()
            } else {
                format!(" (asked for {LATEST_VERSION})")
            };
            list.record(Stage::pass("protocol version", format!("{version}{asked}")));
            list.report.protocol_version = Some(version.clone());
            version
        }
        Some(version) => {
            list.report.protocol_version = Some(version.clone());
            list.stop(Stage::fail(
                "protocol version",
                format!(
                    "the server speaks {version}, which custory-mcp does not ({})",
                    SUPPORTED_VERSIONS.join(", ")
                ),
                "update whichever of the two is older",
            ));
            return None;
        }
        None => {
            list.stop(Stage::fail(
                "protocol version",
                "the initialize result has no protocolVersion",
                "this is not a conforming MCP server: check --url",
            ));
            return None;
        }
    };

    let info = result.get("serverInfo");
    let field = |name: &str| {
        info.and_then(|i| i.get(name)).and_then(Value::as_str).map(|v| clean(v, &target.token))
    };
    match field("name") {
        Some(name) => {
            let version_text = field("version").map(|v| format!(" {v}")).unwrap_or_default();
            let stage = if name == SERVER_NAME {
                Stage::pass("server", format!("{name}{version_text}"))
            } else {
                Stage::warn(
                    "server",
                    format!(
                        "this is not a custory-mcp server: it calls itself {name}{version_text}"
                    ),
                    "check --url: it should point at a server started with `custory-mcp serve`",
                )
            };
            list.record(stage);
            list.report.server =
                Some(ServerInfo { name, title: field("title"), version: field("version") });
        }
        None => {
            list.record(Stage::warn(
                "server",
                "the initialize result has no serverInfo.name",
                "check --url: it should point at a server started with `custory-mcp serve`",
            ));
        }
    }
    Some(version)
}

/// Stage "tools/list": at least one tool, following pages.
pub(super) async fn check_tools(list: &mut Checklist, target: &Target<'_>, version: &str) {
    const NAME: &str = "tools/list";
    let mut count = 0;
    let mut elapsed = Duration::ZERO;
    let mut cursor: Option<String> = None;
    // initialize was id 1.
    let mut id: u64 = 1;
    for page in 1..=MAX_TOOL_PAGES {
        let params = match &cursor {
            Some(cursor) => json!({"cursor": cursor}),
            None => json!({}),
        };
        id += 1;
        let request = ClientRequest::new(id, "tools/list", params).to_json();
        let answer = match post(target, request, Some(version)).await {
            Ok(answer) => answer,
            Err(error) => {
                let (detail, hint) = network_cause(&error, target);
                list.stop(Stage::fail(NAME, detail, hint));
                return;
            }
        };
        elapsed += answer.elapsed;
        if let Some(mut stage) = http_failure(&answer, target) {
            stage.name = NAME;
            list.stop(stage);
            return;
        }
        let result = match rpc_result(&answer, id, target) {
            Ok(result) => result,
            Err((detail, hint)) => {
                list.stop(Stage::fail(NAME, detail, hint));
                return;
            }
        };
        let Some(tools) = result.get("tools").and_then(Value::as_array) else {
            list.stop(Stage::fail(
                NAME,
                "the result has no \"tools\" list",
                "this is not a conforming MCP server: check --url",
            ));
            return;
        };
        count += tools.len();
        cursor = result.get("nextCursor").and_then(Value::as_str).map(str::to_owned);
        if cursor.is_none() || page == MAX_TOOL_PAGES {
            break;
        }
    }
    list.round_trip.tools_list = Some(millis(elapsed));
    list.report.tools = Some(count);
    if count == 0 {
        list.record(Stage::fail(
            NAME,
            "the server lists no tools, so an agent can do nothing with it",
            format!(
                "check the server's version and the key's workspace (`{}`)",
                target.next.show.as_deref().unwrap_or("custory-mcp keys list")
            ),
        ));
    } else {
        let tools = if count == 1 { "tool" } else { "tools" };
        list.record(Stage::pass(NAME, format!("{count} {tools} in {}", show_ms(elapsed))));
    }
}

/// Stage "2026-07-28": whether the server also speaks the stateless revision, which clients
/// such as the Python SDK 2.x try first (`server/discover`). Not speaking it is a warning: those
/// clients fall back to the handshake.
pub(super) async fn check_modern(list: &mut Checklist, target: &Target<'_>) {
    const NAME: &str = "2026-07-28";
    if list.stopped {
        return;
    }
    let params = json!({"_meta": {
        meta::PROTOCOL_VERSION: MODERN_VERSION,
        meta::CLIENT_CAPABILITIES: {},
        meta::CLIENT_INFO: {"name": CONNECTION_CHECK_CLIENT, "version": env!("CARGO_PKG_VERSION")},
    }});
    let request = ClientRequest::new(100, "server/discover", params).to_json();
    let headers = [("Mcp-Method", "server/discover")];
    let answer = match post_with(target, request, Some(MODERN_VERSION), &headers).await {
        Ok(answer) => answer,
        Err(error) => {
            let (detail, hint) = network_cause(&error, target);
            list.record(Stage::warn(NAME, detail, hint));
            return;
        }
    };
    let speaks = rpc_result(&answer, 100, target).ok().is_some_and(|result| {
        result.get("resultType").and_then(Value::as_str) == Some("complete")
            && result
                .get("supportedVersions")
                .and_then(Value::as_array)
                .is_some_and(|v| v.iter().any(|v| v.as_str() == Some(MODERN_VERSION)))
    });
    list.report.stateless_revision = Some(speaks);
    let code = serde_json::from_slice::<Value>(&answer.body)
        .ok()
        .and_then(|body| body.pointer("/error/code").and_then(Value::as_i64));
    if code == Some(-32020) {
        list.record(Stage::warn(
            NAME,
            "the server speaks it, but says the request's Mcp-Method header is missing or \
             changed (-32020): something on the way drops or rewrites Mcp-* headers",
            "let the proxy pass the Mcp-Method and Mcp-Name headers through unchanged",
        ));
    } else if speaks {
        list.record(Stage::pass(
            NAME,
            format!("the stateless revision too (server/discover in {})", show_ms(answer.elapsed)),
        ));
    } else {
        list.record(Stage::warn(
            NAME,
            format!(
                "the server speaks only the handshake era ({}): clients that try \
                 {MODERN_VERSION} first fall back to it",
                status_text(answer.status)
            ),
            "nothing to do for the connection; a newer custory-mcp server speaks both",
        ));
    }
}
