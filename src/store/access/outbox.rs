//! The webhooks' outbox (issue 35): [`enqueue`], called by the audit trail's `insert_event`
//! in the same transaction as the event, writes one delivery row per endpoint subscribed to
//! it. Kept apart from `webhooks.rs` (which audits endpoints added and removed) so that
//! neither imports the other back.

use super::NewEvent;
use crate::api::WebhookEvent;
use crate::store::db::{Connection, params};
use crate::store::{StoreResult, from_secs, new_id};

/// Deliveries an endpoint may have pending (neither delivered nor given up). Past it, each new
/// one gives up the oldest pending one not in flight: it ends `failed`, "dropped: …", counted
/// in the endpoint's `dropped` and in `custory_webhook_deliveries_dropped_total`. The newest
/// events are the ones kept (a leaked-token report after a long outage matters more than the
/// key created before it), and what is sent still goes in order: a drop leaves a gap, never a
/// swap. 10,000 is far more than a day of a workspace's key and member events (an event is
/// retried for a day, so a receiver that is down gets them all back when it returns), so only
/// a flood reaches it; it keeps a dead receiver's backlog to a few MB (payloads are under a
/// KB) and its drain (one attempt each once they are a day old) to hours, not weeks.
pub const MAX_PENDING: i64 = 10_000;

/// The `last_error` of a delivery dropped past [`MAX_PENDING`].
pub fn dropped_error() -> String {
    format!("dropped: more than {MAX_PENDING} pending for this endpoint")
}

pub(super) fn parse_events(text: &str) -> Vec<WebhookEvent> {
    text.split(',').filter_map(WebhookEvent::parse).collect()
}

/// Writes, on `conn` (inside the caller's transaction), one outbox row per active endpoint of
/// the event's workspace subscribed to its kind. Events that do not go out cost nothing.
pub(crate) fn enqueue(conn: &Connection, at: i64, event: &NewEvent<'_>) -> StoreResult<()> {
    let Some(kind) = WebhookEvent::of(event.kind) else { return Ok(()) };
    let endpoints = conn.query(
        "SELECT id, events FROM webhook_endpoints WHERE workspace_id = ?1 AND removed_at IS NULL",
        params![event.workspace_id],
    )?;
    let mut subscribed = Vec::new();
    for row in &endpoints {
        let events: String = row.get("events")?;
        let events = parse_events(&events);
        if events.is_empty() || events.contains(&kind) {
            subscribed.push(row.get::<String>("id")?);
        }
    }
    if subscribed.is_empty() {
        return Ok(());
    }
    let workspace: Option<String> = conn
        .query("SELECT slug FROM workspaces WHERE id = ?1", params![event.workspace_id])?
        .first()
        .map(|row| row.get("slug"))
        .transpose()?;
    let key = match event.key_id {
        Some(key_id) => {
            let found =
                conn.query("SELECT name, expires_at FROM mcp_keys WHERE id = ?1", params![key_id])?;
            let row = found.first();
            let name: Option<String> = row.map(|row| row.get("name")).transpose()?;
            let expires_at: Option<i64> =
                row.map(|row| row.get::<Option<i64>>("expires_at")).transpose()?.flatten();
            let expires_at = expires_at
                .map(|at| from_secs(at).to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            Some(serde_json::json!({"id": key_id, "name": name, "prefix": event.key_prefix,
                                    "expires_at": expires_at}))
        }
        None => None,
    };
    let data = serde_json::json!({
        "workspace": workspace,
        "key": key,
        "actor": event.actor,
        "detail": event.detail,
    });
    for endpoint in subscribed {
        insert_delivery(conn, &endpoint, kind, at, &data)?;
    }
    Ok(())
}

/// One outbox row: a Standard Webhooks payload (`type`, `timestamp`, `data`) under a new,
/// stable event id; returns the event id and the delivery's id. Keeps the endpoint within
/// [`MAX_PENDING`].
pub(super) fn insert_delivery(
    conn: &Connection,
    endpoint: &str,
    kind: WebhookEvent,
    at: i64,
    data: &serde_json::Value,
) -> StoreResult<(String, i64)> {
    let event_id = new_id("msg");
    let payload = serde_json::json!({
        "type": kind.as_str(),
        "timestamp": from_secs(at).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "data": data,
    });
    let id: i64 = conn.query_row(
        "INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, payload, created_at,
                                         next_attempt_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5) RETURNING id",
        params![endpoint, event_id, kind.as_str(), payload.to_string(), at],
        |row| row.get("id"),
    )?;
    cap_pending(conn, endpoint, id, at)?;
    Ok((event_id, id))
}

/// Gives up the oldest pending deliveries of `endpoint` (not in flight) past [`MAX_PENDING`],
/// `id` being its newest. Costs one index lookup while the endpoint's oldest pending delivery
/// is fewer than [`MAX_PENDING`] ids back (ids only grow, so it cannot have more pending);
/// past that, a count of its pending ones (bounded by the cap).
fn cap_pending(conn: &Connection, endpoint: &str, id: i64, at: i64) -> StoreResult<()> {
    let oldest: Option<i64> = conn
        .query(
            "SELECT id FROM webhook_deliveries
             WHERE endpoint_id = ?1 AND delivered_at IS NULL AND failed_at IS NULL
             ORDER BY id LIMIT 1",
            params![endpoint],
        )?
        .first()
        .map(|row| row.get("id"))
        .transpose()?;
    if oldest.is_none_or(|oldest| id - oldest < MAX_PENDING) {
        return Ok(());
    }
    // Counted up to a chunk past the cap: a larger excess (a cap lowered by an upgrade) goes
    // a chunk per new event.
    let pending: i64 = conn.query_row(
        "SELECT count(*) AS n FROM (SELECT 1 FROM webhook_deliveries
             WHERE endpoint_id = ?1 AND delivered_at IS NULL AND failed_at IS NULL LIMIT ?2) p",
        params![endpoint, MAX_PENDING + 1_000],
        |row| row.get("n"),
    )?;
    let excess = pending - MAX_PENDING;
    if excess <= 0 {
        return Ok(());
    }
    let dropped = conn.execute(
        "UPDATE webhook_deliveries SET failed_at = ?3, last_error = ?4
         WHERE id IN (SELECT id FROM webhook_deliveries
                      WHERE endpoint_id = ?1 AND delivered_at IS NULL AND failed_at IS NULL
                        AND (lease_until IS NULL OR lease_until < ?3)
                      ORDER BY id LIMIT ?2)",
        params![endpoint, excess, at, dropped_error()],
    )?;
    if dropped > 0 {
        let n = i64::try_from(dropped).unwrap_or(i64::MAX);
        conn.execute(
            "UPDATE webhook_endpoints SET dropped = dropped + ?2 WHERE id = ?1",
            params![endpoint, n],
        )?;
        // Counted when written: a transaction rolled back after this over-counts, never under.
        metrics::counter!("custory_webhook_deliveries_dropped_total")
            .increment(u64::try_from(dropped).unwrap_or(0));
    }
    Ok(())
}
