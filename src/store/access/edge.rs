//! What the content room may ask of the access room: the only items of `access` that content
//! uses (`tests/it/layout.rs` checks it). Each takes the caller's connection, so it is part of
//! the caller's transaction: a write checks its key and records its audit event in the same
//! transaction as the change, and an import creates its workspace in the same transaction as
//! what it holds.

use crate::store::StoreResult;
use crate::store::db::{Connection, params};

pub(in crate::store) use super::audit::insert_event;
pub use super::audit::{Actor, NewEvent};
pub use super::workspaces::{Importing, WorkspaceRow};
pub(in crate::store) use super::workspaces::{
    end_failed_import, hide_for_import, import_progress, insert_staged as insert_staged_workspace,
    interrupted_imports, publish as publish_workspace,
};

/// Whether the key `actor` names is still active at `now` (seconds). Asked inside a write's transaction,
/// under the write lock a revoke also takes: a write commits before the revoke or is refused
/// after it.
pub fn key_is_active(conn: &Connection, actor: Actor<'_>, now: i64) -> StoreResult<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM mcp_keys WHERE id = ?1 AND revoked_at IS NULL
             AND (expires_at IS NULL OR expires_at > ?2)",
        )?
        .exists(params![actor.key_id, now])?)
}

/// Creates a workspace row; `None` when the slug is taken (nothing is written then).
pub fn insert_workspace(
    conn: &Connection,
    name: &str,
    slug: &str,
    now: i64,
) -> StoreResult<Option<i64>> {
    super::workspaces::insert(conn, name, slug, now)
}

/// The workspace `id`, as `conn` sees it.
pub fn workspace(conn: &Connection, id: i64) -> StoreResult<Option<WorkspaceRow>> {
    super::workspaces::on(conn, "id = ?1", &id)
}

/// The workspace with the slug `slug`, as `conn` sees it.
pub fn workspace_with_slug(conn: &Connection, slug: &str) -> StoreResult<Option<WorkspaceRow>> {
    super::workspaces::on(conn, "slug = ?1", &slug)
}

/// Whether the database holds any workspace (a new one holds none).
pub fn any_workspace(conn: &Connection) -> StoreResult<bool> {
    Ok(conn.prepare_cached("SELECT 1 FROM workspaces LIMIT 1")?.exists([])?)
}
