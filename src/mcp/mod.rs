//! The MCP endpoint (`POST /api/mcp`): Streamable HTTP, stateless, JSON responses.
//!
//! A request passes, in order: the `Origin` check (403), bearer authentication (401, before the
//! body is read), `Content-Type` (415), `Accept` (406), `MCP-Protocol-Version` (400), the body
//! limit (413), JSON parsing (-32700), JSON-RPC framing (-32600) and dispatch (-32601, -32602).
//! No session is issued; every request stands alone. See ARCHITECTURE.md for why this is
//! written by hand rather than with rmcp's server.

mod gzip;
pub mod tools;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::api::{Access, KeyStatus};
use crate::server::{AppState, BearerError, MAX_BODY_BYTES, bearer_token};
use crate::store::{AuthenticatedKey, KeyIdentity, KeyUsage, NewEvent};
use crate::token::TokenKind;

/// Protocol versions this server speaks, oldest first.
pub const SUPPORTED_VERSIONS: [&str; 3] = ["2025-03-26", "2025-06-18", "2025-11-25"];
pub const LATEST_VERSION: &str = "2025-11-25";
/// What a request without `MCP-Protocol-Version` is taken to speak (the spec's rule).
const DEFAULT_VERSION: &str = "2025-03-26";
/// The only version that allows JSON-RPC batches.
const BATCH_VERSION: &str = "2025-03-26";

pub const SERVER_NAME: &str = "custory-mcp";

/// Looked up by a constant name: a `&str` name would be parsed again for every request.
static MCP_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");

// JSON-RPC error codes.
const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;
/// Implementation-defined: authentication failed.
const UNAUTHORIZED: i64 = -32001;

/// `POST /api/mcp`.
pub async fn handle(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    // The request taken whole: a `HeaderMap` extractor would copy every header.
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    // A refusal here is sent before the body is read; server/connection.rs then marks the
    // response `Connection: close`.
    let (key, version, body) = match admit(&state, peer.ip(), headers, body).await {
        Ok(admitted) => admitted,
        Err(refusal) => return refusal,
    };
    let message = match Incoming::parse(&body) {
        Ok(message) => message,
        Err(error) => {
            return transport_error(
                StatusCode::BAD_REQUEST,
                PARSE_ERROR,
                &format!("Parse error: the body is not valid JSON ({error})"),
            );
        }
    };

    let gzip_accepted = gzip::accepted(headers);
    // Tool calls are the only work here that waits on the database (a search scans the
    // workspace): they run on the blocking pool, so the async workers stay free for everything
    // else (authentication, tools/list, /healthz). The rest is answered in place.
    let (response, client) = if message.calls_a_tool() {
        let (state, ctx) = (state.clone(), Arc::clone(&key.identity));
        let exchange = move || Exchange::run(&state, &ctx, message, version, gzip_accepted);
        match tokio::task::spawn_blocking(exchange).await {
            Ok(done) => done,
            Err(error) => {
                tracing::error!(%error, "a tool call panicked");
                (transport_error(StatusCode::INTERNAL_SERVER_ERROR, -32603, "Internal error"), None)
            }
        }
    } else {
        Exchange::run(&state, &key.identity, message, version, gzip_accepted)
    };

    // The client named at `initialize`, else the one last seen with the key, else the stored
    // one, else the User-Agent.
    let otherwise = || {
        key.identity.stored_client.clone().or_else(|| {
            headers.get(header::USER_AGENT).and_then(|ua| ua.to_str().ok()).map(str::to_owned)
        })
    };
    let usage = KeyUsage { at: state.store.now(), client, ip: Some(peer.ip()) };
    state.store.note_usage(&key.identity.key_id, usage, otherwise);
    response
}

/// A request body as parsed.
enum Incoming {
    /// The usual shape, read without building a tree (see [`PlainRequest`]).
    Plain(PlainRequest),
    /// Anything else: one message or a batch, to be checked member by member.
    Any(Value),
}

