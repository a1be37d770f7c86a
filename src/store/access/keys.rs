//! MCP keys: creation (the only place a plaintext token is born), listing, revocation, rotation,
//! authentication, and last-used tracking without a database write per request.

use std::collections::HashMap;
use std::sync::Arc;

use crate::store::db::{
    Connection, DbError, DbResult, OptionalExtension as _, Row, ToValue, Value as DbValue, params,
};
use chrono::{DateTime, Utc};

use super::AccessStore;
use super::audit::Actor;
use super::audit::{NewEvent, insert_event};
use super::hygiene::KeyFilter;
use super::key_cache::KeyCache;
use crate::api::{
    Access, Author, AuthorKind, EventKind, ExpiryPolicy, Key, KeyScopes, KeyStatus, OAuthClientRef,
    Workspace,
};
use crate::store::page::{Budget, Cursor, fingerprint, paged};
use crate::store::{StoreError, StoreResult, from_secs, new_id};
use crate::token::{PlainToken, TokenHash, TokenKind};

/// The last use of a key, kept in memory until the next flush.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUsage {
    pub at: DateTime<Utc>,
    pub client: Option<String>,
    pub ip: Option<std::net::IpAddr>,
}

/// Who a key is, as every request with it needs to know: built once per key (kept in the key
/// cache, with SQLite) and shared, so authenticating a request copies one pointer. The MCP tools run
/// in its name.
#[derive(Debug, Clone)]
pub struct KeyIdentity {
    pub key_id: String,
    pub key_prefix: String,
    pub workspace_id: i64,
    pub workspace_slug: String,
    pub access: Access,
    /// The last-used client in the database (as of when the key was cached, with SQLite).
    pub stored_client: Option<String>,
    /// What the key is confined to beyond its access.
    pub scopes: KeyScopes,
    /// Its expiry policy (what the workspace policy's max-expiry is checked against).
    pub expires: ExpiryPolicy,
    /// `scopes.allow_ip` parsed once, when the key is read (each request checks it).
    pub networks: Vec<ipnet::IpNet>,
}

impl KeyIdentity {
    /// Whether the key may be used from `ip` (no address limit: from anywhere).
    pub fn allows_address(&self, ip: Option<std::net::IpAddr>) -> bool {
        self.scopes.allow_ip.is_none()
            // An IPv4 client on a dual-stack listener (or behind a proxy) arrives as
            // `::ffff:a.b.c.d`: matched as the IPv4 address it is.
            || ip.is_some_and(|ip| {
                let ip = ip.to_canonical();
                self.networks.iter().any(|net| net.contains(&ip))
            })
    }

    /// The networks a key's `allow_ip` holds (one that does not parse admits nothing).
    pub fn networks_of(scopes: &KeyScopes) -> Vec<ipnet::IpNet> {
        scopes.allow_ip.iter().flatten().filter_map(|net| net.parse().ok()).collect()
    }

    /// The key as the audit trail names it.
    pub fn actor(&self) -> Actor<'_> {
        Actor { key_id: &self.key_id, key_prefix: &self.key_prefix }
    }
}

/// A key as authentication needs it, kept in the key cache by token hash.
#[derive(Debug, Clone)]
pub(crate) struct IndexedKey {
    identity: Arc<KeyIdentity>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    /// Its workspace is being filled by an import (`workspaces.importing`).
    importing: bool,
}

/// The latest use of a key; `dirty` until it is written.
#[derive(Debug, Clone)]
pub(crate) struct UsageSlot {
    usage: KeyUsage,
    dirty: bool,
}

impl UsageSlot {
    /// When the key was last used (written or not).
    pub(super) fn used_at(&self) -> DateTime<Utc> {
        self.usage.at
    }
}

/// What the MCP endpoint learns about the key a request presented.
#[derive(Debug, Clone)]
pub struct AuthenticatedKey {
    pub identity: Arc<KeyIdentity>,
    pub status: KeyStatus,
    /// Its workspace is being filled by an import: nothing in it may be read until it is done.
    pub importing: bool,
}

/// Keys a reference may match at most (a name reused by many revoked keys, say).
const MATCHES_MAX: i64 = 50;

const KEY_COLUMNS: &str = "id, name, prefix, access, expires, created_at, expires_at, \
                           last_used_at, last_used_client, last_used_ip, revoked_at, \
                           oauth_client_id, oauth_client_name, created_by, created_by_member, \
                           created_by_name, scope_tools, scope_journeys, scope_addresses";

