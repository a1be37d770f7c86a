//! Answering the JSON-RPC messages of one request body for one authenticated key: `initialize`,
//! `ping`, `tools/list`, `tools/call`, notifications and batches. The HTTP side (admission,
//! status codes, headers) is the server's; what comes back here is only which kind of answer
//! it is.

use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::protocol::{
    BATCH_VERSION, Body, CallParams, ErrorCode, Id, Implementation, InitializeParams,
    InitializeResult, LATEST_VERSION, ListParams, Message, Request, RpcError, SERVER_NAME, failure,
    success, supported_version, to_raw,
};
use super::tools;
use crate::api::KeyStatus;
use crate::store::{KeyIdentity, Store};
use crate::token::TokenHash;

/// A batch holds at most this many messages.
pub const BATCH_MEMBERS_MAX: usize = 256;
/// A batch's answers stop at this many bytes: later members are answered with an error
/// instead of being run.
pub const BATCH_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// What to send back for a body.
#[derive(Debug)]
pub enum Answer {
    /// A response (or a batch of them): HTTP 200.
    Reply(Box<RawValue>),
    /// A body that is not valid JSON-RPC, or not allowed in this version: HTTP 400.
    Invalid(Box<RawValue>),
    /// Only notifications and client responses: HTTP 202, no body.
    Accepted,
}

/// One request body's worth of messages, answered for `key`.
pub struct Session<'a> {
    store: &'a Store,
    key: &'a KeyIdentity,
    /// The token the request presented: before each tool call the key is looked up again, so
    /// nothing runs once a revoke has answered.
    token: TokenHash,
    /// The protocol version of the request (its `MCP-Protocol-Version`, or the default).
    version: &'static str,
    /// `clientInfo` from an `initialize` in this body, as `name/version`.
    client: Option<String>,
}

impl<'a> Session<'a> {
    pub fn new(
        store: &'a Store,
        key: &'a KeyIdentity,
        token: TokenHash,
        version: &'static str,
    ) -> Self {
        Self { store, key, token, version, client: None }
    }

    /// What answering `body` costs the key's rates: its messages, and its write tool calls.
    pub fn cost(body: &Body) -> (usize, usize) {
        let writes = |m: &Value| {
            m.get("method").and_then(Value::as_str) == Some("tools/call")
                && m.pointer("/params/name").and_then(Value::as_str).is_some_and(tools::is_write)
        };
        match body {
            Body::Single(message) => (1, usize::from(writes(message))),
            Body::Batch(batch) => (batch.len(), batch.iter().filter(|m| writes(m)).count()),
        }
    }

    /// Whether answering `body` may take a while: a tool call waits on the store, and a batch
    /// may answer up to [`BATCH_ANSWER_BYTES`]. Such work runs on the blocking pool; the rest
    /// (one `ping`, `initialize` or `tools/list`) is answered in place.
    pub fn runs_blocking(body: &Body) -> bool {
        let is_call = |m: &Value| m.get("method").and_then(Value::as_str) == Some("tools/call");
        match body {
            Body::Single(message) => is_call(message),
            Body::Batch(_) => true,
        }
    }

    /// Answers `body`.
    pub fn answer(&mut self, body: Body) -> Answer {
        match body {
            Body::Single(message) => match self.message(message) {
                Reply::Response(response) => Answer::Reply(response),
                Reply::Invalid(response) => Answer::Invalid(response),
                Reply::Nothing => Answer::Accepted,
            },
            Body::Batch(batch) => self.batch(batch),
        }
    }

    /// The client named at `initialize` in this body, if any (sanitized for display).
    pub fn client(self) -> Option<String> {
        self.client
    }

    fn batch(&mut self, messages: Vec<Value>) -> Answer {
        let refuse = |text: String| {
            Answer::Invalid(failure(&Id::NULL, &RpcError::new(ErrorCode::InvalidRequest, text)))
        };
        if self.version != BATCH_VERSION {
            return refuse(format!(
                "Invalid Request: JSON-RPC batches are only part of protocol version \
                 {BATCH_VERSION}; this request speaks {}: send one message per POST",
                self.version
            ));
        }
        if messages.is_empty() {
            return refuse("Invalid Request: empty batch".into());
        }
        if messages.len() > BATCH_MEMBERS_MAX {
            return refuse(format!(
                "Invalid Request: a batch holds at most {BATCH_MEMBERS_MAX} messages; this one has \
                 {}: send the rest in further batches",
                messages.len()
            ));
        }
        let mut replies: Vec<Box<RawValue>> = Vec::new();
        let mut bytes = 0;
        for message in messages {
            if bytes > BATCH_ANSWER_BYTES {
                // Answered, not run: the batch's answers are already as large as they may be.
                if let Ok(Message::Request(request)) = Message::parse(message) {
                    let error = RpcError::new(
                        ErrorCode::InternalError,
                        format!(
                            "not run: this batch's answers reached {} MiB, the most one batch \
                             may return; send this request again in another batch",
                            BATCH_ANSWER_BYTES >> 20
                        ),
                    );
                    replies.push(failure(&request.id, &error));
                }
                continue;
            }
            match self.message(message) {
                Reply::Response(response) | Reply::Invalid(response) => {
                    bytes += response.get().len();
                    replies.push(response);
                }
                Reply::Nothing => {}
            }
        }
        if replies.is_empty() { Answer::Accepted } else { Answer::Reply(to_raw(&replies)) }
    }

