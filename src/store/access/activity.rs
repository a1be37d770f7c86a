//! What keys did, reads included: every tool call, resource read and prompt, with the ids it
//! touched, its outcome and its size; hourly totals per key and tool; and the addresses and
//! clients each key has been used from, with a `key.new_origin` event the first time a key is
//! seen from a new one (what a leaked token looks like from here).
//!
//! Nothing here writes on the request path: calls and origins are queued in memory (bounded)
//! and written in batches by [`super::AccessStore::flush_activity`], every few seconds and at shutdown. Past
//! the queue's bound a call's row is dropped but still counted in the hourly totals, so a flood
//! can neither grow the memory nor hide from `audit --usage`. Rows are pruned after the audit
//! retention, totals after the (longer) usage retention.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};

use super::AccessStore;
use super::audit::{NewEvent, insert_event};
use crate::api::{
    self, CallDetail, CallOutcome, Event, EventKind, HourUsage, KeyOrigin, KeyUsageTotals,
    OriginKind, ToolCount,
};
use crate::store::db::{Connection, DbResult, Row, ToValue, Value, params};
use crate::store::page::{Cursor, fingerprint};
use crate::store::{StoreResult, from_secs};

/// Calls queued for the next flush at most; beyond, only their totals are kept.
pub(in crate::store) const QUEUE_MAX: usize = 100_000;
/// Rows written per statement (each row is 8 parameters).
const ROWS_PER_STATEMENT: usize = 64;
/// Calls written per transaction by a flush (a few milliseconds of the writer's time).
const CALLS_PER_CHUNK: usize = 1_024;
/// New origins written per transaction (each is a few statements).
const ORIGINS_PER_CHUNK: usize = 128;
/// Addresses and clients recorded per key, each; past them no more are recorded or announced.
pub const ORIGINS_PER_KEY: i64 = 100;
/// Ids kept per call: those it was asked about, then the first of those it answered with.
const IDS_PER_CALL: usize = 24;
/// How long a known origin's last-seen time may lag before it is written again.
const ORIGIN_REFRESH_SECS: i64 = 3600;
/// New origins one key may queue between two flushes; more wait for the next.
const PENDING_ORIGINS_PER_KEY: usize = 8;
/// Origins remembered as already written (a cache; the database decides what is new).
const KNOWN_ORIGINS_MAX: usize = 200_000;
/// Rows deleted per statement when pruning.
const PRUNE_CHUNK: i64 = 5_000;

/// One call, as the session saw it.
#[derive(Debug, Clone)]
pub struct Call {
    pub at: DateTime<Utc>,
    /// The tool's name, or `resources/read` / `prompts/get`.
    pub what: &'static str,
    pub outcome: CallOutcome,
    /// The size of the answer, in bytes.
    pub bytes: usize,
    /// Space-separated ids (see [`touched_ids`]).
    pub ids: String,
}

#[derive(Debug)]
struct Queued {
    workspace_id: i64,
    key_id: String,
    ip: Option<IpAddr>,
    call: Call,
}

#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    calls: i64,
    errors: i64,
    bytes: i64,
}

/// (key, hour, what) → workspace and totals.
type HourKey = (String, i64, &'static str);

#[derive(Debug, Default)]
struct Queue {
    calls: Vec<Queued>,
    /// Totals of calls whose rows did not fit in the queue.
    overflow: HashMap<HourKey, (i64, Totals)>,
}

/// A use of a key from an address and/or by a client, to be checked against those known.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct OriginUse {
    key_id: String,
    address: Option<String>,
    client: Option<String>,
}

#[derive(Debug)]
struct SeenAt {
    workspace_id: i64,
    key_prefix: String,
    at: i64,
    /// The order uses were noted in, so events are written in it (`at` has only seconds).
    order: u64,
}

#[derive(Debug, Default)]
struct Origins {
    pending: HashMap<OriginUse, SeenAt>,
    /// How many of `pending` each key has (a client may name itself anew in every request).
    pending_per_key: HashMap<String, usize>,
    /// The next `SeenAt::order`.
    noted: u64,
    /// Uses already written, with when their last-seen time was.
    known: HashMap<OriginUse, i64>,
    /// Each key's last use as it came (address, client label, when it was checked): the common
    /// case, a key used again from where it was just used, is answered without allocating.
    last: HashMap<String, (Option<IpAddr>, Option<String>, i64)>,
    /// When `forget_idle_origins` last walked `last` and `known` (it runs once a minute at
    /// most: each walk holds the lock every request takes).
    swept: i64,
}

/// The in-memory side: what is waiting to be written.
#[derive(Debug, Default)]
pub(crate) struct Activity {
    queue: Mutex<Queue>,
    origins: Mutex<Origins>,
    /// Held for a whole flush: a read that flushes first must not find the queue just taken by
    /// the periodic flush and go on before that one has written it.
    flushing: Mutex<()>,
}

