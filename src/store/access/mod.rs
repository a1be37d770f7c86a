//! The access room: who may do what, and what they did. Workspaces (the boundary of every key
//! and query), MCP keys and their in-memory index and last-use buffer, the owner credential,
//! OAuth's clients, sessions and codes, the audit trail, the record of every call a key made,
//! and each key's hygiene flags.
//!
//! [`AccessStore`] below is the whole interface the rest of the crate uses; each method is one
//! line that names the file doing the work. The content room reaches this one only through
//! [`edge`].

mod activity;
mod audit;
pub mod edge;
mod expiry;
mod hygiene;
mod key_cache;
mod keys;
mod members;
pub mod oauth;
mod outbox;
mod owner;
mod policy;
mod sink;
mod webhooks;
mod workspaces;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, RwLock};

use chrono::{DateTime, Utc};

use super::base::Db;
use super::db::Connection;
use super::{Page, StoreResult};
use crate::api::{self, Access, Author, Event, ExpiryPolicy, Key, KeyScopes, Workspace};
use crate::token::{PlainToken, TokenHash};
pub use activity::{Call, ORIGINS_PER_KEY, asked_ids, touched_ids};
#[cfg(test)]
pub(super) use activity::{QUEUE_MAX, forget_idle_origins};
pub use audit::{Actor, EventFilter, NewEvent};
pub use expiry::EXPIRY_NOTICE_DAYS;
pub use hygiene::{EXPIRY_WARNING_DAYS, KeyFilter, SHARED_WINDOW_DAYS};
pub use keys::{AuthenticatedKey, KeyIdentity, KeyUsage};
pub use members::{InvitationError, MemberCaller, Removal};
use oauth::{Grant, OAuthClient, RedeemError, Redemption};
pub use outbox::{MAX_PENDING as MAX_WEBHOOK_PENDING, dropped_error as webhook_dropped_error};
pub use owner::OwnerCredentialSetup;
pub use policy::{SHARED_TTL as POLICY_TTL, StoredPolicy};
pub use sink::SinkCursor;
pub use webhooks::{
    Attempt, BACKOFF_MAX_SECONDS, ClaimLimits, Claimed, GIVE_UP_AFTER_SECONDS,
    LEASE_SECONDS as WEBHOOK_LEASE_SECONDS,
};
pub use workspaces::{WorkspaceFilter, WorkspaceRow};

/// What the access room keeps in memory, for the life of the store.
pub(super) struct State {
    /// SQLite only: the MCP keys recently used, by token hash, so authenticating a key in use
    /// needs no query (bounded: see `key_cache.rs`). Written only by `keys.rs`, in the same
    /// critical section as the database write it mirrors.
    key_cache: Option<key_cache::KeyCache<keys::IndexedKey>>,
    /// The active owner credentials, by hash (see `owner.rs`).
    owners: RwLock<HashSet<TokenHash>>,
    /// The latest use of each key seen by this process; `dirty` ones are not yet written
    /// (see [`AccessStore::flush_usage`]).
    usage: Mutex<HashMap<String, keys::UsageSlot>>,
    /// Calls and origins not yet written (see [`AccessStore::flush_activity`]).
    activity: activity::Activity,
    /// The workspaces' key policies (see `policy.rs`).
    policies: policy::Policies,
    /// How many times an MCP key was looked up in the database (not in the key cache).
    key_reads: std::sync::atomic::AtomicU64,
}

impl State {
    /// `index_keys`: keep the key cache (SQLite, where one process owns the database).
    pub(super) fn new(index_keys: bool) -> Self {
        Self {
            key_cache: index_keys.then(|| key_cache::KeyCache::new(key_cache::DEFAULT_CAPACITY)),
            owners: RwLock::default(),
            usage: Mutex::default(),
            activity: activity::Activity::default(),
            policies: policy::Policies::default(),
            key_reads: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn pending_usage(&self) -> MutexGuard<'_, HashMap<String, keys::UsageSlot>> {
        // The map holds plain values, a panic cannot leave it torn.
        self.usage.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The access room's face: see the module's documentation.
#[derive(Clone, Copy)]
pub struct AccessStore<'s> {
    db: &'s Db,
    state: &'s State,
}

impl<'s> AccessStore<'s> {
    pub(super) fn new(db: &'s Db, state: &'s State) -> Self {
        Self { db, state }
    }

    /// Reads the owner credentials into memory (at open). Keys are read as they are used, so
    /// opening takes as long with a million keys as with one.
    pub(super) fn load(&self) -> StoreResult<()> {
        owner::load_owner_credentials(self)
    }

    fn now(&self) -> DateTime<Utc> {
        self.db.now()
    }

    fn reader(&self) -> StoreResult<Connection<'s>> {
        self.db.reader()
    }

    fn writer(&self) -> Connection<'s> {
        self.db.writer()
    }
}