/// A key's scopes from their three columns (space-separated lists; NULL is no limit).
fn scopes_row(row: &Row) -> DbResult<KeyScopes> {
    let list = |column: &str| -> DbResult<Option<Vec<String>>> {
        Ok(row
            .get::<Option<String>>(column)?
            .map(|text| text.split_whitespace().map(str::to_owned).collect()))
    };
    Ok(KeyScopes {
        tools: list("scope_tools")?,
        journeys: list("scope_journeys")?,
        allow_ip: list("scope_addresses")?,
    })
}

/// A scope list as its column holds it.
fn scope_column(list: Option<&Vec<String>>) -> Option<String> {
    list.map(|list| list.join(" "))
}

fn key_row(row: &Row, now: DateTime<Utc>) -> DbResult<Key> {
    let access: String = row.get("access")?;
    let expires: String = row.get("expires")?;
    let expires_at: Option<i64> = row.get("expires_at")?;
    let revoked_at: Option<i64> = row.get("revoked_at")?;
    let expires_at = expires_at.map(from_secs);
    let revoked_at = revoked_at.map(from_secs);
    Ok(Key {
        id: row.get("id")?,
        name: row.get("name")?,
        prefix: row.get("prefix")?,
        // The CHECK constraints in the schema admit only these values.
        access: Access::parse(&access).unwrap_or(Access::ReadOnly),
        expires: ExpiryPolicy::parse(&expires).unwrap_or(ExpiryPolicy::Days30),
        created_at: from_secs(row.get("created_at")?),
        expires_at,
        last_used_at: row.get::<Option<i64>>("last_used_at")?.map(from_secs),
        last_used_client: row.get("last_used_client")?,
        last_used_ip: row.get("last_used_ip")?,
        revoked_at,
        status: KeyStatus::derive(revoked_at, expires_at, now),
        oauth_client: match (
            row.get::<Option<String>>("oauth_client_id")?,
            row.get::<Option<String>>("oauth_client_name")?,
        ) {
            (Some(client_id), Some(name)) => Some(OAuthClientRef { client_id, name }),
            _ => None,
        },
        created_by: Author {
            // The CHECK constraint admits only names of the closed set.
            kind: row.get_parsed("created_by", AuthorKind::parse)?,
            member_id: row.get("created_by_member")?,
            name: row.get("created_by_name")?,
        },
        flags: Vec::new(),
        shared: None,
        scopes: scopes_row(row)?,
        blocked: None,
    })
}

/// A key as authentication needs it (see [`indexed_key`]); a macro so the lookups below are
/// whole constants, built at compile time rather than per request.
macro_rules! index_query {
    () => {
        "SELECT k.token_hash, k.id, k.prefix, k.workspace_id, w.slug, k.access, k.expires_at, \
         k.revoked_at, k.last_used_client, w.importing, k.scope_tools, k.scope_journeys, \
         k.scope_addresses, k.expires FROM mcp_keys k \
         JOIN workspaces w ON w.id = k.workspace_id"
    };
}
const INDEX_BY_HASH: &str = concat!(index_query!(), " WHERE k.token_hash = ?1");
const INDEX_BY_ID: &str = concat!(index_query!(), " WHERE k.id = ?1");

fn indexed_key(row: &Row) -> DbResult<(TokenHash, IndexedKey)> {
    let hash: Vec<u8> = row.get("token_hash")?;
    let hash = <[u8; 32]>::try_from(hash.as_slice()).map_err(|_| DbError::Decode {
        column: "token_hash".into(),
        message: "token hash is not 32 bytes".into(),
    })?;
    let access: String = row.get("access")?;
    let scopes = scopes_row(row)?;
    Ok((
        TokenHash(hash),
        IndexedKey {
            identity: Arc::new(KeyIdentity {
                key_id: row.get("id")?,
                key_prefix: row.get("prefix")?,
                workspace_id: row.get("workspace_id")?,
                workspace_slug: row.get("slug")?,
                access: Access::parse(&access).unwrap_or(Access::ReadOnly),
                stored_client: row.get("last_used_client")?,
                networks: KeyIdentity::networks_of(&scopes),
                scopes,
                expires: ExpiryPolicy::parse(&row.get::<String>("expires")?)
                    .unwrap_or(ExpiryPolicy::Days30),
            }),
            expires_at: row.get::<Option<i64>>("expires_at")?.map(from_secs),
            revoked_at: row.get::<Option<i64>>("revoked_at")?.map(from_secs),
            importing: row.get::<i64>("importing")? != 0,
        },
    ))
}

