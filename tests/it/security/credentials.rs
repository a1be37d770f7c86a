//! Tokens and auth. The routes are walked from the server's own table
//! (`custory_mcp::server::routes()`, from which the router is built): every route that names a
//! guard refuses a missing, wrong or other kind of credential with the right status and the
//! error shape of its API, so a route added tomorrow is checked here the day it exists. MCP keys
//! of every status get nothing from the admin API, and the owner credential nothing from MCP.

use std::collections::BTreeMap;

use custory_mcp::server::{Guard, ServerConfig, routes};
use custory_mcp::token::{PlainToken, TokenKind};
use reqwest::Method;
use serde_json::{Value, json};

use super::{lenient, lenient_server};
use crate::common::{Call, MCP_ACCEPT, Reply, TestServer, initialize_body, rpc, tool_call};
use crate::oauth::{Browser, REDIRECT, authorize_url, hidden_fields, pkce, register};

/// `path` with its parameters filled in: `{ws}` the workspace, `{id}` a key of it.
fn concrete(path: &str, workspace: &str, key_id: &str) -> String {
    path.split('/')
        .map(|segment| match segment {
            "{ws}" => workspace,
            "{id}" => key_id,
            "{name}" => "nobody",
            "{prefix}" => "csi_nothing",
            other if other.starts_with('{') => panic!(
                "the route {path} takes {other}, which this test cannot fill: give it a value in \
                 `concrete`"
            ),
            other => other,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// A refusal of the MCP endpoint: JSON-RPC with a code and a sentence.
fn assert_rpc_refusal(reply: &Reply, status: u16) -> Value {
    let body = reply.expect(status);
    assert_eq!(reply.header("content-type"), Some("application/json"), "{}", reply.what);
    assert_eq!(body["jsonrpc"], "2.0", "{}: {body}", reply.what);
    assert!(body["error"]["code"].is_i64(), "{}: {body}", reply.what);
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    body
}

/// A page of the sign-in flow that refuses: HTML with its CSP, and no redirect (a refusal must
/// never send a code, or anything, to the client).
fn assert_refused_page(page: &crate::oauth::Page, status: u16, what: &str) {
    assert_eq!(page.status, status, "{what}: {}", page.html);
    assert!(page.html.to_ascii_lowercase().contains("<html"), "{what}: a page: {}", page.html);
    assert!(page.csp.as_deref().is_some_and(|c| c.contains("frame-ancestors 'none'")), "{what}");
    assert_eq!(page.location, None, "{what}: a refusal redirects nowhere");
}

#[tokio::test]
async fn every_guarded_route_refuses_a_missing_wrong_or_other_credential() {
    let server =
        TestServer::start_with(lenient(ServerConfig { oauth: true, ..ServerConfig::default() }))
            .await;
    let owner = server.owner();
    let key = owner.create_key("Walker", "30d", "read-write").await;
    let anyone = server.visitor();
    // Well-formed and checksummed, but never issued by this server.
    let unknown_key = PlainToken::generate(TokenKind::Mcp);
    let unknown_owner = PlainToken::generate(TokenKind::Owner);
    // An authorization request the sign-in pages accept, to post their forms against.
    let client_id = register(&server, "Route walker", REDIRECT).await;
    let (_, challenge) = pkce("walk");
    let authorize = authorize_url(&server, &client_id, REDIRECT, &challenge);
    let ping = rpc(1, "ping", json!({}));
    let mut walked: BTreeMap<String, usize> = BTreeMap::new();

    for route in routes() {
        let path = concrete(route.path, "acme", key.id());
        let what = format!("{} {}", route.method, route.path);
        let call = |token: Option<&str>| -> Call {
            let call = anyone.request(route.method.clone(), &path).named(what.clone());
            match token {
                Some(token) => call.bearer(token),
                None => call,
            }
        };
        *walked.entry(format!("{:?}", route.guard)).or_default() += 1;
        match route.guard {
            Guard::Public => {
                // Refused for nothing a credential would change, and served (not 404 or 405).
                let reply = call(None).send().await;
                assert!(
                    !matches!(reply.status, 401 | 403 | 404 | 405),
                    "{what} is public, yet answered {}: {}",
                    reply.status,
                    reply.text()
                );
            }
            Guard::Owner => {
                call(None).expect_error(401, "unauthorized").await;
                let basic = call(None).header("authorization", "Basic Zm9vOmJhcg==");
                basic.expect_error(401, "unauthorized").await;
                for wrong in ["csa_short", "Bearer", unknown_owner.expose()] {
                    call(Some(wrong)).expect_error(401, "unauthorized").await;
                }
                // The other kind: an MCP key is no admin credential, and is not echoed.
                let body = call(Some(&key.token)).expect_error(403, "mcp_key_not_allowed").await;
                assert!(
                    !body.to_string().contains(&key.token[12..]),
                    "{what}: the token is echoed"
                );
                // The right credential, addressed to another name (DNS rebinding).
                let foreign = call(Some(owner.token())).header("host", "evil.example");
                foreign.expect_error(403, "host_not_allowed").await;
            }
            Guard::McpKey => {
                let post =
                    |token: Option<&str>| call(token).header("accept", MCP_ACCEPT).json(&ping);
                // No credential: a challenge without an error code (RFC 6750 §3.1).
                let reply = post(None).send().await;
                assert_rpc_refusal(&reply, 401);
                let challenge = reply.header("www-authenticate").unwrap_or_default();
                assert!(challenge.starts_with("Bearer realm=\"custory\""), "{what}: {challenge}");
                assert!(!challenge.contains("error="), "{what}: {challenge}");
                for wrong in ["cst_short", unknown_key.expose()] {
                    let reply = post(Some(wrong)).send().await;
                    assert_rpc_refusal(&reply, 401);
                    let challenge = reply.header("www-authenticate").unwrap_or_default();
                    assert!(challenge.contains("error=\"invalid_token\""), "{what}: {challenge}");
                }
                // The other kind: the owner credential is no MCP key.
                let reply = post(Some(owner.token())).send().await;
                assert_rpc_refusal(&reply, 401);
                let challenge = reply.header("www-authenticate").unwrap_or_default();
                assert!(challenge.contains("owner credentials"), "{what}: {challenge}");
                assert!(!reply.text().contains(&owner.token()[12..]), "{what}: echoed");
                // The right key, from a foreign page or addressed to another name.
                let reply = post(Some(&key.token)).header("origin", "https://evil.example");
                assert_rpc_refusal(&reply.send().await, 403);
                let reply = post(Some(&key.token)).header("host", "evil.example");
                assert_rpc_refusal(&reply.send().await, 403);
            }
            Guard::OwnerSignIn | Guard::OwnerSession => {
                assert_eq!(route.method, Method::POST, "{what}: a form is posted");
                let url = format!("{}{path}", server.url);
                let mut browser = Browser::new();
                let page = browser.get(&authorize).await;
                assert_eq!(page.status, 200, "{}", page.html);
                let form = |csrf: bool, credential: Option<&str>| {
                    let mut form: Vec<(&str, String)> = hidden_fields(&page.html)
                        .into_iter()
                        .filter(|(name, _)| csrf || *name != "csrf")
                        .collect();
                    if let Some(credential) = credential {
                        form.push(("owner_credential", credential.to_owned()));
                    }
                    form.extend([
                        ("decision", "approve".to_owned()),
                        ("workspace", "acme".to_owned()),
                        ("key_name", "Walked".to_owned()),
                        ("expires", "30d".to_owned()),
                        ("access", "read-write".to_owned()),
                    ]);
                    form
                };
                // Without the form's CSRF token, even with the right credential.
                let refused = browser.post(&url, &form(false, Some(owner.token()))).await;
                assert_refused_page(&refused, 403, &what);
                if route.guard == Guard::OwnerSignIn {
                    // A wrong credential, and the other kind (an MCP key).
                    for wrong in [unknown_owner.expose(), "csa_short", key.token.as_str()] {
                        let refused = browser.post(&url, &form(true, Some(wrong))).await;
                        assert_refused_page(&refused, 401, &what);
                    }
                } else {
                    // The form, but no signed-in session: back to signing in.
                    let refused = browser.post(&url, &form(true, None)).await;
                    assert_refused_page(&refused, 401, &what);
                }
                assert!(!browser.cookies.contains_key("custory_owner_session"), "{what}");
            }
        }
    }
    eprintln!("security routes: {} routes walked by guard: {walked:?}", routes().len());
    for guard in ["Public", "Owner", "McpKey", "OwnerSignIn", "OwnerSession"] {
        assert!(walked.contains_key(guard), "no route is guarded by {guard}: {walked:?}");
    }
    // Nothing was minted or changed by any refused request.
    let keys = owner.list_keys("acme", "").await;
    assert_eq!(keys["keys"].as_array().map(Vec::len), Some(1), "{keys}");
    server.stop().await;
}

/// The router serves exactly the table: each of its paths answers the methods the table names
/// and refuses the others with 405; a path outside it is a 404; without `--oauth` the OAuth
/// routes do not exist.
#[tokio::test]
async fn the_router_serves_exactly_its_route_table() {
    for oauth in [true, false] {
        let server =
            TestServer::start_with(lenient(ServerConfig { oauth, ..ServerConfig::default() }))
                .await;
        let anyone = server.visitor();
        let served: Vec<_> = routes().iter().filter(|r| oauth || !r.oauth).collect();
        let mut paths: Vec<&str> = served.iter().map(|r| r.path).collect();
        paths.sort_unstable();
        paths.dedup();
        for path in paths {
            let concrete = concrete(path, "acme", "key_missing");
            for method in [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
                let reply = anyone.request(method.clone(), &concrete).send().await;
                let listed = served.iter().any(|r| r.path == path && r.method == method);
                if listed {
                    assert!(
                        !matches!(reply.status, 404 | 405),
                        "{method} {path} is in the table but answered {}",
                        reply.status
                    );
                } else if path == "/api/mcp" {
                    // Other methods are refused after the key is checked: a 401 without one.
                    assert_eq!(reply.status, 401, "{method} {path}");
                } else {
                    reply.expect_error(405, "method_not_allowed");
                }
            }
        }
        for (path, in_table) in [("/api/admin/nope", false), ("/oauth/token", oauth)] {
            let reply = anyone.post(path).send().await;
            if in_table {
                assert_ne!(reply.status, 404, "{path}");
            } else if path.starts_with("/oauth/") {
                // Without --oauth, a client's OAuth attempt after a 401 is told why its key
                // was refused, in the shape an OAuth client shows (issue 32).
                let body = reply.expect(404);
                let said = body["error_description"].as_str().unwrap_or_default();
                assert!(said.contains("keys create"), "{path}: {body}");
            } else {
                reply.expect_error(404, "not_found");
            }
        }
        server.stop().await;
    }
}

#[tokio::test]
async fn mcp_keys_get_nothing_from_the_admin_api_and_the_owner_nothing_from_mcp() {
    let server = lenient_server().await;
    let owner = server.owner();
    owner.create_workspace(json!({"name": "Beta", "slug": "beta"})).await;
    let active = owner.create_key("Active", "30d", "read-write").await;
    let read_only = owner.create_key("Read only", "30d", "read-only").await;
    let revoked = owner.create_key("Revoked", "30d", "read-write").await;
    owner.revoke(revoked.id()).await;
    let id = active.id();
    let keys_before = owner.list_keys("acme", "").await;

    // Every owner route of the table, in both workspaces, with a body that would be obeyed and
    // with the queries the lists take.
    let mut calls: Vec<(Method, String)> = Vec::new();
    for route in routes().iter().filter(|r| r.guard == Guard::Owner) {
        for ws in ["acme", "beta"] {
            let path = concrete(route.path, ws, id);
            let with_query = format!("{path}?status=active&key={id}&limit=5");
            let paths =
                if route.method == Method::GET { vec![with_query, path] } else { vec![path] };
            for path in paths {
                if !calls.iter().any(|(m, p)| *m == route.method && *p == path) {
                    calls.push((route.method.clone(), path));
                }
            }
        }
    }
    let escalate = json!({"name": "Escalated", "expires": "never", "access": "read-write"});
    let anyone = server.visitor();
    let request = |method: &Method, path: &str| {
        let call = anyone.request(method.clone(), path);
        if *method == Method::POST { call.json(&escalate) } else { call }
    };
    let mut count = 0;
    for key in [&active, &read_only, &revoked] {
        for (method, path) in &calls {
            let body = request(method, path)
                .bearer(&key.token)
                .expect_error(403, "mcp_key_not_allowed")
                .await;
            count += 1;
            assert!(!body.to_string().contains(&key.token[12..]), "the token is echoed");
        }
    }
    // Without any credential, or with a malformed one: 401.
    for (method, path) in &calls {
        for auth in [None, Some("Bearer cst_short"), Some("Basic Zm9vOmJhcg=="), Some("Bearer")] {
            let mut call = request(method, path);
            if let Some(auth) = auth {
                call = call.header("authorization", auth);
            }
            assert_eq!(call.send().await.status, 401, "{method} {path} {auth:?}");
            count += 1;
        }
    }
    // Nothing changed: no workspace, no key, no revocation, no rotation.
    let keys_after = owner.list_keys("acme", "").await;
    assert_eq!(
        keys_before["keys"].as_array().map(Vec::len),
        keys_after["keys"].as_array().map(Vec::len)
    );
    let still = keys_after["keys"].as_array().expect("keys").iter().find(|k| k["id"] == id);
    assert_eq!(still.expect("the key")["status"], "active");
    let workspaces = owner.workspaces().await;
    assert_eq!(workspaces["workspaces"].as_array().map(Vec::len), Some(2));

    // The owner credential opens nothing at /api/mcp, whatever the message; every tool
    // `tools/list` offers is tried.
    let as_key = server.key(owner.token());
    let mut messages = vec![
        initialize_body(),
        rpc(1, "tools/list", json!({})),
        rpc(1, "ping", json!({})),
        json!([rpc(1, "ping", json!({}))]),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    ];
    for tool in active.tool_names().await {
        messages.push(tool_call(1, &tool, json!({})));
    }
    for message in &messages {
        let answer = as_key.send(message).await;
        count += 1;
        assert_eq!(answer.status, 401, "{message}: {}", answer.text());
        let challenge = answer.header("www-authenticate").unwrap_or_default().to_owned();
        assert!(challenge.contains("owner credentials"), "{challenge}");
        assert_eq!(answer.json()["error"]["code"], -32001);
        let secret = &owner.token()[12..];
        assert!(!answer.text().contains(secret) && !challenge.contains(secret));
    }
    eprintln!("security isolation: {count} cross-credential requests refused");
    server.stop().await;
}
