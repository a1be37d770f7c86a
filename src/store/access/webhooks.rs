//! Signed webhooks (issue 35): each workspace's endpoints, and the durable outbox of what each
//! must be sent. An outbox row is written by [`enqueue`], called from the audit trail's
//! `insert_event` in the same transaction as the event it mirrors, so an event that happened
//! is never lost and one that rolled back is never sent. The server's delivery worker claims due
//! rows ([`claim_due`]) with a lease, one endpoint's rows in order, and records each attempt
//! ([`record_attempt`]).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::AccessStore;
use super::NewEvent;
use super::outbox::{insert_delivery, parse_events};
use crate::api::{
    Author, EventKind, Webhook, WebhookDelivery, WebhookEvent, WebhookFormat, WebhookSecret,
};
use crate::store::db::{Connection, DbResult, Row, params};
use crate::store::page::{Cursor, fingerprint};
use crate::store::{StoreError, StoreResult, from_secs, new_id};

/// How long after its event a delivery is retried: past it, the next failure gives it up
/// (marked `failed`, so the endpoint's next one goes).
pub const GIVE_UP_AFTER_SECONDS: i64 = 24 * 3600;
/// The longest wait between two attempts.
pub const BACKOFF_MAX_SECONDS: i64 = 3600;
/// How long a claimed delivery is reserved for the replica that claimed it (a request takes at
/// most 10 s); past it another replica (or this one after a restart) may try it again.
pub const LEASE_SECONDS: i64 = 60;
/// Endpoints a workspace may have.
const MAX_ENDPOINTS: i64 = 20;

/// One due delivery, claimed: what to send, where, and the secret to sign it with.
pub struct Claimed {
    pub delivery_id: i64,
    pub webhook_id: String,
    pub event_id: String,
    pub event_type: String,
    pub payload: String,
    pub url: String,
    pub format: WebhookFormat,
    pub secret: WebhookSecret,
    /// Attempts made before this one.
    pub attempts: i64,
    pub created_at: i64,
    /// The endpoint's workspace (the worker gives each workspace a share of its sends).
    pub workspace_id: i64,
    /// The lease this claim set (`lease_until`): the attempt's result is recorded only while
    /// the delivery still carries it, i.e. no later claim took it over. A delivery's leases
    /// only grow (a claim needs the previous lease past), so no later claim carries this one.
    pub lease_until: i64,
}

impl std::fmt::Debug for Claimed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claimed")
            .field("delivery_id", &self.delivery_id)
            .field("webhook_id", &self.webhook_id)
            .field("event_id", &self.event_id)
            .finish_non_exhaustive()
    }
}

/// How one attempt ended.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The receiver's HTTP status, if it answered.
    pub status: Option<u16>,
    /// Why it failed, when it did (never the secret or the body sent).
    pub error: Option<String>,
    pub millis: i64,
}

impl Attempt {
    /// A 2xx answer.
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s)) && self.error.is_none()
    }
}

/// A new signing secret: `whsec_` and 24 random bytes in base64 (the Standard Webhooks form).
fn new_secret() -> WebhookSecret {
    let mut bytes = [0u8; 24];
    crate::token::fill_random(&mut bytes);
    WebhookSecret(format!("whsec_{}", BASE64.encode(bytes)))
}

fn events_text(events: &[WebhookEvent]) -> String {
    events.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(",")
}

fn webhook_of(row: &Row) -> DbResult<Webhook> {
    let events: String = row.get("events")?;
    Ok(Webhook {
        id: row.get("id")?,
        url: row.get("url")?,
        events: parse_events(&events),
        format: row.get_parsed("format", WebhookFormat::parse)?,
        created_at: from_secs(row.get("created_at")?),
        created_by: row.get("created_by")?,
        pending: row.get("pending")?,
        dropped: row.get("dropped")?,
    })
}

