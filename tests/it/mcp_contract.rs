//! The MCP contract as clients see it, pinned as snapshots: the `initialize` result, the tool
//! list for each access level, and the error answers (status, the headers that matter, body).
//! A change to a schema, a description or an error shows up in review as a snapshot diff;
//! `INSTA_UPDATE=always cargo test` rewrites them.

use serde_json::{Value, json};

use crate::common::{Call, MCP_ACCEPT, Reply, TestServer, initialize_body, rpc};

/// Status, the headers a client acts on, and the body (pretty JSON when it is JSON).
fn shown(reply: &Reply) -> String {
    let mut lines = vec![format!("status: {}", reply.status)];
    for name in ["content-type", "www-authenticate", "allow", "retry-after"] {
        if let Some(value) = reply.headers.get(name) {
            lines.push(format!("{name}: {}", value.to_str().expect("ascii")));
        }
    }
    let text = reply.text();
    let body = match serde_json::from_str::<Value>(&text) {
        Ok(json) => serde_json::to_string_pretty(&json).expect("json"),
        Err(_) => text,
    };
    lines.push(body);
    lines.join("\n")
}

#[tokio::test]
async fn initialize_and_the_tool_lists_are_pinned() {
    let server = TestServer::start().await;
    let owner = server.owner();
    let write = owner.create_key("writer", "30d", "read-write").await;
    let read = owner.create_key("reader", "30d", "read-only").await;

    let reply = write.send(&initialize_body()).await;
    let version = env!("CARGO_PKG_VERSION");
    insta::assert_snapshot!("mcp_initialize", shown(&reply).replace(version, "[VERSION]"));

    for (name, key) in [("mcp_tools_list_read_write", &write), ("mcp_tools_list_read_only", &read)]
    {
        let reply = key.send(&rpc(1, "tools/list", json!({}))).await;
        insta::assert_snapshot!(name, shown(&reply));
    }
    server.stop().await;
}

#[tokio::test]
async fn error_answers_are_pinned() {
    let server = TestServer::start().await;
    let owner = server.owner();
    let key = owner.create_key("errors", "30d", "read-write").await;
    let anyone = server.visitor();
    let ping = rpc(1, "ping", json!({}));
    // The key's token on the endpoint, without the headers a conforming client adds.
    let bare = || anyone.post("/api/mcp").bearer(&key.token);
    let mut shots = Vec::new();
    let mut shot = async |case: &str, call: Call| {
        shots.push(format!("## {case}\n{}", shown(&call.send().await)));
    };

    shot("no credentials", anyone.post("/api/mcp").json(&ping)).await;
    shot(
        "not a bearer token",
        anyone.post("/api/mcp").header("authorization", "Basic eDp5").json(&ping),
    )
    .await;
    shot("a token that is not an MCP key", server.key("cst_abc").post(&ping)).await;
    shot("the owner credential", server.key(owner.token()).post(&ping)).await;
    shot("a foreign Origin", key.post(&ping).header("origin", "https://evil.example")).await;
    shot("a foreign Host", key.post(&ping).header("host", "evil.example")).await;
    shot(
        "wrong Content-Type",
        bare()
            .header("accept", MCP_ACCEPT)
            .header("content-type", "text/plain")
            .body(ping.to_string()),
    )
    .await;
    shot("Accept without SSE", bare().header("accept", "application/json").json(&ping)).await;
    shot(
        "unknown MCP-Protocol-Version",
        key.post(&ping).header("mcp-protocol-version", "1999-01-01"),
    )
    .await;
    shot("a body over 1 MiB", key.post(&json!({"pad": "x".repeat(1 << 20)}))).await;
    shot(
        "not JSON",
        bare()
            .header("accept", MCP_ACCEPT)
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await;
    shot("not JSON-RPC", key.post(&json!({"jsonrpc": "1.0", "id": 1, "method": "ping"}))).await;
    shot("an unknown method", key.post(&rpc(1, "tools/frobnicate", json!({})))).await;
    shot("an unknown tool", key.post(&rpc(1, "tools/call", json!({"name": "delete_everything"}))))
        .await;
    shot(
        "a batch outside 2025-03-26",
        key.post(&json!([ping])).header("mcp-protocol-version", "2025-11-25"),
    )
    .await;
    shot("GET", anyone.get("/api/mcp").bearer(&key.token)).await;

    owner.revoke(key.id()).await;
    shot("a revoked key", key.post(&ping)).await;

    insta::assert_snapshot!("mcp_errors", shots.join("\n\n"));
    server.stop().await;
}
