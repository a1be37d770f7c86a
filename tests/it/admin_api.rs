//! The admin API and the auth layer of `/api/mcp`, over real HTTP against an in-process server.

use chrono::Duration;
use serde_json::{Value, json};

use crate::common::{Sql, TestServer, http, initialize_body, mcp_post};

async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_else(|| panic!("no error shape in {body}"))
}

#[tokio::test]
async fn healthz_needs_no_auth_and_unknown_paths_are_json_404() {
    let server = TestServer::start().await;
    let (status, body) = send(http().get(format!("{}/healthz", server.url))).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    let (status, body) = send(http().get(format!("{}/readyz", server.url))).await;
    assert_eq!((status, &body["status"]), (200, &serde_json::json!("ready")), "{body}");

    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/api/mcp",
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
        "/register",
        "/api/nope",
    ] {
        let response = http().get(format!("{}{path}", server.url)).send().await.expect("get");
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(response.headers()["content-type"], "application/json", "{path}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(error_code(&body), "not_found", "{path}");
    }
    server.stop().await;
}

#[tokio::test]
async fn the_whole_key_lifecycle() {
    let server = TestServer::start().await;
    let owner = &server.owner;

    let (status, body) = send(http().get(server.admin("/workspaces")).bearer_auth(owner)).await;
    assert_eq!(status, 200);
    assert_eq!(body["workspaces"][0]["slug"], "acme");

    let (status, created) = send(
        http()
            .post(server.admin("/workspaces/acme/mcp-keys"))
            .bearer_auth(owner)
            .json(&json!({"name": "  Cursor on MacBook ", "expires": "30d"})),
    )
    .await;
    assert_eq!(status, 201);
    let key = &created["key"];
    let token = created["token"].as_str().expect("token");
    let id = key["id"].as_str().expect("id");
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

    let (status, never) = send(
        http()
            .post(server.admin("/workspaces/acme/mcp-keys"))
            .bearer_auth(owner)
            .json(&json!({"name": "CI", "expires": "never", "access": "read-only"})),
    )
    .await;
    assert_eq!(status, 201);
    assert!(never["key"]["expires_at"].is_null());
    assert_eq!(never["key"]["access"], "read-only");

    let (status, list) =
        send(http().get(server.admin("/workspaces/acme/mcp-keys")).bearer_auth(owner)).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = list["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["CI", "Cursor on MacBook"], "newest first");
    assert!(list["keys"].as_array().expect("keys").iter().all(|k| k.get("token").is_none()));

    let (status, one) = send(
        http().get(server.admin(&format!("/workspaces/acme/mcp-keys/{id}"))).bearer_auth(owner),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(one["key"]["id"], id);

    // The key works at the MCP endpoint, then revocation shuts it off on the very next request.
    let (status, _) = send(mcp_post(&server.mcp_url(), token, &initialize_body())).await;
    assert_eq!(status, 200);
    let (status, revoked) = send(
        http()
            .post(server.admin(&format!("/workspaces/acme/mcp-keys/{id}/revoke")))
            .bearer_auth(owner),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(revoked["key"]["status"], "revoked");
    assert!(revoked["key"]["revoked_at"].is_string());
    let response =
        mcp_post(&server.mcp_url(), token, &initialize_body()).send().await.expect("post");
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"].to_str().expect("ascii").to_owned();
    assert!(
        challenge.starts_with("Bearer realm=\"custory\", error=\"invalid_token\""),
        "{challenge}"
    );
    assert!(challenge.contains("revoked"), "{challenge}");

    let (status, body) = send(
        http()
            .post(server.admin(&format!("/workspaces/acme/mcp-keys/{id}/revoke")))
            .bearer_auth(owner),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(error_code(&body), "conflict");

    // A revoked key's name is free again; the status filter tells them apart.
    let (_, again) = {
        let (key, token) = server.create_key("Cursor on MacBook", "90d", "read-write").await;
        (key, token)
    };
    let (status, revoked_only) = send(
        http().get(server.admin("/workspaces/acme/mcp-keys?status=revoked")).bearer_auth(owner),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(revoked_only["keys"].as_array().expect("keys").len(), 1);
    assert_eq!(revoked_only["keys"][0]["id"], id);
    assert!(again.starts_with("cst_"));

    // Rotation: same name, policy and access; the old key is revoked at once.
    let ci_id = never["key"]["id"].as_str().expect("id");
    let ci_token = never["token"].as_str().expect("token");
    let (status, rotated) = send(
        http()
            .post(server.admin(&format!("/workspaces/acme/mcp-keys/{ci_id}/rotate")))
            .bearer_auth(owner),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(rotated["replaced"]["id"], ci_id);
    assert_eq!(rotated["replaced"]["status"], "revoked");
    assert_eq!(rotated["key"]["name"], "CI");
    assert_eq!(rotated["key"]["access"], "read-only");
    assert_eq!(rotated["key"]["expires"], "never");
    let new_token = rotated["token"].as_str().expect("token");
    assert_ne!(new_token, ci_token);
    assert_eq!(send(mcp_post(&server.mcp_url(), ci_token, &initialize_body())).await.0, 401);
    assert_eq!(send(mcp_post(&server.mcp_url(), new_token, &initialize_body())).await.0, 200);

    // Everything above left an audit trail, newest first; each key's first use is an event.
    let (status, audit) =
        send(http().get(server.admin("/workspaces/acme/audit")).bearer_auth(owner)).await;
    assert_eq!(status, 200);
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
    let (_, for_key) = send(
        http()
            .get(server.admin(&format!("/workspaces/acme/audit?key={id}&limit=2")))
            .bearer_auth(owner),
    )
    .await;
    let events = for_key["events"].as_array().expect("events");
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e["key_id"] == id));
    server.stop().await;
}

#[tokio::test]
async fn every_validation_error_has_its_status_and_code() {
    let server = TestServer::start().await;
    let owner = &server.owner;
    let create = |body: Value| {
        http().post(server.admin("/workspaces/acme/mcp-keys")).bearer_auth(owner).json(&body)
    };
    server.create_key("Taken", "30d", "read-write").await;

    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
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
            http()
                .post(server.admin("/workspaces/acme/mcp-keys"))
                .bearer_auth(owner)
                .header("content-type", "application/json")
                .body("{\"name\":"),
            400,
            "malformed_json",
        ),
        (
            http()
                .post(server.admin("/workspaces/acme/mcp-keys"))
                .bearer_auth(owner)
                .header("content-type", "text/plain")
                .body("{}"),
            415,
            "unsupported_media_type",
        ),
        (
            http()
                .post(server.admin("/workspaces/acme/mcp-keys"))
                .bearer_auth(owner)
                .header("content-type", "application/json")
                .body(vec![b' '; 2 * 1024 * 1024]),
            413,
            "body_too_large",
        ),
        (
            http().get(server.admin("/workspaces/nope/mcp-keys")).bearer_auth(owner),
            404,
            "workspace_not_found",
        ),
        (
            http().get(server.admin("/workspaces/acme/mcp-keys/key_missing")).bearer_auth(owner),
            404,
            "key_not_found",
        ),
        (
            http()
                .post(server.admin("/workspaces/acme/mcp-keys/key_missing/revoke"))
                .bearer_auth(owner),
            404,
            "key_not_found",
        ),
        (
            http()
                .post(server.admin("/workspaces/acme/mcp-keys/key_missing/rotate"))
                .bearer_auth(owner),
            404,
            "key_not_found",
        ),
        (
            http().get(server.admin("/workspaces/acme/mcp-keys?status=old")).bearer_auth(owner),
            400,
            "invalid_status",
        ),
        (
            http().get(server.admin("/workspaces/acme/audit?limit=0")).bearer_auth(owner),
            400,
            "invalid_limit",
        ),
        (
            http().get(server.admin("/workspaces/acme/audit?limit=lots")).bearer_auth(owner),
            400,
            "invalid_limit",
        ),
        (
            http()
                .post(server.admin("/workspaces"))
                .bearer_auth(owner)
                .json(&json!({"name": "Acme", "slug": "acme"})),
            409,
            "conflict",
        ),
        (
            http()
                .post(server.admin("/workspaces"))
                .bearer_auth(owner)
                .json(&json!({"name": "X", "slug": "Bad Slug"})),
            422,
            "invalid_slug",
        ),
        (http().delete(server.admin("/workspaces")).bearer_auth(owner), 405, "method_not_allowed"),
        (http().get(server.admin("/workspaces")), 401, "unauthorized"),
        (http().get(server.admin("/workspaces")).bearer_auth("csa_wrong"), 401, "unauthorized"),
        (
            http().get(server.admin("/workspaces")).header("authorization", "Basic abc"),
            401,
            "unauthorized",
        ),
    ];
    for (request, want_status, want_code) in cases {
        let built = request.build().expect("request");
        let what = format!("{} {}", built.method(), built.url());
        let response = http().execute(built).await.expect("send");
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!((status, error_code(&body)), (want_status, want_code), "{what}: {body}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}");
    }

    // An MCP key is not an admin credential, and an owner credential is not an MCP key.
    let (_, mcp_token) = server.create_key("Cursor", "30d", "read-write").await;
    let (status, body) =
        send(http().get(server.admin("/workspaces")).bearer_auth(&mcp_token)).await;
    assert_eq!((status, error_code(&body)), (403, "mcp_key_not_allowed"));
    let response =
        mcp_post(&server.mcp_url(), &server.owner, &initialize_body()).send().await.expect("post");
    assert_eq!(response.status(), 401);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .expect("ascii")
            .contains("owner credentials")
    );

    // A valid workspace can be created and gets a slug from its name.
    let (status, body) = send(
        http()
            .post(server.admin("/workspaces"))
            .bearer_auth(owner)
            .json(&json!({"name": "Beta Team"})),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(body["workspace"]["slug"], "beta-team");
    // Nothing was lost along the way: the one key made before the errors is still there.
    let (_, list) =
        send(http().get(server.admin("/workspaces/acme/mcp-keys")).bearer_auth(owner)).await;
    assert_eq!(list["keys"].as_array().expect("keys").len(), 2);
    server.stop().await;
}

#[tokio::test]
async fn keys_of_one_workspace_are_invisible_from_another() {
    let server = TestServer::start().await;
    let owner = &server.owner;
    let (key, _) = server.create_key("Cursor", "30d", "read-write").await;
    let id = key["id"].as_str().expect("id");
    let (status, _) = send(
        http()
            .post(server.admin("/workspaces"))
            .bearer_auth(owner)
            .json(&json!({"name": "Other", "slug": "other"})),
    )
    .await;
    assert_eq!(status, 201);
    for request in [
        http().get(server.admin(&format!("/workspaces/other/mcp-keys/{id}"))),
        http().post(server.admin(&format!("/workspaces/other/mcp-keys/{id}/revoke"))),
        http().post(server.admin(&format!("/workspaces/other/mcp-keys/{id}/rotate"))),
    ] {
        let (status, body) = send(request.bearer_auth(owner)).await;
        assert_eq!((status, error_code(&body)), (404, "key_not_found"));
    }
    let (_, list) =
        send(http().get(server.admin("/workspaces/other/mcp-keys")).bearer_auth(owner)).await;
    assert_eq!(list["keys"], json!([]));
    server.stop().await;
}

#[tokio::test]
async fn expired_keys_are_refused_and_listed_as_expired() {
    let server = TestServer::start().await;
    let (key, token) = server.create_key("Short lived", "30d", "read-write").await;
    let (_, forever) = server.create_key("Forever", "never", "read-write").await;
    assert_eq!(send(mcp_post(&server.mcp_url(), &token, &initialize_body())).await.0, 200);

    server.store.clock().advance(Duration::days(30));
    let response =
        mcp_post(&server.mcp_url(), &token, &initialize_body()).send().await.expect("post");
    assert_eq!(response.status(), 401);
    assert!(response.headers()["www-authenticate"].to_str().expect("ascii").contains("expired"));
    assert_eq!(send(mcp_post(&server.mcp_url(), &forever, &initialize_body())).await.0, 200);

    let (_, list) = send(
        http()
            .get(server.admin("/workspaces/acme/mcp-keys?status=expired"))
            .bearer_auth(&server.owner),
    )
    .await;
    assert_eq!(list["keys"].as_array().expect("keys").len(), 1);
    assert_eq!(list["keys"][0]["id"], key["id"]);
    assert_eq!(list["keys"][0]["status"], "expired");
    // An expired key's name may be reused, and an expired key can be rotated into a fresh one.
    let (status, rotated) = send(
        http()
            .post(server.admin(&format!(
                "/workspaces/acme/mcp-keys/{}/rotate",
                key["id"].as_str().expect("id")
            )))
            .bearer_auth(&server.owner),
    )
    .await;
    assert_eq!(status, 201);
    let fresh = rotated["token"].as_str().expect("token");
    assert_eq!(send(mcp_post(&server.mcp_url(), fresh, &initialize_body())).await.0, 200);
    server.stop().await;
}

#[tokio::test]
async fn malformed_tokens_are_refused_before_any_lookup() {
    let server = TestServer::start().await;
    let (_, token) = server.create_key("Cursor", "30d", "read-write").await;
    let mut typo = token.clone().into_bytes();
    typo[20] = if typo[20] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).expect("ascii");
    for (presented, needle) in [
        (token[..30].to_owned(), "wrong length"),
        (typo, "checksum"),
        ("ghp_notours".to_owned(), "cst_"),
    ] {
        let response =
            mcp_post(&server.mcp_url(), &presented, &initialize_body()).send().await.expect("post");
        assert_eq!(response.status(), 401);
        let challenge = response.headers()["www-authenticate"].to_str().expect("ascii").to_owned();
        assert!(challenge.contains(needle), "{challenge}");
        assert!(!challenge.contains("resource_metadata"));
    }
    // No credentials at all: a bare challenge (RFC 6750 §3.1: no error code then), the reason
    // in the body.
    let response =
        http().post(server.mcp_url()).json(&initialize_body()).send().await.expect("post");
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer realm=\"custory\"");
    let body: serde_json::Value = response.json().await.expect("json");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("missing bearer token")));
    server.stop().await;
}