/// Adds an endpoint; the secret returned is the only time it leaves the database.
pub(super) fn create_webhook(
    s: &AccessStore<'_>,
    workspace_id: i64,
    url: &str,
    events: &[WebhookEvent],
    format: WebhookFormat,
    created_by: &str,
    by: &Author,
) -> StoreResult<(Webhook, WebhookSecret)> {
    let now = s.now().timestamp();
    let conn = s.writer();
    let tx = conn.transaction()?;
    let count: i64 = tx.query_row(
        "SELECT count(*) AS n FROM webhook_endpoints WHERE workspace_id = ?1 AND removed_at IS NULL",
        params![workspace_id],
        |row| row.get("n"),
    )?;
    if count >= MAX_ENDPOINTS {
        return Err(StoreError::Quota(format!(
            "the workspace has {MAX_ENDPOINTS} webhooks, the most it may have; remove one first"
        )));
    }
    let id = new_id("whk");
    let secret = new_secret();
    // Audited first, so the other endpoints hear of it and this one does not.
    audit_webhook(&tx, workspace_id, now, EventKind::WebhookAdded, &id, url, by)?;
    tx.execute(
        "INSERT INTO webhook_endpoints (id, workspace_id, url, secret, events, format, created_at,
                                        created_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            id,
            workspace_id,
            url,
            secret.0,
            events_text(events),
            format.as_str(),
            now,
            created_by
        ],
    )?;
    tx.commit()?;
    let webhook = Webhook {
        id,
        url: url.to_owned(),
        events: events.to_vec(),
        format,
        created_at: from_secs(now),
        created_by: created_by.to_owned(),
        pending: 0,
        dropped: 0,
    };
    Ok((webhook, secret))
}

/// A workspace's endpoints, oldest first.
pub(super) fn list_webhooks(s: &AccessStore<'_>, workspace_id: i64) -> StoreResult<Vec<Webhook>> {
    let rows = s.reader()?.query(
        // The pending count is bounded by the outbox's cap per endpoint.
        "SELECT e.id AS id, e.url AS url, e.events AS events, e.format AS format,
                e.created_at AS created_at, e.created_by AS created_by, e.dropped AS dropped,
                (SELECT count(*) FROM webhook_deliveries d
                 WHERE d.endpoint_id = e.id AND d.delivered_at IS NULL
                   AND d.failed_at IS NULL) AS pending
         FROM webhook_endpoints e
         WHERE e.workspace_id = ?1 AND e.removed_at IS NULL ORDER BY e.created_at, e.id",
        params![workspace_id],
    )?;
    Ok(rows.iter().map(webhook_of).collect::<DbResult<Vec<_>>>()?)
}

/// Removes an endpoint: nothing more is sent to it, and its pending deliveries end as failed
/// (they stay in the log, and are no longer due).
pub(super) fn remove_webhook(
    s: &AccessStore<'_>,
    workspace_id: i64,
    id: &str,
    by: &Author,
) -> StoreResult<()> {
    let now = s.now().timestamp();
    let conn = s.writer();
    let tx = conn.transaction()?;
    let found = tx.query(
        "SELECT url FROM webhook_endpoints
         WHERE workspace_id = ?1 AND id = ?2 AND removed_at IS NULL",
        params![workspace_id, id],
    )?;
    let Some(row) = found.first() else { return Err(no_such_webhook(id)) };
    let url: String = row.get("url")?;
    tx.execute(
        "UPDATE webhook_endpoints SET removed_at = ?3, secret = ''
         WHERE workspace_id = ?1 AND id = ?2 AND removed_at IS NULL",
        params![workspace_id, id, now],
    )?;
    // Audited once it is removed: the other endpoints hear of it, this one not.
    audit_webhook(&tx, workspace_id, now, EventKind::WebhookRemoved, id, &url, by)?;
    tx.execute(
        "UPDATE webhook_deliveries SET failed_at = ?2, last_error = 'the webhook was removed'
         WHERE endpoint_id = ?1 AND delivered_at IS NULL AND failed_at IS NULL",
        params![id, now],
    )?;
    tx.commit()?;
    Ok(())
}

/// Ended deliveries deleted per transaction by [`prune_deliveries`].
pub(crate) const PRUNE_CHUNK: i64 = 5_000;

