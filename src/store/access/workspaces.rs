//! Workspaces: the access boundary of every key and every query.

use super::AccessStore;
use crate::api::Workspace;
use crate::store::db::{
    Connection, DbResult, OptionalExtension as _, Row, ToValue, Value as DbValue, params,
};
use crate::store::page::{Budget, Cursor, fingerprint, paged};
use crate::store::{StoreError, StoreResult, from_secs};

/// A workspace with its internal id, which every scoped query takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceRow {
    pub id: i64,
    pub workspace: Workspace,
}

const COLUMNS: &str = "SELECT id, slug, name, created_at FROM workspaces";

fn workspace_row(row: &Row) -> DbResult<WorkspaceRow> {
    Ok(WorkspaceRow {
        id: row.get("id")?,
        workspace: Workspace {
            slug: row.get("slug")?,
            name: row.get("name")?,
            created_at: from_secs(row.get("created_at")?),
        },
    })
}

/// The workspace `condition` (on one parameter, `?1`) selects, on `conn`.
pub(super) fn on(
    conn: &Connection,
    condition: &str,
    value: &dyn ToValue,
) -> StoreResult<Option<WorkspaceRow>> {
    let mut stmt = conn.prepare_cached(&format!("{COLUMNS} WHERE {condition}"))?;
    Ok(stmt.query_row(params![value], workspace_row).optional()?)
}

/// Creates a workspace row; `None` when the slug is taken (nothing is written then).
pub(super) fn insert(
    conn: &Connection,
    name: &str,
    slug: &str,
    now: i64,
) -> StoreResult<Option<i64>> {
    Ok(conn
        .prepare_cached(
            "INSERT INTO workspaces (slug, name, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (slug) DO NOTHING RETURNING id",
        )?
        .query_row(params![slug, name, now], |row| row.get::<i64>("id"))
        .optional()?)
}

/// What an import is doing to a workspace (`workspaces.importing`): nothing (it is visible), or
/// filling it out of sight, as a new workspace or as an existing, empty one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Importing {
    New = 1,
    Existing = 2,
}

/// Creates a workspace an import fills out of sight (see [`Importing`]); `None` when the slug
/// is taken.
pub(in crate::store) fn insert_staged(
    conn: &Connection,
    name: &str,
    slug: &str,
    now: i64,
) -> StoreResult<Option<i64>> {
    Ok(conn
        .prepare_cached(
            "INSERT INTO workspaces (slug, name, created_at, importing, importing_since)
             VALUES (?1, ?2, ?3, 1, ?3)
             ON CONFLICT (slug) DO NOTHING RETURNING id",
        )?
        .query_row(params![slug, name, now], |row| row.get::<i64>("id"))
        .optional()?)
}

/// Hides an existing workspace while an import fills it; false when it is already hidden.
pub(in crate::store) fn hide_for_import(conn: &Connection, id: i64, now: i64) -> StoreResult<bool> {
    Ok(conn
        .prepare_cached(
            "UPDATE workspaces SET importing = 2, importing_since = ?2
             WHERE id = ?1 AND importing = 0",
        )?
        .execute(params![id, now])?
        == 1)
}

/// Notes that an import wrote a slice into workspace `id`; false when it is no longer being
/// imported (its leftovers were discarded).
pub(in crate::store) fn import_progress(conn: &Connection, id: i64, now: i64) -> StoreResult<bool> {
    Ok(conn
        .prepare_cached(
            "UPDATE workspaces SET importing_since = ?2 WHERE id = ?1 AND importing <> 0",
        )?
        .execute(params![id, now])?
        == 1)
}

/// Shows workspace `id`: the one step that publishes an import.
pub(in crate::store) fn publish(conn: &Connection, id: i64) -> StoreResult<bool> {
    Ok(conn
        .prepare_cached(
            "UPDATE workspaces SET importing = 0, importing_since = NULL
             WHERE id = ?1 AND importing <> 0",
        )?
        .execute([id])?
        == 1)
}

/// After a failed import has removed what it wrote: a new workspace goes, an existing one is
/// shown again as it was (empty).
pub(in crate::store) fn end_failed_import(conn: &Connection, id: i64) -> StoreResult<()> {
    conn.prepare_cached("DELETE FROM workspaces WHERE id = ?1 AND importing = 1")?.execute([id])?;
    publish(conn, id)?;
    Ok(())
}

/// Workspaces an import was filling whose last slice is older than `before` (seconds).
pub(in crate::store) fn interrupted_imports(
    conn: &Connection,
    before: i64,
) -> StoreResult<Vec<(i64, Importing)>> {
    conn.query(
        "SELECT id, importing FROM workspaces WHERE importing <> 0
         AND COALESCE(importing_since, 0) < ?1 ORDER BY id",
        [before],
    )?
    .iter()
    .map(|row| {
        let kind = match row.get::<i64>("importing")? {
            1 => Importing::New,
            _ => Importing::Existing,
        };
        Ok((row.get::<i64>("id")?, kind))
    })
    .collect()
}