#[tokio::test]
async fn last_use_is_shown_at_once_and_written_in_batches() {
    let server = TestServer::start().await;
    let (key, token) = server.create_key("Cursor", "30d", "read-write").await;
    let id = key["id"].as_str().expect("id");
    let get = || {
        http()
            .get(server.admin(&format!("/workspaces/acme/mcp-keys/{id}")))
            .bearer_auth(&server.owner)
    };

    let (_, before) = send(get()).await;
    assert!(before["key"]["last_used_at"].is_null());

    assert_eq!(send(mcp_post(&server.mcp_url(), &token, &initialize_body())).await.0, 200);
    // A later request that does not say who it is keeps the client named at initialize.
    let ping = json!({"jsonrpc": "2.0", "id": 2, "method": "ping"});
    assert_eq!(
        send(mcp_post(&server.mcp_url(), &token, &ping).header("user-agent", "curl/8")).await.0,
        200
    );

    let (_, pending) = send(get()).await;
    assert!(pending["key"]["last_used_at"].is_string(), "pending values are shown: {pending}");
    assert_eq!(pending["key"]["last_used_client"], "it-client/1.2.3");
    assert_eq!(pending["key"]["last_used_ip"], "127.0.0.1");
    // Not yet in the database: the use is only in memory.
    let stored =
        server.db.query_row("SELECT last_used_at FROM mcp_keys WHERE id = ?1", &[id.into()]);
    assert_eq!(stored, [Sql::Null]);

    assert_eq!(server.store.flush_usage().expect("flush"), 1);
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
    let owner = &server.owner;
    let get = |path: &str| http().get(server.admin(path)).bearer_auth(owner);
    let post =
        |path: &str, body: Value| http().post(server.admin(path)).bearer_auth(owner).json(&body);
    let create_key = |body: Value| post("/workspaces/acme/mcp-keys", body);

    let cases: Vec<(reqwest::RequestBuilder, u16, &str, &str)> = vec![
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
    for (request, want_status, want_code, want_message) in cases {
        let built = request.build().expect("request");
        let what = format!("{} {}", built.method(), built.url());
        let response = http().execute(built).await.expect("send");
        let status = response.status().as_u16();
        let json = response
            .headers()
            .get("content-type")
            .is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(json, "{what}: not JSON: {body}");
        assert_eq!((status, error_code(&body)), (want_status, want_code), "{what}: {body}");
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
    let keys = server.admin_get("/workspaces/acme/mcp-keys").await;
    assert_eq!(keys["keys"], json!([]), "{keys}");
    server.stop().await;
}
