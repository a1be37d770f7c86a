//! Signed webhooks (issue 35): every delivery verified by the Standard Webhooks reference
//! library (Python `standardwebhooks`, pinned, in a venv under the target dir); a receiver
//! down for a while, then up, gets every event in order with stable ids, across a restart of
//! the server in the middle of the retries; no token or secret in any payload or log.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

use crate::common::{TestDatabase, TestEnv};

/// The Standard Webhooks reference library for Python, pinned.
pub(crate) const STANDARD_WEBHOOKS: &str = "standardwebhooks==1.3.0";

/// How long the test waits for deliveries (the retries back off 2, 4, 8, 16… s).
const WAIT: Duration = Duration::from_secs(120);

/// The receiver process (`python/webhook_receiver.py`) and its output.
pub(crate) struct Receiver {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    pub(crate) port: u16,
}

impl Receiver {
    pub(crate) async fn start(python: &PathBuf, secret_file: &std::path::Path, port: u16) -> Self {
        Self::start_slow(python, secret_file, port, 0.0).await
    }

    /// A Slack-style receiver: takes every delivery, verifies none.
    pub(crate) async fn start_unsigned(python: &PathBuf, secret_file: &std::path::Path) -> Self {
        Self::spawn(python, secret_file, 0, 0.0, true).await
    }

    /// A receiver that answers each delivery `delay` seconds late.
    pub(crate) async fn start_slow(
        python: &PathBuf,
        secret_file: &std::path::Path,
        port: u16,
        delay: f64,
    ) -> Self {
        Self::spawn(python, secret_file, port, delay, false).await
    }

    async fn spawn(
        python: &PathBuf,
        secret_file: &std::path::Path,
        port: u16,
        delay: f64,
        unsigned: bool,
    ) -> Self {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/python/webhook_receiver.py");
        let mut child = tokio::process::Command::new(python)
            .arg(script)
            .arg(port.to_string())
            .env("WEBHOOK_SECRET_FILE", secret_file)
            .env("WEBHOOK_DELAY", delay.to_string())
            .env("WEBHOOK_UNSIGNED", if unsigned { "1" } else { "0" })
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start the receiver");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("the receiver starts in time")
            .expect("read")
            .expect("the receiver printed its port");
        let port: u16 = serde_json::from_str::<Value>(&first).expect("json")["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .expect("port");
        Self { child, lines, port }
    }

    /// The next delivery it took, within [`WAIT`].
    pub(crate) async fn next(&mut self) -> Value {
        let line = tokio::time::timeout(WAIT, self.lines.next_line())
            .await
            .expect("a delivery arrives in time")
            .expect("read")
            .expect("the receiver is running");
        serde_json::from_str(&line).expect("json")
    }

    /// Stops it, and every delivery it printed and was not yet read.
    pub(crate) async fn drain(mut self) -> Vec<Value> {
        self.child.kill().await.expect("stop the receiver");
        let mut rest = Vec::new();
        while let Ok(Some(line)) = self.lines.next_line().await {
            rest.push(serde_json::from_str(&line).expect("json"));
        }
        rest
    }

    pub(crate) async fn stop(mut self) {
        self.child.kill().await.expect("stop the receiver");
    }
}

async fn deliveries(owner: &crate::common::Owner, query: &str) -> Vec<Value> {
    let answer =
        owner.get(&format!("/workspaces/acme/webhook-deliveries{query}")).expect(200).await;
    answer["deliveries"].as_array().expect("deliveries").clone()
}

#[tokio::test]
async fn a_receiver_down_then_up_gets_every_event_verified_in_order_across_a_restart() {
    let python = tokio::task::spawn_blocking(|| crate::conformance::python_with(STANDARD_WEBHOOKS))
        .await
        .expect("install task");
    let dir = tempfile::tempdir().expect("temp dir");
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, "").expect("secret file");
    let mut receiver = Receiver::start(&python, &secret_file, 0).await;
    let port = receiver.port;

    let db = TestDatabase::for_backend(&dir.path().join("custory.db"));
    let env = TestEnv::new();
    let server = env.serve_on(&db.arg(), &["--allow-private-webhooks", "-v"]).await;
    let owner = server.owner();
    let owner_token = owner.token().to_owned();

