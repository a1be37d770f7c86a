//! MCP keys: creation (the only place a plaintext token is born), listing, revocation, rotation,
//! authentication, and last-used tracking without a database write per request.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::db::{
    Connection, DbError, DbResult, OptionalExtension as _, Row, ToValue, Value as DbValue, params,
};
use chrono::{DateTime, Utc};

use super::audit::{NewEvent, insert_event};
use super::hygiene::KeyFilter;
use super::model::Actor;
use super::page::{Budget, Cursor, fingerprint, paged};
use super::{Store, StoreError, StoreResult, from_secs, new_id};
use crate::api::{Access, ExpiryPolicy, Key, KeyStatus, OAuthClientRef};
use crate::token::{PlainToken, TokenHash, TokenKind};

/// The last use of a key, kept in memory until the next flush.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUsage {
    pub at: DateTime<Utc>,
    pub client: Option<String>,
    pub ip: Option<std::net::IpAddr>,
}

/// Who a key is, as every request with it needs to know: built once per key (kept in the index,
/// with SQLite) and shared, so authenticating a request copies one pointer. The MCP tools run
/// in its name.
#[derive(Debug)]
pub struct KeyIdentity {
    pub key_id: String,
    pub key_prefix: String,
    pub workspace_id: i64,
    pub workspace_slug: String,
    pub access: Access,
    /// The last-used client in the database (as of the index, with SQLite).
    pub stored_client: Option<String>,
}

impl KeyIdentity {
    /// The key as the audit trail names it.
    pub fn actor(&self) -> Actor<'_> {
        Actor { key_id: &self.key_id, key_prefix: &self.key_prefix }
    }
}

/// A key as authentication needs it, kept in memory by token hash.
#[derive(Debug, Clone)]
pub(crate) struct IndexedKey {
    identity: Arc<KeyIdentity>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

/// The latest use of a key; `dirty` until it is written.
#[derive(Debug, Clone)]
pub(crate) struct UsageSlot {
    usage: KeyUsage,
    dirty: bool,
}

/// What the MCP endpoint learns about the key a request presented.
#[derive(Debug, Clone)]
pub struct AuthenticatedKey {
    pub identity: Arc<KeyIdentity>,
    pub status: KeyStatus,
}

/// Keys a reference may match at most (a name reused by many revoked keys, say).
const MATCHES_MAX: i64 = 50;

const KEY_COLUMNS: &str = "id, name, prefix, access, expires, created_at, expires_at, \
                           last_used_at, last_used_client, last_used_ip, revoked_at, \
                           oauth_client_id, oauth_client_name";

fn key_row(row: &Row, now: DateTime<Utc>) -> DbResult<Key> {
    let access: String = row.get(3)?;
    let expires: String = row.get(4)?;
    let expires_at: Option<i64> = row.get(6)?;
    let revoked_at: Option<i64> = row.get(10)?;
    let expires_at = expires_at.map(from_secs);
    let revoked_at = revoked_at.map(from_secs);
    Ok(Key {
        id: row.get(0)?,
        name: row.get(1)?,
        prefix: row.get(2)?,
        // The CHECK constraints in the schema admit only these values.
        access: Access::parse(&access).unwrap_or(Access::ReadOnly),
        expires: ExpiryPolicy::parse(&expires).unwrap_or(ExpiryPolicy::Days30),
        created_at: from_secs(row.get(5)?),
        expires_at,
        last_used_at: row.get::<Option<i64>>(7)?.map(from_secs),
        last_used_client: row.get(8)?,
        last_used_ip: row.get(9)?,
        revoked_at,
        status: KeyStatus::derive(revoked_at, expires_at, now),
        oauth_client: match (row.get::<Option<String>>(11)?, row.get::<Option<String>>(12)?) {
            (Some(client_id), Some(name)) => Some(OAuthClientRef { client_id, name }),
            _ => None,
        },
        flags: Vec::new(),
        shared: None,
    })
}

/// Every key as authentication needs it (see [`indexed_key`]); a macro so the lookups below are
/// whole constants, built at compile time rather than per request.
macro_rules! index_query {
    () => {
        "SELECT k.token_hash, k.id, k.prefix, k.workspace_id, w.slug, k.access, k.expires_at, \
         k.revoked_at, k.last_used_client FROM mcp_keys k JOIN workspaces w ON w.id = k.workspace_id"
    };
}
const INDEX_QUERY: &str = index_query!();
const INDEX_BY_HASH: &str = concat!(index_query!(), " WHERE k.token_hash = ?1");
const INDEX_BY_ID: &str = concat!(index_query!(), " WHERE k.id = ?1");

fn indexed_key(row: &Row) -> DbResult<(TokenHash, IndexedKey)> {
    let hash: Vec<u8> = row.get(0)?;
    let hash = <[u8; 32]>::try_from(hash.as_slice())
        .map_err(|_| DbError::Decode { column: 0, message: "token hash is not 32 bytes".into() })?;
    let access: String = row.get(5)?;
    Ok((
        TokenHash(hash),
        IndexedKey {
            identity: Arc::new(KeyIdentity {
                key_id: row.get(1)?,
                key_prefix: row.get(2)?,
                workspace_id: row.get(3)?,
                workspace_slug: row.get(4)?,
                access: Access::parse(&access).unwrap_or(Access::ReadOnly),
                stored_client: row.get(8)?,
            }),
            expires_at: row.get::<Option<i64>>(6)?.map(from_secs),
            revoked_at: row.get::<Option<i64>>(7)?.map(from_secs),
        },
    ))
}

pub(super) fn get_key(
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

/// Inserts a new key with a fresh token; refuses a name an active key already has.
pub(super) fn insert_key(
    conn: &Connection,
    workspace_id: i64,
    name: &str,
    expires: ExpiryPolicy,
    access: Access,
    now: DateTime<Utc>,
) -> StoreResult<(Key, PlainToken)> {
    let taken = conn
        .prepare_cached(
            "SELECT id FROM mcp_keys WHERE workspace_id = ?1 AND name = ?2
             AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?3)",
        )?
        .query_row(params![workspace_id, name, now.timestamp()], |row| row.get::<String>(0))
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
                               created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
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
    ])?;
    let key = get_key(conn, workspace_id, &id, now)?;
    Ok((key, token))
}