impl AccessStore<'_> {
    /// Whether keys in use and owner credentials are checked from memory (SQLite: one process
    /// owns the database), or by asking the database (PostgreSQL, shared by replicas).
    pub fn keys_in_memory(&self) -> bool {
        self.state.key_cache.is_some()
    }

    // Workspaces ---------------------------------------------------------------------------

    /// One page of the workspaces `filter` selects, by slug: `(rows, next cursor)`.
    pub fn list_workspaces(
        &self,
        filter: &WorkspaceFilter,
        limit: u32,
        cursor: Option<&str>,
    ) -> StoreResult<Page<Workspace>> {
        workspaces::list_workspaces(self, filter, limit, cursor)
    }

    pub fn workspace_count(&self) -> StoreResult<i64> {
        workspaces::workspace_count(self)
    }

    /// The first `limit` workspaces by slug (a picker's worth).
    pub fn first_workspaces(&self, limit: i64) -> StoreResult<Vec<Workspace>> {
        workspaces::first_workspaces(self, limit)
    }

    pub fn workspace_by_slug(&self, slug: &str) -> StoreResult<Option<WorkspaceRow>> {
        workspaces::workspace_by_slug(self, slug)
    }

    pub fn workspace_by_id(&self, id: i64) -> StoreResult<Option<WorkspaceRow>> {
        workspaces::workspace_by_id(self, id)
    }

    /// Creates an empty workspace; a taken slug is a conflict.
    pub fn create_workspace(&self, name: &str, slug: &str) -> StoreResult<Workspace> {
        workspaces::create_workspace(self, name, slug)
    }

    // MCP keys -----------------------------------------------------------------------------

    /// Creates a key as the server administrator. The returned [`PlainToken`] is the only copy
    /// of the secret there will be.
    pub fn create_key(
        &self,
        ws: i64,
        name: &str,
        expires: ExpiryPolicy,
        access: Access,
    ) -> StoreResult<(Key, PlainToken)> {
        keys::create_key(self, ws, name, expires, access, &KeyScopes::default(), &Author::default())
    }

    /// [`Self::create_key`], made by `by` and confined to `scopes` (already checked: tool
    /// names expanded, journeys as ids, networks as CIDRs).
    pub fn create_key_by(
        &self,
        ws: i64,
        name: &str,
        expires: ExpiryPolicy,
        access: Access,
        scopes: &KeyScopes,
        by: &Author,
    ) -> StoreResult<(Key, PlainToken)> {
        keys::create_key(self, ws, name, expires, access, scopes, by)
    }

    /// Narrows an active key to `access` and `scopes` (never wider than it was), audited.
    pub fn narrow_key(
        &self,
        ws: i64,
        id: &str,
        access: Access,
        scopes: &KeyScopes,
        by: &Author,
    ) -> StoreResult<Key> {
        keys::narrow_key(self, ws, id, access, scopes, by)
    }

    /// One page of a workspace's keys, newest first, with pending last uses and their flags.
    pub fn list_keys(
        &self,
        ws: i64,
        filter: &KeyFilter,
        limit: u32,
        cursor: Option<&str>,
    ) -> StoreResult<Page<Key>> {
        keys::list_keys(self, ws, filter, limit, cursor)
    }

    /// The keys a person may mean by `reference`: its id, or a name or displayed prefix.
    pub fn find_keys(&self, ws: i64, reference: &str) -> StoreResult<Vec<Key>> {
        keys::find_keys(self, ws, reference)
    }

    /// The keys an id or displayed prefix names on the whole server, with their workspace's
    /// workspace (only in `member_id`'s workspaces when given).
    pub fn find_keys_anywhere(
        &self,
        reference: &str,
        member_id: Option<&str>,
    ) -> StoreResult<Vec<(Workspace, Key)>> {
        keys::find_keys_anywhere(self, reference, member_id)
    }

    pub fn get_key(&self, ws: i64, id: &str) -> StoreResult<Key> {
        keys::get_key(self, ws, id)
    }

    /// The key whose token hashes to `hash`, in any workspace: `(workspace id, slug, key)`.
    pub fn key_by_token(&self, hash: &TokenHash) -> StoreResult<Option<(i64, String, Key)>> {
        keys::key_by_token(self, hash)
    }

    /// Revokes a key, in force on the very next request.
    pub fn revoke_key(&self, ws: i64, id: &str, by: &Author) -> StoreResult<Key> {
        keys::revoke_key_because(self, ws, id, None, by)
    }

    /// Revokes a key, saying why in the audit event (`reason`, after "revoked NAME").
    pub fn revoke_key_because(
        &self,
        ws: i64,
        id: &str,
        reason: Option<&str>,
        by: &Author,
    ) -> StoreResult<Key> {
        keys::revoke_key_because(self, ws, id, reason, by)
    }

    /// Replaces a key by a new one like it: `(new key, its token, the replaced key)`.
    pub fn rotate_key(
        &self,
        ws: i64,
        id: &str,
        by: &Author,
    ) -> StoreResult<(Key, PlainToken, Key)> {
        // The new key keeps the workspace policy (see `Policy::conform`).
        let policy = policy::fresh_policy(self, ws)?;
        keys::rotate_key(self, ws, id, &policy.policy, by)
    }

    /// Re-reads the keys of a workspace an import hid or showed into the key index (SQLite):
    /// they are refused while it is hidden.
    pub fn reindex_workspace_keys(&self, workspace_id: i64) -> StoreResult<()> {
        keys::reindex_workspace_keys(self, workspace_id)
    }

    /// The key a token hash belongs to, with its current status (SQLite: from the key cache
    /// when it holds it, else one query).
    pub fn authenticate_key(&self, hash: &TokenHash) -> StoreResult<Option<AuthenticatedKey>> {
        keys::authenticate_key(self, hash)
    }

    /// How many times [`Self::authenticate_key`] asked the database (since the store opened).
    pub fn key_reads(&self) -> u64 {
        self.state.key_reads.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The key a token hash belongs to if the key cache holds it (SQLite): memory only, so it
    /// may be asked on an async worker; `None` means ask [`Self::authenticate_key`].
    pub fn cached_key(&self, hash: &TokenHash) -> Option<AuthenticatedKey> {
        keys::cached_key(self, hash)
    }

    /// Lets idle keys leave memory (the housekeeping's): `(keys cached, last uses held)`.
    /// Idle keys also leave the origin maps (`activity::forget_idle_origins`).
    pub fn forget_idle_keys(&self) -> (usize, usize) {
        activity::forget_idle_origins(self, self.now());
        keys::forget_idle_keys(self)
    }

    /// Notes a use of a key in memory; returns the client the use is put down to.
    pub fn note_usage(
        &self,
        key_id: &str,
        usage: KeyUsage,
        otherwise: impl FnOnce() -> Option<String>,
    ) -> Option<String> {
        keys::note_usage(self, key_id, usage, otherwise)
    }

    /// How long the oldest use not yet written has waited.
    pub fn usage_flush_age(&self) -> Option<std::time::Duration> {
        keys::usage_flush_age(self)
    }

    /// Writes the last uses noted since the previous flush; returns how many.
    pub fn flush_usage(&self) -> StoreResult<usize> {
        keys::flush_usage(self)
    }

    // The owner credential -----------------------------------------------------------------

    /// Issues an owner credential if none is active, or (`reset`) a new one.
    pub fn ensure_owner_credential(&self, reset: bool) -> StoreResult<OwnerCredentialSetup> {
        owner::ensure_owner_credential(self, reset)
    }

    /// Whether `hash` is an active owner credential (from memory).
    pub fn is_owner_credential(&self, hash: &TokenHash) -> bool {
        owner::is_owner_credential(self, hash)
    }

    /// Reads the active owner credentials into memory again.
    pub fn load_owner_credentials(&self) -> StoreResult<()> {
        owner::load_owner_credentials(self)
    }

    // Members ------------------------------------------------------------------------------

    /// The member a personal credential belongs to (active, not removed), with their role in
    /// the workspace `slug`. Asked of the database on every request.
    pub fn authenticate_member(
        &self,
        hash: &TokenHash,
        slug: Option<&str>,
    ) -> StoreResult<Option<MemberCaller>> {
        members::authenticate_member(self, hash, slug)
    }

    /// Every workspace a member has a role in, with the role.
    pub fn roles_of(&self, member_id: &str) -> StoreResult<Vec<api::WorkspaceRole>> {
        members::roles_of(self, member_id)
    }

    /// The workspaces a member has a role in.
    pub fn member_workspaces(&self, member_id: &str) -> StoreResult<Vec<Workspace>> {
        members::member_workspaces(self, member_id)
    }

    pub fn list_members(&self, ws: i64) -> StoreResult<Vec<api::Member>> {
        members::list_members(self, ws)
    }

    /// Issues a one-time invitation; the returned code is the only copy there will be.
    #[expect(clippy::too_many_arguments, reason = "one invitation's fields, each named")]
    pub fn create_invitation(
        &self,
        ws: i64,
        slug: &str,
        name: &str,
        email: Option<&str>,
        role: api::Role,
        expires_at: DateTime<Utc>,
        by: &Author,
    ) -> StoreResult<(api::Invitation, PlainToken)> {
        members::create_invitation(self, ws, slug, name, email, role, expires_at, by)
    }

    /// The workspace's invitations still waiting to be redeemed.
    pub fn list_invitations(&self, ws: i64) -> StoreResult<Vec<api::Invitation>> {
        members::list_invitations(self, ws)
    }

    /// Withdraws an invitation by its prefix (or its name, when one such is waiting):
    /// `(it, whether it had been withdrawn already)`.
    pub fn withdraw_invitation(
        &self,
        ws: i64,
        prefix: &str,
        by: &Author,
    ) -> StoreResult<(api::Invitation, bool)> {
        members::withdraw_invitation(self, ws, prefix, by)
    }

    /// Refuses a member credential from now on (reported as leaked); `true` if one was active.
    pub fn revoke_member_credential(
        &self,
        hash: &TokenHash,
        why: &str,
        by: &Author,
    ) -> StoreResult<bool> {
        members::revoke_member_credential(self, hash, why, by)
    }

    /// Withdraws the waiting invitation with this code (reported as leaked); `true` if one was.
    pub fn withdraw_invitation_by_code(
        &self,
        hash: &TokenHash,
        why: &str,
        by: &Author,
    ) -> StoreResult<bool> {
        members::withdraw_invitation_by_code(self, hash, why, by)
    }

    /// Deletes invitations used, withdrawn or expired before `before` (the audit keeps them).
    pub fn prune_invitations(&self, before: DateTime<Utc>) -> StoreResult<usize> {
        members::prune_invitations(self, before)
    }

    /// Whether an invitation was ever issued with this code (on a reader).
    pub fn invitation_known(&self, code: &PlainToken) -> StoreResult<bool> {
        members::invitation_known(self, &code.hash())
    }

    /// Redeems an invitation once: `(the new member, the workspace's slug, their credential)`.
    pub fn redeem_invitation(
        &self,
        code: &PlainToken,
    ) -> Result<(api::Member, String, PlainToken), InvitationError> {
        members::redeem_invitation(self, code)
    }

    pub fn change_role(
        &self,
        ws: i64,
        name: &str,
        role: api::Role,
        by: &Author,
    ) -> StoreResult<api::Member> {
        members::change_role(self, ws, name, role, by)
    }

    /// Takes a member out of a workspace (see `members.rs`).
    pub fn remove_member(
        &self,
        ws: i64,
        name: &str,
        revoke_keys: bool,
        by: &Author,
    ) -> StoreResult<Removal> {
        members::remove_member(self, ws, name, revoke_keys, by)
    }

    // OAuth --------------------------------------------------------------------------------

    /// Registers a public client (RFC 7591) from `source` (the network its address counts
    /// under), making room within the bounds by forgetting the oldest waiting registrations.
    pub fn register_client(
        &self,
        name: &str,
        redirect_uris: &[String],
        source: &str,
    ) -> StoreResult<OAuthClient> {
        oauth::register_client(self, name, redirect_uris, source)
    }

    /// Keeps a client known by its metadata document once the owner approved it.
    pub fn save_document_client(&self, client: &OAuthClient) -> StoreResult<()> {
        oauth::save_document_client(self, client)
    }

    pub fn oauth_client(&self, id: &str) -> StoreResult<Option<OAuthClient>> {
        oauth::oauth_client(self, id)
    }

    /// Starts an owner's browser session; returns its secret (the cookie's value).
    pub fn create_owner_session(&self) -> StoreResult<String> {
        oauth::create_owner_session(self, None)
    }

    /// Starts a member's browser session (they signed in with their own credential).
    pub fn create_member_session(&self, member_id: &str) -> StoreResult<String> {
        oauth::create_owner_session(self, Some(member_id))
    }

    /// Who a live browser session belongs to.
    pub fn session_signer(&self, secret: &str) -> StoreResult<Option<oauth::Signer>> {
        oauth::session_signer(self, secret)
    }

    pub fn owner_session_valid(&self, secret: &str) -> StoreResult<bool> {
        oauth::owner_session_valid(self, secret)
    }

    pub fn end_owner_session(&self, secret: &str) -> StoreResult<()> {
        oauth::end_owner_session(self, secret)
    }

    /// Records an approved grant; returns the code that redeems it.
    pub fn issue_code(&self, grant: &Grant) -> StoreResult<String> {
        oauth::issue_code(self, grant)
    }

    /// Whether a code may still be spent, asked of a reader (no writer for a stranger's guess).
    pub fn check_code(&self, code: &str) -> Result<(), RedeemError> {
        oauth::check_code(self, code)
    }

    /// Redeems a code for a new MCP key, once (a replayed code revokes the key it minted). A
    /// code that was never issued or has expired is refused on a reader, without the writer.
    pub fn redeem_code(&self, asked: &Redemption<'_>) -> Result<(Key, PlainToken), RedeemError> {
        oauth::redeem_code(self, asked)
    }

    // The audit trail and the record of calls ----------------------------------------------

    pub fn record_event(&self, event: &NewEvent<'_>) -> StoreResult<()> {
        audit::record_event(self, event)
    }

    /// One page of a workspace's events, newest first (only those `filter` selects).
    pub fn list_events<'f>(
        &self,
        ws: i64,
        filter: impl Into<EventFilter<'f>>,
        limit: u32,
        cursor: Option<&str>,
    ) -> StoreResult<Page<Event>> {
        audit::list_events(self, ws, filter.into(), limit, cursor)
    }

    /// One page of the audit trail with the calls merged in, newest first.
    pub fn list_events_and_calls(
        &self,
        ws: i64,
        filter: EventFilter<'_>,
        limit: u32,
        cursor: Option<&str>,
    ) -> StoreResult<Page<Event>> {
        activity::list_events_and_calls(self, ws, filter, limit, cursor)
    }

    /// Queues a call of `key` for the next flush (no database work).
    pub fn record_call(&self, key: &KeyIdentity, ip: Option<IpAddr>, call: Call) {
        activity::record_call(self, key, ip, call);
    }

    /// Notes that `key` was used from `ip` by `client` (a new one is an event at the flush).
    pub fn note_origin(
        &self,
        key: &KeyIdentity,
        ip: Option<IpAddr>,
        client: Option<&str>,
        at: DateTime<Utc>,
    ) {
        activity::note_origin(self, key, ip, client, at);
    }

    /// Writes the queued calls, their hourly totals and the new origins; returns the calls.
    pub fn flush_activity(&self) -> StoreResult<usize> {
        activity::flush_activity(self)
    }

    /// Deletes calls older than `calls_before` and totals older than `totals_before`.
    pub fn prune_activity(
        &self,
        calls_before: DateTime<Utc>,
        totals_before: DateTime<Utc>,
    ) -> StoreResult<usize> {
        activity::prune_activity(self, calls_before, totals_before)
    }

    /// A key's use since `since`: totals by tool, a page of hours, and its origins.
    pub fn key_usage(
        &self,
        ws: i64,
        key_id: &str,
        since: DateTime<Utc>,
        limit: u32,
        cursor: Option<&str>,
    ) -> StoreResult<api::KeyUsageResponse> {
        activity::key_usage(self, ws, key_id, since, limit, cursor)
    }

    /// Each key's use since `since`, busiest first, a page at a time.
    pub fn workspace_usage(
        &self,
        ws: i64,
        since: DateTime<Utc>,
        limit: u32,
        cursor: Option<&str>,
    ) -> StoreResult<api::WorkspaceUsageResponse> {
        activity::workspace_usage(self, ws, since, limit, cursor)
    }
}

