//! Several `serve` replicas on one PostgreSQL database: the server `CUSTORY_TEST_POSTGRES`
//! names, else a throwaway one (`pg.rs`). Without PostgreSQL these fail (they never skip).

use serde_json::json;

use custory_mcp::api::{Access, ExpiryPolicy};
use custory_mcp::store::access::{KeyUsage, OwnerCredentialSetup};
use custory_mcp::store::{Clock, Store, StoreError, StoreOptions};

use crate::common::{Sql, TestDatabase, TestEnv, initialize_body, rpc, tool_call};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_keys_data_and_revocations_at_once() {
    let db = TestDatabase::postgres();
    let (env_a, env_b) = (TestEnv::new(), TestEnv::new());
    let a = env_a.serve_on(&db.arg(), &[]).await;
    let b = env_b.serve_on(&db.arg(), &[]).await;

    // One database, one owner credential: the first replica issued it, the second found it.
    let owner_a = a.owner();
    assert!(b.announced["owner_credential"].is_null(), "B must not issue another: {}", b.announced);
    let owner_b = b.visitor().owner(owner_a.token());
    assert_eq!(a.announced["workspaces"], 1);
    assert_eq!(b.announced["workspaces"], 1);

    // Created on A, used on B: a write through B is read back through A.
    let on_a = owner_a.create_key_in("acme", json!({"name": "agent", "expires": "30d"})).await;
    let key_id = on_a.id().to_owned();
    let on_b = b.key(&on_a.token);
    assert_eq!(on_b.send(&initialize_body()).await.status, 200);
    let found = on_b.send(&tool_call(2, "search", json!({"query": "onboarding"}))).await.json();
    let item = found["result"]["structuredContent"]["hits"]
        .as_array()
        .and_then(|hits| hits.iter().find(|h| h["type"] == "item"))
        .and_then(|hit| hit["id"].as_str())
        .expect("an item about onboarding")
        .to_owned();
    let comment = json!({"item_id": item, "author": "replica B", "body": "written through B"});
    let added = on_b.send(&tool_call(3, "add_comment", comment)).await;
    let body = added.json();
    assert_eq!((added.status, &body["result"]["isError"]), (200, &json!(false)), "{body}");
    let read = on_a.send(&tool_call(4, "get_item", json!({"item_id": item}))).await.json();
    assert!(read.to_string().contains("written through B"), "A reads B's write: {read}");

    // Revoked through B: A refuses the very next request, and so does B.
    owner_b.revoke(&key_id).await;
    let ping = rpc(5, "ping", json!({}));
    let refused = on_a.send(&ping).await;
    let shown = refused.json();
    assert_eq!(refused.status, 401, "A still accepted a key revoked through B: {shown}");
    assert!(shown.to_string().contains("revoked"), "{shown}");
    assert_eq!(on_b.send(&ping).await.status, 401);

    // Again and again, with no pause: create on A, use on B, revoke on B, refused on A.
    for round in 0..20 {
        let name = format!("round {round}");
        let on_a = owner_a.create_key_in("acme", json!({"name": name, "expires": "never"})).await;
        let on_b = b.key(&on_a.token);
        assert_eq!(on_b.send(&ping).await.status, 200, "round {round}: B knows A's new key");
        owner_b.revoke(on_a.id()).await;
        assert_eq!(on_a.send(&ping).await.status, 401, "round {round}: A saw B's revoke");
    }

    // Both flush their last uses at shutdown; the key's stored use is B's (the last one).
    a.terminate().await;
    b.terminate().await;
    let stored = db.query_row(
        "SELECT last_used_at, last_used_client FROM mcp_keys WHERE id = ?1",
        &[key_id.as_str().into()],
    );
    assert!(stored[0].int().is_some(), "{stored:?}");
    assert_eq!(stored[1], Sql::Text("it-client/1.2.3".into()));
}