    // Private addresses are refused without the flag (checked on a server started without it
    // below); with it, the endpoint is made and its secret shown once.
    let created = owner
        .post("/workspaces/acme/webhooks")
        .json(&json!({"url": format!("http://127.0.0.1:{port}/hooks")}))
        .expect(201)
        .await;
    let secret = created["secret"].as_str().expect("secret").to_owned();
    assert!(secret.starts_with("whsec_"), "{created}");
    let webhook_id = created["webhook"]["id"].as_str().expect("id").to_owned();
    let listed = owner.get("/workspaces/acme/webhooks").expect(200).await;
    assert!(!listed.to_string().contains(&secret), "the secret is shown once: {listed}");
    std::fs::write(&secret_file, &secret).expect("write secret");

    // A test event, now: verified by the reference library.
    let tested =
        owner.post(&format!("/workspaces/acme/webhooks/{webhook_id}/test")).expect(200).await;
    assert_eq!(tested["state"], "delivered", "{tested}");
    assert_eq!(tested["last_status"], 204, "{tested}");
    let test_delivery = receiver.next().await;
    assert_eq!(test_delivery["verified"], true, "{test_delivery}");
    assert_eq!(test_delivery["type"], "webhook.test");

    // The receiver goes down; the key lifecycle goes on.
    receiver.stop().await;
    let key = owner.create_key("ci", "30d", "read-write").await;
    let rotated = owner.rotate(key.id()).await;
    let new_id = rotated["key"]["id"].as_str().expect("new key id").to_owned();
    let new_token = rotated["token"].as_str().expect("new token").to_owned();
    owner.revoke(&new_id).await;
    let expected = ["key.created", "key.rotated", "key.created", "key.revoked"];

