//! What one client, key or stranger may take of the server, each bound shown by the attack it
//! stops: slow and idle connections, too many connections from one address, stalled bodies,
//! oversized batches, a key running more than its share or faster than its rate, a revoke in
//! the middle of a batch, a workspace past its quota, a shutdown held open by a slow client.

use std::time::{Duration, Instant};

use custory_mcp::server::{ConnectionLimits, Rate, ServerConfig};
use custory_mcp::store::{Quotas, StoreOptions};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::common::{TestServer, rpc, tool_call};

fn addr(server: &TestServer) -> String {
    server.url.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection (or `within` passes: then `false`).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// Polls `done` (a condition another task brings about) for up to 20 s.
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "waited 20 s for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn quick(header: Duration) -> ServerConfig {
    ServerConfig {
        connections: ConnectionLimits { header_timeout: header, ..ConnectionLimits::default() },
        body_timeout: Duration::from_millis(600),
        ..ServerConfig::default()
    }
}

#[tokio::test]
async fn slow_heads_idle_connections_and_stalled_bodies_are_cut_off() {
    let server = TestServer::start_with(quick(Duration::from_millis(600))).await;
    let token = server.owner().create_key("slow", "30d", "read-write").await.token;

    // Slowloris: a request head that never ends.
    let mut slow = TcpStream::connect(addr(&server)).await.expect("connect");
    slow.write_all(b"POST /api/mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1").await.expect("write");
    assert!(closed_within(&mut slow, Duration::from_secs(5)).await, "a slow head is closed");

    // A connection that says nothing, and one kept alive after a request: both closed.
    let mut silent = TcpStream::connect(addr(&server)).await.expect("connect");
    assert!(closed_within(&mut silent, Duration::from_secs(5)).await, "an idle connection");
    let mut kept = TcpStream::connect(addr(&server)).await.expect("connect");
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.expect("write");
    assert!(closed_within(&mut kept, Duration::from_secs(5)).await, "idle after a request");

    // A body that stops halfway: 408, not a connection held open.
    let mut stalled = TcpStream::connect(addr(&server)).await.expect("connect");
    let head = format!(
        "POST /api/mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
         Content-Length: 1000\r\n\r\n{{\"jsonrpc\":"
    );
    stalled.write_all(head.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stalled.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the server answered and closed");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    server.stop().await;
}

#[tokio::test]
async fn one_address_cannot_take_every_connection() {
    let config = ServerConfig {
        connections: ConnectionLimits { max_per_address: 3, ..ConnectionLimits::default() },
        ..ServerConfig::default()
    };
    let server = TestServer::start_with(config).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(addr(&server)).await.expect("connect"));
    }
    let mut fourth = TcpStream::connect(addr(&server)).await.expect("the kernel accepts");
    assert!(closed_within(&mut fourth, Duration::from_secs(5)).await, "the server drops it");
    drop(held);
    // Once they are gone, the address may connect again.
    server.visitor().get("/healthz").expect(200).await;
    server.stop().await;
}

#[tokio::test]
async fn shutdown_does_not_wait_for_a_slow_client() {
    let config = ServerConfig {
        connections: ConnectionLimits {
            shutdown_grace: Duration::from_secs(1),
            header_timeout: Duration::from_secs(60),
            ..ConnectionLimits::default()
        },
        body_timeout: Duration::from_secs(60),
        ..ServerConfig::default()
    };
    let server = TestServer::start_with(config).await;
    let token = server.owner().create_key("slow", "30d", "read-write").await.token;
    let mut stalled = TcpStream::connect(addr(&server)).await.expect("connect");
    let head = format!(
        "POST /api/mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
    );
    stalled.write_all(head.as_bytes()).await.expect("write");
    // The request is in: its use is noted only when it ends, so wait for the server to hold it
    // by asking for something else on another connection first.
    server.visitor().get("/healthz").expect(200).await;
    let started = Instant::now();
    server.stop().await;
    assert!(started.elapsed() < Duration::from_secs(5), "stopped after {:?}", started.elapsed());
}

#[tokio::test]
async fn batches_are_capped_in_members_and_in_answer_bytes() {
    let server = TestServer::start().await;
    let key = server.owner().create_key("batcher", "30d", "read-write").await;
    let list = |id: usize| json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"});
    let post = |batch: Vec<Value>| {
        key.post(&Value::Array(batch)).header("mcp-protocol-version", "2025-03-26").send()
    };
    let body = post((0..257).map(list).collect()).await.expect(400);
    assert_eq!(body["error"]["code"], -32600);
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("256")), "{body}");

    // 256 tool lists (~23 KB each) are more than a batch may answer: the last are not run.
    let answered = post((0..256).map(list).collect()).await;
    assert_eq!(answered.status, 200);
    let text = answered.text();
    assert!(text.len() < 5 * 1024 * 1024, "{} bytes", text.len());
    let replies: Vec<Value> = serde_json::from_str(&text).expect("json");
    assert_eq!(replies.len(), 256, "every member is answered");
    let cut = replies
        .iter()
        .filter(|r| r["error"]["message"].as_str().is_some_and(|m| m.contains("not run")))
        .count();
    assert!(cut > 50 && cut < 256, "{cut} members not run");
    server.stop().await;
}

