//! Expiry warnings (issue 35): `key.expiring` 30, 7 and 1 days before a key expires and
//! `key.expired` once it has, each an audit event (so it goes out as a webhook) written once
//! per key and threshold. The marker is the key's `expiry_notice` column (the smallest
//! threshold announced; 0 for the expiry itself), claimed by a conditional update in the same
//! transaction as the event: a restart, a second run or another PostgreSQL replica (whose
//! write transactions wait on the same lock) finds it set and writes nothing.
//!
//! A threshold the key was created inside says nothing new (a 30-day key is not "expiring in
//! 30 days" at its creation), and a key that crossed several thresholds while no server ran
//! gets the most urgent one only.

use chrono::SecondsFormat;

use super::audit::insert_event;
use super::{AccessStore, NewEvent};
use crate::api::{Author, AuthorKind, EventKind};
use crate::store::db::params;
use crate::store::{StoreResult, from_secs};

/// The warnings, in days before the expiry, most distant first.
pub const EXPIRY_NOTICE_DAYS: [i64; 3] = [30, 7, 1];

/// Keys announced per run at most; the next run (an hour on) takes the rest.
const PER_RUN: i64 = 500;

const DAY: i64 = 86_400;

/// One key whose expiry is to be announced.
struct Due {
    id: String,
    workspace_id: i64,
    prefix: String,
    expires_at: i64,
    /// The threshold reached: 30, 7, 1, or 0 (expired).
    notice: i64,
    /// Whether it is announced (else only marked: made inside that threshold's window).
    announce: bool,
}

/// The threshold `expires_at` has reached at `now`: 0 (expired), 1, 7 or 30 days; `None`
/// before the first.
fn reached(now: i64, expires_at: i64) -> Option<i64> {
    if expires_at <= now {
        return Some(0);
    }
    EXPIRY_NOTICE_DAYS.iter().rev().find(|&&days| expires_at - now <= days * DAY).copied()
}

/// The threshold a key with this expiry has reached at `now`, if one is due: the most urgent
/// one reached, unless it was already announced (`announced`) or the key was made inside it.
fn due_notice(now: i64, created_at: i64, expires_at: i64, announced: Option<i64>) -> Option<i64> {
    let reached = reached(now, expires_at)?;
    let made_inside = reached > 0 && created_at >= expires_at - reached * DAY;
    let announced_already = announced.is_some_and(|n| n <= reached);
    (!made_inside && !announced_already).then_some(reached)
}

/// Writes the expiry events due at the store's now; how many it wrote. A reader looks first,
/// so a run with nothing due never takes the writer.
pub(super) fn announce_expiries(s: &AccessStore<'_>) -> StoreResult<usize> {
    let now = s.now().timestamp();
    let horizon = now + EXPIRY_NOTICE_DAYS[0] * DAY;
    // Only keys past a threshold they were not announced at (the threshold reached, in SQL),
    // so keys announced already never fill the page and push the due ones out of it.
    let rows = s.reader()?.query(
        "SELECT id, workspace_id, prefix, created_at, expires_at, expiry_notice FROM mcp_keys
         WHERE expires_at IS NOT NULL AND revoked_at IS NULL AND expires_at <= ?1
           AND (expiry_notice IS NULL OR expiry_notice >
                CASE WHEN expires_at <= ?3 THEN 0 WHEN expires_at <= ?4 THEN 1
                     WHEN expires_at <= ?5 THEN 7 ELSE 30 END)
         ORDER BY expires_at, id LIMIT ?2",
        params![horizon, PER_RUN, now, now + DAY, now + 7 * DAY],
    )?;
    let mut due = Vec::new();
    for row in &rows {
        let expires_at: i64 = row.get("expires_at")?;
        let created_at: i64 = row.get("created_at")?;
        let announced: Option<i64> = row.get("expiry_notice")?;
        let Some(reached) = reached(now, expires_at) else { continue };
        // A key made inside the threshold's window is marked without an event (a 30-day key
        // is not news at 30 days), so it leaves the page too.
        let notice = due_notice(now, created_at, expires_at, announced);
        due.push(Due {
            id: row.get("id")?,
            workspace_id: row.get("workspace_id")?,
            prefix: row.get("prefix")?,
            expires_at,
            notice: notice.unwrap_or(reached),
            announce: notice.is_some(),
        });
    }
    if due.is_empty() {
        return Ok(0);
    }
    let conn = s.writer();
    let tx = conn.transaction()?;
    let server = Author::of(AuthorKind::Server);
    let mut written = 0;
    for key in &due {
        // The claim: only the run that moves the marker writes the event.
        let claimed = tx.execute(
            "UPDATE mcp_keys SET expiry_notice = ?2
             WHERE id = ?1 AND revoked_at IS NULL AND (expiry_notice IS NULL OR expiry_notice > ?2)",
            params![key.id, key.notice],
        )?;
        if claimed == 0 || !key.announce {
            continue;
        }
        let on = from_secs(key.expires_at).to_rfc3339_opts(SecondsFormat::Secs, true);
        let (kind, detail) = match key.notice {
            0 => (EventKind::KeyExpired, format!("expired at {on}")),
            1 => (EventKind::KeyExpiring, format!("expires within 1 day, at {on}")),
            days => (EventKind::KeyExpiring, format!("expires within {days} days, at {on}")),
        };
        let event = NewEvent {
            workspace_id: key.workspace_id,
            kind,
            key_id: Some(&key.id),
            key_prefix: Some(&key.prefix),
            detail: &detail,
            actor: &server,
        };
        insert_event(&tx, now, &event)?;
        written += 1;
    }
    tx.commit()?;
    Ok(written)
}

/// How many active keys of a workspace expire within `days` (counted up to `max`).
pub(super) fn count_expiring(
    s: &AccessStore<'_>,
    workspace_id: i64,
    days: i64,
    max: i64,
) -> StoreResult<i64> {
    let now = s.now().timestamp();
    let rows = s.reader()?.query(
        "SELECT id FROM mcp_keys
         WHERE workspace_id = ?1 AND revoked_at IS NULL AND expires_at IS NOT NULL
           AND expires_at > ?2 AND expires_at <= ?3
         LIMIT ?4",
        params![workspace_id, now, now + days * DAY, max],
    )?;
    Ok(i64::try_from(rows.len()).unwrap_or(max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_threshold_is_due_once_and_the_most_urgent_wins() {
        let created = 0;
        let expires = 90 * DAY;
        // Far from the expiry: nothing.
        assert_eq!(due_notice(10 * DAY, created, expires, None), None);
        // 30 days before: the 30-day warning, once.
        assert_eq!(due_notice(60 * DAY, created, expires, None), Some(30));
        assert_eq!(due_notice(60 * DAY + 1, created, expires, Some(30)), None);
        // 7 and 1 days before, then expired.
        assert_eq!(due_notice(83 * DAY, created, expires, Some(30)), Some(7));
        assert_eq!(due_notice(89 * DAY, created, expires, Some(7)), Some(1));
        assert_eq!(due_notice(90 * DAY, created, expires, Some(1)), Some(0));
        assert_eq!(due_notice(91 * DAY, created, expires, Some(0)), None);
        // Down for weeks: only the most urgent.
        assert_eq!(due_notice(89 * DAY + 1, created, expires, None), Some(1));
        // A 30-day key is not "expiring within 30 days" when it is made.
        assert_eq!(due_notice(1, created, 30 * DAY, None), None);
        assert_eq!(due_notice(23 * DAY, created, 30 * DAY, None), Some(7));
    }
}