/// The shape nearly every request has: `jsonrpc` "2.0", a number or string `id`, a `method` and
/// optionally object `params`, nothing else and nothing twice. Reading it directly saves
/// building and dropping a map of five strings for every request. A body of any other shape
/// (a batch, a notification, an id of another type, an unknown or repeated member, an escaped
/// `"jsonrpc"`) fails to match and is read as a [`Value`], whose checks decide what it is: this
/// is only a shortcut, never a second set of rules.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainRequest {
    #[serde(rename = "jsonrpc", deserialize_with = "version_2_0")]
    _jsonrpc: (),
    id: Value,
    method: String,
    #[serde(default)]
    params: Option<serde_json::Map<String, Value>>,
}

fn version_2_0<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<(), D::Error> {
    match <&str as serde::Deserialize>::deserialize(deserializer)? {
        "2.0" => Ok(()),
        _ => Err(serde::de::Error::custom("not version 2.0")),
    }
}

impl Incoming {
    fn parse(body: &[u8]) -> Result<Self, serde_json::Error> {
        match serde_json::from_slice::<PlainRequest>(body) {
            Ok(plain) if plain.id.is_number() || plain.id.is_string() => Ok(Self::Plain(plain)),
            _ => serde_json::from_slice(body).map(Self::Any),
        }
    }

    /// Whether the body (one message or a batch) contains a `tools/call`.
    fn calls_a_tool(&self) -> bool {
        let is_call = |m: &Value| m.get("method").and_then(Value::as_str) == Some("tools/call");
        match self {
            Self::Plain(request) => request.method == "tools/call",
            Self::Any(Value::Array(batch)) => batch.iter().any(is_call),
            Self::Any(single) => is_call(single),
        }
    }
}

/// Everything before the body is parsed: Origin, Host, authentication, media types, protocol
/// version, size. Returns the key, the protocol version spoken and the body.
async fn admit(
    state: &AppState,
    ip: std::net::IpAddr,
    headers: &HeaderMap,
    body: Body,
) -> Result<(AuthenticatedKey, &'static str, Bytes), Response> {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let allowed = origin
            .to_str()
            .is_ok_and(|o| state.config.allowed_origins.iter().any(|a| a.eq_ignore_ascii_case(o)));
        if !allowed {
            return Err(transport_error(
                StatusCode::FORBIDDEN,
                INVALID_REQUEST,
                "Forbidden: this Origin is not allowed to call the MCP endpoint (start the \
                 server with --allow-origin to permit it)",
            ));
        }
    }

    if !state.config.host_allowed(headers) {
        return Err(transport_error(
            StatusCode::FORBIDDEN,
            INVALID_REQUEST,
            "Forbidden: the Host header does not name this server (start the server with \
             --allow-host to permit that name)",
        ));
    }

    let key = authenticate(state, headers, ip).map_err(|refusal| *refusal)?;

    if !is_json_content_type(headers) {
        return Err(transport_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            INVALID_REQUEST,
            "Unsupported Media Type: Content-Type must be application/json",
        ));
    }
    if !accepts_json_and_sse(headers) {
        return Err(transport_error(
            StatusCode::NOT_ACCEPTABLE,
            INVALID_REQUEST,
            "Not Acceptable: the Accept header must list both application/json and text/event-stream",
        ));
    }
    let version = match headers.get(&MCP_PROTOCOL_VERSION).map(HeaderValue::to_str) {
        None => DEFAULT_VERSION,
        Some(Ok(v)) if let Some(known) = SUPPORTED_VERSIONS.iter().find(|s| **s == v) => known,
        Some(v) => {
            let shown = v.unwrap_or("(not text)");
            return Err(transport_error(
                StatusCode::BAD_REQUEST,
                INVALID_REQUEST,
                &format!(
                    "Bad Request: unsupported MCP-Protocol-Version {shown:?}; this server \
                     supports {}",
                    SUPPORTED_VERSIONS.join(", ")
                ),
            ));
        }
    };
    let body = read_body(headers, body).await.map_err(|refusal| *refusal)?;
    Ok((key, version, body))
}