#[tokio::test]
async fn a_revoke_stops_a_batch_in_flight_and_runs_nothing_after_it() {
    let server = TestServer::start().await;
    let owner = server.owner();
    let mcp = owner.create_key("bulk", "30d", "read-write").await;
    let step = {
        let journey = mcp.ok("get_journey", json!({"journey": "trial-to-paid"})).await;
        journey["stages"][0]["steps"][0]["id"].as_str().expect("step").to_owned()
    };
    // 256 members of ~3.5 KB: under the 1 MiB body limit, long enough to revoke in the middle.
    let long = "d".repeat(3_000);
    let batch: Vec<Value> = (0..256)
        .map(|i| {
            json!({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": "create_item",
                   "arguments": {"step_id": step, "kind": "insight", "title": format!("Bulk {i}"), "description": long}}})
        })
        .collect();
    let request = mcp.post(&Value::Array(batch)).header("mcp-protocol-version", "2025-03-26");
    let running = tokio::spawn(request.send());
    // Revoke once the batch is under way (its first items exist).
    let created = || {
        server.db.query_row("SELECT count(*) FROM items WHERE title LIKE 'Bulk %'", &[])[0]
            .int()
            .unwrap_or(0)
    };
    wait_until("the batch's first items", || created() > 0).await;
    let id = mcp.id();
    owner.revoke(id).await;
    let after_revoke = created();
    let replies = running.await.expect("task").json();
    let replies = replies.as_array().expect("a batch answer");
    let refused = replies.iter().filter(|r| r["error"]["code"] == -32001).count();
    assert!(refused > 0, "members after the revoke are refused");
    // Nothing ran after the revoke answered: a write in progress either committed before the
    // revoke (writes and revokes take turns on the write lock) or was refused.
    let finally = created();
    assert_eq!(finally, after_revoke, "{after_revoke} when revoked, {finally} in the end");
    let late = server.db.query_row(
        "SELECT count(*) FROM audit_events WHERE kind = 'tool.called' AND key_id = ?1
         AND id > (SELECT id FROM audit_events WHERE kind = 'key.revoked' AND key_id = ?1)",
        &[id.into()],
    )[0]
    .int();
    assert_eq!(late, Some(0), "tool calls recorded after the revoke");
    server.stop().await;
}

#[tokio::test]
async fn a_key_beyond_its_share_or_its_rate_waits_or_is_refused_and_others_are_not() {
    let config = ServerConfig {
        per_key_concurrency: 1,
        per_key_wait: Duration::from_millis(100),
        // Slow refills: the requests below would have to take seconds to slip past the rate.
        key_requests: Rate { per_second: 1, burst: 10 },
        key_writes: Rate { per_second: 1, burst: 3 },
        ..ServerConfig::default()
    };
    let server = TestServer::start_with(config).await;
    let owner = server.owner();
    let busy = owner.create_key("busy", "30d", "read-write").await;
    let other = owner.create_key("other", "30d", "read-write").await;
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});

    // Rate: the burst passes, then 429 with Retry-After; another key is not affected.
    let mut statuses = Vec::new();
    for _ in 0..14 {
        let response = busy.send(&ping).await;
        if response.status == 429 {
            assert!(response.header("retry-after").is_some());
            let body = response.json();
            assert!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("--key-requests-per-second")),
                "{body}"
            );
            statuses.push(429);
        } else {
            statuses.push(response.status);
        }
    }
    assert!(statuses[..10].iter().all(|s| *s == 200), "{statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");
    assert_eq!(other.send(&ping).await.status, 200, "another key has its own rate");

    // Writes have their own rate.
    let mcp = &other;
    let step = {
        let journey = mcp.ok("get_journey", json!({"journey": "trial-to-paid"})).await;
        journey["stages"][0]["steps"][0]["id"].as_str().expect("step").to_owned()
    };
    let create =
        tool_call(1, "create_item", json!({"step_id": step, "kind": "insight", "title": "Rated"}));
    let mut writes = Vec::new();
    for _ in 0..5 {
        writes.push(other.send(&create).await.status);
    }
    assert_eq!(&writes[..3], &[200, 200, 200], "{writes:?}");
    assert!(writes.contains(&429), "{writes:?}");

    server.stop().await;
}

