//! The audit stream (`serve --audit-sink URL`, issue 35): every audit event and every call
//! record of every workspace, sent to a collector as NDJSON batches, gzip-compressed, by POST.
//!
//! Each line is an [`api::StreamLine`]: `audit --json`'s entry with its `source` (`audit` or
//! `calls`) and `workspace`; `(source, id)` names it and stays the same when it is sent again.
//! The database is the queue (`store::access::sink`): a batch is read after the sink's cursor,
//! sent, and the cursor moved only once the collector answered 2xx, so a collector that is
//! down, slow or failing gets every line later, in order, at least once; a restart resumes
//! from the cursor. Failures back off from 1 s to a minute and go on for as long as it takes;
//! a `413` halves the batch. Of several replicas, the one holding the sink's lease sends.
//! Nothing is sent but those lines: no token, credential or secret is in them.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest as _, Sha256};

use super::AppState;
use crate::api::{self, StreamSource};
use crate::store::access::SinkCursor;

/// Lines per batch at most (a common intake limit: Datadog's takes 1,000 entries a request).
const BATCH_LINES: u32 = 1_000;
/// Bytes per batch before compression, at most (one line may go past it alone).
const BATCH_BYTES: usize = 1 << 20;
/// How long one POST may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How often the sink is looked at when everything was sent.
const POLL: Duration = Duration::from_secs(1);
/// The longest wait between two failed attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Where the stream goes: the collector's URL, the headers it wants, and this replica's name
/// for its lease. Its `Debug` shows the host and path only (a URL may carry a token).
pub struct AuditSink {
    url: reqwest::Url,
    headers: HeaderMap,
    /// The SHA-256 of the URL without its query, fragment or credentials: the sink's name in
    /// the database, so a token rotated in the query keeps the cursor.
    id: String,
    /// Host and port, for logs and the start-up message (a path or query may hold a token).
    label: String,
    /// This process, as the holder of the sink's lease.
    owner: String,
}

impl std::fmt::Debug for AuditSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditSink").field("label", &self.label).finish_non_exhaustive()
    }
}

impl AuditSink {
    /// A sink for `url`, with `headers` given as `Name: value`; a sentence when either is not
    /// usable.
    pub fn new(url: &str, headers: &[String]) -> Result<Self, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "https" | "http") || parsed.host().is_none() {
            return Err("it must be an http or https URL with a host".into());
        }
        let mut map = HeaderMap::new();
        // A variable read from a file may end in a newline: blank entries are no headers.
        let headers = headers.iter().filter(|header| !header.trim().is_empty());
        for (n, header) in headers.enumerate() {
            // Never echoed, not even the name part: a header may be a secret.
            let Some((name, value)) = header.split_once(':') else {
                return Err(format!("header {} is not `Name: value`", n + 1));
            };
            let name = HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| format!("header {} has no valid name before its `:`", n + 1))?;
            let mut value = HeaderValue::from_str(value.trim())
                .map_err(|_| format!("the value of {name} is not a header value"))?;
            // Never printed by the client's own Debug.
            value.set_sensitive(true);
            map.append(name, value);
        }
        let mut named = parsed.clone();
        named.set_query(None);
        named.set_fragment(None);
        // Cannot fail on an http(s) URL with a host (checked above).
        let _ = named.set_username("");
        let _ = named.set_password(None);
        let id: String =
            Sha256::digest(named.as_str().as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
        let host = parsed.host_str().unwrap_or_default();
        let label = match parsed.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let owner = crate::token::random_base62(16);
        Ok(Self { url: parsed, headers: map, id, label, owner })
    }

    /// Host and path: how logs and messages name the sink.
    pub fn label(&self) -> &str {
        &self.label
    }
}

fn http() -> Option<&'static reqwest::Client> {
    static CLIENT: std::sync::OnceLock<Option<reqwest::Client>> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .timeout(TIMEOUT)
                .connect_timeout(Duration::from_secs(5))
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("custory-mcp/", env!("CARGO_PKG_VERSION")))
                // Fails only when the TLS backend cannot start; nothing is sent then.
                .build()
                .ok()
        })
        .as_ref()
}

/// A batch ready to send: the compressed body, how many lines it holds, and the cursor after
/// them.
struct Batch {
    body: Vec<u8>,
    lines: usize,
    events_after: i64,
    calls_after: i64,
    by_source: [u64; 2],
    oldest: chrono::DateTime<chrono::Utc>,
    /// Whether more lines wait than this batch holds.
    more: bool,
}