/// Deletes deliveries (and their attempts) that were delivered or failed before `before`,
/// [`PRUNE_CHUNK`] deliveries per transaction (so a day's backlog does not hold the writer
/// for long), oldest first, read by the indexes on when they ended. Returns how many
/// deliveries went.
pub(super) fn prune_deliveries(s: &AccessStore<'_>, before: i64) -> StoreResult<usize> {
    let mut deleted = 0;
    for ended in ["delivered_at", "failed_at"] {
        loop {
            let conn = s.writer();
            let tx = conn.transaction()?;
            let ids = tx
                .query(&ended_chunk(ended), params![before, PRUNE_CHUNK])?
                .iter()
                .map(|row| row.get::<i64>("id"))
                .collect::<DbResult<Vec<_>>>()?;
            if ids.is_empty() {
                break;
            }
            // Ids are integers: written as literals.
            let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
            tx.execute(&attempts_of(&list), [])?;
            deleted +=
                tx.execute(&format!("DELETE FROM webhook_deliveries WHERE id IN ({list})"), [])?;
            tx.commit()?;
            if (ids.len() as i64) < PRUNE_CHUNK {
                break;
            }
        }
    }
    Ok(deleted)
}

/// A chunk of the deliveries that ended (`ended`: `delivered_at` or `failed_at`) before `?1`,
/// at most `?2`, the oldest first (the `webhook_deliveries_delivered` and `_failed` indexes).
fn ended_chunk(ended: &str) -> String {
    format!("SELECT id FROM webhook_deliveries WHERE {ended} < ?1 ORDER BY {ended} LIMIT ?2")
}

/// Deletes the attempts of the deliveries `ids` (a comma-separated list of integers; the
/// `webhook_attempts_delivery` index).
fn attempts_of(ids: &str) -> String {
    format!("DELETE FROM webhook_attempts WHERE delivery_id IN ({ids})")
}

/// The audit event of an endpoint added or removed: its id and host (a URL's path and query
/// may hold a secret of the receiver's, so they are left out).
fn audit_webhook(
    conn: &Connection,
    workspace_id: i64,
    at: i64,
    kind: EventKind,
    id: &str,
    url: &str,
    by: &Author,
) -> StoreResult<()> {
    let host = url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| "an unreadable URL".to_owned());
    let detail = format!("webhook {id}, to {host}");
    let event =
        NewEvent { workspace_id, kind, key_id: None, key_prefix: None, detail: &detail, actor: by };
    super::audit::insert_event(conn, at, &event)
}

fn no_such_webhook(id: &str) -> StoreError {
    StoreError::NotFound(format!(
        "no webhook {id} in this workspace; run `custory-mcp webhooks list` to see them"
    ))
}

/// Queues a `webhook.test` event for one endpoint, due now; returns its delivery id.
pub(super) fn enqueue_test(s: &AccessStore<'_>, workspace_id: i64, id: &str) -> StoreResult<i64> {
    let now = s.now().timestamp();
    let conn = s.writer();
    let tx = conn.transaction()?;
    let found = tx.query(
        "SELECT w.slug AS slug FROM webhook_endpoints e JOIN workspaces w ON w.id = e.workspace_id
         WHERE e.workspace_id = ?1 AND e.id = ?2 AND e.removed_at IS NULL",
        params![workspace_id, id],
    )?;
    let Some(row) = found.first() else { return Err(no_such_webhook(id)) };
    let slug: String = row.get("slug")?;
    let data = serde_json::json!({"workspace": slug, "detail": "a test event from custory-mcp"});
    let (_, delivery) = insert_delivery(&tx, id, WebhookEvent::Test, now, &data)?;
    tx.commit()?;
    Ok(delivery)
}

const CLAIMED_COLUMNS: &str = "d.id AS id, d.endpoint_id AS endpoint_id, d.event_id AS event_id,
    d.event_type AS event_type, d.payload AS payload, e.format AS format, d.attempts AS attempts,
    d.created_at AS created_at, e.url AS url, e.secret AS secret, e.workspace_id AS workspace_id";

