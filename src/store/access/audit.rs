//! The audit trail: key lifecycle, rejected authentication, write tool calls and new origins
//! (the calls themselves, reads included, are in `activity.rs`).

use crate::store::db::{Connection, DbResult, Row, params};
use crate::store::page::{Budget, Cursor, fingerprint, paged};

use super::AccessStore;
use crate::api::{Author, AuthorKind, Event, EventKind};
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
    /// Who did it.
    pub actor: &'a Author,
}

/// Writes `event` on `conn` (so callers can make it part of their own transaction), with the
/// webhook deliveries it makes.
pub(crate) fn insert_event(conn: &Connection, at: i64, event: &NewEvent<'_>) -> StoreResult<()> {
    // Ids must be handed out in the order rows become visible (`sink.rs`): on PostgreSQL,
    // only a transaction holds the shared write lock.
    debug_assert!(conn.in_transaction(), "an audit event written outside a transaction");
    conn.prepare_cached(
        "INSERT INTO audit_events (workspace_id, at, kind, key_id, key_prefix, detail, actor,
                                   actor_member, actor_name)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        event.workspace_id,
        at,
        event.kind.as_str(),
        event.key_id,
        event.key_prefix,
        event.detail,
        event.actor.kind.as_str(),
        event.actor.member_id,
        event.actor.name
    ])?;
    // The webhooks it goes out to, in the same transaction (the outbox).
    super::outbox::enqueue(conn, at, event)
}

/// Records `event` in a transaction of its own: with its webhook deliveries, and (on
/// PostgreSQL) under the shared write lock, so ids are handed out in the order rows become
/// visible, which the audit stream's cursor relies on (`sink.rs`).
pub(super) fn record_event(s: &AccessStore<'_>, event: &NewEvent<'_>) -> StoreResult<()> {
    let conn = s.writer();
    let tx = conn.transaction()?;
    insert_event(&tx, s.now().timestamp(), event)?;
    tx.commit()?;
    Ok(())
}

/// Which events of a workspace a page holds: all, or those of one key, or by one actor.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventFilter<'a> {
    pub key_id: Option<&'a str>,
    /// A member's name, or an actor kind that names no member (`administrator`, `key`…).
    pub by: Option<&'a str>,
}

/// Only the events of this key (or all).
impl<'a> From<Option<&'a str>> for EventFilter<'a> {
    fn from(key_id: Option<&'a str>) -> Self {
        Self { key_id, by: None }
    }
}

/// One page of a workspace's events, newest first, optionally only those of one key.
pub(super) fn list_events(
    s: &AccessStore<'_>,
    workspace_id: i64,
    filter: EventFilter<'_>,
    limit: u32,
    cursor: Option<&str>,
) -> StoreResult<(Vec<Event>, Option<String>)> {
    let query = fingerprint(&[filter.key_id.unwrap_or(""), filter.by.unwrap_or("")]);
    let before = match cursor.map(str::trim).filter(|c| !c.is_empty()) {
        Some(text) => Cursor::decode(text, "events", query, 1)?.position[0],
        None => i64::MAX,
    };
    let events = events_page(&s.reader()?, workspace_id, filter, before, limit)?;
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
    filter: EventFilter<'_>,
    before: i64,
    limit: u32,
) -> StoreResult<Vec<Event>> {
    // `by` names a member, or else a kind of actor that is no member.
    let by_kind = filter.by.and_then(AuthorKind::parse).filter(|k| *k != AuthorKind::Member);
    let (by_name, by_kind) = match (filter.by, by_kind) {
        (_, Some(kind)) => (None, Some(kind.as_str())),
        (by, None) => (by, None),
    };
    let rows = conn.query(
        "SELECT id, at, kind, key_id, key_prefix, detail, actor, actor_member, actor_name
         FROM audit_events
         WHERE workspace_id = ?1 AND (CAST(?2 AS TEXT) IS NULL OR key_id = ?2) AND id < ?3
           AND (CAST(?5 AS TEXT) IS NULL OR actor_name = ?5)
           AND (CAST(?6 AS TEXT) IS NULL OR (actor = ?6 AND actor_name IS NULL))
         ORDER BY id DESC LIMIT ?4",
        params![workspace_id, filter.key_id, before, i64::from(limit) + 1, by_name, by_kind],
    )?;
    let events = rows.iter().map(event_row).collect::<DbResult<Vec<_>>>()?;
    Ok(events)
}

/// An event as read by `SELECT id, at, kind, key_id, key_prefix, detail, actor, actor_member,
/// actor_name FROM audit_events`.
pub(super) fn event_row(row: &Row) -> DbResult<Event> {
    Ok(Event {
        id: row.get("id")?,
        at: from_secs(row.get("at")?),
        kind: row.get_parsed("kind", EventKind::parse)?,
        key_id: row.get("key_id")?,
        key_prefix: row.get("key_prefix")?,
        detail: row.get("detail")?,
        actor: Author {
            // The column's values are written from the closed set.
            kind: row.get_parsed("actor", AuthorKind::parse)?,
            member_id: row.get("actor_member")?,
            name: row.get("actor_name")?,
        },
        call: None,
    })
}
