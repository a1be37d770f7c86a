//! Origin and Host: a page of a foreign origin is refused before its credential is looked at,
//! and a request addressed to a name that is not the server's (DNS rebinding) is refused on the
//! MCP endpoint and the admin API, in-process and on the real binary.

use custory_mcp::server::ServerConfig;
use serde_json::json;

use super::LoggedServer;
use super::raw::{addr_of, raw_exchange, raw_post};
use super::wellformed::check_body;
use crate::common::{TestEnv, TestServer, rpc};

#[tokio::test]
async fn foreign_origins_and_hosts_are_refused() {
    let server = TestServer::start_with(ServerConfig {
        allowed_origins: vec!["http://localhost:3000".into()],
        ..ServerConfig::default()
    })
    .await;
    let owner = server.owner();
    let key = owner.create_key("Browser", "never", "read-write").await;
    let token = key.token.as_str();
    let addr = addr_of(&server.url);
    let port = addr.rsplit(':').next().expect("port").to_owned();
    let ping = serde_json::to_vec(&rpc(1, "ping", json!({}))).expect("json");
    let mut count = 0;

    for (origin, status) in [
        ("http://localhost:3000", 200),
        ("HTTP://LOCALHOST:3000", 200),
        ("http://evil.example", 403),
        ("null", 403),
        ("http://localhost:3000.evil.example", 403),
        ("http://localhost:30000", 403),
        ("https://localhost:3000", 403),
        // The server's own origin (the Host the request names, with its scheme) is same-origin,
        // as the MCP conformance suite's DNS-rebinding scenario expects; nothing else is.
        (&format!("http://127.0.0.1:{port}") as &str, 200),
        (&format!("HTTP://127.0.0.1:{port}") as &str, 200),
        (&format!("https://127.0.0.1:{port}") as &str, 403),
        (&format!("http://localhost:{port}") as &str, 403),
        (&format!("http://127.0.0.1:{port}.evil.example") as &str, 403),
        ("http://127.0.0.1", 403),
        ("", 403),
    ] {
        let answer = key.post(&rpc(1, "ping", json!({}))).header("origin", origin).send().await;
        count += 1;
        assert_eq!(answer.status, status, "Origin {origin:?}: {}", answer.text());
        check_body(&answer).expect("well formed");
    }
    // The Origin check comes first: a foreign page learns nothing about the credential.
    for credential in [token, owner.token(), "cst_garbage"] {
        let request = raw_post(&addr, credential, "Origin: http://evil.example\r\n", &ping);
        count += 1;
        assert_eq!(raw_exchange(&addr, request, false).await.status(), Some(403));
    }

    // DNS rebinding: a name that is not the server's gets 403 on the MCP endpoint and the
    // admin API, on a server listening on loopback.
    for (host, status) in [
        (format!("127.0.0.1:{port}"), 200),
        (format!("localhost:{port}"), 200),
        (format!("LOCALHOST:{port}"), 200),
        ("localhost".to_owned(), 200),
        ("evil.example".to_owned(), 403),
        (format!("evil.example:{port}"), 403),
        (format!("localhost.evil.example:{port}"), 403),
        (format!("127.0.0.1.nip.io:{port}"), 403),
        (format!("[::1]:{port}"), 200),
        ("".to_owned(), 403),
    ] {
        let outcome = raw_exchange(&addr, raw_post(&host, token, "", &ping), false).await;
        count += 1;
        assert_eq!(outcome.status(), Some(status), "Host {host:?} on /api/mcp: {outcome:?}");
        if status == 403 {
            let admin = format!(
                "GET /api/admin/workspaces HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\n\
                 Connection: close\r\n\r\n",
                owner.token()
            );
            let outcome = raw_exchange(&addr, admin.into_bytes(), false).await;
            count += 1;
            assert_eq!(outcome.status(), Some(403), "Host {host:?} on the admin API: {outcome:?}");
        }
    }
    eprintln!("security: Origin and Host: {count} requests");
    server.stop().await;
}

/// The same DNS-rebinding rule on the real binary, where `serve` derives the allowed names
/// from the address it listens on (and `--allow-host` adds one).
#[tokio::test]
async fn the_real_server_refuses_foreign_hosts_on_loopback() {
    let env = TestEnv::new();
    let db = env.home.path().join("data").join("custory.db");
    let server = LoggedServer::start(&env, &db, &["--allow-host", "custory.internal"], &[]).await;
    let key = json!({"name": "Host check", "expires": "never"});
    let token = server.owner().create_key_in("acme", key).await.token;
    let addr = addr_of(&server.url());
    let port = addr.rsplit(':').next().expect("port").to_owned();
    let ping = serde_json::to_vec(&rpc(1, "ping", json!({}))).expect("json");
    for (host, status) in [
        (format!("127.0.0.1:{port}"), 200),
        (format!("localhost:{port}"), 200),
        ("custory.internal".to_owned(), 200),
        ("evil.example".to_owned(), 403),
        (format!("evil.example:{port}"), 403),
        (format!("custory.internal.evil.example:{port}"), 403),
    ] {
        let outcome = raw_exchange(&addr, raw_post(&host, &token, "", &ping), false).await;
        assert_eq!(outcome.status(), Some(status), "Host {host:?}: {outcome:?}");
    }
    server.stop().await;
}
