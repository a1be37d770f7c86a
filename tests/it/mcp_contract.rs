//! The MCP contract as clients see it, pinned as snapshots: the `initialize` result, the tool
//! list for each access level, and the error answers (status, the headers that matter, body).
//! A change to a schema, a description or an error shows up in review as a snapshot diff;
//! `INSTA_UPDATE=always cargo test` rewrites them.

use serde_json::{Value, json};

use crate::common::{TestServer, http, initialize_body, mcp_post};

/// Status, the headers a client acts on, and the body (pretty JSON when it is JSON).
async fn shown(response: reqwest::Response) -> String {
    let status = response.status().as_u16();
    let mut lines = vec![format!("status: {status}")];
    for name in ["content-type", "www-authenticate", "allow", "retry-after"] {
        if let Some(value) = response.headers().get(name) {
            lines.push(format!("{name}: {}", value.to_str().expect("ascii")));
        }
    }
    let text = response.text().await.expect("body");
    let body = match serde_json::from_str::<Value>(&text) {
        Ok(json) => serde_json::to_string_pretty(&json).expect("json"),
        Err(_) => text,
    };
    lines.push(body);
    lines.join("\n")
}

fn rpc(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
}

#[tokio::test]
async fn initialize_and_the_tool_lists_are_pinned() {
    let server = TestServer::start().await;
    let url = server.mcp_url();
    let (_, write) = server.create_key("writer", "30d", "read-write").await;
    let (_, read) = server.create_key("reader", "30d", "read-only").await;

    let response = mcp_post(&url, &write, &initialize_body()).send().await.expect("post");
    let version = env!("CARGO_PKG_VERSION");
    insta::assert_snapshot!("mcp_initialize", shown(response).await.replace(version, "[VERSION]"));

    for (name, token) in
        [("mcp_tools_list_read_write", &write), ("mcp_tools_list_read_only", &read)]
    {
        let response =
            mcp_post(&url, token, &rpc("tools/list", json!({}))).send().await.expect("post");
        insta::assert_snapshot!(name, shown(response).await);
    }
    server.stop().await;
}

#[tokio::test]
async fn error_answers_are_pinned() {
    let server = TestServer::start().await;
    let url = server.mcp_url();
    let (key, token) = server.create_key("errors", "30d", "read-write").await;
    let ping = rpc("ping", json!({}));
    let mut shots = Vec::new();
    let mut shot = async |case: &str, request: reqwest::RequestBuilder| {
        let response = request.send().await.expect("send");
        shots.push(format!("## {case}\n{}", shown(response).await));
    };

    shot("no credentials", http().post(&url).json(&ping)).await;
    shot("not a bearer token", http().post(&url).header("authorization", "Basic eDp5").json(&ping))
        .await;
    shot("a token that is not an MCP key", mcp_post(&url, "cst_abc", &ping)).await;
    shot("the owner credential", mcp_post(&url, &server.owner, &ping)).await;
    shot(
        "a foreign Origin",
        mcp_post(&url, &token, &ping).header("origin", "https://evil.example"),
    )
    .await;
    shot("a foreign Host", mcp_post(&url, &token, &ping).header("host", "evil.example")).await;
    shot(
        "wrong Content-Type",
        http()
            .post(&url)
            .bearer_auth(&token)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "text/plain")
            .body(ping.to_string()),
    )
    .await;
    shot(
        "Accept without SSE",
        http().post(&url).bearer_auth(&token).header("accept", "application/json").json(&ping),
    )
    .await;
    shot(
        "unknown MCP-Protocol-Version",
        mcp_post(&url, &token, &ping).header("mcp-protocol-version", "1999-01-01"),
    )
    .await;
    shot("a body over 1 MiB", mcp_post(&url, &token, &json!({"pad": "x".repeat(1 << 20)}))).await;
    shot(
        "not JSON",
        http()
            .post(&url)
            .bearer_auth(&token)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await;
    shot(
        "not JSON-RPC",
        mcp_post(&url, &token, &json!({"jsonrpc": "1.0", "id": 1, "method": "ping"})),
    )
    .await;
    shot("an unknown method", mcp_post(&url, &token, &rpc("tools/frobnicate", json!({})))).await;
    shot(
        "an unknown tool",
        mcp_post(&url, &token, &rpc("tools/call", json!({"name": "delete_everything"}))),
    )
    .await;
    shot(
        "a batch outside 2025-03-26",
        mcp_post(&url, &token, &json!([ping])).header("mcp-protocol-version", "2025-11-25"),
    )
    .await;
    shot("GET", http().get(&url).bearer_auth(&token)).await;

    let revoke = server
        .admin(&format!("/workspaces/acme/mcp-keys/{}/revoke", key["id"].as_str().expect("id")));
    let revoked = http().post(revoke).bearer_auth(&server.owner).send().await.expect("revoke");
    assert_eq!(revoked.status(), 200);
    shot("a revoked key", mcp_post(&url, &token, &ping)).await;

    insta::assert_snapshot!("mcp_errors", shots.join("\n\n"));
    server.stop().await;
}
