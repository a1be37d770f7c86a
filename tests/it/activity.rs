//! What a key did: every call recorded (reads included) with the ids it touched, its outcome and
//! size; hourly totals per key; `key.new_origin` the first time a key is seen from a new
//! address or client; retention. Driven over HTTP from two loopback addresses, read back with
//! the real binary.

use std::net::IpAddr;

use serde_json::{Value, json};

use crate::common::{Key, TestEnv, TestServer, initialize_body, run_piped, tool_call};

/// `key` connecting from `from` (any 127.0.0.0/8 address reaches a loopback server).
fn from(key: &Key, from: &str) -> Key {
    let from: IpAddr = from.parse().expect("address");
    let client = reqwest::Client::builder().local_address(from).build().expect("client");
    key.clone().with_client(client)
}

/// The details of the `key.new_origin` events in an `audit --json` trail, newest first.
fn new_origins(trail: &Value) -> Vec<String> {
    trail["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == "key.new_origin")
        .map(|e| e["detail"].as_str().expect("detail").to_owned())
        .collect()
}

#[tokio::test]
async fn every_call_is_recorded_and_a_new_address_or_client_is_an_event() {
    let server = TestServer::start().await;
    let env = TestEnv::new();
    let key = server.owner().create_key("Agent", "30d", "read-write").await;
    let key_id = key.id().to_owned();
    let here = from(&key, "127.0.0.1");

    // A client names itself, then reads: a journey, an item it found, one that does not exist,
    // a tool that does not exist, and a resource. tools/list reads nothing and is not recorded.
    let mut hello = initialize_body();
    hello["params"]["clientInfo"] = json!({"name": "probe-agent", "version": "1.0"});
    here.post(&hello).expect(200).await;
    here.post(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})).expect(200).await;
    let journey = here
        .post(&tool_call(3, "get_journey", json!({"journey": "trial-to-paid"})))
        .expect(200)
        .await;
    let journey = &journey["result"]["structuredContent"];
    let journey_id = journey["id"].as_str().expect("journey id").to_owned();
    let step = journey["stages"][0]["steps"][0]["id"].as_str().expect("step").to_owned();
    let create = json!({"step_id": step, "kind": "insight", "title": "Seen"});
    let created = here.post(&tool_call(4, "create_item", create)).expect(200).await;
    let item = created["result"]["structuredContent"]["id"].as_str().expect("item").to_owned();
    let missing = here
        .post(&tool_call(5, "get_item", json!({"item_id": "itm_Nothing000"})))
        .expect(200)
        .await;
    assert_eq!(missing["result"]["isError"], true);
    let unknown = here.post(&tool_call(6, "steal_everything", json!({}))).expect(200).await;
    assert!(unknown["error"].is_object(), "{unknown}");
    let read = json!({"jsonrpc": "2.0", "id": 7, "method": "resources/read",
                      "params": {"uri": "custory://journeys/trial-to-paid"}});
    here.post(&read).expect(200).await;

    // The key's trail, as `audit --key` shows it: each call with what it touched, newest
    // first, beside the write's own event and the first use.
    let trail = env.admin_json(&server, &["audit", "--key", "Agent"]).await;
    let events = trail["events"].as_array().expect("events");
    let calls: Vec<&Value> = events.iter().filter(|e| e["call"].is_object()).collect();
    let what: Vec<&str> = calls.iter().map(|e| e["call"]["what"].as_str().expect("what")).collect();
    assert_eq!(
        what,
        ["resources/read", "unknown", "get_item", "create_item", "get_journey"],
        "{trail:#}"
    );
    let outcomes: Vec<&str> =
        calls.iter().map(|e| e["call"]["outcome"].as_str().expect("o")).collect();
    assert_eq!(outcomes, ["ok", "refused", "error", "ok", "ok"]);
    let ids = |i: usize| -> Vec<&str> {
        calls[i]["call"]["ids"].as_array().expect("ids").iter().filter_map(Value::as_str).collect()
    };
    assert_eq!(ids(0), ["trial-to-paid"]);
    assert_eq!(ids(2), ["itm_Nothing000"]);
    assert!(ids(3).contains(&step.as_str()) && ids(3).contains(&item.as_str()), "{:?}", ids(3));
    assert!(ids(4).contains(&"trial-to-paid") && ids(4).contains(&journey_id.as_str()));
    assert!(calls[4]["call"]["bytes"].as_i64().expect("bytes") > 1000, "a whole journey");
    assert_eq!(calls[4]["call"]["ip"], "127.0.0.1");
    assert_eq!(calls[4]["kind"], "call.tool");
    assert_eq!(calls[0]["kind"], "call.resource");
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().expect("kind")).collect();
    assert!(kinds.contains(&"tool.called"), "the write's own event: {kinds:?}");
    let origins: Vec<&Value> = events.iter().filter(|e| e["kind"] == "key.new_origin").collect();
    assert_eq!(origins.len(), 1, "{kinds:?}");
    assert_eq!(origins[0]["detail"], "first used from 127.0.0.1 by probe-agent");

    // The same key from another address, by another client: one event naming both, and what
    // was seen before.
    let there = from(&key, "127.0.0.2");
    let mut other = initialize_body();
    other["params"]["clientInfo"] = json!({"name": "stranger", "version": "9"});
    there.post(&other).expect(200).await;
    there.post(&tool_call(8, "list_journeys", json!({}))).expect(200).await;
    // Again from there: known now, no new event.
    there.post(&tool_call(9, "list_journeys", json!({}))).expect(200).await;
    // The first client again, upgraded: a version is not a new client.
    hello["params"]["clientInfo"]["version"] = json!("1.1");
    here.post(&hello).expect(200).await;
    let trail = env.admin_json(&server, &["audit", "--key", key_id.as_str()]).await;
    let origins = new_origins(&trail);
    assert_eq!(
        origins,
        [
            "used from 127.0.0.2 by stranger: a new address (127.0.0.2; before: 127.0.0.1) and \
             a new client (stranger; before: probe-agent)",
            "first used from 127.0.0.1 by probe-agent",
        ]
    );
    // The workspace's own trail has the origin events without --calls, and no reads.
    let plain = env.admin_json(&server, &["audit"]).await;
    let plain = plain["events"].as_array().expect("events");
    assert!(plain.iter().all(|e| e["call"].is_null()));
    assert_eq!(plain.iter().filter(|e| e["kind"] == "key.new_origin").count(), 2);

    // Usage: the hourly totals, per key and for the key.
    let usage = env.admin_json(&server, &["audit", "--usage"]).await;
    let row = &usage["keys"][0];
    assert_eq!(row["key_name"], "Agent");
    assert_eq!(row["calls"], 7, "{usage:#}");
    assert_eq!(row["errors"], 2);
    assert_eq!(row["tools"][0], json!({"what": "list_journeys", "calls": 2}));
    let mine =
        env.admin_json(&server, &["audit", "--usage", "--key", "Agent", "--since", "24h"]).await;
    assert_eq!(mine["totals"]["calls"], 7);
    assert_eq!(mine["hours"].as_array().expect("hours").len(), 1);
    assert_eq!(mine["hours"][0]["calls"], 7);
    let addresses: Vec<&str> = mine["origins"]
        .as_array()
        .expect("origins")
        .iter()
        .filter(|o| o["kind"] == "address")
        .map(|o| o["value"].as_str().expect("value"))
        .collect();
    assert_eq!(addresses.len(), 2);
    assert!(addresses.contains(&"127.0.0.1") && addresses.contains(&"127.0.0.2"));

    // As a person reads it.
    let shown = env.admin(&server, &["keys", "show", "Agent"]).await.stdout;
    let line = |label: &str| {
        shown.lines().find(|l| l.starts_with(label)).unwrap_or_else(|| panic!("{label}: {shown}"))
    };
    assert!(line("Use, 30 days").contains("7 calls, 2 errors"), "{shown}");
    assert!(line("Use, 30 days").contains("list_journeys 2"), "{shown}");
    assert!(line("Addresses").contains("127.0.0.2 (last just now)"), "{shown}");
    assert!(line("Clients").contains("stranger") && line("Clients").contains("probe-agent"));
    let table = env.admin(&server, &["audit", "--usage"]).await.stdout;
    let header = table.lines().next().expect("header");
    assert!(header.starts_with("KEY") && header.contains("CALLS") && header.contains("BUSIEST"));
    assert!(table.lines().nth(1).expect("row").starts_with("Agent (cst_"), "{table}");

    // New origins noted between two flushes are written in the order they were seen.
    for n in 3..=6 {
        let mut hello = initialize_body();
        hello["params"]["clientInfo"] = json!({"name": format!("client-{n}"), "version": "1"});
        from(&key, &format!("127.0.0.{n}")).post(&hello).expect(200).await;
    }
    let trail = env.admin_json(&server, &["audit", "--key", key_id.as_str()]).await;
    let newest: Vec<String> = new_origins(&trail)
        .iter()
        .take(4)
        .map(|detail| detail.split(':').next().unwrap_or("").to_owned())
        .collect();
    let expected: Vec<String> =
        (3..=6).rev().map(|n| format!("used from 127.0.0.{n} by client-{n}")).collect();
    assert_eq!(newest, expected);
    server.stop().await;
}

