//! The workspace key policy (issue 34): owners set it, every key made after keeps it (the CLI,
//! the admin API and the OAuth consent refuse what breaks it), a key made before that breaks it
//! is blocked (403 naming the rule) until rotated or the policy changes back, unused keys are
//! revoked by the server, and every change is audited with who made it. Runs on the backend
//! under test (`CUSTORY_TEST_BACKEND=postgres` for PostgreSQL).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{Key, TestEnv, TestServer, rpc};
use crate::oauth::{Browser, REDIRECT, authorize_url, hidden_fields, pkce, query_of, register};
use custory_mcp::server::ServerConfig;

/// `POST /workspaces/acme/policy` by `caller`, which must succeed: the answer.
async fn set(caller: &crate::common::Owner, body: Value) -> Value {
    caller.post("/workspaces/acme/policy").json(&body).expect(200).await
}

/// The events of `acme` of `kind`, newest first.
async fn events(server: &TestServer, kind: &str) -> Vec<Value> {
    let audit = server.owner().audit("acme", "?limit=200").await;
    audit["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == kind)
        .cloned()
        .collect()
}

/// `tools/list` with `key`: the status and the body.
async fn tools_list(key: &Key) -> (u16, Value) {
    let reply = key.post(&rpc(1, "tools/list", json!({}))).send().await;
    let body = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    (reply.status, body)
}

#[tokio::test]
async fn owners_set_the_policy_and_every_change_is_audited_with_who_made_it() {
    let server = TestServer::start().await;
    let admin = server.owner();
    let olive = admin.add_member("acme", "Olive", "owner").await;
    let eddie = admin.add_member("acme", "Eddie", "editor").await;

    // Nothing at first; an editor reads the policy (keys are made under it) but cannot set it.
    let shown = eddie.get("/workspaces/acme/policy").expect(200).await;
    assert_eq!(shown["policy"], json!({}), "{shown}");
    eddie
        .post("/workspaces/acme/policy")
        .json(&json!({"max_expiry": "30d"}))
        .expect_error(403, "role_required")
        .await;

    let done = set(
        &olive,
        json!({"max_expiry": "90d", "default_expiry": "30d", "tools": ["read", "add_comment"],
               "journeys": ["trial-to-paid"], "allow_ip": ["127.0.0.1", "10.0.0.0/8"],
               "revoke_unused_after": "90d"}),
    )
    .await;
    let policy = &done["policy"];
    assert_eq!(policy["max_expiry"], "90d");
    assert!(policy["tools"].as_array().expect("tools").contains(&json!("search")), "{policy}");
    assert!(policy["journeys"][0].as_str().is_some_and(|j| j.starts_with("jrn_")), "{policy}");
    assert_eq!(policy["allow_ip"], json!(["127.0.0.1/32", "10.0.0.0/8"]));
    let changed: Vec<&str> = done["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| c["rule"].as_str().expect("present"))
        .collect();
    assert_eq!(
        changed,
        ["max-expiry", "default-expiry", "tools", "journeys", "addresses", "revoke-unused"]
    );
    assert_eq!(done["changes"][0], json!({"rule": "max-expiry", "from": "none", "to": "90d"}));

    // Wrong values are refused with the field's code; a rule both set and cleared too.
    let refusals = [
        (json!({"max_expiry": "7d"}), 422, "invalid_body"),
        (json!({"tools": ["no_such_tool"]}), 422, "invalid_tools"),
        (json!({"journeys": ["nowhere"]}), 422, "invalid_journeys"),
        (json!({"allow_ip": ["not-a-net"]}), 422, "invalid_allow_ip"),
        (json!({"default_expiry": "never"}), 422, "invalid_policy"),
        (json!({"tools": ["read"], "clear": ["tools"]}), 422, "invalid_policy"),
    ];
    for (body, status, code) in refusals {
        let reply = olive.post("/workspaces/acme/policy").json(&body).send().await;
        assert_eq!(reply.status, status, "{body}: {}", reply.text());
        if code != "invalid_body" {
            assert_eq!(reply.json()["error"]["code"], code, "{body}: {}", reply.text());
        }
    }

    // The CLI: show (a line per rule, and --json), set prints what changed, --clear.
    let env = TestEnv::new();
    let shown = env.admin(&server, &["policy", "show"]).await;
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    assert!(shown.stdout.contains("max-expiry      90d"), "{}", shown.stdout);
    assert!(shown.stdout.contains("access          none"), "{}", shown.stdout);
    // Journeys as the slugs `--journeys` takes, not the ids the policy keeps.
    assert!(shown.stdout.contains("journeys        trial-to-paid"), "{}", shown.stdout);
    assert!(shown.stderr.contains("by Olive"), "{}", shown.stderr);
    let json = env.admin_json(&server, &["policy", "show"]).await;
    assert_eq!(json["policy"]["revoke_unused_after"], "90d");
    let cleared = env
        .admin(&server, &["policy", "set", "--clear", "tools,addresses", "--access", "read-only"])
        .await;
    assert_eq!(cleared.code, 0, "{}", cleared.stderr);
    assert!(cleared.stdout.contains("access          none → read-only"), "{}", cleared.stdout);
    assert!(
        cleared.stdout.contains("addresses       127.0.0.1/32, 10.0.0.0/8 → none"),
        "{}",
        cleared.stdout
    );
    let again = env.admin(&server, &["policy", "set", "--access", "read-only"]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stderr.contains("Nothing changed"), "{}", again.stderr);
    let nothing = env.admin(&server, &["policy", "set"]).await;
    assert_eq!(nothing.code, 2, "{}", nothing.stderr);

    // Audited, each with its actor; and they go out as webhooks (`policy.changed`).
    let changes = events(&server, "policy.changed").await;
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert_eq!(changes[0]["actor"]["kind"], "administrator", "{changes:?}");
    assert_eq!(changes[1]["actor"]["kind"], "member");
    assert_eq!(changes[1]["actor"]["name"], "Olive");
    assert!(
        changes[0]["detail"].as_str().expect("present").contains("access: none → read-only"),
        "{changes:?}"
    );
    assert_eq!(
        custory_mcp::api::WebhookEvent::of(custory_mcp::api::EventKind::PolicyChanged)
            .map(|e| e.as_str()),
        Some("policy.changed")
    );
}

#[tokio::test]
async fn keys_are_made_within_the_policy_by_the_cli_and_the_api() {
    let server = TestServer::start().await;
    let owner = server.owner();
    set(
        &owner,
        json!({"max_expiry": "90d", "default_expiry": "30d", "access": "read-only",
                       "tools": ["read"]}),
    )
    .await;

    // The API: each rule a request breaks is named by its code, with what it allows.
    let refusals = [
        (json!({"expires": "never"}), "policy_max_expiry", "--expires 30d|90d"),
        (json!({"expires": "30d", "access": "read-write"}), "policy_access", "--read-only"),
        (json!({"expires": "30d", "tools": ["add_comment"]}), "policy_tools", "add_comment"),
    ];
    for (extra, code, says) in refusals {
        let mut body = json!({"name": "Refused"});
        body.as_object_mut().expect("present").extend(extra.as_object().expect("present").clone());
        let error =
            owner.post("/workspaces/acme/mcp-keys").json(&body).expect_error(422, code).await;
        assert!(error["error"]["message"].as_str().expect("present").contains(says), "{error}");
    }
    // What is left out comes from the policy: its default expiry, read-only, its tools.
    let made = owner
        .post("/workspaces/acme/mcp-keys")
        .json(&json!({"name": "Defaults"}))
        .expect(201)
        .await;
    assert_eq!(made["key"]["expires"], "30d", "{made}");
    assert_eq!(made["key"]["access"], "read-only");
    assert!(made["key"]["scopes"]["tools"].as_array().expect("present").contains(&json!("search")));
    assert!(made["key"].get("blocked").is_none(), "{made}");

    // The CLI: defaults from the policy without --expires; a refusal names the rule and gives
    // a command the policy allows, which works as printed.
    let env = TestEnv::new();
    let created = env.admin(&server, &["keys", "create", "--name", "CLI default"]).await;
    assert_eq!(created.code, 0, "{}", created.stderr);
    assert!(created.stderr.contains("read-only"), "{}", created.stderr);
    let refused = env
        .admin(
            &server,
            &[
                "keys",
                "create",
                "--name",
                "CI",
                "--expires",
                "never",
                "--tools",
                "read,add_comment",
            ],
        )
        .await;
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stderr.contains("90 days at most"), "{}", refused.stderr);
    let fix = refused
        .stderr
        .lines()
        .find_map(|line| line.split("allows: ").nth(1))
        .and_then(|rest| rest.split(" (`").next())
        .unwrap_or_else(|| panic!("a command in {}", refused.stderr));
    assert!(fix.contains("--expires 90d") && fix.contains("--read-only"), "{fix}");
    let words: Vec<String> = shell_words(fix);
    assert_eq!(words[0], "custory-mcp");
    let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
    let fixed = env.admin(&server, &args).await;
    assert_eq!(fixed.code, 0, "{fix}: {}", fixed.stderr);
}

/// A command line as a shell splits it (single quotes only: what `shell_quote` writes).
fn shell_words(line: &str) -> Vec<String> {
    let (mut words, mut word, mut quoted, mut any) = (Vec::new(), String::new(), false, false);
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                any = false;
            }
            c => word.push(c),
        }
    }
    if any || !word.is_empty() {
        words.push(word);
    }
    words
}

