//! Answering the JSON-RPC messages of one request body for one authenticated key, in either
//! era of the protocol:
//! - the handshake era (2025-03-26 to 2025-11-25): `initialize`, `ping`, notifications and
//!   (2025-03-26) batches;
//! - the stateless revision (2026-07-28): one request per POST, its version and the client's
//!   capabilities in `params._meta`, its method and name mirrored in `Mcp-*` headers, no
//!   handshake, and `resultType` (and caching hints) on every result.
//!
//! Both eras share the methods: `server/discover`, `tools/*`, `resources/*`, `prompts/*` and
//! `completion/complete`. The HTTP side (admission, headers) is the server's; what comes back
//! here is only which kind of answer it is.

use std::sync::LazyLock;

use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::protocol::{
    BATCH_VERSION, Body, CallParams, ErrorCode, Id, Implementation, InitializeParams,
    InitializeResult, LATEST_VERSION, ListParams, MODERN_VERSION, Message, Mirror, Request,
    RpcError, SERVER_NAME, client_label, failure, is_modern, meta, success, supported_version,
    to_raw, versions_newest_first,
};
use super::{app, complete, prompts, resources, tools};
use crate::api::CallOutcome;
use crate::api::KeyStatus;
use crate::store::Store;
use crate::store::access::{Call, KeyIdentity, asked_ids, touched_ids};
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
    /// 2026-07-28: a method this server does not answer: HTTP 404.
    NotFound(Box<RawValue>),
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
    /// `Mcp-Method` and `Mcp-Name` as sent (checked against the body in the modern era).
    mirror: Mirror,
    /// `clientInfo` from an `initialize` in this body (or from `_meta`), as `name/version`.
    client: Option<String>,
    /// The client's address, for the record of each call.
    ip: Option<std::net::IpAddr>,
}