pub(super) fn key_on(
    conn: &Connection,
    workspace_id: i64,
    id: &str,
    now: DateTime<Utc>,
) -> StoreResult<Key> {
    conn.prepare_cached(&format!(
        "SELECT {KEY_COLUMNS} FROM mcp_keys WHERE workspace_id = ?1 AND id = ?2"
    ))?
    .query_row(params![workspace_id, id], |row| key_row(row, now))
    .optional()?
    .ok_or_else(|| StoreError::NotFound(format!("no MCP key with id {id:?} in this workspace")))
}

/// Inserts a new key with a fresh token, on its terms (expiry, access, scopes); refuses a name
/// an active key already has.
pub(super) fn insert_key(
    conn: &Connection,
    workspace_id: i64,
    name: &str,
    (expires, access, scopes): (ExpiryPolicy, Access, &KeyScopes),
    by: &Author,
    now: DateTime<Utc>,
) -> StoreResult<(Key, PlainToken)> {
    let taken = conn
        .prepare_cached(
            "SELECT id FROM mcp_keys WHERE workspace_id = ?1 AND name = ?2
             AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?3)",
        )?
        .query_row(params![workspace_id, name, now.timestamp()], |row| row.get::<String>("id"))
        .optional()?;
    if let Some(other) = taken {
        return Err(StoreError::Conflict(format!(
            "an active key named {name:?} already exists ({other}); choose another name, or \
             rotate or revoke that key"
        )));
    }
    let token = PlainToken::generate(TokenKind::Mcp);
    let id = new_id("key");
    let expires_at = expires.days().map(|days| now + chrono::Duration::days(days));
    conn.prepare_cached(
        "INSERT INTO mcp_keys (id, workspace_id, name, prefix, token_hash, access, expires,
                               created_at, expires_at, created_by, created_by_member,
                               created_by_name, scope_tools, scope_journeys, scope_addresses)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?
    .execute(params![
        id,
        workspace_id,
        name,
        token.display_prefix(),
        token.hash().0.as_slice(),
        access.as_str(),
        expires.as_str(),
        now.timestamp(),
        expires_at.map(|t| t.timestamp()),
        by.kind.as_str(),
        by.member_id,
        by.name,
        scope_column(scopes.tools.as_ref()),
        scope_column(scopes.journeys.as_ref()),
        scope_column(scopes.allow_ip.as_ref()),
    ])?;
    let key = key_on(conn, workspace_id, &id, now)?;
    Ok((key, token))
}

pub(super) fn audit_key(
    conn: &Connection,
    workspace_id: i64,
    at: DateTime<Utc>,
    kind: EventKind,
    key: &Key,
    detail: &str,
    actor: &Author,
) -> StoreResult<()> {
    insert_event(
        conn,
        at.timestamp(),
        &NewEvent {
            workspace_id,
            kind,
            key_id: Some(&key.id),
            key_prefix: Some(&key.prefix),
            detail,
            actor,
        },
    )
}

/// Creates a key. The returned [`PlainToken`] is the only copy of the secret there will be.
pub(super) fn create_key(
    s: &AccessStore<'_>,
    workspace_id: i64,
    name: &str,
    expires: ExpiryPolicy,
    access: Access,
    scopes: &KeyScopes,
    by: &Author,
) -> StoreResult<(Key, PlainToken)> {
    let now = s.now();
    let conn = s.writer();
    let tx = conn.transaction()?;
    let (key, token) = insert_key(&tx, workspace_id, name, (expires, access, scopes), by, now)?;
    let mut detail =
        format!("created {:?} ({}, expires {})", key.name, access.as_str(), expires.as_str());
    if !scopes.is_unlimited() {
        detail.push_str(&format!(", limited to {}", scopes.describe()));
    }
    audit_key(&tx, workspace_id, now, EventKind::KeyCreated, &key, &detail, by)?;
    tx.commit()?;
    reindex_key(s, &conn, &key.id)?;
    Ok((key, token))
}

