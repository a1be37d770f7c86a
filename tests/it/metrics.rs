//! `serve --metrics-listen`: the Prometheus page, read by Prometheus's own text parser (the
//! official Python client's), with the counters moving as requests are made.

use serde_json::{Value, json};

use crate::common::{TestEnv, http, mcp_post};

/// The Prometheus client library's parser (PyPI `prometheus-client`), pinned.
const PROMETHEUS_CLIENT: &str = "prometheus-client==0.21.1";

/// Every sample of a scrape, as `name{labels as JSON}` → value, parsed by Prometheus's parser.
async fn scrape(url: &str) -> serde_json::Map<String, Value> {
    let response = http().get(url).send().await.expect("scrape");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().expect("type").to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let text = response.text().await.expect("page");
    let parsed = tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        let python = crate::conformance::python_with(PROMETHEUS_CLIENT);
        let mut child = std::process::Command::new(python)
            .arg("-c")
            .arg(
                "import sys, json\n\
                 from prometheus_client.parser import text_string_to_metric_families\n\
                 out = {}\n\
                 for family in text_string_to_metric_families(sys.stdin.read()):\n\
                 \x20   for s in family.samples:\n\
                 \x20       out[s.name + json.dumps(dict(sorted(s.labels.items())), separators=(',', ':'))] = s.value\n\
                 print(json.dumps(out))\n",
            )
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("python");
        child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write");
        let output = child.wait_with_output().expect("parse");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice::<Value>(&output.stdout).expect("json")
    })
    .await
    .expect("parser");
    parsed.as_object().expect("samples").clone()
}

fn sample(samples: &serde_json::Map<String, Value>, name: &str, labels: Value) -> f64 {
    let key = format!("{name}{}", serde_json::to_string(&labels).expect("labels"));
    samples.get(&key).and_then(Value::as_f64).unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_are_prometheus_text_and_move_with_the_requests() {
    let env = TestEnv::new();
    let db = env.home.path().join("custory.db");
    let server = env.serve(&db, &["--metrics-listen", "127.0.0.1:0"]).await;
    let metrics = server.announced["metrics_url"].as_str().expect("metrics_url").to_owned();
    let url = server.url();
    let owner = server.announced["owner_credential"].as_str().expect("owner").to_owned();
    let created: Value = http()
        .post(format!("{url}/api/admin/workspaces/acme/mcp-keys"))
        .bearer_auth(&owner)
        .json(&json!({"name": "metered", "expires": "30d"}))
        .send()
        .await
        .expect("key")
        .json()
        .await
        .expect("json");
    let token = created["token"].as_str().expect("token").to_owned();
    let before = scrape(&metrics).await;

    let mcp = format!("{url}/api/mcp");
    let call = |tool: &str| {
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": tool, "arguments": {}}})
    };
    for body in [
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        call("get_workspace"),
        call("no_such_tool"),
    ] {
        assert_eq!(mcp_post(&mcp, &token, &body).send().await.expect("post").status(), 200);
    }
    let refused = mcp_post(&mcp, "cst_nope", &call("get_workspace")).send().await.expect("post");
    assert_eq!(refused.status(), 401);
    let after = scrape(&metrics).await;

    let moved = |name: &str, labels: Value| {
        sample(&after, name, labels.clone()) - sample(&before, name, labels)
    };
    let mcp_route = json!({"endpoint": "/api/mcp", "status": "200"});
    assert_eq!(moved("custory_http_requests_total", mcp_route), 3.0);
    assert_eq!(
        moved("custory_http_requests_total", json!({"endpoint": "/api/mcp", "status": "401"})),
        1.0
    );
    assert_eq!(
        moved("custory_tool_calls_total", json!({"outcome": "ok", "tool": "get_workspace"})),
        1.0
    );
    assert_eq!(
        moved("custory_tool_calls_total", json!({"outcome": "unknown_tool", "tool": "unknown"})),
        1.0
    );
    assert_eq!(moved("custory_auth_failures_total", json!({"surface": "mcp"})), 1.0);
    assert_eq!(
        moved("custory_http_request_duration_seconds_count", json!({"endpoint": "/api/mcp"})),
        4.0
    );
    assert!(
        sample(
            &after,
            "custory_http_request_duration_seconds_bucket",
            json!({"endpoint": "/api/mcp", "le": "+Inf"})
        ) >= 4.0
    );
    assert!(sample(&after, "custory_db_pool_connections", json!({"state": "max"})) >= 1.0);
    assert!(after.keys().any(|k| k.starts_with("custory_usage_flush_lag_seconds")), "{after:?}");
    // The page is on its own address only.
    let on_api = http().get(format!("{url}/metrics")).send().await.expect("get");
    assert_eq!(on_api.status(), 404);
    let everything = serde_json::to_string(&after).expect("text");
    assert!(!everything.contains(&token[4..]), "no token in any label");
    server.terminate().await;
}