fn claimed_of(row: &Row, lease_until: i64) -> DbResult<Claimed> {
    Ok(Claimed {
        delivery_id: row.get("id")?,
        webhook_id: row.get("endpoint_id")?,
        event_id: row.get("event_id")?,
        event_type: row.get("event_type")?,
        payload: row.get("payload")?,
        url: row.get("url")?,
        format: row.get_parsed("format", WebhookFormat::parse)?,
        secret: WebhookSecret(row.get("secret")?),
        attempts: row.get("attempts")?,
        created_at: row.get("created_at")?,
        workspace_id: row.get("workspace_id")?,
        lease_until,
    })
}

/// A delivery that may be sent now (`?1` the time, `?2` the test event's type): due, neither
/// delivered nor given up, not leased, its endpoint not removed, and no earlier delivery of its
/// endpoint still pending (a test event is out of band: no real event waits behind it).
const CLAIMABLE: &str = "d.delivered_at IS NULL AND d.failed_at IS NULL AND d.next_attempt_at <= ?1
    AND (d.lease_until IS NULL OR d.lease_until < ?1) AND e.removed_at IS NULL
    AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p
                    WHERE p.endpoint_id = d.endpoint_id AND p.id < d.id
                      AND p.delivered_at IS NULL AND p.failed_at IS NULL
                      AND p.event_type <> ?2)";

/// What a claim may take: sends the caller can start, and its share per workspace.
#[derive(Debug, Clone, Copy)]
pub struct ClaimLimits<'a> {
    /// Deliveries claimed at most.
    pub limit: usize,
    /// Sends in flight at most per workspace, counting those already in flight.
    pub per_workspace: usize,
    /// The caller's sends in flight now, by workspace id.
    pub in_flight: &'a std::collections::HashMap<i64, usize>,
}

/// Claims due deliveries, each the oldest one not yet delivered of its endpoint (so an
/// endpoint gets its events in order), for [`LEASE_SECONDS`]: up to `limits.limit`, and no
/// more for one workspace than brings its sends in flight to `limits.per_workspace` (so one
/// workspace's many slow receivers cannot take every send of the replica). On PostgreSQL the
/// rows are locked with `SKIP LOCKED` (and every write transaction also takes the shared write
/// lock), so of several replicas exactly one claims each.
pub(super) fn claim_due(s: &AccessStore<'_>, limits: ClaimLimits<'_>) -> StoreResult<Vec<Claimed>> {
    let now = s.now().timestamp();
    if limits.limit == 0 {
        return Ok(Vec::new());
    }
    // Workspaces at their share are left out in SQL, so their backlog neither takes the
    // writer every second nor fills the candidates (ids are integers: written as literals).
    let mut full: Vec<i64> = limits
        .in_flight
        .iter()
        .filter(|(_, n)| **n >= limits.per_workspace)
        .map(|(ws, _)| *ws)
        .collect();
    full.sort_unstable();
    let not_full = if full.is_empty() {
        String::new()
    } else {
        let ids = full.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
        format!(" AND e.workspace_id NOT IN ({ids})")
    };
    // Asked every second: a reader says whether anything is due (the `due` index), so an idle
    // server, or one without webhooks, never takes the writer (nor, on PostgreSQL, the shared
    // write lock) for this.
    // The same rows the claim takes: a delivery waiting behind its endpoint's earlier one is
    // not due (else a dead receiver's backlog would take the writer every second for nothing).
    let due = s
        .reader()?
        .prepare_cached(&format!(
            "SELECT 1 FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
             WHERE {CLAIMABLE}{not_full} LIMIT 1"
        ))?
        .exists(params![now, WebhookEvent::Test.as_str()])?;
    if !due {
        return Ok(Vec::new());
    }
    let lease_until = now + LEASE_SECONDS;
    let limit = i64::try_from(limits.limit).unwrap_or(i64::MAX);
    let conn = s.writer();
    let tx = conn.transaction()?;
    let lock = if tx.is_postgres() { "FOR UPDATE OF d SKIP LOCKED" } else { "" };
    // A workspace gives at most one candidate per endpoint: past `limit`, one workspace's
    // endpoints more leave room for the others' when its share is taken.
    let rows = tx.query(
        &format!(
            "SELECT {CLAIMED_COLUMNS}
             FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
             WHERE {CLAIMABLE}{not_full}
             ORDER BY d.id LIMIT ?3 {lock}"
        ),
        params![now, WebhookEvent::Test.as_str(), limit.saturating_add(MAX_ENDPOINTS)],
    )?;
    let mut taken = limits.in_flight.clone();
    let mut claimed = Vec::new();
    for row in &rows {
        let delivery = claimed_of(row, lease_until)?;
        let share = taken.entry(delivery.workspace_id).or_insert(0);
        if *share >= limits.per_workspace || claimed.len() >= limits.limit {
            continue;
        }
        *share += 1;
        tx.execute(
            "UPDATE webhook_deliveries SET lease_until = ?2 WHERE id = ?1",
            params![delivery.delivery_id, lease_until],
        )?;
        claimed.push(delivery);
    }
    tx.commit()?;
    Ok(claimed)
}