impl Activity {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        // Plain values replaced whole; a panic elsewhere cannot leave them torn.
        self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn origins(&self) -> MutexGuard<'_, Origins> {
        self.origins.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The ids a call's arguments name (`id`, `journey`, `…_id`, `…_ids`), at most
/// [`IDS_PER_CALL`]; only id-shaped text is kept (it comes from clients).
pub fn asked_ids(arguments: &serde_json::Value) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    let Some(arguments) = arguments.as_object() else { return ids };
    for (name, value) in arguments {
        let named = name == "id" || name == "journey" || name.ends_with("_id");
        let many = name.ends_with("_ids");
        let values: Vec<&str> = match value {
            serde_json::Value::String(id) if named => vec![id],
            serde_json::Value::Array(list) if many => {
                list.iter().filter_map(serde_json::Value::as_str).collect()
            }
            _ => continue,
        };
        for id in values {
            if ids.len() < IDS_PER_CALL && id_shaped(id) && !ids.iter().any(|known| known == id) {
                ids.push(id.to_owned());
            }
        }
    }
    ids
}

/// The ids a call touched, as stored: those `asked` (see [`asked_ids`]), then the first its
/// answer carries (`"id":"…"` in its structured content), at most [`IDS_PER_CALL`] in all, and
/// `+` when the answer carried more. The answer is read only as far as that takes: a call's
/// record must cost little beside the call, and a 32 KB map holds its first ids in its first
/// kilobytes.
pub fn touched_ids(asked: Vec<String>, answer: Option<&str>) -> String {
    let mut ids: Vec<String> = asked.into_iter().filter(|id| id_shaped(id)).collect();
    ids.truncate(IDS_PER_CALL);
    let mut more = false;
    let answer = answer.unwrap_or("");
    for (at, _) in answer.match_indices("\"id\":\"") {
        let rest = &answer[at + 6..];
        let Some(end) = rest.find('"') else { break };
        let id = &rest[..end];
        if !id_shaped(id) || ids.iter().any(|known| known == id) {
            continue;
        }
        if ids.len() == IDS_PER_CALL {
            more = true;
            break;
        }
        ids.push(id.to_owned());
    }
    let mut text = ids.join(" ");
    if more {
        text.push_str(" +");
    }
    text
}

fn id_shaped(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// How an address is recorded as an origin: IPv4 whole, IPv6 by its /64 (one client's privacy
/// addresses change within it).
fn address_origin(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                let prefix = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{prefix}/64")
            }
        },
    }
}

/// A client as recorded as an origin: its name without the version (`cursor/1.2` → `cursor`),
/// so that an upgrade is not a new client.
fn client_origin(client: &str) -> String {
    client.rsplit_once('/').map_or(client, |(name, _)| name).trim().to_owned()
}

fn hour_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(3600) * 3600
}

/// Queues a call of the key `key` for the next flush (no database work).
pub(super) fn record_call(
    s: &AccessStore<'_>,
    key: &super::keys::KeyIdentity,
    ip: Option<IpAddr>,
    call: Call,
) {
    let mut queue = s.state.activity.queue();
    if queue.calls.len() < QUEUE_MAX {
        queue.calls.push(Queued {
            workspace_id: key.workspace_id,
            key_id: key.key_id.clone(),
            ip,
            call,
        });
        return;
    }
    let hour = (key.key_id.clone(), hour_of(call.at), call.what);
    let (_, totals) = queue.overflow.entry(hour).or_insert((key.workspace_id, Totals::default()));
    add(totals, &call);
    metrics::counter!("custory_audit_rows_dropped_total").increment(1);
}

/// Notes that `key` was used from `ip` by `client`; the next flush writes it if it is new
/// (with a `key.new_origin` event), or refreshes its last-seen time once an hour.
pub(super) fn note_origin(
    s: &AccessStore<'_>,
    key: &super::keys::KeyIdentity,
    ip: Option<IpAddr>,
    client: Option<&str>,
    at: DateTime<Utc>,
) {
    let at = at.timestamp();
    {
        let origins = s.state.activity.origins();
        if let Some((last_ip, last_client, checked)) = origins.last.get(&key.key_id)
            && *last_ip == ip
            && last_client.as_deref() == client
            && at - checked < ORIGIN_REFRESH_SECS
        {
            return;
        }
    }
    let origin = OriginUse {
        key_id: key.key_id.clone(),
        address: ip.map(address_origin),
        // The connection check is not one of the key's clients (its address still counts).
        client: client
            .map(client_origin)
            .filter(|c| !c.is_empty() && c != crate::api::CONNECTION_CHECK_CLIENT),
    };
    if origin.address.is_none() && origin.client.is_none() {
        return;
    }
    let mut origins = s.state.activity.origins();
    let known = origins.known.get(&origin).is_some_and(|seen| at - seen < ORIGIN_REFRESH_SECS);
    if !known && !origins.pending.contains_key(&origin) {
        // Past either bound the use is seen again at its next request, once these are
        // written (and not remembered as checked until then).
        let queued = origins.pending_per_key.get(&key.key_id).copied().unwrap_or(0);
        if origins.pending.len() >= QUEUE_MAX || queued >= PENDING_ORIGINS_PER_KEY {
            return;
        }
        *origins.pending_per_key.entry(key.key_id.clone()).or_default() += 1;
        origins.noted += 1;
        let seen = SeenAt {
            workspace_id: key.workspace_id,
            key_prefix: key.key_prefix.clone(),
            at,
            order: origins.noted,
        };
        origins.pending.insert(origin, seen);
    }
    if origins.last.len() >= KNOWN_ORIGINS_MAX {
        origins.last.clear();
    }
    origins.last.insert(key.key_id.clone(), (ip, client.map(str::to_owned), at));
}