#[test]
fn replicas_starting_together_prepare_the_database_once() {
    let db = TestDatabase::postgres();
    let opened: Vec<(Store, OwnerCredentialSetup)> = std::thread::scope(|scope| {
        let starts: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let store = Store::open_database(&db.database, Clock::default()).expect("open");
                    let owner =
                        store.access().ensure_owner_credential(false).expect("owner credential");
                    (store, owner)
                })
            })
            .collect();
        starts.into_iter().map(|start| start.join().expect("start")).collect()
    });
    let issued =
        opened.iter().filter(|(_, owner)| matches!(owner, OwnerCredentialSetup::Issued(_))).count();
    assert_eq!(issued, 1, "exactly one replica issues the owner credential");
    let count = |sql: &str| db.query_row(sql, &[])[0].int().expect("count");
    assert_eq!(count("SELECT count(*) FROM workspaces"), 1, "the demo is seeded once");
    assert_eq!(count("SELECT count(*) FROM journeys"), 2);
    assert_eq!(count("SELECT version FROM custory_schema"), custory_mcp::store::SCHEMA_VERSION);
}

#[test]
fn an_older_use_flushed_later_does_not_overwrite_a_newer_one() {
    let db = TestDatabase::postgres();
    let a = Store::open_database(&db.database, Clock::default()).expect("open A");
    let b = Store::open_database(&db.database, Clock::default()).expect("open B");
    let workspace = a.access().workspace_by_slug("acme").expect("lookup").expect("acme").id;
    let (key, _token) = a
        .access()
        .create_key(workspace, "shared", ExpiryPolicy::Days30, Access::ReadWrite)
        .expect("create");
    let now = a.now();
    let use_at = |seconds: i64, client: &str| KeyUsage {
        at: now + chrono::Duration::seconds(seconds),
        client: Some(client.to_owned()),
        ip: Some(std::net::Ipv4Addr::LOCALHOST.into()),
    };
    a.access().note_usage(&key.id, use_at(60, "newer, through A"), || None);
    b.access().note_usage(&key.id, use_at(0, "older, through B"), || None);
    assert_eq!(a.access().flush_usage().expect("flush A"), 1);
    b.access().flush_usage().expect("flush B");
    for store in [&a, &b] {
        let shown = store.access().get_key(workspace, &key.id).expect("key");
        assert_eq!(shown.last_used_client.as_deref(), Some("newer, through A"));
    }

    // A newer use by a client that did not say who it is keeps the client an older use named.
    let (quiet, _token) = a
        .access()
        .create_key(workspace, "quiet", ExpiryPolicy::Days30, Access::ReadWrite)
        .expect("create");
    a.access().note_usage(&quiet.id, KeyUsage { client: None, ..use_at(60, "") }, || None);
    b.access().note_usage(&quiet.id, use_at(0, "named, through B"), || None);
    a.access().flush_usage().expect("flush A");
    b.access().flush_usage().expect("flush B");
    for store in [&a, &b] {
        let shown = store.access().get_key(workspace, &quiet.id).expect("key");
        assert_eq!(shown.last_used_client.as_deref(), Some("named, through B"));
        assert_eq!(shown.last_used_at, Some(now + chrono::Duration::seconds(60)));
    }
    let stored = db.query_row(
        "SELECT last_used_at, last_used_client FROM mcp_keys WHERE id = ?1",
        &[quiet.id.as_str().into()],
    );
    assert_eq!(stored[0].int(), Some(now.timestamp() + 60));
    assert_eq!(stored[1].text(), Some("named, through B"));
}

