//! What a running server counts, for `/metrics` (the Prometheus text format, from the
//! `metrics` crate's Prometheus exporter). `serve --metrics-listen ADDR` installs the recorder
//! and serves the page on that address only, apart from the API; without it every count is a
//! no-op. Labels are bounded: endpoints are route templates, tools are the tool table's names.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::store::Store;

/// Latency buckets, in seconds: from a cached tool list to the call deadline.
const BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Installs the process's recorder; returns the handle that renders the page.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let recorder = PrometheusBuilder::new().set_buckets(&BUCKETS)?.build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)
        .map_err(|_| anyhow::anyhow!("a metrics recorder is already installed"))?;
    describe();
    Ok(handle)
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!("custory_http_requests_total", "HTTP requests, by route and status");
    describe_histogram!(
        "custory_http_request_duration_seconds",
        metrics::Unit::Seconds,
        "time to answer an HTTP request, by route"
    );
    describe_counter!("custory_tool_calls_total", "MCP tool calls, by tool and outcome");
    describe_counter!(
        "custory_audit_rows_dropped_total",
        "call records not kept because the write queue was full (their hourly totals were)"
    );
    describe_counter!("custory_auth_failures_total", "failed authentications, by surface");
    describe_counter!("custory_rate_limited_total", "requests refused with 429, by limit");
    describe_counter!(
        "custory_key_reads_total",
        "MCP keys looked up in the database (not found in the key cache)"
    );
    describe_gauge!("custory_db_pool_connections", "database connections, by state");
    describe_counter!(
        "custory_audit_sink_lines_total",
        "lines the audit sink accepted, by source (audit, calls)"
    );
    describe_counter!("custory_audit_sink_failures_total", "batches the audit sink did not take");
    describe_counter!(
        "custory_audit_sink_dropped_total",
        "call records pruned (past --audit-retention) before the audit sink took them"
    );
    describe_gauge!(
        "custory_audit_sink_lag_seconds",
        metrics::Unit::Seconds,
        "how old the oldest line not yet taken by the audit sink is (on the replica sending)"
    );
    describe_gauge!(
        "custory_usage_flush_lag_seconds",
        metrics::Unit::Seconds,
        "how long the oldest last-used time not yet written has waited"
    );
    describe_counter!(
        "custory_webhook_deliveries_dropped_total",
        "webhook deliveries given up unsent: the oldest of an endpoint with 10,000 pending"
    );
}

/// Counts a request and its latency, by route template (`/api/mcp`, not a path with ids).
pub async fn record_request(request: Request, next: Next) -> Response {
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("custory_http_requests_total", "endpoint" => endpoint.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("custory_http_request_duration_seconds", "endpoint" => endpoint)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The store's gauges, set every housekeeping round.
pub fn record_store(store: &Store) {
    let (in_use, idle, max) = store.pool_use();
    metrics::gauge!("custory_db_pool_connections", "state" => "in_use").set(f64::from(in_use));
    metrics::gauge!("custory_db_pool_connections", "state" => "idle").set(f64::from(idle));
    metrics::gauge!("custory_db_pool_connections", "state" => "max").set(f64::from(max));
    metrics::counter!("custory_key_reads_total").absolute(store.access().key_reads());
    if let Some(age) = store.access().usage_flush_age() {
        metrics::gauge!("custory_usage_flush_lag_seconds").set(age.as_secs_f64());
    }
}

/// Connections the metrics listener keeps open at once, in all and from one address: enough
/// for a few scrapers. They are counted in the process's descriptor budget beside the API's
/// (`serve` lowers `--max-connections` by this many), so the metrics port can never take the
/// descriptors the API needs.
pub const MAX_CONNECTIONS: usize = 16;
pub const MAX_CONNECTIONS_PER_ADDRESS: usize = 4;

/// The metrics listener's bounds: the API's request-head timeout (which also ends idle
/// connections) and its own small caps.
pub fn connection_limits(api: &super::ConnectionLimits) -> super::ConnectionLimits {
    super::ConnectionLimits {
        max_connections: MAX_CONNECTIONS,
        max_per_address: MAX_CONNECTIONS_PER_ADDRESS.min(api.max_per_address),
        header_timeout: api.header_timeout,
        shutdown_grace: std::time::Duration::ZERO,
    }
}

/// Serves the page on `listener` until the process ends: `GET /metrics`, nothing else, with
/// the connections bounded as the API's are (`listen.rs`), by `limits`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    handle: PrometheusHandle,
    limits: super::ConnectionLimits,
) {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            async move {
                handle.run_upkeep();
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    handle.render(),
                )
            }
        }),
    );
    let front = super::listen::Front {
        trusted: std::sync::Arc::from([]),
        forwarded: super::ForwardedHeader::default(),
        tls: None,
    };
    super::listen::serve(listener, app, limits, front, std::future::pending()).await;
}

/// The address `--metrics-listen` bound, for the announcement.
pub fn url(addr: SocketAddr) -> String {
    format!("http://{addr}/metrics")
}
