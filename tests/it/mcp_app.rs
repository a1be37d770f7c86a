//! The journey map as an MCP App (the `io.modelcontextprotocol/ui` extension): the view that
//! `get_journey`'s `_meta.ui` names, drawn in headless Chromium by the extension SDK's own host
//! side (`AppBridge` from `@modelcontextprotocol/ext-apps/app-bridge`, pinned), fed a real
//! `get_journey` result; every tool the view asks for goes through that host to the server as
//! a real, audited `tools/call` (node/mcp_app.cjs). The protocol side (the resource in both
//! eras, the capability, the tool's `_meta`) is checked without a browser.
//!
//! `cargo test --test it -- mcp_app::screenshots --ignored --nocapture` draws the small and the
//! large journey, light and dark, into docs/mcp-app/ and prints the resource's size and the
//! time from load to first paint (docs/MCP_APP.md).

#![allow(clippy::print_stderr, reason = "the ignored screenshots test prints the measurements")]

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::process::Command;

use crate::common::{Key, TestServer};
use crate::conformance::{TS_SDK_1, npm_packages};
use crate::mcp_modern::Modern;
use crate::oauth_clients::{PLAYWRIGHT, chromium};

/// Pinned: the extension's SDK (its host side is what draws the view) and the bundler that
/// makes its ES module a script for the host page.
const EXT_APPS: &str = "@modelcontextprotocol/ext-apps@1.7.5";
const ESBUILD: &str = "esbuild@0.28.2";
const DRIVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/node/mcp_app.cjs");
const APP_URI: &str = "ui://custory/journey-map.html";
const APP_MIME: &str = "text/html;profile=mcp-app";
/// How long one drawing may take, a browser's cold start and a bundle included.
const RUN: Duration = Duration::from_secs(180);

/// The npm packages and Chromium, installed on first use.
async fn installed() -> (PathBuf, PathBuf) {
    tokio::task::spawn_blocking(|| {
        let modules = npm_packages(&[TS_SDK_1, PLAYWRIGHT, EXT_APPS, ESBUILD], "the MCP App tests");
        (modules, chromium())
    })
    .await
    .expect("install task")
}

