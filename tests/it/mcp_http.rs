//! The MCP endpoint's HTTP and JSON-RPC contract: every error row, version negotiation, batches.

use custory_mcp::server::ServerConfig;
use serde_json::{Value, json};

use crate::common::{TestServer, http, initialize_body, mcp_post};

async fn parts(response: reqwest::Response) -> (u16, reqwest::header::HeaderMap, Value) {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

fn rpc(id: Value, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

#[tokio::test]
async fn initialize_negotiates_the_version_and_issues_no_session() {
    let server = TestServer::start().await;
    let (_, token) = server.create_key("Cursor", "30d", "read-write").await;
    for (asked, answered) in [
        ("2025-03-26", "2025-03-26"),
        ("2025-06-18", "2025-06-18"),
        ("2025-11-25", "2025-11-25"),
        ("2024-11-05", "2025-11-25"),
        ("2099-01-01", "2025-11-25"),
    ] {
        let body = rpc(
            json!(1),
            "initialize",
            json!({"protocolVersion": asked, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
        );
        let (status, headers, reply) =
            parts(mcp_post(&server.mcp_url(), &token, &body).send().await.expect("post")).await;
        assert_eq!(status, 200);
        assert_eq!(headers["content-type"], "application/json");
        assert!(headers.get("mcp-session-id").is_none());
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
    let (_, token) = server.create_key("Cursor", "30d", "read-write").await;
    let url = server.mcp_url();
    let ping = rpc(json!(7), "ping", json!({}));

    // GET and DELETE are not offered by a stateless server.
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let response =
            http().request(method.clone(), &url).bearer_auth(&token).send().await.expect("send");
        assert_eq!(response.status(), 405, "{method}");
        assert_eq!(response.headers()["allow"], "POST");
    }

    // Origin: absent is fine (CLI clients), listed is fine, anything else is 403.
    let (status, _, _) = parts(
        mcp_post(&url, &token, &ping)
            .header("origin", "http://localhost:3000")
            .send()
            .await
            .expect("post"),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, body) = parts(
        mcp_post(&url, &token, &ping)
            .header("origin", "http://evil.example")
            .send()
            .await
            .expect("post"),
    )
    .await;
    assert_eq!(status, 403);
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("Origin")));

    // curl's default `Accept: */*`, and two Accept headers that together list both, are fine.
    let (status, _, _) = parts(
        http()
            .post(&url)
            .bearer_auth(&token)
            .header("accept", "*/*")
            .json(&ping)
            .send()
            .await
            .expect("post"),
    )
    .await;
    assert_eq!(status, 200);
    let two = http()
        .post(&url)
        .bearer_auth(&token)
        .header("accept", "application/json")
        .header("accept", "text/event-stream");
    assert_eq!(parts(two.json(&ping).send().await.expect("post")).await.0, 200);

    let cases: Vec<(reqwest::RequestBuilder, u16, i64)> = vec![
        (
            http()
                .post(&url)
                .bearer_auth(&token)
                .header("accept", "application/json, text/event-stream")
                .header("content-type", "text/plain")
                .body("{}"),
            415,
            -32600,
        ),
        (
            http()
                .post(&url)
                .bearer_auth(&token)
                .header("accept", "application/json, text/event-stream")
                .body("{}"),
            415,
            -32600,
        ),
        (
            http().post(&url).bearer_auth(&token).header("accept", "application/json").json(&ping),
            406,
            -32600,
        ),
        (
            http().post(&url).bearer_auth(&token).header("accept", "text/event-stream").json(&ping),
            406,
            -32600,
        ),
        (
            http().post(&url).bearer_auth(&token).header("accept", "text/html").json(&ping),
            406,
            -32600,
        ),
        // 2026-07-28 has no ping, and needs Mcp-Method first: the headers are checked first.
        (mcp_post(&url, &token, &ping).header("mcp-protocol-version", "2026-07-28"), 400, -32020),
        (mcp_post(&url, &token, &ping).header("mcp-protocol-version", "banana"), 400, -32022),
        (
            http()
                .post(&url)
                .bearer_auth(&token)
                .header("accept", "application/json, text/event-stream")
                .header("content-type", "application/json")
                .body(format!("{{\"pad\":\"{}\"}}", "x".repeat(1024 * 1024))),
            413,
            -32600,
        ),
        (
            http()
                .post(&url)
                .bearer_auth(&token)
                .header("accept", "application/json, text/event-stream")
                .header("content-type", "application/json")
                .body("{\"jsonrpc\":\"2.0\",\"id\":1,"),
            400,
            -32700,
        ),
        (
            http()
                .post(&url)
                .bearer_auth(&token)
                .header("accept", "application/json, text/event-stream")
                .header("content-type", "application/json")
                .body(vec![b'{', 0xff, b'}']),
            400,
            -32700,
        ),
        (
            http()
                .post(&url)
                .bearer_auth(&token)
                .header("accept", "application/json, text/event-stream")
                .header("content-type", "application/json")
                .body(format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000))),
            400,
            -32700,
        ),
        (mcp_post(&url, &token, &json!({"id": 1, "method": "ping"})), 400, -32600),
        (
            mcp_post(&url, &token, &json!({"jsonrpc": "2.0", "id": null, "method": "ping"})),
            400,
            -32600,
        ),
        (
            mcp_post(&url, &token, &json!({"jsonrpc": "2.0", "id": {"a": 1}, "method": "ping"})),
            400,
            -32600,
        ),
        (mcp_post(&url, &token, &json!({"jsonrpc": "2.0", "id": 1, "method": 5})), 400, -32600),
        (mcp_post(&url, &token, &json!({"jsonrpc": "2.0", "id": 1})), 400, -32600),
        (mcp_post(&url, &token, &json!("just a string")), 400, -32600),
        (mcp_post(&url, &token, &json!([])), 400, -32600),
    ];
    for (request, want_status, want_code) in cases {
        let built = request.build().expect("request");
        let what = format!("{:?}", built.headers());
        let (status, headers, body) = parts(http().execute(built).await.expect("send")).await;
        assert_eq!(status, want_status, "{what}: {body}");
        assert_eq!(headers["content-type"], "application/json", "{what}");
        assert_eq!(body["error"]["code"], want_code, "{what}: {body}");
        assert_eq!(body["jsonrpc"], "2.0");
    }
    server.stop().await;
}