impl AccessStore<'_> {
    // The audit stream (`serve --audit-sink`) -----------------------------------------------

    /// Registers the sink if new (from what is recorded now on) and takes or renews its lease
    /// for `owner`; its cursor, or `None` while another replica holds it.
    pub fn hold_sink(
        &self,
        sink: &str,
        label: &str,
        owner: &str,
    ) -> StoreResult<Option<SinkCursor>> {
        sink::hold_sink(self, sink, label, owner)
    }

    /// The next audit events and calls after `cursor`, at most `limit`, merged by time.
    pub fn stream_after(
        &self,
        cursor: &SinkCursor,
        limit: u32,
    ) -> StoreResult<Vec<api::StreamLine>> {
        sink::stream_after(self, cursor, limit)
    }

    /// Moves the sink's cursor past `lines` the collector accepted; `false` if the lease
    /// was lost meanwhile.
    pub fn sent_to_sink(
        &self,
        sink: &str,
        owner: &str,
        events_after: i64,
        calls_after: i64,
        lines: usize,
    ) -> StoreResult<bool> {
        sink::sent_to_sink(self, sink, owner, events_after, calls_after, lines)
    }

    /// Gives up the sink's lease (at shutdown).
    pub fn release_sink(&self, sink: &str, owner: &str) -> StoreResult<()> {
        sink::release_sink(self, sink, owner)
    }
}