/// How long a key's last use ([`Origins::last`]) is kept without a new one: past it the key
/// leaves that map, and its next use is checked against [`Origins::known`] again.
const LAST_USE_KEPT_SECS: i64 = 600;

/// Lets idle keys leave the origin maps (the housekeeping's, through `forget_idle_keys`): a
/// last use older than [`LAST_USE_KEPT_SECS`], and a known origin whose last-seen time is older
/// than [`ORIGIN_REFRESH_SECS`] (it no longer saves a write). Returns `(last uses, known
/// origins)` left.
pub(in crate::store) fn forget_idle_origins(
    s: &AccessStore<'_>,
    now: DateTime<Utc>,
) -> (usize, usize) {
    let now = now.timestamp();
    let mut origins = s.state.activity.origins();
    if now - origins.swept < 60 {
        return (origins.last.len(), origins.known.len());
    }
    origins.swept = now;
    origins.last.retain(|_, (_, _, checked)| now - *checked < LAST_USE_KEPT_SECS);
    origins.known.retain(|_, seen| now - *seen < ORIGIN_REFRESH_SECS);
    (origins.last.len(), origins.known.len())
}

/// Writes the queued calls, their hourly totals and the new origins, a bounded chunk per
/// transaction. Returns the calls written. On failure what was not yet written is put back
/// (within the queue's bound), so the next flush tries again.
pub(super) fn flush_activity(s: &AccessStore<'_>) -> StoreResult<usize> {
    // Guards no data, so a poisoned lock is as good as a clean one.
    let _flushing =
        s.state.activity.flushing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let (calls, overflow) = {
        let mut queue = s.state.activity.queue();
        (std::mem::take(&mut queue.calls), std::mem::take(&mut queue.overflow))
    };
    let origins: Vec<(OriginUse, SeenAt)> = {
        let mut origins = s.state.activity.origins();
        origins.pending_per_key.clear();
        let mut pending: Vec<_> = origins.pending.drain().collect();
        pending.sort_unstable_by_key(|(_, seen)| seen.order);
        pending
    };
    if calls.is_empty() && overflow.is_empty() && origins.is_empty() {
        return Ok(0);
    }
    // A chunk at a time, each its own short transaction: the writer is free between them, so
    // no write waits behind a full queue, and no statement limit can fail a whole flush.
    let mut calls_done = 0;
    let mut overflow_done = overflow.is_empty();
    let mut origins_done = 0;
    let mut result = Ok(());
    while result.is_ok() && (calls_done < calls.len() || !overflow_done) {
        let chunk = &calls[calls_done..calls.len().min(calls_done + CALLS_PER_CHUNK)];
        let mut totals = if overflow_done { HashMap::new() } else { overflow.clone() };
        for queued in chunk {
            let hour = (queued.key_id.clone(), hour_of(queued.call.at), queued.call.what);
            add(
                &mut totals.entry(hour).or_insert((queued.workspace_id, Totals::default())).1,
                &queued.call,
            );
        }
        result = write_calls(s, chunk, &totals);
        if result.is_ok() {
            calls_done += chunk.len();
            overflow_done = true;
        }
    }
    while result.is_ok() && origins_done < origins.len() {
        let chunk = &origins[origins_done..origins.len().min(origins_done + ORIGINS_PER_CHUNK)];
        result = write_origins(s, chunk);
        if result.is_ok() {
            origins_done += chunk.len();
        }
    }
    let mut origins = origins;
    let unwritten_origins = origins.split_off(origins_done);
    {
        let mut known = s.state.activity.origins();
        if known.known.len() + origins.len() > KNOWN_ORIGINS_MAX {
            known.known.clear();
        }
        for (origin, seen) in origins {
            known.known.insert(origin, seen.at);
        }
    }
    let Err(error) = result else { return Ok(calls_done) };
    // What was not written goes back, within the queue's bound, for the next flush.
    let mut queue = s.state.activity.queue();
    let mut calls = calls;
    let mut unwritten = calls.split_off(calls_done);
    let room = QUEUE_MAX.saturating_sub(queue.calls.len());
    for queued in unwritten.drain(room.min(unwritten.len())..) {
        let hour = (queued.key_id, hour_of(queued.call.at), queued.call.what);
        let entry = queue.overflow.entry(hour).or_insert((queued.workspace_id, Totals::default()));
        add(&mut entry.1, &queued.call);
    }
    unwritten.append(&mut queue.calls);
    queue.calls = unwritten;
    if !overflow_done {
        for (hour, (workspace_id, lost)) in overflow {
            let entry = queue.overflow.entry(hour).or_insert((workspace_id, Totals::default()));
            entry.1.calls += lost.calls;
            entry.1.errors += lost.errors;
            entry.1.bytes += lost.bytes;
        }
    }
    drop(queue);
    let mut pending = s.state.activity.origins();
    for (origin, seen) in unwritten_origins {
        pending.pending.entry(origin).or_insert(seen);
    }
    Err(error)
}

