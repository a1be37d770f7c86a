//! Key hygiene: what about each active key needs a decision (shared, stale, never used,
//! expiring, read-write but never written with), from its last use, the origins of
//! `activity.rs` and the audit trail's write events; and the filters `keys list --shared` and
//! `keys revoke --unused-for` select by.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};

use super::AccessStore;
use crate::api::{Access, CONNECTION_CHECK_CLIENT, Key, KeyFlag, KeyStatus, SharedUse};
use crate::store::StoreResult;
use crate::store::db::{Connection, ToValue, Value};

/// A key used from more than one address or by more than one client within this window is
/// shared.
pub const SHARED_WINDOW_DAYS: i64 = 7;
/// Unused this long: stale.
pub const STALE_AFTER_DAYS: i64 = 30;
/// Never used this long after its creation: stale (and never used); also how long a read-write
/// key has to write before it is flagged `never-wrote`.
pub const GRACE_DAYS: i64 = 7;
/// Expiring within this many days: flagged.
pub const EXPIRY_WARNING_DAYS: i64 = 7;

/// Which keys a list is about, beyond their status.
#[derive(Debug, Clone, Default)]
pub struct KeyFilter {
    pub status: Option<KeyStatus>,
    /// Only keys flagged `shared`.
    pub shared: bool,
    /// Only active keys not used since then (never-used ones created before it).
    pub unused_since: Option<DateTime<Utc>>,
    /// Only keys never used.
    pub never_used: bool,
    /// Only keys this member created (`keys list --mine`); `Some(None)`: the administrator's.
    pub created_by: Option<Option<String>>,
    /// Only active keys that expire by then (`keys list --expiring`).
    pub expiring_by: Option<DateTime<Utc>>,
}

impl KeyFilter {
    /// The SQL conditions (appended after `WHERE workspace_id = ?1 …`) and their parameters,
    /// numbered from `first`.
    pub(super) fn sql(&self, now: DateTime<Utc>, first: usize) -> (String, Vec<Value>) {
        let mut sql = String::new();
        let mut values = Vec::new();
        let mut param = |value: i64, values: &mut Vec<Value>| {
            values.push(Value::Integer(value));
            format!("?{}", first + values.len() - 1)
        };
        let active = |sql: &mut String,
                      values: &mut Vec<Value>,
                      param: &mut dyn FnMut(i64, &mut Vec<Value>) -> String| {
            let now = param(now.timestamp(), values);
            sql.push_str(&format!(
                " AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > {now})"
            ));
        };
        match self.status {
            None => {}
            Some(KeyStatus::Active) => active(&mut sql, &mut values, &mut param),
            Some(KeyStatus::Expired) => {
                let now = param(now.timestamp(), &mut values);
                sql.push_str(&format!(" AND revoked_at IS NULL AND expires_at <= {now}"));
            }
            Some(KeyStatus::Revoked) => sql.push_str(" AND revoked_at IS NOT NULL"),
        }
        if self.shared {
            let since = param((now - Duration::days(SHARED_WINDOW_DAYS)).timestamp(), &mut values);
            // The connection check is no client (a database from before it was left out of
            // the origins may still hold it).
            sql.push_str(&format!(
                " AND id IN (SELECT key_id FROM key_origins WHERE last_seen >= {since}
                   AND NOT (kind = 'client' AND value = '{CONNECTION_CHECK_CLIENT}')
                   GROUP BY key_id, kind HAVING COUNT(*) > 1)"
            ));
        }
        if let Some(since) = self.unused_since {
            if self.status != Some(KeyStatus::Active) {
                active(&mut sql, &mut values, &mut param);
            }
            let since = param(since.timestamp(), &mut values);
            sql.push_str(&format!(" AND COALESCE(last_used_at, created_at) < {since}"));
        }
        if self.never_used {
            sql.push_str(" AND last_used_at IS NULL");
        }
        if let Some(by) = self.expiring_by {
            if self.status != Some(KeyStatus::Active) {
                active(&mut sql, &mut values, &mut param);
            }
            let by = param(by.timestamp(), &mut values);
            sql.push_str(&format!(" AND expires_at IS NOT NULL AND expires_at <= {by}"));
        }
        match &self.created_by {
            None => {}
            Some(None) => sql.push_str(" AND created_by = 'administrator'"),
            Some(Some(member)) => {
                values.push(Value::Text(member.clone()));
                sql.push_str(&format!(" AND created_by_member = ?{}", first + values.len() - 1));
            }
        }
        (sql, values)
    }

    /// A fingerprint of the filter, for its cursors.
    pub(super) fn describe(&self) -> String {
        format!(
            "{}|{}|{}|{}|{:?}|{}",
            self.status.map_or("", KeyStatus::as_str),
            self.shared,
            self.unused_since.map_or(0, |at| at.timestamp()),
            self.never_used,
            self.created_by,
            self.expiring_by.map_or(0, |at| at.timestamp()),
        )
    }
}

