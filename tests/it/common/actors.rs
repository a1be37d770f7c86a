//! Who acts in a test, and every exchange they have with a server, each written once:
//!
//! - [`Owner`] (`server.owner()`): the admin API with the owner credential, with a method for
//!   each thing tests do often (create a key, list keys, revoke…);
//! - [`Key`] (`owner.create_key(…)`, `server.key(token)`): an MCP client for one key
//!   (`rpc`, `tool_call`, `ok`, `err`, `batch`, `initialize`, `tools`);
//! - [`Visitor`] (`server.visitor()`): anyone, with no credential, on any path.
//!
//! A request is a [`Call`], built like reqwest's and named in assertion messages; its answer a
//! [`Reply`], read completely. `call.expect(200)` checks the status and gives the JSON.

use bytes::Bytes;
use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

/// The `Accept` header a conforming MCP client sends.
pub const MCP_ACCEPT: &str = "application/json, text/event-stream";

/// An HTTP client that ignores proxy settings (the tests talk to loopback only).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().expect("client")
}

/// A JSON-RPC request.
pub fn rpc(id: impl Into<Value>, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id.into(), "method": method, "params": params})
}

/// A JSON-RPC `tools/call` request.
pub fn tool_call(id: impl Into<Value>, name: &str, arguments: Value) -> Value {
    rpc(id, "tools/call", json!({"name": name, "arguments": arguments}))
}

/// The `initialize` request of a 2025-11-25 client named `it-client/1.2.3`.
pub fn initialize_body() -> Value {
    rpc(
        1,
        "initialize",
        json!({
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "it-client", "version": "1.2.3"}
        }),
    )
}

// ---------------------------------------------------------------------------------------------
// One exchange.

/// A request about to be sent, and what to call it in assertion messages.
#[must_use = "a call does nothing until it is sent"]
pub struct Call {
    request: reqwest::RequestBuilder,
    what: String,
}

impl Call {
    pub fn new(client: &reqwest::Client, method: Method, url: &str) -> Self {
        let shown = url.split_once("://").map_or(url, |(_, rest)| rest);
        let path = shown.find('/').map_or("/", |at| &shown[at..]);
        let what = format!("{method} {}", &path[..path.len().min(120)]);
        Self { request: client.request(method, url), what }
    }

    /// Renames the call in assertion messages.
    pub fn named(mut self, what: impl Into<String>) -> Self {
        self.what = what.into();
        self
    }

    /// `Authorization: Bearer <token>`.
    pub fn bearer(mut self, token: &str) -> Self {
        self.request = self.request.bearer_auth(token);
        self
    }

    pub fn header<K, V>(mut self, name: K, value: V) -> Self
    where
        HeaderName: TryFrom<K>,
        <HeaderName as TryFrom<K>>::Error: Into<axum::http::Error>,
        HeaderValue: TryFrom<V>,
        <HeaderValue as TryFrom<V>>::Error: Into<axum::http::Error>,
    {
        self.request = self.request.header(name, value);
        self
    }

    /// A JSON body (`Content-Type: application/json`).
    pub fn json(mut self, body: &Value) -> Self {
        self.request = self.request.json(body);
        self
    }

    /// A form body (`application/x-www-form-urlencoded`).
    pub fn form(mut self, fields: &[(&str, &str)]) -> Self {
        self.request = self.request.form(fields);
        self
    }

    /// A body as it is, with no `Content-Type` unless one is set.
    pub fn body(mut self, body: impl Into<reqwest::Body>) -> Self {
        self.request = self.request.body(body);
        self
    }

    /// Sends it; `Err` when the exchange did not complete (for tests of faults).
    pub async fn try_send(self) -> reqwest::Result<Reply> {
        let response = self.request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await?;
        Ok(Reply { status, headers, body, what: self.what })
    }

    /// Sends it; the server must answer.
    pub async fn send(self) -> Reply {
        let what = self.what.clone();
        self.try_send().await.unwrap_or_else(|error| panic!("{what}: no answer: {error}"))
    }