/// Writes `calls` and the hourly `totals`, in one transaction.
fn write_calls(
    s: &AccessStore<'_>,
    calls: &[Queued],
    totals: &HashMap<HourKey, (i64, Totals)>,
) -> StoreResult<()> {
    let conn = s.writer();
    let tx = conn.transaction()?;
    for chunk in calls.chunks(ROWS_PER_STATEMENT) {
        insert_calls(&tx, chunk)?;
    }
    let mut upsert = tx.prepare_cached(
        "INSERT INTO key_usage_hours (key_id, hour, what, workspace_id, calls, errors, bytes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (key_id, hour, what) DO UPDATE SET
                 calls = key_usage_hours.calls + excluded.calls,
                 errors = key_usage_hours.errors + excluded.errors,
                 bytes = key_usage_hours.bytes + excluded.bytes",
    )?;
    for ((key_id, hour, what), (workspace_id, t)) in totals {
        upsert.execute(params![key_id, hour, what, workspace_id, t.calls, t.errors, t.bytes])?;
    }
    tx.commit()?;
    Ok(())
}

/// Records `origins` (with their `key.new_origin` events), in one transaction.
fn write_origins(s: &AccessStore<'_>, origins: &[(OriginUse, SeenAt)]) -> StoreResult<()> {
    let conn = s.writer();
    let tx = conn.transaction()?;
    for (origin, seen) in origins {
        write_origin(&tx, origin, seen)?;
    }
    tx.commit()?;
    Ok(())
}

/// Deletes call rows older than `calls_before` and hourly totals older than
/// `totals_before`, a chunk at a time so that writers never wait long. Returns the rows
/// deleted.
pub(super) fn prune_activity(
    s: &AccessStore<'_>,
    calls_before: DateTime<Utc>,
    totals_before: DateTime<Utc>,
) -> StoreResult<usize> {
    let mut deleted = 0;
    loop {
        let n = prune_calls_chunk(s, calls_before.timestamp())?;
        deleted += n;
        if (n as i64) < PRUNE_CHUNK {
            break;
        }
    }
    deleted += s
        .writer()
        .execute("DELETE FROM key_usage_hours WHERE hour < ?1", [totals_before.timestamp()])?;
    Ok(deleted)
}

/// Deletes up to [`PRUNE_CHUNK`] of the oldest calls made before `before`, in a transaction of
/// its own; an audit sink not sent them yet counts them as dropped (`sink.rs`).
fn prune_calls_chunk(s: &AccessStore<'_>, before: i64) -> StoreResult<usize> {
    let chunk = "SELECT id FROM key_calls WHERE at < ?1 ORDER BY at, id LIMIT ?2";
    let conn = s.writer();
    let tx = conn.transaction()?;
    // Per sink (there are few, usually none), the calls of the chunk after its cursor.
    tx.execute(
        &format!(
            "UPDATE audit_sinks SET dropped = dropped +
                 (SELECT COUNT(*) FROM ({chunk}) c WHERE c.id > audit_sinks.calls_after)"
        ),
        params![before, PRUNE_CHUNK],
    )?;
    let deleted = tx.execute(
        &format!("DELETE FROM key_calls WHERE id IN ({chunk})"),
        params![before, PRUNE_CHUNK],
    )?;
    tx.commit()?;
    Ok(deleted)
}

/// Up to `limit + 1` calls of a workspace (or of one key) with ids below `before`, newest
/// first, as audit events.
fn calls_page(
    conn: &Connection,
    workspace_id: i64,
    key_id: Option<&str>,
    before: i64,
    limit: u32,
) -> StoreResult<Vec<Event>> {
    let rows = conn.query(
        "SELECT c.id, c.at, c.what, c.outcome, c.bytes, c.ids, c.ip, c.key_id, k.prefix
             FROM key_calls c JOIN mcp_keys k ON k.id = c.key_id
             WHERE c.workspace_id = ?1 AND (CAST(?2 AS TEXT) IS NULL OR c.key_id = ?2)
               AND c.id < ?3
             ORDER BY c.id DESC LIMIT ?4",
        params![workspace_id, key_id, before, i64::from(limit) + 1],
    )?;
    Ok(rows.iter().map(call_row).collect::<DbResult<Vec<_>>>()?)
}