pub(super) fn audit_key(
    conn: &Connection,
    workspace_id: i64,
    at: DateTime<Utc>,
    kind: &str,
    key: &Key,
    detail: &str,
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
        },
    )
}

impl Store {
    /// Creates a key. The returned [`PlainToken`] is the only copy of the secret there will be.
    pub fn create_key(
        &self,
        workspace_id: i64,
        name: &str,
        expires: ExpiryPolicy,
        access: Access,
    ) -> StoreResult<(Key, PlainToken)> {
        let now = self.now();
        let conn = self.writer();
        let tx = conn.transaction()?;
        let (key, token) = insert_key(&tx, workspace_id, name, expires, access, now)?;
        let detail =
            format!("created {:?} ({}, expires {})", key.name, access.as_str(), expires.as_str());
        audit_key(&tx, workspace_id, now, "key.created", &key, &detail)?;
        tx.commit()?;
        self.reindex_key(&conn, &key.id)?;
        Ok((key, token))
    }

    /// One page of the workspace's keys, newest first (only those `filter` selects), with
    /// pending last-used values applied and each active key's flags.
    pub fn list_keys(
        &self,
        workspace_id: i64,
        filter: &KeyFilter,
        limit: u32,
        cursor: Option<&str>,
    ) -> StoreResult<(Vec<Key>, Option<String>)> {
        let now = self.now();
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
        let conn = self.reader()?;
        let rows = conn.query(
            &format!(
                "SELECT {KEY_COLUMNS}, rowid FROM mcp_keys WHERE workspace_id = ?1
                   AND (created_at < ?2 OR (created_at = ?2 AND rowid < ?3)){filter_sql}
                 ORDER BY created_at DESC, rowid DESC LIMIT ?4"
            ),
            values.as_slice(),
        )?;
        let keys = rows
            .iter()
            .map(|row| Ok((key_row(row, now)?, row.get::<i64>(13)?)))
            .collect::<DbResult<Vec<_>>>()?;
        let page = paged(keys, limit as usize, Budget::new(usize::MAX), |(key, rowid)| {
            Cursor::new("keys", query, vec![key.created_at.timestamp(), *rowid])
        });
        let mut keys: Vec<Key> = page.rows.into_iter().map(|(key, _)| key).collect();
        self.apply_pending_usage(&mut keys);
        self.annotate_keys(&conn, &mut keys)?;
        Ok((keys, page.next.map(|cursor| cursor.encode())))
    }

    /// The keys a person may mean by `reference`: the one with that id, or those with that name
    /// or displayed prefix, newest first (at most [`MATCHES_MAX`]).
    pub fn find_keys(&self, workspace_id: i64, reference: &str) -> StoreResult<Vec<Key>> {
        let now = self.now();
        let reference = reference.trim();
        let rows = self.reader()?.query(
            &format!(
                "SELECT {KEY_COLUMNS} FROM mcp_keys WHERE workspace_id = ?1
                   AND (id = ?2 OR name = ?2 OR prefix = ?2)
                 ORDER BY created_at DESC, rowid DESC LIMIT ?3"
            ),
            params![workspace_id, reference, MATCHES_MAX],
        )?;
        let mut keys = rows.iter().map(|row| key_row(row, now)).collect::<DbResult<Vec<_>>>()?;
        self.apply_pending_usage(&mut keys);
        self.annotate_keys(&self.reader()?, &mut keys)?;
        Ok(keys)
    }