    /// Sends it; the answer must have `status`. Its JSON (`Null` when it has none).
    pub async fn expect(self, status: u16) -> Value {
        self.send().await.expect(status)
    }

    /// Sends it; the answer must be the admin API's error shape with `status` and `code`, and
    /// a sentence. Its JSON.
    pub async fn expect_error(self, status: u16, code: &str) -> Value {
        self.send().await.expect_error(status, code)
    }
}

/// An answer, read completely.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The call it answers, for assertion messages.
    pub what: String,
}

impl Reply {
    /// The body as JSON; `Null` when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The header `name` as text (`None` when absent or not text).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The JSON of an answer that must have `status`.
    pub fn expect(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "{}: {}", self.what, self.text());
        self.json()
    }

    /// The JSON of an admin API error with `status` and `code` and a sentence.
    pub fn expect_error(&self, status: u16, code: &str) -> Value {
        let body = self.json();
        assert_eq!(
            (self.status, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{}: {body}",
            self.what
        );
        assert!(
            body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{}: an error without a sentence: {body}",
            self.what
        );
        body
    }
}

// ---------------------------------------------------------------------------------------------
// The actors.

/// Anyone, with no credential, on any path of one server.
#[derive(Debug, Clone)]
pub struct Visitor {
    url: String,
    client: reqwest::Client,
}

impl Visitor {
    /// A visitor of the server at `url` (`http://127.0.0.1:PORT`).
    pub fn new(url: &str) -> Self {
        Self { url: url.trim_end_matches('/').to_owned(), client: http() }
    }

    /// The same visitor through another client (timeouts, a local address).
    pub fn with_client(mut self, client: reqwest::Client) -> Self {
        self.client = client;
        self
    }

    /// `method` on `path` (from the root: `/healthz`).
    pub fn request(&self, method: Method, path: &str) -> Call {
        Call::new(&self.client, method, &format!("{}{path}", self.url))
    }

    pub fn get(&self, path: &str) -> Call {
        self.request(Method::GET, path)
    }

    pub fn post(&self, path: &str) -> Call {
        self.request(Method::POST, path)
    }

    /// An MCP client for `token` on this server.
    pub fn key(&self, token: &str) -> Key {
        Key { info: Value::Null, token: token.to_owned(), site: self.clone(), version: None }
    }

    /// Redeems an invitation `code`, which must succeed: the member, as a caller of the admin
    /// API with the credential it gave.
    pub async fn join(&self, code: &str) -> Owner {
        let redeemed = self
            .post("/api/admin/invitations/redeem")
            .json(&json!({"code": code}))
            .expect(201)
            .await;
        self.owner(redeemed["credential"].as_str().expect("a member's credential"))
    }

    /// The owner, with `token` as the owner credential (or anyone presenting `token` as one).
    pub fn owner(&self, token: &str) -> Owner {
        Owner { site: self.clone(), token: token.to_owned() }
    }
}

/// The owner: the admin API (`/api/admin/…`) with the owner credential.
#[derive(Debug, Clone)]
pub struct Owner {
    site: Visitor,
    token: String,
}

impl Owner {
    pub fn token(&self) -> &str {
        &self.token
    }

    /// `method` on `/api/admin{path}`, with the owner credential.
    pub fn request(&self, method: Method, path: &str) -> Call {
        self.site.request(method, &format!("/api/admin{path}")).bearer(&self.token)
    }

    pub fn get(&self, path: &str) -> Call {
        self.request(Method::GET, path)
    }

    pub fn post(&self, path: &str) -> Call {
        self.request(Method::POST, path)
    }

    /// `POST /workspaces` with `body`, which must make one: the answer.
    pub async fn create_workspace(&self, body: Value) -> Value {
        self.post("/workspaces").json(&body).expect(201).await
    }

    /// `GET /workspaces`.
    pub async fn workspaces(&self) -> Value {
        self.get("/workspaces").expect(200).await
    }