/// A key's use since `since`: totals by tool, the hours (newest first, a page of `limit`
/// starting before the hour `cursor` names) and the origins it was used from.
pub(super) fn key_usage(
    s: &AccessStore<'_>,
    workspace_id: i64,
    key_id: &str,
    since: DateTime<Utc>,
    limit: u32,
    cursor: Option<&str>,
) -> StoreResult<api::KeyUsageResponse> {
    let since_hour = hour_of(since);
    let query = fingerprint(&[key_id, &since_hour.to_string()]);
    let before = match cursor.map(str::trim).filter(|c| !c.is_empty()) {
        Some(text) => Cursor::decode(text, "usage", query, 1)?.position[0],
        None => i64::MAX,
    };
    let conn = s.reader()?;
    let snapshot = conn.snapshot()?;
    let by_tool = snapshot.query(
        "SELECT what, CAST(SUM(calls) AS BIGINT) AS calls, CAST(SUM(errors) AS BIGINT) AS errors,
                    CAST(SUM(bytes) AS BIGINT) AS bytes
             FROM key_usage_hours WHERE key_id = ?1 AND workspace_id = ?2 AND hour >= ?3
             GROUP BY what",
        params![key_id, workspace_id, since_hour],
    )?;
    let mut totals = KeyUsageTotals::default();
    for row in &by_tool {
        let (what, calls, errors, bytes): (String, i64, i64, i64) =
            (row.get("what")?, row.get("calls")?, row.get("errors")?, row.get("bytes")?);
        totals.calls += calls;
        totals.errors += errors;
        totals.bytes += bytes;
        totals.tools.push(ToolCount { what, calls });
    }
    sort_tools(&mut totals.tools);
    let hours = snapshot.query(
        "SELECT DISTINCT hour FROM key_usage_hours
             WHERE key_id = ?1 AND workspace_id = ?2 AND hour >= ?3 AND hour < ?4
             ORDER BY hour DESC LIMIT ?5",
        params![key_id, workspace_id, since_hour, before, i64::from(limit) + 1],
    )?;
    let hours = hours.iter().map(|row| row.get::<i64>("hour")).collect::<DbResult<Vec<_>>>()?;
    let mut rows: Vec<HourUsage> = Vec::new();
    if let (Some(&newest), Some(&oldest)) =
        (hours.first(), hours.get(hours.len().min(limit as usize).saturating_sub(1)))
    {
        let detail = snapshot.query(
            "SELECT hour, what, calls, errors, bytes FROM key_usage_hours
                 WHERE key_id = ?1 AND workspace_id = ?2 AND hour >= ?3 AND hour <= ?4
                 ORDER BY hour DESC",
            params![key_id, workspace_id, oldest, newest],
        )?;
        for row in &detail {
            let hour = from_secs(row.get("hour")?);
            if rows.last().is_none_or(|last| last.hour != hour) {
                rows.push(HourUsage { hour, ..HourUsage::default() });
            }
            // Just pushed when missing, so there is a last row.
            let Some(last) = rows.last_mut() else { continue };
            let calls: i64 = row.get("calls")?;
            last.calls += calls;
            last.errors += row.get::<i64>("errors")?;
            last.bytes += row.get::<i64>("bytes")?;
            last.tools.push(ToolCount { what: row.get("what")?, calls });
        }
        for row in &mut rows {
            sort_tools(&mut row.tools);
        }
    }
    let next_cursor = (hours.len() > limit as usize)
        .then(|| {
            rows.last()
                .map(|last| Cursor::new("usage", query, vec![last.hour.timestamp()]).encode())
        })
        .flatten();
    let origins = snapshot.query(
        "SELECT kind, value, first_seen, last_seen FROM key_origins WHERE key_id = ?1
             ORDER BY last_seen DESC, value LIMIT ?2",
        params![key_id, 2 * ORIGINS_PER_KEY],
    )?;
    let origins = origins
        .iter()
        .map(|row| {
            Ok(KeyOrigin {
                kind: row.get_parsed("kind", OriginKind::parse)?,
                value: row.get("value")?,
                first_seen: from_secs(row.get("first_seen")?),
                last_seen: from_secs(row.get("last_seen")?),
            })
        })
        .collect::<DbResult<Vec<_>>>()?;
    snapshot.commit()?;
    Ok(api::KeyUsageResponse { since, totals, hours: rows, next_cursor, origins })
}

