//! `custory-mcp serve` as a user runs it: first start, restarts, kill -9, secrets at rest.

use serde_json::Value;

use crate::common::{ServeProcess, Sql, TestDatabase, TestEnv, initialize_body, testing_postgres};

/// The status of `initialize` with `token` on `server`.
async fn mcp_status(server: &ServeProcess, token: &str) -> u16 {
    server.key(token).send(&initialize_body()).await.status
}

#[tokio::test]
async fn first_start_issues_and_saves_the_owner_credential_and_restarts_keep_everything() {
    let env = TestEnv::new();
    let db = env.home.path().join("data/custory.db");
    let server = env.serve(&db, &[]).await;
    let owner = server.announced["owner_credential"]
        .as_str()
        .expect("first start prints the credential")
        .to_owned();
    assert!(owner.starts_with("csa_"));
    assert_eq!(server.announced["workspaces"], 1);
    let saved = std::fs::read_to_string(env.config_dir().join("credentials.json"))
        .expect("saved credential");
    assert!(saved.contains(&owner));
    let key = server.owner().create_key("Cursor on MacBook", "90d", "read-write").await;
    let (id, token) = (key.id().to_owned(), key.token.clone());
    assert_eq!(mcp_status(&server, &token).await, 200);
    server.terminate().await;

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode =
            |p: &std::path::Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&db), 0o600);
        assert_eq!(mode(db.parent().expect("dir")), 0o700);
        assert_eq!(mode(&env.config_dir().join("credentials.json")), 0o600);
    }

    let server = env.serve(&db, &[]).await;
    assert!(server.announced["owner_credential"].is_null(), "a later start prints no credential");
    assert_eq!(mcp_status(&server, &token).await, 200, "the key survives a restart");
    let shown = server.visitor().owner(&owner).show_key(&id).await;
    assert_eq!(shown["key"]["id"], id.as_str(), "the owner credential survives a restart");
    server.terminate().await;

    // Shutdown flushed the last use, so it is in the file now.
    let conn = rusqlite::Connection::open(&db).expect("open");
    let client: Option<String> = conn
        .query_row("SELECT last_used_client FROM mcp_keys WHERE id = ?1", [&id], |r| r.get(0))
        .expect("row");
    assert_eq!(client.as_deref(), Some("it-client/1.2.3"));
    drop(conn);

    // Resetting the owner credential revokes the old one.
    let server = env.serve(&db, &["--reset-owner-credential"]).await;
    let fresh = server.announced["owner_credential"]
        .as_str()
        .expect("reset prints a new credential")
        .to_owned();
    assert_ne!(fresh, owner);
    let status = async |token: &str| server.visitor().owner(token).get("/workspaces").send().await;
    assert_eq!(status(&owner).await.status, 401);
    assert_eq!(status(&fresh).await.status, 200);
    server.terminate().await;
}

#[tokio::test]
async fn kill_9_loses_no_created_key() {
    let env = TestEnv::new();
    let db = env.home.path().join("custory.db");
    let server = env.serve(&db, &[]).await;
    let owner = server.owner();
    let mut created = Vec::new();
    for i in 0..20 {
        created.push(owner.create_key(&format!("key {i}"), "90d", "read-write").await);
    }
    server.kill9().await;

    let server = env.serve(&db, &[]).await;
    for key in &created {
        assert_eq!(mcp_status(&server, &key.token).await, 200);
    }
    let conn = rusqlite::Connection::open(&db).expect("open");
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).expect("check");
    assert_eq!(check, "ok");
    drop(conn);
    server.terminate().await;
}

#[tokio::test]
async fn plaintext_tokens_appear_in_no_database_page_and_no_log_line() {
    let env = TestEnv::new();
    let db = env.home.path().join("custory.db");
    // Most verbose logging, so every log line the server can write is written.
    let mut server = env.serve(&db, &["-vvv"]).await;
    let admin = server.owner();
    let owner = admin.token().to_owned();
    let cursor = admin.create_key("Cursor", "90d", "read-write").await;
    let token = cursor.token.clone();
    let other = admin.create_key("Other", "90d", "read-write").await.token;
    assert_eq!(mcp_status(&server, &token).await, 200);
    let rotated = admin.rotate(cursor.id()).await;
    let new_token = rotated["token"].as_str().expect("token").to_owned();
    assert_eq!(mcp_status(&server, &token).await, 401);
    assert_eq!(mcp_status(&server, &new_token).await, 200);
    // Read the database files while the server is still running (WAL not yet checkpointed).
    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", db.display());
        bytes.extend(std::fs::read(&path).unwrap_or_default());
    }
    server.announced = Value::Null;
    let stderr = server.terminate().await;
    bytes.extend(std::fs::read(&db).expect("db"));
    assert!(
        stderr.contains("DEBUG") || stderr.contains("TRACE") || stderr.contains("INFO"),
        "logging was on: {stderr}"
    );

    let haystack = String::from_utf8_lossy(&bytes);
    for secret in [&token, &other, &new_token, &owner] {
        let random_part = &secret[4..];
        assert!(!haystack.contains(random_part), "a token is in the database file");
        assert!(!stderr.contains(random_part), "a token is in the server's log");
    }
    // The display prefixes are stored, as they should be.
    assert!(haystack.contains(&token[..12]));
}

#[tokio::test]
async fn a_second_server_on_the_same_database_is_refused_with_a_hint() {
    let env = TestEnv::new();
    let db = env.home.path().join("custory.db");
    let server = env.serve(&db, &[]).await;
    let output = env
        .command()
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(&db)
        .output()
        .await
        .expect("run second serve");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("error: another custory-mcp server is already using the database"),
        "{stderr}"
    );
    assert!(stderr.contains("hint: stop that server first"), "{stderr}");
    assert!(output.stdout.is_empty());
    server.terminate().await;
}