#[tokio::test]
async fn a_key_beyond_its_share_waits_for_its_own_requests_only() {
    let config = ServerConfig { per_key_concurrency: 1, ..ServerConfig::default() };
    let server = TestServer::start_with(config).await;
    let owner = server.owner();
    let busy = owner.create_key("busy", "30d", "read-write").await;
    let other = owner.create_key("other", "30d", "read-write").await;
    let journey = busy.ok("get_journey", json!({"journey": "trial-to-paid"})).await;
    let step = journey["stages"][0]["steps"][0]["id"].as_str().expect("step").to_owned();
    let long = "s".repeat(3_000);
    let slow: Vec<Value> = (0..250)
        .map(|i| {
            tool_call(
                i,
                "create_item",
                json!({"step_id": step, "kind": "insight",
                           "title": format!("Share {i}"), "description": long}),
            )
        })
        .collect();
    let ping = rpc(1, "ping", json!({}));
    let made = || {
        server.db.query_row("SELECT count(*) FROM items WHERE title LIKE 'Share %'", &[])[0]
            .int()
            .unwrap_or(0)
    };
    // Each ping notes how many of the batch's items existed when its answer came.
    let ping_with = |key: &crate::common::Key| {
        let call = key.post(&ping);
        async move {
            let status = call.send().await.status;
            (status, made())
        }
    };
    let batch = busy.post(&Value::Array(slow)).header("mcp-protocol-version", "2025-03-26");
    let batch = tokio::spawn(batch.send());
    // The batch holds the key's one slot before the pings are sent.
    wait_until("the batch's first items", || made() > 0).await;
    let (mine, theirs) = tokio::join!(ping_with(&busy), ping_with(&other));
    let batch = batch.await.expect("task");
    assert_eq!((batch.status, mine.0, theirs.0), (200, 200, 200));
    assert!(theirs.1 < 250, "another key is answered while the batch runs: {theirs:?}");
    assert_eq!(mine.1, 250, "the same key's ping waited for the batch to end");
    server.stop().await;
}

#[tokio::test]
async fn a_workspace_past_its_quota_takes_no_more_and_says_which_limit() {
    // What the demo holds, measured on a server with the default quotas.
    let count = |server: &TestServer, counter: &str| {
        let sql = "SELECT n FROM workspace_counts c JOIN workspaces w ON w.id = c.workspace_id
                   WHERE w.slug = 'acme' AND c.counter = ?1";
        server.db.query_row(sql, &[counter.into()])[0].int().expect("a count")
    };
    let (comments, text_bytes) = {
        let server = TestServer::start().await;
        let counts = (count(&server, "comments"), count(&server, "text_bytes"));
        server.stop().await;
        counts
    };
    let options = StoreOptions {
        quotas: Quotas { items: 22, comments: comments + 2, text_bytes: text_bytes + 5_000 },
        ..StoreOptions::default()
    };
    let server = TestServer::start_with_options(ServerConfig::default(), options).await;
    let mcp = server.owner().create_key("filler", "30d", "read-write").await;
    let journey = mcp.ok("get_journey", json!({"journey": "trial-to-paid"})).await;
    let step = journey["stages"][0]["steps"][0]["id"].as_str().expect("step").to_owned();
    let new = |title: &str| json!({"step_id": step, "kind": "insight", "title": title});
    // The demo holds 20 items: two more fit.
    let item = mcp.ok("create_item", new("one")).await;
    mcp.ok("create_item", new("two")).await;
    let message = mcp.err("create_item", new("three")).await;
    assert!(message.contains("22 items") && message.contains("--max-items"), "{message}");
    let total = mcp.ok("get_workspace", json!({})).await["items"]["total"].clone();
    assert_eq!(total, 22, "nothing was added past the quota");

    // Text: 4,000 bytes fit, 4,000 more do not.
    let id = item["id"].as_str().expect("id");
    let fits = "x".repeat(4_000);
    mcp.ok("update_item", json!({"item_id": id, "description": fits})).await;
    let message =
        mcp.err("update_item", json!({"item_id": id, "description": "y".repeat(9_000)})).await;
    assert!(message.contains("bytes of text") && message.contains("--max-text-bytes"), "{message}");
    let kept = mcp.ok("get_item", json!({"item_id": id})).await;
    assert_eq!(kept["description"], fits, "the refused update changed nothing");

    // Comments: two more fit.
    for body in ["first", "second"] {
        mcp.ok("add_comment", json!({"item_id": id, "body": body})).await;
    }
    let message = mcp.err("add_comment", json!({"item_id": id, "body": "one too many"})).await;
    let most = format!("{} comments", comments + 2);
    assert!(message.contains(&most) && message.contains("--max-comments"), "{message}");
    server.stop().await;
}

#[tokio::test]
async fn a_map_stays_readable_however_many_stages_an_agent_adds() {
    let server = TestServer::start().await;
    let mcp = server.owner().create_key("mapper", "30d", "read-write").await;
    let journey = mcp.ok("create_journey", json!({"name": "Crowded"})).await;
    let id = journey["id"].as_str().expect("id");
    for n in 0..30 {
        mcp.ok("create_stage", json!({"journey": id, "name": format!("Stage {n}")})).await;
    }
    let message = mcp.err("create_stage", json!({"journey": id, "name": "One too many"})).await;
    assert!(message.contains("at most 30 stages"), "{message}");
    let map = mcp.ok("get_journey", json!({"journey": id})).await;
    assert_eq!(map["stages"].as_array().map(Vec::len), Some(30), "nothing past the cap");
    server.stop().await;
}