/// Each key's use since `since`, busiest first, a page of `limit` at a time.
pub(super) fn workspace_usage(
    s: &AccessStore<'_>,
    workspace_id: i64,
    since: DateTime<Utc>,
    limit: u32,
    cursor: Option<&str>,
) -> StoreResult<api::WorkspaceUsageResponse> {
    let since_hour = hour_of(since);
    let query = fingerprint(&[&since_hour.to_string()]);
    let offset = match cursor.map(str::trim).filter(|c| !c.is_empty()) {
        Some(text) => Cursor::decode(text, "keys-usage", query, 1)?.position[0],
        None => 0,
    };
    let conn = s.reader()?;
    let snapshot = conn.snapshot()?;
    let rows = snapshot.query(
        "SELECT u.key_id, k.name, k.prefix, CAST(SUM(u.calls) AS BIGINT) AS calls,
                    CAST(SUM(u.errors) AS BIGINT) AS errors, CAST(SUM(u.bytes) AS BIGINT) AS bytes,
                    MAX(u.hour) AS last_hour
             FROM key_usage_hours u JOIN mcp_keys k ON k.id = u.key_id
             WHERE u.workspace_id = ?1 AND u.hour >= ?2
             GROUP BY u.key_id, k.name, k.prefix
             ORDER BY CAST(SUM(u.calls) AS BIGINT) DESC, u.key_id LIMIT ?3 OFFSET ?4",
        params![workspace_id, since_hour, i64::from(limit) + 1, offset],
    )?;
    let mut keys = Vec::new();
    for row in rows.iter().take(limit as usize) {
        let key_id: String = row.get("key_id")?;
        let tools = snapshot.query(
            "SELECT what, CAST(SUM(calls) AS BIGINT) AS calls FROM key_usage_hours
                 WHERE key_id = ?1 AND workspace_id = ?2 AND hour >= ?3 GROUP BY what",
            params![key_id, workspace_id, since_hour],
        )?;
        let mut tools = tools
            .iter()
            .map(|row| Ok(ToolCount { what: row.get("what")?, calls: row.get("calls")? }))
            .collect::<DbResult<Vec<_>>>()?;
        sort_tools(&mut tools);
        keys.push(api::KeyUsageRow {
            key_id,
            key_name: row.get("name")?,
            key_prefix: row.get("prefix")?,
            calls: row.get("calls")?,
            errors: row.get("errors")?,
            bytes: row.get("bytes")?,
            last_hour: from_secs(row.get("last_hour")?),
            tools,
        });
    }
    snapshot.commit()?;
    let next_cursor = (rows.len() > limit as usize)
        .then(|| Cursor::new("keys-usage", query, vec![offset + i64::from(limit)]).encode());
    Ok(api::WorkspaceUsageResponse { since, keys, next_cursor })
}

/// One page of a workspace's audit trail with its calls merged in, newest first (both
/// lists are read a page ahead and merged by time; the cursor holds a position in each).
pub(super) fn list_events_and_calls(
    s: &AccessStore<'_>,
    workspace_id: i64,
    filter: super::audit::EventFilter<'_>,
    limit: u32,
    cursor: Option<&str>,
) -> StoreResult<(Vec<Event>, Option<String>)> {
    let key_id = filter.key_id;
    let query = fingerprint(&[key_id.unwrap_or(""), "calls", filter.by.unwrap_or("")]);
    let (events_before, calls_before) = match cursor.map(str::trim).filter(|c| !c.is_empty()) {
        Some(text) => {
            let position = Cursor::decode(text, "activity", query, 2)?.position;
            (position[0], position[1])
        }
        None => (i64::MAX, i64::MAX),
    };
    let conn = s.reader()?;
    let events = super::audit::events_page(&conn, workspace_id, filter, events_before, limit)?;
    // Calls are made by keys: an actor filter for anyone else leaves them out.
    let calls = if filter.by.is_none_or(|by| by == api::AuthorKind::Key.as_str()) {
        calls_page(&conn, workspace_id, key_id, calls_before, limit)?
    } else {
        Vec::new()
    };
    let (mut events, mut calls) = (events.into_iter().peekable(), calls.into_iter().peekable());
    let mut merged = Vec::new();
    let (mut events_at, mut calls_at) = (events_before, calls_before);
    while merged.len() < limit as usize {
        let next = match (events.peek(), calls.peek()) {
            // A tie (one second) goes to the call: a key's creation comes before its calls, and
            // a call before the events it caused (its write, its new origin).
            (Some(event), Some(call)) if event.at > call.at => events.next(),
            (Some(_), None) => events.next(),
            (_, Some(_)) => calls.next(),
            (None, None) => None,
        };
        let Some(next) = next else { break };
        match next.call {
            None => events_at = next.id,
            Some(_) => calls_at = next.id,
        }
        merged.push(next);
    }
    let more = events.peek().is_some() || calls.peek().is_some();
    let next = more.then(|| Cursor::new("activity", query, vec![events_at, calls_at]).encode());
    Ok((merged, next))
}