impl<'a> Session<'a> {
    pub fn new(
        store: &'a Store,
        key: &'a KeyIdentity,
        token: TokenHash,
        version: &'static str,
        mirror: Mirror,
        ip: Option<std::net::IpAddr>,
    ) -> Self {
        Self { store, key, token, version, mirror, client: None, ip }
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

    /// Whether answering `body` may take a while: a method that reads the store waits on it,
    /// and a batch may answer up to [`BATCH_ANSWER_BYTES`]. Such work runs on the blocking
    /// pool; the rest (`ping`, `initialize`, `server/discover`, the fixed lists) is answered
    /// in place.
    pub fn runs_blocking(body: &Body) -> bool {
        let reads_store = |m: &Value| {
            m.get("method").and_then(Value::as_str).is_some_and(|method| {
                matches!(
                    method,
                    "tools/call"
                        | "resources/list"
                        | "resources/read"
                        | "prompts/get"
                        | "completion/complete"
                )
            })
        };
        match body {
            Body::Single(message) => reads_store(message),
            Body::Batch(_) => true,
        }
    }

    /// Answers `body`.
    pub fn answer(&mut self, body: Body) -> Answer {
        if is_modern(self.version) {
            return self.modern(body);
        }
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

    /// Answers one request of the modern era: checks what the revision requires of it (the
    /// mirrored headers, `_meta`), then answers it as both eras do, with `resultType`, the
    /// server's identity and caching hints added.
    fn modern(&mut self, body: Body) -> Answer {
        let Body::Single(message) = body else {
            let error = RpcError::new(
                ErrorCode::InvalidRequest,
                format!(
                    "Invalid Request: JSON-RPC batches are not part of protocol version \
                     {MODERN_VERSION}: send one request per POST"
                ),
            );
            return Answer::Invalid(failure(&Id::NULL, &error));
        };
        let mut request = match Message::parse(message) {
            Ok(Message::Request(request)) => request,
            Ok(Message::Notification | Message::Response) => return Answer::Accepted,
            Err(invalid) => return Answer::Invalid(failure(&invalid.id, &invalid.error)),
        };
        if let Err(error) = self.mirror.check(&request).and_then(|()| self.take_meta(&mut request))
        {
            return Answer::Invalid(failure(&request.id, &error));
        }
        if matches!(request.method.as_str(), "initialize" | "ping") {
            let error = RpcError::new(
                ErrorCode::MethodNotFound,
                format!(
                    "Method not found: {} is not part of protocol version {MODERN_VERSION} (it \
                     has no handshake); send MCP-Protocol-Version: {LATEST_VERSION} to use it",
                    request.method
                ),
            );
            return Answer::NotFound(failure(&request.id, &error));
        }
        match self.request(&mut request) {
            Ok(result) => {
                let result = with_modern_members(&result, cache_hint(&request.method));
                Answer::Reply(success(&request.id, &result))
            }
            Err(error) if error.code == ErrorCode::MethodNotFound => {
                Answer::NotFound(failure(&request.id, &error))
            }
            Err(mut error) => {
                // Resource not found is -32602 in this revision (-32002 before it).
                if error.code == ErrorCode::ResourceNotFound {
                    error.code = ErrorCode::InvalidParams;
                }
                Answer::Reply(failure(&request.id, &error))
            }
        }
    }

    /// Moves `_meta` out of the request and checks it: the protocol version (the header's) and
    /// the client's capabilities are required; `clientInfo` names the client.
    fn take_meta(&mut self, request: &mut Request) -> Result<(), RpcError> {
        let missing = |what: &str| {
            RpcError::invalid_params(format!(
                "params._meta must hold \"{what}\" on every request of protocol version \
                 {MODERN_VERSION}"
            ))
        };
        let Some(Value::Object(mut fields)) = request.params.remove("_meta") else {
            return Err(missing(meta::PROTOCOL_VERSION));
        };
        match fields.get(meta::PROTOCOL_VERSION).and_then(Value::as_str) {
            None => return Err(missing(meta::PROTOCOL_VERSION)),
            Some(version) if version != self.version => {
                return Err(RpcError::new(
                    ErrorCode::HeaderMismatch,
                    format!(
                        "Header mismatch: MCP-Protocol-Version header value {:?} does not match \
                         body value {version:?}",
                        self.version
                    ),
                ));
            }
            Some(_) => {}
        }
        if !fields.get(meta::CLIENT_CAPABILITIES).is_some_and(Value::is_object) {
            return Err(missing(meta::CLIENT_CAPABILITIES));
        }
        if let Some(client) = fields.remove(meta::CLIENT_INFO).as_ref().and_then(client_label) {
            self.note_client(&client);
        }
        Ok(())
    }

    fn note_client(&mut self, client: &str) {
        // Client names are free text from the network, later shown to the admin: keep them
        // short and free of control and bidi-override characters.
        self.client = Some(crate::api::displayable(client).chars().take(100).collect());
    }

    fn request(&mut self, request: &mut Request) -> Result<Box<RawValue>, RpcError> {
        let access = self.key.access;
        match request.method.as_str() {
            "initialize" => self.initialize(request.take_params()?),
            "ping" => Ok(to_raw(&json!({}))),
            "server/discover" => Ok(discover_result(&self.key.workspace_slug)),
            "tools/list" => {
                single_page(request)?;
                Ok(tools::list_result_for(self.key))
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
                let what = tools::static_name(&call.name);
                let asked = asked_ids(&call.arguments);
                match tools::call(self.store, self.key, &call.name, call.arguments) {
                    Ok(result) => {
                        let answer = to_raw(&result);
                        let outcome =
                            if result.is_error { CallOutcome::Error } else { CallOutcome::Ok };
                        let structured = result.structured_content.as_deref().map(RawValue::get);
                        let ids = touched_ids(asked, structured);
                        self.record(what, outcome, answer.get().len(), ids);
                        Ok(answer)
                    }
                    Err(error) => {
                        self.record(what, CallOutcome::Refused, 0, touched_ids(asked, None));
                        Err(RpcError::invalid_params(error))
                    }
                }
            }
            "resources/list" => {
                let params: ListParams = request.take_params()?;
                self.still_active()?;
                resources::list(self.store, self.key, params.cursor.as_ref())
            }
            "resources/templates/list" => {
                single_page(request)?;
                Ok(resources::templates_result().to_owned())
            }
            "resources/read" => {
                let params: resources::ReadParams = request.take_params()?;
                self.still_active()?;
                let target = params.uri.rsplit('/').next().unwrap_or_default();
                let ids = touched_ids(vec![target.to_owned()], None);
                let answer = resources::read(self.store, self.key, &params.uri);
                self.record_answer("resources/read", &answer, ids);
                answer
            }
            "prompts/list" => {
                single_page(request)?;
                Ok(prompts::list_result(access).to_owned())
            }
            "prompts/get" => {
                let params: prompts::GetParams = request.take_params()?;
                self.still_active()?;
                let named = std::iter::once(&params.name)
                    .chain(params.arguments.iter().flat_map(|a| a.values()));
                let ids = touched_ids(named.cloned().collect(), None);
                let answer = prompts::get(self.store, self.key, params);
                self.record_answer("prompts/get", &answer, ids);
                answer
            }
            "completion/complete" => {
                let params: complete::CompleteParams = request.take_params()?;
                self.still_active()?;
                complete::complete(self.store, self.key, params)
            }
            method => {
                Err(RpcError::new(ErrorCode::MethodNotFound, format!("Method not found: {method}")))
            }
        }
    }

    /// Queues the record of a call (written later, in a batch: see `store/activity.rs`).
    fn record(&self, what: &'static str, outcome: CallOutcome, bytes: usize, ids: String) {
        let call = Call { at: self.store.now(), what, outcome, bytes, ids };
        self.store.access().record_call(self.key, self.ip, call);
    }

    fn record_answer(
        &self,
        what: &'static str,
        answer: &Result<Box<RawValue>, RpcError>,
        ids: String,
    ) {
        match answer {
            Ok(answer) => self.record(what, CallOutcome::Ok, answer.get().len(), ids),
            Err(_) => self.record(what, CallOutcome::Refused, 0, ids),
        }
    }

    /// Looks the key up again: a key revoked (or expired) since the request came in runs
    /// nothing more.
    fn still_active(&self) -> Result<(), RpcError> {
        let status = match self.store.access().authenticate_key(&self.token) {
            Ok(Some(key)) if key.importing => {
                return Err(RpcError::new(
                    ErrorCode::InternalError,
                    "not run: this key's workspace is being imported into; try again when the \
                     import has finished",
                ));
            }
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
        // `initialize` is the handshake: it never answers the stateless revision.
        let version = supported_version(&params.protocol_version)
            .filter(|version| !is_modern(version))
            .unwrap_or(LATEST_VERSION);
        if let Some(client) = client_label(&params.client_info) {
            self.note_client(&client);
        }
        Ok(to_raw(&InitializeResult {
            protocol_version: version.to_owned(),
            capabilities: capabilities(false),
            server_info: server_info(),
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

/// What this server serves, exactly: tools, resources (journeys, and items by template),
/// prompts with completion of their arguments. Nothing changes while it runs, so no list ever
/// changes and there is nothing to subscribe to; the handshake era says so explicitly.
/// Both eras declare the MCP Apps extension (`extensions`, as SEP-1724 has it): `get_journey`
/// names a view its hosts draw.
fn capabilities(modern: bool) -> Value {
    let extensions = json!({app::EXTENSION: {}});
    if modern {
        json!({
            "tools": {}, "resources": {}, "prompts": {}, "completions": {},
            "extensions": extensions
        })
    } else {
        json!({
            "tools": {"listChanged": false},
            "resources": {"subscribe": false, "listChanged": false},
            "prompts": {"listChanged": false},
            "completions": {},
            "extensions": extensions
        })
    }
}

fn server_info() -> Implementation {
    Implementation {
        name: SERVER_NAME.to_owned(),
        title: Some("Custory".to_owned()),
        version: Some(env!("CARGO_PKG_VERSION").to_owned()),
    }
}

/// `server/discover`: the versions, capabilities and instructions (the modern era adds the
/// server's identity and caching hints to it like to every result).
fn discover_result(workspace: &str) -> Box<RawValue> {
    to_raw(&json!({
        "supportedVersions": versions_newest_first(),
        "capabilities": capabilities(true),
        "instructions": instructions(workspace),
    }))
}

/// Lists answered in one page refuse a cursor: none was ever given out.
fn single_page(request: &mut Request) -> Result<(), RpcError> {
    let params: ListParams = request.take_params()?;
    if params.cursor.is_some_and(|cursor| !cursor.is_null()) {
        return Err(RpcError::invalid_params(format!(
            "unknown cursor ({} has a single page)",
            request.method
        )));
    }
    Ok(())
}

/// How long a modern client may keep a result, and who may share it: fixed lists for five
/// minutes, but never across keys (what a key sees depends on its access and workspace);
/// workspace content not at all (another agent may change it the next moment).
fn cache_hint(method: &str) -> Option<(u64, &'static str)> {
    match method {
        "server/discover" | "tools/list" | "prompts/list" => Some((300_000, "private")),
        "resources/templates/list" => Some((300_000, "public")),
        "resources/list" | "resources/read" => Some((0, "private")),
        _ => None,
    }
}

/// `result` with the members every modern result carries: `resultType`, the server's identity
/// in `_meta`, and `cache` as `ttlMs` and `cacheScope`. Spliced into the serialized object, so
/// a result serialized once (the tool list) is not parsed again.
fn with_modern_members(result: &RawValue, cache: Option<(u64, &'static str)>) -> Box<RawValue> {
    static IDENTITY: LazyLock<String> =
        LazyLock::new(|| to_raw(&json!({meta::SERVER_INFO: server_info()})).get().to_owned());
    let text = result.get();
    let Some(rest) = text.strip_prefix('{') else {
        // Every result is an object; anything else is passed on as it is.
        return result.to_owned();
    };
    let mut members = format!(r#"{{"resultType":"complete","_meta":{}"#, *IDENTITY);
    if let Some((ttl, scope)) = cache {
        members.push_str(&format!(r#","ttlMs":{ttl},"cacheScope":"{scope}""#));
    }
    if !rest.trim_start().starts_with('}') {
        members.push(',');
    }
    members.push_str(rest);
    // Valid JSON: one object's opening, members that serialize as JSON, then the rest of a
    // serialized object.
    RawValue::from_string(members).unwrap_or_else(|_| result.to_owned())
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
         comments and personas. Each journey is also a resource (custory://journeys/SLUG, its map as \
         Markdown) and each item one by template (custory://items/ID); the prompts run whole \
         workflows."
    )
}
