//! The MCP wire format, read once into types: protocol versions, JSON-RPC messages in and out,
//! error codes, and the parameters and results of the methods this server answers. No HTTP and
//! no store here, so the server and the CLI's connection check (`cli/test`) share it.
//!
//! A body is parsed once into a [`serde_json::Value`], which checks all of JSON (every string's
//! escapes, every number's range) and keeps the last of duplicate members; each message is then
//! taken apart by moving its members out, and each method's parameters are read into their own
//! struct. Results are serialized once, into a [`RawValue`] the response envelope embeds as is.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// Protocol versions this server speaks, oldest first: three of the handshake ("legacy") era,
/// then the stateless ("modern") revision, where every request carries its version in `_meta`.
pub const SUPPORTED_VERSIONS: [&str; 4] =
    ["2025-03-26", "2025-06-18", "2025-11-25", MODERN_VERSION];
/// The newest version with an `initialize` handshake: what `initialize` answers when it does
/// not speak the version asked for.
pub const LATEST_VERSION: &str = "2025-11-25";
/// The stateless revision: no `initialize`, `server/discover`, `_meta` on every request,
/// `Mcp-Method`/`Mcp-Name` headers, `resultType` on every result.
pub const MODERN_VERSION: &str = "2026-07-28";
/// What a request without `MCP-Protocol-Version` is taken to speak (the spec's rule).
pub const DEFAULT_VERSION: &str = "2025-03-26";
/// The only version that allows JSON-RPC batches.
pub const BATCH_VERSION: &str = "2025-03-26";

/// The server's name in `serverInfo`: how clients and `custory-mcp test` recognise it.
pub const SERVER_NAME: &str = "custory-mcp";
/// The name of the HTTP header that carries the negotiated version.
pub const VERSION_HEADER: &str = "mcp-protocol-version";
/// What a conforming client sends as `Accept`.
pub const ACCEPT_BOTH: &str = "application/json, text/event-stream";

/// The version a client asked for, if this server speaks it.
pub fn supported_version(asked: &str) -> Option<&'static str> {
    SUPPORTED_VERSIONS.iter().copied().find(|v| *v == asked)
}

/// Whether `version` is of the stateless era (no handshake; metadata on every request).
pub fn is_modern(version: &str) -> bool {
    version == MODERN_VERSION
}

/// The versions this server speaks, newest first, as `server/discover` and the unsupported
/// version error list them.
pub fn versions_newest_first() -> Vec<&'static str> {
    SUPPORTED_VERSIONS.iter().rev().copied().collect()
}

/// Keys of `_meta` the modern revision reserves.
pub mod meta {
    pub const PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
    pub const CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
    pub const CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
    pub const SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
}

/// The request headers that mirror the body in the modern revision.
pub const METHOD_HEADER: &str = "mcp-method";
pub const NAME_HEADER: &str = "mcp-name";

/// JSON-RPC error codes, as the specs name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    ParseError,
    InvalidRequest,
    MethodNotFound,
    InvalidParams,
    InternalError,
    /// Implementation-defined: authentication failed (or was refused for too many failures).
    Unauthorized,
    /// Up to 2025-11-25: no resource at this URI (2026-07-28 uses -32602 instead).
    ResourceNotFound,
    /// 2026-07-28: the `Mcp-*` headers are missing or do not match the body.
    HeaderMismatch,
    /// 2026-07-28: the request's protocol version is not one this server speaks.
    UnsupportedProtocolVersion,
}

impl ErrorCode {
    pub fn code(self) -> i64 {
        match self {
            Self::ParseError => -32700,
            Self::InvalidRequest => -32600,
            Self::MethodNotFound => -32601,
            Self::InvalidParams => -32602,
            Self::InternalError => -32603,
            Self::Unauthorized => -32001,
            Self::ResourceNotFound => -32002,
            Self::HeaderMismatch => -32020,
            Self::UnsupportedProtocolVersion => -32022,
        }
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(self.code())
    }
}