/// Resolves the bearer token to an active key, or the 401 (or, for an address with too many
/// failures, the 429) to send.
fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    ip: std::net::IpAddr,
) -> Result<AuthenticatedKey, Box<Response>> {
    let refuse = |description: &str| match state.limiter.failed(ip) {
        Some(wait) => too_many_failures(wait),
        None => unauthorized(description),
    };

    let token = bearer_token(headers).map_err(|error| {
        let description = match error {
            BearerError::Missing => {
                "missing bearer token: send Authorization: Bearer cst_... (an MCP key)".to_owned()
            }
            other => other.to_string(),
        };
        refuse(&description)
    })?;
    if token.kind() == TokenKind::Owner {
        return Err(refuse(
            "owner credentials (csa_) are not accepted at the MCP endpoint: use an MCP key \
             (custory-mcp keys create)",
        ));
    }
    let key = match state.store.authenticate_key(&token.hash()) {
        Ok(Some(key)) => key,
        Ok(None) => {
            return Err(refuse(
                "unknown MCP key: this server never issued it (or its database was replaced)",
            ));
        }
        Err(error) => {
            tracing::error!(%error, "authentication lookup failed");
            return Err(Box::new(transport_error(
                StatusCode::SERVICE_UNAVAILABLE,
                -32603,
                "the server could not check the key; try again",
            )));
        }
    };
    let refusal = match key.status {
        KeyStatus::Active => return Ok(key),
        KeyStatus::Revoked => {
            "this MCP key was revoked: create a new one (custory-mcp keys create)"
        }
        KeyStatus::Expired => "this MCP key has expired: rotate it (custory-mcp keys rotate)",
    };
    let response = refuse(refusal);
    if response.status() == StatusCode::TOO_MANY_REQUESTS {
        // Past the limit nothing more is recorded: a flood must not turn into database writes.
        return Err(response);
    }
    let detail = format!("refused a {} key", key.status.as_str());
    let event = NewEvent {
        workspace_id: key.identity.workspace_id,
        kind: "auth.rejected",
        key_id: Some(&key.identity.key_id),
        key_prefix: Some(&key.identity.key_prefix),
        detail: &detail,
    };
    if let Err(error) = state.store.record_event(&event) {
        tracing::warn!(%error, "could not record a rejected authentication");
    }
    Err(response)
}

fn too_many_failures(wait: std::time::Duration) -> Box<Response> {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut response = transport_error(
        StatusCode::TOO_MANY_REQUESTS,
        UNAUTHORIZED,
        &format!("too many failed authentications from this address; retry in {seconds} s"),
    );
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    Box::new(response)
}

fn unauthorized(description: &str) -> Box<Response> {
    let mut response = transport_error(StatusCode::UNAUTHORIZED, UNAUTHORIZED, description);
    let challenge = format!(
        "Bearer realm=\"custory\", error=\"invalid_token\", error_description=\"{}\"",
        description.replace(['"', '\\'], "'")
    );
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    Box::new(response)
}

fn is_json_content_type(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

/// Whether `Accept` admits both JSON and SSE. Several `Accept` headers count as one list; no
/// `Accept` at all means "anything" (RFC 9110).
fn accepts_json_and_sse(headers: &HeaderMap) -> bool {
    let values = headers.get_all(header::ACCEPT);
    let mut first_two = values.iter();
    match (first_two.next(), first_two.next()) {
        (None, _) => return true,
        // What the SDKs send, answered without taking the list apart.
        (Some(only), None) if only.as_bytes() == b"application/json, text/event-stream" => {
            return true;
        }
        _ => {}
    }
    let (mut json, mut sse) = (false, false);
    for value in values {
        let Ok(value) = value.to_str() else { return false };
        for range in value.split(',') {
            let range = range.split(';').next().unwrap_or_default().trim();
            let is = |name: &str| range.eq_ignore_ascii_case(name);
            json |= is("application/json") || is("application/*") || is("*/*");
            sse |= is("text/event-stream") || is("text/*") || is("*/*");
        }
    }
    json && sse
}

async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, Box<Response>> {
    let too_large = || {
        Box::new(transport_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            INVALID_REQUEST,
            &format!("Payload Too Large: the body exceeds {MAX_BODY_BYTES} bytes"),
        ))
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|error| {
        // `to_bytes` fails for the length limit or for a broken connection.
        if std::error::Error::source(&error)
            .is_some_and(|e| e.is::<http_body_util::LengthLimitError>())
        {
            too_large()
        } else {
            Box::new(transport_error(
                StatusCode::BAD_REQUEST,
                PARSE_ERROR,
                "Parse error: the request body could not be read completely",
            ))
        }
    })
}