/// One page of the workspace's keys, newest first (only those `filter` selects), with
/// pending last-used values applied and each active key's flags.
pub(super) fn list_keys(
    s: &AccessStore<'_>,
    workspace_id: i64,
    filter: &KeyFilter,
    limit: u32,
    cursor: Option<&str>,
) -> StoreResult<(Vec<Key>, Option<String>)> {
    let now = s.now();
    let query = fingerprint(&[&filter.describe()]);
    let (before_at, before_row) = match cursor.map(str::trim).filter(|c| !c.is_empty()) {
        Some(text) => {
            let position = Cursor::decode(text, "keys", query, 2)?.position;
            (position[0], position[1])
        }
        None => (i64::MAX, i64::MAX),
    };
    let mut values = vec![
        DbValue::Integer(workspace_id),
        DbValue::Integer(before_at),
        DbValue::Integer(before_row),
        DbValue::Integer(i64::from(limit) + 1),
    ];
    let (filter_sql, filter_values) = filter.sql(now, values.len() + 1);
    values.extend(filter_values);
    let values: Vec<&dyn ToValue> = values.iter().map(|v| v as &dyn ToValue).collect();
    let conn = s.reader()?;
    let rows = conn.query(
        &format!(
            "SELECT {KEY_COLUMNS}, rowid FROM mcp_keys WHERE workspace_id = ?1
                   AND (created_at, rowid) < (?2, ?3){filter_sql}
                 ORDER BY created_at DESC, rowid DESC LIMIT ?4"
        ),
        values.as_slice(),
    )?;
    let keys = rows
        .iter()
        .map(|row| Ok((key_row(row, now)?, row.get::<i64>("rowid")?)))
        .collect::<DbResult<Vec<_>>>()?;
    let page = paged(keys, limit as usize, Budget::new(usize::MAX), |(key, rowid)| {
        Cursor::new("keys", query, vec![key.created_at.timestamp(), *rowid])
    });
    let mut keys: Vec<Key> = page.rows.into_iter().map(|(key, _)| key).collect();
    apply_pending_usage(s, &mut keys);
    super::hygiene::annotate_keys(s, &conn, &mut keys)?;
    Ok((keys, page.next.map(|cursor| cursor.encode())))
}

/// The keys a person may mean by `reference`: the one with that id, or those with that name
/// or displayed prefix, newest first (at most [`MATCHES_MAX`]).
pub(super) fn find_keys(
    s: &AccessStore<'_>,
    workspace_id: i64,
    reference: &str,
) -> StoreResult<Vec<Key>> {
    let now = s.now();
    let reference = reference.trim();
    let rows = s.reader()?.query(
        &format!(
            "SELECT {KEY_COLUMNS} FROM mcp_keys WHERE workspace_id = ?1
                   AND (id = ?2 OR name = ?2 OR prefix = ?2)
                 ORDER BY created_at DESC, rowid DESC LIMIT ?3"
        ),
        params![workspace_id, reference, MATCHES_MAX],
    )?;
    let mut keys = rows.iter().map(|row| key_row(row, now)).collect::<DbResult<Vec<_>>>()?;
    apply_pending_usage(s, &mut keys);
    super::hygiene::annotate_keys(s, &s.reader()?, &mut keys)?;
    Ok(keys)
}

/// The keys `reference` names on the whole server: the one with that id, or those with that
/// displayed prefix (each an index lookup, however many workspaces there are), newest first,
/// with their workspace's slug; only in the workspaces `member_id` has a role in when given.
/// Flags are not read: this says where a key is, and the workspace's own reads say the rest.
pub(super) fn find_keys_anywhere(
    s: &AccessStore<'_>,
    reference: &str,
    member_id: Option<&str>,
) -> StoreResult<Vec<(Workspace, Key)>> {
    let now = s.now();
    let reference = reference.trim();
    let conn = s.reader()?;
    let rows = match member_id {
        None => conn.query(
            &format!(
                "SELECT {KEY_COLUMNS}, workspace_id FROM mcp_keys WHERE id = ?1 OR prefix = ?1
                 ORDER BY created_at DESC, rowid DESC LIMIT ?2"
            ),
            params![reference, MATCHES_MAX],
        )?,
        Some(member) => conn.query(
            &format!(
                "SELECT {KEY_COLUMNS}, workspace_id FROM mcp_keys WHERE (id = ?1 OR prefix = ?1)
                   AND workspace_id IN (SELECT workspace_id FROM member_roles WHERE member_id = ?3)
                 ORDER BY created_at DESC, rowid DESC LIMIT ?2"
            ),
            params![reference, MATCHES_MAX, member],
        )?,
    };
    let mut found = Vec::new();
    let mut workspaces: HashMap<i64, Option<Workspace>> = HashMap::new();
    for row in rows.iter() {
        let workspace_id: i64 = row.get("workspace_id")?;
        let workspace = match workspaces.get(&workspace_id) {
            Some(workspace) => workspace.clone(),
            None => {
                let condition = "id = ?1 AND importing = 0";
                let workspace = super::workspaces::on(&conn, condition, &workspace_id)?
                    .map(|row| row.workspace);
                workspaces.insert(workspace_id, workspace.clone());
                workspace
            }
        };
        // A workspace an import is filling is not shown, nor its keys.
        if let Some(workspace) = workspace {
            found.push((workspace, key_row(row, now)?));
        }
    }
    drop(conn);
    let mut keys: Vec<Key> = found.iter().map(|(_, key)| key.clone()).collect();
    apply_pending_usage(s, &mut keys);
    Ok(found.into_iter().zip(keys).map(|((workspace, _), key)| (workspace, key)).collect())
}