/// A JSON-RPC error: what the caller did wrong, in a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    pub code: ErrorCode,
    pub message: String,
    /// The error's `data` member, when its kind defines one.
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), data: None }
    }

    /// -32022, listing the versions this server speaks (2026-07-28's shape).
    pub fn unsupported_version(requested: &str) -> Self {
        let supported = versions_newest_first();
        Self {
            code: ErrorCode::UnsupportedProtocolVersion,
            message: format!(
                "Unsupported protocol version {requested:?}; this server speaks {}",
                supported.join(", ")
            ),
            data: Some(serde_json::json!({"supported": supported, "requested": requested})),
        }
    }

    pub fn invalid_params(message: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::InvalidParams, format!("Invalid params: {message}"))
    }
}

// ---------------------------------------------------------------------------------------------
// In: bodies and messages.

/// A request's id: a string or a number, echoed exactly as it came.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Id(Value);

impl Id {
    /// The id of an answer to a message whose id could not be read.
    pub const NULL: Id = Id(Value::Null);
}

/// What a POST body holds: one message, or (2025-03-26 only) a batch of them.
#[derive(Debug)]
pub enum Body {
    Single(Value),
    Batch(Vec<Value>),
}

impl Body {
    /// Parses a body; an `Err` is a parse error (-32700).
    pub fn parse(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        Ok(match serde_json::from_slice(bytes)? {
            Value::Array(batch) => Self::Batch(batch),
            single => Self::Single(single),
        })
    }
}

/// One JSON-RPC message, checked.
#[derive(Debug)]
pub enum Message {
    Request(Request),
    /// A notification (`notifications/initialized`, `notifications/cancelled`, …).
    Notification,
    /// A response or error from the client (to a request this server never sends).
    Response,
}

/// A request: its id, method and parameters (an object; absent or `null` is empty).
#[derive(Debug)]
pub struct Request {
    pub id: Id,
    pub method: String,
    pub params: Map<String, Value>,
}

/// A message that is not valid JSON-RPC, with the id to answer under.
#[derive(Debug)]
pub struct Invalid {
    pub id: Id,
    pub error: RpcError,
}

impl Message {
    /// Checks one message. A request whose params are not an object is still a request, but
    /// answered with -32602 under its id.
    pub fn parse(message: Value) -> Result<Self, Invalid> {
        let invalid = |id: Id, text: &str| Invalid {
            id,
            error: RpcError::new(ErrorCode::InvalidRequest, format!("Invalid Request: {text}")),
        };
        let Value::Object(mut message) = message else {
            return Err(invalid(Id::NULL, "a JSON-RPC message must be an object"));
        };
        let id = match message.remove("id") {
            None => None,
            Some(id @ (Value::String(_) | Value::Number(_))) => Some(Id(id)),
            Some(_) => return Err(invalid(Id::NULL, "\"id\" must be a string or a number")),
        };
        if message.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            return Err(invalid(id.unwrap_or(Id::NULL), "\"jsonrpc\" must be \"2.0\""));
        }
        let method = match message.remove("method") {
            Some(Value::String(method)) => method,
            Some(_) => {
                return Err(invalid(id.unwrap_or(Id::NULL), "\"method\" must be a string"));
            }
            None if id.is_some()
                && (message.contains_key("result") || message.contains_key("error")) =>
            {
                return Ok(Self::Response);
            }
            None => return Err(invalid(id.unwrap_or(Id::NULL), "\"method\" is missing")),
        };
        let Some(id) = id else { return Ok(Self::Notification) };
        let params = match message.remove("params") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(params)) => params,
            Some(_) => {
                return Err(Invalid {
                    id,
                    error: RpcError::invalid_params("\"params\" must be an object"),
                });
            }
        };
        Ok(Self::Request(Request { id, method, params }))
    }
}

impl Request {
    /// The parameters, moved out and read as `P`; -32602 when they do not fit.
    pub fn take_params<P: DeserializeOwned>(&mut self) -> Result<P, RpcError> {
        let params = Value::Object(std::mem::take(&mut self.params));
        P::deserialize(params).map_err(RpcError::invalid_params)
    }
}

/// The modern revision's `Mcp-Method` and `Mcp-Name` request headers, as sent. A server that
/// reads the body must refuse a request whose headers say something else than its body (so
/// that a proxy routing on the headers and this server never act on different requests).
#[derive(Debug, Clone, Default)]
pub struct Mirror {
    pub method: Option<String>,
    pub name: Option<String>,
}

