//! Behind a load balancer: `--trusted-proxy` makes the forwarded client the address that the
//! last-used record, the failed-authentication limit and the log see; from anyone else the
//! forwarding headers are ignored.

use custory_mcp::server::ServerConfig;
use serde_json::{Value, json};

use crate::common::{TestEnv, TestServer, mcp_post};

async fn call(server_url: &str, token: &str, forwarded: &[(&str, &str)]) -> u16 {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let mut request = mcp_post(&format!("{server_url}/api/mcp"), token, &body);
    for (name, value) in forwarded {
        request = request.header(*name, *value);
    }
    request.send().await.expect("post").status().as_u16()
}

async fn last_used_ip(server: &TestServer, id: &str) -> Value {
    let key: Value = server.admin_get(&format!("/workspaces/acme/mcp-keys/{id}")).await;
    key["key"]["last_used_ip"].clone()
}

fn behind(trusted: &str) -> ServerConfig {
    ServerConfig {
        trusted_proxies: vec![trusted.parse().expect("cidr")],
        auth_failures_per_window: 3,
        ..ServerConfig::default()
    }
}

#[tokio::test]
async fn a_trusted_proxy_names_the_client_and_an_untrusted_one_does_not() {
    // The test connects from 127.0.0.1: here that is the load balancer.
    let server = TestServer::start_with(behind("127.0.0.0/8")).await;
    let (key, token) = server.create_key("behind", "30d", "read-write").await;
    let id = key["id"].as_str().expect("id");
    assert_eq!(call(&server.url, &token, &[("x-forwarded-for", "203.0.113.7")]).await, 200);
    assert_eq!(last_used_ip(&server, id).await, "203.0.113.7");
    // A client's own Forwarded header, passed through by a proxy that sets X-Forwarded-For,
    // is not read.
    let forged = [("forwarded", "for=192.0.2.66"), ("x-forwarded-for", "203.0.113.8")];
    assert_eq!(call(&server.url, &token, &forged).await, 200);
    assert_eq!(last_used_ip(&server, id).await, "203.0.113.8");

    // Failures are counted per forwarded client: one client over the limit does not lock out
    // the others behind the same balancer.
    let bad = format!("{token}x");
    let from = |ip: &'static str| [("x-forwarded-for", ip)];
    for _ in 0..3 {
        assert_eq!(call(&server.url, &bad, &from("198.51.100.1")).await, 401);
    }
    assert_eq!(call(&server.url, &bad, &from("198.51.100.1")).await, 429, "over its limit");
    assert_eq!(call(&server.url, &bad, &from("198.51.100.2")).await, 401, "another client");
    assert_eq!(call(&server.url, &token, &from("198.51.100.2")).await, 200);
    server.stop().await;

    // A proxy that sets Forwarded (RFC 7239), named as such.
    let server = TestServer::start_with(ServerConfig {
        forwarded_header: custory_mcp::server::ForwardedHeader::Forwarded,
        ..behind("127.0.0.1/32")
    })
    .await;
    let (key, token) = server.create_key("rfc7239", "30d", "read-write").await;
    let id = key["id"].as_str().expect("id");
    let forwarded = [("forwarded", "for=\"[2001:db8::5]:4711\";proto=https")];
    assert_eq!(call(&server.url, &token, &forwarded).await, 200);
    assert_eq!(last_used_ip(&server, id).await, "2001:db8::5");
    server.stop().await;

    // The same headers from a peer that is not a trusted proxy are the client's own words.
    let server = TestServer::start_with(behind("10.0.0.0/8")).await;
    let (key, token) = server.create_key("direct", "30d", "read-write").await;
    let id = key["id"].as_str().expect("id");
    assert_eq!(call(&server.url, &token, &[("x-forwarded-for", "203.0.113.7")]).await, 200);
    assert_eq!(last_used_ip(&server, id).await, "127.0.0.1");
    let bad = format!("{token}x");
    for ip in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        assert_eq!(call(&server.url, &bad, &[("x-forwarded-for", ip)]).await, 401);
    }
    assert_eq!(
        call(&server.url, &bad, &[("x-forwarded-for", "198.51.100.4")]).await,
        429,
        "a forged header does not buy a stranger new tries"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_log_names_the_forwarded_client() {
    let env = TestEnv::new();
    let db = env.home.path().join("custory.db");
    let server =
        env.serve(&db, &["--trusted-proxy", "127.0.0.1", "--log-format", "json", "-v"]).await;
    let url = server.url();
    assert_eq!(call(&url, "cst_nope", &[("x-forwarded-for", "203.0.113.9")]).await, 401);
    let log = server.terminate().await;
    let line: Value = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["span"]["path"] == "/api/mcp")
        .unwrap_or_else(|| panic!("no request line in {log}"));
    assert_eq!(line["span"]["client"], "203.0.113.9", "{line}");
    let bad = TestEnv::new()
        .command()
        .args(["serve", "--trusted-proxy", "10.0.0.0/33"])
        .output()
        .await
        .expect("serve");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not an address or CIDR"));
}