/// Which workspaces a page of the list holds: every one (the administrator) or a member's, and
/// only slugs starting with `prefix` when one is given.
#[derive(Debug, Clone, Default)]
pub struct WorkspaceFilter {
    /// Only the workspaces this member has a role in.
    pub member_id: Option<String>,
    /// Only slugs that start with this.
    pub prefix: Option<String>,
}

/// One page of the workspaces `filter` selects, by slug, and where the next page starts. The
/// cursor is the last row's id, whose slug is read again: a listed workspace is never deleted
/// (only a new one an import was filling, which no list shows), so it is always found.
pub(super) fn list_workspaces(
    s: &AccessStore<'_>,
    filter: &WorkspaceFilter,
    limit: u32,
    cursor: Option<&str>,
) -> StoreResult<(Vec<Workspace>, Option<String>)> {
    let member = filter.member_id.as_deref().unwrap_or("");
    let prefix = filter.prefix.as_deref().unwrap_or("");
    let query = fingerprint(&[member, prefix]);
    let conn = s.reader()?;
    let after = match cursor.map(str::trim).filter(|c| !c.is_empty()) {
        None => String::new(),
        Some(text) => {
            let id = Cursor::decode(text, "workspaces", query, 1)?.position[0];
            conn.prepare_cached("SELECT slug FROM workspaces WHERE id = ?1")?
                .query_row([id], |row| row.get::<String>("slug"))
                .optional()?
                .ok_or_else(|| {
                    StoreError::Invalid(
                        "the cursor is not one of ours; leave it out to start from the first page"
                            .to_owned(),
                    )
                })?
        }
    };
    // Slugs are lowercase letters, digits and dashes, compared byte by byte (COLLATE "C" on
    // PostgreSQL): those starting with `prefix` are the range from `prefix` to `prefix` + DEL,
    // one range of the slug index.
    let mut values: Vec<DbValue> = vec![
        DbValue::Text(prefix.to_owned()),
        DbValue::Text(after),
        DbValue::Integer(i64::from(limit) + 1),
        DbValue::Text(format!("{prefix}\u{7f}")),
    ];
    let (join, member_sql) = match &filter.member_id {
        Some(member) => {
            values.push(DbValue::Text(member.clone()));
            (" JOIN member_roles r ON r.workspace_id = w.id", " AND r.member_id = ?5")
        }
        None => ("", ""),
    };
    let values: Vec<&dyn ToValue> = values.iter().map(|v| v as &dyn ToValue).collect();
    let rows = conn.query(
        &format!(
            "SELECT w.id, w.slug, w.name, w.created_at FROM workspaces w{join}
             WHERE w.importing = 0 AND w.slug >= ?1 AND w.slug > ?2 AND w.slug < ?4{member_sql}
             ORDER BY w.slug LIMIT ?3"
        ),
        values.as_slice(),
    )?;
    let rows = rows
        .iter()
        .map(|row| workspace_row(row).map(|row| (row.workspace, row.id)))
        .collect::<DbResult<Vec<_>>>()?;
    let page = paged(rows, limit as usize, Budget::new(usize::MAX), |(_, id)| {
        Cursor::new("workspaces", query, vec![*id])
    });
    let workspaces = page.rows.into_iter().map(|(workspace, _)| workspace).collect();
    Ok((workspaces, page.next.map(|cursor| cursor.encode())))
}

pub(super) fn workspace_count(s: &AccessStore<'_>) -> StoreResult<i64> {
    Ok(s.reader()?.query_row(
        "SELECT count(*) AS n FROM workspaces WHERE importing = 0",
        [],
        |row| row.get("n"),
    )?)
}

pub(super) fn first_workspaces(s: &AccessStore<'_>, limit: i64) -> StoreResult<Vec<Workspace>> {
    let conn = s.reader()?;
    let mut stmt =
        conn.prepare_cached(&format!("{COLUMNS} WHERE importing = 0 ORDER BY slug LIMIT ?1"))?;
    let rows = stmt.query_map([limit], workspace_row)?;
    Ok(rows.map(|r| r.map(|w| w.workspace)).collect::<Result<_, _>>()?)
}

pub(super) fn workspace_by_slug(
    s: &AccessStore<'_>,
    slug: &str,
) -> StoreResult<Option<WorkspaceRow>> {
    on(&s.reader()?, "slug = ?1 AND importing = 0", &slug)
}

pub(super) fn workspace_by_id(s: &AccessStore<'_>, id: i64) -> StoreResult<Option<WorkspaceRow>> {
    on(&s.reader()?, "id = ?1 AND importing = 0", &id)
}

pub(super) fn create_workspace(
    s: &AccessStore<'_>,
    name: &str,
    slug: &str,
) -> StoreResult<Workspace> {
    let now = s.now();
    let inserted = insert(&s.writer(), name, slug, now.timestamp())?;
    if inserted.is_none() {
        return Err(StoreError::Conflict(format!(
            "a workspace with the slug {slug:?} already exists"
        )));
    }
    Ok(Workspace { slug: slug.to_owned(), name: name.to_owned(), created_at: now })
}