impl Mirror {
    /// Checks the headers against `request` (-32020 when they are missing or differ).
    pub fn check(&self, request: &Request) -> Result<(), RpcError> {
        let mismatch = |text: String| {
            RpcError::new(ErrorCode::HeaderMismatch, format!("Header mismatch: {text}"))
        };
        match self.method.as_deref() {
            None => {
                return Err(mismatch(format!(
                    "the Mcp-Method header is missing; protocol version {MODERN_VERSION} requires it \
                     on every request (here: Mcp-Method: {})",
                    request.method
                )));
            }
            Some(method) if method != request.method => {
                return Err(mismatch(format!(
                    "Mcp-Method header value {method:?} does not match body value {:?}",
                    request.method
                )));
            }
            Some(_) => {}
        }
        let member = match request.method.as_str() {
            "tools/call" | "prompts/get" => "name",
            "resources/read" => "uri",
            _ => return Ok(()),
        };
        let Some(body) = request.params.get(member).and_then(Value::as_str) else {
            // A missing name is the method's own error (-32602), not the header's.
            return Ok(());
        };
        let Some(header) = self.name.as_deref() else {
            return Err(mismatch(format!(
                "the Mcp-Name header is missing; protocol version {MODERN_VERSION} requires it \
                 on {} (the value of params.{member})",
                request.method
            )));
        };
        match decode_header_value(header) {
            Some(value) if value == body => Ok(()),
            Some(value) => Err(mismatch(format!(
                "Mcp-Name header value {value:?} does not match body value {body:?}"
            ))),
            None => {
                Err(mismatch("the Mcp-Name header holds a malformed =?base64?…?= value".to_owned()))
            }
        }
    }
}

/// A mirrored header's value: as is, or decoded from the `=?base64?…?=` form the modern
/// revision uses for values that are not plain ASCII. `None` when that form is malformed.
pub fn decode_header_value(value: &str) -> Option<String> {
    use base64::Engine as _;
    match value.strip_prefix("=?base64?").and_then(|rest| rest.strip_suffix("?=")) {
        Some(encoded) => {
            let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
            String::from_utf8(bytes).ok()
        }
        None => Some(value.to_owned()),
    }
}

// ---------------------------------------------------------------------------------------------
// Out: responses.

#[derive(Serialize)]
struct Success<'a> {
    jsonrpc: &'static str,
    id: &'a Id,
    result: &'a RawValue,
}

#[derive(Serialize)]
struct Failure<'a> {
    jsonrpc: &'static str,
    id: &'a Id,
    error: ErrorObject<'a>,
}

#[derive(Serialize)]
struct ErrorObject<'a> {
    code: ErrorCode,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a Value>,
}

/// A success response carrying `result`.
pub fn success(id: &Id, result: &RawValue) -> Box<RawValue> {
    to_raw(&Success { jsonrpc: "2.0", id, result })
}

/// An error response.
pub fn failure(id: &Id, error: &RpcError) -> Box<RawValue> {
    to_raw(&Failure {
        jsonrpc: "2.0",
        id,
        error: ErrorObject { code: error.code, message: &error.message, data: error.data.as_ref() },
    })
}

/// `value` serialized. The types serialized here (strings, numbers, maps with string keys)
/// cannot fail to serialize; if one ever did, the answer is an internal error, not a panic.
pub fn to_raw<T: Serialize + ?Sized>(value: &T) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).unwrap_or_else(|error| {
        tracing::error!(%error, "could not serialize an answer");
        const INTERNAL: &str =
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"Internal error"}}"#;
        // A constant that is valid JSON: `from_string` cannot fail on it.
        RawValue::from_string(INTERNAL.to_owned()).expect("a constant JSON text")
    })
}

// ---------------------------------------------------------------------------------------------
// Methods: parameters and results.

/// `initialize` parameters. Members of an odd shape are tolerated: only the version matters.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeParams {
    pub protocol_version: String,
    #[serde(default)]
    pub capabilities: Value,
    #[serde(default)]
    pub client_info: Value,
}