    fn message(&mut self, message: Value) -> Reply {
        match Message::parse(message) {
            Ok(Message::Request(mut request)) => {
                let response = match self.request(&mut request) {
                    Ok(result) => success(&request.id, &result),
                    Err(error) => failure(&request.id, &error),
                };
                Reply::Response(response)
            }
            Ok(Message::Notification | Message::Response) => Reply::Nothing,
            // Params of the wrong type are answered under the request's id, with 200.
            Err(invalid) if invalid.error.code == ErrorCode::InvalidParams => {
                Reply::Response(failure(&invalid.id, &invalid.error))
            }
            Err(invalid) => Reply::Invalid(failure(&invalid.id, &invalid.error)),
        }
    }

    fn request(&mut self, request: &mut Request) -> Result<Box<RawValue>, RpcError> {
        match request.method.as_str() {
            "initialize" => self.initialize(request.take_params()?),
            "ping" => Ok(to_raw(&json!({}))),
            "tools/list" => {
                let params: ListParams = request.take_params()?;
                if params.cursor.is_some_and(|cursor| !cursor.is_null()) {
                    return Err(RpcError::invalid_params(
                        "unknown cursor (tools/list has a single page)",
                    ));
                }
                Ok(tools::list_result(self.key.access).to_owned())
            }
            "tools/call" => {
                let call: CallParams = request.take_params().map_err(|error| {
                    RpcError::invalid_params(format!(
                        "tools/call takes a string \"name\" and an object \"arguments\" \
                         ({})",
                        error.message.trim_start_matches("Invalid params: ")
                    ))
                })?;
                if !matches!(call.arguments, Value::Null | Value::Object(_)) {
                    return Err(RpcError::invalid_params("\"arguments\" must be an object"));
                }
                self.still_active()?;
                let result = tools::call(self.store, self.key, &call.name, call.arguments)
                    .map_err(RpcError::invalid_params)?;
                Ok(to_raw(&result))
            }
            method => {
                Err(RpcError::new(ErrorCode::MethodNotFound, format!("Method not found: {method}")))
            }
        }
    }

    /// Looks the key up again: a key revoked (or expired) since the request came in runs
    /// nothing more.
    fn still_active(&self) -> Result<(), RpcError> {
        let status = match self.store.authenticate_key(&self.token) {
            Ok(Some(key)) => key.status,
            Ok(None) => KeyStatus::Revoked,
            Err(error) => {
                tracing::error!(%error, "could not check the key again");
                return Err(RpcError::new(
                    ErrorCode::InternalError,
                    "the server could not check the key; try again",
                ));
            }
        };
        match status {
            KeyStatus::Active => Ok(()),
            other => Err(RpcError::new(
                ErrorCode::Unauthorized,
                format!("not run: this MCP key is {} now", other.as_str()),
            )),
        }
    }

    fn initialize(&mut self, params: InitializeParams) -> Result<Box<RawValue>, RpcError> {
        let version = supported_version(&params.protocol_version).unwrap_or(LATEST_VERSION);
        if let Some(client) = params.client() {
            // Client names are free text from the network, later shown to the admin: keep them
            // short and free of control and bidi-override characters.
            self.client = Some(crate::api::displayable(&client).chars().take(100).collect());
        }
        Ok(to_raw(&InitializeResult {
            protocol_version: version.to_owned(),
            capabilities: json!({"tools": {"listChanged": false}}),
            server_info: Implementation {
                name: SERVER_NAME.to_owned(),
                title: Some("Custory".to_owned()),
                version: Some(env!("CARGO_PKG_VERSION").to_owned()),
            },
            instructions: Some(instructions(&self.key.workspace_slug)),
        }))
    }
}

/// The answer to one message.
enum Reply {
    Response(Box<RawValue>),
    /// Not valid JSON-RPC; a single such message is answered with HTTP 400.
    Invalid(Box<RawValue>),
    Nothing,
}

fn instructions(workspace: &str) -> String {
    format!(
        "Custory customer-journey context for the workspace \"{workspace}\". A workspace holds \
         journeys; a journey has stages, a stage has steps, and a step holds items of five kinds: \
         touchpoint, insight, opportunity, solution, metric. Items link only touchpoint->insight, \
         insight->opportunity, opportunity->solution, opportunity->metric and solution->metric. \
         Start with get_workspace or list_journeys, read a map with get_journey, find things with \
         search, and read one item (links, comments) with get_item. Archived things are left out \
         of reads unless include_archived is given. With a read-write key, build and reshape the \
         map (create_/update_ journey, stage, step; archive, restore), and add items, links, \
         comments and personas."
    )
}