#[tokio::test]
async fn authentication_comes_before_the_body_is_read() {
    let server = TestServer::start().await;
    let url = server.mcp_url();
    for body in [vec![b'x'; 2 * 1024 * 1024], b"{not json".to_vec()] {
        let response = http()
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body)
            .send()
            .await
            .expect("post");
        assert_eq!(response.status(), 401);
        assert!(
            response.headers()["www-authenticate"]
                .to_str()
                .expect("ascii")
                .starts_with("Bearer realm=\"custory\"")
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn json_rpc_errors_keep_the_request_id() {
    let server = TestServer::start().await;
    let (_, token) = server.create_key("Cursor", "30d", "read-write").await;
    let url = server.mcp_url();
    let big_id = json!(123_456_789_012_345_678_i64);
    let cases = [
        (rpc(big_id.clone(), "no/such/method", json!({})), -32601),
        (rpc(json!("abc"), "resources/subscribe", json!({})), -32601),
        (rpc(json!(2), "tools/call", json!({})), -32602),
        (rpc(json!(3), "tools/call", json!({"name": "no_such_tool"})), -32602),
        (rpc(json!(4), "tools/call", json!({"name": "search", "arguments": [1, 2]})), -32602),
        (rpc(json!(5), "tools/list", json!({"cursor": "bogus"})), -32602),
        (rpc(json!(6), "initialize", json!({})), -32602),
        (json!({"jsonrpc": "2.0", "id": 8, "method": "ping", "params": [1]}), -32602),
    ];
    for (message, code) in cases {
        let (status, _, body) =
            parts(mcp_post(&url, &token, &message).send().await.expect("post")).await;
        assert_eq!(status, 200, "{message}");
        assert_eq!(body["id"], message["id"], "{message}");
        assert_eq!(body["error"]["code"], code, "{message}: {body}");
    }

    // Notifications and client responses are accepted with 202 and no body.
    for message in [
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}}),
        json!({"jsonrpc": "2.0", "id": 99, "result": {}}),
    ] {
        let response = mcp_post(&url, &token, &message).send().await.expect("post");
        assert_eq!(response.status(), 202, "{message}");
        assert!(response.bytes().await.expect("body").is_empty());
    }
    server.stop().await;
}

