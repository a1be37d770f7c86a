//! The admin API and the auth layer of `/api/mcp`, over real HTTP against an in-process server.

use chrono::Duration;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Call, Sql, TestServer, initialize_body};

#[tokio::test]
async fn healthz_needs_no_auth_and_unknown_paths_are_json_404() {
    let server = TestServer::start().await;
    let anyone = server.visitor();
    let body = anyone.get("/healthz").expect(200).await;
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    let body = anyone.get("/readyz").expect(200).await;
    assert_eq!(body["status"], "ready", "{body}");

    let reply = anyone.get("/api/nope").send().await;
    assert_eq!(reply.header("content-type"), Some("application/json"));
    reply.expect_error(404, "not_found");
    // Without --oauth, what a client tries after a 401 says why its key was refused, in the
    // shape an OAuth client shows (issue 32), still as a 404.
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/api/mcp",
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
        "/register",
    ] {
        let reply = anyone.get(path).send().await;
        assert_eq!(reply.header("content-type"), Some("application/json"), "{path}");
        let body = reply.expect(404);
        let said = body["error_description"].as_str().unwrap_or_default();
        assert!(said.contains("custory-mcp keys create"), "{path}: {body}");
    }
    server.stop().await;
}

#[tokio::test]
async fn the_whole_key_lifecycle() {
    let server = TestServer::start().await;
    let owner = server.owner();

    let body = owner.workspaces().await;
    assert_eq!(body["workspaces"][0]["slug"], "acme");

    let cursor = owner
        .create_key_in("acme", json!({"name": "  Cursor on MacBook ", "expires": "30d"}))
        .await;
    let (key, token, id) = (&cursor.info, cursor.token.as_str(), cursor.id());
    assert_eq!(key["name"], "Cursor on MacBook", "names are trimmed");
    assert_eq!(key["access"], "read-write");
    assert_eq!(key["expires"], "30d");
    assert_eq!(key["status"], "active");
    assert_eq!(key["prefix"], &token[..12]);
    assert!(token.starts_with("cst_") && token.len() == 42);
    let created_at =
        chrono::DateTime::parse_from_rfc3339(key["created_at"].as_str().expect("created"))
            .expect("rfc3339");
    let expires_at =
        chrono::DateTime::parse_from_rfc3339(key["expires_at"].as_str().expect("expires"))
            .expect("rfc3339");
    assert_eq!(expires_at - created_at, Duration::days(30));
    assert!(key["last_used_at"].is_null() && key["revoked_at"].is_null());
    assert!(key.get("token").is_none() && key.get("token_hash").is_none());

    let ci = owner
        .create_key_in("acme", json!({"name": "CI", "expires": "never", "access": "read-only"}))
        .await;
    assert!(ci.info["expires_at"].is_null());
    assert_eq!(ci.info["access"], "read-only");

    let list = owner.list_keys("acme", "").await;
    let names: Vec<&str> = list["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["CI", "Cursor on MacBook"], "newest first");
    assert!(list["keys"].as_array().expect("keys").iter().all(|k| k.get("token").is_none()));

    let one = owner.show_key(id).await;
    assert_eq!(one["key"]["id"], id);

    // The key works at the MCP endpoint, then revocation shuts it off on the very next request.
    cursor.initialize().await;
    let revoked = owner.revoke(id).await;
    assert_eq!(revoked["key"]["status"], "revoked");
    assert!(revoked["key"]["revoked_at"].is_string());
    let refused = cursor.send(&initialize_body()).await;
    assert_eq!(refused.status, 401);
    let challenge = refused.header("www-authenticate").expect("a challenge");
    assert!(
        challenge.starts_with("Bearer realm=\"custory\", error=\"invalid_token\""),
        "{challenge}"
    );
    assert!(challenge.contains("revoked"), "{challenge}");

    owner
        .post(&format!("/workspaces/acme/mcp-keys/{id}/revoke"))
        .expect_error(409, "conflict")
        .await;

    // A revoked key's name is free again; the status filter tells them apart.
    let again = owner.create_key("Cursor on MacBook", "90d", "read-write").await;
    let revoked_only = owner.list_keys("acme", "?status=revoked").await;
    assert_eq!(revoked_only["keys"].as_array().expect("keys").len(), 1);
    assert_eq!(revoked_only["keys"][0]["id"], id);
    assert!(again.token.starts_with("cst_"));

    // Rotation: same name, policy and access; the old key is revoked at once.
    let rotated = owner.rotate(ci.id()).await;
    assert_eq!(rotated["replaced"]["id"], ci.id());
    assert_eq!(rotated["replaced"]["status"], "revoked");
    assert_eq!(rotated["key"]["name"], "CI");
    assert_eq!(rotated["key"]["access"], "read-only");
    assert_eq!(rotated["key"]["expires"], "never");
    let new_token = rotated["token"].as_str().expect("token");
    assert_ne!(new_token, ci.token);
    assert_eq!(ci.send(&initialize_body()).await.status, 401);
    server.key(new_token).initialize().await;

    // Everything above left an audit trail, newest first; each key's first use is an event.
    let audit = owner.audit("acme", "").await;
    let kinds: Vec<&str> = audit["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(
        kinds,
        [
            "key.new_origin",
            "auth.rejected",
            "key.created",
            "key.rotated",
            "key.new_origin",
            "key.created",
            "auth.rejected",
            "key.revoked",
            "key.created",
            "key.created"
        ]
    );
    let for_key = owner.audit("acme", &format!("?key={id}&limit=2")).await;
    let events = for_key["events"].as_array().expect("events");
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e["key_id"] == id));
    server.stop().await;
}