    pub fn get_key(&self, workspace_id: i64, id: &str) -> StoreResult<Key> {
        let conn = self.reader()?;
        let mut key = get_key(&conn, workspace_id, id, self.now())?;
        self.apply_pending_usage(std::slice::from_mut(&mut key));
        self.annotate_keys(&conn, std::slice::from_mut(&mut key))?;
        Ok(key)
    }

    /// Revokes a key. Takes effect on the very next request: the index is updated before this
    /// returns.
    pub fn revoke_key(&self, workspace_id: i64, id: &str) -> StoreResult<Key> {
        self.revoke_key_because(workspace_id, id, None)
    }

    /// The key whose token hashes to `hash`, in any workspace: `(workspace slug, key)`.
    pub fn key_by_token(&self, hash: &TokenHash) -> StoreResult<Option<(i64, String, Key)>> {
        let now = self.now();
        let conn = self.reader()?;
        let found = conn
            .query_row(
                "SELECT k.workspace_id, w.slug, k.id FROM mcp_keys k
                 JOIN workspaces w ON w.id = k.workspace_id WHERE k.token_hash = ?1",
                params![hash.0.as_slice()],
                |row| Ok((row.get::<i64>(0)?, row.get::<String>(1)?, row.get::<String>(2)?)),
            )
            .optional()?;
        let Some((workspace_id, slug, id)) = found else { return Ok(None) };
        let mut key = get_key(&conn, workspace_id, &id, now)?;
        drop(conn);
        self.apply_pending_usage(std::slice::from_mut(&mut key));
        Ok(Some((workspace_id, slug, key)))
    }

    /// Revokes a key, saying why in the audit event (`reason`, after "revoked NAME").
    pub fn revoke_key_because(
        &self,
        workspace_id: i64,
        id: &str,
        reason: Option<&str>,
    ) -> StoreResult<Key> {
        let now = self.now();
        let conn = self.writer();
        let tx = conn.transaction()?;
        let key = get_key(&tx, workspace_id, id, now)?;
        if key.status == KeyStatus::Revoked {
            return Err(StoreError::Conflict(format!("the key {:?} is already revoked", key.name)));
        }
        tx.prepare_cached("UPDATE mcp_keys SET revoked_at = ?1 WHERE id = ?2")?
            .execute(params![now.timestamp(), id])?;
        let key = get_key(&tx, workspace_id, id, now)?;
        let detail = match reason {
            Some(reason) => format!("revoked {:?}: {reason}", key.name),
            None => format!("revoked {:?}", key.name),
        };
        audit_key(&tx, workspace_id, now, "key.revoked", &key, &detail)?;
        tx.commit()?;
        self.reindex_key(&conn, id)?;
        drop(conn);
        let mut key = key;
        self.apply_pending_usage(std::slice::from_mut(&mut key));
        Ok(key)
    }

    /// Replaces a key with a new one of the same name, policy and access; the old one is
    /// revoked in the same transaction. Returns `(new key, its token, the replaced key)`.
    pub fn rotate_key(&self, workspace_id: i64, id: &str) -> StoreResult<(Key, PlainToken, Key)> {
        let now = self.now();
        let conn = self.writer();
        let tx = conn.transaction()?;
        let old = get_key(&tx, workspace_id, id, now)?;
        if old.status == KeyStatus::Revoked {
            return Err(StoreError::Conflict(format!(
                "the key {:?} is revoked and cannot be rotated; create a new key instead",
                old.name
            )));
        }
        tx.prepare_cached("UPDATE mcp_keys SET revoked_at = ?1 WHERE id = ?2")?
            .execute(params![now.timestamp(), id])?;
        let (new, token) = insert_key(&tx, workspace_id, &old.name, old.expires, old.access, now)?;
        let old = get_key(&tx, workspace_id, id, now)?;
        audit_key(
            &tx,
            workspace_id,
            now,
            "key.rotated",
            &old,
            &format!("rotated {:?}: replaced by {}", old.name, new.id),
        )?;
        audit_key(
            &tx,
            workspace_id,
            now,
            "key.created",
            &new,
            &format!("created {:?} by rotating {}", new.name, old.id),
        )?;
        tx.commit()?;
        self.reindex_key(&conn, id)?;
        self.reindex_key(&conn, &new.id)?;
        drop(conn);
        let mut old = old;
        self.apply_pending_usage(std::slice::from_mut(&mut old));
        Ok((new, token, old))
    }