/// The first of `lines` (read with `limit`) that fit in [`BATCH_BYTES`] (one at least), as
/// gzip-compressed NDJSON; `None` when there are none.
fn encode(lines: &[api::StreamLine], cursor: &SinkCursor, limit: u32) -> Option<Batch> {
    let oldest = lines.iter().map(|line| line.event.at).min()?;
    let mut text = Vec::new();
    let mut batch = Batch {
        body: Vec::new(),
        lines: 0,
        events_after: cursor.events_after,
        calls_after: cursor.calls_after,
        by_source: [0; 2],
        oldest,
        more: false,
    };
    for line in lines {
        let json = serde_json::to_vec(line);
        let size = json.as_ref().map_or(0, Vec::len);
        if batch.lines > 0 && text.len() + size + 1 > BATCH_BYTES {
            break;
        }
        match json {
            Ok(json) => {
                text.extend_from_slice(&json);
                text.push(b'\n');
            }
            // Cannot happen (the types hold no map with non-string keys); were it to, the line
            // is passed over, not sent again and again.
            Err(error) => {
                tracing::error!(%error, id = line.event.id, "a line of the audit stream could not be written")
            }
        }
        batch.lines += 1;
        match line.source {
            StreamSource::Audit => {
                batch.events_after = line.event.id;
                batch.by_source[0] += 1;
            }
            StreamSource::Calls => {
                batch.calls_after = line.event.id;
                batch.by_source[1] += 1;
            }
        }
    }
    batch.more = batch.lines < lines.len() || lines.len() >= limit as usize;
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gzip.write_all(&text).ok()?;
    batch.body = gzip.finish().ok()?;
    Some(batch)
}

/// Why a batch was not taken.
enum Refused {
    /// The collector says it is too large: send fewer lines.
    TooLarge,
    /// No answer within [`TIMEOUT`]: fewer lines may be answered in time.
    TimedOut,
    /// Anything else, said in a few words (never the URL).
    Other(String),
}

async fn post(sink: &AuditSink, body: Vec<u8>) -> Result<(), Refused> {
    let client =
        http().ok_or_else(|| Refused::Other("no HTTP client (TLS did not start)".into()))?;
    let answer = client
        .post(sink.url.clone())
        .headers(sink.headers.clone())
        .header(CONTENT_TYPE, "application/x-ndjson")
        .header(CONTENT_ENCODING, "gzip")
        .body(body)
        .send()
        .await
        .map_err(|error| {
            // reqwest's error names the URL, which may carry a token: say what happened only.
            if error.is_timeout() {
                Refused::TimedOut
            } else if error.is_connect() {
                Refused::Other("could not connect".into())
            } else {
                Refused::Other("the request failed".into())
            }
        })?;
    let status = answer.status();
    if status.is_success() {
        return Ok(());
    }
    if status == reqwest::StatusCode::PAYLOAD_TOO_LARGE {
        return Err(Refused::TooLarge);
    }
    Err(Refused::Other(format!("the collector answered {status}")))
}

