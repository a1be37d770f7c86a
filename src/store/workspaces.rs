//! Workspaces: the access boundary of every key and every query.

use super::db::{DbResult, OptionalExtension as _, Row, params};

use super::{Store, StoreError, StoreResult, from_secs};
use crate::api::Workspace;

/// A workspace with its internal id, which every scoped query takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceRow {
    pub id: i64,
    pub workspace: Workspace,
}

fn workspace_row(row: &Row) -> DbResult<WorkspaceRow> {
    Ok(WorkspaceRow {
        id: row.get(0)?,
        workspace: Workspace {
            slug: row.get(1)?,
            name: row.get(2)?,
            created_at: from_secs(row.get(3)?),
        },
    })
}

impl Store {
    pub fn list_workspaces(&self) -> StoreResult<Vec<Workspace>> {
        let conn = self.reader()?;
        let mut stmt =
            conn.prepare_cached("SELECT id, slug, name, created_at FROM workspaces ORDER BY slug")?;
        let rows = stmt.query_map([], workspace_row)?;
        Ok(rows.map(|r| r.map(|w| w.workspace)).collect::<Result<_, _>>()?)
    }

    /// The first `limit` workspaces by slug (a picker's worth).
    pub fn first_workspaces(&self, limit: i64) -> StoreResult<Vec<Workspace>> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(
            "SELECT id, slug, name, created_at FROM workspaces ORDER BY slug LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit], workspace_row)?;
        Ok(rows.map(|r| r.map(|w| w.workspace)).collect::<Result<_, _>>()?)
    }

    pub fn workspace_by_slug(&self, slug: &str) -> StoreResult<Option<WorkspaceRow>> {
        let conn = self.reader()?;
        let mut stmt = conn
            .prepare_cached("SELECT id, slug, name, created_at FROM workspaces WHERE slug = ?1")?;
        Ok(stmt.query_row([slug], workspace_row).optional()?)
    }

    pub fn workspace_by_id(&self, id: i64) -> StoreResult<Option<WorkspaceRow>> {
        let conn = self.reader()?;
        let mut stmt =
            conn.prepare_cached("SELECT id, slug, name, created_at FROM workspaces WHERE id = ?1")?;
        Ok(stmt.query_row([id], workspace_row).optional()?)
    }

    /// Creates a workspace; a taken slug is a conflict.
    pub fn create_workspace(&self, name: &str, slug: &str) -> StoreResult<Workspace> {
        let now = self.now();
        let conn = self.writer();
        let inserted = conn
            .prepare_cached(
                "INSERT INTO workspaces (slug, name, created_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (slug) DO NOTHING",
            )?
            .execute(params![slug, name, now.timestamp()])?;
        if inserted == 0 {
            return Err(StoreError::Conflict(format!(
                "a workspace with the slug {slug:?} already exists"
            )));
        }
        Ok(Workspace { slug: slug.to_owned(), name: name.to_owned(), created_at: now })
    }
}