pub(super) fn get_key(s: &AccessStore<'_>, workspace_id: i64, id: &str) -> StoreResult<Key> {
    let conn = s.reader()?;
    let mut key = key_on(&conn, workspace_id, id, s.now())?;
    apply_pending_usage(s, std::slice::from_mut(&mut key));
    super::hygiene::annotate_keys(s, &conn, std::slice::from_mut(&mut key))?;
    Ok(key)
}

/// The key whose token hashes to `hash`, in any workspace: `(workspace slug, key)`.
pub(super) fn key_by_token(
    s: &AccessStore<'_>,
    hash: &TokenHash,
) -> StoreResult<Option<(i64, String, Key)>> {
    let now = s.now();
    let conn = s.reader()?;
    let found = conn
        .query_row(
            "SELECT k.workspace_id, w.slug, k.id FROM mcp_keys k
                 JOIN workspaces w ON w.id = k.workspace_id WHERE k.token_hash = ?1",
            params![hash.0.as_slice()],
            |row| {
                Ok((
                    row.get::<i64>("workspace_id")?,
                    row.get::<String>("slug")?,
                    row.get::<String>("id")?,
                ))
            },
        )
        .optional()?;
    let Some((workspace_id, slug, id)) = found else { return Ok(None) };
    let mut key = key_on(&conn, workspace_id, &id, now)?;
    drop(conn);
    apply_pending_usage(s, std::slice::from_mut(&mut key));
    Ok(Some((workspace_id, slug, key)))
}

/// Revokes a key, saying why in the audit event (`reason`, after "revoked NAME").
pub(super) fn revoke_key_because(
    s: &AccessStore<'_>,
    workspace_id: i64,
    id: &str,
    reason: Option<&str>,
    by: &Author,
) -> StoreResult<Key> {
    let now = s.now();
    let conn = s.writer();
    let tx = conn.transaction()?;
    let key = key_on(&tx, workspace_id, id, now)?;
    if key.status == KeyStatus::Revoked {
        return Err(StoreError::Conflict(format!("the key {:?} is already revoked", key.name)));
    }
    tx.prepare_cached("UPDATE mcp_keys SET revoked_at = ?1 WHERE id = ?2")?
        .execute(params![now.timestamp(), id])?;
    let key = key_on(&tx, workspace_id, id, now)?;
    let detail = match reason {
        Some(reason) => format!("revoked {:?}: {reason}", key.name),
        None => format!("revoked {:?}", key.name),
    };
    audit_key(&tx, workspace_id, now, EventKind::KeyRevoked, &key, &detail, by)?;
    tx.commit()?;
    reindex_key(s, &conn, id)?;
    drop(conn);
    let mut key = key;
    apply_pending_usage(s, std::slice::from_mut(&mut key));
    Ok(key)
}

