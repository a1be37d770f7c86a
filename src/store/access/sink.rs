//! The audit stream's cursors (`serve --audit-sink URL`): how far each collector has been sent
//! the audit trail and the record of calls.
//!
//! The database is the stream's queue. A sink is sent the rows after its cursor, in id order,
//! and its cursor moves only after the collector accepted them, so a crash or a collector that
//! is down loses nothing (at least once; a line is named by its source and id, the same at
//! every resend). This holds because ids are handed out in the order rows become visible: on
//! SQLite there is one writer; on PostgreSQL every row of both tables is written in a
//! transaction holding the shared write lock (checked in debug builds where they are written),
//! so no row can appear later below an id already sent.
//!
//! Several replicas sending to one sink take turns by lease: the one holding it sends, the
//! others wait for it to lapse. What stays unsent is bounded by the retention: audit events
//! are kept, calls are pruned after `--audit-retention`, and a pruned call no sink was sent yet
//! is counted in that sink's `dropped` (`activity::prune_activity`).

use super::AccessStore;
use super::audit::event_row;
use crate::api::{StreamLine, StreamSource};
use crate::store::StoreResult;
use crate::store::db::{Connection, DbResult, params};

/// How long a replica holds a sink after it last sent to it or renewed its hold.
pub const LEASE_SECONDS: i64 = 30;

/// A sink as stored: what it was sent up to, and what it lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkCursor {
    /// The last audit event and call sent (and accepted).
    pub events_after: i64,
    pub calls_after: i64,
    /// Lines the collector accepted, since the sink was first used.
    pub sent: i64,
    /// Calls pruned before they were sent.
    pub dropped: i64,
}

/// Registers the sink `sink` (shown as `label`) if it is new, starting after what is recorded
/// now, and takes or renews its lease for `owner`. `None` while another replica holds it.
pub(super) fn hold_sink(
    s: &AccessStore<'_>,
    sink: &str,
    label: &str,
    owner: &str,
) -> StoreResult<Option<SinkCursor>> {
    let now = s.now().timestamp();
    // Asked every second: a reader answers while this replica's lease has long to run, or
    // another's has not run out, so an idle sink does not take the writer.
    let held = s.reader()?.query(
        "SELECT lease_owner, lease_until, events_after, calls_after, sent, dropped
         FROM audit_sinks WHERE sink = ?1",
        params![sink],
    )?;
    if let Some(row) = held.first() {
        let holder: Option<String> = row.get("lease_owner")?;
        let until: i64 = row.get("lease_until")?;
        if holder.as_deref() == Some(owner) && until > now + LEASE_SECONDS / 2 {
            return Ok(Some(cursor_row(row)?));
        }
        if holder.as_deref().is_some_and(|holder| holder != owner) && until >= now {
            return Ok(None);
        }
    }
    let conn = s.writer();
    let tx = conn.transaction()?;
    tx.execute(
        "INSERT INTO audit_sinks (sink, label, events_after, calls_after, created_at)
         SELECT ?1, ?2, COALESCE((SELECT MAX(id) FROM audit_events), 0),
                COALESCE((SELECT MAX(id) FROM key_calls), 0), ?3
         WHERE 1 = 1
         ON CONFLICT (sink) DO NOTHING",
        params![sink, label, now],
    )?;
    let taken = tx.execute(
        "UPDATE audit_sinks SET lease_owner = ?2, lease_until = ?3, label = ?4
         WHERE sink = ?1 AND (lease_owner = ?2 OR lease_owner IS NULL OR lease_until < ?5)",
        params![sink, owner, now + LEASE_SECONDS, label, now],
    )?;
    let cursor = if taken == 1 { Some(read_cursor(&tx, sink)?) } else { None };
    tx.commit()?;
    Ok(cursor)
}