    /// A key of the workspace `acme`, which must be made: its MCP client.
    pub async fn create_key(&self, name: &str, expires: &str, access: &str) -> Key {
        self.create_key_in("acme", json!({"name": name, "expires": expires, "access": access}))
            .await
    }

    /// A key of `workspace` made from `body` (`name`, `expires`, `access`): its MCP client.
    pub async fn create_key_in(&self, workspace: &str, body: Value) -> Key {
        let created =
            self.post(&format!("/workspaces/{workspace}/mcp-keys")).json(&body).expect(201).await;
        let token = created["token"].as_str().expect("a new key's token");
        Key { info: created["key"].clone(), ..self.site.key(token) }
    }

    /// `GET /workspaces/{workspace}/mcp-keys{query}`: the answer (`keys`, `next_cursor`).
    pub async fn list_keys(&self, workspace: &str, query: &str) -> Value {
        self.get(&format!("/workspaces/{workspace}/mcp-keys{query}")).expect(200).await
    }

    /// `GET /workspaces/acme/mcp-keys/{id}`: the answer (`key`).
    pub async fn show_key(&self, id: &str) -> Value {
        self.get(&format!("/workspaces/acme/mcp-keys/{id}")).expect(200).await
    }

    /// Revokes the key `id` of `acme`, which must succeed: the answer.
    pub async fn revoke(&self, id: &str) -> Value {
        self.post(&format!("/workspaces/acme/mcp-keys/{id}/revoke")).expect(200).await
    }

    /// Rotates the key `id` of `acme`, which must succeed: the answer (`key`, `token`,
    /// `replaced`).
    pub async fn rotate(&self, id: &str) -> Value {
        self.post(&format!("/workspaces/acme/mcp-keys/{id}/rotate")).expect(201).await
    }

    /// `GET /workspaces/{workspace}/audit{query}`.
    pub async fn audit(&self, workspace: &str, query: &str) -> Value {
        self.get(&format!("/workspaces/{workspace}/audit{query}")).expect(200).await
    }

    /// Invites `name` to `workspace` as `role`, which must succeed: the invitation code.
    pub async fn invite(&self, workspace: &str, name: &str, role: &str) -> String {
        let body = json!({"name": name, "role": role});
        let created = self
            .post(&format!("/workspaces/{workspace}/invitations"))
            .json(&body)
            .expect(201)
            .await;
        created["code"].as_str().expect("an invitation's code").to_owned()
    }

    /// Invites `name` to `workspace` as `role` and redeems the code: the member, as a caller of
    /// the admin API with their own credential.
    pub async fn add_member(&self, workspace: &str, name: &str, role: &str) -> Owner {
        let code = self.invite(workspace, name, role).await;
        self.site.join(&code).await
    }
}

/// An MCP client for one key: requests to `/api/mcp` with its token and the headers a
/// conforming client sends.
#[derive(Debug, Clone)]
pub struct Key {
    /// The key as the admin API showed it when it was made (`Null` when made from a token).
    pub info: Value,
    pub token: String,
    site: Visitor,
    /// `MCP-Protocol-Version` on every request, when set.
    version: Option<String>,
}

impl Key {
    /// The key's id (`key_…`), from the admin API's answer.
    pub fn id(&self) -> &str {
        self.info["id"].as_str().unwrap_or_else(|| panic!("no key id in {}", self.info))
    }

    /// The same key speaking `version` (sent as `MCP-Protocol-Version`).
    pub fn with_version(&self, version: &str) -> Self {
        Self { version: Some(version.to_owned()), ..self.clone() }
    }

    /// The same key through another client (a local address, timeouts).
    pub fn with_client(mut self, client: reqwest::Client) -> Self {
        self.site = self.site.with_client(client);
        self
    }

    /// `POST /api/mcp` with `body`.
    pub fn post(&self, body: &Value) -> Call {
        let method = body["method"].as_str().or(body[0]["method"].as_str()).unwrap_or("");
        self.endpoint().json(body).named(format!("POST /api/mcp {method}"))
    }

