//! One POST to the MCP endpoint and what came back, read with care: the server may be anything,
//! so everything it says is quoted only through [`clean`] (token scrubbed, no terminal escapes).

use std::time::{Duration, Instant};

use reqwest::header::{self, HeaderMap};
use reqwest::{StatusCode, Url};
use serde_json::{Value, json};

use crate::mcp::protocol::{
    ACCEPT_BOTH, ClientRequest, Implementation, InitializeParams, LATEST_VERSION,
};
use crate::token::PlainToken;

pub(super) const MCP_PATH: &str = "/api/mcp";
/// Largest response body read from the server (anything larger is cut off).
const MAX_BODY: usize = 4 * 1024 * 1024;
/// Longest piece of a server's answer quoted in a stage's detail.
const EXCERPT_CHARS: usize = 200;

/// What the MCP endpoint answered to one POST (raw: quote it only through [`clean`]).
pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) body: Vec<u8>,
    pub(super) elapsed: Duration,
}

pub(super) struct Target<'a> {
    pub(super) url: &'a Url,
    pub(super) client: reqwest::Client,
    pub(super) token: PlainToken,
    pub(super) timeout: u64,
    pub(super) next: &'a NextSteps,
}

/// The commands the checks suggest, made for this run (its `--server` and `--workspace`, the
/// key it tests), each runnable as printed.
pub(super) struct NextSteps {
    /// `keys create … --save`, complete (a name and an expiry), so it runs anywhere.
    pub(super) create: String,
    /// `keys rotate KEY`, for the key tested (`--key`, else the token's prefix).
    pub(super) rotate: Option<String>,
    /// `keys show KEY`, likewise.
    pub(super) show: Option<String>,
}

impl NextSteps {
    /// `rotate` and `show` name `key`, or else the tested token's prefix.
    pub(super) fn new(
        global: &crate::cli::GlobalArgs,
        key: Option<&str>,
        prefix: Option<&str>,
    ) -> Self {
        let command = |args: &[&str]| crate::cli::shared::command_line(global, args);
        let key = key.or(prefix);
        Self {
            create: command(&crate::cli::shared::CREATE_KEY),
            rotate: key.map(|key| command(&["keys", "rotate", key])),
            show: key.map(|key| command(&["keys", "show", key])),
        }
    }
}

/// The `initialize` request, as sent by the check and by the `--curl` command (keys in the
/// order people expect to read them).
pub(super) fn initialize_request() -> String {
    let client = Implementation {
        name: crate::api::CONNECTION_CHECK_CLIENT.into(),
        title: None,
        version: Some(env!("CARGO_PKG_VERSION").into()),
    };
    let params = InitializeParams {
        protocol_version: LATEST_VERSION.into(),
        capabilities: json!({}),
        client_info: json!(client),
    };
    ClientRequest::new(1, "initialize", params).to_json()
}

/// POSTs one JSON-RPC message the way a conforming client does and reads the whole answer.
pub(super) async fn post(
    target: &Target<'_>,
    body: String,
    version: Option<&str>,
) -> Result<Answer, reqwest::Error> {
    post_with(target, body, version, &[]).await
}

/// [`post`] with more request headers (2026-07-28 mirrors the method in `Mcp-Method`).
pub(super) async fn post_with(
    target: &Target<'_>,
    body: String,
    version: Option<&str>,
    extra: &[(&str, &str)],
) -> Result<Answer, reqwest::Error> {
    let mut request = target
        .client
        .post(target.url.clone())
        .bearer_auth(target.token.expose())
        .header(header::ACCEPT, ACCEPT_BOTH)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body);
    if let Some(version) = version {
        request = request.header("MCP-Protocol-Version", version);
    }
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let started = Instant::now();
    crate::output::trace(|| format!("→ POST {} ({})", target.url, version.unwrap_or("no version")));
    let mut response = request.send().await?;
    let status = response.status();
    crate::output::trace(|| format!("← {status} in {} ms", started.elapsed().as_millis()));
    let headers = response.headers().clone();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        body.extend_from_slice(&chunk);
        if body.len() >= MAX_BODY {
            body.truncate(MAX_BODY);
            break;
        }
    }
    Ok(Answer { status, headers, body, elapsed: started.elapsed() })
}