/// An HTTP-level error with a JSON-RPC error body (no id: it may not have been read).
fn transport_error(status: StatusCode, code: i64, message: &str) -> Response {
    json_response(status, error_text(&Value::Null, code, message))
}

fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body)
        .into_response()
}

/// One HTTP request's worth of JSON-RPC messages for one authenticated key.
struct Exchange<'a> {
    state: &'a AppState,
    ctx: &'a KeyIdentity,
    /// `clientInfo` from an `initialize` in this request, as `name/version`.
    client: Option<String>,
    /// Whether the request's `Accept-Encoding` admits gzip.
    gzip_accepted: bool,
}

/// The result of handling one JSON-RPC message, already serialized (but for `tools/list`, whose
/// constant answer is put together as it is sent).
enum Reply {
    /// A response object to send back.
    Message(String),
    /// A successful `tools/list` with this id: a constant answer, which a single (not batched)
    /// reply may send pre-compressed.
    ToolList(Value),
    /// An invalid message whose id could not be read: answered with HTTP 400.
    Invalid(String),
    /// A notification or a client's response: nothing to send (HTTP 202).
    Nothing,
}

/// A successful method's result: built for this request, or a constant serialized once.
enum Outcome {
    Built(Value),
    Constant(&'static str),
    /// The `tools/list` result for the key's access (`tools::list_result_json`).
    ToolList,
}

impl<'a> Exchange<'a> {
    /// Answers a parsed body for the key `ctx`; returns the response and the client it named at
    /// `initialize`, if any.
    fn run(
        state: &'a AppState,
        ctx: &'a KeyIdentity,
        message: Incoming,
        version: &str,
        gzip_accepted: bool,
    ) -> (Response, Option<String>) {
        let mut session = Self { state, ctx, client: None, gzip_accepted };
        let response = match message {
            Incoming::Plain(request) => {
                let params = request.params.map_or(Value::Null, Value::Object);
                let reply = session.answer(request.id, &request.method, params);
                session.respond(reply)
            }
            Incoming::Any(Value::Array(batch)) => session.batch(batch, version),
            Incoming::Any(single) => {
                let reply = session.message(single);
                session.respond(reply)
            }
        };
        (response, session.client)
    }

    /// The HTTP response to one message's reply.
    fn respond(&self, reply: Reply) -> Response {
        match reply {
            Reply::Message(body) => json_response(StatusCode::OK, body),
            Reply::ToolList(id) => self.tool_list(&id),
            Reply::Invalid(body) => json_response(StatusCode::BAD_REQUEST, body),
            Reply::Nothing => StatusCode::ACCEPTED.into_response(),
        }
    }

    /// The `tools/list` answer: gzip-compressed if the client admits it (without compressing
    /// now: see gzip.rs), else plain. Either way it varies with `Accept-Encoding`, which caches
    /// must know.
    fn tool_list(&self, id: &Value) -> Response {
        let access = self.ctx.access;
        let gzipped = if self.gzip_accepted { list_answer_gzip(id, access) } else { None };
        let mut response = match gzipped {
            Some(body) => (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
                    (header::CONTENT_ENCODING, HeaderValue::from_static("gzip")),
                ],
                body,
            )
                .into_response(),
            None => {
                json_response(StatusCode::OK, success_text(id, tools::list_result_json(access)))
            }
        };
        response.headers_mut().insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        response
    }

    fn batch(&mut self, messages: Vec<Value>, version: &str) -> Response {
        if version != BATCH_VERSION {
            return transport_error(
                StatusCode::BAD_REQUEST,
                INVALID_REQUEST,
                &format!(
                    "Invalid Request: JSON-RPC batches are only part of protocol version \
                     {BATCH_VERSION}; this request speaks {version}: send one message per POST"
                ),
            );
        }
        if messages.is_empty() {
            return transport_error(
                StatusCode::BAD_REQUEST,
                INVALID_REQUEST,
                "Invalid Request: empty batch",
            );
        }
        let replies: Vec<String> = messages
            .into_iter()
            .filter_map(|m| match self.message(m) {
                Reply::Message(body) | Reply::Invalid(body) => Some(body),
                Reply::ToolList(id) => {
                    Some(success_text(&id, tools::list_result_json(self.ctx.access)))
                }
                Reply::Nothing => None,
            })
            .collect();
        if replies.is_empty() {
            StatusCode::ACCEPTED.into_response()
        } else {
            json_response(StatusCode::OK, format!("[{}]", replies.join(",")))
        }
    }