#[tokio::test]
async fn every_validation_error_has_its_status_and_code() {
    let server = TestServer::start().await;
    let owner = server.owner();
    let anyone = server.visitor();
    let create = |body: Value| owner.post("/workspaces/acme/mcp-keys").json(&body);
    owner.create_key("Taken", "30d", "read-write").await;

    let cases: Vec<(Call, u16, &str)> = vec![
        (create(json!({"name": "", "expires": "30d"})), 422, "invalid_name"),
        (create(json!({"name": "   ", "expires": "30d"})), 422, "invalid_name"),
        (create(json!({"name": "x".repeat(101), "expires": "30d"})), 422, "invalid_name"),
        (create(json!({"name": "line\nbreak", "expires": "30d"})), 422, "invalid_name"),
        (create(json!({"name": "bell\u{7}", "expires": "30d"})), 422, "invalid_name"),
        (create(json!({"expires": "30d"})), 422, "invalid_name"),
        (create(json!({"name": "ok"})), 422, "invalid_expires"),
        (create(json!({"name": "ok", "expires": "7d"})), 422, "invalid_expires"),
        (create(json!({"name": "ok", "expires": "30d", "access": "admin"})), 422, "invalid_access"),
        (create(json!({"name": 5, "expires": "30d"})), 422, "invalid_body"),
        (create(json!({"name": "Taken", "expires": "90d"})), 409, "conflict"),
        (
            owner
                .post("/workspaces/acme/mcp-keys")
                .header("content-type", "application/json")
                .body("{\"name\":"),
            400,
            "malformed_json",
        ),
        (
            owner.post("/workspaces/acme/mcp-keys").header("content-type", "text/plain").body("{}"),
            415,
            "unsupported_media_type",
        ),
        (
            owner
                .post("/workspaces/acme/mcp-keys")
                .header("content-type", "application/json")
                .body(vec![b' '; 2 * 1024 * 1024]),
            413,
            "body_too_large",
        ),
        (owner.get("/workspaces/nope/mcp-keys"), 404, "workspace_not_found"),
        (owner.get("/workspaces/acme/mcp-keys/key_missing"), 404, "key_not_found"),
        (owner.post("/workspaces/acme/mcp-keys/key_missing/revoke"), 404, "key_not_found"),
        (owner.post("/workspaces/acme/mcp-keys/key_missing/rotate"), 404, "key_not_found"),
        (owner.get("/workspaces/acme/mcp-keys?status=old"), 400, "invalid_status"),
        (owner.get("/workspaces/acme/audit?limit=0"), 400, "invalid_limit"),
        (owner.get("/workspaces/acme/audit?limit=lots"), 400, "invalid_limit"),
        (owner.post("/workspaces").json(&json!({"name": "Acme", "slug": "acme"})), 409, "conflict"),
        (
            owner.post("/workspaces").json(&json!({"name": "X", "slug": "Bad Slug"})),
            422,
            "invalid_slug",
        ),
        (owner.request(Method::DELETE, "/workspaces"), 405, "method_not_allowed"),
        (anyone.get("/api/admin/workspaces"), 401, "unauthorized"),
        (anyone.get("/api/admin/workspaces").bearer("csa_wrong"), 401, "unauthorized"),
        (
            anyone.get("/api/admin/workspaces").header("authorization", "Basic abc"),
            401,
            "unauthorized",
        ),
    ];
    for (call, want_status, want_code) in cases {
        call.expect_error(want_status, want_code).await;
    }

    // An MCP key is not an admin credential, and an owner credential is not an MCP key.
    let cursor = owner.create_key("Cursor", "30d", "read-write").await;
    let impostor = server.visitor().owner(&cursor.token);
    impostor.get("/workspaces").expect_error(403, "mcp_key_not_allowed").await;
    let refused = server.key(owner.token()).send(&initialize_body()).await;
    assert_eq!(refused.status, 401);
    assert!(refused.header("www-authenticate").expect("a challenge").contains("owner credentials"));

    // A valid workspace can be created and gets a slug from its name.
    let body = owner.create_workspace(json!({"name": "Beta Team"})).await;
    assert_eq!(body["workspace"]["slug"], "beta-team");
    // Nothing was lost along the way: the one key made before the errors is still there.
    let list = owner.list_keys("acme", "").await;
    assert_eq!(list["keys"].as_array().expect("keys").len(), 2);
    server.stop().await;
}