#[tokio::test]
async fn a_key_that_breaks_a_newer_policy_is_blocked_until_rotated_or_the_policy_changes_back() {
    let server = TestServer::start().await;
    let owner = server.owner();
    let key = owner.create_key("Forever", "never", "read-write").await;
    let other = owner.create_key("Monthly", "30d", "read-write").await;
    assert_eq!(tools_list(&key).await.0, 200);

    let done = set(&owner, json!({"max_expiry": "90d"})).await;
    let blocked: Vec<&str> = done["blocked"]
        .as_array()
        .expect("present")
        .iter()
        .map(|k| k["name"].as_str().expect("present"))
        .collect();
    assert_eq!(blocked, ["Forever"], "{done}");

    // Refused with 403, naming the rule and what settles it; the other key still works.
    for _ in 0..3 {
        let (status, body) = tools_list(&key).await;
        assert_eq!(status, 403, "{body}");
        let message = body["error"]["message"].as_str().expect("message");
        assert!(message.contains("max-expiry"), "{message}");
        assert!(message.contains("keys rotate"), "{message}");
        assert_eq!(body["error"]["data"]["rule"], "max-expiry", "{body}");
    }
    assert_eq!(tools_list(&other).await.0, 200);
    // Recorded once, not per request (the record is written off the request: wait for it).
    let deadline = Instant::now() + Duration::from_secs(10);
    let recorded = loop {
        let found = events(&server, "key.blocked").await;
        if !found.is_empty() || Instant::now() > deadline {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0]["actor"]["kind"], "server");
    assert_eq!(recorded[0]["key_id"], key.id());

    // Shown as blocked, with the command that settles it.
    let shown = owner.show_key(key.id()).await;
    assert_eq!(shown["key"]["blocked"]["rule"], "max-expiry", "{shown}");
    assert!(shown["key"]["flags"].as_array().expect("present").contains(&json!("blocked")));
    let env = TestEnv::new();
    let listed = env.admin(&server, &["keys", "list"]).await;
    assert!(listed.stdout.contains("blocked: max-expiry"), "{}", listed.stdout);
    let show = env.admin(&server, &["keys", "show", "Forever"]).await;
    assert!(show.stdout.contains("Blocked"), "{}", show.stdout);
    assert!(show.stdout.contains("keys rotate"), "{}", show.stdout);
    let review = env.admin(&server, &["keys", "review"]).await;
    assert!(review.stdout.contains("max-expiry rule"), "{}", review.stdout);
    assert!(review.stdout.contains("keys rotate"), "{}", review.stdout);

    // The policy changes back: unblocked; tightened again: blocked again.
    set(&owner, json!({"clear": ["max-expiry"]})).await;
    assert_eq!(tools_list(&key).await.0, 200);
    set(&owner, json!({"max_expiry": "90d"})).await;
    assert_eq!(tools_list(&key).await.0, 403);

    // Rotated: the new key keeps the policy (its expiry narrowed), and works.
    let rotated = owner.rotate(key.id()).await;
    assert_eq!(rotated["key"]["expires"], "90d", "{rotated}");
    let new = server.key(rotated["token"].as_str().expect("present"));
    assert_eq!(tools_list(&new).await.0, 200);
    let rotation = events(&server, "key.rotated").await;
    assert!(
        rotation[0]["detail"]
            .as_str()
            .expect("present")
            .contains("narrowed to the workspace policy"),
        "{rotation:?}"
    );

    // A key limited to tools outside a newer tools rule: rotation keeps those both allow.
    let scoped = owner
        .create_key_in(
            "acme",
            json!({"name": "Scoped", "expires": "30d",
                                        "tools": ["search", "add_comment"]}),
        )
        .await;
    set(&owner, json!({"tools": ["read"]})).await;
    let (status, body) = tools_list(&scoped).await;
    assert_eq!((status, &body["error"]["data"]["rule"]), (403, &json!("tools")), "{body}");
    let rotated = owner.rotate(scoped.id()).await;
    assert_eq!(rotated["key"]["scopes"]["tools"], json!(["search"]), "{rotated}");
    let (status, body) = tools_list(&server.key(rotated["token"].as_str().expect("present"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["tools"].as_array().expect("present").len(), 1, "{body}");

    // `keys rotate` says what the policy changed.
    set(&owner, json!({"access": "read-only", "clear": ["tools"]})).await;
    assert_eq!(tools_list(&other).await.0, 403);
    let run = env.admin(&server, &["keys", "rotate", "Monthly", "--yes"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("read-write → read-only"), "{}", run.stderr);
    let token = run.stdout.trim();
    assert_eq!(tools_list(&server.key(token)).await.0, 200, "{}", run.stdout);
}

#[tokio::test]
async fn keys_unused_past_the_policy_are_revoked_by_the_server() {
    let config =
        ServerConfig { usage_flush_interval: Duration::from_millis(50), ..ServerConfig::default() };
    let server = TestServer::start_with(config).await;
    let owner = server.owner();
    let idle = owner.create_key("Idle", "never", "read-write").await;
    let busy = owner.create_key("Busy", "never", "read-write").await;
    set(&owner, json!({"revoke_unused_after": "30d"})).await;

    server.store.clock().advance(chrono::Duration::days(20));
    assert_eq!(tools_list(&busy).await.0, 200);
    server.store.clock().advance(chrono::Duration::days(11));
    // The hourly chore runs at the next tick past the hour (by the store's clock).
    let deadline = Instant::now() + Duration::from_secs(15);
    let revoked = loop {
        let found = events(&server, "key.revoked").await;
        if !found.is_empty() || Instant::now() > deadline {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(revoked.len(), 1, "only the idle key: {revoked:?}");
    assert_eq!(revoked[0]["key_id"], idle.id());
    assert_eq!(revoked[0]["actor"]["kind"], "server");
    assert!(
        revoked[0]["detail"].as_str().expect("present").contains("revoke-unused"),
        "{revoked:?}"
    );
    assert_eq!(tools_list(&idle).await.0, 401);
    assert_eq!(tools_list(&busy).await.0, 200);
}

#[tokio::test]
async fn the_consent_page_offers_only_what_the_policy_allows_and_refuses_a_forged_form() {
    let server =
        TestServer::start_with(ServerConfig { oauth: true, ..ServerConfig::default() }).await;
    let owner = server.owner();
    set(&owner, json!({"max_expiry": "90d", "access": "read-only", "tools": ["read"]})).await;
    let client_id = register(&server, "Claude Code", REDIRECT).await;
    let (verifier, challenge) = pkce("policy");
    let mut browser = Browser::new();
    let url = authorize_url(&server, &client_id, REDIRECT, &challenge);
    let first = browser.get(&url).await;
    let mut form = hidden_fields(&first.html);
    form.push(("owner_credential", server.owner_token.clone()));
    let signed = browser.post(&format!("{}/oauth/login", server.url), &form).await;
    let back = signed.location.expect("back to the consent page");
    let page = browser.get(&format!("{}{back}", server.url)).await;
    assert_eq!(page.status, 200, "{}", page.html);
    // Only what the policy allows is offered.
    assert!(page.html.contains("value=\"90d\""), "{}", page.html);
    assert!(!page.html.contains("value=\"never\""), "{}", page.html);
    assert!(page.html.contains("value=\"read-only\""));
    assert!(!page.html.contains("value=\"read-write\""), "{}", page.html);

    // A forged form asking for more is refused on the page, with no code sent.
    let base = hidden_fields(&page.html);
    let post = |expires: &str, access: &str| {
        let mut form = base.clone();
        form.extend([
            ("workspace", "acme".to_owned()),
            ("decision", "approve".to_owned()),
            ("key_name", "Claude Code here".to_owned()),
            ("expires", expires.to_owned()),
            ("access", access.to_owned()),
        ]);
        form
    };
    let forged =
        browser.post(&format!("{}/oauth/authorize", server.url), &post("never", "read-only")).await;
    assert_ne!(forged.status, 303, "{}", forged.html);
    assert!(forged.location.is_none());
    assert!(forged.html.contains("does not allow"), "{}", forged.html);
    let forged =
        browser.post(&format!("{}/oauth/authorize", server.url), &post("30d", "read-write")).await;
    assert!(forged.location.is_none() && forged.html.contains("read-only"), "{}", forged.html);

    // What the policy allows goes through, and the key gets the policy's limits.
    let fields = hidden_fields(&forged.html);
    let mut form = post("90d", "read-only");
    form.retain(|(name, _)| !fields.iter().any(|(n, _)| n == name));
    form.extend(fields);
    let approved = browser.post(&format!("{}/oauth/authorize", server.url), &form).await;
    assert_eq!(approved.status, 303, "{}", approved.html);
    let code = query_of(&approved.location.expect("redirect"))["code"].clone();
    let (status, token) =
        crate::oauth::redeem_code(&server, &code, REDIRECT, &client_id, &verifier).await;
    assert_eq!(status, 200, "{token}");
    let keys = owner.list_keys("acme", "").await;
    let key = keys["keys"]
        .as_array()
        .expect("present")
        .iter()
        .find(|k| k["oauth_client"].is_object())
        .cloned();
    let key = key.expect("the consent's key");
    assert_eq!(key["access"], "read-only");
    assert!(
        key["scopes"]["tools"].as_array().expect("present").contains(&json!("search")),
        "{key}"
    );
    assert!(key.get("blocked").is_none(), "{key}");
}

/// A policy that blocks more keys than `policy set` lists counts them all and prints the command
/// that lists every one; that command, run as printed, does.
#[tokio::test]
async fn a_policy_blocking_more_keys_than_are_listed_counts_them_and_names_the_way_to_all() {
    let server = TestServer::start().await;
    let owner = server.owner();
    for n in 0..103 {
        owner
            .create_key_in("acme", json!({"name": format!("forever {n}"), "expires": "never"}))
            .await;
    }
    let env = TestEnv::new();
    let set = env.admin(&server, &["policy", "set", "--max-expiry", "90d"]).await;
    assert_eq!(set.code, 0, "{}", set.stderr);
    assert!(set.stderr.contains("103 active keys are now blocked"), "{}", set.stderr);
    let listed = set.stderr.lines().filter(|line| line.contains("breaks max-expiry")).count();
    assert_eq!(listed, 100, "{}", set.stderr);
    let review = set
        .stderr
        .lines()
        .find_map(|line| line.split("… and 3 more: `").nth(1))
        .and_then(|rest| rest.split('`').next())
        .unwrap_or_else(|| panic!("the way to see every one in {}", set.stderr));
    let words = shell_words(review);
    assert_eq!(words[0], "custory-mcp");
    let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
    let run = env.admin(&server, &args).await;
    assert_eq!(run.code, 0, "{review}: {}", run.stderr);
    let blocked = run.stdout.lines().filter(|line| line.contains("max-expiry")).count();
    assert_eq!(blocked, 103, "{}", run.stdout);
    let json = env.admin_json(&server, &["policy", "set", "--max-expiry", "30d"]).await;
    assert_eq!(json["blocked_total"], 103, "{json}");
}
