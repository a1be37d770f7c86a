//! Tables as a person reads them on a real terminal (tmux) at 60, 80 and 200 columns: a name,
//! a prefix or a command is never cut or wrapped; the less useful columns give way first (as
//! `gh` does) and free text is cut with `…`. `keys list` shows the active keys and says how many
//! others there are and how to see them.

use chrono::Duration;
use serde_json::json;

use crate::common::{Terminal, TestEnv, TestServer, initialize_body, tool_call};

const NAMES: [&str; 3] = ["Cursor on MacBook Pro", "Claude Code on the CI runner", "ci"];

/// The header of the first table on `screen`, split into its column names.
fn header(screen: &str) -> Vec<String> {
    let line = screen.lines().find(|l| l.starts_with("NAME")).expect("a header");
    line.split("  ").map(str::trim).filter(|h| !h.is_empty()).map(str::to_owned).collect()
}

#[tokio::test]
async fn keys_list_never_splits_a_name_or_a_prefix_at_60_80_or_200_columns() {
    let server = TestServer::start().await;
    let env = TestEnv::new();
    let owner = server.owner();
    let mut keys = Vec::new();
    for (name, expires) in NAMES.iter().zip(["30d", "90d", "never"]) {
        keys.push(owner.create_key(name, expires, "read-write").await);
    }
    let old = owner.create_key("Old laptop", "30d", "read-write").await;
    owner.revoke(old.id()).await;
    // A use by a named client: "LAST USED" holds free text.
    let mut hello = initialize_body();
    hello["params"]["clientInfo"] = json!({"name": "Cursor", "version": "2.1.0"});
    keys[0].post(&hello).expect(200).await;

    let all = ["NAME", "PREFIX", "ACCESS", "CREATED", "LAST USED", "EXPIRES", "STATUS"];
    let expected: [(u16, &[&str]); 3] = [
        (200, &all),
        // Created and access give way first, then the last use is cut, then left out.
        (80, &["NAME", "PREFIX", "LAST USED", "EXPIRES", "STATUS"]),
        (60, &["NAME", "PREFIX", "STATUS"]),
    ];
    for (width, columns) in expected {
        let script = env.terminal_script(&server, "custory-mcp keys list");
        let screen = tokio::task::spawn_blocking(move || {
            Terminal::start_sized(&script, width, 20).wait_for("EXIT=")
        })
        .await
        .expect("terminal session");
        assert!(screen.contains("EXIT=0"), "{width}:\n{screen}");
        assert_eq!(header(&screen), columns, "{width}:\n{screen}");
        for key in &keys {
            let (name, prefix) = (key.info["name"].as_str(), key.info["prefix"].as_str());
            let (name, prefix) = (name.expect("name"), prefix.expect("prefix"));
            assert!(
                screen.lines().any(|l| l.starts_with(name) && l.contains(prefix)),
                "{width}: {name} {prefix} on one line:\n{screen}"
            );
        }
        // Active keys by default; the revoked one is counted, with the command that shows it.
        assert!(!screen.contains("Old laptop"), "{width}:\n{screen}");
        assert!(screen.contains("Not shown: 1 revoked key"), "{width}:\n{screen}");
    }
    let all = env.admin(&server, &["keys", "list", "--status", "all"]).await;
    assert!(
        all.stdout.contains("Old laptop") && !all.stderr.contains("Not shown"),
        "{}",
        all.stderr
    );
    // --json lists every key, as it always has.
    let listed = env.admin_json(&server, &["keys", "list"]).await;
    assert_eq!(listed["keys"].as_array().expect("keys").len(), 4, "{listed}");
    // A page of one: "1 key".
    let one = env.admin(&server, &["keys", "list", "--limit", "1"]).await;
    assert!(one.stderr.contains("Showing the newest 1 key; there are more"), "{}", one.stderr);
    server.stop().await;
}