#[tokio::test]
async fn unusable_database_urls_are_refused_with_a_hint_and_no_password_shown() {
    let env = TestEnv::new();
    let cases: [(&str, i32, &str, &str); 5] = [
        // Nothing listens on port 1.
        (
            "postgres://custory:s3cret-pw@127.0.0.1:1/custory",
            1,
            "error: could not use postgres://custory:***@127.0.0.1:1/custory",
            "hint: check that PostgreSQL is running",
        ),
        (
            "postgres://custory:s3cret-pw@127.0.0.1:1/custory?sslmode=sometimes",
            2,
            "sslmode=sometimes is not one of disable, prefer, require, verify-ca, verify-full",
            "hint:",
        ),
        ("mysql://custory:s3cret-pw@127.0.0.1/custory", 2, "unknown database URL scheme", "hint:"),
        ("postgres://custory:s3cret-pw@127.0.0.1:no/custory", 2, "invalid --database", "hint:"),
        ("sqlite://", 2, "sqlite:// needs a file path", "hint:"),
    ];
    for (url, code, error, hint) in cases {
        let output = env
            .command()
            .args(["serve", "--listen", "127.0.0.1:0", "--database", url])
            .output()
            .await
            .expect("run serve");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{url}: {stderr}");
        assert!(stderr.contains(error), "{url}: {stderr}");
        assert!(stderr.contains(hint), "{url}: {stderr}");
        assert!(!stderr.contains("s3cret-pw"), "the password was shown: {stderr}");
        assert!(output.stdout.is_empty());
    }
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_with_no_token_in_any_field() {
    let env = TestEnv::new();
    let db = env.home.path().join("custory.db");
    let server = env.serve(&db, &["--log-format", "json", "-vv"]).await;
    let admin = server.owner();
    let owner = admin.token().to_owned();
    let token = admin.create_key("Shipper", "90d", "read-write").await.token;
    assert_eq!(mcp_status(&server, &token).await, 200);
    assert_eq!(mcp_status(&server, &format!("{token}x")).await, 401);
    let stderr = server.terminate().await;
    let lines: Vec<Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    assert!(lines.iter().all(|l| l["timestamp"].is_string() && l["level"].is_string()));
    let answered = |status: u64| {
        lines
            .iter()
            .any(|l| l["span"]["path"] == "/api/mcp" && l["status"].as_u64() == Some(status))
    };
    assert!(answered(200) && answered(401), "{stderr}");
    assert!(lines.iter().any(|l| l["message"] == "custory-mcp stopped"), "{stderr}");
    for secret in [&token, &owner] {
        assert!(!stderr.contains(&secret[4..]), "a token is in the log");
    }
}

/// The resident memory of process `pid` in MiB (Linux: `/proc`), or `None` elsewhere.
fn resident_mib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

#[tokio::test]
async fn a_database_with_many_keys_starts_under_the_default_limits_and_keeps_only_keys_in_use() {
    const BULK: i64 = 200_000;
    let env = TestEnv::new();
    let db = TestDatabase::for_backend(&env.home.path().join("many.db"));
    let server = env.serve_on(&db.arg(), &[]).await;
    let owner_token =
        server.announced["owner_credential"].as_str().expect("first start").to_owned();
    let key = server.owner().create_key("Real", "30d", "read-write").await;
    let (id, token) = (key.id().to_owned(), key.token.clone());
    server.terminate().await;
    // Many keys behind the server's back, as fast as SQL makes them.
    let bulk = if testing_postgres() {
        "INSERT INTO mcp_keys (id, workspace_id, name, prefix, token_hash, access, expires,
                               created_at)
         SELECT 'key_bulk' || i, w.id, 'bulk ' || i, 'cst_' || lpad(i::text, 8, '0'),
                sha256(('bulk' || i)::bytea), 'read-write', 'never', 1
         FROM generate_series(1, CAST(?1 AS BIGINT)) AS i, workspaces w WHERE w.slug = 'acme'"
    } else {
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
         INSERT INTO mcp_keys (id, workspace_id, name, prefix, token_hash, access, expires,
                               created_at)
         SELECT 'key_bulk' || i, w.id, 'bulk ' || i, printf('cst_%08d', i), randomblob(32),
                'read-write', 'never', 1
         FROM n, workspaces w WHERE w.slug = 'acme'"
    };
    db.execute(bulk, &[Sql::Int(BULK)]);
    let count = db.query_row("SELECT count(*) FROM mcp_keys", &[]);
    assert_eq!(count[0].int(), Some(BULK + 1));

    // Default flags, so the default statement limit: nothing at start reads every key.
    let started = std::time::Instant::now();
    let server = env.serve_on(&db.arg(), &[]).await;
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(10), "started in {took:?}");
    let pid = server.child.id().expect("pid");
    // An index of every key took ~0.86 KiB a key (~170 MiB here); the cache holds none yet.
    if let Some(mib) = resident_mib(pid) {
        assert!(mib < 100, "{mib} MiB resident at start with {BULK} keys");
    }
    // A key is read on its first use, and a revoke is in force on the very next request.
    assert_eq!(mcp_status(&server, &token).await, 200);
    assert_eq!(mcp_status(&server, &token).await, 200, "from the cache");
    server.visitor().owner(&owner_token).revoke(&id).await;
    assert_eq!(mcp_status(&server, &token).await, 401);
    // The key list still pages at once among them all.
    let page = server.visitor().owner(&owner_token).list_keys("acme", "?limit=5").await;
    assert_eq!(page["keys"].as_array().map(Vec::len), Some(5), "{page}");
    server.terminate().await;
}
