//! Signed webhooks (issue 35): the delivery worker and the admin API's webhook routes.
//!
//! Deliveries follow the Standard Webhooks specification: the headers `webhook-id` (the event's
//! id, the same at every attempt), `webhook-timestamp` (seconds) and `webhook-signature`
//! (`v1,` and the base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` keyed with the base64-decoded
//! part of the endpoint's `whsec_…` secret). Requests time out after 10 s, follow no redirect,
//! read no answer body, and go to public addresses only unless `serve
//! --allow-private-webhooks`. The outbox (`store::access::webhooks`) makes them at least once,
//! in order per endpoint.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::admin::workspace;
use super::admission::Caller;
use super::client_metadata::{PublicOnly, is_public};
use super::error::{ApiError, ApiResult};
use super::extract::{JsonBody, Path, Query};
use super::{AppState, work};
use crate::api::{self, WebhookEvent, WebhookFormat};
use crate::store::access::{Attempt, ClaimLimits, Claimed};

/// How long one delivery may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How often the worker looks for due deliveries.
const POLL: Duration = Duration::from_secs(1);
/// Deliveries in flight at once, from this replica (at most one per endpoint).
const IN_FLIGHT: usize = 32;
/// Of those, at most this many for one workspace: a workspace with many slow receivers (up to
/// 20 endpoints, each holding a send for up to 10 s) cannot take every send of the replica,
/// and eight workspaces can be served at once.
const IN_FLIGHT_PER_WORKSPACE: usize = 4;
/// The longest endpoint URL accepted.
const URL_MAX: usize = 2_000;
/// Deliveries listed at most.
const LIST_MAX: i64 = 200;

/// HMAC-SHA256 (RFC 2104).
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    let outer = Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize();
    let mut out = [0u8; 32];
    out.copy_from_slice(&outer);
    out
}

/// The `webhook-signature` header's value for one delivery.
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &str) -> String {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    // Secrets are written by this server in base64; one that is not is used as bytes.
    let key = BASE64.decode(encoded).unwrap_or_else(|_| encoded.as_bytes().to_vec());
    let mac = hmac_sha256(&key, format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", BASE64.encode(mac))
}

/// The HTTP client: no redirects, a timeout, and (unless private addresses are allowed) a
/// resolver that answers public addresses only, so a name cannot point inside.
fn http(allow_private: bool) -> Option<&'static reqwest::Client> {
    static PUBLIC: OnceLock<Option<reqwest::Client>> = OnceLock::new();
    static ANY: OnceLock<Option<reqwest::Client>> = OnceLock::new();
    let cell = if allow_private { &ANY } else { &PUBLIC };
    cell.get_or_init(|| {
        let mut builder = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("custory-mcp/", env!("CARGO_PKG_VERSION")));
        if !allow_private {
            builder = builder.dns_resolver(Arc::new(PublicOnly));
        }
        // Fails only when the TLS backend cannot start; nothing is sent then.
        builder.build().ok()
    })
    .as_ref()
}

/// Why `url` cannot be an endpoint (a sentence), or nothing.
fn check_url(url: &str, allow_private: bool) -> Result<(), String> {
    if url.len() > URL_MAX {
        return Err(format!("the URL is longer than {URL_MAX} characters"));
    }
    let parsed = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "https" | "http") || parsed.host().is_none() {
        return Err("the URL must be an http or https URL with a host".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("the URL must not carry credentials".into());
    }
    let literal = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
        _ => None,
    };
    if !allow_private && literal.is_some_and(|ip| !is_public(ip)) {
        return Err("the URL points at a private address; this server sends to public \
                    addresses only (start it with `custory-mcp serve --allow-private-webhooks` \
                    for a receiver on your network)"
            .into());
    }
    Ok(())
}

