//! The audit stream (`serve --audit-sink URL`): a collector on loopback, down while the load
//! runs and across a restart of the server, then failing, then slow, receives every call the
//! load made and every audit event, in order, gzip-compressed NDJSON, with its header, and
//! never a token.

use std::collections::HashSet;
use std::io::Read as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::common::{Key, Sql, TestDatabase, TestEnv, initialize_body, tool_call};

/// What the collector was sent and how it behaves.
#[derive(Default)]
struct Collected {
    /// Every line accepted, in the order received.
    lines: Mutex<Vec<Value>>,
    /// Every body accepted, decompressed, to search for secrets.
    raw: Mutex<Vec<u8>>,
    /// Batches to refuse with 503 before accepting any.
    refuse: AtomicUsize,
    /// How long each accepted batch takes to answer, in milliseconds.
    delay_ms: AtomicUsize,
    /// Batches that came without gzip, NDJSON or the Authorization header.
    malformed: Mutex<Vec<String>>,
}

async fn ingest(
    State(collected): State<Arc<Collected>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    if collected.refuse.load(Ordering::SeqCst) > 0 {
        collected.refuse.fetch_sub(1, Ordering::SeqCst);
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let delay = collected.delay_ms.load(Ordering::SeqCst) as u64;
    tokio::time::sleep(Duration::from_millis(delay)).await;
    let mut problems = Vec::new();
    if header("content-encoding") != "gzip" {
        problems.push(format!("content-encoding {:?}", header("content-encoding")));
    }
    if header("content-type") != "application/x-ndjson" {
        problems.push(format!("content-type {:?}", header("content-type")));
    }
    if header("authorization") != "Splunk collector-token" {
        problems.push("no Authorization header".to_owned());
    }
    let mut text = Vec::new();
    if flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut text).is_err() {
        problems.push("not gzip".to_owned());
    }
    let mut lines = Vec::new();
    for line in text.split(|b| *b == b'\n').filter(|line| !line.is_empty()) {
        match serde_json::from_slice::<Value>(line) {
            Ok(value) => lines.push(value),
            Err(error) => problems.push(format!("a line is not JSON: {error}")),
        }
    }
    if !text.ends_with(b"\n") {
        problems.push("the body does not end with a newline".to_owned());
    }
    collected.malformed.lock().expect("collector lock").extend(problems);
    collected.raw.lock().expect("collector lock").extend_from_slice(&text);
    collected.lines.lock().expect("collector lock").extend(lines);
    StatusCode::OK
}

/// Starts the collector on `port` (which must be free again).
async fn collector_on(port: u16, collected: Arc<Collected>) -> tokio::task::JoinHandle<()> {
    let app =
        axum::Router::new().route("/ingest", axum::routing::post(ingest)).with_state(collected);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("the collector's port was taken while it was down");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("collector");
    })
}