/// Runs node/mcp_app.cjs as a host for `key` with `config`; returns its report.
async fn draw(server: &TestServer, key: &Key, config: Value) -> Value {
    let (modules, chromium) = installed().await;
    let mut command = Command::new("node");
    command
        .arg(DRIVER)
        .env("MCP_URL", server.mcp_url())
        .env("MCP_TOKEN", &key.token)
        .env("MODULES", &modules)
        .env("CHROMIUM", &chromium)
        .env("CONFIG", config.to_string())
        .env("NO_PROXY", "*")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(RUN, command.output())
        .await
        .expect("the MCP App host finished within its time")
        .expect("node: could not start (the MCP App tests need node)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: Value =
        stdout.lines().last().and_then(|line| serde_json::from_str(line).ok()).unwrap_or_else(
            || panic!("no report: {stdout}\n{}", String::from_utf8_lossy(&output.stderr)),
        );
    assert!(report.get("error").is_none(), "{report:#}");
    assert!(output.status.success(), "{report:#}");
    assert_eq!(report["errors"], json!([]), "the view logged no error: {report:#}");
    assert_eq!(report["requests"], json!([]), "the view fetched nothing: {report:#}");
    report
}

fn config(journey: &str, theme: &str) -> Value {
    json!({"journey": journey, "theme": theme, "width": 760, "height": 900, "screenshot": null,
           "interact": false, "page_more": false, "keyboard": false})
}

/// The calls `key` made, newest first, as the admin API's audit trail records them.
async fn calls(server: &TestServer, key: &Key) -> Vec<Value> {
    let trail = server.owner().audit("acme", &format!("?key={}&calls=true", key.id())).await;
    trail["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|event| event["call"].is_object())
        .map(|event| event["call"].clone())
        .collect()
}

#[tokio::test]
async fn get_journey_names_its_view_and_the_view_is_read_in_both_eras() {
    let server = TestServer::start().await;
    let key = server.owner().create_key("host", "30d", "read-only").await;

    // The handshake era: the capability, the tool's _meta, the resource.
    let init = key.initialize().await;
    assert_eq!(init["capabilities"]["extensions"], json!({"io.modelcontextprotocol/ui": {}}));
    let tools = key.tools().await;
    let journey = tools.iter().find(|t| t["name"] == "get_journey").expect("get_journey");
    assert_eq!(journey["_meta"], json!({"ui": {"resourceUri": APP_URI}}));
    let others = tools.iter().filter(|t| t["name"] != "get_journey");
    assert!(others.clone().all(|t| t.get("_meta").is_none()), "only get_journey has a view");
    let read = key.result("resources/read", json!({"uri": APP_URI})).await;
    let content = &read["contents"][0];
    assert_eq!(content["uri"], APP_URI);
    assert_eq!(content["mimeType"], APP_MIME);
    let csp = &content["_meta"]["ui"]["csp"];
    for list in ["connectDomains", "resourceDomains", "frameDomains", "baseUriDomains"] {
        assert_eq!(csp[list], json!([]), "{list}: the view reaches nothing outside");
    }
    assert_eq!(content["_meta"]["ui"]["permissions"], json!({}));
    let html = content["text"].as_str().expect("html");
    assert!(html.starts_with("<!doctype html>") && html.ends_with("</html>\n"));
    // Self-contained: no URL to fetch anything from, the statuses filled in.
    for outside in ["src=", "href=", "http://", "https://", "@import", "/*STATUSES*/"] {
        assert!(!html.contains(outside), "the view holds {outside:?}");
    }
    assert!(html.contains(r#""opportunity":["open","in-progress","done"]"#));

    // The stateless era: the same document, the capability in server/discover.
    let modern = Modern::new(&key);
    let discovered = modern.result("server/discover", json!({})).await;
    assert_eq!(discovered["capabilities"]["extensions"], json!({"io.modelcontextprotocol/ui": {}}));
    let again = modern.result("resources/read", json!({"uri": APP_URI})).await;
    assert_eq!(again["contents"], read["contents"]);
    let listed = modern.result("tools/list", json!({})).await;
    assert_eq!(listed["tools"], json!(tools));

    // Hosts without the extension pay for the _meta only: the tools without it are the list
    // as it was.
    let bytes =
        |tools: &[Value]| serde_json::to_string(&json!({"tools": tools})).expect("json").len();
    let without: Vec<Value> = tools
        .iter()
        .cloned()
        .map(|mut t| {
            t.as_object_mut().expect("tool").remove("_meta");
            t
        })
        .collect();
    let meta = r#","_meta":{"ui":{"resourceUri":"ui://custory/journey-map.html"}}"#;
    assert_eq!(bytes(&tools), bytes(&without) + meta.len());
    server.stop().await;
}

#[tokio::test]
async fn the_view_draws_a_real_journey_and_asks_the_host_for_items() {
    let server = TestServer::start().await;
    let key = server.owner().create_key("host", "30d", "read-write").await;
    let tree = key.ok("get_journey", json!({"journey": "trial-to-paid"})).await;

    let mut run = config("trial-to-paid", "light");
    run["interact"] = json!(true);
    run["keyboard"] = json!(true);
    run["switch_theme"] = json!(true);
    let report = draw(&server, &key, run).await;
    assert_eq!(report["resource_uri"], APP_URI);
    assert_eq!(report["mime_type"], APP_MIME);
    assert_eq!(report["title"], "Trial to paid");
    assert_eq!(report["stages"], tree["stages"].as_array().map(Vec::len).expect("stages"));
    assert_eq!(report["cards"], tree["items_shown"]);
    assert_eq!(report["personas"], tree["personas"].as_array().map(Vec::len).expect("personas"));
    assert_eq!(report["theme"], "light");
    assert_eq!(report["background"], "rgb(255, 255, 255)", "the host's variable");
    assert_eq!(report["background_switched"], "rgb(38, 38, 36)", "the host turned dark");
    // Keyboard: the first card takes focus with a visible ring, Enter opens, Escape comes back.
    assert_eq!(report["keyboard"]["focused"], "card", "{report:#}");
    assert_eq!(report["keyboard"]["outline"], "solid");
    assert!(report["keyboard"]["opened"].is_string());
    assert!(report["keyboard"]["back_on"].as_str().is_some_and(|c| c.starts_with("card")));

    // A click: get_item through the host; with this read-write key a status change is an
    // update_item, and the server has it.
    let clicked = report["clicked"].as_str().expect("clicked").to_owned();
    assert_eq!(report["status_control"], true, "{report:#}");
    let changed = report["status_changed_to"].as_str().expect("changed");
    let names: Vec<&str> = report["calls"]
        .as_array()
        .expect("calls")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(names.contains(&"get_item") && names.contains(&"update_item"), "{names:?}");
    let item = key.ok("get_item", json!({"item_id": clicked})).await;
    assert_eq!(item["status"], changed);
    assert!(report["card_after"].as_str().is_some_and(|l| l.contains(changed)));

    // The audit trail has the view's calls as the key's, with the item they touched.
    let recorded = calls(&server, &key).await;
    let touched = |what: &str| {
        recorded.iter().any(|c| {
            c["what"] == what
                && c["outcome"] == "ok"
                && c["ids"].as_array().is_some_and(|ids| ids.iter().any(|id| id == &clicked))
        })
    };
    assert!(touched("get_item") && touched("update_item"), "{recorded:#?}");
    server.stop().await;
}

#[tokio::test]
async fn a_read_only_key_gets_no_status_change_from_the_view() {
    let server = TestServer::start().await;
    let key = server.owner().create_key("viewer", "30d", "read-only").await;
    // On a phone: the stages stack, nothing scrolls sideways.
    let mut run = config("trial-to-paid", "dark");
    run["interact"] = json!(true);
    run["width"] = json!(390);
    let report = draw(&server, &key, run).await;
    assert_eq!(report["overflow_x"], false, "{report:#}");
    assert_eq!(report["theme"], "dark");
    assert_eq!(report["background"], "rgb(38, 38, 36)", "the host's dark variable");
    assert!(report["detail_title"].is_string(), "{report:#}");
    assert_eq!(report["status_control"], false, "{report:#}");
    let names: Vec<&str> = report["calls"]
        .as_array()
        .expect("calls")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(names.contains(&"get_item") && !names.contains(&"update_item"), "{names:?}");
    let recorded = calls(&server, &key).await;
    assert!(recorded.iter().any(|c| c["what"] == "get_item" && c["outcome"] == "ok"));
    assert!(recorded.iter().all(|c| c["what"] != "update_item"), "{recorded:#?}");
    server.stop().await;
}

/// A journey of `steps` steps over 6 stages and `items` items, imported as a CSV; one persona
/// linked (by a read-write key of its own).
async fn large_journey(server: &TestServer, steps: usize, items: usize) -> String {
    const KINDS: [&str; 5] = ["touchpoint", "insight", "opportunity", "solution", "metric"];
    const OWNERS: [&str; 4] = ["Maya", "Lee", "Sam", ""];
    let mut csv = String::from("stage,step,kind,title,owner,priority\n");
    for n in 0..items {
        let (step, nth) = (n % steps, n / steps);
        let _ = writeln!(
            csv,
            "Stage {},Step {step:02},{},Item {n} on step {step},{},P{}",
            step * 6 / steps + 1,
            KINDS[(nth + step) % KINDS.len()],
            OWNERS[nth % OWNERS.len()],
            nth % 4
        );
    }
    let reply = server
        .owner()
        .post("/imports?workspace=acme&journey=Large%20map")
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await;
    assert!((200..300).contains(&reply.status), "{}", reply.text());
    let key = server.owner().create_key("importer", "30d", "read-write").await;
    let personas = key.ok("list_personas", json!({})).await;
    let persona = personas["personas"][0]["id"].as_str().expect("a demo persona");
    key.ok("link_persona", json!({"journey": "large-map", "persona_id": persona})).await;
    "large-map".to_owned()
}

#[tokio::test]
async fn a_large_journey_draws_what_get_journey_returns_and_pages_a_step() {
    let server = TestServer::start().await;
    let key = server.owner().create_key("host", "30d", "read-only").await;
    let journey = large_journey(&server, 60, 2000).await;
    let mut run = config(&journey, "light");
    run["page_more"] = json!(true);
    let report = draw(&server, &key, run).await;
    assert_eq!(report["steps"], 60);
    assert_eq!(report["stages"], 6);
    assert_eq!(report["cards"], report["journey_items_shown"]);
    assert!(report["cards"].as_i64().expect("cards") < 2000, "the map is bounded");
    let (before, after) = (&report["cards_before_more"], &report["cards_after_more"]);
    assert!(after.as_i64() > before.as_i64(), "{report:#}");
    let names: Vec<&str> = report["calls"]
        .as_array()
        .expect("calls")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["list_items"]);
    let recorded = calls(&server, &key).await;
    assert!(recorded.iter().any(|c| c["what"] == "list_items" && c["outcome"] == "ok"));
    server.stop().await;
}

/// Draws the docs' pictures (docs/mcp-app/*.png) and prints the measurements of
/// docs/MCP_APP.md: the resource's size, `tools/list`'s size, and the time from the frame's
/// start to the map's first paint (median of 5 draws per journey).
#[tokio::test]
#[ignore = "writes docs/mcp-app/*.png; run by hand (docs/MCP_APP.md)"]
async fn screenshots() {
    let server = TestServer::start().await;
    let key = server.owner().create_key("host", "30d", "read-only").await;
    let large = large_journey(&server, 60, 2000).await;
    // The small journey with its persona strip.
    let writer = server.owner().create_key("writer", "30d", "read-write").await;
    let personas = writer.ok("list_personas", json!({})).await;
    let persona = personas["personas"][0]["id"].as_str().expect("a demo persona");
    writer.ok("link_persona", json!({"journey": "trial-to-paid", "persona_id": persona})).await;

    for (who, key) in [("read-write", &writer), ("read-only", &key)] {
        let body = key.post(&crate::common::rpc(1, "tools/list", json!({}))).send().await.body;
        let meta = r#","_meta":{"ui":{"resourceUri":"ui://custory/journey-map.html"}}"#;
        eprintln!(
            "tools/list, {who} key: {} bytes, {} without get_journey's _meta",
            body.len(),
            body.len() - meta.len()
        );
    }
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/mcp-app"));
    std::fs::create_dir_all(&dir).expect("mkdir");

    // An item with links, open, its card hovered, as a read-write key sees it.
    let tree = writer.ok("get_journey", json!({"journey": "trial-to-paid"})).await;
    let mut linked = None;
    for stage in tree["stages"].as_array().expect("stages") {
        for step in stage["steps"].as_array().expect("steps") {
            for item in step["items"].as_array().expect("items") {
                let detail = writer.ok("get_item", json!({"item_id": item["id"]})).await;
                if linked.is_none() && detail["links_to_total"].as_i64() > Some(0) {
                    linked = item["id"].as_str().map(str::to_owned);
                }
            }
        }
    }
    let mut open = config("trial-to-paid", "light");
    open["interact"] = json!(true);
    open["change_status"] = json!(false);
    open["item"] = json!(linked.expect("a demo item with links"));
    open["detail_screenshot"] = json!(dir.join("small-detail.png"));
    draw(&server, &writer, open).await;
    for (name, journey) in [("small", "trial-to-paid"), ("large", large.as_str())] {
        for theme in ["light", "dark"] {
            let mut run = config(journey, theme);
            run["screenshot"] = json!(dir.join(format!("{name}-{theme}.png")));
            run["height"] = json!(if name == "small" { 640 } else { 800 });
            draw(&server, &key, run).await;
        }
        let mut phone = config(journey, "light");
        phone["width"] = json!(390);
        phone["height"] = json!(760);
        phone["screenshot"] = json!(dir.join(format!("{name}-phone.png")));
        draw(&server, &key, phone).await;
        let mut runs = Vec::new();
        for _ in 0..5 {
            runs.push(draw(&server, &key, config(journey, "light")).await);
        }
        let median = |what: &str| {
            let mut times: Vec<f64> = runs.iter().filter_map(|r| r[what].as_f64()).collect();
            times.sort_by(f64::total_cmp);
            times[times.len() / 2]
        };
        eprintln!(
            "{name}: resource {} bytes, {} cards of {} items; frame start to map painted {:.0} \
             ms (first contentful paint {:.0} ms; tool result in hand to map painted {:.0} ms), \
             median of {}",
            runs[0]["resource_bytes"],
            runs[0]["cards"],
            runs[0]["items_total"],
            median("painted"),
            median("fcp"),
            median("render"),
            runs.len()
        );
    }
    server.stop().await;
}