fn add(totals: &mut Totals, call: &Call) {
    totals.calls += 1;
    totals.errors += i64::from(call.outcome != CallOutcome::Ok);
    totals.bytes += i64::try_from(call.bytes).unwrap_or(i64::MAX);
}

fn sort_tools(tools: &mut [ToolCount]) {
    tools.sort_by(|a, b| b.calls.cmp(&a.calls).then_with(|| a.what.cmp(&b.what)));
}

fn insert_calls(conn: &Connection, chunk: &[Queued]) -> StoreResult<()> {
    // Ids must be handed out in the order rows become visible (`sink.rs`).
    debug_assert!(conn.in_transaction(), "calls written outside a transaction");
    let mut sql = String::from(
        "INSERT INTO key_calls (workspace_id, key_id, at, what, outcome, bytes, ids, ip) VALUES ",
    );
    let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 8);
    for (i, queued) in chunk.iter().enumerate() {
        let n = i * 8;
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "(?{}, ?{}, ?{}, ?{}, ?{}, ?{}, ?{}, CAST(?{} AS TEXT))",
            n + 1,
            n + 2,
            n + 3,
            n + 4,
            n + 5,
            n + 6,
            n + 7,
            n + 8
        ));
        let call = &queued.call;
        values.extend([
            queued.workspace_id.to_value(),
            queued.key_id.to_value(),
            call.at.timestamp().to_value(),
            call.what.to_value(),
            call.outcome.as_str().to_value(),
            i64::try_from(call.bytes).unwrap_or(i64::MAX).to_value(),
            call.ids.to_value(),
            queued.ip.map(|ip| ip.to_string()).to_value(),
        ]);
    }
    let params: Vec<&dyn ToValue> = values.iter().map(|v| v as &dyn ToValue).collect();
    conn.execute(&sql, &params[..])?;
    Ok(())
}

/// Records one use's address and client; a `key.new_origin` event when either is new.
fn write_origin(conn: &Connection, origin: &OriginUse, seen: &SeenAt) -> StoreResult<()> {
    let mut fresh = [false, false];
    for (slot, (kind, value)) in
        [("address", &origin.address), ("client", &origin.client)].into_iter().enumerate()
    {
        let Some(value) = value else { continue };
        let inserted = conn.execute(
            "INSERT INTO key_origins (key_id, kind, value, first_seen, last_seen)
             SELECT CAST(?1 AS TEXT), CAST(?2 AS TEXT), CAST(?3 AS TEXT), CAST(?4 AS BIGINT),
                    CAST(?4 AS BIGINT)
             WHERE (SELECT COUNT(*) FROM key_origins WHERE key_id = ?1 AND kind = ?2) < ?5
             ON CONFLICT (key_id, kind, value) DO NOTHING",
            params![origin.key_id, kind, value, seen.at, ORIGINS_PER_KEY],
        )?;
        if inserted == 1 {
            fresh[slot] = true;
        } else {
            conn.execute(
                "UPDATE key_origins SET last_seen = ?4
                 WHERE key_id = ?1 AND kind = ?2 AND value = ?3 AND last_seen < ?4",
                params![origin.key_id, kind, value, seen.at],
            )?;
        }
    }
    if fresh == [false, false] {
        return Ok(());
    }
    let earlier = |kind: &str, except: &str| -> StoreResult<Vec<String>> {
        let rows = conn.query(
            "SELECT value FROM key_origins WHERE key_id = ?1 AND kind = ?2 AND value <> ?3
             ORDER BY first_seen, value LIMIT 4",
            params![origin.key_id, kind, except],
        )?;
        Ok(rows.iter().map(|row| row.get("value")).collect::<DbResult<Vec<String>>>()?)
    };
    let address = origin.address.as_deref();
    let client = origin.client.as_deref();
    let before_addresses = address.map(|a| earlier("address", a)).transpose()?.unwrap_or_default();
    let before_clients = client.map(|c| earlier("client", c)).transpose()?.unwrap_or_default();
    let first_use = (address.is_none() || (fresh[0] && before_addresses.is_empty()))
        && (client.is_none() || (fresh[1] && before_clients.is_empty()));
    let detail =
        describe_origin(address, client, fresh, first_use, &before_addresses, &before_clients);
    let event = NewEvent {
        workspace_id: seen.workspace_id,
        kind: EventKind::KeyNewOrigin,
        key_id: Some(&origin.key_id),
        key_prefix: Some(&seen.key_prefix),
        detail: &detail,
        actor: &api::Author::of(api::AuthorKind::Server),
    };
    insert_event(conn, seen.at, &event)
}