    fn message(&mut self, message: Value) -> Reply {
        let Value::Object(mut message) = message else {
            return Reply::Invalid(error_text(
                &Value::Null,
                INVALID_REQUEST,
                "Invalid Request: a JSON-RPC message must be an object",
            ));
        };
        let id = message.remove("id");
        let id_ok = matches!(id, None | Some(Value::String(_) | Value::Number(_)));
        if message.get("jsonrpc").and_then(Value::as_str) != Some("2.0") || !id_ok {
            let id = if id_ok { id.unwrap_or(Value::Null) } else { Value::Null };
            let text = if id_ok {
                "Invalid Request: \"jsonrpc\" must be \"2.0\""
            } else {
                "Invalid Request: \"id\" must be a string or a number"
            };
            return Reply::Invalid(error_text(&id, INVALID_REQUEST, text));
        }
        let method = match message.remove("method") {
            Some(Value::String(method)) => method,
            Some(_) => {
                let id = id.unwrap_or(Value::Null);
                return Reply::Invalid(error_text(
                    &id,
                    INVALID_REQUEST,
                    "Invalid Request: \"method\" must be a string",
                ));
            }
            // A response to a request of ours (we send none) or an error: acknowledged.
            None if id.is_some()
                && (message.contains_key("result") || message.contains_key("error")) =>
            {
                return Reply::Nothing;
            }
            None => {
                let id = id.unwrap_or(Value::Null);
                return Reply::Invalid(error_text(
                    &id,
                    INVALID_REQUEST,
                    "Invalid Request: \"method\" is missing",
                ));
            }
        };
        let Some(id) = id else {
            // Notifications (`notifications/initialized`, `notifications/cancelled`, …) need no answer.
            return Reply::Nothing;
        };
        let params = message.remove("params").unwrap_or(Value::Null);
        self.answer(id, &method, params)
    }

    /// The reply to a well-formed request.
    fn answer(&mut self, id: Value, method: &str, params: Value) -> Reply {
        if !matches!(params, Value::Null | Value::Object(_)) {
            return Reply::Message(error_text(
                &id,
                INVALID_PARAMS,
                "Invalid params: \"params\" must be an object",
            ));
        }
        match self.request(method, params) {
            Ok(Outcome::Built(result)) => Reply::Message(success_text(&id, &result.to_string())),
            Ok(Outcome::Constant(result)) => Reply::Message(success_text(&id, result)),
            Ok(Outcome::ToolList) => Reply::ToolList(id),
            Err((code, text)) => Reply::Message(error_text(&id, code, &text)),
        }
    }

    fn request(&mut self, method: &str, params: Value) -> Result<Outcome, (i64, String)> {
        match method {
            "initialize" => self.initialize(&params).map(Outcome::Built),
            "ping" => Ok(Outcome::Constant("{}")),
            "tools/list" => {
                if params.get("cursor").is_some_and(|c| !c.is_null()) {
                    return Err((
                        INVALID_PARAMS,
                        "Invalid params: unknown cursor (tools/list has a single page)".into(),
                    ));
                }
                Ok(Outcome::ToolList)
            }
            "tools/call" => {
                let Some(name) = params.get("name").and_then(Value::as_str) else {
                    return Err((
                        INVALID_PARAMS,
                        "Invalid params: tools/call needs a string \"name\"".into(),
                    ));
                };
                let arguments = params.get("arguments").cloned().unwrap_or(Value::Null);
                if !matches!(arguments, Value::Null | Value::Object(_)) {
                    return Err((
                        INVALID_PARAMS,
                        "Invalid params: \"arguments\" must be an object".into(),
                    ));
                }
                tools::call(&self.state.store, self.ctx, name, arguments)
                    .map(Outcome::Built)
                    .map_err(|error| (INVALID_PARAMS, format!("Invalid params: {error}")))
            }
            _ => Err((METHOD_NOT_FOUND, format!("Method not found: {method}"))),
        }
    }