/// Runs for the life of the server: holds the sink, reads what it was not sent, sends it,
/// moves its cursor. Stopped at shutdown wherever it is (a batch cut short is sent again).
pub(super) async fn stream(state: AppState, sink: Arc<AuditSink>) {
    let mut limit = BATCH_LINES;
    let mut failures: u32 = 0;
    let mut dropped_seen: Option<i64> = None;
    loop {
        let store = Arc::clone(&state.store);
        let held = Arc::clone(&sink);
        let began = std::time::Instant::now();
        let read = tokio::task::spawn_blocking(move || {
            let access = store.access();
            let Some(cursor) = access.hold_sink(&held.id, &held.label, &held.owner)? else {
                return Ok(None);
            };
            let lines = access.stream_after(&cursor, limit)?;
            Ok::<_, crate::store::StoreError>(Some((cursor, encode(&lines, &cursor, limit))))
        })
        .await;
        let (cursor, batch) = match read {
            Ok(Ok(Some(read))) => read,
            // Another replica sends (and reports the lag); look again when its lease may have
            // lapsed.
            Ok(Ok(None)) => {
                metrics::gauge!("custory_audit_sink_lag_seconds").set(0.0);
                tokio::time::sleep(POLL * 5).await;
                continue;
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, sink = %sink.label, "could not read the audit stream; will retry");
                tokio::time::sleep(POLL * 5).await;
                continue;
            }
            Err(_) => {
                tokio::time::sleep(POLL).await;
                continue;
            }
        };
        if dropped_seen.is_none() {
            tracing::info!(sink = %sink.label, events_after = cursor.events_after,
                calls_after = cursor.calls_after, sent = cursor.sent,
                "streaming the audit trail and the record of calls");
        }
        note_dropped(&sink, cursor.dropped, &mut dropped_seen);
        let Some(batch) = batch else {
            metrics::gauge!("custory_audit_sink_lag_seconds").set(0.0);
            tokio::time::sleep(POLL).await;
            continue;
        };
        let read_took = began.elapsed();
        let lag = (state.store.now() - batch.oldest).num_seconds().max(0);
        metrics::gauge!("custory_audit_sink_lag_seconds").set(lag as f64);
        let posted = std::time::Instant::now();
        let result = post(&sink, batch.body).await;
        tracing::debug!(sink = %sink.label, lines = batch.lines, ok = result.is_ok(),
            read_ms = read_took.as_millis() as u64, post_ms = posted.elapsed().as_millis() as u64,
            "audit stream batch");
        match result {
            Ok(()) => {
                if failures > 0 {
                    tracing::info!(sink = %sink.label, failures, "the audit sink takes lines again");
                }
                failures = 0;
                // Taken: grow back towards a full batch after a refusal made it smaller.
                limit = limit.saturating_mul(2).min(BATCH_LINES);
                let store = Arc::clone(&state.store);
                let held = Arc::clone(&sink);
                let (events_after, calls_after, lines) =
                    (batch.events_after, batch.calls_after, batch.lines);
                let moved = tokio::task::spawn_blocking(move || {
                    store.access().sent_to_sink(
                        &held.id,
                        &held.owner,
                        events_after,
                        calls_after,
                        lines,
                    )
                })
                .await;
                let pause = match moved {
                    Ok(Ok(true)) => {
                        metrics::counter!("custory_audit_sink_lines_total", "source" => "audit")
                            .increment(batch.by_source[0]);
                        metrics::counter!("custory_audit_sink_lines_total", "source" => "calls")
                            .increment(batch.by_source[1]);
                        // When more waits, go on at once.
                        if batch.more { Duration::ZERO } else { POLL }
                    }
                    Ok(Ok(false)) => {
                        tracing::info!(sink = %sink.label,
                            "another replica took the audit sink over; it sends from here");
                        POLL
                    }
                    // Not sent again at once: the database may be failing writes for a while.
                    Ok(Err(error)) => {
                        tracing::warn!(%error, sink = %sink.label,
                            "could not note what the audit sink took; it is sent again");
                        POLL * 5
                    }
                    Err(_) => POLL * 5,
                };
                tokio::time::sleep(pause).await;
            }
            Err(refused) => {
                failures = failures.saturating_add(1);
                metrics::counter!("custory_audit_sink_failures_total").increment(1);
                let wait = backoff(failures);
                // Too large, or too slow to answer: half of what was sent goes next.
                let smaller = u32::try_from(batch.lines / 2).unwrap_or(limit).max(1);
                match refused {
                    Refused::TooLarge if batch.lines > 1 => {
                        limit = smaller;
                        tracing::warn!(sink = %sink.label, lines = limit,
                            "the audit sink refused a batch as too large; sending fewer lines");
                    }
                    Refused::TooLarge => tracing::error!(sink = %sink.label,
                        retry_in_secs = wait.as_secs(),
                        "the audit sink refuses even one line as too large; the stream waits \
                         until it takes it"),
                    Refused::TimedOut => {
                        limit = smaller;
                        tracing::warn!(sink = %sink.label, failures, lines = limit,
                            retry_in_secs = wait.as_secs(),
                            "the audit sink did not answer within 10 s; sending fewer lines");
                    }
                    Refused::Other(why) => tracing::warn!(sink = %sink.label, failures,
                        retry_in_secs = wait.as_secs(), "could not send to the audit sink: {why}"),
                }
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Gives the sink's lease up, so another replica sends at once (at shutdown).
pub(super) fn release(state: &AppState, sink: &AuditSink) {
    if let Err(error) = state.store.access().release_sink(&sink.id, &sink.owner) {
        tracing::warn!(%error, "could not give the audit sink up; another replica takes it in 30 s");
    }
}

/// 1 s, 2 s, 4 s… up to [`BACKOFF_MAX`].
fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.saturating_sub(1).min(6)).min(BACKOFF_MAX)
}

/// Sets the dropped count, and says so when it grew.
fn note_dropped(sink: &AuditSink, dropped: i64, seen: &mut Option<i64>) {
    let total = u64::try_from(dropped).unwrap_or(0);
    metrics::counter!("custory_audit_sink_dropped_total").absolute(total);
    // Said once at start for what earlier runs counted, then as it grows.
    let new = dropped - seen.unwrap_or(0);
    if new > 0 {
        tracing::error!(sink = %sink.label, dropped = new, total = dropped,
            "call records were pruned (past --audit-retention) before the audit sink took them");
    }
    *seen = Some(dropped);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sink_is_known_by_its_url_without_query_or_credentials_and_shown_by_host_and_port() {
        let headers = ["Authorization: Splunk abc".to_owned(), String::new()];
        let sink = AuditSink::new("https://u:p@logs.example.com:8088/in/tok?key=1#x", &headers)
            .expect("a sink");
        let rotated =
            AuditSink::new("https://logs.example.com:8088/in/tok?key=2", &[]).expect("a sink");
        let other = AuditSink::new("https://logs.example.com:8088/elsewhere", &[]).expect("a sink");
        assert_eq!(sink.id, rotated.id, "a token rotated in the query keeps the cursor");
        assert_ne!(sink.id, other.id);
        assert_eq!(sink.label(), "logs.example.com:8088");
        assert_eq!(sink.headers.len(), 1, "a blank entry is no header");
        assert!(!format!("{sink:?}").contains("tok"));
    }

    #[test]
    fn a_bad_header_is_refused_without_repeating_it() {
        for header in ["X-Api-Key=abc:def", "no colon secret"] {
            let error =
                AuditSink::new("http://127.0.0.1:9/in", &[header.to_owned()]).expect_err("refused");
            assert!(!error.contains("abc") && !error.contains("secret"), "{error}");
            assert!(error.starts_with("header 1 "), "{error}");
        }
        let error = AuditSink::new("ftp://example.com/", &[]).expect_err("refused");
        assert!(error.contains("http or https"), "{error}");
    }
}