/// Narrows an active key to `access` and `scopes`, which the caller checked are no wider
/// (`KeyScopes::within`); checked again here, against the row under the write lock.
pub(super) fn narrow_key(
    s: &AccessStore<'_>,
    workspace_id: i64,
    id: &str,
    access: Access,
    scopes: &KeyScopes,
    by: &Author,
) -> StoreResult<Key> {
    let now = s.now();
    let conn = s.writer();
    let tx = conn.transaction()?;
    let old = key_on(&tx, workspace_id, id, now)?;
    if old.status != KeyStatus::Active {
        return Err(StoreError::Conflict(format!(
            "the key {:?} is {} and cannot be narrowed",
            old.name,
            old.status.as_str()
        )));
    }
    let wider = (access == Access::ReadWrite && old.access == Access::ReadOnly)
        .then(|| "it would make a read-only key read-write".to_owned())
        .map_or_else(|| scopes.within(&old.scopes), Err);
    if let Err(why) = wider {
        return Err(StoreError::Invalid(format!(
            "a key can be narrowed, never widened, and {why}; make a new key instead \
             (custory-mcp keys create)"
        )));
    }
    if access == old.access && old.scopes.within(scopes).is_ok() {
        // Already exactly this: nothing to write, nothing to audit.
        drop(tx);
        drop(conn);
        let mut key = old;
        apply_pending_usage(s, std::slice::from_mut(&mut key));
        return Ok(key);
    }
    tx.prepare_cached(
        "UPDATE mcp_keys SET access = ?2, scope_tools = ?3, scope_journeys = ?4,
                             scope_addresses = ?5 WHERE id = ?1",
    )?
    .execute(params![
        id,
        access.as_str(),
        scope_column(scopes.tools.as_ref()),
        scope_column(scopes.journeys.as_ref()),
        scope_column(scopes.allow_ip.as_ref()),
    ])?;
    let key = key_on(&tx, workspace_id, id, now)?;
    let detail =
        format!("narrowed {:?} to {}, limited to {}", key.name, access.as_str(), scopes.describe());
    audit_key(&tx, workspace_id, now, EventKind::KeyNarrowed, &key, &detail, by)?;
    tx.commit()?;
    reindex_key(s, &conn, id)?;
    drop(conn);
    let mut key = key;
    apply_pending_usage(s, std::slice::from_mut(&mut key));
    Ok(key)
}

/// Replaces a key with a new one of the same name, policy and access; the old one is
/// revoked in the same transaction. Returns `(new key, its token, the replaced key)`.
pub(super) fn rotate_key(
    s: &AccessStore<'_>,
    workspace_id: i64,
    id: &str,
    policy: &crate::api::Policy,
    by: &Author,
) -> StoreResult<(Key, PlainToken, Key)> {
    let now = s.now();
    let conn = s.writer();
    let tx = conn.transaction()?;
    let old = key_on(&tx, workspace_id, id, now)?;
    if old.status == KeyStatus::Revoked {
        return Err(StoreError::Conflict(format!(
            "the key {:?} is revoked and cannot be rotated; create a new key instead",
            old.name
        )));
    }
    tx.prepare_cached("UPDATE mcp_keys SET revoked_at = ?1 WHERE id = ?2")?
        .execute(params![now.timestamp(), id])?;
    // The new key stays its creator's: rotating replaces the secret, not whose key it is.
    let creator = old.created_by.clone();
    // So do its scopes: a rotation never widens what the key may do, and narrows it only to
    // keep the workspace policy (a key a newer policy blocks comes back conforming).
    let (expires, access, scopes) = policy
        .conform(old.expires, old.access, &old.scopes)
        .map_err(|breach| StoreError::Invalid(breach.message))?;
    let (new, token) =
        insert_key(&tx, workspace_id, &old.name, (expires, access, &scopes), &creator, now)?;
    let old = key_on(&tx, workspace_id, id, now)?;
    audit_key(
        &tx,
        workspace_id,
        now,
        EventKind::KeyRotated,
        &old,
        &format!(
            "rotated {:?}: replaced by {} (same name){}",
            old.name,
            new.prefix,
            old.terms_changed(&new)
                .map_or_else(String::new, |c| format!(", narrowed to the workspace policy: {c}"))
        ),
        by,
    )?;
    audit_key(
        &tx,
        workspace_id,
        now,
        EventKind::KeyCreated,
        &new,
        &format!("created {:?} by rotating {}", new.name, old.id),
        by,
    )?;
    tx.commit()?;
    reindex_key(s, &conn, id)?;
    reindex_key(s, &conn, &new.id)?;
    drop(conn);
    let mut old = old;
    apply_pending_usage(s, std::slice::from_mut(&mut old));
    Ok((new, token, old))
}

