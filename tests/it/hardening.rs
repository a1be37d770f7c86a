//! The smaller holes an attacker could use, each shown closed: invisible characters in names,
//! an uncapped User-Agent, a hostile server driving the terminal, a database's side files left
//! readable, a first start on a busy port, a reachable listener without a host list, CORS only
//! for the allowed origin, request logs without credentials.

use std::path::Path;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::common::{MCP_ACCEPT, TestEnv, TestServer, run_piped};

#[tokio::test]
async fn invisible_characters_are_refused_in_names() {
    let server = TestServer::start().await;
    let owner = server.owner();
    for name in ["Cur\u{200b}sor", "Line\u{2028}sep", "\u{feff}Cursor", "Word\u{2060}joiner"] {
        let key = json!({"name": name, "expires": "30d"});
        let body = owner.post("/workspaces/acme/mcp-keys").json(&key).expect(422).await;
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("invisible characters (here U+"), "{name:?}: {message}");

        owner.post("/workspaces").json(&json!({"name": name})).expect(422).await;
    }
    // The CLI refuses them before sending anything (a usage error).
    let env = TestEnv::new();
    let mut cmd = env.command();
    cmd.env("CUSTORY_SERVER", &server.url).env("CUSTORY_OWNER_TOKEN", &server.owner_token).args([
        "--workspace",
        "acme",
        "keys",
        "create",
        "--name",
        "Cur\u{200b}sor",
        "--expires",
        "30d",
    ]);
    let ran = run_piped(cmd, None).await;
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(ran.stderr.contains("U+200B"), "{}", ran.stderr);
    server.stop().await;
}

#[tokio::test]
async fn a_long_user_agent_is_kept_short() {
    let server = TestServer::start().await;
    let owner = server.owner();
    let key = owner.create_key("agent", "30d", "read-write").await;
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    // A tab is the one control character a header value may carry.
    let agent = format!("Evil\tAgent/{}", "A".repeat(60_000));
    key.post(&ping).header("user-agent", agent).expect(200).await;
    // Usage is written after the answer: read it back once it is there.
    let client = loop {
        let shown = owner.show_key(key.id()).await;
        if let Some(client) = shown["key"]["last_used_client"].as_str() {
            break client.to_owned();
        }
        tokio::task::yield_now().await;
    };
    assert_eq!(client.chars().count(), 100, "{client}");
    assert!(client.starts_with("EvilAgent/AAA"), "control characters dropped: {client:?}");
    server.stop().await;
}

/// A server that answers every request with `status` and `body`, as a hostile (or broken) one
/// could.
async fn hostile_server(status: u16, body: Value) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let body = body.to_string();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut head = vec![0u8; 16 * 1024];
            let _ = stream.read(&mut head).await;
            let answer = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
    (url, task)
}

#[tokio::test]
async fn a_hostile_server_cannot_drive_the_terminal() {
    let env = TestEnv::new();
    let cli = |url: String, args: &'static [&'static str]| {
        let mut cmd = env.command();
        let owner = custory_mcp::token::PlainToken::generate(custory_mcp::token::TokenKind::Owner);
        cmd.env("CUSTORY_SERVER", url).env("CUSTORY_OWNER_TOKEN", owner.expose()).args(args);
        run_piped(cmd, None)
    };
    let escape = "\u{1b}]0;pwned\u{7}\u{1b}[2J\u{9b}31m\u{202e}";
    let error = json!({"error": {"code": "boom", "message": format!("bad {escape} thing")}});
    let (url, task) = hostile_server(500, error).await;
    let ran = cli(url, &["--workspace", "acme", "keys", "list"]).await;
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(ran.stderr.contains("bad"), "the message is shown: {}", ran.stderr);
    task.abort();

    let key = json!({
        "id": "k1", "name": format!("name{escape}"), "prefix": "cst_ab",
        "access": "read-write", "expires": "30d", "created_at": "2026-12-01T00:00:00Z",
        "expires_at": null, "last_used_at": null, "last_used_client": format!("client{escape}"),
        "last_used_ip": null, "revoked_at": null, "status": "active"
    });
    // One body for every path: the workspace looked up by slug, the workspace list and the
    // key list.
    let workspace = json!({"slug": "acme", "name": format!("Acme{escape}"), "created_at": "2026-12-01T00:00:00Z"});
    let listing = json!({
        "workspace": workspace, "workspaces": [workspace], "keys": [key], "next_cursor": null
    });
    let (url, task) = hostile_server(200, listing).await;
    let listed = cli(url, &["--workspace", "acme", "keys", "list"]).await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert!(listed.stdout.contains("name"), "{}", listed.stdout);
    task.abort();
    for (what, text) in [("stderr", &ran.stderr), ("table", &listed.stdout)] {
        for bad in ['\u{1b}', '\u{7}', '\u{9b}', '\u{202e}'] {
            assert!(!text.contains(bad), "{what} holds {bad:?}: {text:?}");
        }
    }
}

#[cfg(unix)]
#[tokio::test]
async fn a_databases_side_files_are_made_private_whatever_they_were() {
    use std::os::unix::fs::PermissionsExt as _;
    let env = TestEnv::new();
    let db = env.home.path().join("data/custory.db");
    let server = env.serve(&db, &[]).await;
    server.terminate().await;
    // Another tool (or an older version) left the side files world-readable.
    let side = |suffix: &str| {
        let mut path = db.as_os_str().to_owned();
        path.push(suffix);
        std::path::PathBuf::from(path)
    };
    {
        let conn = rusqlite::Connection::open(&db).expect("open");
        conn.pragma_update(None, "journal_mode", "wal").expect("wal");
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS scratch(x); INSERT INTO scratch VALUES (1);",
        )
        .expect("write");
        for suffix in ["-wal", "-shm"] {
            if side(suffix).exists() {
                std::fs::set_permissions(side(suffix), std::fs::Permissions::from_mode(0o644))
                    .expect("chmod");
            }
        }
        std::mem::forget(conn); // keep the side files: as a crashed process would
    }
    let server = env.serve(&db, &[]).await;
    let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    for suffix in ["-wal", "-shm"] {
        assert!(side(suffix).exists(), "{suffix} exists while serving");
        assert_eq!(mode(&side(suffix)), 0o600, "{suffix}");
    }
    server.terminate().await;
}