/// Moves the sink's cursor past what the collector accepted (`lines` of them) and renews the
/// lease; `false` when another replica has taken the sink meanwhile (it sends again from the
/// stored cursor: at least once).
pub(super) fn sent_to_sink(
    s: &AccessStore<'_>,
    sink: &str,
    owner: &str,
    events_after: i64,
    calls_after: i64,
    lines: usize,
) -> StoreResult<bool> {
    let now = s.now().timestamp();
    let moved = s.writer().execute(
        "UPDATE audit_sinks SET
             events_after = CASE WHEN events_after < ?3 THEN ?3 ELSE events_after END,
             calls_after = CASE WHEN calls_after < ?4 THEN ?4 ELSE calls_after END,
             sent = sent + ?5, lease_until = ?6
         WHERE sink = ?1 AND lease_owner = ?2",
        params![
            sink,
            owner,
            events_after,
            calls_after,
            i64::try_from(lines).unwrap_or(i64::MAX),
            now + LEASE_SECONDS
        ],
    )?;
    Ok(moved == 1)
}

/// Gives the sink up (at shutdown), so another replica takes it at once.
pub(super) fn release_sink(s: &AccessStore<'_>, sink: &str, owner: &str) -> StoreResult<()> {
    s.writer().execute(
        "UPDATE audit_sinks SET lease_owner = NULL, lease_until = 0
         WHERE sink = ?1 AND lease_owner = ?2",
        params![sink, owner],
    )?;
    Ok(())
}

/// The next lines after `cursor`: up to `limit` audit events and calls, each source in id
/// order, merged by time (so any prefix of them is a prefix of each source).
pub(super) fn stream_after(
    s: &AccessStore<'_>,
    cursor: &SinkCursor,
    limit: u32,
) -> StoreResult<Vec<StreamLine>> {
    let conn = s.reader()?;
    let tx = conn.snapshot()?;
    let events = tx
        .query(
            "SELECT a.id, a.at, a.kind, a.key_id, a.key_prefix, a.detail, a.actor,
                    a.actor_member, a.actor_name, w.slug AS workspace
             FROM audit_events a JOIN workspaces w ON w.id = a.workspace_id
             WHERE a.id > ?1 ORDER BY a.id LIMIT ?2",
            params![cursor.events_after, i64::from(limit)],
        )?
        .iter()
        .map(|row| {
            let workspace = row.get("workspace")?;
            Ok(StreamLine { source: StreamSource::Audit, workspace, event: event_row(row)? })
        })
        .collect::<DbResult<Vec<_>>>()?;
    let calls = tx
        .query(
            "SELECT c.id, c.at, c.what, c.outcome, c.bytes, c.ids, c.ip, c.key_id, k.prefix,
                    w.slug AS workspace
             FROM key_calls c JOIN mcp_keys k ON k.id = c.key_id
                  JOIN workspaces w ON w.id = c.workspace_id
             WHERE c.id > ?1 ORDER BY c.id LIMIT ?2",
            params![cursor.calls_after, i64::from(limit)],
        )?
        .iter()
        .map(|row| {
            let workspace = row.get("workspace")?;
            let event = super::activity::call_row(row)?;
            Ok(StreamLine { source: StreamSource::Calls, workspace, event })
        })
        .collect::<DbResult<Vec<_>>>()?;
    tx.commit()?;
    Ok(merge_by_time(events, calls, limit as usize))
}

/// The first `limit` of `a` and `b` (each in order) by time, `a` first at equal times.
fn merge_by_time(a: Vec<StreamLine>, b: Vec<StreamLine>, limit: usize) -> Vec<StreamLine> {
    let mut merged = Vec::with_capacity(limit.min(a.len() + b.len()));
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    while merged.len() < limit {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x.event.at <= y.event.at => a.next(),
            (Some(_), Some(_)) => b.next(),
            (Some(_), None) => a.next(),
            (None, _) => b.next(),
        };
        let Some(line) = next else { break };
        merged.push(line);
    }
    merged
}

fn read_cursor(conn: &Connection, sink: &str) -> StoreResult<SinkCursor> {
    Ok(conn.query_row(
        "SELECT events_after, calls_after, sent, dropped FROM audit_sinks WHERE sink = ?1",
        params![sink],
        cursor_row,
    )?)
}

fn cursor_row(row: &crate::store::db::Row) -> DbResult<SinkCursor> {
    Ok(SinkCursor {
        events_after: row.get("events_after")?,
        calls_after: row.get("calls_after")?,
        sent: row.get("sent")?,
        dropped: row.get("dropped")?,
    })
}