/// Sends one delivery, signed; how it went (never the secret, the body or the URL).
pub async fn send(claimed: &Claimed, allow_private: bool) -> Attempt {
    let started = Instant::now();
    let millis = |started: Instant| i64::try_from(started.elapsed().as_millis()).unwrap_or(0);
    let failed =
        |error: String| Attempt { status: None, error: Some(error), millis: millis(started) };
    if let Err(why) = check_url(&claimed.url, allow_private) {
        return failed(why);
    }
    let Some(client) = http(allow_private) else {
        return failed("this server cannot make HTTPS requests".into());
    };
    let request = client.post(&claimed.url).header("content-type", "application/json");
    let request = match claimed.format {
        WebhookFormat::Standard => {
            let timestamp = chrono::Utc::now().timestamp();
            let signed =
                signature(&claimed.secret.0, &claimed.event_id, timestamp, &claimed.payload);
            request
                .header("webhook-id", &claimed.event_id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signed)
                .body(claimed.payload.clone())
        }
        // A chat message: the URL is the receiver's secret, nothing is signed.
        WebhookFormat::Slack => request.body(slack_message(&claimed.payload).to_string()),
    };
    let sent = request.send().await;
    match sent {
        // The answer's body is not read: only its status counts.
        Ok(response) => {
            let status = response.status();
            let error = (!status.is_success()).then(|| format!("the receiver answered {status}"));
            Attempt { status: Some(status.as_u16()), error, millis: millis(started) }
        }
        Err(error) => {
            // Without the URL: a receiver's URL may itself be a secret.
            let error = error.without_url();
            let why = if error.is_timeout() {
                format!("no answer within {} s", TIMEOUT.as_secs())
            } else if error.is_connect() {
                "could not connect to the receiver".to_owned()
            } else {
                format!("the request failed: {error}")
            };
            failed(why)
        }
    }
}

/// A Slack-compatible incoming webhook's message for a payload: `{"text": …}`, e.g.
/// "custory-mcp · acme: key.revoked: key ci (cst_AbCd1234), by Ana: revoked". Names keys by
/// name and prefix, as the payload does; never a token.
fn slack_message(payload: &str) -> serde_json::Value {
    let payload: serde_json::Value = serde_json::from_str(payload).unwrap_or_default();
    let data = &payload["data"];
    // Slack reads `<…>` as links and mentions (`<!channel>`), and a client's name comes from
    // the client: `&`, `<` and `>` are escaped as Slack asks.
    let text = |value: &serde_json::Value| {
        value.as_str().map(|v| {
            crate::api::displayable(v)
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        })
    };
    let mut line = format!(
        "custory-mcp · {}: {}",
        text(&data["workspace"]).unwrap_or_else(|| "?".into()),
        text(&payload["type"]).unwrap_or_else(|| "event".into())
    );
    if let Some(prefix) = text(&data["key"]["prefix"]) {
        let name = text(&data["key"]["name"]).unwrap_or_default();
        line.push_str(&format!(": key {name} ({prefix})"));
    }
    let actor = &data["actor"];
    if let Some(by) = text(&actor["name"]).or_else(|| text(&actor["kind"])) {
        line.push_str(&format!(", by {by}"));
    }
    if let Some(detail) = text(&data["detail"]).filter(|d| !d.is_empty()) {
        line.push_str(&format!(": {detail}"));
    }
    serde_json::json!({ "text": line })
}

/// The delivery worker: every second, claims due deliveries (the oldest pending one of each
/// endpoint not already in flight), up to [`IN_FLIGHT`] at once and
/// [`IN_FLIGHT_PER_WORKSPACE`] of one workspace, and sends each in a task of its own that
/// records the attempt: a slow receiver holds up its own endpoint only, and a workspace's
/// slow receivers its own share only. Runs for the life of the server; stopping it stops the
/// sends in flight (their leases run out and they go again: at least once).
pub(super) async fn deliver(state: AppState) {
    let allow_private = state.config.allow_private_webhooks;
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut in_flight = tokio::task::JoinSet::new();
    // Sends in flight by workspace; each task's guard gives its place back, however it ends.
    let by_workspace = Arc::new(Mutex::new(HashMap::<i64, usize>::new()));
    loop {
        tick.tick().await;
        while in_flight.try_join_next().is_some() {}
        let free = IN_FLIGHT.saturating_sub(in_flight.len());
        if free == 0 {
            continue;
        }
        let store = Arc::clone(&state.store);
        let busy = lock(&by_workspace).clone();
        let claimed = tokio::task::spawn_blocking(move || {
            let limits = ClaimLimits {
                limit: free,
                per_workspace: IN_FLIGHT_PER_WORKSPACE,
                in_flight: &busy,
            };
            store.access().claim_webhook_deliveries(limits)
        })
        .await;
        let claimed = match claimed {
            Ok(Ok(claimed)) => claimed,
            Ok(Err(error)) => {
                tracing::warn!(%error, "could not read the webhook outbox; will retry");
                continue;
            }
            Err(_) => continue,
        };
        for claimed in claimed {
            let store = Arc::clone(&state.store);
            let place = InFlight::take(&by_workspace, claimed.workspace_id);
            in_flight.spawn(async move {
                let _place = place;
                let attempt = send(&claimed, allow_private).await;
                log_attempt(&claimed, &attempt);
                let recorded = tokio::task::spawn_blocking(move || {
                    let recorded = store.access().record_webhook_attempt(&claimed, &attempt);
                    (claimed, recorded)
                })
                .await;
                match recorded {
                    Ok((claimed, Ok(false))) => {
                        tracing::warn!(webhook = %claimed.webhook_id, event = %claimed.event_id,
                                       "a webhook attempt ended after its lease ran out and \
                                        another claim took the delivery; logged as an attempt only");
                    }
                    Ok((_, Err(error))) => {
                        // The lease runs out and it is sent again: at least once.
                        tracing::warn!(%error, "could not record a webhook delivery; will resend");
                    }
                    _ => {}
                }
            });
        }
    }
}