#[tokio::test]
async fn call_records_expire_after_the_retention_and_hourly_totals_stay() {
    let server = TestServer::start().await;
    let env = TestEnv::new();
    let key = server.owner().create_key("Old", "never", "read-only").await;
    let body = tool_call(1, "list_journeys", json!({}));
    for _ in 0..3 {
        key.send(&body).await;
    }
    server.store.access().flush_activity().expect("flush");
    let rows = || server.db.query_row("SELECT COUNT(*) FROM key_calls", &[])[0].int();
    assert_eq!(rows(), Some(3));

    // A month and a day later, the housekeeping's prune (the defaults: 30 days of rows, 400 of
    // totals) removes the rows and keeps the totals.
    server.store.clock().advance(chrono::Duration::days(31));
    let now = server.store.now();
    let deleted = server
        .store
        .access()
        .prune_activity(now - chrono::Duration::days(30), now - chrono::Duration::days(400))
        .expect("prune");
    assert_eq!(deleted, 3);
    assert_eq!(rows(), Some(0));
    let trail = env.admin_json(&server, &["audit", "--key", "Old"]).await;
    assert!(trail["events"].as_array().expect("events").iter().all(|e| e["call"].is_null()));
    let usage = env.admin_json(&server, &["audit", "--usage", "--since", "60d"]).await;
    assert_eq!(usage["keys"][0]["calls"], 3, "{usage}");
    let recent = env.admin_json(&server, &["audit", "--usage", "--since", "7d"]).await;
    assert_eq!(recent["keys"], json!([]));
    server.stop().await;
}

#[tokio::test]
async fn retention_periods_are_checked_when_serve_starts() {
    let env = TestEnv::new();
    for (flag, value) in [("--audit-retention", "30"), ("--usage-retention", "5y")] {
        let mut cmd = env.command();
        cmd.args(["serve", "--listen", "127.0.0.1:0", flag, value]);
        let run = run_piped(cmd, None).await;
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert!(run.stderr.contains("is not a period"), "{}", run.stderr);
    }
}