#[tokio::test]
async fn audit_usage_and_review_keep_names_prefixes_and_commands_whole_at_80_columns() {
    let server = TestServer::start().await;
    let env = TestEnv::new();
    let owner = server.owner();
    let busy = owner.create_key(NAMES[1], "90d", "read-write").await;
    let idle = owner.create_key(NAMES[0], "never", "read-write").await;
    busy.post(&initialize_body()).expect(200).await;
    for id in 2..5 {
        busy.post(&tool_call(id, "list_journeys", json!({}))).expect(200).await;
    }
    // A week and a day on, the idle key was never used: `keys review` flags it.
    server.store.clock().advance(Duration::days(8));
    let script = env.terminal_script(
        &server,
        "custory-mcp audit\necho '== usage'\ncustory-mcp audit --usage\necho '== review'\n\
         custory-mcp keys review\n",
    );
    let screen = tokio::task::spawn_blocking(move || {
        Terminal::start_sized(&script, 80, 60).wait_for("EXIT=")
    })
    .await
    .expect("terminal session");
    assert!(screen.contains("EXIT=0"), "{screen}");
    let (audit, rest) = screen.split_once("== usage").expect("usage");
    let (usage, review) = rest.split_once("== review").expect("review");
    let prefix = |key: &crate::common::Key| key.info["prefix"].as_str().expect("prefix").to_owned();
    // The audit trail: each key's prefix whole on its row; the detail whole, wrapped.
    for key in [&busy, &idle] {
        let created = audit.lines().find(|l| l.contains("key.created") && l.contains(&prefix(key)));
        assert!(created.is_some(), "{}:\n{audit}", prefix(key));
    }
    assert!(!audit.contains('…'), "{audit}");
    let continued = audit.lines().filter(|l| l.starts_with("          ")).count();
    assert!(continued > 0, "no detail was long enough to wrap:\n{audit}");
    // Usage: the key as "name (prefix)", whole.
    let named = format!("{} ({})", NAMES[1], prefix(&busy));
    assert!(usage.lines().any(|l| l.starts_with(&named)), "{usage}");
    // The review: the key whole, then the command that settles it whole on a line of its own.
    let idle_named = format!("{} ({})", NAMES[0], prefix(&idle));
    assert!(review.lines().any(|l| l.starts_with(&idle_named)), "{review}");
    let revoke = format!("  custory-mcp keys revoke {}", prefix(&idle));
    assert!(review.lines().any(|l| l == revoke), "{review}");
    server.stop().await;
}

#[tokio::test]
async fn keys_show_wraps_a_long_value_under_itself_at_80_columns() {
    let server = TestServer::start().await;
    let env = TestEnv::new();
    let owner = server.owner();
    let tools = ["search", "get_item", "add_comment", "list_items", "get_journey", "list_personas"];
    let body = json!({
        "name": "Scoped", "expires": "30d", "tools": tools,
        "journeys": ["trial-to-paid", "support-escalation"],
        "allow_ip": ["127.0.0.0/8", "::1/128", "10.0.0.0/8", "192.168.0.0/16"],
    });
    owner.create_key_in("acme", body).await;
    let script = env.terminal_script(&server, "custory-mcp keys show Scoped");
    let screen = tokio::task::spawn_blocking(move || {
        Terminal::start_sized(&script, 80, 60).wait_for("EXIT=")
    })
    .await
    .expect("terminal session");
    assert!(screen.contains("EXIT=0"), "{screen}");
    // The limits go on over several lines, each under the value, none past the edge (a line
    // the terminal wrapped would start at the left edge instead).
    let at = screen.lines().position(|l| l.starts_with("Limited to")).expect("Limited to");
    let rest: Vec<&str> = screen.lines().skip(at + 1).take_while(|l| l.starts_with(' ')).collect();
    assert!(!rest.is_empty(), "{screen}");
    assert!(rest.iter().all(|l| l.starts_with(&" ".repeat(14))), "{screen}");
    let limits: String = std::iter::once(&screen.lines().nth(at).expect("line")[14..])
        .chain(rest.iter().map(|l| l.trim_start()))
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        limits.contains("addresses: 127.0.0.0/8, ::1/128, 10.0.0.0/8, 192.168.0.0/16"),
        "{limits}"
    );
    server.stop().await;
}