impl AccessStore<'_> {
    // Webhooks (issue 35) ---------------------------------------------------------------------

    /// Adds a webhook endpoint; the secret returned is the only time it is shown.
    pub fn create_webhook(
        &self,
        ws: i64,
        url: &str,
        events: &[api::WebhookEvent],
        format: api::WebhookFormat,
        created_by: &str,
        by: &Author,
    ) -> StoreResult<(api::Webhook, api::WebhookSecret)> {
        webhooks::create_webhook(self, ws, url, events, format, created_by, by)
    }

    pub fn list_webhooks(&self, ws: i64) -> StoreResult<Vec<api::Webhook>> {
        webhooks::list_webhooks(self, ws)
    }

    pub fn remove_webhook(&self, ws: i64, id: &str, by: &Author) -> StoreResult<()> {
        webhooks::remove_webhook(self, ws, id, by)
    }

    /// Deletes webhook deliveries (and their attempts) that ended before `before`.
    pub fn prune_webhook_deliveries(&self, before: DateTime<Utc>) -> StoreResult<usize> {
        webhooks::prune_deliveries(self, before.timestamp())
    }

    /// Queues a `webhook.test` event for one endpoint; its delivery id.
    pub fn enqueue_webhook_test(&self, ws: i64, id: &str) -> StoreResult<i64> {
        webhooks::enqueue_test(self, ws, id)
    }

    /// Claims due deliveries, the oldest pending one of each endpoint, within `limits` (see
    /// `webhooks.rs`).
    pub fn claim_webhook_deliveries(&self, limits: ClaimLimits<'_>) -> StoreResult<Vec<Claimed>> {
        webhooks::claim_due(self, limits)
    }

    /// Claims one delivery by id, if it is still pending and not claimed.
    pub fn claim_webhook_delivery(&self, id: i64) -> StoreResult<Option<Claimed>> {
        webhooks::claim_one(self, id)
    }

    /// Records an attempt; false when it came after another claim took the delivery over
    /// (logged as an attempt only).
    pub fn record_webhook_attempt(
        &self,
        claimed: &Claimed,
        attempt: &Attempt,
    ) -> StoreResult<bool> {
        webhooks::record_attempt(self, claimed, attempt)
    }

    /// Writes the `key.expiring` / `key.expired` events due now, once per key and threshold
    /// (see `expiry.rs`); how many.
    pub fn announce_key_expiries(&self) -> StoreResult<usize> {
        expiry::announce_expiries(self)
    }

    /// How many active keys of a workspace expire within `days` (up to `max`).
    pub fn count_expiring_keys(&self, ws: i64, days: i64, max: i64) -> StoreResult<i64> {
        expiry::count_expiring(self, ws, days, max)
    }

    /// The most recent deliveries of a workspace, or of one of its webhooks.
    pub fn list_webhook_deliveries(
        &self,
        ws: i64,
        webhook_id: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<api::WebhookDelivery>> {
        webhooks::list_deliveries(self, ws, webhook_id, i64::MAX, limit)
    }

    /// One page of deliveries, the most recent first, and the next page's cursor.
    pub fn webhook_deliveries_page(
        &self,
        ws: i64,
        webhook_id: Option<&str>,
        limit: i64,
        cursor: Option<&str>,
    ) -> StoreResult<(Vec<api::WebhookDelivery>, Option<String>)> {
        webhooks::list_deliveries_page(self, ws, webhook_id, limit, cursor)
    }

    /// One delivery of a workspace, by id.
    pub fn webhook_delivery(&self, ws: i64, id: i64) -> StoreResult<Option<api::WebhookDelivery>> {
        Ok(webhooks::list_deliveries(self, ws, None, id.saturating_add(1), 1)?
            .into_iter()
            .find(|d| d.id == id))
    }
}