/// Looks up the key a token hash belongs to, with its current status. With SQLite a key in use
/// is answered from the key cache (`key_cache.rs`), which every key write updates before it
/// returns; a miss reads its row by token hash (a unique index) and keeps it. With PostgreSQL
/// it asks the database, so a revocation by another replica counts at once.
pub(super) fn authenticate_key(
    s: &AccessStore<'_>,
    hash: &TokenHash,
) -> StoreResult<Option<AuthenticatedKey>> {
    if let Some(found) = cached_key(s, hash) {
        return Ok(Some(found));
    }
    let epoch = s.state.key_cache.as_ref().map(KeyCache::epoch);
    s.state.key_reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let key = s
        .reader()?
        .query_row(INDEX_BY_HASH, [hash.0.as_slice()], indexed_key)
        .optional()?
        .map(|(_, key)| key);
    let Some(key) = key else { return Ok(None) };
    if let (Some(cache), Some(epoch)) = (&s.state.key_cache, epoch) {
        cache.insert_read(*hash, key.clone(), epoch);
    }
    Ok(Some(authenticated(s, key)))
}

/// The key of `hash` if the key cache holds it (SQLite): no query, so it may be asked on an
/// async worker. `None`: ask [`authenticate_key`] off the workers.
pub(super) fn cached_key(s: &AccessStore<'_>, hash: &TokenHash) -> Option<AuthenticatedKey> {
    let key = s.state.key_cache.as_ref()?.get(hash)?;
    Some(authenticated(s, key))
}

fn authenticated(s: &AccessStore<'_>, key: IndexedKey) -> AuthenticatedKey {
    AuthenticatedKey {
        importing: key.importing,
        status: KeyStatus::derive(key.revoked_at, key.expires_at, s.now()),
        identity: key.identity,
    }
}

/// After a write to key `id` committed (SQLite only), while the caller still holds the
/// connection: the key cache says what its row says now, so no request can see the database
/// and the cache disagree once the write has returned.
pub(super) fn reindex_key(s: &AccessStore<'_>, conn: &Connection, id: &str) -> StoreResult<()> {
    let Some(cache) = &s.state.key_cache else { return Ok(()) };
    match conn.query_row(INDEX_BY_ID, [id], indexed_key) {
        Ok((hash, key)) => {
            cache.refresh(hash, key);
            Ok(())
        }
        Err(error) => {
            // The write is in; the cache must not keep saying otherwise (a revoked key kept
            // alive by its own use): the key leaves it and its next use reads the row.
            cache.forget(|key| key.identity.key_id == id);
            Err(error.into())
        }
    }
}

/// After an import hid or showed workspace `workspace_id` (SQLite only): its keys leave the
/// cache, and their next use reads them again.
pub(super) fn reindex_workspace_keys(s: &AccessStore<'_>, workspace_id: i64) -> StoreResult<()> {
    if let Some(cache) = &s.state.key_cache {
        cache.forget(|key| key.identity.workspace_id == workspace_id);
    }
    Ok(())
}

/// How long a key's last use is kept in memory once written: past it, an idle key leaves
/// memory (its cache entry has gone by then: see `key_cache::GENERATION_AGE`).
const USAGE_KEPT: std::time::Duration = std::time::Duration::from_secs(1800);

/// Lets idle keys leave memory: a key-cache generation older than its age makes way, and
/// last uses already written and older than [`USAGE_KEPT`] are dropped. Returns how many keys
/// are left in memory (cached, and with a last use held).
pub(super) fn forget_idle_keys(s: &AccessStore<'_>) -> (usize, usize) {
    let cached = match &s.state.key_cache {
        Some(cache) => {
            cache.age_out(super::key_cache::GENERATION_AGE);
            cache.len()
        }
        None => 0,
    };
    let before = s.now() - chrono::Duration::from_std(USAGE_KEPT).unwrap_or_default();
    let mut slots = s.state.pending_usage();
    slots.retain(|_, slot| slot.dirty || slot.usage.at >= before);
    (cached, slots.len())
}