/// Locks the sends-by-workspace count (a panic while it was held left it whole: it is only
/// counts).
fn lock(counts: &Mutex<HashMap<i64, usize>>) -> std::sync::MutexGuard<'_, HashMap<i64, usize>> {
    counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One send's place in its workspace's share, given back when dropped.
struct InFlight {
    counts: Arc<Mutex<HashMap<i64, usize>>>,
    workspace_id: i64,
}

impl InFlight {
    fn take(counts: &Arc<Mutex<HashMap<i64, usize>>>, workspace_id: i64) -> Self {
        *lock(counts).entry(workspace_id).or_insert(0) += 1;
        Self { counts: Arc::clone(counts), workspace_id }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        if let Some(n) = counts.get_mut(&self.workspace_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.workspace_id);
            }
        }
    }
}

fn log_attempt(claimed: &Claimed, attempt: &Attempt) {
    let attempts = claimed.attempts + 1;
    if attempt.succeeded() {
        tracing::info!(webhook = %claimed.webhook_id, event = %claimed.event_id, attempts,
                       status = attempt.status, "webhook delivered");
    } else {
        tracing::warn!(webhook = %claimed.webhook_id, event = %claimed.event_id, attempts,
                       status = attempt.status, error = attempt.error.as_deref(),
                       "webhook delivery failed; will retry");
    }
}

// Admin API --------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
pub struct AddBody {
    url: Option<String>,
    /// Every event when absent or empty.
    #[serde(default)]
    events: Vec<WebhookEvent>,
    /// `standard` when absent.
    format: Option<WebhookFormat>,
}

/// `POST …/{ws}/webhooks`: the endpoint and its signing secret, shown in this answer only.
pub async fn add(
    caller: Caller,
    State(state): State<AppState>,
    Path(ws): Path<String>,
    JsonBody(body): JsonBody<AddBody>,
) -> ApiResult<(StatusCode, Json<api::CreatedWebhookResponse>)> {
    let url = body.url.as_deref().map(str::trim).unwrap_or_default().to_owned();
    if url.is_empty() {
        return Err(ApiError::unprocessable("invalid_url", "url is required: where to send"));
    }
    check_url(&url, state.config.allow_private_webhooks)
        .map_err(|why| ApiError::unprocessable("invalid_url", why))?;
    let mut events = body.events;
    events.sort_by_key(|e| e.as_str());
    events.dedup();
    let author = caller.author();
    let by = author.name.clone().unwrap_or_else(|| "administrator".to_owned());
    let (webhook, secret) = work::write::<_, ApiError>(&state, move |store| {
        let ws = workspace(store, &ws)?;
        let format = body.format.unwrap_or(WebhookFormat::Standard);
        Ok(store.access().create_webhook(ws.id, &url, &events, format, &by, &author)?)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(api::CreatedWebhookResponse { webhook, secret })))
}

/// `GET …/{ws}/webhooks`.
pub async fn list(
    _: Caller,
    State(state): State<AppState>,
    Path(ws): Path<String>,
) -> ApiResult<Json<api::WebhooksResponse>> {
    let webhooks = work::read::<_, ApiError>(&state, move |store| {
        let ws = workspace(store, &ws)?;
        Ok(store.access().list_webhooks(ws.id)?)
    })
    .await?;
    Ok(Json(api::WebhooksResponse { webhooks }))
}