impl AccessStore<'_> {
    // The workspace policy (issue 34) ---------------------------------------------------------

    /// The key policy of a workspace (from memory when it holds a copy still trusted).
    pub fn policy(&self, ws: i64) -> StoreResult<std::sync::Arc<StoredPolicy>> {
        policy::policy(self, ws)
    }

    /// The key policy of a workspace as the database holds it now (what a change starts from).
    pub fn fresh_policy(&self, ws: i64) -> StoreResult<std::sync::Arc<StoredPolicy>> {
        policy::fresh_policy(self, ws)
    }

    /// The key policy of a workspace if memory holds it (no query: for an async worker).
    pub fn cached_policy(&self, ws: i64) -> Option<std::sync::Arc<StoredPolicy>> {
        policy::cached_policy(self, ws)
    }

    /// Replaces a workspace's key policy (already checked), audited: `(it, what changed)`.
    pub fn set_policy(
        &self,
        ws: i64,
        new: &api::Policy,
        by: &Author,
    ) -> StoreResult<(std::sync::Arc<StoredPolicy>, Vec<api::PolicyChange>)> {
        policy::set_policy(self, ws, new, by)
    }

    /// Records `key.blocked` for a key the policy blocks, once per key and rule.
    pub fn note_blocked(
        &self,
        policy: &StoredPolicy,
        key: &KeyIdentity,
        breach: &api::Breach,
    ) -> StoreResult<()> {
        policy::note_blocked(self, policy, key, breach)
    }

    /// Marks the active keys among `keys` (of workspace `ws`) that the policy blocks.
    pub fn annotate_blocked(&self, ws: i64, keys: &mut [Key]) -> StoreResult<()> {
        policy::annotate(self, ws, keys)
    }

    /// Revokes the keys left unused past their workspace's `revoke-unused` rule (hourly).
    pub fn revoke_unused_keys(&self) -> StoreResult<usize> {
        policy::revoke_unused(self)
    }
}