    // The first event is tried (and fails) while the receiver is down.
    let started = tokio::time::Instant::now();
    loop {
        let log = deliveries(&owner, &format!("?webhook={webhook_id}")).await;
        let first = log.iter().rev().find(|d| d["event_type"] == "key.created").expect("queued");
        if first["attempts"].as_i64().unwrap_or(0) >= 1 {
            assert_eq!(first["state"], "pending", "{first}");
            assert!(first.get("next_attempt_at").is_some(), "{first}");
            break;
        }
        assert!(started.elapsed() < WAIT, "no attempt was made: {log:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let queued: Vec<Value> = deliveries(&owner, &format!("?webhook={webhook_id}"))
        .await
        .into_iter()
        .filter(|d| d["event_type"] != "webhook.test")
        .rev()
        .collect();
    let types: Vec<&str> = queued.iter().map(|d| d["event_type"].as_str().unwrap_or("")).collect();
    assert_eq!(types, expected);
    let ids: Vec<String> =
        queued.iter().map(|d| d["event_id"].as_str().expect("event id").to_owned()).collect();

    // The server restarts in the middle of the retries; then the receiver comes back.
    let first_log = server.terminate().await;
    let server = env.serve_on(&db.arg(), &["--allow-private-webhooks", "-v"]).await;
    let owner = server.visitor().owner(&owner_token);
    let mut receiver = Receiver::start(&python, &secret_file, port).await;

    let mut received = Vec::new();
    for _ in &expected {
        let delivery = receiver.next().await;
        assert_eq!(delivery["verified"], true, "{delivery}");
        received.push(delivery);
    }
    let got_types: Vec<&str> = received.iter().map(|d| d["type"].as_str().unwrap_or("")).collect();
    assert_eq!(got_types, expected, "in order");
    let got_ids: Vec<String> =
        received.iter().map(|d| d["id"].as_str().expect("id").to_owned()).collect();
    assert_eq!(got_ids, ids, "the ids queued are the ids delivered, once each");
    let first_payload: Value =
        serde_json::from_str(received[0]["body"].as_str().expect("body")).expect("json");
    assert_eq!(first_payload["data"]["key"]["id"], key.id());
    assert_eq!(first_payload["data"]["key"]["name"], "ci");
    assert_eq!(first_payload["data"]["key"]["prefix"], key.info["prefix"]);
    let revoked: Value =
        serde_json::from_str(received[3]["body"].as_str().expect("body")).expect("json");
    assert_eq!(revoked["data"]["actor"]["kind"], "administrator", "who revoked: {revoked}");

    // Recorded as delivered, after more than one attempt for the first.
    let started = tokio::time::Instant::now();
    loop {
        let log = deliveries(&owner, "").await;
        if log.iter().all(|d| d["state"] == "delivered") {
            let first = log.iter().find(|d| d["event_id"] == ids[0].as_str()).expect("first");
            assert!(first["attempts"].as_i64().unwrap_or(0) >= 2, "{first}");
            break;
        }
        assert!(started.elapsed() < WAIT, "not all recorded as delivered: {log:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // No token, owner credential or secret in any payload or log.
    let second_log = server.terminate().await;
    receiver.stop().await;
    let secrets = [key.token.as_str(), new_token.as_str(), owner_token.as_str(), secret.as_str()];
    for delivery in received.iter().chain([&test_delivery]) {
        let body = delivery["body"].as_str().expect("body");
        for secret in secrets {
            assert!(!body.contains(secret), "a secret in a payload: {body}");
        }
    }
    for log in [&first_log, &second_log] {
        assert!(log.contains("webhook"), "deliveries are logged: {log}");
        for secret in secrets {
            assert!(!log.contains(secret), "a secret in the log");
        }
    }
}

#[tokio::test]
async fn private_addresses_are_refused_without_the_flag() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = TestDatabase::for_backend(&dir.path().join("custory.db"));
    let env = TestEnv::new();
    let server = env.serve_on(&db.arg(), &[]).await;
    let owner = server.owner();
    for url in ["http://127.0.0.1:9/hooks", "http://10.0.0.1/hooks", "http://[::1]/hooks"] {
        let refused = owner
            .post("/workspaces/acme/webhooks")
            .json(&json!({"url": url}))
            .expect_error(422, "invalid_url")
            .await;
        assert!(refused.to_string().contains("--allow-private-webhooks"), "{refused}");
    }
    server.terminate().await;
}

#[tokio::test]
async fn the_cli_adds_lists_tests_and_removes_a_webhook() {
    use crate::common::TestServer;
    use custory_mcp::server::ServerConfig;

    let python = tokio::task::spawn_blocking(|| crate::conformance::python_with(STANDARD_WEBHOOKS))
        .await
        .expect("install task");
    let dir = tempfile::tempdir().expect("temp dir");
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, "").expect("secret file");
    let mut receiver = Receiver::start(&python, &secret_file, 0).await;
    let config = ServerConfig { allow_private_webhooks: true, ..ServerConfig::default() };
    let server = TestServer::start_with(config).await;
    let env = TestEnv::new();

    let url = format!("http://127.0.0.1:{}/in", receiver.port);
    let added = env.admin(&server, &["webhooks", "add", &url, "--events", "key.created"]).await;
    assert_eq!(added.code, 0, "{}", added.stderr);
    let secret = added.stdout.trim().to_owned();
    assert!(secret.starts_with("whsec_"), "the secret alone on stdout: {}", added.stdout);
    std::fs::write(&secret_file, &secret).expect("write secret");

    let listed = env.admin_json(&server, &["webhooks", "list"]).await;
    let id = listed["webhooks"][0]["id"].as_str().expect("id").to_owned();
    assert_eq!(listed["webhooks"][0]["events"], json!(["key.created"]));
    assert!(!listed.to_string().contains(&secret));
    let table = env.admin(&server, &["webhooks", "list"]).await;
    assert!(table.stdout.contains(&id), "{}", table.stdout);
    assert!(table.stdout.contains("PENDING"), "{}", table.stdout);
    assert_eq!(
        (listed["webhooks"][0]["pending"].as_i64(), listed["webhooks"][0]["dropped"].as_i64()),
        (Some(0), Some(0))
    );

    let tested = env.admin_json(&server, &["webhooks", "test", &id]).await;
    assert_eq!(tested["state"], "delivered", "{tested}");
    let got = receiver.next().await;
    assert_eq!(got["verified"], true, "{got}");
    assert_eq!(got["id"], tested["event_id"]);

    let log = env.admin_json(&server, &["webhooks", "deliveries", &id]).await;
    assert_eq!(log["deliveries"][0]["event_type"], "webhook.test");
    assert_eq!(log["deliveries"][0]["last_status"], 204);

    // A receiver that is not there: the check fails as an error (exit 1), with what to run.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = format!("http://{}/in", closed.local_addr().expect("addr"));
    drop(closed);
    let added = env.admin(&server, &["webhooks", "add", &dead]).await;
    assert_eq!(added.code, 0, "{}", added.stderr);
    let listed = env.admin_json(&server, &["webhooks", "list"]).await;
    let dead_id = listed["webhooks"]
        .as_array()
        .and_then(|w| w.iter().find(|w| w["url"] == dead.as_str()))
        .and_then(|w| w["id"].as_str())
        .expect("the dead receiver's webhook")
        .to_owned();
    let failed = env.admin(&server, &["webhooks", "test", &dead_id]).await;
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert!(failed.stderr.starts_with("error: webhook.test"), "{}", failed.stderr);
    let deliveries = format!("`custory-mcp webhooks deliveries {dead_id}`");
    assert!(failed.stderr.contains(&deliveries), "{}", failed.stderr);
    env.admin(&server, &["webhooks", "remove", &dead_id]).await;

    let removed = env.admin(&server, &["webhooks", "remove", &id]).await;
    assert_eq!(removed.code, 0, "{}", removed.stderr);
    let listed = env.admin_json(&server, &["webhooks", "list"]).await;
    assert_eq!(listed["webhooks"], json!([]));
    let again = env.admin(&server, &["webhooks", "test", &id]).await;
    assert_ne!(again.code, 0);
    assert!(again.stderr.contains("webhooks list"), "says what to run: {}", again.stderr);
    receiver.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn member_events_go_out_and_never_carry_the_invitation_code() {
    use crate::common::TestServer;
    use custory_mcp::server::ServerConfig;

    let python = tokio::task::spawn_blocking(|| crate::conformance::python_with(STANDARD_WEBHOOKS))
        .await
        .expect("install task");
    let dir = tempfile::tempdir().expect("temp dir");
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, "").expect("secret file");
    let mut receiver = Receiver::start(&python, &secret_file, 0).await;
    let config = ServerConfig { allow_private_webhooks: true, ..ServerConfig::default() };
    let server = TestServer::start_with(config).await;
    let owner = server.owner();
    let events = ["member.invited", "member.joined", "member.removed"];
    let created = owner
        .post("/workspaces/acme/webhooks")
        .json(&json!({"url": format!("http://127.0.0.1:{}/in", receiver.port), "events": events}))
        .expect(201)
        .await;
    std::fs::write(&secret_file, created["secret"].as_str().expect("secret")).expect("write");

    let code = owner.invite("acme", "Ada", "editor").await;
    server.visitor().join(&code).await;
    owner
        .post("/workspaces/acme/members/Ada/remove")
        .json(&json!({"revoke_keys": true}))
        .expect(200)
        .await;
    let mut got = Vec::new();
    for _ in events {
        let delivery = receiver.next().await;
        assert_eq!(delivery["verified"], true, "{delivery}");
        let body = delivery["body"].as_str().expect("body");
        assert!(!body.contains(&code), "no invitation code in a payload: {body}");
        got.push(delivery["type"].as_str().expect("type").to_owned());
    }
    assert_eq!(got, events);
    receiver.stop().await;
    server.stop().await;
}

// The outbox's guarantees, driven through the store (on the backend under test) with a clock
// moved by hand: a late attempt result, the share of one workspace, the cap per endpoint, and
// pruning a chunk at a time.

mod outbox {
    use std::collections::HashMap;

    use chrono::Duration;
    use custory_mcp::api::{Access, Author, ExpiryPolicy, WebhookFormat};
    use custory_mcp::store::access::{Attempt, ClaimLimits, Claimed, WEBHOOK_LEASE_SECONDS};
    use custory_mcp::store::{Clock, Store};

    use crate::common::{Sql, TestDatabase};

    fn open() -> (tempfile::TempDir, TestDatabase, Clock, Store, i64) {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = TestDatabase::for_backend(&dir.path().join("custory.db"));
        let clock = Clock::default();
        let store = Store::open_database(&db.database, clock.clone()).expect("open");
        let acme = store.access().workspace_by_slug("acme").expect("query").expect("acme").id;
        (dir, db, clock, store, acme)
    }

    fn add_webhook(store: &Store, ws: i64) -> String {
        let (hook, _) = store
            .access()
            .create_webhook(
                ws,
                "https://example.com/in",
                &[],
                WebhookFormat::Standard,
                "admin",
                &Author::default(),
            )
            .expect("create");
        hook.id
    }

    fn claim(store: &Store, per_workspace: usize, in_flight: &HashMap<i64, usize>) -> Vec<Claimed> {
        let limits = ClaimLimits { limit: 32, per_workspace, in_flight };
        store.access().claim_webhook_deliveries(limits).expect("claim")
    }

    fn claim_any(store: &Store) -> Vec<Claimed> {
        claim(store, 32, &HashMap::new())
    }

    fn answered(status: u16) -> Attempt {
        let error = (status >= 300).then(|| format!("the receiver answered {status}"));
        Attempt { status: Some(status), error, millis: 1 }
    }

    fn count(db: &TestDatabase, sql: &str) -> i64 {
        db.query_row(sql, &[])[0].int().expect("count")
    }

    #[test]
    fn a_late_attempt_result_changes_nothing_a_newer_claim_holds() {
        let (_dir, db, clock, store, acme) = open();
        let access = store.access();
        let hook = add_webhook(&store, acme);
        access.create_key(acme, "ci", ExpiryPolicy::Never, Access::ReadWrite).expect("key");

        // Worker A claims the event; its receiver is slower than the lease, so worker B (or
        // another replica) claims it again once the lease has run out.
        let first = claim_any(&store).pop().expect("due");
        assert!(claim_any(&store).is_empty(), "leased");
        clock.advance(Duration::seconds(WEBHOOK_LEASE_SECONDS + 1));
        let second = claim_any(&store).pop().expect("claimable again past the lease");
        assert_eq!(second.event_id, first.event_id);
        assert!(second.lease_until > first.lease_until, "a later claim, a later lease");

        // A's late failure: an attempt in the log, and nothing else. B still holds it, so it
        // is not due again behind B's back once A's backoff has passed.
        let applied = access.record_webhook_attempt(&first, &answered(503)).expect("record");
        assert!(!applied, "a late result does not apply");
        clock.advance(Duration::seconds(10));
        assert!(claim_any(&store).is_empty(), "a late failure freed a delivery B is sending");
        let log = access.list_webhook_deliveries(acme, Some(&hook), 10).expect("log");
        assert_eq!(log[0].state, "pending");
        assert_eq!(log[0].attempts, 0, "{:?}", log[0]);
        assert_eq!(log[0].last_status, None, "{:?}", log[0]);

        // B delivers; a late failure of A's after that does not undo it either.
        assert!(access.record_webhook_attempt(&second, &answered(204)).expect("record"));
        assert!(!access.record_webhook_attempt(&first, &answered(500)).expect("record"));
        let log = access.list_webhook_deliveries(acme, Some(&hook), 10).expect("log");
        assert_eq!(log[0].state, "delivered", "{:?}", log[0]);
        assert_eq!(log[0].attempts, 1, "{:?}", log[0]);
        assert_eq!(log[0].last_status, Some(204), "{:?}", log[0]);
        assert_eq!(count(&db, "SELECT count(*) FROM webhook_attempts"), 3, "every attempt logged");
    }

    #[test]
    fn one_workspace_takes_at_most_its_share_of_the_sends_in_flight() {
        let (_dir, _db, _clock, store, acme) = open();
        let access = store.access();
        access.create_workspace("Beta", "beta").expect("beta");
        let beta = access.workspace_by_slug("beta").expect("query").expect("beta").id;
        for _ in 0..6 {
            add_webhook(&store, acme);
        }
        add_webhook(&store, beta);
        access.create_key(acme, "ci", ExpiryPolicy::Never, Access::ReadWrite).expect("key");
        access.create_key(beta, "ci", ExpiryPolicy::Never, Access::ReadWrite).expect("key");

        // Seven due (six endpoints of acme's, one of beta's), a share of four.
        let claimed = claim(&store, 4, &HashMap::new());
        let of =
            |ws: i64, claimed: &[Claimed]| claimed.iter().filter(|c| c.workspace_id == ws).count();
        assert_eq!(of(acme, &claimed), 4, "acme's share");
        assert_eq!(of(beta, &claimed), 1, "beta is not crowded out");
        // With acme's four still in flight, its other two wait; one back, one more goes.
        assert!(claim(&store, 4, &HashMap::from([(acme, 4)])).is_empty());
        let more = claim(&store, 4, &HashMap::from([(acme, 3)]));
        assert_eq!(more.len(), 1, "one place free in acme's share");
        assert_eq!(of(acme, &more), 1);
    }

    /// Inserts `n` pending deliveries for `endpoint`, made at `at` (event ids `msg_seed1`…).
    fn seed(db: &TestDatabase, endpoint: &str, n: i64, at: i64) {
        db.execute(
            &format!(
                "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < {n})
                 INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, payload,
                                                 created_at, next_attempt_at)
                 SELECT ?1, 'msg_seed' || i, 'key.created', '{{}}', {at}, {at} FROM seq"
            ),
            &[endpoint.into()],
        );
    }

    #[test]
    fn past_its_cap_an_endpoint_drops_its_oldest_pending_deliveries_not_its_newest() {
        use custory_mcp::store::access::MAX_WEBHOOK_PENDING as MAX;

        let (_dir, db, _clock, store, acme) = open();
        let access = store.access();
        let hook = add_webhook(&store, acme);
        let now = store.now().timestamp();
        seed(&db, &hook, MAX, now);
        // The oldest is in flight: it is not the one dropped.
        let in_flight = claim_any(&store).pop().expect("due");
        assert_eq!(in_flight.event_id, "msg_seed1");

        access.create_key(acme, "ci", ExpiryPolicy::Never, Access::ReadWrite).expect("key");
        let state = |event: &str| {
            db.query_row(
                "SELECT failed_at, last_error FROM webhook_deliveries WHERE event_id = ?1",
                &[event.into()],
            )
        };
        assert_eq!(state("msg_seed1")[0], Sql::Null, "in flight, kept");
        let dropped = state("msg_seed2");
        assert!(dropped[0].int().is_some(), "the oldest waiting one is given up: {dropped:?}");
        let why = format!("dropped: more than {MAX} pending for this endpoint");
        assert_eq!(dropped[1], Sql::Text(why.clone()));
        assert_eq!(state("msg_seed3")[0], Sql::Null);
        let pending = |sql: &str| count(&db, sql);
        assert_eq!(
            pending(
                "SELECT count(*) FROM webhook_deliveries
                 WHERE delivered_at IS NULL AND failed_at IS NULL AND event_type = 'key.created'
                   AND event_id NOT LIKE 'msg_seed%'"
            ),
            1,
            "the newest event is kept"
        );

        // Seen in `webhooks list` (pending, dropped) and `webhooks deliveries` (why).
        let listed = access.list_webhooks(acme).expect("list");
        assert_eq!((listed[0].pending, listed[0].dropped), (MAX, 1));
        let log = access.list_webhook_deliveries(acme, Some(&hook), 200).expect("log");
        assert_eq!(log.iter().filter(|d| d.state == "pending").count(), 200, "newest first");
        let total = pending(
            "SELECT count(*) FROM webhook_deliveries
             WHERE delivered_at IS NULL AND failed_at IS NULL",
        );
        assert_eq!(total, MAX, "never more than the cap");
    }

    #[test]
    fn pruning_over_several_chunks_deletes_every_ended_delivery_past_the_cutoff_only() {
        let (_dir, db, _clock, store, acme) = open();
        let hook = add_webhook(&store, acme);
        let cutoff = store.now().timestamp() - 3600;
        // More than two chunks (5,000 each) delivered before the cutoff, some given up before
        // it, some delivered and given up after it, and some pending: each with an attempt.
        seed(&db, &hook, 12_500, cutoff - 7200);
        let mark = |column: &str, at: i64, from: i64, to: i64| {
            db.execute(
                &format!(
                    "UPDATE webhook_deliveries SET {column} = {at}
                     WHERE id - (SELECT min(id) FROM webhook_deliveries) + 1
                           BETWEEN {from} AND {to}"
                ),
                &[],
            );
        };
        mark("delivered_at", cutoff - 60, 1, 11_000);
        mark("failed_at", cutoff - 1, 11_001, 11_500);
        mark("delivered_at", cutoff, 11_501, 11_800);
        mark("failed_at", cutoff + 60, 11_801, 12_000);
        db.execute(
            "INSERT INTO webhook_attempts (delivery_id, endpoint_id, at, status, millis)
             SELECT id, endpoint_id, created_at, 204, 1 FROM webhook_deliveries",
            &[],
        );

        let before = chrono::DateTime::from_timestamp(cutoff, 0).expect("time");
        let pruned = store.access().prune_webhook_deliveries(before).expect("prune");
        assert_eq!(pruned, 11_500, "every delivery that ended before the cutoff");
        assert_eq!(count(&db, "SELECT count(*) FROM webhook_deliveries"), 1_000);
        assert_eq!(
            count(
                &db,
                "SELECT count(*) FROM webhook_deliveries
                 WHERE delivered_at IS NULL AND failed_at IS NULL"
            ),
            500,
            "pending ones stay"
        );
        assert_eq!(count(&db, "SELECT count(*) FROM webhook_attempts"), 1_000, "their attempts");
        assert_eq!(
            count(
                &db,
                "SELECT count(*) FROM webhook_attempts a
                 WHERE NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.id = a.delivery_id)"
            ),
            0
        );
    }
}
