//! Hostile names and text, through the admin API, the CLI and the tools: control characters
//! and bidi overrides refused or escaped wherever a person reads them; SQL metacharacters, LIKE
//! wildcards and full-text syntax kept as plain text, never widening a search or a filter.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::wellformed::checked_call;
use super::{cli, error_text};
use crate::common::{Owner, TestEnv, TestServer, initialize_body};

/// `keys create` through the admin API; returns the status and body.
async fn create_key_named(owner: &Owner, name: &str) -> (u16, Value) {
    let key = json!({"name": name, "expires": "30d"});
    let reply = owner.post("/workspaces/acme/mcp-keys").json(&key).send().await;
    (reply.status, reply.json())
}

#[tokio::test]
async fn hostile_key_names_are_refused_or_kept_verbatim() {
    let server = TestServer::start().await;
    let env = TestEnv::new();
    let url = server.url.clone();
    let admin = server.owner();
    let owner = [("CUSTORY_OWNER_TOKEN", admin.token()), ("CUSTORY_WORKSPACE", "acme")];
    let mut count = 0;

    // Control characters, C1 controls included, and 10 KB names: 422 from the API, and a usage
    // error (exit 2, one line, a hint) from the CLI before anything is sent.
    let ten_kb = "n".repeat(10 * 1024);
    for name in [
        "line\nbreak",
        "carriage\rreturn",
        "tab\there",
        "escape\u{1b}[31mred",
        "nul\u{0}byte",
        "delete\u{7f}here",
        "next\u{85}line",
        "c1 csi\u{9b}31m",
        "\u{1b}]8;;http://evil.example\u{7}link",
        &ten_kb,
    ] {
        let (status, body) = create_key_named(&admin, name).await;
        count += 1;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (422, Some("invalid_name")),
            "{name:?}"
        );
        if name.contains('\0') {
            continue; // not expressible as a command-line argument
        }
        let ran =
            cli(&env, &url, &["keys", "create", "--name", name, "--expires", "30d"], &owner, "")
                .await;
        count += 1;
        assert_eq!(ran.code, 2, "{name:?}: {}", ran.stderr);
        assert!(ran.stdout.is_empty(), "{name:?}");
        assert!(ran.stderr.starts_with("error: name "), "{name:?}: {}", ran.stderr);
        assert!(ran.stderr.contains("hint: "), "{name:?}: {}", ran.stderr);
    }

    // SQL metacharacters and LIKE wildcards are data: stored and returned exactly, and the
    // tables are intact.
    let sql_names = [
        "'; DROP TABLE mcp_keys;--",
        "Robert'); DROP TABLE workspaces;--",
        "\" OR \"\"=\"",
        "100% _real_ \\ name",
    ];
    for name in sql_names {
        let (status, body) = create_key_named(&admin, name).await;
        count += 1;
        assert_eq!(status, 201, "{name:?}: {body}");
        assert_eq!(body["key"]["name"], name);
        let id = body["key"]["id"].as_str().expect("id");
        let fetched = admin.show_key(id).await;
        assert_eq!(fetched["key"]["name"], name);
    }
    // Workspace names follow the same rule.
    for (name, status) in [
        ("Evil\u{1b}[2J", 422),
        ("Tab\tname", 422),
        (&ten_kb as &str, 422),
        ("'; DROP TABLE workspaces;--", 201),
    ] {
        let body = admin.post("/workspaces").json(&json!({"name": name})).expect(status).await;
        count += 1;
        if status == 201 {
            assert_eq!(body["workspace"]["name"], name);
            assert_eq!(body["workspace"]["slug"], "drop-table-workspaces");
        }
    }
    let sql = "' OR '1'='1";
    let ran =
        cli(&env, &url, &["keys", "create", "--name", sql, "--expires", "never"], &owner, "").await;
    count += 1;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let shown = cli(&env, &url, &["--json", "keys", "show", sql], &owner, "").await;
    count += 1;
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    let shown: Value = serde_json::from_str(&shown.stdout).expect("json");
    assert_eq!(shown["key"]["name"], sql);
    let listed = cli(&env, &url, &["--json", "keys", "list"], &owner, "").await;
    let listed: Value = serde_json::from_str(&listed.stdout).expect("json");
    let names: BTreeSet<&str> = listed["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["name"].as_str())
        .collect();
    let expected: BTreeSet<&str> = sql_names.iter().copied().chain([sql]).collect();
    assert_eq!(names, expected, "every key is there, nothing else");
    for path in ["/workspaces/acme/mcp-keys/' OR '1'='1", "/workspaces/acme' OR '1'='1/mcp-keys"] {
        admin.get(path).expect(404).await;
        count += 1;
    }
    server.store.integrity_check().expect("intact");

    // Right-to-left override (U+202E) and the other bidi controls are not control characters
    // (char::is_control is false), but they make a name display as something else in a
    // terminal: the API refuses them like control characters.
    let rlo = "Cursor\u{202e}txt.exe";
    let (status, body) = create_key_named(&admin, rlo).await;
    count += 1;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid_name");

    // The client name an MCP client reports at initialize is shown to the admin (Last used,
    // Last client): control characters and bidi overrides are dropped.
    let agent = admin.create_key("Agent", "30d", "read-write").await;
    let mut hello = initialize_body();
    hello["params"]["clientInfo"] =
        json!({"name": "Cursor\u{202e}gnp.exe\u{1b}[2J", "version": "1.0\u{9b}31m\u{7}"});
    agent.post(&hello).expect(200).await;
    count += 1;
    let shown = cli(&env, &url, &["--json", "keys", "show", "Agent"], &owner, "").await;
    let shown: Value = serde_json::from_str(&shown.stdout).expect("json");
    let client = shown["key"]["last_used_client"].as_str().expect("client").to_owned();
    assert!(!client.chars().any(char::is_control), "{client:?}");
    for args in [&["keys", "list"][..], &["keys", "show", "Agent"][..]] {
        let ran = cli(&env, &url, args, &owner, "").await;
        count += 1;
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        assert!(!ran.stdout.contains(['\u{1b}', '\u{9b}', '\u{7}']), "{args:?}: {:?}", ran.stdout);
        assert!(!ran.stdout.contains('\u{202e}'), "{args:?}: {:?}", ran.stdout);
    }
    // Agent-written titles reach the admin through `audit`, Debug-quoted: escaped there.
    let tree = agent.ok("get_journey", json!({"journey": "trial-to-paid"})).await;
    let step = tree["stages"][0]["steps"][0]["id"].clone();
    let title = "Invoice\u{202e}fdp.exe";
    agent.ok("create_item", json!({"step_id": step, "kind": "insight", "title": title})).await;
    // A terminal wide enough for the whole detail (a narrower one cuts it with "…").
    let wide = [owner[0], owner[1], ("COLUMNS", "400")];
    let audit = cli(&env, &url, &["audit"], &wide, "").await;
    count += 2;
    assert_eq!(audit.code, 0, "{}", audit.stderr);
    assert!(audit.stdout.contains("Invoice\\u{202e}fdp.exe"), "{}", audit.stdout);
    eprintln!("security corpus: hostile names: {count} requests and commands");
    server.stop().await;
}