/// The `result` of the JSON-RPC response with `id`, or the cause and fix of why there is none.
pub(super) fn rpc_result(
    answer: &Answer,
    id: u64,
    target: &Target<'_>,
) -> Result<Value, (String, String)> {
    let not_rpc = |why: String| {
        (why, "is --url the MCP endpoint of a custory-mcp server? (it is POST /api/mcp)".to_owned())
    };
    let content_type = content_type(&answer.headers).unwrap_or_default();
    let messages: Vec<Value> = if content_type.eq_ignore_ascii_case("text/event-stream") {
        sse_messages(&answer.body)
    } else {
        match serde_json::from_slice::<Value>(&answer.body) {
            Ok(Value::Array(batch)) => batch,
            Ok(value) => vec![value],
            Err(_) => {
                let shown = if content_type.is_empty() {
                    "no Content-Type".to_owned()
                } else {
                    content_type
                };
                let body = excerpt(&answer.body, &target.token);
                return Err(not_rpc(format!("the answer is not JSON-RPC ({shown}): {body}")));
            }
        }
    };
    let Some(message) = messages.into_iter().find(|m| m.get("id") == Some(&json!(id))) else {
        return Err(not_rpc("the answer holds no JSON-RPC response to the request".to_owned()));
    };
    if let Some(error) = message.get("error") {
        let code = error.get("code").map(Value::to_string).unwrap_or_default();
        let text = error.get("message").and_then(Value::as_str).unwrap_or("(no message)");
        return Err((
            format!("the server answered JSON-RPC error {code}: {}", clean(text, &target.token)),
            "check the server's log; if it is not custory-mcp, check --url".to_owned(),
        ));
    }
    match message.get("result") {
        Some(result) if result.is_object() => Ok(result.clone()),
        _ => Err(not_rpc("the JSON-RPC response has no result object".to_owned())),
    }
}

/// The JSON messages in the `data:` lines of a `text/event-stream` body.
pub(super) fn sse_messages(body: &[u8]) -> Vec<Value> {
    let text = String::from_utf8_lossy(body);
    let mut messages = Vec::new();
    let mut data = String::new();
    for line in text.lines().chain(std::iter::once("")) {
        if line.is_empty() {
            if let Ok(value) = serde_json::from_str::<Value>(&data) {
                messages.push(value);
            }
            data.clear();
        } else if let Some(rest) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
        }
    }
    messages
}

pub(super) fn host_port(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

pub(super) fn with_path(url: &Url, path: &str) -> String {
    let mut url = url.clone();
    url.set_path(path);
    url.set_query(None);
    url.to_string()
}

/// Milliseconds, to a tenth.
pub(super) fn millis(elapsed: Duration) -> f64 {
    (elapsed.as_secs_f64() * 10_000.0).round() / 10.0
}

/// `0.4 ms`, `12.3 ms`, `250 ms`.
pub(super) fn show_ms(elapsed: Duration) -> String {
    let ms = millis(elapsed);
    if ms < 100.0 { format!("{ms:.1} ms") } else { format!("{ms:.0} ms") }
}

pub(super) fn status_text(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// The media type of `Content-Type`, without parameters.
pub(super) fn content_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// The message of a JSON error body: JSON-RPC `{"error":{"message"}}` (MCP endpoint) or
/// `{"error":{"message"}}` (custory's API shape), if there is one.
pub(super) fn server_message(answer: &Answer, token: &PlainToken) -> Option<String> {
    let body: Value = serde_json::from_slice(&answer.body).ok()?;
    let message = body.get("error")?.get("message")?.as_str()?;
    Some(clean(message, token))
}

/// One `name="value"` (or `name=value`) parameter of a `WWW-Authenticate` challenge.
pub(super) fn auth_param(challenge: &str, name: &str) -> Option<String> {
    let mut rest = challenge;
    while let Some(at) = rest.find(name) {
        let before_ok = rest[..at].chars().next_back().is_none_or(|c| c == ' ' || c == ',');
        let after = rest[at + name.len()..].trim_start();
        if let (true, Some(value)) = (before_ok, after.strip_prefix('=')) {
            let value = value.trim_start();
            if let Some(quoted) = value.strip_prefix('"') {
                let mut out = String::new();
                let mut chars = quoted.chars();
                while let Some(c) = chars.next() {
                    match c {
                        '"' => return Some(out),
                        '\\' => out.extend(chars.next()),
                        c => out.push(c),
                    }
                }
                return Some(out);
            }
            let end = value.find([',', ' ']).unwrap_or(value.len());
            return Some(value[..end].to_owned());
        }
        rest = &rest[at + name.len()..];
    }
    None
}

/// The start of a body, on one line.
pub(super) fn excerpt(body: &[u8], token: &PlainToken) -> String {
    clean(&String::from_utf8_lossy(body), token)
}

/// Server-supplied text made safe to show: the token scrubbed, no control characters (no
/// terminal escapes), one line, at most `EXCERPT_CHARS` characters.
pub(super) fn clean(text: &str, token: &PlainToken) -> String {
    let scrubbed = text.replace(token.expose(), "[token]");
    let one_line: String =
        scrubbed.chars().map(|c| if c.is_whitespace() { ' ' } else { c }).collect::<String>();
    let one_line = crate::api::displayable(&one_line);
    let words = one_line.split_whitespace().collect::<Vec<_>>().join(" ");
    if words.chars().count() > EXCERPT_CHARS {
        let cut: String = words.chars().take(EXCERPT_CHARS).collect();
        format!("{cut}…")
    } else {
        words
    }
}