#[tokio::test]
async fn a_first_start_on_a_busy_port_issues_no_credential_it_cannot_deliver() {
    let env = TestEnv::new();
    let db = env.home.path().join("data/custory.db");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = busy.local_addr().expect("addr").to_string();
    let mut cmd = env.command();
    cmd.args(["serve", "--listen", &addr, "--database", &db.display().to_string()]);
    let failed = run_piped(cmd, None).await;
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert!(failed.stderr.contains(&addr), "{}", failed.stderr);
    assert!(!failed.stdout.contains("csa_") && !failed.stderr.contains("csa_"));
    drop(busy);
    // The next start is still a first start: it issues the credential and saves it.
    let server = env.serve(&db, &[]).await;
    let owner = server.announced["owner_credential"].as_str().expect("issued now");
    assert!(owner.starts_with("csa_"));
    server.terminate().await;
}

#[tokio::test]
async fn a_reachable_listener_needs_a_host_list() {
    let env = TestEnv::new();
    let db = env.home.path().join("custory.db");
    let mut cmd = env.command();
    cmd.args(["serve", "--listen", "0.0.0.0:0", "--database", &db.display().to_string()]);
    let refused = run_piped(cmd, None).await;
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("--allow-host"), "{}", refused.stderr);
    assert!(refused.stderr.contains("--allow-any-host"), "{}", refused.stderr);
    assert!(!db.exists(), "nothing was created");
}

#[tokio::test]
async fn cors_answers_only_the_allowed_origin() {
    let env = TestEnv::new();
    let db = env.home.path().join("custory.db");
    let allowed = "https://app.custory.example";
    let server = env.serve(&db, &["--allow-origin", allowed]).await;
    let preflight = |origin: &'static str| {
        server
            .visitor()
            .request(reqwest::Method::OPTIONS, "/api/mcp")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization, content-type")
            .send()
    };
    let ok = preflight(allowed).await;
    assert!((200..300).contains(&ok.status), "{}", ok.status);
    let header = |name: &str| ok.header(name).unwrap_or_default().to_lowercase();
    assert_eq!(header("access-control-allow-origin"), allowed);
    assert!(header("access-control-allow-headers").contains("authorization"));
    assert!(header("access-control-allow-methods").contains("post"));

    // A foreign origin gets no grant (the browser then blocks the call), and its POST is refused.
    let foreign = preflight("https://evil.example").await;
    assert!(foreign.header("access-control-allow-origin").is_none());
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    let stranger = server.key("cst_none");
    let post = |origin: &'static str| stranger.post(&ping).header("origin", origin).send();
    assert_eq!(post("https://evil.example").await.status, 403);
    let granted = post(allowed).await;
    assert_eq!(
        granted.header("access-control-allow-origin"),
        Some(allowed),
        "the allowed origin can read the answer (a 401 here)"
    );
    server.terminate().await;
}

#[tokio::test]
async fn request_logs_name_the_request_but_never_its_credentials() {
    let env = TestEnv::new();
    let db = env.home.path().join("custory.db");
    let server = env.serve(&db, &["-v"]).await;
    let owner = server.owner();
    let key = owner.create_key_in("acme", json!({"name": "logged", "expires": "30d"})).await;
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    key.post(&ping).expect(200).await;
    let log = server.terminate().await;
    assert!(log.contains("POST") && log.contains("/api/mcp"), "{log}");
    assert!(log.contains("200"), "the status is logged: {log}");
    for secret in [owner.token(), &key.token] {
        assert!(!log.contains(secret), "a credential in the log");
    }
    assert!(!log.to_lowercase().contains("authorization"), "{log}");
}

#[tokio::test]
async fn a_missing_token_gets_a_bare_challenge_and_a_placeholder_is_named() {
    let server = TestServer::start().await;
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    let post = |authorization: Option<&str>| {
        let mut call = server
            .visitor()
            .post("/api/mcp")
            .header("content-type", "application/json")
            .header("accept", MCP_ACCEPT)
            .json(&ping);
        if let Some(value) = authorization {
            call = call.header("authorization", value);
        }
        call.send()
    };
    // RFC 6750 §3.1: no credentials, no error code in the challenge.
    let none = post(None).await;
    assert_eq!(none.status, 401);
    assert_eq!(none.header("www-authenticate"), Some("Bearer realm=\"custory\""));
    // A bad token keeps its error code.
    let bad = post(Some("Bearer cst_nope")).await;
    let challenge = bad.header("www-authenticate");
    assert!(challenge.is_some_and(|c| c.contains("error=\"invalid_token\"")), "{challenge:?}");

    for (header, says) in [
        ("Bearer ${CUSTORY_MCP_TOKEN}", "CUSTORY_MCP_TOKEN was not set in the environment"),
        ("Bearer ${env:MY_KEY}", "MY_KEY was not set"),
        ("Bearer $CUSTORY_MCP_TOKEN", "CUSTORY_MCP_TOKEN was not set"),
        ("Bearer <token>", "it was never replaced"),
        ("Bearer YOUR_TOKEN_HERE", "it was never replaced"),
    ] {
        let body = post(Some(header)).await.expect(401);
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{header}: {message}");
    }
    server.stop().await;
}