/// Claims one delivery by id (`webhooks test`), whatever is before it.
pub(super) fn claim_one(s: &AccessStore<'_>, delivery_id: i64) -> StoreResult<Option<Claimed>> {
    let now = s.now().timestamp();
    let conn = s.writer();
    let tx = conn.transaction()?;
    let rows = tx.query(
        &format!(
            "SELECT {CLAIMED_COLUMNS}
             FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
             WHERE d.id = ?1 AND d.delivered_at IS NULL AND d.failed_at IS NULL
               AND (d.lease_until IS NULL OR d.lease_until < ?2)"
        ),
        params![delivery_id, now],
    )?;
    let lease_until = now + LEASE_SECONDS;
    let claimed = rows.first().map(|row| claimed_of(row, lease_until)).transpose()?;
    if claimed.is_some() {
        tx.execute(
            "UPDATE webhook_deliveries SET lease_until = ?2 WHERE id = ?1",
            params![delivery_id, lease_until],
        )?;
    }
    tx.commit()?;
    Ok(claimed)
}

/// When the attempt after `attempts` failed ones goes: 2 s, 4 s, 8 s… up to an hour (so about
/// 20 attempts in the [`GIVE_UP_AFTER_SECONDS`]).
pub fn backoff_seconds(attempts: i64) -> i64 {
    let exponent = u32::try_from(attempts.clamp(1, 20)).unwrap_or(20);
    2_i64.saturating_pow(exponent).min(BACKOFF_MAX_SECONDS)
}

/// Records how an attempt went: delivered, due again after a backoff, or given up after
/// [`GIVE_UP_AFTER_SECONDS`] (a test event: after one attempt). The delivery's state changes
/// only while it still carries the claim's lease ([`Claimed::lease_until`]): the late result
/// of a send that outlived its lease (a receiver slower than [`LEASE_SECONDS`], a replica
/// paused), once another claim took the delivery over and perhaps delivered it, goes to the
/// attempt log and nowhere else, so it neither undoes a delivery nor frees a delivery another
/// worker is sending. Returns whether the result applied (false: it was late).
pub(super) fn record_attempt(
    s: &AccessStore<'_>,
    claimed: &Claimed,
    attempt: &Attempt,
) -> StoreResult<bool> {
    let now = s.now().timestamp();
    let attempts = claimed.attempts + 1;
    let status = attempt.status.map(i64::from);
    let conn = s.writer();
    let tx = conn.transaction()?;
    // Pruned since (a result days late): nothing to record it against.
    let found = tx.query(
        "SELECT 1 AS one FROM webhook_deliveries WHERE id = ?1",
        params![claimed.delivery_id],
    )?;
    if found.is_empty() {
        return Ok(false);
    }
    tx.execute(
        "INSERT INTO webhook_attempts (delivery_id, endpoint_id, at, status, error, millis)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            claimed.delivery_id,
            claimed.webhook_id,
            now,
            status,
            attempt.error.as_deref(),
            attempt.millis
        ],
    )?;
    // Under the claim's lease only. A delivery ended while in flight (its webhook removed)
    // stays ended, with the reason it ended, unless this attempt got through.
    let applied = if attempt.succeeded() {
        tx.execute(
            "UPDATE webhook_deliveries
             SET attempts = ?2, last_status = ?3, last_error = ?4, last_attempt_at = ?5,
                 delivered_at = ?5, failed_at = NULL, lease_until = NULL
             WHERE id = ?1 AND lease_until = ?6 AND delivered_at IS NULL",
            params![
                claimed.delivery_id,
                attempts,
                status,
                attempt.error.as_deref(),
                now,
                claimed.lease_until
            ],
        )?
    } else {
        // A test is tried once; an event, until a day after it happened.
        let give_up = claimed.event_type == WebhookEvent::Test.as_str()
            || now - claimed.created_at >= GIVE_UP_AFTER_SECONDS;
        let failed = give_up.then_some(now);
        tx.execute(
            "UPDATE webhook_deliveries
             SET attempts = ?2, last_status = ?3,
                 last_error = CASE WHEN failed_at IS NULL THEN ?4 ELSE last_error END,
                 last_attempt_at = ?5, failed_at = COALESCE(failed_at, ?6), next_attempt_at = ?7,
                 lease_until = NULL
             WHERE id = ?1 AND lease_until = ?8 AND delivered_at IS NULL",
            params![
                claimed.delivery_id,
                attempts,
                status,
                attempt.error.as_deref(),
                now,
                failed,
                now + backoff_seconds(attempts),
                claimed.lease_until
            ],
        )?
    };
    tx.commit()?;
    Ok(applied > 0)
}