    fn initialize(&mut self, params: &Value) -> Result<Value, (i64, String)> {
        let Some(requested) = params.get("protocolVersion").and_then(Value::as_str) else {
            return Err((
                INVALID_PARAMS,
                "Invalid params: initialize needs \"protocolVersion\"".into(),
            ));
        };
        let version =
            if SUPPORTED_VERSIONS.contains(&requested) { requested } else { LATEST_VERSION };
        if let Some(info) = params.get("clientInfo") {
            let name = info.get("name").and_then(Value::as_str).unwrap_or("unknown client");
            let client = match info.get("version").and_then(Value::as_str) {
                Some(v) => format!("{name}/{v}"),
                None => name.to_owned(),
            };
            // Client names are free text from the network, later shown to the admin: keep them
            // short and free of control and bidi-override characters.
            self.client = Some(crate::api::displayable(&client).chars().take(100).collect());
        }
        Ok(json!({
            "protocolVersion": version,
            "capabilities": {"tools": {"listChanged": false}},
            "serverInfo": {
                "name": SERVER_NAME,
                "title": "Custory",
                "version": env!("CARGO_PKG_VERSION"),
            },
            "instructions": instructions(&self.ctx.workspace_slug),
        }))
    }
}

/// A success response: [`success_prefix`], the serialized result, `}`.
fn success_text(id: &Value, result: &str) -> String {
    let mut text = success_prefix(id, result.len() + 1);
    text.push_str(result);
    text.push('}');
    text
}

/// What precedes the result in a success response, in a string with room for `more` bytes.
fn success_prefix(id: &Value, more: usize) -> String {
    const START: &str = r#"{"jsonrpc":"2.0","id":"#;
    const BEFORE_RESULT: &str = r#","result":"#;
    const ID_ROOM: usize = 24; // an integer id, or a short string one, fits without regrowing
    let mut text = String::with_capacity(START.len() + ID_ROOM + BEFORE_RESULT.len() + more);
    text.push_str(START);
    // Writing to a String cannot fail.
    let _ = write!(text, "{id}");
    text.push_str(BEFORE_RESULT);
    text
}

/// [`success_text`] for `tools/list`, as a gzip member spliced around the result deflated once;
/// `None` if that compression failed (it does not, in memory), and the answer goes plain.
fn list_answer_gzip(id: &Value, access: Access) -> Option<Vec<u8>> {
    let result = tools::list_result_gzip(access)?;
    Some(result.wrap(success_prefix(id, 0).as_bytes(), b"}"))
}

fn error_text(id: &Value, code: i64, message: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}).to_string()
}

fn instructions(workspace: &str) -> String {
    format!(
        "Custory customer-journey context for the workspace \"{workspace}\". A workspace holds \
         journeys; a journey has stages, a stage has steps, and a step holds items of five kinds: \
         touchpoint, insight, opportunity, solution, metric. Items link only touchpoint->insight, \
         insight->opportunity, opportunity->solution, opportunity->metric and solution->metric. \
         Start with get_workspace or list_journeys, read a map with get_journey, find things with \
         search, and read one item (links, comments) with get_item."
    )
}

#[cfg(test)]
mod tests {
    use super::Incoming;

    fn is_plain(body: &str) -> bool {
        matches!(Incoming::parse(body.as_bytes()), Ok(Incoming::Plain(_)))
    }

    #[test]
    fn only_the_usual_shape_takes_the_shortcut() {
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            r#"{"method":"ping","id":-7,"jsonrpc":"2.0"}"#,
            r#" {"jsonrpc":"2.0","id":0,"method":"tools/call","params":{"name":"search"}} "#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":null}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"p\u0069ng"}"#,
            r#"{"jsonrpc":"2.0","id":"a","method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":18446744073709551615,"method":"ping"}"#,
        ] {
            assert!(is_plain(body), "{body}");
        }
        // Each of these needs the general checks (or is not a single request at all).
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","jsonrpc":"1.0","id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"2\u002e0","id":1,"method":"ping"}"#,
            r#"{"jsonrpc":2.0,"id":1,"method":"ping"}"#,
            r#"{"id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":true,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":[1],"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":"\ud800","method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1e400,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":5}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":[1]}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":"x"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","x":1}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
            r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"} trailing"#,
        ] {
            assert!(!is_plain(body), "{body}");
        }
    }
}
