//! The MCP endpoint's HTTP and JSON-RPC contract: every error row, version negotiation, batches.

use custory_mcp::server::ServerConfig;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Call, MCP_ACCEPT, TestServer, initialize_body, rpc};

#[tokio::test]
async fn initialize_negotiates_the_version_and_issues_no_session() {
    let server = TestServer::start().await;
    let key = server.owner().create_key("Cursor", "30d", "read-write").await;
    for (asked, answered) in [
        ("2025-03-26", "2025-03-26"),
        ("2025-06-18", "2025-06-18"),
        ("2025-11-25", "2025-11-25"),
        ("2024-11-05", "2025-11-25"),
        ("2099-01-01", "2025-11-25"),
    ] {
        let body = rpc(
            1,
            "initialize",
            json!({"protocolVersion": asked, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
        );
        let answer = key.send(&body).await;
        let reply = answer.expect(200);
        assert_eq!(answer.header("content-type"), Some("application/json"));
        assert!(answer.header("mcp-session-id").is_none());
        assert_eq!(reply["id"], 1);
        assert_eq!(reply["result"]["protocolVersion"], answered, "asked {asked}");
        assert_eq!(reply["result"]["serverInfo"]["name"], "custory-mcp");
        assert!(reply["result"]["capabilities"]["tools"].is_object());
        assert!(
            reply["result"]["instructions"]
                .as_str()
                .is_some_and(|i| i.contains("acme") && i.contains("touchpoint"))
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn every_transport_error_has_its_status() {
    let server = TestServer::start_with(ServerConfig {
        allowed_origins: vec!["http://localhost:3000".into()],
        ..ServerConfig::default()
    })
    .await;
    let key = server.owner().create_key("Cursor", "30d", "read-write").await;
    let ping = rpc(7, "ping", json!({}));
    // The key's token on the endpoint, without the headers a conforming client adds.
    let bare = || server.visitor().post("/api/mcp").bearer(&key.token);

    // GET and DELETE are not offered by a stateless server.
    for method in [Method::GET, Method::DELETE] {
        let refused = server.visitor().request(method.clone(), "/api/mcp").bearer(&key.token);
        let refused = refused.send().await;
        assert_eq!(refused.status, 405, "{method}");
        assert_eq!(refused.header("allow"), Some("POST"));
    }

    // Origin: absent is fine (CLI clients), listed is fine, anything else is 403.
    key.post(&ping).header("origin", "http://localhost:3000").expect(200).await;
    let body = key.post(&ping).header("origin", "http://evil.example").expect(403).await;
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("Origin")));

    // curl's default `Accept: */*`, and two Accept headers that together list both, are fine.
    bare().header("accept", "*/*").json(&ping).expect(200).await;
    let two = bare().header("accept", "application/json").header("accept", "text/event-stream");
    two.json(&ping).expect(200).await;

    let cases: Vec<(Call, u16, i64)> = vec![
        (
            bare().header("accept", MCP_ACCEPT).header("content-type", "text/plain").body("{}"),
            415,
            -32600,
        ),
        (bare().header("accept", MCP_ACCEPT).body("{}").named("no Content-Type"), 415, -32600),
        (bare().header("accept", "application/json").json(&ping), 406, -32600),
        (bare().header("accept", "text/event-stream").json(&ping), 406, -32600),
        (bare().header("accept", "text/html").json(&ping), 406, -32600),
        // 2026-07-28 has no ping, and needs Mcp-Method first: the headers are checked first.
        (key.post(&ping).header("mcp-protocol-version", "2026-07-28"), 400, -32020),
        (key.post(&ping).header("mcp-protocol-version", "banana"), 400, -32022),
        (
            bare()
                .header("accept", MCP_ACCEPT)
                .header("content-type", "application/json")
                .body(format!("{{\"pad\":\"{}\"}}", "x".repeat(1024 * 1024)))
                .named("a body over 1 MiB"),
            413,
            -32600,
        ),
        (
            bare()
                .header("accept", MCP_ACCEPT)
                .header("content-type", "application/json")
                .body("{\"jsonrpc\":\"2.0\",\"id\":1,")
                .named("a cut body"),
            400,
            -32700,
        ),
        (
            bare()
                .header("accept", MCP_ACCEPT)
                .header("content-type", "application/json")
                .body(vec![b'{', 0xff, b'}'])
                .named("invalid UTF-8"),
            400,
            -32700,
        ),
        (
            bare()
                .header("accept", MCP_ACCEPT)
                .header("content-type", "application/json")
                .body(format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000)))
                .named("deep nesting"),
            400,
            -32700,
        ),
        (key.post(&json!({"id": 1, "method": "ping"})), 400, -32600),
        (key.post(&json!({"jsonrpc": "2.0", "id": null, "method": "ping"})), 400, -32600),
        (key.post(&json!({"jsonrpc": "2.0", "id": {"a": 1}, "method": "ping"})), 400, -32600),
        (key.post(&json!({"jsonrpc": "2.0", "id": 1, "method": 5})), 400, -32600),
        (key.post(&json!({"jsonrpc": "2.0", "id": 1})), 400, -32600),
        (key.post(&json!("just a string")), 400, -32600),
        (key.post(&json!([])), 400, -32600),
    ];
    for (call, want_status, want_code) in cases {
        let answer = call.send().await;
        let body = answer.expect(want_status);
        assert_eq!(answer.header("content-type"), Some("application/json"), "{}", answer.what);
        assert_eq!(body["error"]["code"], want_code, "{}: {body}", answer.what);
        assert_eq!(body["jsonrpc"], "2.0");
    }
    server.stop().await;
}

#[tokio::test]
async fn authentication_comes_before_the_body_is_read() {
    let server = TestServer::start().await;
    for body in [vec![b'x'; 2 * 1024 * 1024], b"{not json".to_vec()] {
        let refused = server
            .visitor()
            .post("/api/mcp")
            .header("content-type", "application/json")
            .header("accept", MCP_ACCEPT)
            .body(body)
            .send()
            .await;
        assert_eq!(refused.status, 401);
        assert!(
            refused
                .header("www-authenticate")
                .expect("a challenge")
                .starts_with("Bearer realm=\"custory\"")
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn json_rpc_errors_keep_the_request_id() {
    let server = TestServer::start().await;
    let key = server.owner().create_key("Cursor", "30d", "read-write").await;
    let big_id = json!(123_456_789_012_345_678_i64);
    let cases = [
        (rpc(big_id.clone(), "no/such/method", json!({})), -32601),
        (rpc("abc", "resources/subscribe", json!({})), -32601),
        (rpc(2, "tools/call", json!({})), -32602),
        (rpc(3, "tools/call", json!({"name": "no_such_tool"})), -32602),
        (rpc(4, "tools/call", json!({"name": "search", "arguments": [1, 2]})), -32602),
        (rpc(5, "tools/list", json!({"cursor": "bogus"})), -32602),
        (rpc(6, "initialize", json!({})), -32602),
        (json!({"jsonrpc": "2.0", "id": 8, "method": "ping", "params": [1]}), -32602),
    ];
    for (message, code) in cases {
        let body = key.post(&message).expect(200).await;
        assert_eq!(body["id"], message["id"], "{message}");
        assert_eq!(body["error"]["code"], code, "{message}: {body}");
    }

    // Notifications and client responses are accepted with 202 and no body.
    for message in [
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}}),
        json!({"jsonrpc": "2.0", "id": 99, "result": {}}),
    ] {
        let accepted = key.send(&message).await;
        assert_eq!(accepted.status, 202, "{message}");
        assert!(accepted.body.is_empty());
    }
    server.stop().await;
}

#[tokio::test]
async fn batches_are_accepted_for_2025_03_26_only() {
    let server = TestServer::start().await;
    let key = server.owner().create_key("Cursor", "30d", "read-write").await;
    let batch = json!([
        rpc(1, "ping", json!({})),
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        rpc(2, "tools/list", json!({})),
        rpc(3, "nope", json!({})),
    ]);
    for header in [None, Some("2025-03-26")] {
        let mut call = key.post(&batch);
        if let Some(version) = header {
            call = call.header("mcp-protocol-version", version);
        }
        let body = call.expect(200).await;
        let replies = body.as_array().expect("a batch answer is an array");
        assert_eq!(replies.len(), 3, "the notification gets no reply");
        assert_eq!(replies[0]["result"], json!({}));
        assert!(replies[1]["result"]["tools"].is_array());
        assert_eq!(replies[2]["error"]["code"], -32601);
    }
    let only_notifications = json!([{"jsonrpc": "2.0", "method": "notifications/initialized"}]);
    assert_eq!(key.send(&only_notifications).await.status, 202);

    for version in ["2025-06-18", "2025-11-25"] {
        let body = key.post(&batch).header("mcp-protocol-version", version).expect(400).await;
        assert_eq!(body["error"]["code"], -32600);
    }
    // A single message still works with the modern versions.
    key.with_version("2025-11-25").post(&initialize_body()).expect(200).await;
    server.stop().await;
}

#[tokio::test]
async fn failed_authentication_is_rate_limited_per_address_without_slowing_valid_keys() {
    let server = TestServer::start_with(ServerConfig {
        auth_failures_per_window: 5,
        ..ServerConfig::default()
    })
    .await;
    let owner = server.owner();
    let key = owner.create_key("Cursor", "30d", "read-write").await;
    // A key in use: this server has found it valid (SQLite: it is in the key cache).
    key.post(&initialize_body()).expect(200).await;
    let unused = owner.create_key("Unused", "30d", "read-write").await;
    // Well-formed, but never issued by this server.
    let stranger = custory_mcp::token::PlainToken::generate(custory_mcp::token::TokenKind::Mcp);
    let wrong = server.key(stranger.expose());
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let refused = wrong.send(&initialize_body()).await;
        if refused.status == 429 {
            let retry: u64 =
                refused.header("retry-after").expect("Retry-After").parse().expect("seconds");
            assert!((1..=60).contains(&retry), "Retry-After {retry}");
        }
        statuses.push(refused.status);
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429]);
    // Over the limit, a token is refused before it is looked up: more made-up tokens cost
    // the database nothing, nor does a key never used on this server.
    let reads = server.store.access().key_reads();
    for _ in 0..5 {
        let other = custory_mcp::token::PlainToken::generate(custory_mcp::token::TokenKind::Mcp);
        let refused = server.key(other.expose()).send(&initialize_body()).await;
        assert_eq!(refused.status, 429);
        assert!(refused.header("retry-after").is_some());
    }
    assert_eq!(unused.send(&initialize_body()).await.status, 429);
    assert_eq!(server.store.access().key_reads(), reads, "no key was read from the database");
    // The key in use from the same address is not slowed or refused.
    for _ in 0..3 {
        key.post(&initialize_body()).expect(200).await;
    }
    // The admin API shares the budget: a wrong owner credential is refused with 429 now,
    // while the right one still works.
    let refused = server.visitor().owner("csa_wrong").get("/workspaces").send().await;
    assert!(refused.header("retry-after").is_some());
    refused.expect_error(429, "too_many_failures");
    owner.get("/workspaces").expect(200).await;
    server.stop().await;
}