/// One page of a workspace's deliveries (or of one of its endpoints), the most recent first,
/// and the cursor of the next page if there is one.
pub(super) fn list_deliveries_page(
    s: &AccessStore<'_>,
    workspace_id: i64,
    webhook_id: Option<&str>,
    limit: i64,
    cursor: Option<&str>,
) -> StoreResult<(Vec<WebhookDelivery>, Option<String>)> {
    let query = fingerprint(&[webhook_id.unwrap_or("")]);
    let before = match cursor.map(str::trim).filter(|c| !c.is_empty()) {
        Some(text) => Cursor::decode(text, "deliveries", query, 1)?.position[0],
        None => i64::MAX,
    };
    let mut rows = list_deliveries(s, workspace_id, webhook_id, before, limit + 1)?;
    let more = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next = match (more, rows.last()) {
        (true, Some(last)) => Some(Cursor::new("deliveries", query, vec![last.id]).encode()),
        _ => None,
    };
    Ok((rows, next))
}

/// Up to `limit` deliveries of a workspace (or of one of its endpoints) with ids below
/// `before`, the most recent first.
pub(super) fn list_deliveries(
    s: &AccessStore<'_>,
    workspace_id: i64,
    webhook_id: Option<&str>,
    before: i64,
    limit: i64,
) -> StoreResult<Vec<WebhookDelivery>> {
    let rows = s.reader()?.query(
        "SELECT d.id AS id, d.endpoint_id AS endpoint_id, d.event_id AS event_id,
                d.event_type AS event_type, d.created_at AS created_at, d.attempts AS attempts,
                d.next_attempt_at AS next_attempt_at, d.last_status AS last_status,
                d.last_error AS last_error, d.delivered_at AS delivered_at,
                d.failed_at AS failed_at
         FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
         WHERE e.workspace_id = ?1 AND (CAST(?2 AS TEXT) IS NULL OR d.endpoint_id = ?2)
           AND d.id < ?4
         ORDER BY d.id DESC LIMIT ?3",
        params![workspace_id, webhook_id, limit, before],
    )?;
    let deliveries = rows
        .iter()
        .map(|row| {
            let delivered: Option<i64> = row.get("delivered_at")?;
            let failed: Option<i64> = row.get("failed_at")?;
            let state = match (delivered, failed) {
                (Some(_), _) => "delivered",
                (None, Some(_)) => "failed",
                (None, None) => "pending",
            };
            Ok(WebhookDelivery {
                id: row.get("id")?,
                webhook_id: row.get("endpoint_id")?,
                event_id: row.get("event_id")?,
                event_type: row.get("event_type")?,
                created_at: from_secs(row.get("created_at")?),
                attempts: row.get("attempts")?,
                next_attempt_at: (state == "pending")
                    .then(|| row.get::<i64>("next_attempt_at").map(from_secs))
                    .transpose()?,
                state: state.to_owned(),
                last_status: row.get("last_status")?,
                last_error: row.get("last_error")?,
                delivered_at: delivered.map(from_secs),
            })
        })
        .collect::<DbResult<Vec<_>>>()?;
    Ok(deliveries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Access, ExpiryPolicy};
    use crate::store::{Clock, Store};

    /// Due deliveries, with room for all of them.
    fn claim(access: &AccessStore<'_>) -> StoreResult<Vec<Claimed>> {
        let none = std::collections::HashMap::new();
        access.claim_webhook_deliveries(ClaimLimits {
            limit: 10,
            per_workspace: 10,
            in_flight: &none,
        })
    }

    fn failed() -> Attempt {
        Attempt { status: Some(503), error: None, millis: 1 }
    }

    #[test]
    fn events_queue_in_the_same_transaction_and_go_out_in_order_per_endpoint() {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = Clock::default();
        let store = Store::open(&dir.path().join("t.db"), clock.clone()).expect("open");
        let access = store.access();
        let ws = access.workspace_by_slug("acme").expect("query").expect("acme").id;
        let (hook, secret) = access
            .create_webhook(
                ws,
                "https://example.com/in",
                &[WebhookEvent::KeyCreated],
                WebhookFormat::Standard,
                "admin",
                &Author::default(),
            )
            .expect("create");
        assert!(secret.0.starts_with("whsec_"));
        assert!(!format!("{secret:?}").contains(&secret.0));
        let (key, token) =
            access.create_key(ws, "ci", ExpiryPolicy::Never, Access::ReadWrite).expect("key");
        let (_, second) =
            access.create_key(ws, "ci-2", ExpiryPolicy::Never, Access::ReadWrite).expect("key");
        access.revoke_key(ws, &key.id, &crate::api::Author::default()).expect("revoke");

        let claimed = claim(&access).expect("claim");
        assert_eq!(claimed.len(), 1, "one endpoint: only its oldest pending delivery");
        let first = &claimed[0];
        assert_eq!(first.webhook_id, hook.id);
        let payload: serde_json::Value = serde_json::from_str(&first.payload).expect("json");
        assert_eq!(payload["type"], "key.created");
        assert_eq!(payload["data"]["key"]["name"], "ci");
        assert_eq!(payload["data"]["key"]["prefix"], key.prefix.as_str());
        assert!(!first.payload.contains(token.expose()), "no token in a payload");
        assert!(!first.payload.contains(second.expose()), "no token in a payload");
        // Claimed: not claimed again while leased; failed: not due before its backoff, and
        // the next event waits behind it.
        assert!(claim(&access).expect("claim").is_empty());
        access.record_webhook_attempt(first, &failed()).expect("record");
        assert!(claim(&access).expect("claim").is_empty());
        clock.advance(chrono::Duration::seconds(backoff_seconds(1)));
        let again = claim(&access).expect("claim");
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].event_id, first.event_id, "the same event id at every attempt");
        access
            .record_webhook_attempt(
                &again[0],
                &Attempt { status: Some(204), error: None, millis: 1 },
            )
            .expect("record");
        let next = claim(&access).expect("claim");
        assert_eq!(next.len(), 1);
        let payload: serde_json::Value = serde_json::from_str(&next[0].payload).expect("json");
        assert_eq!(payload["data"]["key"]["name"], "ci-2", "revocations are not subscribed to");
        let log = access.list_webhook_deliveries(ws, Some(&hook.id), 10).expect("log");
        assert_eq!(log.len(), 2);
        assert_eq!(log[1].state, "delivered");
        assert_eq!(log[1].attempts, 2);
        access.remove_webhook(ws, &hook.id, &Author::default()).expect("remove");
        access.record_webhook_attempt(&next[0], &failed()).expect("record");
        clock.advance(chrono::Duration::seconds(600));
        assert!(claim(&access).expect("claim").is_empty(), "removed");
        // The removed webhook's delivery in flight stays ended, so nothing is due any more.
        let log = access.list_webhook_deliveries(ws, Some(&hook.id), 10).expect("log");
        assert_eq!(log[0].state, "failed", "{:?}", log[0]);
        let due = access.reader().expect("reader").query_row(
            "SELECT count(*) AS n FROM webhook_deliveries
             WHERE delivered_at IS NULL AND failed_at IS NULL",
            [],
            |row| row.get::<i64>("n"),
        );
        assert_eq!(due.expect("count"), 0);
        // Ended deliveries leave with their attempts once past the retention.
        let later = store.now() + chrono::Duration::days(1);
        assert_eq!(access.prune_webhook_deliveries(later).expect("prune"), 2);
        assert!(access.list_webhook_deliveries(ws, None, 10).expect("log").is_empty());
    }

    #[test]
    fn a_failing_test_event_blocks_nothing_and_events_are_retried_for_a_day() {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = Clock::default();
        let store = Store::open(&dir.path().join("t.db"), clock.clone()).expect("open");
        let access = store.access();
        let ws = access.workspace_by_slug("acme").expect("query").expect("acme").id;
        let (hook, _) = access
            .create_webhook(
                ws,
                "https://example.com/in",
                &[],
                WebhookFormat::Standard,
                "admin",
                &Author::default(),
            )
            .expect("create");
        // A test event that fails: tried once, and the real event behind it goes at once.
        let test = access.enqueue_webhook_test(ws, &hook.id).expect("test");
        let test = access.claim_webhook_delivery(test).expect("claim").expect("claimed");
        access.create_key(ws, "ci", ExpiryPolicy::Never, Access::ReadWrite).expect("key");
        let real = claim(&access).expect("claim");
        assert_eq!(real.len(), 1, "the real event does not wait behind the test");
        assert_eq!(real[0].event_type, "key.created");
        access.record_webhook_attempt(&test, &failed()).expect("record");
        let log = access.list_webhook_deliveries(ws, Some(&hook.id), 10).expect("log");
        let test_log = log.iter().find(|d| d.event_type == "webhook.test").expect("test");
        assert_eq!(test_log.state, "failed", "a test is not retried");
        // The real event: retried with a backoff capped at an hour, until a day has passed.
        let mut delivery = real.into_iter().next().expect("one");
        let mut attempts = 0;
        loop {
            access.record_webhook_attempt(&delivery, &failed()).expect("record");
            attempts += 1;
            let log = access.list_webhook_deliveries(ws, Some(&hook.id), 10).expect("log");
            let state = &log.iter().find(|d| d.event_id == delivery.event_id).expect("it").state;
            if state == "failed" {
                break;
            }
            assert!(attempts < 40, "given up in time");
            clock.advance(chrono::Duration::seconds(BACKOFF_MAX_SECONDS));
            delivery = claim(&access).expect("claim").pop().expect("due");
        }
        let age = store.now().timestamp() - delivery.created_at;
        assert!((GIVE_UP_AFTER_SECONDS..GIVE_UP_AFTER_SECONDS + 3600).contains(&age), "{age}");
        assert!(attempts > 8, "more than the old 8 attempts: {attempts}");
        assert_eq!(backoff_seconds(30), BACKOFF_MAX_SECONDS);
    }

    #[test]
    fn pruning_reads_ended_deliveries_and_their_attempts_by_index() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("t.db"), Clock::default()).expect("open");
        let access = store.access();
        let reader = access.reader().expect("reader");
        let plan = |sql: &str| {
            let rows = reader.query(&format!("EXPLAIN QUERY PLAN {sql}"), params![0_i64, 10_i64]);
            let rows = rows.expect("plan");
            rows.iter().map(|r| r.get::<String>("detail").expect("detail")).collect::<Vec<_>>()
        };
        for (ended, index) in [
            ("delivered_at", "webhook_deliveries_delivered"),
            ("failed_at", "webhook_deliveries_failed"),
        ] {
            let steps = plan(&ended_chunk(ended));
            assert!(steps.iter().any(|s| s.contains(index)), "{ended}: {steps:?}");
            assert!(!steps.iter().any(|s| s.contains("TEMP B-TREE")), "no sort: {steps:?}");
        }
        let steps = plan(&attempts_of("1, 2, 3").replace("IN (", "IN (?1, ?2, "));
        assert!(steps.iter().any(|s| s.contains("webhook_attempts_delivery")), "{steps:?}");
    }
}