/// A client's `clientInfo` (from `initialize` or `_meta`) as `name/version`, when it names
/// the client.
pub fn client_label(info: &Value) -> Option<String> {
    let info = info.as_object()?;
    let name = info.get("name").and_then(Value::as_str).unwrap_or("unknown client");
    Some(match info.get("version").and_then(Value::as_str) {
        Some(version) => format!("{name}/{version}"),
        None => name.to_owned(),
    })
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeResult {
    pub protocol_version: String,
    pub capabilities: Value,
    pub server_info: Implementation,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
}

/// `serverInfo` / `clientInfo`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Implementation {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Parameters of the list methods: an opaque cursor from the previous page.
#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    #[serde(default)]
    pub cursor: Option<Value>,
}

/// `tools/call` parameters. `arguments` absent or `null` means "no arguments".
#[derive(Debug, Deserialize)]
pub struct CallParams {
    pub name: String,
    #[serde(default)]
    pub arguments: Value,
}

/// A `tools/call` result: the text for the model and, on success, the same as structured
/// content (one serialization, shown twice).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallToolResult {
    pub content: Vec<TextContent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub structured_content: Option<Box<RawValue>>,
    pub is_error: bool,
}

#[derive(Debug, Serialize)]
pub struct TextContent {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub text: String,
}

impl CallToolResult {
    /// A success whose structured content is `structured`, already serialized.
    pub fn structured(structured: Box<RawValue>) -> Self {
        let text = structured.get().to_owned();
        Self {
            content: vec![TextContent { kind: "text", text }],
            structured_content: Some(structured),
            is_error: false,
        }
    }

    /// A tool error: a sentence the agent can act on.
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            content: vec![TextContent { kind: "text", text: message.into() }],
            structured_content: None,
            is_error: true,
        }
    }
}

/// A request as a client sends it (for `custory-mcp test`), members in the order people read.
#[derive(Debug, Serialize)]
pub struct ClientRequest<'a, P: Serialize> {
    pub jsonrpc: &'static str,
    pub id: u64,
    pub method: &'a str,
    pub params: P,
}

impl<'a, P: Serialize> ClientRequest<'a, P> {
    pub fn new(id: u64, method: &'a str, params: P) -> Self {
        Self { jsonrpc: "2.0", id, method, params }
    }

    pub fn to_json(&self) -> String {
        to_raw(self).get().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> Result<Message, Invalid> {
        Message::parse(value)
    }

    #[test]
    fn messages_are_told_apart() {
        let request = parse(json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}));
        assert!(
            matches!(request, Ok(Message::Request(r)) if r.method == "ping" && r.params.is_empty())
        );
        let note = parse(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        assert!(matches!(note, Ok(Message::Notification)));
        let response = parse(json!({"jsonrpc": "2.0", "id": 1, "result": {}}));
        assert!(matches!(response, Ok(Message::Response)));
        for (bad, code) in [
            (json!(5), -32600),
            (json!({"jsonrpc": "2.0", "id": null, "method": "ping"}), -32600),
            (json!({"jsonrpc": "1.0", "id": 1, "method": "ping"}), -32600),
            (json!({"jsonrpc": "2.0", "id": 1, "method": 5}), -32600),
            (json!({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": [1]}), -32602),
        ] {
            let Err(invalid) = parse(bad.clone()) else { panic!("{bad} is not valid") };
            assert_eq!(invalid.error.code.code(), code, "{bad}");
        }
    }

    #[test]
    fn responses_embed_the_result_and_echo_the_id() {
        let Ok(Message::Request(request)) =
            parse(json!({"jsonrpc": "2.0", "id": "a\"b", "method": "ping"}))
        else {
            panic!("a request");
        };
        let result = to_raw(&json!({}));
        let text = success(&request.id, &result);
        assert_eq!(text.get(), r#"{"jsonrpc":"2.0","id":"a\"b","result":{}}"#);
        let error = failure(&Id::NULL, &RpcError::new(ErrorCode::MethodNotFound, "no"));
        assert_eq!(
            serde_json::from_str::<Value>(error.get()).expect("json"),
            json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32601, "message": "no"}})
        );
    }
}
