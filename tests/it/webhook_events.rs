//! The events of issue 35 beyond the key lifecycle's core, each produced for real and verified
//! by the Standard Webhooks reference library: expiry warnings (driven by the test clock),
//! and where a person sees them (`keys list`, `keys review`, `status`).

use std::path::PathBuf;
use std::time::Duration;

use chrono::Duration as Days;
use serde_json::{Value, json};

use crate::common::{TestEnv, TestServer};
use crate::webhooks::{Receiver, STANDARD_WEBHOOKS};
use custory_mcp::server::ServerConfig;

/// The Python with the reference library, and a receiver verifying with `secret_file`.
async fn receiver(dir: &std::path::Path) -> (PathBuf, Receiver) {
    let python = tokio::task::spawn_blocking(|| crate::conformance::python_with(STANDARD_WEBHOOKS))
        .await
        .expect("install task");
    let secret_file = dir.join("secret");
    std::fs::write(&secret_file, "").expect("secret file");
    let receiver = Receiver::start(&python, &secret_file, 0).await;
    (secret_file, receiver)
}

/// A server that may send to loopback, its housekeeping every 100 ms.
async fn server() -> TestServer {
    TestServer::start_with(ServerConfig {
        allow_private_webhooks: true,
        usage_flush_interval: Duration::from_millis(100),
        ..ServerConfig::default()
    })
    .await
}

/// Adds a webhook for `events` to the receiver; writes its secret where the receiver reads it.
async fn subscribe(
    server: &TestServer,
    receiver: &Receiver,
    secret_file: &PathBuf,
    events: &[&str],
) {
    let created = server
        .owner()
        .post("/workspaces/acme/webhooks")
        .json(&json!({"url": format!("http://127.0.0.1:{}/in", receiver.port), "events": events}))
        .expect(201)
        .await;
    std::fs::write(secret_file, created["secret"].as_str().expect("secret")).expect("write");
}

/// The payload of a delivery, which must be verified; its body kept in `bodies`.
fn payload(delivery: &Value, bodies: &mut Vec<String>) -> Value {
    assert_eq!(delivery["verified"], true, "{delivery}");
    let body = delivery["body"].as_str().expect("body");
    bodies.push(body.to_owned());
    serde_json::from_str(body).expect("json")
}