#[tokio::test]
async fn keys_of_one_workspace_are_invisible_from_another() {
    let server = TestServer::start().await;
    let owner = server.owner();
    let key = owner.create_key("Cursor", "30d", "read-write").await;
    let id = key.id();
    owner.create_workspace(json!({"name": "Other", "slug": "other"})).await;
    for call in [
        owner.get(&format!("/workspaces/other/mcp-keys/{id}")),
        owner.post(&format!("/workspaces/other/mcp-keys/{id}/revoke")),
        owner.post(&format!("/workspaces/other/mcp-keys/{id}/rotate")),
    ] {
        call.expect_error(404, "key_not_found").await;
    }
    let list = owner.list_keys("other", "").await;
    assert_eq!(list["keys"], json!([]));
    server.stop().await;
}

#[tokio::test]
async fn expired_keys_are_refused_and_listed_as_expired() {
    let server = TestServer::start().await;
    let owner = server.owner();
    let short = owner.create_key("Short lived", "30d", "read-write").await;
    let forever = owner.create_key("Forever", "never", "read-write").await;
    short.initialize().await;

    server.store.clock().advance(Duration::days(30));
    let refused = short.send(&initialize_body()).await;
    assert_eq!(refused.status, 401);
    assert!(refused.header("www-authenticate").expect("a challenge").contains("expired"));
    forever.initialize().await;

    let list = owner.list_keys("acme", "?status=expired").await;
    assert_eq!(list["keys"].as_array().expect("keys").len(), 1);
    assert_eq!(list["keys"][0]["id"], short.id());
    assert_eq!(list["keys"][0]["status"], "expired");
    // An expired key's name may be reused, and an expired key can be rotated into a fresh one.
    let rotated = owner.rotate(short.id()).await;
    let fresh = rotated["token"].as_str().expect("token");
    server.key(fresh).initialize().await;
    server.stop().await;
}

#[tokio::test]
async fn malformed_tokens_are_refused_before_any_lookup() {
    let server = TestServer::start().await;
    let key = server.owner().create_key("Cursor", "30d", "read-write").await;
    let mut typo = key.token.clone().into_bytes();
    typo[20] = if typo[20] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).expect("ascii");
    for (presented, needle) in [
        (key.token[..30].to_owned(), "wrong length"),
        (typo, "checksum"),
        ("ghp_notours".to_owned(), "cst_"),
    ] {
        let refused = server.key(&presented).send(&initialize_body()).await;
        assert_eq!(refused.status, 401);
        let challenge = refused.header("www-authenticate").expect("a challenge");
        assert!(challenge.contains(needle), "{challenge}");
        assert!(!challenge.contains("resource_metadata"));
    }
    // No credentials at all: a bare challenge (RFC 6750 §3.1: no error code then), the reason
    // in the body.
    let refused = server.visitor().post("/api/mcp").json(&initialize_body()).send().await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.header("www-authenticate"), Some("Bearer realm=\"custory\""));
    let body = refused.json();
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("missing bearer token")));
    server.stop().await;
}