#[tokio::test]
async fn batches_are_accepted_for_2025_03_26_only() {
    let server = TestServer::start().await;
    let (_, token) = server.create_key("Cursor", "30d", "read-write").await;
    let url = server.mcp_url();
    let batch = json!([
        rpc(json!(1), "ping", json!({})),
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        rpc(json!(2), "tools/list", json!({})),
        rpc(json!(3), "nope", json!({})),
    ]);
    for header in [None, Some("2025-03-26")] {
        let mut request = mcp_post(&url, &token, &batch);
        if let Some(version) = header {
            request = request.header("mcp-protocol-version", version);
        }
        let (status, _, body) = parts(request.send().await.expect("post")).await;
        assert_eq!(status, 200);
        let replies = body.as_array().expect("a batch answer is an array");
        assert_eq!(replies.len(), 3, "the notification gets no reply");
        assert_eq!(replies[0]["result"], json!({}));
        assert!(replies[1]["result"]["tools"].is_array());
        assert_eq!(replies[2]["error"]["code"], -32601);
    }
    let only_notifications = json!([{"jsonrpc": "2.0", "method": "notifications/initialized"}]);
    let response = mcp_post(&url, &token, &only_notifications).send().await.expect("post");
    assert_eq!(response.status(), 202);

    for version in ["2025-06-18", "2025-11-25"] {
        let request = mcp_post(&url, &token, &batch).header("mcp-protocol-version", version);
        let (status, _, body) = parts(request.send().await.expect("post")).await;
        assert_eq!(status, 400);
        assert_eq!(body["error"]["code"], -32600);
    }
    // A single message still works with the modern versions.
    let request =
        mcp_post(&url, &token, &initialize_body()).header("mcp-protocol-version", "2025-11-25");
    assert_eq!(request.send().await.expect("post").status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn failed_authentication_is_rate_limited_per_address_without_slowing_valid_keys() {
    let server = TestServer::start_with(ServerConfig {
        auth_failures_per_window: 5,
        ..ServerConfig::default()
    })
    .await;
    let (_, token) = server.create_key("Cursor", "30d", "read-write").await;
    // Well-formed, but never issued by this server.
    let stranger = custory_mcp::token::PlainToken::generate(custory_mcp::token::TokenKind::Mcp);
    let wrong = stranger.expose();
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let response =
            mcp_post(&server.mcp_url(), wrong, &initialize_body()).send().await.expect("post");
        if response.status() == 429 {
            let retry: u64 = response.headers()["retry-after"]
                .to_str()
                .expect("ascii")
                .parse()
                .expect("seconds");
            assert!((1..=60).contains(&retry), "Retry-After {retry}");
        }
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429]);
    // The valid key from the same address is not slowed or refused.
    for _ in 0..3 {
        let response =
            mcp_post(&server.mcp_url(), &token, &initialize_body()).send().await.expect("post");
        assert_eq!(response.status(), 200);
    }
    // The admin API shares the budget: a wrong owner credential is refused with 429 now,
    // while the right one still works.
    let response =
        http().get(server.admin("/workspaces")).bearer_auth("csa_wrong").send().await.expect("get");
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "too_many_failures");
    let response = http()
        .get(server.admin("/workspaces"))
        .bearer_auth(&server.owner)
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn requests_addressed_to_another_host_are_refused() {
    let server = TestServer::start().await;
    let (_, token) = server.create_key("Cursor", "30d", "read-write").await;
    let port = server.url.rsplit(':').next().expect("port").to_owned();
    for (host, want) in [
        (format!("localhost:{port}"), 200),
        (format!("127.0.0.1:{port}"), 200),
        ("evil.example".to_owned(), 403),
        (format!("attacker.example:{port}"), 403),
    ] {
        let response = mcp_post(&server.mcp_url(), &token, &initialize_body())
            .header("host", &host)
            .send()
            .await
            .expect("post");
        assert_eq!(response.status(), want, "Host: {host}");
        let response = http()
            .get(server.admin("/workspaces"))
            .bearer_auth(&server.owner)
            .header("host", &host)
            .send()
            .await
            .expect("get");
        assert_eq!(response.status(), want, "admin, Host: {host}");
    }
    server.stop().await;
}