#[tokio::test]
async fn requests_addressed_to_another_host_are_refused() {
    let server = TestServer::start().await;
    let owner = server.owner();
    let key = owner.create_key("Cursor", "30d", "read-write").await;
    let port = server.url.rsplit(':').next().expect("port").to_owned();
    for (host, want) in [
        (format!("localhost:{port}"), 200),
        (format!("127.0.0.1:{port}"), 200),
        ("evil.example".to_owned(), 403),
        (format!("attacker.example:{port}"), 403),
    ] {
        let status = key.post(&initialize_body()).header("host", &host).send().await.status;
        assert_eq!(status, want, "Host: {host}");
        let status = owner.get("/workspaces").header("host", &host).send().await.status;
        assert_eq!(status, want, "admin, Host: {host}");
    }
    server.stop().await;
}

#[tokio::test]
async fn answers_sent_before_the_body_is_read_say_connection_close() {
    let server = TestServer::start().await;
    let owner = server.owner();
    let key = owner.create_key("Cursor", "30d", "read-write").await;
    // Refused before the body is read: the client is told not to reuse the connection.
    let refused = server.key("nope").send(&initialize_body()).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.header("connection"), Some("close"));
    let refused = server.visitor().post("/api/admin/workspaces").json(&json!({"name": "x"}));
    let refused = refused.send().await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.header("connection"), Some("close"));
    // Answered after reading the body: the connection stays open for the next request.
    let served = key.send(&initialize_body()).await;
    assert_eq!(served.status, 200);
    assert_eq!(served.header("connection"), None);
    let created = owner.post("/workspaces").json(&json!({"name": "Beta"})).send().await;
    assert_eq!(created.status, 201);
    assert_eq!(created.header("connection"), None);
    server.stop().await;
}