fn describe_origin(
    address: Option<&str>,
    client: Option<&str>,
    fresh: [bool; 2],
    first_use: bool,
    before_addresses: &[String],
    before_clients: &[String],
) -> String {
    let listed = |values: &[String]| {
        let mut text = values.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
        if values.len() > 3 {
            text.push_str(", …");
        }
        text
    };
    let from = address.map(|a| format!("from {a}")).unwrap_or_default();
    let by = client.map(|c| format!("by {c}")).unwrap_or_default();
    let both = [from.as_str(), by.as_str()]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    if first_use {
        return format!("first used {both}");
    }
    let mut news = Vec::new();
    if fresh[0] {
        news.push(format!(
            "a new address ({}; before: {})",
            address.unwrap_or("-"),
            listed(before_addresses)
        ));
    }
    if fresh[1] {
        let before = if before_clients.is_empty() {
            "none named".to_owned()
        } else {
            listed(before_clients)
        };
        news.push(format!("a new client ({}; before: {before})", client.unwrap_or("-")));
    }
    format!("used {both}: {}", news.join(" and "))
}

pub(super) fn call_row(row: &Row) -> DbResult<Event> {
    let ids: String = row.get("ids")?;
    let (ids, more_ids) = split_ids(&ids);
    let call = CallDetail {
        what: row.get("what")?,
        outcome: row.get_parsed("outcome", CallOutcome::parse)?,
        bytes: row.get("bytes")?,
        ids,
        more_ids,
        ip: row.get("ip")?,
    };
    let kind = match call.what.as_str() {
        "resources/read" => EventKind::CallResource,
        "prompts/get" => EventKind::CallPrompt,
        _ => EventKind::CallTool,
    };
    Ok(Event {
        id: row.get("id")?,
        at: from_secs(row.get("at")?),
        kind,
        key_id: row.get("key_id")?,
        key_prefix: row.get("prefix")?,
        detail: describe_call(&call),
        actor: api::Author::of(api::AuthorKind::Key),
        call: Some(call),
    })
}

/// A call as one line: `search: ok, 2.1 kB; itm_1 itm_2 … (+18 more, and others); from 10.0.0.7`.
fn describe_call(call: &CallDetail) -> String {
    let mut text =
        format!("{}: {}, {}", call.what, call.outcome, crate::text::size_text(call.bytes));
    if !call.ids.is_empty() {
        // A line for people: the first few ids (the JSON has all that were kept).
        const SHOWN: usize = 6;
        text.push_str("; ");
        text.push_str(&call.ids.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(" "));
        let more = call.ids.len().saturating_sub(SHOWN);
        match (more, call.more_ids) {
            (0, false) => {}
            (0, true) => text.push_str(" and more"),
            (n, false) => text.push_str(&format!(" (+{n} more)")),
            (n, true) => text.push_str(&format!(" (+{n} more, and others)")),
        }
    }
    if let Some(ip) = &call.ip {
        text.push_str(&format!("; from {ip}"));
    }
    text
}

fn split_ids(text: &str) -> (Vec<String>, bool) {
    let mut ids = Vec::new();
    let mut more = false;
    for word in text.split_whitespace() {
        match word {
            "+" => more = true,
            id => ids.push(id.to_owned()),
        }
    }
    (ids, more)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn touched_ids_takes_the_arguments_then_the_answer_and_only_ids() {
        let arguments = json!({"journey": "trial-to-paid", "item_id": "itm_A1", "query": "churn",
                               "from_item_id": "itm_B2", "note": "itm_not_an_argument_id",
                               "stage_id": "stg_x'; DROP"});
        let answer = r#"{"items":[{"id":"itm_A1","title":"x"},{"id":"itm_C3"}],"id":"jrn_9"}"#;
        let asked = asked_ids(&arguments);
        assert_eq!(touched_ids(asked, Some(answer)), "itm_B2 itm_A1 trial-to-paid itm_C3 jrn_9");
        let many: String = (0..40).map(|i| format!(r#"{{"id":"itm_{i}"}},"#)).collect();
        let text = touched_ids(Vec::new(), Some(&many));
        assert!(text.starts_with("itm_0 itm_1 "), "{text}");
        assert!(text.ends_with("itm_23 +"), "{text}");
        assert_eq!(split_ids(&text).0.len(), 24);
        assert!(split_ids(&text).1);
        assert!(!split_ids(&touched_ids(Vec::new(), Some(&many[..200]))).1);
    }

    #[test]
    fn origins_group_ipv6_by_64_and_drop_client_versions() {
        assert_eq!(
            address_origin("2001:db8:1:2:aaaa::1".parse().expect("address")),
            "2001:db8:1:2::/64"
        );
        assert_eq!(address_origin("::ffff:10.0.0.7".parse().expect("address")), "10.0.0.7");
        assert_eq!(client_origin("claude-code/2.1.0"), "claude-code");
        assert_eq!(client_origin("cursor"), "cursor");
    }
}
