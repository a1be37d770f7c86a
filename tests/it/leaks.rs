//! A leaked token: revoked from the CLI by the token alone, or reported by whoever found it to
//! `POST /api/tokens/revoke`, which answers the same whether or not the token was known.

use serde_json::{Value, json};

use crate::common::{Key, TestEnv, TestServer, rpc, run_piped};

async fn status_of(key: &Key) -> u16 {
    key.send(&rpc(1, "tools/list", json!({}))).await.status
}

async fn audit_details(server: &TestServer, workspace: &str) -> Vec<String> {
    let audit: Value = server.owner().audit(workspace, "").await;
    audit["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == "key.revoked")
        .map(|e| e["detail"].as_str().expect("detail").to_owned())
        .collect()
}

#[tokio::test]
async fn a_found_token_is_revoked_from_the_cli_without_knowing_its_name_or_workspace() {
    let server = TestServer::start().await;
    let owner = server.owner();
    let created = owner.create_workspace(json!({"name": "Second"})).await;
    let slug = created["workspace"]["slug"].as_str().expect("slug").to_owned();
    let key = owner.create_key_in(&slug, json!({"name": "Laptop", "expires": "30d"})).await;
    let token = key.token.clone();
    assert_eq!(status_of(&key).await, 200);

    let env = TestEnv::new();
    let revoke = |stdin: String, json: bool| {
        let mut cmd = env.command();
        cmd.env("CUSTORY_SERVER", &server.url).env("CUSTORY_OWNER_TOKEN", &server.owner_token);
        if json {
            cmd.arg("--json");
        }
        cmd.args(["keys", "revoke", "--token-stdin"]);
        async move { run_piped(cmd, Some(&stdin)).await }
    };
    // Two workspaces and no --workspace: the token says which.
    let ran = revoke(format!("{token}\n"), true).await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let answer: Value = serde_json::from_str(&ran.stdout).expect("--json");
    assert_eq!(
        (answer["workspace"].as_str(), answer["key"]["name"].as_str()),
        (Some(slug.as_str()), Some("Laptop"))
    );
    assert_eq!(answer["key"]["status"], "revoked");
    assert!(!ran.stdout.contains(&token) && !ran.stderr.contains(&token), "never echoed");
    assert_eq!(status_of(&key).await, 401, "refused from the next request");
    assert!(
        audit_details(&server, &slug).await.iter().any(|d| d.contains("its token was found")),
        "audited with the reason"
    );

    // Revoking twice succeeds and says it was already done (issue 30: idempotent revoke).
    let again = revoke(token.clone(), false).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stderr.contains("was already revoked just now ("), "{}", again.stderr);
    assert!(again.stderr.contains("nothing to do"), "{}", again.stderr);
    let stranger = custory_mcp::token::PlainToken::generate(custory_mcp::token::TokenKind::Mcp);
    let unknown = revoke(stranger.expose().to_owned(), false).await;
    assert_eq!(unknown.code, 1);
    assert!(
        unknown.stderr.contains("no MCP key on this server has this token"),
        "{}",
        unknown.stderr
    );
    let garbage = revoke("not a token".into(), false).await;
    assert_eq!(garbage.code, 1);
    assert!(garbage.stderr.contains("not an MCP key's token"), "{}", garbage.stderr);
    server.stop().await;
}

