//! `serve --metrics-listen`: the Prometheus page, read by Prometheus's own text parser (the
//! official Python client's), with the counters moving as requests are made.

use serde_json::{Value, json};

use crate::common::{TestEnv, Visitor, rpc, tool_call};

/// The Prometheus client library's parser (PyPI `prometheus-client`), pinned.
const PROMETHEUS_CLIENT: &str = "prometheus-client==0.21.1";

/// Every sample of a scrape, as `name{labels as JSON}` → value, parsed by Prometheus's parser.
async fn scrape(page: &Visitor) -> serde_json::Map<String, Value> {
    let response = page.get("/metrics").send().await;
    assert_eq!(response.status, 200);
    let content_type = response.header("content-type").expect("type").to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let text = response.text();
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
    let metrics = server.announced["metrics_url"].as_str().expect("metrics_url");
    let page = Visitor::new(metrics.strip_suffix("/metrics").expect("a /metrics URL"));
    let owner = server.owner();
    let key = owner.create_key_in("acme", json!({"name": "metered", "expires": "30d"})).await;
    let before = scrape(&page).await;

    for body in [
        rpc(1, "tools/list", json!({})),
        tool_call(1, "get_workspace", json!({})),
        tool_call(1, "no_such_tool", json!({})),
    ] {
        key.post(&body).expect(200).await;
    }
    let refused = server.key("cst_nope").send(&tool_call(1, "get_workspace", json!({}))).await;
    assert_eq!(refused.status, 401);
    let after = scrape(&page).await;

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
    server.visitor().get("/metrics").expect(404).await;
    let everything = serde_json::to_string(&after).expect("text");
    assert!(!everything.contains(&key.token[4..]), "no token in any label");
    server.terminate().await;
}
