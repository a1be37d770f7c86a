//! Team access (issue 33): members with a role per workspace, personal credentials issued by
//! invitation, who may call which admin route, and who did what.

use custory_mcp::api::Role;
use custory_mcp::server::{Allow, Guard, ServerConfig, routes};
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Owner, Run, Terminal, TestEnv, TestServer, run_piped};

/// Who may call each admin route, decided here on its own (not read from the route table): the
/// table must say the same, and a route this list does not know fails the walk below.
fn expected_rule(method: &Method, path: &str) -> Option<Allow> {
    use Allow::{Administrator, AnyCaller};
    let viewer = Allow::Role(Role::Viewer);
    let editor = Allow::Role(Role::Editor);
    let owner = Allow::Role(Role::Owner);
    let rule = match (method.as_str(), path) {
        ("GET", "/api/admin/whoami") => AnyCaller,
        ("GET", "/api/admin/workspaces") => AnyCaller,
        ("POST", "/api/admin/workspaces") => Administrator,
        ("GET", "/api/admin/workspaces/{ws}") => viewer,
        ("GET", "/api/admin/mcp-keys") => AnyCaller,
        ("GET", "/api/admin/workspaces/{ws}/mcp-keys") => viewer,
        ("GET", "/api/admin/workspaces/{ws}/journeys") => viewer,
        ("POST", "/api/admin/workspaces/{ws}/mcp-keys") => editor,
        ("GET", "/api/admin/workspaces/{ws}/mcp-keys/{id}") => viewer,
        ("POST", "/api/admin/workspaces/{ws}/mcp-keys/{id}/revoke") => editor,
        ("POST", "/api/admin/workspaces/{ws}/mcp-keys/{id}/rotate") => editor,
        ("POST", "/api/admin/workspaces/{ws}/mcp-keys/{id}/narrow") => editor,
        ("GET", "/api/admin/workspaces/{ws}/mcp-keys/{id}/usage") => viewer,
        ("GET", "/api/admin/workspaces/{ws}/audit") => viewer,
        ("GET", "/api/admin/workspaces/{ws}/usage") => viewer,
        ("POST", "/api/admin/mcp-keys/revoke-token") => Administrator,
        ("GET", "/api/admin/workspaces/{ws}/export") => owner,
        ("POST", "/api/admin/imports") => Administrator,
        ("GET", "/api/admin/workspaces/{ws}/members") => owner,
        ("POST", "/api/admin/workspaces/{ws}/invitations") => owner,
        ("GET", "/api/admin/workspaces/{ws}/invitations") => owner,
        ("POST", "/api/admin/workspaces/{ws}/invitations/{prefix}/withdraw") => owner,
        ("POST", "/api/admin/workspaces/{ws}/members/{name}/role") => owner,
        ("POST", "/api/admin/workspaces/{ws}/members/{name}/remove") => owner,
        ("GET", "/api/admin/workspaces/{ws}/webhooks") => owner,
        ("POST", "/api/admin/workspaces/{ws}/webhooks") => owner,
        ("POST", "/api/admin/workspaces/{ws}/webhooks/{id}/remove") => owner,
        ("POST", "/api/admin/workspaces/{ws}/webhooks/{id}/test") => owner,
        ("GET", "/api/admin/workspaces/{ws}/webhook-deliveries") => owner,
        ("GET", "/api/admin/workspaces/{ws}/policy") => viewer,
        ("POST", "/api/admin/workspaces/{ws}/policy") => owner,
        _ => return None,
    };
    Some(rule)
}

/// Who calls, in the walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Actor {
    Nobody,
    Administrator,
    Member(Role),
    /// A member of another workspace only.
    Outsider,
    /// A member removed from their only workspace.
    Removed,
}

/// What `actor` must get from a route with `rule`: `Ok(())` served (whatever the handler then
/// says of the request itself), or the refusal's status and code.
fn expected_answer(actor: Actor, rule: Allow) -> Result<(), (u16, &'static str)> {
    match (actor, rule) {
        (Actor::Nobody | Actor::Removed, _) => Err((401, "unauthorized")),
        (Actor::Administrator, _) => Ok(()),
        (Actor::Member(_) | Actor::Outsider, Allow::AnyCaller) => Ok(()),
        (Actor::Member(_) | Actor::Outsider, Allow::Administrator) => {
            Err((403, "administrator_only"))
        }
        (Actor::Outsider, Allow::Role(_)) => Err((404, "workspace_not_found")),
        (Actor::Member(role), Allow::Role(needed)) if role.includes(needed) => Ok(()),
        (Actor::Member(_), Allow::Role(_)) => Err((403, "role_required")),
    }
}