#[tokio::test]
async fn whoever_finds_a_token_may_kill_it_and_learns_nothing_about_others() {
    let server = TestServer::start().await;
    let owner = server.owner();
    let leaky = owner.create_key("Leaky", "90d", "read-write").await;
    let bystander = owner.create_key("Bystander", "90d", "read-write").await;
    let anyone = server.visitor();
    let report = async |body: Value| {
        let reply = anyone.post("/api/tokens/revoke").json(&body).send().await;
        (reply.status, reply.text())
    };
    // No credential: the token is the proof.
    let known = report(json!({"token": leaky.token})).await;
    assert_eq!(known.0, 200, "{}", known.1);
    assert_eq!(status_of(&leaky).await, 401, "refused on the next request");
    assert_eq!(status_of(&bystander).await, 200, "other keys untouched");
    let stranger = custory_mcp::token::PlainToken::generate(custory_mcp::token::TokenKind::Mcp);
    let unknown = report(json!({"token": stranger.expose()})).await;
    let again = report(json!({"token": leaky.token})).await;
    let malformed = report(json!({"token": "cst_short"})).await;
    assert_eq!(unknown, known, "an unknown token is answered identically");
    assert_eq!(again, known, "so is one already revoked");
    assert_eq!(malformed, known, "and one that is not a token at all");
    // The list secret-scanning services send.
    let scanned = owner.create_key("Scanned", "90d", "read-write").await;
    let (status, _) = report(json!([
        {"token": scanned.token, "type": "custory_mcp_key", "url": "https://example.com/x", "source": "content"},
        {"token": stranger.expose(), "type": "custory_mcp_key", "url": "", "source": "commit"}
    ]))
    .await;
    assert_eq!(status, 200);
    assert_eq!(status_of(&scanned).await, 401);
    let (status, body) = report(json!({"nothing": 1})).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        audit_details(&server, "acme")
            .await
            .iter()
            .filter(|d| d.contains("reported as leaked"))
            .count()
            == 2,
        "each revocation is audited with its reason"
    );
    server.stop().await;
}

/// A member's credential or an invitation code found in the open is killed the same way: the
/// credential refused from the next request, the invitation withdrawn, each audited, and the
/// answer the same as for a token nobody knows.
#[tokio::test]
async fn a_leaked_member_credential_or_invitation_is_killed_by_its_report() {
    let server = TestServer::start().await;
    let owner = server.owner();
    let ivy = owner.add_member("acme", "Ivy", "editor").await;
    let code = owner.invite("acme", "Lee", "viewer").await;
    ivy.get("/whoami").expect(200).await;
    let anyone = server.visitor();
    let report = async |token: &str| {
        let reply = anyone.post("/api/tokens/revoke").json(&json!({"token": token})).send().await;
        (reply.status, reply.text())
    };
    let stranger = custory_mcp::token::PlainToken::generate(custory_mcp::token::TokenKind::Member);
    let unknown = report(stranger.expose()).await;
    assert_eq!(unknown.0, 200, "{}", unknown.1);
    assert_eq!(report(ivy.token()).await, unknown, "answered as an unknown token is");
    assert_eq!(report(&code).await, unknown, "answered as an unknown token is");
    // Refused from the next request; the invitation can no longer be redeemed.
    ivy.get("/whoami").expect_error(401, "unauthorized").await;
    anyone
        .post("/api/admin/invitations/redeem")
        .json(&json!({"code": code}))
        .expect_error(410, "invitation_withdrawn")
        .await;
    // The owner credential is not the report's to kill.
    report(&server.owner_token).await;
    owner.get("/whoami").expect(200).await;
    let audit = owner.audit("acme", "").await;
    let kinds: Vec<(&str, &str)> = audit["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| (e["kind"].as_str().unwrap_or(""), e["actor"]["kind"].as_str().unwrap_or("")))
        .collect();
    for kind in ["member.credential_revoked", "member.invitation_withdrawn"] {
        assert!(kinds.contains(&(kind, "leak-report")), "{kind} by leak-report: {audit}");
    }
    let text = audit.to_string();
    assert!(text.contains("remove them and invite them again"), "what to do next: {text}");
    assert!(!text.contains(&ivy.token()[12..]) && !text.contains(&code[12..]), "{text}");
    server.stop().await;
}

#[tokio::test]
async fn reports_have_a_limit_of_their_own_that_a_scanner_does_not_reach_by_accident() {
    // A failed-authentication limit of 1 does not slow reports down.
    let config = custory_mcp::server::ServerConfig {
        auth_failures_per_window: 1,
        ..custory_mcp::server::ServerConfig::default()
    };
    let server = TestServer::start_with(config).await;
    let stranger = custory_mcp::token::PlainToken::generate(custory_mcp::token::TokenKind::Mcp);
    let anyone = server.visitor();
    let mut statuses = Vec::new();
    for _ in 0..80 {
        let report = anyone.post("/api/tokens/revoke").json(&json!({"token": stranger.expose()}));
        statuses.push(report.send().await.status);
    }
    assert!(statuses[..60].iter().all(|s| *s == 200), "{statuses:?}");
    // 60 a minute, one more each second: 20 more sent at once cannot all pass.
    assert!(statuses[60..].contains(&429), "past the limit reports wait: {statuses:?}");
    server.stop().await;
}
