//! The audit trail: key lifecycle, rejected authentication, write tool calls and new origins
//! (the calls themselves, reads included, are in `activity.rs`).

use crate::store::db::{Connection, DbResult, params};
use crate::store::page::{Budget, Cursor, fingerprint, paged};

use super::AccessStore;
use crate::api::{Event, EventKind};
use crate::store::{StoreResult, from_secs};

/// Who makes a change, for the audit trail: the MCP key that called the tool.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub key_id: &'a str,
    pub key_prefix: &'a str,
}

/// A new audit event, before it has an id.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub workspace_id: i64,
    pub kind: EventKind,
    pub key_id: Option<&'a str>,
    pub key_prefix: Option<&'a str>,
    pub detail: &'a str,
}

/// Writes `event` on `conn` (so callers can make it part of their own transaction).
pub(crate) fn insert_event(conn: &Connection, at: i64, event: &NewEvent<'_>) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO audit_events (workspace_id, at, kind, key_id, key_prefix, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        event.workspace_id,
        at,
        event.kind.as_str(),
        event.key_id,
        event.key_prefix,
        event.detail
    ])?;
    Ok(())
}

pub(super) fn record_event(s: &AccessStore<'_>, event: &NewEvent<'_>) -> StoreResult<()> {
    insert_event(&s.writer(), s.now().timestamp(), event)
}

/// One page of a workspace's events, newest first, optionally only those of one key.
pub(super) fn list_events(
    s: &AccessStore<'_>,
    workspace_id: i64,
    key_id: Option<&str>,
    limit: u32,
    cursor: Option<&str>,
) -> StoreResult<(Vec<Event>, Option<String>)> {
    let query = fingerprint(&[key_id.unwrap_or("")]);
    let before = match cursor.map(str::trim).filter(|c| !c.is_empty()) {
        Some(text) => Cursor::decode(text, "events", query, 1)?.position[0],
        None => i64::MAX,
    };
    let events = events_page(&s.reader()?, workspace_id, key_id, before, limit)?;
    let page = paged(events, limit as usize, Budget::new(usize::MAX), |event| {
        Cursor::new("events", query, vec![event.id])
    });
    Ok((page.rows, page.next.map(|cursor| cursor.encode())))
}

/// Up to `limit + 1` events of a workspace (or of one key) with ids below `before`, newest
/// first.
pub(super) fn events_page(
    conn: &Connection,
    workspace_id: i64,
    key_id: Option<&str>,
    before: i64,
    limit: u32,
) -> StoreResult<Vec<Event>> {
    let rows = conn.query(
        "SELECT id, at, kind, key_id, key_prefix, detail FROM audit_events
         WHERE workspace_id = ?1 AND (CAST(?2 AS TEXT) IS NULL OR key_id = ?2) AND id < ?3
         ORDER BY id DESC LIMIT ?4",
        params![workspace_id, key_id, before, i64::from(limit) + 1],
    )?;
    let events = rows
        .iter()
        .map(|row| {
            Ok(Event {
                id: row.get("id")?,
                at: from_secs(row.get("at")?),
                kind: row.get_parsed("kind", EventKind::parse)?,
                key_id: row.get("key_id")?,
                key_prefix: row.get("key_prefix")?,
                detail: row.get("detail")?,
                call: None,
            })
        })
        .collect::<DbResult<Vec<_>>>()?;
    Ok(events)
}