#[tokio::test]
async fn expiry_warnings_go_out_once_per_threshold_and_show_where_people_look() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (secret_file, mut receiver) = receiver(dir.path()).await;
    let server = server().await;
    let env = TestEnv::new();
    subscribe(&server, &receiver, &secret_file, &["key.expiring", "key.expired"]).await;
    let owner = server.owner();
    let short = owner.create_key("ci", "30d", "read-write").await;
    let long = owner.create_key("laptop", "90d", "read-write").await;
    owner.create_key("forever", "never", "read-write").await;
    let clock = server.store.clock();
    let mut bodies = Vec::new();

    // 23 days on, the 30-day key has 7 days left (it was made inside the 30-day warning,
    // which says nothing new).
    clock.advance(Days::days(23) + Days::hours(1));
    let got = payload(&receiver.next().await, &mut bodies);
    assert_eq!(got["type"], "key.expiring", "{got}");
    assert_eq!(got["data"]["key"]["id"], short.id());
    assert_eq!(got["data"]["key"]["name"], "ci");
    assert_eq!(got["data"]["key"]["prefix"], short.info["prefix"]);
    assert_eq!(got["data"]["key"]["expires_at"], short.info["expires_at"]);
    assert!(got["data"]["detail"].as_str().expect("detail").contains("7 days"), "{got}");
    assert_eq!(got["data"]["actor"]["kind"], "server");

    // Where a person looks: `keys list` (the status column, in 80 columns), `--expiring`,
    // `keys review`, `status`.
    let script = env.terminal_script(
        &server,
        "custory-mcp keys list\necho '== review'\ncustory-mcp keys review\necho '== end'\n",
    );
    let screen = tokio::task::spawn_blocking(move || {
        crate::common::Terminal::start_sized(&script, 80, 60).wait_for("== end")
    })
    .await
    .expect("terminal session");
    let (list, review) = screen.split_once("== review").expect("review");
    let row = list.lines().find(|l| l.starts_with("ci ")).expect("the ci row");
    assert!(row.contains("expires in "), "{list}");
    assert!(list.lines().all(|l| l.chars().count() <= 80), "{list}");
    let prefix = short.info["prefix"].as_str().expect("prefix");
    assert!(review.contains(&format!("ci ({prefix})  expires ")), "{review}");
    assert!(review.contains(&format!("custory-mcp keys rotate {prefix}")), "{review}");
    let status = env.admin(&server, &["status"]).await;
    assert_eq!(status.code, 0, "{}", status.stderr);
    let line = status.stdout.lines().find(|l| l.starts_with("Expiring")).expect("a line");
    assert!(
        line.contains("1 key within 7 days: `custory-mcp --workspace acme keys list --expiring`"),
        "{line}"
    );
    let expiring = env.admin_json(&server, &["keys", "list", "--expiring"]).await;
    let ids: Vec<&str> = expiring["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["id"].as_str())
        .collect();
    assert_eq!(ids, [short.id()], "{expiring}");

    // 1 day left, then expired; then the 90-day key's 30-day warning.
    clock.advance(Days::days(6));
    let got = payload(&receiver.next().await, &mut bodies);
    assert_eq!(
        (got["type"].as_str(), got["data"]["key"]["id"].as_str()),
        (Some("key.expiring"), Some(short.id())),
        "{got}"
    );
    assert!(got["data"]["detail"].as_str().expect("detail").contains("1 day"), "{got}");
    clock.advance(Days::days(1));
    let got = payload(&receiver.next().await, &mut bodies);
    assert_eq!(
        (got["type"].as_str(), got["data"]["key"]["id"].as_str()),
        (Some("key.expired"), Some(short.id())),
        "{got}"
    );
    clock.advance(Days::days(30));
    let got = payload(&receiver.next().await, &mut bodies);
    assert_eq!(
        (got["type"].as_str(), got["data"]["key"]["id"].as_str()),
        (Some("key.expiring"), Some(long.id())),
        "{got}"
    );
    assert!(got["data"]["detail"].as_str().expect("detail").contains("30 days"), "{got}");

    // Once each: another run (a restart, another replica) finds every marker set.
    assert_eq!(server.store.access().announce_key_expiries().expect("announce"), 0);
    let audit = owner.audit("acme", &format!("?key={}", short.id())).await;
    let kinds: Vec<&str> = audit["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .filter(|k| k.starts_with("key.expir"))
        .collect();
    assert_eq!(kinds, ["key.expired", "key.expiring", "key.expiring"], "{audit}");
    // No token or credential in any payload.
    for body in &bodies {
        for secret in [&short.token, &long.token, &server.owner_token] {
            assert!(!body.contains(secret.as_str()), "a secret in a payload: {body}");
        }
    }
    let log = owner.get("/workspaces/acme/webhook-deliveries").expect(200).await;
    assert_eq!(log["deliveries"].as_array().expect("deliveries").len(), 4, "{log}");
    receiver.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn every_other_event_goes_out_verified_with_who_did_it_and_no_secret() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (secret_file, mut receiver) = receiver(dir.path()).await;
    let server = server().await;
    let env = TestEnv::new();
    subscribe(&server, &receiver, &secret_file, &[]).await;
    let owner = server.owner();
    let mut bodies = Vec::new();
    let mut next = async |want: &str, bodies: &mut Vec<String>| {
        let got = payload(&receiver.next().await, bodies);
        assert_eq!(got["type"], want, "{got}");
        got
    };

    let key = owner.create_key("agent", "90d", "read-write").await;
    next("key.created", &mut bodies).await;
    // First use from an address and a client: once (the next call adds nothing new).
    key.initialize().await;
    key.post(&crate::common::tool_call(2, "list_journeys", json!({}))).expect(200).await;
    let got = next("key.new_origin", &mut bodies).await;
    assert_eq!(got["data"]["key"]["id"], key.id());
    assert_eq!(got["data"]["key"]["prefix"], key.info["prefix"]);
    assert_eq!(got["data"]["actor"]["kind"], "server");

    let narrowed = env.admin(&server, &["keys", "narrow", "agent", "--read-only"]).await;
    assert_eq!(narrowed.code, 0, "{}", narrowed.stderr);
    let got = next("key.narrowed", &mut bodies).await;
    assert_eq!(got["data"]["key"]["name"], "agent");
    assert_eq!(got["data"]["actor"]["kind"], "administrator");

    let code = owner.invite("acme", "Ivy", "viewer").await;
    next("member.invited", &mut bodies).await;
    let withdrawn = env.admin(&server, &["members", "withdraw", "Ivy"]).await;
    assert_eq!(withdrawn.code, 0, "{}", withdrawn.stderr);
    next("member.invitation_withdrawn", &mut bodies).await;

    // Export and import.
    let export = env.admin(&server, &["--workspace", "acme", "export"]).await;
    assert_eq!(export.code, 0, "{}", export.stderr);
    let got = next("workspace.exported", &mut bodies).await;
    assert_eq!(got["data"]["actor"]["kind"], "administrator");
    owner
        .post("/imports?workspace=acme&journey=Onboarding")
        .header("content-type", "text/csv")
        .body("stage,step,kind,title\nDiscover,Compares tools,insight,Pricing is unclear\n")
        .expect(201)
        .await;
    next("journey.imported", &mut bodies).await;

    // Another endpoint added and removed: this one hears of both, with who did it.
    let other = owner
        .post("/workspaces/acme/webhooks")
        .json(&json!({"url": "http://127.0.0.1:9/other?token=receiver-secret"}))
        .expect(201)
        .await;
    let other_id = other["webhook"]["id"].as_str().expect("id").to_owned();
    let got = next("webhook.added", &mut bodies).await;
    let detail = got["data"]["detail"].as_str().expect("detail");
    assert!(detail.contains(&other_id) && detail.contains("127.0.0.1"), "{got}");
    assert!(!detail.contains("receiver-secret"), "no URL path or query: {got}");
    owner.post(&format!("/workspaces/acme/webhooks/{other_id}/remove")).expect(200).await;
    let got = next("webhook.removed", &mut bodies).await;
    assert_eq!(got["data"]["actor"]["kind"], "administrator");

    // A leak report: the key revoked, by the report.
    let anyone = server.visitor();
    anyone.post("/api/tokens/revoke").json(&json!({"token": key.token})).expect(200).await;
    let got = next("key.revoked", &mut bodies).await;
    assert_eq!(got["data"]["actor"]["kind"], "leak-report", "{got}");
    assert_eq!(got["data"]["key"]["id"], key.id());

    // Nothing else went out (the second call was no new origin), and no secret ever did.
    let log = owner.get("/workspaces/acme/webhook-deliveries").expect(200).await;
    let sent: Vec<&str> = log["deliveries"]
        .as_array()
        .expect("deliveries")
        .iter()
        .filter(|d| d["webhook_id"] != other_id.as_str())
        .filter_map(|d| d["event_type"].as_str())
        .collect();
    assert_eq!(sent.len(), bodies.len(), "{log}");
    let other_secret = other["secret"].as_str().expect("secret");
    for body in &bodies {
        for secret in [key.token.as_str(), &server.owner_token, &code, other_secret] {
            assert!(!body.contains(secret), "a secret in a payload: {body}");
        }
    }

    // `webhooks deliveries` pages: each page's next command, run as printed, gives the next.
    let everything: Vec<i64> = log["deliveries"]
        .as_array()
        .expect("deliveries")
        .iter()
        .filter_map(|d| d["id"].as_i64())
        .collect();
    let mut args: Vec<String> =
        ["webhooks", "deliveries", "--limit", "5"].map(str::to_owned).to_vec();
    let mut paged = Vec::new();
    loop {
        let run = env.admin(&server, &args.iter().map(String::as_str).collect::<Vec<_>>()).await;
        assert_eq!(run.code, 0, "{}", run.stderr);
        paged.extend(run.stdout.lines().skip(1).map(str::to_owned));
        let Some((_, next)) = run.stderr.split_once("the next page: `") else { break };
        let next = next.split('`').next().expect("the command");
        // Nothing in it needs quoting (the cursor is URL-safe base64).
        let words: Vec<String> = next.split_whitespace().map(str::to_owned).collect();
        assert_eq!(words[0], "custory-mcp", "{next}");
        args = words[1..].to_vec();
        assert!(paged.len() <= everything.len(), "the pages end");
    }
    assert_eq!(paged.len(), everything.len(), "{paged:?}");
    let page = env.admin_json(&server, &["webhooks", "deliveries", "--limit", "5"]).await;
    let cursor = page["next_cursor"].as_str().expect("a next page");
    let second = env
        .admin_json(&server, &["webhooks", "deliveries", "--limit", "5", "--cursor", cursor])
        .await;
    let ids = |page: &Value| -> Vec<i64> {
        page["deliveries"]
            .as_array()
            .expect("page")
            .iter()
            .filter_map(|d| d["id"].as_i64())
            .collect()
    };
    assert_eq!([ids(&page), ids(&second)].concat(), everything[..10], "{second}");
    receiver.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn a_slow_receiver_holds_up_no_other_endpoint() {
    let dir = tempfile::tempdir().expect("temp dir");
    let python = tokio::task::spawn_blocking(|| crate::conformance::python_with(STANDARD_WEBHOOKS))
        .await
        .expect("install task");
    let (slow_secret, fast_secret) = (dir.path().join("slow"), dir.path().join("fast"));
    std::fs::write(&slow_secret, "").expect("secret file");
    std::fs::write(&fast_secret, "").expect("secret file");
    // The slow one answers 8 s late (the send timeout is 10 s).
    let mut slow = Receiver::start_slow(&python, &slow_secret, 0, 8.0).await;
    let mut fast = Receiver::start(&python, &fast_secret, 0).await;
    let server = server().await;
    subscribe(&server, &slow, &slow_secret, &["key.created"]).await;
    subscribe(&server, &fast, &fast_secret, &["key.created"]).await;
    let owner = server.owner();
    let mut bodies = Vec::new();

    owner.create_key("one", "90d", "read-write").await;
    let got = payload(&fast.next().await, &mut bodies);
    assert_eq!(got["data"]["key"]["name"], "one");
    // While the slow receiver still holds the first event, the fast one gets the second.
    let started = tokio::time::Instant::now();
    owner.create_key("two", "90d", "read-write").await;
    let got = payload(&fast.next().await, &mut bodies);
    assert_eq!(got["data"]["key"]["name"], "two");
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(5), "the fast receiver waited {waited:?}");
    // The slow one gets both, in order.
    for name in ["one", "two"] {
        let got = payload(&slow.next().await, &mut bodies);
        assert_eq!(got["data"]["key"]["name"], name);
    }
    slow.stop().await;
    fast.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn a_slack_webhook_gets_a_readable_message_with_no_token_or_secret() {
    let dir = tempfile::tempdir().expect("temp dir");
    let python = tokio::task::spawn_blocking(|| crate::conformance::python_with(STANDARD_WEBHOOKS))
        .await
        .expect("install task");
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, "").expect("secret file");
    let mut slack = Receiver::start_unsigned(&python, &secret_file).await;
    let server = server().await;
    let env = TestEnv::new();
    let url = format!("http://127.0.0.1:{}/services/T0/B0/X", slack.port);
    let added = env.admin(&server, &["webhooks", "add", &url, "--format", "slack"]).await;
    assert_eq!(added.code, 0, "{}", added.stderr);
    assert!(added.stdout.trim().is_empty(), "no secret to show: {}", added.stdout);
    assert!(added.stderr.contains("not signed"), "{}", added.stderr);
    let listed = env.admin_json(&server, &["webhooks", "list"]).await;
    assert_eq!(listed["webhooks"][0]["format"], "slack", "{listed}");

    let key = server.owner().create_key("ci", "90d", "read-write").await;
    let got = slack.next().await;
    let body: Value = serde_json::from_str(got["body"].as_str().expect("body")).expect("json");
    let text = body["text"].as_str().expect("a text message");
    let prefix = key.info["prefix"].as_str().expect("prefix");
    assert!(text.contains("acme: key.created: key ci"), "{text}");
    assert!(text.contains(prefix) && text.contains("by administrator"), "{text}");
    assert!(!text.contains(&key.token) && !text.contains(&server.owner_token), "{text}");
    let secret = env.admin_json(&server, &["webhooks", "list"]).await;
    assert!(!got.to_string().contains("whsec_"), "no secret sent: {got} {secret}");
    slack.stop().await;
    server.stop().await;
}

/// Two `serve` replicas on one PostgreSQL database, one receiver counting: each event is
/// delivered exactly once, whichever replica wrote it. Without PostgreSQL this fails (as
/// `replicas.rs` does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_postgres_replicas_deliver_each_event_exactly_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (secret_file, mut receiver) = receiver(dir.path()).await;
    let db = crate::common::TestDatabase::postgres();
    let (env_a, env_b) = (TestEnv::new(), TestEnv::new());
    let a = env_a.serve_on(&db.arg(), &["--allow-private-webhooks"]).await;
    let b = env_b.serve_on(&db.arg(), &["--allow-private-webhooks"]).await;
    let owner_a = a.owner();
    let owner_b = b.visitor().owner(owner_a.token());
    let created = owner_a
        .post("/workspaces/acme/webhooks")
        .json(&json!({"url": format!("http://127.0.0.1:{}/in", receiver.port),
                      "events": ["key.created"]}))
        .expect(201)
        .await;
    std::fs::write(&secret_file, created["secret"].as_str().expect("secret")).expect("write");

    const KEYS: usize = 20;
    for n in 0..KEYS {
        let owner = if n % 2 == 0 { &owner_a } else { &owner_b };
        owner.create_key(&format!("key {n}"), "never", "read-write").await;
    }
    let mut ids = std::collections::BTreeSet::new();
    let mut names = Vec::new();
    for _ in 0..KEYS {
        let delivery = receiver.next().await;
        let mut bodies = Vec::new();
        let got = payload(&delivery, &mut bodies);
        assert!(ids.insert(delivery["id"].as_str().expect("id").to_owned()), "twice: {delivery}");
        names.push(got["data"]["key"]["name"].as_str().expect("name").to_owned());
    }
    let expected: Vec<String> = (0..KEYS).map(|n| format!("key {n}")).collect();
    assert_eq!(names, expected, "every event, once, in order");
    // Every row recorded delivered, once; then nothing more arrives from either replica.
    let started = tokio::time::Instant::now();
    loop {
        let log = owner_b.get("/workspaces/acme/webhook-deliveries?limit=200").expect(200).await;
        let log = log["deliveries"].as_array().expect("deliveries").clone();
        if log.len() == KEYS && log.iter().all(|d| d["state"] == "delivered") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "not all delivered: {log:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    a.terminate().await;
    b.terminate().await;
    let extra = receiver.drain().await;
    assert!(extra.is_empty(), "delivered more than once: {extra:?}");
}
