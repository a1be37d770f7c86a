//! Behind a load balancer: `--trusted-proxy` makes the forwarded client the address that the
//! last-used record, the failed-authentication limit and the log see; from anyone else the
//! forwarding headers are ignored.

use custory_mcp::server::ServerConfig;
use serde_json::{Value, json};

use crate::common::{Key, TestEnv, TestServer, Visitor, rpc};

/// The status of a `tools/list` with `token`, through a proxy that sent `forwarded`.
async fn call(site: &Visitor, token: &str, forwarded: &[(&str, &str)]) -> u16 {
    let mut call = site.key(token).post(&rpc(1, "tools/list", json!({})));
    for (name, value) in forwarded {
        call = call.header(*name, *value);
    }
    call.send().await.status
}

async fn last_used_ip(server: &TestServer, key: &Key) -> Value {
    server.owner().show_key(key.id()).await["key"]["last_used_ip"].clone()
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
    let key = server.owner().create_key("behind", "30d", "read-write").await;
    let (site, token) = (server.visitor(), key.token.clone());
    assert_eq!(call(&site, &token, &[("x-forwarded-for", "203.0.113.7")]).await, 200);
    assert_eq!(last_used_ip(&server, &key).await, "203.0.113.7");
    // A client's own Forwarded header, passed through by a proxy that sets X-Forwarded-For,
    // is not read.
    let forged = [("forwarded", "for=192.0.2.66"), ("x-forwarded-for", "203.0.113.8")];
    assert_eq!(call(&site, &token, &forged).await, 200);
    assert_eq!(last_used_ip(&server, &key).await, "203.0.113.8");

    // Failures are counted per forwarded client: one client over the limit does not lock out
    // the others behind the same balancer.
    let bad = format!("{token}x");
    let from = |ip: &'static str| [("x-forwarded-for", ip)];
    for _ in 0..3 {
        assert_eq!(call(&site, &bad, &from("198.51.100.1")).await, 401);
    }
    assert_eq!(call(&site, &bad, &from("198.51.100.1")).await, 429, "over its limit");
    assert_eq!(call(&site, &bad, &from("198.51.100.2")).await, 401, "another client");
    assert_eq!(call(&site, &token, &from("198.51.100.2")).await, 200);
    server.stop().await;

    // A proxy that sets Forwarded (RFC 7239), named as such.
    let server = TestServer::start_with(ServerConfig {
        forwarded_header: custory_mcp::server::ForwardedHeader::Forwarded,
        ..behind("127.0.0.1/32")
    })
    .await;
    let key = server.owner().create_key("rfc7239", "30d", "read-write").await;
    let (site, token) = (server.visitor(), key.token.clone());
    let forwarded = [("forwarded", "for=\"[2001:db8::5]:4711\";proto=https")];
    assert_eq!(call(&site, &token, &forwarded).await, 200);
    assert_eq!(last_used_ip(&server, &key).await, "2001:db8::5");
    server.stop().await;

    // The same headers from a peer that is not a trusted proxy are the client's own words.
    let server = TestServer::start_with(behind("10.0.0.0/8")).await;
    let key = server.owner().create_key("direct", "30d", "read-write").await;
    let (site, token) = (server.visitor(), key.token.clone());
    assert_eq!(call(&site, &token, &[("x-forwarded-for", "203.0.113.7")]).await, 200);
    assert_eq!(last_used_ip(&server, &key).await, "127.0.0.1");
    let bad = format!("{token}x");
    for ip in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        assert_eq!(call(&site, &bad, &[("x-forwarded-for", ip)]).await, 401);
    }
    assert_eq!(
        call(&site, &bad, &[("x-forwarded-for", "198.51.100.4")]).await,
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
    assert_eq!(
        call(&server.visitor(), "cst_nope", &[("x-forwarded-for", "203.0.113.9")]).await,
        401
    );
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
