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

/// A connection to `to` from the loopback address `from` (any 127.x.y.z), sending nothing.
async fn idle_connection(
    from: [u8; 4],
    to: std::net::SocketAddr,
) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind((std::net::Ipv4Addr::from(from), 0).into())?;
    socket.connect(to).await
}

/// Waits (60 s at most) for the server to close `stream`.
async fn closed_by_the_server(stream: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncReadExt as _;
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(std::time::Duration::from_secs(60), stream.read(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn the_metrics_listener_is_capped_times_out_idle_clients_and_leaves_the_api_its_descriptors()
{
    // The test holds a few hundred sockets of its own.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let env = TestEnv::new();
    let db = env.home.path().join("custory.db");
    // 256 descriptors in all: the metrics listener's 16 connections are inside that budget.
    let server = env
        .serve_with_open_files(
            &db,
            &["--metrics-listen", "127.0.0.1:0", "--header-timeout", "5"],
            256,
        )
        .await;
    let metrics_url = server.announced["metrics_url"].as_str().expect("metrics_url").to_owned();
    let metrics: std::net::SocketAddr = metrics_url
        .strip_prefix("http://")
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .and_then(|addr| addr.parse().ok())
        .expect("a metrics address");
    let patient = || {
        reqwest::Client::builder()
            .no_proxy()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .expect("client")
    };
    let api = crate::common::Visitor::new(&server.url()).with_client(patient());

    // One address keeps at most 4 connections to it: a fifth is closed at once, while the
    // first four are still open (an idle close would have ended the oldest first).
    let mut first = Vec::new();
    for _ in 0..4 {
        first.push(idle_connection([127, 0, 0, 2], metrics).await.expect("connect"));
    }
    let mut fifth = idle_connection([127, 0, 0, 2], metrics).await.expect("connect");
    assert!(closed_by_the_server(&mut fifth).await, "the fifth connection from one address");
    let mut byte = [0u8; 1];
    assert!(
        matches!(first[0].try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the first connections are still open"
    );

    // 312 idle connections from 78 addresses at once: without a cap they would take more
    // descriptors than the process has. The listener keeps 16; the kernel queues what its
    // backlog holds (128) and drops the rest's handshakes, which are given up here after 3 s.
    let attempts: Vec<_> = (3..=80u8)
        .flat_map(|address| std::iter::repeat_n(address, 4))
        .map(|address| {
            tokio::spawn(tokio::time::timeout(
                std::time::Duration::from_secs(3),
                idle_connection([127, 0, 0, address], metrics),
            ))
        })
        .collect();
    let mut flood = Vec::new();
    for attempt in attempts {
        if let Ok(Ok(stream)) = attempt.await {
            flood.push(stream);
        }
    }
    assert!(flood.len() >= 100, "only {} connections were made", flood.len());
    // The API answers meanwhile, on a hundred connections at once.
    let owner = server.owner();
    let answers: Vec<_> = (0..100)
        .map(|_| {
            let api = crate::common::Visitor::new(&server.url()).with_client(patient());
            tokio::spawn(async move { api.get("/healthz").send().await.status })
        })
        .collect();
    for answer in answers {
        assert_eq!(answer.await.expect("healthz"), 200);
    }
    api.get("/healthz").expect(200).await;
    owner.get("/workspaces").expect(200).await;

    // An idle connection is closed after the request-head timeout (5 s here).
    assert!(closed_by_the_server(&mut first[0]).await, "an idle connection is closed");

    // Once the crowd has gone, the page is served again.
    drop((first, flood));
    let page = crate::common::Visitor::new(metrics_url.strip_suffix("/metrics").expect("base"))
        .with_client(patient());
    page.get("/metrics").expect(200).await;
    server.terminate().await;
}