#[tokio::test]
async fn answers_sent_before_the_body_is_read_say_connection_close() {
    let server = TestServer::start().await;
    let (_, token) = server.create_key("Cursor", "30d", "read-write").await;
    let connection = |response: &reqwest::Response| {
        response.headers().get("connection").map(|v| v.to_str().unwrap_or("").to_owned())
    };
    // Refused before the body is read: the client is told not to reuse the connection.
    let refused =
        mcp_post(&server.mcp_url(), "nope", &initialize_body()).send().await.expect("post");
    assert_eq!(refused.status(), 401);
    assert_eq!(connection(&refused).as_deref(), Some("close"));
    let refused = http()
        .post(server.admin("/workspaces"))
        .json(&json!({"name": "x"}))
        .send()
        .await
        .expect("post");
    assert_eq!(refused.status(), 401);
    assert_eq!(connection(&refused).as_deref(), Some("close"));
    // Answered after reading the body: the connection stays open for the next request.
    let served =
        mcp_post(&server.mcp_url(), &token, &initialize_body()).send().await.expect("post");
    assert_eq!(served.status(), 200);
    assert_eq!(connection(&served), None);
    let created = http()
        .post(server.admin("/workspaces"))
        .bearer_auth(&server.owner)
        .json(&json!({"name": "Beta"}))
        .send()
        .await
        .expect("post");
    assert_eq!(created.status(), 201);
    assert_eq!(connection(&created), None);
    server.stop().await;
}