#[tokio::test]
async fn tools_list_is_sent_gzip_compressed_only_to_clients_that_admit_it() {
    use std::io::Read as _;

    let server = TestServer::start().await;
    let owner = server.owner();

    for access in ["read-write", "read-only"] {
        // This client does not decompress: it sees the bytes on the wire.
        let key = owner.create_key(access, "30d", access).await;
        for id in [json!(7), json!("list \"é\" ✓")] {
            let list = rpc(id.clone(), "tools/list", json!({}));
            let response = key.send(&list).await;
            assert_eq!(response.status, 200);
            assert_eq!(response.header("content-encoding"), None);
            assert_eq!(response.header("vary"), Some("Accept-Encoding"));
            let plain = response.body;
            let answer: Value = serde_json::from_slice(&plain).expect("json");
            assert_eq!(answer["id"], id);
            assert!(answer["result"]["tools"].as_array().is_some_and(|t| !t.is_empty()));

            // Python's httpx, Node's fetch, a preference list: the same answer, gzipped. (A bare
            // `*` may be answered either way, RFC 9110 §12.5.3; tower-http answers it plain.)
            for accept in ["gzip, deflate", "gzip, deflate, br, zstd", "br, gzip;q=0.5"] {
                let response = key.post(&list).header("accept-encoding", accept).send().await;
                assert_eq!(response.status, 200, "{accept}");
                assert_eq!(response.header("content-encoding"), Some("gzip"));
                assert_eq!(response.header("content-type"), Some("application/json"));
                assert_eq!(response.header("vary"), Some("Accept-Encoding"));
                let wire = response.body;
                assert!(wire.len() * 4 < plain.len(), "{} of {} bytes", wire.len(), plain.len());
                let mut decoded = Vec::new();
                flate2::read::GzDecoder::new(&wire[..])
                    .read_to_end(&mut decoded)
                    .expect("a valid gzip member (CRC-32 and size checked)");
                assert!(decoded == plain, "{access}, id {id}, {accept}: decodes to another answer");
            }

            // Refused or not offered: plain.
            for accept in ["gzip;q=0", "identity", "br, deflate", "*, gzip;q=0"] {
                let response = key.post(&list).header("accept-encoding", accept).send().await;
                assert_eq!(response.header("content-encoding"), None, "{accept}");
                assert_eq!(response.header("vary"), Some("Accept-Encoding"));
                assert!(response.body == plain, "{accept}");
            }
        }

        // Only answers large enough to be worth it are compressed: not other methods or errors.
        for message in [
            rpc(1, "ping", json!({})),
            initialize_body(),
            rpc(1, "tools/list", json!({"cursor": "bogus"})),
            rpc(1, "tools/call", json!({"name": "get_workspace"})),
        ] {
            let response = key.post(&message).header("accept-encoding", "gzip").send().await;
            assert_eq!(response.status, 200, "{message}");
            assert_eq!(response.header("content-encoding"), None, "{message}");
            let _: Value = serde_json::from_slice(&response.body).expect("plain JSON");
        }
    }
    server.stop().await;
}