/// A flush that waits past the statement limit for the write lock (another replica's long
/// write) fails, and leaves its pooled connection usable: the next request on the same pool
/// (one connection here) is answered, never with "current transaction is aborted" (25P02).
#[test]
fn a_write_that_times_out_waiting_for_the_lock_leaves_its_connection_usable() {
    let db = TestDatabase::postgres();
    let options = StoreOptions {
        postgres_connections: 1,
        statement_limit: std::time::Duration::from_millis(300),
        ..StoreOptions::default()
    };
    let store = Store::open_with(&db.database, Clock::default(), options).expect("open");
    let acme = store.access().workspace_by_slug("acme").expect("lookup").expect("acme").id;
    let (key, _token) = store
        .access()
        .create_key(acme, "flushed", ExpiryPolicy::Days30, Access::ReadWrite)
        .expect("create");
    let usage = KeyUsage { at: store.now(), client: Some("client".into()), ip: None };
    store.access().note_usage(&key.id, usage, || None);
    let held = db.hold_write_lock();
    let flushed = store.access().flush_usage();
    assert!(matches!(flushed, Err(StoreError::TimedOut(_))), "{flushed:?}");
    held.release();
    let every = custory_mcp::store::access::WorkspaceFilter::default();
    let (workspaces, _) =
        store.access().list_workspaces(&every, 10, None).expect("the next request on the pool");
    assert_eq!(workspaces[0].slug, "acme");
    assert_eq!(store.access().flush_usage().expect("the flush, tried again"), 1);
    let shown = store.access().get_key(acme, &key.id).expect("key");
    assert_eq!(shown.last_used_client.as_deref(), Some("client"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_the_database_ends_cost_no_request_an_error() {
    let db = TestDatabase::postgres();
    let env = TestEnv::new();
    let server = env.serve_on(&db.arg(), &[]).await;
    let body = json!({"name": "a", "expires": "30d"});
    let key = server.owner().create_key_in("acme", body).await;
    // Eight pings at once: they hold several pooled connections.
    let burst = || async {
        let mut pings = tokio::task::JoinSet::new();
        for id in 0..8 {
            let ping = key.post(&rpc(id, "ping", json!({})));
            pings.spawn(async move { ping.send().await.status });
        }
        pings.join_all().await
    };
    assert!(burst().await.iter().all(|s| *s == 200));
    // The database ends every session of this database, as a restart or a failover does.
    let ended = db.query_row(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
        &[],
    );
    assert!(ended[0].int().is_some_and(|n| n >= 1), "no connection to end: {ended:?}");
    let statuses = burst().await;
    assert!(statuses.iter().all(|s| *s == 200), "after the database ended them: {statuses:?}");
    server.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_without_the_owner_credential_is_not_told_to_reset_it() {
    use tokio::io::AsyncBufReadExt as _;
    let db = TestDatabase::postgres();
    let first = TestEnv::new().serve_on(&db.arg(), &[]).await;
    let env = TestEnv::new();
    let mut second = env
        .command()
        .args(["serve", "--listen", "127.0.0.1:0", "--database", &db.arg()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let mut lines = tokio::io::BufReader::new(second.stderr.take().expect("stderr")).lines();
    let mut said = String::new();
    while let Some(line) = lines.next_line().await.expect("read") {
        said.push_str(&line);
        said.push('\n');
        if line.starts_with("Press Ctrl-C") {
            break;
        }
    }
    assert!(said.contains("with the one the first server on this database printed"), "{said}");
    assert!(said.contains("replaces it for every replica"), "{said}");
    assert!(!said.contains("to issue a new one"), "{said}");
    second.start_kill().expect("stop");
    first.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_fails_while_the_database_is_away_and_recovers() {
    let db = TestDatabase::postgres();
    let env = TestEnv::new();
    let server = env.serve_on(&db.arg(), &[]).await;
    let anyone = server.visitor();
    let ready = || async {
        let response = anyone.get("/readyz").send().await;
        (response.status, response.json())
    };
    let healthz = || async { anyone.get("/healthz").send().await.status };
    let (status, body) = ready().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["schema_version"], custory_mcp::store::SCHEMA_VERSION);
    // The database stops taking this replica: no new connection, the open ones ended.
    let name = db.arg().rsplit('/').next().expect("database name").to_owned();
    let admin = |sql: String| {
        let url = crate::pg::server_url();
        std::thread::spawn(move || {
            let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
            client.batch_execute(&sql).expect("admin statement");
        })
        .join()
        .expect("admin thread");
    };
    admin(format!(
        "ALTER DATABASE \"{name}\" WITH ALLOW_CONNECTIONS false;
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}';"
    ));
    let (status, body) = ready().await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unavailable");
    assert!(body["problem"].as_str().is_some_and(|p| p.contains("database")), "{body}");
    assert_eq!(healthz().await, 200, "liveness never waits on the database");
    admin(format!("ALTER DATABASE \"{name}\" WITH ALLOW_CONNECTIONS true;"));
    let (status, body) = ready().await;
    assert_eq!(status, 200, "recovered: {body}");
    server.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_tls_checks_the_certificate_as_sslmode_says() {
    let (port, ca) = crate::pg::tls_server();
    let ca = ca.display().to_string();
    let env = TestEnv::new();
    // Another CA, which signed nothing the server shows.
    let stranger = env.home.path().join("other-ca.pem");
    let other_key = rcgen::KeyPair::generate().expect("key");
    let mut other = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    other.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    std::fs::write(&stranger, other.self_signed(&other_key).expect("ca").pem()).expect("write");
    let stranger = stranger.display().to_string();
    let url =
        |host: &str, query: &str| format!("postgres://postgres@{host}:{port}/postgres?{query}");

    for (database, what) in [
        (url("localhost", &format!("sslmode=verify-full&sslrootcert={ca}")), "verify-full"),
        (url("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={ca}")), "verify-ca by IP"),
        (url("127.0.0.1", "sslmode=require"), "require"),
    ] {
        let server = env.serve_on(&database, &[]).await;
        let ready = server.visitor().get("/readyz").send().await;
        assert_eq!(ready.status, 200, "{what}");
        // The server's own connections are encrypted, as PostgreSQL sees them.
        let admin = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        let encrypted = std::thread::spawn(move || {
            let mut client = postgres::Client::connect(&admin, postgres::NoTls).expect("connect");
            let row = client
                .query_one(
                    "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_ssl s
                     JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'custory-mcp'",
                    &[],
                )
                .expect("pg_stat_ssl");
            (row.get::<_, i64>(0), row.get::<_, i64>(1))
        })
        .join()
        .expect("admin thread");
        assert!(encrypted.1 >= 1 && encrypted.0 == encrypted.1, "{what}: {encrypted:?}");
        server.terminate().await;
    }

    for (database, says) in [
        (
            url("localhost", &format!("sslmode=verify-full&sslrootcert={stranger}")),
            "not signed by a CA in sslrootcert",
        ),
        (
            url("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={ca}")),
            "does not name the host",
        ),
        (
            format!(
                "{}?sslmode=require",
                crate::pg::server_url().replace("127.0.0.1", "localhost")
            ),
            "does not speak TLS",
        ),
        (url("localhost", "sslmode=verify-full&sslrootcert=/nonexistent.pem"), "sslrootcert"),
    ] {
        let output = env
            .command()
            .args(["serve", "--listen", "127.0.0.1:0", "--database", &database])
            .output()
            .await
            .expect("serve");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_ne!(output.status.code(), Some(0), "{database}: {stderr}");
        assert!(stderr.contains(says), "{database}: {stderr}");
        assert!(output.stdout.is_empty());
    }
}

/// A member removed through one replica is refused by the other on their very next request,
/// and so are the keys their removal revoked (issue 33).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_removed_through_one_replica_is_refused_by_the_other_at_once() {
    let db = TestDatabase::postgres();
    let (env_a, env_b) = (TestEnv::new(), TestEnv::new());
    let a = env_a.serve_on(&db.arg(), &[]).await;
    let b = env_b.serve_on(&db.arg(), &[]).await;
    let admin_a = a.owner();
    let admin_b = b.visitor().owner(admin_a.token());

    // Invited through A, joined through B, works through both.
    let code = admin_a.invite("acme", "Eddie", "editor").await;
    let eddie_b = b.visitor().join(&code).await;
    let eddie_a = a.visitor().owner(eddie_b.token());
    eddie_a.get("/whoami").expect(200).await;
    let key = eddie_b.create_key_in("acme", json!({"name": "Eddie's", "expires": "30d"})).await;
    let key_on_a = a.key(&key.token);
    assert_eq!(key_on_a.send(&initialize_body()).await.status, 200);
    assert_eq!(eddie_a.list_keys("acme", "").await["keys"][0]["created_by"]["name"], "Eddie");

    // Removed through B: A refuses the credential and the key on the very next request.
    let removal = admin_b
        .post("/workspaces/acme/members/Eddie/remove")
        .json(&json!({"revoke_keys": true}))
        .expect(200)
        .await;
    assert_eq!(removal["credential_revoked"], true, "{removal}");
    eddie_a.get("/whoami").expect_error(401, "unauthorized").await;
    eddie_a.get("/workspaces/acme/mcp-keys").expect_error(401, "unauthorized").await;
    eddie_b.get("/whoami").expect_error(401, "unauthorized").await;
    assert_eq!(key_on_a.send(&rpc(2, "ping", json!({}))).await.status, 401);
    a.terminate().await;
    b.terminate().await;
}

/// A replica whose database stalls (another session holds the keys table, so every key lookup
/// and the last flush wait) still stops on SIGTERM within its grace period: 8 s for the
/// connections, 2 s for the last flush, half a second for the rest (and a second and a half
/// for a loaded machine). Neither the last flush nor the process's end waits behind blocking
/// tasks stuck on the database: 200 requests queue behind 8 threads here, 2 s each, which
/// put the last flush some 40 s back before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_database_stalls_stops_on_sigterm_within_its_grace_period() {
    const GRACE: std::time::Duration = std::time::Duration::from_secs(12);
    let db = TestDatabase::postgres();
    let env = TestEnv::new();
    let server = env.serve_on(&db.arg(), &[]).await;
    let key = server.owner().create_key_in("acme", json!({"name": "busy", "expires": "30d"})).await;
    // A use waiting to be written at the last flush.
    assert_eq!(key.send(&initialize_body()).await.status, 200);

    let url = db.arg();
    let (held_tx, held) = std::sync::mpsc::channel::<()>();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
        client
            .batch_execute("BEGIN; LOCK TABLE mcp_keys IN ACCESS EXCLUSIVE MODE")
            .expect("take the keys table");
        let _ = held_tx.send(());
        let _ = released.recv();
        client.batch_execute("ROLLBACK").expect("release");
    });
    held.recv().expect("the keys table is held");

    // More requests than the server has threads and connections for, each waiting on the lock.
    let mut waiting = Vec::new();
    for n in 0..200 {
        let key = server.key(&key.token);
        // Cut off at the stop: whatever the answer, if any, is not the point here.
        let ping = rpc(n, "ping", json!({}));
        waiting.push(tokio::spawn(async move { key.post(&ping).try_send().await }));
    }
    // Until the database shows them waiting (no sleep for readiness).
    let url = db.arg();
    let stalled = tokio::task::spawn_blocking(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_secs(20) {
            let row = client
                .query_one(
                    "SELECT count(*) AS n FROM pg_stat_activity
                     WHERE datname = current_database() AND wait_event_type = 'Lock'",
                    &[],
                )
                .expect("activity");
            if row.get::<_, i64>("n") > 0 {
                return true;
            }
            std::thread::yield_now();
        }
        false
    })
    .await
    .expect("watch");
    assert!(stalled, "the requests wait on the held table");

    let pid = server.child.id().expect("pid");
    let started = std::time::Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let mut child = server.child;
    let exited = tokio::time::timeout(GRACE + std::time::Duration::from_secs(30), child.wait())
        .await
        .map(|status| status.expect("wait"));
    let took = started.elapsed();
    let _ = release.send(());
    holder.join().expect("holder");
    let exit = exited.expect("serve never stopped");
    assert!(took <= GRACE, "stopped {took:?} after SIGTERM ({exit:?}), past the grace period");
    for request in waiting {
        request.abort();
    }
}