/// `POST …/{ws}/webhooks/{id}/remove`.
pub async fn remove(
    caller: Caller,
    State(state): State<AppState>,
    Path((ws, id)): Path<(String, String)>,
) -> ApiResult<Json<serde_json::Value>> {
    let removed = id.clone();
    work::write::<_, ApiError>(&state, move |store| {
        let ws = workspace(store, &ws)?;
        Ok(store.access().remove_webhook(ws.id, &id, &caller.author())?)
    })
    .await?;
    Ok(Json(serde_json::json!({"id": removed, "removed": true})))
}

/// `POST …/{ws}/webhooks/{id}/test`: a signed `webhook.test` event sent now (outside the
/// endpoint's order); the answer is its delivery, as the receiver took it.
pub async fn test(
    _: Caller,
    State(state): State<AppState>,
    Path((ws, id)): Path<(String, String)>,
) -> ApiResult<Json<api::WebhookDelivery>> {
    let (ws_id, delivery, claimed) = work::write::<_, ApiError>(&state, move |store| {
        let ws = workspace(store, &ws)?;
        let delivery = store.access().enqueue_webhook_test(ws.id, &id)?;
        Ok((ws.id, delivery, store.access().claim_webhook_delivery(delivery)?))
    })
    .await?;
    if let Some(claimed) = claimed {
        let attempt = send(&claimed, state.config.allow_private_webhooks).await;
        log_attempt(&claimed, &attempt);
        work::write::<_, ApiError>(&state, move |store| {
            Ok(store.access().record_webhook_attempt(&claimed, &attempt)?)
        })
        .await?;
    }
    let found = work::read::<_, ApiError>(&state, move |store| {
        Ok(store.access().webhook_delivery(ws_id, delivery)?)
    })
    .await?
    .ok_or_else(|| ApiError::not_found("delivery_not_found", "the test delivery is gone"))?;
    Ok(Json(found))
}

#[derive(Debug, Deserialize)]
pub struct DeliveriesQuery {
    webhook: Option<String>,
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// `GET …/{ws}/webhook-deliveries`: the most recent first (`?webhook=ID`, `?limit=N`,
/// `?cursor=`), a page at a time.
pub async fn deliveries(
    _: Caller,
    State(state): State<AppState>,
    Path(ws): Path<String>,
    Query(query): Query<DeliveriesQuery>,
) -> ApiResult<Json<api::WebhookDeliveriesResponse>> {
    let limit = query.limit.unwrap_or(50).clamp(1, LIST_MAX);
    let (deliveries, next_cursor) = work::read::<_, ApiError>(&state, move |store| {
        let ws = workspace(store, &ws)?;
        let page = store.access().webhook_deliveries_page(
            ws.id,
            query.webhook.as_deref(),
            limit,
            query.cursor.as_deref(),
        );
        page.map_err(|error| match error {
            crate::store::StoreError::Invalid(message) => {
                ApiError::bad_request("invalid_cursor", message)
            }
            other => other.into(),
        })
    })
    .await?;
    Ok(Json(api::WebhookDeliveriesResponse { deliveries, next_cursor }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_send_gives_its_place_in_its_workspace_share_back_however_it_ends() {
        let counts = Arc::new(Mutex::new(HashMap::new()));
        let first = InFlight::take(&counts, 7);
        let second = InFlight::take(&counts, 7);
        let other = InFlight::take(&counts, 8);
        assert_eq!(lock(&counts).get(&7), Some(&2));
        drop(first);
        assert_eq!(lock(&counts).get(&7), Some(&1));
        // A task that panics drops its place too.
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _place = second;
            panic!("a send that panicked");
        }));
        assert!(panicked.is_err());
        assert_eq!(lock(&counts).get(&7), None, "an idle workspace leaves no entry");
        drop(other);
        assert!(lock(&counts).is_empty());
    }

    #[test]
    fn a_slack_message_escapes_what_slack_reads_as_markup() {
        let payload = serde_json::json!({
            "type": "key.new_origin",
            "data": {"workspace": "acme", "key": {"name": "<!channel>", "prefix": "cst_abc"},
                     "detail": "client <https://evil|Log in> & co"},
        });
        let text =
            slack_message(&payload.to_string())["text"].as_str().unwrap_or_default().to_owned();
        assert!(text.contains("&lt;!channel&gt;"), "{text}");
        assert!(text.contains("&lt;https://evil|Log in&gt; &amp; co"), "{text}");
        assert!(!text.contains('<'), "{text}");
    }

    #[test]
    fn hmac_matches_rfc_4231_and_the_standard_webhooks_example() {
        // RFC 4231, test case 2.
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        // The specification's example (standard-webhooks, spec/standard-webhooks.md).
        let signed = signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(signed, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
