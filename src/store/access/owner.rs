//! The owner credential: the admin API's bearer token for this server.

use crate::store::db::{OptionalExtension as _, params};

use std::collections::HashSet;

use super::AccessStore;
use crate::store::StoreResult;
use crate::token::{PlainToken, TokenHash, TokenKind};

/// What `serve` learns at start-up about the owner credential.
#[derive(Debug)]
pub enum OwnerCredentialSetup {
    /// A new credential was issued: show it once and save it locally.
    Issued(PlainToken),
    /// An active credential already exists (its display prefix).
    Existing { prefix: String },
}

/// Issues an owner credential if none is active, or a new one (revoking the old) when
/// `reset` is set.
pub(super) fn ensure_owner_credential(
    s: &AccessStore<'_>,
    reset: bool,
) -> StoreResult<OwnerCredentialSetup> {
    let now = s.now().timestamp();
    let conn = s.writer();
    let tx = conn.transaction()?;
    if reset {
        tx.execute("UPDATE owner_credentials SET revoked_at = ?1 WHERE revoked_at IS NULL", [now])?;
        // Browser sessions signed in with the old credential end with it.
        tx.execute("DELETE FROM oauth_sessions", [])?;
    } else if let Some(prefix) = tx
        .query_row(
            "SELECT prefix FROM owner_credentials WHERE revoked_at IS NULL LIMIT 1",
            [],
            |row| row.get::<String>("prefix"),
        )
        .optional()?
    {
        return Ok(OwnerCredentialSetup::Existing { prefix });
    }
    let token = PlainToken::generate(TokenKind::Owner);
    tx.execute(
        "INSERT INTO owner_credentials (token_hash, prefix, created_at) VALUES (?1, ?2, ?3)",
        params![token.hash().0.as_slice(), token.display_prefix(), now],
    )?;
    tx.commit()?;
    drop(conn);
    load_owner_credentials(s)?;
    Ok(OwnerCredentialSetup::Issued(token))
}

/// Whether `hash` belongs to an active owner credential. Answered from memory: the admin
/// API's guard never waits on the database, however many forged credentials arrive.
pub(super) fn is_owner_credential(s: &AccessStore<'_>, hash: &TokenHash) -> bool {
    // A poisoned lock only means a panic elsewhere; the set is replaced whole.
    s.state.owners.read().unwrap_or_else(std::sync::PoisonError::into_inner).contains(hash)
}

/// Reads the active owner credentials into memory: at open, after a reset, and (on
/// PostgreSQL, where another replica may reset it) every few seconds.
pub(super) fn load_owner_credentials(s: &AccessStore<'_>) -> StoreResult<()> {
    let rows = s
        .reader()?
        .query("SELECT token_hash FROM owner_credentials WHERE revoked_at IS NULL", [])?;
    let mut active = HashSet::new();
    for row in rows {
        let hash: Vec<u8> = row.get("token_hash")?;
        if let Ok(hash) = <[u8; 32]>::try_from(hash.as_slice()) {
            active.insert(TokenHash(hash));
        }
    }
    *s.state.owners.write().unwrap_or_else(std::sync::PoisonError::into_inner) = active;
    Ok(())
}