    /// `POST /api/mcp` with `body` as it is, as JSON (`Content-Type: application/json`).
    pub fn post_bytes(&self, body: Vec<u8>) -> Call {
        self.endpoint().header("content-type", "application/json").body(body)
    }

    /// `POST /api/mcp` with the key's token and the headers a conforming client sends.
    fn endpoint(&self) -> Call {
        let call = self.site.post("/api/mcp").bearer(&self.token).header("accept", MCP_ACCEPT);
        match &self.version {
            Some(version) => call.header("mcp-protocol-version", version.as_str()),
            None => call,
        }
    }

    /// Sends `body`; the answer, whatever it is.
    pub async fn send(&self, body: &Value) -> Reply {
        self.post(body).send().await
    }

    /// A request that must be answered with 200: the JSON-RPC reply.
    pub async fn rpc(&self, method: &str, params: Value) -> Value {
        self.post(&rpc(1, method, params)).expect(200).await
    }

    /// A request that must succeed: its `result`.
    pub async fn result(&self, method: &str, params: Value) -> Value {
        let reply = self.rpc(method, params).await;
        assert!(reply["result"].is_object(), "{method}: {reply}");
        reply["result"].clone()
    }

    /// `initialize` as a 2025-11-25 client: its result.
    pub async fn initialize(&self) -> Value {
        let reply = self.post(&initialize_body()).expect(200).await;
        assert!(reply["result"].is_object(), "initialize: {reply}");
        reply["result"].clone()
    }

    /// Every tool `tools/list` offers this key, page after page.
    pub async fn tools(&self) -> Vec<Value> {
        let mut tools = Vec::new();
        let mut params = json!({});
        loop {
            let page = self.result("tools/list", params).await;
            tools.extend(page["tools"].as_array().expect("tools").iter().cloned());
            match page["nextCursor"].as_str() {
                Some(cursor) => params = json!({"cursor": cursor}),
                None => return tools,
            }
        }
    }

    /// The names of [`Key::tools`].
    pub async fn tool_names(&self) -> Vec<String> {
        let tools = self.tools().await;
        tools.iter().map(|t| t["name"].as_str().expect("a tool's name").to_owned()).collect()
    }

    /// A tool's result (`content`, `structuredContent`, `isError`).
    pub async fn tool_call(&self, tool: &str, arguments: Value) -> Value {
        let reply = self.post(&tool_call(1, tool, arguments)).expect(200).await;
        reply["result"].clone()
    }

    /// The structured content of a call that must succeed.
    pub async fn ok(&self, tool: &str, arguments: Value) -> Value {
        let result = self.tool_call(tool, arguments.clone()).await;
        assert_eq!(result["isError"], false, "{tool} {arguments}: {result}");
        result["structuredContent"].clone()
    }

    /// The sentence of a call that must fail as a tool error.
    pub async fn err(&self, tool: &str, arguments: Value) -> String {
        let result = self.tool_call(tool, arguments.clone()).await;
        assert_eq!(result["isError"], true, "{tool} {arguments}: {result}");
        result["content"][0]["text"].as_str().expect("text").to_owned()
    }

    /// Many calls in one JSON-RPC batch (protocol 2025-03-26); every one must succeed.
    pub async fn batch(&self, calls: &[(&str, Value)]) -> Vec<Value> {
        let body: Vec<Value> = (1..)
            .zip(calls)
            .map(|(id, (tool, arguments))| tool_call(id, tool, arguments.clone()))
            .collect();
        let answer = self
            .post(&Value::Array(body))
            .header("mcp-protocol-version", "2025-03-26")
            .expect(200)
            .await;
        let mut replies: Vec<Value> = serde_json::from_value(answer).expect("a batch answer");
        replies.sort_by_key(|r| r["id"].as_i64());
        replies
            .into_iter()
            .map(|reply| {
                assert_eq!(reply["result"]["isError"], false, "{reply}");
                reply["result"]["structuredContent"].clone()
            })
            .collect()
    }
}