/// `path` with its parameters filled in.
fn concrete(path: &str, key_id: &str) -> String {
    path.split('/')
        .map(|segment| match segment {
            "{ws}" => "acme",
            "{id}" => key_id,
            "{name}" => "nobody",
            "{prefix}" => "csi_nothing",
            other if other.starts_with('{') => {
                panic!("the route {path} takes {other}, which this test cannot fill")
            }
            other => other,
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn every_admin_route_refuses_each_role_that_must_not_reach_it() {
    // Refusals on purpose: the address must not run out of failed authentications.
    let config = ServerConfig { auth_failures_per_window: 1_000_000, ..ServerConfig::default() };
    let server = TestServer::start_with(config).await;
    let admin = server.owner();
    admin.create_workspace(json!({"name": "Beta", "slug": "beta"})).await;
    let owner = admin.add_member("acme", "Olive", "owner").await;
    let editor = admin.add_member("acme", "Eddie", "editor").await;
    let viewer = admin.add_member("acme", "Vera", "viewer").await;
    let outsider = admin.add_member("beta", "Otto", "owner").await;
    let removed = admin.add_member("acme", "Remy", "viewer").await;
    // Removal is in force on the very next request.
    removed.get("/whoami").expect(200).await;
    let body = json!({"revoke_keys": false});
    admin.post("/workspaces/acme/members/Remy/remove").json(&body).expect(200).await;
    removed.get("/whoami").expect_error(401, "unauthorized").await;
    // The key the walk rotates and revokes is the editor's, so an editor may.
    let key = editor.create_key_in("acme", json!({"name": "Walked", "expires": "30d"})).await;
    let anyone = server.visitor();
    let actors: [(Actor, Option<&Owner>); 7] = [
        (Actor::Nobody, None),
        (Actor::Administrator, Some(&admin)),
        (Actor::Member(Role::Owner), Some(&owner)),
        (Actor::Member(Role::Editor), Some(&editor)),
        (Actor::Member(Role::Viewer), Some(&viewer)),
        (Actor::Outsider, Some(&outsider)),
        (Actor::Removed, Some(&removed)),
    ];

    let mut walked = 0;
    for route in routes().iter().filter(|route| route.guard == Guard::Owner) {
        let what = format!("{} {}", route.method, route.path);
        let expected = expected_rule(&route.method, route.path).unwrap_or_else(|| {
            panic!("{what}: this test does not know who may call it; decide, and add it above")
        });
        assert_eq!(route.allow, Some(expected), "{what}: the route table names another rule");
        let path = concrete(route.path, key.id());
        for (actor, caller) in &actors {
            let call = match caller {
                Some(caller) => anyone.request(route.method.clone(), &path).bearer(caller.token()),
                None => anyone.request(route.method.clone(), &path),
            };
            let call = call.named(format!("{what} as {actor:?}"));
            let call = if route.method == Method::POST { call.json(&json!({})) } else { call };
            let reply = call.send().await;
            match expected_answer(*actor, expected) {
                Err((status, code)) => {
                    reply.expect_error(status, code);
                }
                Ok(()) => {
                    let refused = matches!(reply.status, 401 | 403)
                        || reply.text().contains("workspace_not_found");
                    assert!(
                        !refused,
                        "{what} as {actor:?} must be served, yet answered {}: {}",
                        reply.status,
                        reply.text()
                    );
                }
            }
            walked += 1;
        }
    }
    assert!(walked >= 18 * 7, "walked {walked} calls");
}

#[tokio::test]
async fn editors_manage_only_their_keys_and_the_last_owner_stays() {
    let server = TestServer::start().await;
    let admin = server.owner();
    let owner = admin.add_member("acme", "Olive", "owner").await;
    let editor = admin.add_member("acme", "Eddie", "editor").await;
    let theirs = admin.create_key("Admin's", "30d", "read-write").await;
    let mine = editor.create_key_in("acme", json!({"name": "Eddie's", "expires": "30d"})).await;
    // Not the editor's key: refused, and the key still works.
    let path = format!("/workspaces/acme/mcp-keys/{}/revoke", theirs.id());
    let body = editor.post(&path).expect_error(403, "not_your_key").await;
    assert!(body["error"]["message"].as_str().unwrap_or("").contains("administrator"), "{body}");
    editor
        .post(&format!("/workspaces/acme/mcp-keys/{}/rotate", theirs.id()))
        .expect_error(403, "not_your_key")
        .await;
    theirs.initialize().await;
    // Their own: rotated, and the new key is still theirs.
    let rotated = editor.rotate(mine.id()).await;
    assert_eq!(rotated["key"]["created_by"]["name"], "Eddie", "{rotated}");
    // An owner manages every key.
    owner.revoke(theirs.id()).await;

    // The last owner can be neither demoted nor removed, by anyone.
    let demote = json!({"role": "editor"});
    admin
        .post("/workspaces/acme/members/Olive/role")
        .json(&demote)
        .expect_error(409, "last_owner")
        .await;
    let remove = json!({"revoke_keys": true});
    owner
        .post("/workspaces/acme/members/Olive/remove")
        .json(&remove)
        .expect_error(409, "last_owner")
        .await;
    // With a second owner, the first may go.
    let promote = json!({"role": "owner"});
    let promoted =
        owner.post("/workspaces/acme/members/Eddie/role").json(&promote).expect(200).await;
    assert_eq!(promoted["member"]["role"], "owner");
    let removal =
        admin.post("/workspaces/acme/members/Olive/remove").json(&remove).expect(200).await;
    assert_eq!(removal["credential_revoked"], true, "{removal}");
    owner.get("/whoami").expect_error(401, "unauthorized").await;
}

/// A member's removal with `revoke_keys`: their keys stop on the next MCP request, the others'
/// do not.
#[tokio::test]
async fn removing_a_member_can_revoke_the_keys_they_made() {
    let server = TestServer::start().await;
    let admin = server.owner();
    let editor = admin.add_member("acme", "Eddie", "editor").await;
    let theirs = editor.create_key_in("acme", json!({"name": "Eddie's", "expires": "30d"})).await;
    let kept = admin.create_key("Admin's", "30d", "read-write").await;
    theirs.initialize().await;
    let removal = admin
        .post("/workspaces/acme/members/Eddie/remove")
        .json(&json!({"revoke_keys": true}))
        .expect(200)
        .await;
    let revoked: Vec<&str> = removal["revoked_keys"]
        .as_array()
        .expect("revoked keys")
        .iter()
        .filter_map(|k| k["name"].as_str())
        .collect();
    assert_eq!(revoked, ["Eddie's"]);
    let refused = theirs.send(&crate::common::initialize_body()).await;
    assert_eq!(refused.status, 401, "{}", refused.text());
    kept.initialize().await;
    let audit = admin.audit("acme", "?by=administrator").await;
    let kinds: Vec<&str> = audit["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"member.removed"), "{audit}");
    assert!(kinds.contains(&"key.revoked"), "{audit}");
}

/// Who made each key and who did each thing, on the wire: `created_by`, `actor`, `?mine`,
/// `?by`.
#[tokio::test]
async fn keys_and_events_name_who_made_and_did_them() {
    let server = TestServer::start().await;
    let admin = server.owner();
    let editor = admin.add_member("acme", "Eddie", "editor").await;
    let by_admin = admin.create_key("Admin's", "30d", "read-write").await;
    let by_editor =
        editor.create_key_in("acme", json!({"name": "Eddie's", "expires": "30d"})).await;
    assert_eq!(by_admin.info["created_by"], json!({"kind": "administrator"}));
    let created_by = &by_editor.info["created_by"];
    assert_eq!(created_by["kind"], "member");
    assert_eq!(created_by["name"], "Eddie");
    assert!(created_by["member_id"].as_str().is_some_and(|id| id.starts_with("mem_")));
    let shown = editor.show_key(by_admin.id()).await;
    assert_eq!(shown["key"]["created_by"]["kind"], "administrator");

    let names = |answer: &Value| -> Vec<String> {
        answer["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .filter_map(|k| k["name"].as_str().map(str::to_owned))
            .collect()
    };
    assert_eq!(names(&editor.list_keys("acme", "?mine=true").await), ["Eddie's"]);
    assert_eq!(names(&admin.list_keys("acme", "?mine=true").await), ["Admin's"]);

    let audit = admin.audit("acme", "?by=Eddie").await;
    let events = audit["events"].as_array().expect("events");
    assert!(!events.is_empty(), "{audit}");
    for event in events {
        assert_eq!(event["actor"]["name"], "Eddie", "{event}");
    }
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(kinds, ["key.created", "member.joined"], "{audit}");
    let by_admin_events = admin.audit("acme", "?by=administrator").await;
    for event in by_admin_events["events"].as_array().expect("events") {
        assert_eq!(event["actor"], json!({"kind": "administrator"}), "{event}");
    }
}

#[tokio::test]
async fn an_invitation_is_redeemed_once_and_not_after_it_expires() {
    let server = TestServer::start().await;
    let admin = server.owner();
    let anyone = server.visitor();
    let redeem =
        |code: &str| anyone.post("/api/admin/invitations/redeem").json(&json!({"code": code}));
    let code = admin.invite("acme", "Ivy", "viewer").await;
    assert!(code.starts_with("csi_"), "{code}");
    // The code is no credential by itself.
    let as_bearer = anyone.get("/api/admin/whoami").bearer(&code);
    as_bearer.expect_error(403, "invitation_not_credential").await;
    let redeemed = redeem(&code).expect(201).await;
    let credential = redeemed["credential"].as_str().expect("credential");
    assert!(credential.starts_with("csm_"), "{redeemed}");
    assert_eq!(redeemed["member"]["role"], "viewer");
    assert_eq!(redeemed["workspace"], "acme");
    // A member's credential is for the admin API only, never an MCP key.
    let at_mcp = server.key(credential).send(&crate::common::initialize_body()).await;
    assert_eq!(at_mcp.status, 401, "{}", at_mcp.text());
    assert!(at_mcp.text().contains("member credentials (csm_)"), "{}", at_mcp.text());
    let body = redeem(&code).expect_error(409, "invitation_used").await;
    assert!(!body.to_string().contains(&code[12..]), "the code is echoed: {body}");

    let late = admin
        .post("/workspaces/acme/invitations")
        .json(&json!({"name": "Lee", "role": "editor", "expires": "1h"}))
        .expect(201)
        .await;
    server.store.clock().advance(chrono::Duration::hours(2));
    let late = late["code"].as_str().expect("code");
    redeem(late).expect_error(410, "invitation_expired").await;
    // Never issued, though well formed: a failed authentication.
    let forged =
        custory_mcp::token::PlainToken::generate(custory_mcp::token::TokenKind::Invitation);
    redeem(forged.expose()).expect_error(404, "invitation_not_found").await;
    // A name an active member has is not given twice.
    admin
        .post("/workspaces/acme/invitations")
        .json(&json!({"name": "Ivy", "role": "viewer"}))
        .expect_error(409, "conflict")
        .await;
    // An email is one address of a bounded length, or it is refused (nothing is stored).
    for email in ["not an address", "ana@", &format!("{}@example.com", "a".repeat(250))] {
        admin
            .post("/workspaces/acme/invitations")
            .json(&json!({"name": "Mo", "role": "viewer", "email": email}))
            .expect_error(422, "invalid_email")
            .await;
    }
    admin
        .post("/workspaces/acme/invitations")
        .json(&json!({"name": "Mo", "role": "viewer", "email": " mo@example.com "}))
        .expect(201)
        .await;
}

/// `custory-mcp ARGS` for `env`'s user of `server`, without the owner credential: the line a
/// [`Terminal`] runs.
fn terminal_command(env: &TestEnv, server: &TestServer, owner: bool, args: &str) -> String {
    let owner =
        if owner { format!("CUSTORY_OWNER_TOKEN={}", server.owner_token) } else { String::new() };
    format!(
        "env -i HOME={home} CUSTORY_CONFIG_DIR={config} CUSTORY_CREDENTIAL_STORE=file \
         CUSTORY_SERVER={url} {owner} TERM=xterm NO_COLOR=1 {bin} {args}",
        home = env.home.path().display(),
        config = env.config_dir().display(),
        url = server.url,
        bin = crate::common::BIN,
    )
}

/// The invitee's side: the real binary in their own home, with no owner credential.
async fn as_invitee(env: &TestEnv, server: &TestServer, args: &[&str], stdin: Option<&str>) -> Run {
    let mut command = env.command();
    command.env("CUSTORY_SERVER", &server.url).args(args);
    run_piped(command, stdin).await
}

/// The invitation flow as two people live it, each in their own home: the inviter prints a
/// code, the invitee redeems it at a terminal (asked for it, never echoed) and works with their
/// own credential; every key and event names them; a used code and an expired one are refused;
/// the inviter removes them at a terminal (asked what happens to their keys), and their
/// credential stops on its next use.
#[tokio::test]
async fn the_invitation_flow_end_to_end_in_two_homes() {
    let server = TestServer::start().await;
    let inviter = TestEnv::new();
    let invitee = TestEnv::new();

    let invited = inviter.admin(&server, &["members", "invite", "Ivy", "--role", "editor"]).await;
    assert_eq!(invited.code, 0, "{}", invited.stderr);
    let code = invited.stdout.trim().to_owned();
    assert!(code.starts_with("csi_") && code.len() == 42, "stdout holds the code alone: {code:?}");
    assert!(invited.stderr.contains("login --server"), "{}", invited.stderr);
    assert!(invited.stderr.contains("--invite"), "{}", invited.stderr);

    let login = terminal_command(&invitee, &server, false, "login --invite");
    let typed = code.clone();
    let screen = tokio::task::spawn_blocking(move || {
        let t = Terminal::start(&login);
        t.wait_for("Invitation code");
        t.type_text(&typed);
        t.keys(&["Enter"]);
        t.wait_for("EXIT=")
    })
    .await
    .expect("terminal session");
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(screen.contains("Welcome, Ivy: you are an editor of acme"), "{screen}");
    assert!(!screen.contains(&code[4..]), "the code is echoed: {screen}");
    assert!(!screen.contains("csm_"), "the credential is shown: {screen}");
    // Their credential is theirs: saved in their home, 0600, and nowhere in the inviter's.
    let saved = std::fs::read_to_string(invitee.config_dir().join("credentials.json"))
        .expect("the invitee's saved credential");
    assert!(saved.contains("csm_"), "{saved}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(invitee.config_dir().join("credentials.json"))
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let inviters =
        std::fs::read_to_string(inviter.config_dir().join("credentials.json")).unwrap_or_default();
    assert!(!inviters.contains("csm_"), "{inviters}");

    let whoami = as_invitee(&invitee, &server, &["whoami", "--json"], None).await;
    assert_eq!(whoami.code, 0, "{}", whoami.stderr);
    let me: Value = serde_json::from_str(&whoami.stdout).expect("json");
    assert_eq!(me["name"], "Ivy");
    assert_eq!(me["roles"], json!([{"workspace": "acme", "role": "editor"}]));
    // `status` says whose credential it is, and never shows it.
    let status = as_invitee(&invitee, &server, &["status"], None).await;
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(status.stdout.contains("Credential  member credential in "), "{}", status.stdout);
    assert!(status.stdout.contains("You are     Ivy: editor of acme\n"), "{}", status.stdout);
    assert!(!status.stdout.contains("csm_") && !status.stderr.contains("csm_"));

    // Their key, and what says so.
    let created = as_invitee(
        &invitee,
        &server,
        &["keys", "create", "--name", "Ivy's laptop", "--expires", "30d"],
        None,
    )
    .await;
    assert_eq!(created.code, 0, "{}", created.stderr);
    let shared = inviter
        .admin(&server, &["keys", "create", "--name", "Shared box", "--expires", "30d"])
        .await;
    assert_eq!(shared.code, 0, "{}", shared.stderr);
    let listed = inviter.admin_json(&server, &["keys", "list"]).await;
    let creator = |name: &str| -> Value {
        listed["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .find(|k| k["name"] == name)
            .map(|k| k["created_by"].clone())
            .expect("the key")
    };
    assert_eq!(creator("Ivy's laptop")["name"], "Ivy");
    assert_eq!(creator("Shared box"), json!({"kind": "administrator"}));
    let table = inviter.admin(&server, &["keys", "list"]).await.stdout;
    let line = table.lines().find(|l| l.starts_with("Ivy's laptop")).expect("a row");
    assert!(line.contains("by Ivy"), "{table}");
    let mine = as_invitee(&invitee, &server, &["keys", "list", "--mine", "--json"], None).await;
    let mine: Value = serde_json::from_str(&mine.stdout).expect("json");
    let names: Vec<&str> =
        mine["keys"].as_array().expect("keys").iter().filter_map(|k| k["name"].as_str()).collect();
    assert_eq!(names, ["Ivy's laptop"]);
    let shown = inviter.admin(&server, &["keys", "show", "Ivy's laptop"]).await.stdout;
    assert!(shown.lines().any(|l| l.starts_with("Created by") && l.ends_with("Ivy")), "{shown}");
    // An editor does not revoke another's key.
    let refused =
        as_invitee(&invitee, &server, &["keys", "revoke", "Shared box", "--yes"], None).await;
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stderr.contains("created by the administrator"), "{}", refused.stderr);
    let audit = inviter.admin_json(&server, &["audit", "--by", "Ivy"]).await;
    let kinds: Vec<&str> = audit["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["key.created", "member.joined"], "{audit}");
    let table = inviter.admin(&server, &["audit"]).await.stdout;
    assert!(table.contains("(by Ivy)"), "{table}");

    // A used code, in a third home: refused, and nothing saved there.
    let third = TestEnv::new();
    let again = as_invitee(&third, &server, &["login", "--invite-stdin"], Some(&code)).await;
    assert_eq!(again.code, 1, "{}", again.stderr);
    assert!(again.stderr.contains("already used"), "{}", again.stderr);
    assert!(!third.config_dir().join("credentials.json").exists());
    // An expired one.
    let late = inviter
        .admin(&server, &["members", "invite", "Lee", "--role", "viewer", "--expires", "1h"])
        .await;
    server.store.clock().advance(chrono::Duration::hours(2));
    let expired =
        as_invitee(&third, &server, &["login", "--invite-stdin"], Some(late.stdout.trim())).await;
    assert_eq!(expired.code, 1, "{}", expired.stderr);
    assert!(expired.stderr.contains("expired"), "{}", expired.stderr);

    // Removed at a terminal, asked about the keys: revoked with them, and refused next time.
    let remove = terminal_command(&inviter, &server, true, "members remove Ivy");
    let screen = tokio::task::spawn_blocking(move || {
        let t = Terminal::start(&remove);
        t.wait_for("Their keys?");
        t.wait_for("❯ Revoke the keys they created here");
        t.keys(&["Enter"]);
        t.wait_for("EXIT=")
    })
    .await
    .expect("terminal session");
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(screen.contains("Removed Ivy from acme (1 key revoked"), "{screen}");
    let after = as_invitee(&invitee, &server, &["whoami"], None).await;
    assert_eq!(after.code, 1, "{}", after.stderr);
    assert!(after.stderr.contains("not valid"), "{}", after.stderr);
    // Piped, the flag decides.
    let piped = inviter.admin(&server, &["members", "remove", "Nobody"]).await;
    assert_eq!(piped.code, 2, "{}", piped.stderr);
    assert!(piped.stderr.contains("--revoke-keys or --keep-keys"), "{}", piped.stderr);
}

/// A member at the consent page: signs in with their own credential.
struct AsMember {
    url: String,
    credential: String,
}

impl crate::oauth::Site for AsMember {
    fn base(&self) -> &str {
        &self.url
    }
    fn owner_credential(&self) -> &str {
        &self.credential
    }
}

/// OAuth consent signed in with a member's credential: the key it mints is theirs (and the
/// consent's); a viewer may approve a read-only key and no other; a removed member's browser
/// session ends with them.
#[tokio::test]
async fn a_member_consents_at_the_oauth_page_and_the_key_is_theirs() {
    use crate::oauth::{
        Browser, REDIRECT, authorize_url, consent, hidden_fields, pkce, query_of, redeem_code,
        register,
    };
    let server =
        TestServer::start_with(ServerConfig { oauth: true, ..ServerConfig::default() }).await;
    let admin = server.owner();
    let eddie = admin.add_member("acme", "Eddie", "editor").await;
    let vera = admin.add_member("acme", "Vera", "viewer").await;
    let client_id = register(&server, "Claude Code", REDIRECT).await;

    let site = AsMember { url: server.url.clone(), credential: eddie.token().to_owned() };
    let (verifier, challenge) = pkce("eddie");
    let url = authorize_url(&site, &client_id, REDIRECT, &challenge);
    let mut browser = Browser::new();
    let location = consent(&site, &mut browser, &url, &[("access", "read-write".to_owned())]).await;
    let code = query_of(&location)["code"].clone();
    let (status, token) = redeem_code(&server, &code, REDIRECT, &client_id, &verifier).await;
    assert_eq!(status, 200, "{token}");
    let keys = admin.list_keys("acme", "").await;
    let key = &keys["keys"][0];
    assert_eq!(key["access"], "read-write");
    assert_eq!(key["created_by"]["kind"], "consent", "{key}");
    assert_eq!(key["created_by"]["name"], "Eddie", "{key}");
    let mine = eddie.list_keys("acme", "?mine=true").await;
    assert_eq!(mine["keys"][0]["id"], key["id"], "the consented key is among Eddie's own");
    let audit = admin.audit("acme", "?by=Eddie").await;
    assert_eq!(audit["events"][0]["kind"], "key.created", "{audit}");
    assert_eq!(audit["events"][0]["actor"]["kind"], "consent", "{audit}");

    // A viewer: read-write is refused on the consent page, and no code is sent.
    let site = AsMember { url: server.url.clone(), credential: vera.token().to_owned() };
    let (_, challenge) = pkce("vera");
    let url = authorize_url(&site, &client_id, REDIRECT, &challenge);
    let mut browser = Browser::new();
    consent(&site, &mut browser, &url, &[("access", "read-only".to_owned())]).await;
    let page = browser.get(&url).await;
    let mut form = hidden_fields(&page.html);
    form.extend([
        ("workspace", "acme".to_owned()),
        ("decision", "approve".to_owned()),
        ("key_name", "Vera's agent".to_owned()),
        ("expires", "30d".to_owned()),
        ("access", "read-write".to_owned()),
    ]);
    let refused = browser.post(&format!("{}/oauth/authorize", server.url), &form).await;
    assert_eq!(refused.location, None, "a refusal redirects nowhere");
    assert!(refused.html.contains("As a viewer of this workspace"), "{}", refused.html);
    let names: Vec<String> = admin.list_keys("acme", "").await["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["name"].as_str().map(str::to_owned))
        .collect();
    assert!(!names.iter().any(|n| n == "Vera's agent"), "{names:?}");

    // Removed: the browser's session ends with the membership.
    admin
        .post("/workspaces/acme/members/Vera/remove")
        .json(&json!({"revoke_keys": true}))
        .expect(200)
        .await;
    let page = browser.get(&url).await;
    assert!(page.html.contains("name=\"owner_credential\""), "sign in again: {}", page.html);
}

#[tokio::test]
async fn a_guessed_invitation_code_is_refused_without_waiting_for_the_writer() {
    let env = TestEnv::new();
    let db = crate::common::TestDatabase::for_backend(&env.home.path().join("custory.db"));
    // A long statement limit: the write below holds the writer's turn as long as the lock is held.
    let mut server = env.serve_on(&db.arg(), &["-vv", "--statement-timeout", "60000"]).await;
    let mut log = crate::oauth::log_lines(&mut server);
    let owner = server.owner();
    let held = db.hold_write_lock();
    // A write that takes the writer's turn and waits on the lock with it.
    let waiting = {
        let owner = server.owner();
        tokio::spawn(async move {
            owner
                .post("/workspaces/acme/mcp-keys")
                .json(&json!({"name": "waits", "expires": "30d"}))
                .send()
                .await
        })
    };
    crate::oauth::requests_arrived(&mut log, "/api/admin/workspaces/acme/mcp-keys", 1).await;
    // A stranger's guess is answered on a reader, not after the write (which would be 503
    // after the writer's 10 s wait, or never while the lock is held).
    let forged =
        custory_mcp::token::PlainToken::generate(custory_mcp::token::TokenKind::Invitation);
    let guess = server
        .visitor()
        .post("/api/admin/invitations/redeem")
        .json(&json!({"code": forged.expose()}))
        .expect_error(404, "invitation_not_found");
    tokio::time::timeout(std::time::Duration::from_secs(5), guess)
        .await
        .expect("the guess was answered while the write waited");
    assert!(!waiting.is_finished(), "the write still waits for the lock");
    held.release();
    let written = waiting.await.expect("write");
    assert_eq!(written.status, 201, "{}", written.text());
    drop(owner);
    server.terminate().await;
}

/// Invitations waiting to be redeemed are listed (never with their codes), withdrawn by prefix
/// or name through the CLI as an owner would, refused once withdrawn, bounded per workspace,
/// and deleted a while after they end.
#[tokio::test]
async fn invitations_are_listed_withdrawn_bounded_and_pruned() {
    let server = TestServer::start().await;
    let admin = server.owner();
    let env = TestEnv::new();
    let anyone = server.visitor();
    let redeem =
        |code: &str| anyone.post("/api/admin/invitations/redeem").json(&json!({"code": code}));
    let ivy = admin.invite("acme", "Ivy", "viewer").await;
    let lee = admin
        .post("/workspaces/acme/invitations")
        .json(&json!({"name": "Lee", "role": "editor", "expires": "2d"}))
        .expect(201)
        .await;
    let lee = lee["code"].as_str().expect("code").to_owned();

    // Soonest to expire first, with who invited them, and no code.
    let listed = env.admin(&server, &["members", "invitations", "--json"]).await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let body: Value = serde_json::from_str(&listed.stdout).expect("json");
    let names: Vec<&str> = body["invitations"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    assert_eq!(names, ["Lee", "Ivy"], "{body}");
    assert_eq!(body["invitations"][1]["invited_by"], "administrator", "{body}");
    for code in [&ivy, &lee] {
        assert!(!listed.stdout.contains(&code[12..]), "a code is listed: {}", listed.stdout);
    }
    let table = env.admin(&server, &["members", "invitations"]).await;
    assert!(table.stdout.contains(&ivy[..12]), "the prefix is shown: {}", table.stdout);

    // Withdrawn by its prefix: its code is refused with the reason, and the list moves on.
    let withdrawn = env.admin(&server, &["members", "withdraw", &ivy[..12]]).await;
    assert_eq!(withdrawn.code, 0, "{}", withdrawn.stderr);
    assert!(withdrawn.stderr.contains("Withdrew the invitation"), "{}", withdrawn.stderr);
    let refused = redeem(&ivy).expect_error(410, "invitation_withdrawn").await;
    assert!(refused.to_string().contains("ask for a new one"), "{refused}");
    let again = env.admin(&server, &["members", "withdraw", &ivy[..12], "--json"]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    let again: Value = serde_json::from_str(&again.stdout).expect("json");
    assert_eq!(again["already_withdrawn"], true, "{again}");
    // By the name it was issued to, when one such is waiting.
    let by_name = env.admin(&server, &["members", "withdraw", "Lee"]).await;
    assert_eq!(by_name.code, 0, "{}", by_name.stderr);
    redeem(&lee).expect_error(410, "invitation_withdrawn").await;
    let empty = env.admin(&server, &["members", "invitations"]).await;
    assert_eq!(empty.code, 0, "{}", empty.stderr);
    assert!(empty.stdout.is_empty(), "{}", empty.stdout);
    assert!(empty.stderr.contains("members invite NAME"), "{}", empty.stderr);
    // One never issued: an error that says how to list the waiting ones.
    let unknown = env.admin(&server, &["members", "withdraw", "csi_nothing1"]).await;
    assert_eq!(unknown.code, 1, "{}", unknown.stderr);
    assert!(unknown.stderr.contains("members invitations"), "{}", unknown.stderr);
    // A redeemed one is not withdrawn: removing the member is what takes them out.
    let mo = admin.invite("acme", "Mo", "viewer").await;
    redeem(&mo).expect(201).await;
    let used = env.admin(&server, &["members", "withdraw", &mo[..12]]).await;
    assert_eq!(used.code, 1, "{}", used.stderr);
    assert!(used.stderr.contains("members remove Mo"), "{}", used.stderr);
    // Each withdrawal is in the audit, by whom.
    let audit = admin.get("/workspaces/acme/audit").expect(200).await;
    let withdrawals: Vec<&Value> = audit["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == "member.invitation_withdrawn")
        .collect();
    assert_eq!(withdrawals.len(), 2, "{audit}");

    // At most PENDING_INVITATIONS_MAX wait at once.
    let max = custory_mcp::api::PENDING_INVITATIONS_MAX;
    for n in 0..max {
        admin
            .post("/workspaces/acme/invitations")
            .json(&json!({"name": format!("Guest {n}"), "role": "viewer"}))
            .expect(201)
            .await;
    }
    let refused = admin
        .post("/workspaces/acme/invitations")
        .json(&json!({"name": "One more", "role": "viewer"}))
        .expect_error(409, "conflict")
        .await;
    assert!(refused.to_string().contains("withdraw some first"), "{refused}");
    let full = admin.get("/workspaces/acme/invitations").expect(200).await;
    assert_eq!(full["invitations"].as_array().map(Vec::len), Some(max));

    // Ended invitations are deleted a while later; their story stays in the audit.
    let before = server.store.now() + chrono::Duration::days(1);
    let pruned = server.store.access().prune_invitations(before).expect("prune");
    assert_eq!(pruned, 3, "Ivy's and Lee's (withdrawn) and Mo's (used)");
    redeem(&ivy).expect_error(404, "invitation_not_found").await;
    let audit = admin.get("/workspaces/acme/audit?limit=500").expect(200).await;
    assert!(audit.to_string().contains("member.invitation_withdrawn"), "{audit}");
}