/// Notes a use of a key in memory; [`super::AccessStore::flush_usage`] writes it later. A use that does
/// not name its client (`usage.client` is `None`) carries over the client last noted for
/// the key, or else takes `otherwise()` (the stored client, say). Returns the client the
/// use is put down to.
pub(super) fn note_usage(
    s: &AccessStore<'_>,
    key_id: &str,
    mut usage: KeyUsage,
    otherwise: impl FnOnce() -> Option<String>,
) -> Option<String> {
    let mut slots = s.state.pending_usage();
    match slots.get_mut(key_id) {
        Some(slot) => {
            usage.client = usage.client.or_else(|| slot.usage.client.take()).or_else(otherwise);
            let client = usage.client.clone();
            *slot = UsageSlot { usage, dirty: true };
            client
        }
        None => {
            usage.client = usage.client.or_else(otherwise);
            let client = usage.client.clone();
            slots.insert(key_id.to_owned(), UsageSlot { usage, dirty: true });
            client
        }
    }
}

/// How long the oldest use not yet written has waited (zero when all are written).
pub(super) fn usage_flush_age(s: &AccessStore<'_>) -> Option<std::time::Duration> {
    let oldest =
        s.state.pending_usage().values().filter(|slot| slot.dirty).map(|slot| slot.usage.at).min();
    Some(oldest.map_or(std::time::Duration::ZERO, |at| (s.now() - at).to_std().unwrap_or_default()))
}

/// Last uses written per transaction: a burst of first uses by many keys is written a bounded
/// chunk at a time, each quick, so the writer is never held long and other writes go between.
const USES_PER_CHUNK: usize = 500;

/// Writes every unwritten last-used value, [`USES_PER_CHUNK`] per transaction. Returns how many
/// were written. A chunk that fails is not marked written (nor any after it), so the next flush
/// tries them again; the chunks before it are written and marked.
pub(super) fn flush_usage(s: &AccessStore<'_>) -> StoreResult<usize> {
    let batch: Vec<(String, KeyUsage)> = s
        .state
        .pending_usage()
        .iter()
        .filter(|(_, slot)| slot.dirty)
        .map(|(id, slot)| (id.clone(), slot.usage.clone()))
        .collect();
    let mut written = 0;
    for chunk in batch.chunks(USES_PER_CHUNK) {
        write_uses(s, chunk)?;
        let mut slots = s.state.pending_usage();
        for (id, usage) in chunk {
            // A use noted while this flush ran stays dirty for the next one.
            if let Some(slot) = slots.get_mut(id).filter(|slot| slot.usage == *usage) {
                slot.dirty = false;
            }
        }
        written += chunk.len();
    }
    Ok(written)
}

/// Writes `uses` in one transaction.
fn write_uses(s: &AccessStore<'_>, uses: &[(String, KeyUsage)]) -> StoreResult<()> {
    let conn = s.writer();
    let tx = conn.transaction()?;
    {
        // Several replicas flush their own uses, in any order: an older use never replaces a
        // newer one, and a use by a client that did not say who it is never erases the client
        // known. (The right-hand sides all read the row as it was.)
        let mut stmt = tx.prepare_cached(
            "UPDATE mcp_keys SET
                 last_used_client = CASE WHEN last_used_at IS NULL OR last_used_at <= ?2
                     THEN COALESCE(CAST(?3 AS TEXT), last_used_client)
                     ELSE COALESCE(last_used_client, CAST(?3 AS TEXT)) END,
                 last_used_ip = CASE WHEN last_used_at IS NULL OR last_used_at <= ?2
                     THEN CAST(?4 AS TEXT) ELSE last_used_ip END,
                 last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at <= ?2
                     THEN ?2 ELSE last_used_at END
                 WHERE id = ?1",
        )?;
        for (id, usage) in uses {
            let ip = usage.ip.map(|ip| ip.to_string());
            stmt.execute(params![id, usage.at.timestamp(), usage.client, ip])?;
        }
    }
    tx.commit()?;
    Ok(())
}

fn apply_pending_usage(s: &AccessStore<'_>, keys: &mut [Key]) {
    let pending = s.state.pending_usage();
    if pending.is_empty() {
        return;
    }
    for key in keys {
        // As `flush_usage` writes it: the newer use wins, a known client is kept.
        let Some(UsageSlot { usage, .. }) = pending.get(&key.id) else { continue };
        if key.last_used_at.is_none_or(|stored| stored <= usage.at) {
            key.last_used_at = Some(usage.at);
            if usage.client.is_some() {
                key.last_used_client.clone_from(&usage.client);
            }
            key.last_used_ip = usage.ip.map(|ip| ip.to_string());
        } else if key.last_used_client.is_none() {
            key.last_used_client.clone_from(&usage.client);
        }
    }
}