/// Sets `flags` (and `shared`) on each active key of `keys`, as of now.
pub(super) fn annotate_keys(
    s: &AccessStore<'_>,
    conn: &Connection,
    keys: &mut [Key],
) -> StoreResult<()> {
    let now = s.now();
    let active: Vec<usize> =
        (0..keys.len()).filter(|&i| keys[i].status == KeyStatus::Active).collect();
    if active.is_empty() {
        return Ok(());
    }
    let origins = recent_origins(conn, keys, &active, now - Duration::days(SHARED_WINDOW_DAYS))?;
    for &i in &active {
        let key = &mut keys[i];
        let mut flags = BTreeSet::new();
        if let Some(seen) = origins.get(&key.id)
            && (seen.addresses.len() > 1 || seen.clients.len() > 1)
        {
            flags.insert(KeyFlag::Shared);
            key.shared = Some(seen.clone());
        }
        let grace_over = now - key.created_at >= Duration::days(GRACE_DAYS);
        match key.last_used_at {
            None if grace_over => {
                flags.insert(KeyFlag::Stale);
                flags.insert(KeyFlag::NeverUsed);
            }
            Some(used) if now - used >= Duration::days(STALE_AFTER_DAYS) => {
                flags.insert(KeyFlag::Stale);
            }
            _ => {}
        }
        if key.expires_at.is_some_and(|at| at - now <= Duration::days(EXPIRY_WARNING_DAYS)) {
            flags.insert(KeyFlag::ExpiresSoon);
        }
        if key.access == Access::ReadWrite
            && grace_over
            && key.last_used_at.is_some()
            && !has_written(conn, &key.id)?
        {
            flags.insert(KeyFlag::NeverWrote);
        }
        key.flags = flags.into_iter().collect();
    }
    Ok(())
}

/// The addresses and clients each of `keys[active]` was seen from since `since`.
fn recent_origins(
    conn: &Connection,
    keys: &[Key],
    active: &[usize],
    since: DateTime<Utc>,
) -> StoreResult<HashMap<String, SharedUse>> {
    let mut seen: HashMap<String, SharedUse> = HashMap::new();
    for chunk in active.chunks(200) {
        let mut values = vec![Value::Integer(since.timestamp())];
        let mut marks = Vec::new();
        for &i in chunk {
            values.push(Value::Text(keys[i].id.clone()));
            marks.push(format!("?{}", values.len()));
        }
        let params: Vec<&dyn ToValue> = values.iter().map(|v| v as &dyn ToValue).collect();
        let rows = conn.query(
            &format!(
                "SELECT key_id, kind, value FROM key_origins
                 WHERE last_seen >= ?1 AND key_id IN ({}) ORDER BY key_id, kind, value",
                marks.join(", ")
            ),
            &params[..],
        )?;
        for row in &rows {
            let (key_id, kind, value): (String, String, String) =
                (row.get("key_id")?, row.get("kind")?, row.get("value")?);
            if kind == "client" && value == CONNECTION_CHECK_CLIENT {
                continue;
            }
            let entry = seen.entry(key_id).or_default();
            if kind == "address" { entry.addresses.push(value) } else { entry.clients.push(value) }
        }
    }
    Ok(seen)
}

/// Whether key `id` ever made a write (each one is an audit event `tool.called`).
fn has_written(conn: &Connection, id: &str) -> StoreResult<bool> {
    let rows = conn.query(
        "SELECT 1 FROM audit_events WHERE key_id = ?1 AND kind = 'tool.called' LIMIT 1",
        [id],
    )?;
    Ok(!rows.is_empty())
}