#[tokio::test]
async fn tools_list_is_sent_gzip_compressed_only_to_clients_that_admit_it() {
    use std::io::Read as _;

    let server = TestServer::start().await;
    let url = server.mcp_url();
    // This client does not decompress: it sees the bytes on the wire.
    let post = |token: &str, message: &Value, accept_encoding: Option<&str>| {
        let request = mcp_post(&url, token, message);
        match accept_encoding {
            Some(value) => request.header("accept-encoding", value),
            None => request,
        }
    };
    let header = |response: &reqwest::Response, name: &str| {
        response.headers().get(name).map(|v| v.to_str().expect("ascii").to_owned())
    };

    for access in ["read-write", "read-only"] {
        let (_, token) = server.create_key(access, "30d", access).await;
        for id in [json!(7), json!("list \"é\" ✓")] {
            let list = rpc(id.clone(), "tools/list", json!({}));
            let response = post(&token, &list, None).send().await.expect("post");
            assert_eq!(response.status(), 200);
            assert_eq!(header(&response, "content-encoding"), None);
            assert_eq!(header(&response, "vary").as_deref(), Some("Accept-Encoding"));
            let plain = response.bytes().await.expect("body");
            let answer: Value = serde_json::from_slice(&plain).expect("json");
            assert_eq!(answer["id"], id);
            assert!(answer["result"]["tools"].as_array().is_some_and(|t| !t.is_empty()));

            // Python's httpx, Node's fetch, a preference list: the same answer, gzipped. (A bare
            // `*` may be answered either way, RFC 9110 §12.5.3; tower-http answers it plain.)
            for accept in ["gzip, deflate", "gzip, deflate, br, zstd", "br, gzip;q=0.5"] {
                let response = post(&token, &list, Some(accept)).send().await.expect("post");
                assert_eq!(response.status(), 200, "{accept}");
                assert_eq!(header(&response, "content-encoding").as_deref(), Some("gzip"));
                assert_eq!(header(&response, "content-type").as_deref(), Some("application/json"));
                assert_eq!(header(&response, "vary").as_deref(), Some("Accept-Encoding"));
                let wire = response.bytes().await.expect("body");
                assert!(wire.len() * 4 < plain.len(), "{} of {} bytes", wire.len(), plain.len());
                let mut decoded = Vec::new();
                flate2::read::GzDecoder::new(&wire[..])
                    .read_to_end(&mut decoded)
                    .expect("a valid gzip member (CRC-32 and size checked)");
                assert!(decoded == plain, "{access}, id {id}, {accept}: decodes to another answer");
            }

            // Refused or not offered: plain.
            for accept in ["gzip;q=0", "identity", "br, deflate", "*, gzip;q=0"] {
                let response = post(&token, &list, Some(accept)).send().await.expect("post");
                assert_eq!(header(&response, "content-encoding"), None, "{accept}");
                assert_eq!(header(&response, "vary").as_deref(), Some("Accept-Encoding"));
                assert!(response.bytes().await.expect("body") == plain, "{accept}");
            }
        }

        // Only answers large enough to be worth it are compressed: not other methods or errors.
        for message in [
            rpc(json!(1), "ping", json!({})),
            initialize_body(),
            rpc(json!(1), "tools/list", json!({"cursor": "bogus"})),
            rpc(json!(1), "tools/call", json!({"name": "get_workspace"})),
        ] {
            let response = post(&token, &message, Some("gzip")).send().await.expect("post");
            assert_eq!(response.status(), 200, "{message}");
            assert_eq!(header(&response, "content-encoding"), None, "{message}");
            let _: Value = response.json().await.expect("plain JSON");
        }
    }
    server.stop().await;
}

/// Text sorts byte by byte on both databases (SQLite's BINARY, PostgreSQL's COLLATE "C"), so a
/// list reads the same whichever database answers, and whatever PostgreSQL's locale.
#[tokio::test]
async fn text_sorts_byte_by_byte_on_every_database() {
    let server = TestServer::start().await;
    let (_, token) = server.create_key("sorter", "30d", "read-write").await;
    let call = |id: u32, tool: &str, arguments: Value| {
        let body = rpc(json!(id), "tools/call", json!({"name": tool, "arguments": arguments}));
        let request = mcp_post(&server.mcp_url(), &token, &body);
        async move {
            let reply: Value = request.send().await.expect("post").json().await.expect("json");
            reply["result"]["structuredContent"].clone()
        }
    };
    let listed = call(1, "list_items", json!({"kind": "insight"})).await;
    let step = listed["items"][0]["step_id"].as_str().expect("a step id").to_owned();
    // A linguistic collation (en-US) would put these as alpha, beta, Beta, Éclair; bytes as
    // Beta, alpha, beta, Éclair.
    for (id, title) in (2..).zip(["beta qzxv", "Éclair qzxv", "alpha qzxv", "Beta qzxv"]) {
        let created =
            call(id, "create_item", json!({"step_id": step, "kind": "insight", "title": title}));
        let created = created.await;
        assert!(created["id"].is_string(), "{title}: {created}");
    }
    let found = call(9, "search", json!({"query": "qzxv"})).await;
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
