//! The webhooks' outbox (issue 35): [`enqueue`], called by the audit trail's `insert_event`
//! in the same transaction as the event, writes one delivery row per endpoint subscribed to
//! it. Kept apart from `webhooks.rs` (which audits endpoints added and removed) so that
//! neither imports the other back.

use super::NewEvent;
use crate::api::WebhookEvent;
use crate::store::db::{Connection, params};
use crate::store::{StoreResult, from_secs, new_id};

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
/// stable event id.
pub(super) fn insert_delivery(
    conn: &Connection,
    endpoint: &str,
    kind: WebhookEvent,
    at: i64,
    data: &serde_json::Value,
) -> StoreResult<String> {
    let event_id = new_id("msg");
    let payload = serde_json::json!({
        "type": kind.as_str(),
        "timestamp": from_secs(at).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "data": data,
    });
    conn.execute(
        "INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, payload, created_at,
                                         next_attempt_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        params![endpoint, event_id, kind.as_str(), payload.to_string(), at],
    )?;
    Ok(event_id)
}