/// Waits until `done` holds, failing with `what` after a minute.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Makes `rounds` × 3 calls with `key`, four clients at once; how many.
async fn load(key: &Key, rounds: usize) -> usize {
    let mut tasks = Vec::new();
    for client in 0..4 {
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            for round in 0..rounds {
                let id = (client * 1000 + round) as i64;
                for (tool, args) in [
                    ("get_workspace", json!({})),
                    ("list_journeys", json!({})),
                    ("search", json!({"query": "onboarding"})),
                ] {
                    let reply = key.send(&tool_call(id, tool, args)).await;
                    assert_eq!(reply.status, 200, "{tool}: {}", reply.text());
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("load");
    }
    4 * rounds * 3
}

fn count(db: &TestDatabase, sql: &str) -> i64 {
    db.query_row(sql, &[])[0].int().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_down_then_failing_then_slow_gets_every_call_in_order_across_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = TestDatabase::for_backend(&dir.path().join("custory.db"));
    let env = TestEnv::new();
    // The collector is down: its port is free and nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let sink = format!("http://127.0.0.1:{port}/ingest?channel=secret-query");
    let flags =
        ["--audit-sink", &sink, "--audit-sink-header", "Authorization: Splunk collector-token"];
    let first = env.serve_on(&db.arg(), &flags).await;
    // Named by host and port only: a path or query may hold the collector's token.
    let label = format!("127.0.0.1:{port}");
    assert_eq!(first.announced["audit_sink"], label.as_str(), "{}", first.announced);
    let owner = first.owner();
    until("the sink to start", || count(&db, "SELECT COUNT(*) FROM audit_sinks") == 1).await;

    // The load, and events: a key made, another made and revoked.
    let key = owner.create_key("agent", "30d", "read-write").await;
    let doomed = owner.create_key("doomed", "30d", "read-only").await;
    owner.revoke(doomed.id()).await;
    // A webhook endpoint with a secret of its own and one in its URL: neither is streamed.
    let hook = owner
        .post("/workspaces/acme/webhooks")
        .json(&json!({"url": "https://hooks.example.com/in?token=receiver-secret"}))
        .expect(201)
        .await;
    let hook_secret = hook["secret"].as_str().expect("secret").to_owned();
    let agent = first.key(&key.token);
    assert_eq!(agent.send(&initialize_body()).await.status, 200);
    let mut made = load(&agent, 10).await;
    until("the calls to be written", || {
        count(&db, "SELECT COUNT(*) FROM key_calls") >= made as i64
    })
    .await;

    // A restart while the collector is still down (the cursor is in the database).
    let said_first = first.terminate().await;
    let with_metrics = [&flags[..], &["--metrics-listen", "127.0.0.1:0"]].concat();
    let second = env.serve_on(&db.arg(), &with_metrics).await;
    let metrics_url = second.announced["metrics_url"].as_str().expect("metrics_url").to_owned();
    let owner = second.visitor().owner(owner.token());
    let agent = second.key(&key.token);

    // Up, but failing twice, then slow: each batch takes 700 ms.
    let collected = Arc::new(Collected::default());
    collected.refuse.store(2, Ordering::SeqCst);
    collected.delay_ms.store(700, Ordering::SeqCst);
    let collector = collector_on(port, Arc::clone(&collected)).await;
    // More load while it is slow, in several pieces.
    for _ in 0..3 {
        made += load(&agent, 5).await;
    }
    let late = owner.create_key("late", "90d", "read-only").await;

    let calls_in_db = || count(&db, "SELECT COUNT(*) FROM key_calls");
    until("the calls to be written", || calls_in_db() >= made as i64).await;
    let received = |source: &str| -> Vec<i64> {
        let lines = collected.lines.lock().expect("collector lock");
        lines.iter().filter(|l| l["source"] == source).filter_map(|l| l["id"].as_i64()).collect()
    };
    until("every call to reach the collector", || {
        received("calls").into_iter().collect::<HashSet<_>>().len() >= made
    })
    .await;
    until("the last key's creation to reach the collector", || {
        collected.lines.lock().expect("collector lock").iter().any(|l| l["key_id"] == late.id())
    })
    .await;
    // What it counted: the refusals, the lines taken, and the lag now that it caught up.
    let page = crate::common::http().get(&metrics_url).send().await.expect("metrics");
    let page = page.text().await.expect("metrics page");
    let metric = |name: &str| -> f64 {
        page.lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{page}"))
    };
    assert!(metric("custory_audit_sink_failures_total") >= 2.0, "{page}");
    assert!(metric("custory_audit_sink_lines_total{source=\"calls\"}") >= 1.0, "{page}");
    assert_eq!(metric("custory_audit_sink_dropped_total"), 0.0, "{page}");
    assert!(page.contains("custory_audit_sink_lag_seconds"), "{page}");
    let said_second = second.terminate().await;
    collector.abort();

    assert_eq!(collected.malformed.lock().expect("collector lock").clone(), Vec::<String>::new());
    // Every call, each once at least, and in order: first sight of each id only ever rises.
    for source in ["calls", "audit"] {
        let mut seen = HashSet::new();
        let firsts: Vec<i64> = received(source).into_iter().filter(|id| seen.insert(*id)).collect();
        assert!(firsts.windows(2).all(|w| w[0] < w[1]), "{source} out of order: {firsts:?}");
    }
    let stored: HashSet<i64> = db
        .query_rows("SELECT id FROM key_calls", &[])
        .iter()
        .filter_map(|row| row[0].int())
        .collect();
    let got: HashSet<i64> = received("calls").into_iter().collect();
    assert_eq!(stored.len(), made, "the server recorded every call the load made");
    assert_eq!(got, stored, "the collector got exactly the calls recorded");

    // The lines: what `audit --json` shows, with their source and workspace.
    let lines = collected.lines.lock().expect("collector lock").clone();
    let call = lines.iter().find(|l| l["source"] == "calls").expect("a call");
    assert_eq!(call["workspace"], "acme", "{call}");
    assert_eq!(call["kind"], "call.tool", "{call}");
    assert_eq!(call["key_id"], key.id(), "{call}");
    assert!(call["call"]["what"].is_string() && call["at"].is_string(), "{call}");
    let kinds: Vec<(&str, &str)> = lines
        .iter()
        .filter(|l| l["source"] == "audit")
        .filter_map(|l| Some((l["kind"].as_str()?, l["key_id"].as_str()?)))
        .collect();
    assert!(lines.iter().any(|l| l["kind"] == "webhook.added"), "no webhook.added line");
    for expected in [
        ("key.created", key.id()),
        ("key.created", doomed.id()),
        ("key.revoked", doomed.id()),
        ("key.created", late.id()),
    ] {
        assert!(kinds.contains(&expected), "{expected:?} not in {kinds:?}");
    }

    // No secret in any line or log.
    let raw = String::from_utf8_lossy(&collected.raw.lock().expect("collector lock")).into_owned();
    for secret in [key.token.as_str(), doomed.token.as_str(), late.token.as_str(), owner.token()] {
        assert!(!raw.contains(secret), "a token was streamed");
        assert!(
            !said_first.contains(secret) && !said_second.contains(secret),
            "a token was logged"
        );
    }
    for secret in [hook_secret.as_str(), "receiver-secret"] {
        assert!(!raw.contains(secret), "a webhook's secret was streamed");
    }
    for said in [&said_first, &said_second] {
        assert!(!said.contains("secret-query") && !said.contains("collector-token"), "{said}");
    }
    // The failures were said, by host and path.
    assert!(said_first.contains("could not send to the audit sink"), "{said_first}");
    assert!(said_second.contains(&label), "{said_second}");
    assert!(!said_second.contains("/ingest"), "{said_second}");
    let dropped = db.query_row("SELECT dropped FROM audit_sinks", &[]);
    assert_eq!(dropped[0], Sql::Int(0), "nothing was dropped");
}

/// Two replicas on one PostgreSQL database stream to one collector: one sends at a time (the
/// lease), so each call arrives once, whichever replica recorded it; when that replica stops,
/// the other takes over at once and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_postgres_replicas_send_each_line_once_and_hand_over_when_one_stops() {
    let db = TestDatabase::postgres();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let collected = Arc::new(Collected::default());
    let collector = collector_on(port, Arc::clone(&collected)).await;
    let sink = format!("http://127.0.0.1:{port}/ingest");
    let flags =
        ["--audit-sink", &sink, "--audit-sink-header", "Authorization: Splunk collector-token"];
    let (env_a, env_b) = (TestEnv::new(), TestEnv::new());
    let a = env_a.serve_on(&db.arg(), &flags).await;
    let b = env_b.serve_on(&db.arg(), &flags).await;
    let owner = a.owner();
    until("the sink to start", || count(&db, "SELECT COUNT(*) FROM audit_sinks") == 1).await;
    let key = owner.create_key("agent", "30d", "read-only").await;
    let mut made = load(&a.key(&key.token), 5).await + load(&b.key(&key.token), 5).await;
    let calls = || -> Vec<i64> {
        let lines = collected.lines.lock().expect("collector lock");
        lines.iter().filter(|l| l["source"] == "calls").filter_map(|l| l["id"].as_i64()).collect()
    };
    until("both replicas' calls to arrive", || calls().len() >= made).await;
    let once: Vec<i64> = calls();
    let distinct: HashSet<i64> = once.iter().copied().collect();
    assert_eq!(distinct.len(), once.len(), "a line came twice from two replicas: {once:?}");

    // A stops (giving its lease up if it held it); B goes on alone.
    a.terminate().await;
    made += load(&b.key(&key.token), 5).await;
    until("the calls made after the hand-over", || {
        calls().into_iter().collect::<HashSet<_>>().len() >= made
    })
    .await;
    b.terminate().await;
    collector.abort();
    let stored: HashSet<i64> = db
        .query_rows("SELECT id FROM key_calls", &[])
        .iter()
        .filter_map(|row| row[0].int())
        .collect();
    let all = calls();
    assert_eq!(all.iter().copied().collect::<HashSet<_>>(), stored);
    let mut seen = HashSet::new();
    let firsts: Vec<i64> = all.into_iter().filter(|id| seen.insert(*id)).collect();
    assert!(firsts.windows(2).all(|w| w[0] < w[1]), "out of order: {firsts:?}");
}

/// Past the bound, on the backend under test: calls pruned (past the audit retention) before a
/// sink was sent them are counted as its drops, and only those.
#[tokio::test]
async fn calls_pruned_before_they_were_sent_count_as_the_sinks_drops() {
    let server = crate::common::TestServer::start().await;
    let key = server.owner().create_key("Old", "never", "read-only").await;
    let list = tool_call(1, "list_journeys", json!({}));
    key.send(&list).await;
    server.store.access().flush_activity().expect("flush");
    // The sink starts after that first call, and is sent nothing before the prune.
    let access = server.store.access();
    access.hold_sink("s", "collector:9", "me").expect("hold").expect("held");
    for _ in 0..3 {
        key.send(&list).await;
    }
    access.flush_activity().expect("flush");
    server.store.clock().advance(chrono::Duration::days(31));
    let month = server.store.now() - chrono::Duration::days(30);
    access.prune_activity(month, month).expect("prune");
    assert_eq!(count(&server.db, "SELECT COUNT(*) FROM key_calls"), 0, "all four pruned");
    let dropped = server.db.query_row("SELECT dropped FROM audit_sinks", &[]);
    assert_eq!(dropped[0], Sql::Int(3), "the three calls after the cursor, not the one before");
    server.stop().await;
}