#[tokio::test]
async fn last_use_is_shown_at_once_and_written_in_batches() {
    let server = TestServer::start().await;
    let owner = server.owner();
    let key = owner.create_key("Cursor", "30d", "read-write").await;
    let id = key.id();

    let before = owner.show_key(id).await;
    assert!(before["key"]["last_used_at"].is_null());

    key.initialize().await;
    // A later request that does not say who it is keeps the client named at initialize.
    let ping = json!({"jsonrpc": "2.0", "id": 2, "method": "ping"});
    key.post(&ping).header("user-agent", "curl/8").expect(200).await;

    let pending = owner.show_key(id).await;
    assert!(pending["key"]["last_used_at"].is_string(), "pending values are shown: {pending}");
    assert_eq!(pending["key"]["last_used_client"], "it-client/1.2.3");
    assert_eq!(pending["key"]["last_used_ip"], "127.0.0.1");
    // Not yet in the database: the use is only in memory.
    let stored =
        server.db.query_row("SELECT last_used_at FROM mcp_keys WHERE id = ?1", &[id.into()]);
    assert_eq!(stored, [Sql::Null]);

    assert_eq!(server.store.access().flush_usage().expect("flush"), 1);
    let stored = server.db.query_row(
        "SELECT last_used_at, last_used_client FROM mcp_keys WHERE id = ?1",
        &[id.into()],
    );
    assert!(stored[0].int().is_some(), "{stored:?}");
    assert_eq!(stored[1].text(), Some("it-client/1.2.3"));
    server.stop().await;
}

/// Every malformed admin request, in its query, its path or its body, answers the API's one
/// JSON error shape with the status axum chose; a value outside a closed set (a key's status,
/// expiry or access, a template) is refused with its own code, naming the values its type allows.
#[tokio::test]
async fn malformed_requests_answer_the_json_error_shape() {
    let server = TestServer::start().await;
    let owner = server.owner();
    let get = |path: &str| (format!("GET {path}"), owner.get(path));
    let post =
        |path: &str, body: Value| (format!("POST {path} {body}"), owner.post(path).json(&body));
    let create_key = |body: Value| post("/workspaces/acme/mcp-keys", body);

    let cases: Vec<((String, Call), u16, &str, &str)> = vec![
        (get("/workspaces/acme/mcp-keys?shared=yes"), 400, "invalid_query", "shared: "),
        (get("/workspaces/acme/mcp-keys?never_used=1"), 400, "invalid_query", "never_used: "),
        (get("/workspaces/acme/audit?calls=maybe"), 400, "invalid_query", "calls: "),
        (
            get("/workspaces/acme/mcp-keys?status=old"),
            400,
            "invalid_status",
            "status \"old\" is not one of active, expired, revoked",
        ),
        (get("/workspaces/%FF/mcp-keys"), 400, "invalid_path", ""),
        (get("/workspaces/acme/mcp-keys/%FF/usage"), 400, "invalid_path", ""),
        (
            create_key(json!({"name": "ok", "expires": "7d"})),
            422,
            "invalid_expires",
            "expires \"7d\" is not one of 30d, 90d, never",
        ),
        (
            create_key(json!({"name": "ok", "expires": 30})),
            422,
            "invalid_expires",
            "expires 30 is not one of 30d, 90d, never",
        ),
        (
            create_key(json!({"name": "ok"})),
            422,
            "invalid_expires",
            "expires is required: one of 30d, 90d, never",
        ),
        (
            create_key(json!({"name": "ok", "expires": "30d", "access": "admin"})),
            422,
            "invalid_access",
            "access \"admin\" is not one of read-write, read-only",
        ),
        (
            create_key(json!({"name": ["a"], "expires": "30d"})),
            422,
            "invalid_body",
            "name: invalid type: sequence, expected a string",
        ),
        (post("/mcp-keys/revoke-token", json!({})), 422, "invalid_body", "missing field `token`"),
        (
            post("/workspaces", json!({"name": "X", "template": "sales"})),
            400,
            "unknown_template",
            "template \"sales\" is not one of blank, onboarding, trial-to-paid",
        ),
        (post("/imports?dry_run=yes", json!({})), 400, "invalid_query", "dry_run: "),
    ];
    for ((what, call), want_status, want_code, want_message) in cases {
        let reply = call.send().await;
        let status = reply.status;
        let json = reply.header("content-type").is_some_and(|t| t.starts_with("application/json"));
        let body: Value = serde_json::from_str(&reply.text()).unwrap_or(Value::Null);
        assert!(json, "{what}: not JSON: {body}");
        let code = body["error"]["code"].as_str().unwrap_or_default();
        assert_eq!((status, code), (want_status, want_code), "{what}: {body}");
        let message = body["error"]["message"].as_str().expect("a message");
        assert!(!message.is_empty(), "{what}");
        // The whole message where it is this API's own sentence; its start where the rest is
        // a parser's wording.
        if want_message.ends_with(' ') || want_message.is_empty() {
            assert!(message.starts_with(want_message), "{what}: {message}");
        } else {
            assert_eq!(message, want_message, "{what}");
        }
    }
    // Nothing was created by the refused requests.
    let keys = owner.list_keys("acme", "").await;
    assert_eq!(keys["keys"], json!([]), "{keys}");
    server.stop().await;
}
