//! Key hygiene as a user meets it: shared, stale, never-used, expiring and read-write-but-only-
//! read keys made for real (two clients on one key, keys aged by the test clock), flagged in
//! `keys list`, settled in bulk by `keys revoke --unused-for`, and summed up by `keys review`.

use chrono::Duration;
use serde_json::{Value, json};

use crate::common::{
    BIN, Key, Terminal, TestEnv, TestServer, initialize_body, rpc, run_piped, tool_call,
};

/// One MCP request with `key`, as the client `client` (initialize names it), and the tool
/// call's answer if one was asked for.
async fn use_key(key: &Key, client: &str, tool: Option<(&str, Value)>) -> Value {
    let mut hello = initialize_body();
    hello["params"]["clientInfo"] = json!({"name": client, "version": "1"});
    key.post(&hello).expect(200).await;
    if let Some((name, arguments)) = tool {
        let reply = key.send(&tool_call(2, name, arguments)).await.json();
        assert_eq!(reply["result"]["isError"], false, "{reply}");
        return reply;
    }
    Value::Null
}

fn flags(keys: &Value, name: &str) -> Vec<String> {
    let key = keys["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["name"] == name)
        .unwrap_or_else(|| panic!("no key {name}: {keys}"));
    key["flags"].as_array().expect("flags").iter().map(|f| f.as_str().expect("f").into()).collect()
}

fn names(keys: &Value, list: &str) -> Vec<String> {
    keys[list]
        .as_array()
        .expect(list)
        .iter()
        .map(|k| k["name"].as_str().expect("n").into())
        .collect()
}

#[tokio::test]
async fn each_mistake_is_flagged_reviewed_and_settled() {
    let server = TestServer::start().await;
    let env = TestEnv::new();
    let clock = server.store.clock();
    let owner = server.owner();
    let shared = owner.create_key("Shared", "90d", "read-only").await;
    let reader = owner.create_key("Reader", "90d", "read-write").await;
    let writer = owner.create_key("Writer", "90d", "read-write").await;
    owner.create_key("Idle", "never", "read-write").await;
    let old = owner.create_key("Old", "never", "read-only").await;
    use_key(&old, "cursor", Some(("list_journeys", json!({})))).await;

    // A week later: a 30-day key, a key that only reads, a key that writes.
    clock.advance(Duration::days(7));
    let expiring = owner.create_key("Expiring", "30d", "read-only").await;
    use_key(&expiring, "zed", None).await;
    use_key(&reader, "codex", Some(("list_journeys", json!({})))).await;
    let journey = json!({"journey": "trial-to-paid"});
    let reply = use_key(&writer, "claude-code", Some(("get_journey", journey))).await;
    let step = &reply["result"]["structuredContent"]["stages"][0]["steps"][0]["id"];
    let item = json!({"step_id": step, "kind": "insight", "title": "Written"});
    use_key(&writer, "claude-code", Some(("create_item", item))).await;

    // 24 days on (31 since the start): one key, two clients, today.
    clock.advance(Duration::days(24));
    use_key(&shared, "cursor", Some(("list_journeys", json!({})))).await;
    clock.advance(Duration::seconds(1)); // first seen in different seconds: listed by name
    use_key(&shared, "claude-code", None).await;

    let keys = env.admin_json(&server, &["keys", "list"]).await;
    assert_eq!(flags(&keys, "Shared"), ["shared"]);
    assert_eq!(flags(&keys, "Old"), ["stale"], "unused for 31 days");
    assert_eq!(flags(&keys, "Idle"), ["stale", "never-used"]);
    assert_eq!(flags(&keys, "Expiring"), ["expires-soon"], "in 6 days");
    assert_eq!(flags(&keys, "Reader"), ["never-wrote"]);
    assert!(flags(&keys, "Writer").is_empty());
    let listed = env.admin_json(&server, &["keys", "list", "--shared"]).await;
    assert_eq!(names(&listed, "keys"), ["Shared"]);
    assert_eq!(listed["keys"][0]["shared"]["clients"], json!(["claude-code", "cursor"]));
    assert_eq!(listed["keys"][0]["shared"]["addresses"], json!(["127.0.0.1"]));
    let mut wide = env.command();
    wide.env("CUSTORY_SERVER", &server.url).env("CUSTORY_OWNER_TOKEN", &server.owner_token);
    wide.env("COLUMNS", "200").args(["keys", "list"]);
    let table = run_piped(wide, None).await.stdout;
    let row = |name: &str| table.lines().find(|l| l.starts_with(name)).expect("row").to_owned();
    assert!(row("Shared").ends_with("active (shared)"), "{table}");
    assert!(row("Idle").ends_with("active (never used)"), "{table}");
    assert!(row("Old").ends_with("active (stale)"), "{table}");
    let shown = env.admin(&server, &["keys", "show", "Shared"]).await.stdout;
    let line = shown.lines().find(|l| l.starts_with("Shared ")).expect("Shared line");
    assert!(line.contains("used by 2 clients and from 1 address in 7 days"), "{shown}");

    // The review, as a person reads it.
    let review = env.admin(&server, &["keys", "review"]).await;
    insta::assert_snapshot!("keys_review", review.snapshot(&server.url));
    let review = env.admin_json(&server, &["keys", "review"]).await;
    let found: Vec<(String, String)> = review["workspaces"][0]["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (f["key"]["name"].as_str().expect("n").into(), f["flag"].as_str().expect("f").into())
        })
        .collect();
    let expected = [
        ("Expiring", "expires-soon"),
        ("Old", "stale"),
        ("Idle", "never-used"),
        ("Reader", "never-wrote"),
        ("Shared", "shared"),
    ];
    assert_eq!(found, expected.map(|(k, f)| (k.to_owned(), f.to_owned())));
    // Each fix is a command a shell runs as printed: the one for "Expiring" rotates it.
    let fix = review["workspaces"][0]["findings"][0]["fix"].as_str().expect("fix");
    let line = format!("{} --yes", fix.replacen("custory-mcp", BIN, 1));
    let mut shell = tokio::process::Command::new("sh");
    shell.env_clear();
    for (name, value) in env.command().as_std().get_envs() {
        if let Some(value) = value {
            shell.env(name, value);
        }
    }
    shell.env("CUSTORY_SERVER", &server.url).env("CUSTORY_OWNER_TOKEN", &server.owner_token);
    shell.args(["-c", &line]).kill_on_drop(true);
    let ran = run_piped(shell, None).await;
    assert_eq!(ran.code, 0, "{line}: {}", ran.stderr);
    let after = env.admin_json(&server, &["keys", "list"]).await;
    let expiring: Vec<&Value> = after["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter(|k| k["name"] == "Expiring")
        .collect();
    let statuses: Vec<&str> = expiring.iter().map(|k| k["status"].as_str().expect("s")).collect();
    assert_eq!(statuses, ["active", "revoked"], "rotated: a new key, the old one revoked");
    assert!(expiring[0]["flags"].as_array().expect("flags").is_empty());

    // Bulk revoke: a dry run changes nothing; without a terminal it needs --yes.
    let dry =
        env.admin_json(&server, &["keys", "revoke", "--unused-for", "30d", "--dry-run"]).await;
    assert_eq!(names(&dry, "would_revoke"), ["Old", "Idle"]);
    assert_eq!(dry["revoked"], json!([]));
    let never = env.admin_json(&server, &["keys", "revoke", "--never-used", "--dry-run"]).await;
    assert_eq!(names(&never, "would_revoke"), ["Idle"]);
    let refused = env.admin(&server, &["keys", "revoke", "--unused-for", "30d"]).await;
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("pass --yes"), "{}", refused.stderr);
    let bad = env.admin(&server, &["keys", "revoke", "--dry-run", "Old"]).await;
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    let still = env.admin_json(&server, &["keys", "list", "--status", "active"]).await;
    assert_eq!(still["keys"].as_array().expect("keys").len(), 6, "nothing was revoked");

    // On a terminal it shows the list and asks.
    let command = format!(
        "env -i HOME={home} CUSTORY_CONFIG_DIR={config} CUSTORY_CREDENTIAL_STORE=file \
         CUSTORY_SERVER={url} CUSTORY_OWNER_TOKEN={owner} TERM=xterm NO_COLOR=1 {BIN} \
         keys revoke --never-used",
        home = env.home.path().display(),
        config = env.config_dir().display(),
        url = server.url,
        owner = server.owner_token,
    );
    tokio::task::spawn_blocking(move || {
        let t = Terminal::start(&command);
        let screen = t.wait_for("Clients using it stop working at once");
        assert!(screen.contains("Idle") && !screen.contains("Old "), "{screen}");
        t.keys(&["y"]);
        let screen = t.wait_for("EXIT=0");
        assert!(screen.contains("Revoked 1 key in acme"), "{screen}");
    })
    .await
    .expect("terminal session");
    let done = env.admin_json(&server, &["keys", "revoke", "--unused-for", "30d", "--yes"]).await;
    assert_eq!(names(&done, "revoked"), ["Old"]);
    assert_eq!(done["revoked"][0]["status"], "revoked");
    let audit = env.admin_json(&server, &["audit"]).await;
    let revoked: Vec<&str> = audit["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == "key.revoked")
        .map(|e| e["detail"].as_str().expect("detail"))
        .collect();
    assert_eq!(revoked.len(), 2, "one event per key: {revoked:?}");
    let nothing = env.admin(&server, &["keys", "revoke", "--unused-for", "30d", "--yes"]).await;
    assert_eq!(nothing.code, 0);
    assert!(nothing.stderr.contains("nothing to revoke"), "{}", nothing.stderr);
    server.stop().await;
}

#[tokio::test]
async fn keys_create_on_a_terminal_offers_to_store_the_token() {
    let server = TestServer::start().await;
    let env = TestEnv::new();
    let command = |args: &str| {
        format!(
            "env -i HOME={home} CUSTORY_CONFIG_DIR={config} CUSTORY_CREDENTIAL_STORE=file \
             CUSTORY_SERVER={url} CUSTORY_OWNER_TOKEN={owner} TERM=xterm NO_COLOR=1 {BIN} {args}",
            home = env.home.path().display(),
            config = env.config_dir().display(),
            url = server.url,
            owner = server.owner_token,
        )
    };
    let into_cursor = command("keys create --name Laptop --expires 30d");
    let into_keyring = command("keys create --name Desktop --expires 30d");
    tokio::task::spawn_blocking(move || {
        // Straight into Cursor's config.
        let t = Terminal::start(&into_cursor);
        t.wait_for("Store the token now?");
        t.keys(&["Enter"]);
        t.wait_for("Which client?");
        t.keys(&["Enter"]);
        t.wait_for("Write ");
        t.keys(&["y"]);
        let screen = t.wait_for("EXIT=");
        assert!(screen.contains("EXIT=0"), "{screen}");
        drop(t);
        // Into the keyring, for `config --key` later.
        let t = Terminal::start(&into_keyring);
        t.wait_for("Store the token now?");
        t.keys(&["Down"]);
        t.wait_for("❯ Save it in the keyring");
        t.keys(&["Enter"]);
        let screen = t.wait_for("EXIT=");
        assert!(screen.contains("EXIT=0") && screen.contains("Saved to"), "{screen}");
    })
    .await
    .expect("terminal session");

    let keys = env.admin_json(&server, &["keys", "list"]).await;
    let prefix = |name: &str| {
        keys["keys"].as_array().expect("keys").iter().find(|k| k["name"] == name).expect("key")
            ["prefix"]
            .as_str()
            .expect("prefix")
            .to_owned()
    };
    // Cursor's file holds the Laptop key's token, and that token works.
    let cursor = std::fs::read_to_string(env.home.path().join(".cursor/mcp.json")).expect("file");
    let config: Value = serde_json::from_str(&cursor).expect("json");
    let header = config["mcpServers"]["custory"]["headers"]["Authorization"]
        .as_str()
        .expect("header")
        .to_owned();
    let token = header.strip_prefix("Bearer ").expect("bearer");
    assert!(token.starts_with(&prefix("Laptop")), "{cursor}");
    server.key(token).post(&rpc(1, "tools/list", json!({}))).expect(200).await;
    // The Desktop key's token was saved: `config --key` finds it.
    let out = env.admin(&server, &["config", "zed", "--key", "Desktop"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains(&prefix("Desktop")), "{}", out.stdout);
    // Without a terminal nothing is offered: the token alone on stdout.
    let piped = env.admin(&server, &["keys", "create", "--name", "CI", "--expires", "30d"]).await;
    assert_eq!(piped.code, 0);
    assert_eq!(piped.stdout.trim().len(), 42, "{}", piped.stdout);
    assert!(!piped.stderr.contains("Store the token now?"));
    server.stop().await;
}

/// The connection check is not a client: create, `test --key`, then one real client, and the
/// key is not shared (nor is the real client "new" next to the check); the check still shows
/// as the key's last client right after it ran.
#[tokio::test]
async fn the_connection_check_is_not_a_client() {
    let server = TestServer::start().await;
    let env = TestEnv::new();
    let args = ["keys", "create", "--name", "Cursor", "--expires", "30d", "--save"];
    let created = env.admin(&server, &args).await;
    assert_eq!(created.code, 0, "{}", created.stderr);
    let tested = env.admin(&server, &["test", "--key", "Cursor"]).await;
    assert_eq!(tested.code, 0, "{}", tested.stderr);
    let keys = env.admin_json(&server, &["keys", "list"]).await;
    let client = keys["keys"][0]["last_used_client"].as_str().unwrap_or_default();
    assert!(client.starts_with("custory-mcp-test"), "the check is visible: {keys}");

    let key = server.key(created.stdout.trim());
    use_key(&key, "cursor", Some(("list_journeys", json!({})))).await;
    let keys = env.admin_json(&server, &["keys", "list"]).await;
    assert!(flags(&keys, "Cursor").is_empty(), "{keys}");
    let shared = env.admin_json(&server, &["keys", "list", "--shared"]).await;
    assert!(names(&shared, "keys").is_empty(), "{shared}");
    let review = env.admin_json(&server, &["keys", "review"]).await;
    assert_eq!(review["workspaces"][0]["findings"], json!([]), "{review}");
    let shown = env.admin_json(&server, &["keys", "show", "Cursor"]).await;
    let clients: Vec<&str> = shown["usage"]["origins"]
        .as_array()
        .expect("origins")
        .iter()
        .filter(|o| o["kind"] == "client")
        .map(|o| o["value"].as_str().expect("value"))
        .collect();
    assert_eq!(clients, ["cursor"], "{shown}");

    // A second real client does make it shared.
    use_key(&key, "claude-code", None).await;
    let keys = env.admin_json(&server, &["keys", "list"]).await;
    assert_eq!(flags(&keys, "Cursor"), ["shared"], "{keys}");
    server.stop().await;
}