    /// Looks up the key a token hash belongs to, with its current status. With SQLite this
    /// reads only the in-memory index, which every key write updates before it returns; with
    /// PostgreSQL it asks the database, so a revocation by another replica counts at once.
    pub fn authenticate_key(&self, hash: &TokenHash) -> StoreResult<Option<AuthenticatedKey>> {
        let now = self.now();
        let key = match &self.key_index {
            Some(index) => read_index(index).get(hash).cloned(),
            None => self
                .reader()?
                .query_row(INDEX_BY_HASH, [hash.0.as_slice()], indexed_key)
                .optional()?
                .map(|(_, key)| key),
        };
        let Some(key) = key else { return Ok(None) };
        Ok(Some(AuthenticatedKey {
            status: KeyStatus::derive(key.revoked_at, key.expires_at, now),
            identity: key.identity,
        }))
    }

    /// Builds the key index from the database (at open; SQLite only).
    pub(crate) fn load_key_index(&self) -> StoreResult<()> {
        let Some(index) = &self.key_index else { return Ok(()) };
        let conn = self.writer();
        let mut stmt = conn.prepare(INDEX_QUERY)?;
        let keys = stmt.query_map([], indexed_key)?.collect::<Result<HashMap<_, _>, _>>()?;
        *write_index(index) = keys;
        Ok(())
    }

    /// Re-reads key `id` into the index (SQLite only). Called after a key write commits, while
    /// the caller still holds the connection, so no request can see the database and index
    /// disagree once the write has returned.
    pub(super) fn reindex_key(&self, conn: &Connection, id: &str) -> StoreResult<()> {
        let Some(index) = &self.key_index else { return Ok(()) };
        let (hash, key) = conn.query_row(INDEX_BY_ID, [id], indexed_key)?;
        write_index(index).insert(hash, key);
        Ok(())
    }

    /// Notes a use of a key in memory; [`Store::flush_usage`] writes it later. A use that does
    /// not name its client (`usage.client` is `None`) carries over the client last noted for
    /// the key, or else takes `otherwise()` (the stored client, say). Returns the client the
    /// use is put down to.
    pub fn note_usage(
        &self,
        key_id: &str,
        mut usage: KeyUsage,
        otherwise: impl FnOnce() -> Option<String>,
    ) -> Option<String> {
        let mut slots = self.pending_usage();
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
    pub fn usage_flush_age(&self) -> Option<std::time::Duration> {
        let oldest =
            self.pending_usage().values().filter(|slot| slot.dirty).map(|slot| slot.usage.at).min();
        Some(
            oldest.map_or(std::time::Duration::ZERO, |at| {
                (self.now() - at).to_std().unwrap_or_default()
            }),
        )
    }

    /// Writes every unwritten last-used value in one transaction. Returns how many were
    /// written. On failure nothing is marked written, so the next flush tries again.
    pub fn flush_usage(&self) -> StoreResult<usize> {
        let batch: Vec<(String, KeyUsage)> = self
            .pending_usage()
            .iter()
            .filter(|(_, slot)| slot.dirty)
            .map(|(id, slot)| (id.clone(), slot.usage.clone()))
            .collect();
        if batch.is_empty() {
            return Ok(0);
        }
        {
            let conn = self.writer();
            let tx = conn.transaction()?;
            {
                // Several replicas flush their own uses, in any order: an older use never
                // replaces a newer one, and a use by a client that did not say who it is never
                // erases the client known. (The right-hand sides all read the row as it was.)
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
                for (id, usage) in &batch {
                    let ip = usage.ip.map(|ip| ip.to_string());
                    stmt.execute(params![id, usage.at.timestamp(), usage.client, ip])?;
                }
            }
            tx.commit()?;
        }
        let mut slots = self.pending_usage();
        for (id, written) in &batch {
            // A use noted while this flush ran stays dirty for the next one.
            if let Some(slot) = slots.get_mut(id).filter(|slot| slot.usage == *written) {
                slot.dirty = false;
            }
        }
        Ok(batch.len())
    }

    fn apply_pending_usage(&self, keys: &mut [Key]) {
        let pending = self.pending_usage();
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
}

fn read_index(
    index: &RwLock<HashMap<TokenHash, IndexedKey>>,
) -> RwLockReadGuard<'_, HashMap<TokenHash, IndexedKey>> {
    // As below: entries are replaced whole.
    index.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write_index(
    index: &RwLock<HashMap<TokenHash, IndexedKey>>,
) -> RwLockWriteGuard<'_, HashMap<TokenHash, IndexedKey>> {
    // Entries are plain values replaced whole; a panic elsewhere cannot leave one torn.
    index.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}