#[tokio::test]
async fn sql_metacharacters_and_like_wildcards_are_plain_text_to_the_tools() {
    let server = TestServer::start().await;
    let key = server.owner().create_key("Tools", "never", "read-write").await;
    let journey = key.ok("get_journey", json!({"journey": "trial-to-paid"})).await;
    let step = journey["stages"][0]["steps"][0]["id"].as_str().expect("step").to_owned();
    let all = key.ok("list_items", json!({"limit": 200})).await;
    let total_items = all["items"].as_array().expect("items").len();
    assert!(total_items >= 20);

    // Punctuation separates words in a search: a query of wildcard or query-syntax characters
    // alone has no words and is refused with a sentence; it never matches everything.
    for nothing in ["%", "_", "\\", "%%", "%_%", "*", "\"", "()", "'--", ":"] {
        let result = checked_call(&key, "search", json!({"query": nothing})).await;
        assert!(error_text(&result).contains("no words"), "{nothing:?}: {result}");
    }

    let hostile = [
        ("qqpct 5% lift", "'; DROP TABLE items;--"),
        ("qqund snake_case", "Robert'); DELETE FROM comments;--"),
        ("qqbsl back\\slash", "\" OR \"\"=\" \\' %_"),
    ];
    let mut ids = Vec::new();
    for (title, description) in hostile {
        let created = key.ok(
            "create_item",
            json!({"step_id": step, "kind": "insight", "title": title, "description": description,
                   "owner": "O'Brien; DROP TABLE items", "fields": {"segment": "%' OR 1=1 --"}}),
        )
        .await;
        assert_eq!(created["title"], title);
        assert_eq!(created["description"], description);
        assert_eq!(created["fields"]["segment"], "%' OR 1=1 --");
        ids.push(created["id"].as_str().expect("id").to_owned());
    }
    // Decoys that a wildcard would match.
    for title in ["qqpct 5X lift", "qqund snakeXcase", "qqbsl backXslash"] {
        key.ok("create_item", json!({"step_id": step, "kind": "insight", "title": title})).await;
    }
    let comment = key.ok(
        "add_comment",
        json!({"item_id": ids[0], "body": "'); DELETE FROM comments; --", "author": "\" OR 1=1 --"}),
    )
    .await;
    assert_eq!(comment["comment"]["body"], "'); DELETE FROM comments; --");
    assert_eq!(comment["comment"]["author"], "\" OR 1=1 --");
    let item = key.ok("get_item", json!({"item_id": ids[0]})).await;
    assert_eq!(item["comments"][0]["body"], "'); DELETE FROM comments; --");
    assert_eq!(item["owner"], "O'Brien; DROP TABLE items");

    let search = async |query: &str| -> Vec<String> {
        let hits = key.ok("search", json!({"query": query})).await;
        hits["hits"]
            .as_array()
            .expect("hits")
            .iter()
            .map(|h| h["id"].as_str().expect("id").to_owned())
            .collect()
    };
    // Search words are literal words: neither SQL nor the full-text index's own syntax (OR,
    // NOT, NEAR, quotes, `*`, column filters) can widen a search past what every word matches.
    let mut hostile_ids = ids.clone();
    hostile_ids.sort();
    let mut found = search("DROP TABLE items").await;
    found.sort();
    assert_eq!(found, hostile_ids, "the words are in each hostile item's text (the owner)");
    for widening in [
        "qqpct zzznothere",
        "qqpct OR zzznothere",
        "qqpct) OR (zzznothere",
        "zzznothere' OR '1'='1",
        "zzznothere\" OR \"",
        "zzznothere*",
        "NEAR(qqpct zzznothere)",
        "title:zzznothere",
        "zzznothere; DROP TABLE items",
    ] {
        assert_eq!(search(widening).await, Vec::<String>::new(), "{widening:?}");
    }
    // A word matches as a word or (from three letters) the start of one, whatever surrounds it.
    assert_eq!(search("qqpct 5").await, vec![ids[0].clone()], "5 is a whole word, 5X is not");
    assert_eq!(search("qqund snake").await.len(), 2, "snake_case and snakeXcase both start so");
    assert_eq!(search("qqund snake_case").await, vec![ids[1].clone()], "snake and case");
    // Owner filters are exact: a wildcard owner matches no one.
    for owner in ["%", "_%", "' OR '1'='1", "O'Brien%"] {
        let listed = key.ok("list_items", json!({"owner": owner})).await;
        assert_eq!(listed["items"], json!([]), "owner {owner:?}");
    }
    let listed = key.ok("list_items", json!({"owner": "o'brien; drop table items"})).await;
    assert_eq!(listed["items"].as_array().expect("items").len(), 3, "exact, case-insensitive");
    // Over-long text is refused with a sentence, not truncated or stored.
    let ten_kb = "t".repeat(10 * 1024);
    for (tool, args) in [
        ("create_item", json!({"step_id": step, "kind": "insight", "title": ten_kb})),
        ("search", json!({"query": ten_kb})),
        ("add_comment", json!({"item_id": ids[0], "body": "b".repeat(100_000)})),
        ("update_item", json!({"item_id": ids[0], "owner": ten_kb})),
    ] {
        let result = checked_call(&key, tool, args).await;
        assert!(error_text(&result).contains("too long"), "{tool}: {result}");
    }
    // Nothing was dropped or deleted.
    let all = key.ok("list_items", json!({"limit": 200})).await;
    assert_eq!(all["items"].as_array().expect("items").len(), total_items + 6);
    server.store.integrity_check().expect("intact");
    server.stop().await;
}