/// Text sorts byte by byte on both databases (SQLite's BINARY, PostgreSQL's COLLATE "C"), so a
/// list reads the same whichever database answers, and whatever PostgreSQL's locale.
#[tokio::test]
async fn text_sorts_byte_by_byte_on_every_database() {
    let server = TestServer::start().await;
    let key = server.owner().create_key("sorter", "30d", "read-write").await;
    let call = async |tool: &str, arguments: Value| {
        key.tool_call(tool, arguments).await["structuredContent"].clone()
    };
    let listed = call("list_items", json!({"kind": "insight"})).await;
    let step = listed["items"][0]["step_id"].as_str().expect("a step id").to_owned();
    // A linguistic collation (en-US) would put these as alpha, beta, Beta, Éclair; bytes as
    // Beta, alpha, beta, Éclair.
    for title in ["beta qzxv", "Éclair qzxv", "alpha qzxv", "Beta qzxv"] {
        let created =
            call("create_item", json!({"step_id": step, "kind": "insight", "title": title})).await;
        assert!(created["id"].is_string(), "{title}: {created}");
    }
    let found = call("search", json!({"query": "qzxv"})).await;
    let titles: Vec<&str> = found["hits"]
        .as_array()
        .expect("hits")
        .iter()
        .filter_map(|hit| hit["title"].as_str())
        .collect();
    // Equal ranks keep the order the items were added in, on either database; a locale's
    // collation plays no part.
    assert_eq!(titles, ["beta qzxv", "Éclair qzxv", "alpha qzxv", "Beta qzxv"]);
}
