//! Archive and restore: journeys, stages, steps and items leave every read (lists, maps,
//! searches) and come back, with what they hold, without losing anything.
//!
//! Each row keeps when it was archived itself (`archived_at`); steps and items also keep
//! whether they are out of the reads (`hidden`: they, or something they sit in, are archived),
//! so reads filter on one column. Archive and restore recompute `hidden` for the whole subtree
//! and the set of hidden search documents (`hidden_docs`), in the same transaction, set-based.

use super::ContentStore;
use super::model::ArchiveResult;
use super::reads::{find_journey, not_found_item, not_found_stage, not_found_step};
use super::search;
use crate::store::access::edge::Actor;
use crate::store::db::{Connection, OptionalExtension as _, params};
use crate::store::{StoreError, StoreResult};

/// A part of the map whose steps and items are refreshed together.
#[derive(Debug, Clone, Copy)]
pub(super) enum Scope<'a> {
    Journey(&'a str),
    Stage(&'a str),
    Step(&'a str),
}

impl Scope<'_> {
    /// The ids of the scope's steps (`?1` the scope's id).
    fn steps_sql(self) -> &'static str {
        match self {
            Scope::Journey(_) => {
                "SELECT st.id FROM steps st JOIN stages s ON s.id = st.stage_id
                 WHERE s.journey_id = ?1"
            }
            Scope::Stage(_) => "SELECT id FROM steps WHERE stage_id = ?1",
            Scope::Step(_) => "SELECT id FROM steps WHERE id = ?1",
        }
    }

    fn id(&self) -> &str {
        match self {
            Scope::Journey(id) | Scope::Stage(id) | Scope::Step(id) => id,
        }
    }
}

/// Recomputes which steps and items of `scope` are hidden, after an archive, a restore or a
/// move, and which of its search documents are (set-based: no text changes). A move also
/// changes the journey its documents are filed under, so `reindex` rewrites them. Returns how
/// many of its items are hidden now.
pub(super) fn refresh(
    conn: &Connection,
    workspace_id: i64,
    scope: Scope<'_>,
    reindex: bool,
) -> StoreResult<i64> {
    let steps = scope.steps_sql();
    let id = scope.id();
    conn.execute(
        &format!(
            "UPDATE steps SET hidden = CASE WHEN archived_at IS NULL AND NOT EXISTS (
                 SELECT 1 FROM stages s JOIN journeys j ON j.id = s.journey_id
                 WHERE s.id = steps.stage_id
                 AND (s.archived_at IS NOT NULL OR j.archived_at IS NOT NULL)) THEN 0 ELSE 1 END
             WHERE id IN ({steps})"
        ),
        [id],
    )?;
    conn.execute(
        &format!(
            "UPDATE items SET hidden = CASE WHEN archived_at IS NULL
                 THEN (SELECT st.hidden FROM steps st WHERE st.id = items.step_id) ELSE 1 END
             WHERE step_id IN ({steps})"
        ),
        [id],
    )?;
    if reindex {
        reindex_scope(conn, workspace_id, scope)?;
    } else {
        let stage_hidden = "SELECT s.id, CASE WHEN s.archived_at IS NULL AND j.archived_at IS NULL
                                 THEN 0 ELSE 1 END AS hidden
                            FROM stages s JOIN journeys j ON j.id = s.journey_id";
        let things = [
            format!("SELECT i.id, i.hidden FROM items i WHERE i.step_id IN ({steps})"),
            format!(
                "SELECT c.id, i.hidden FROM comments c JOIN items i ON i.id = c.item_id
                 WHERE i.step_id IN ({steps})"
            ),
            format!("SELECT st.id, st.hidden FROM steps st WHERE st.id IN ({steps})"),
        ];
        let nodes = match scope {
            Scope::Journey(_) => vec![
                format!("{stage_hidden} WHERE s.journey_id = ?1"),
                "SELECT id, CASE WHEN archived_at IS NULL THEN 0 ELSE 1 END AS hidden
                 FROM journeys WHERE id = ?1"
                    .to_owned(),
            ],
            Scope::Stage(_) => vec![format!("{stage_hidden} WHERE s.id = ?1")],
            Scope::Step(_) => Vec::new(),
        };
        for sql in things.iter().chain(&nodes) {
            search::set_hidden(conn, workspace_id, sql, id)?;
        }
    }
    hidden_items(conn, scope)
}

/// Reindexes everything in `scope`: journey, stages, steps, items, comments.
fn reindex_scope(conn: &Connection, workspace_id: i64, scope: Scope<'_>) -> StoreResult<()> {
    let steps = scope.steps_sql();
    let id = scope.id();
    match scope {
        Scope::Journey(journey) => {
            search::index_journey(conn, workspace_id, journey)?;
            for row in conn.query("SELECT id FROM stages WHERE journey_id = ?1", [journey])? {
                search::index_stage(conn, workspace_id, &row.get::<String>("id")?)?;
            }
        }
        Scope::Stage(stage) => search::index_stage(conn, workspace_id, stage)?,
        Scope::Step(_) => {}
    }
    for row in conn.query(steps, [id])? {
        search::index_step(conn, workspace_id, &row.get::<String>("id")?)?;
    }
    let items = conn.query(&format!("SELECT id FROM items WHERE step_id IN ({steps})"), [id])?;
    for row in &items {
        search::index_item(conn, workspace_id, &row.get::<String>("id")?)?;
    }
    let comments = conn.query(
        &format!(
            "SELECT c.id FROM comments c JOIN items i ON i.id = c.item_id
             WHERE i.step_id IN ({steps})"
        ),
        [id],
    )?;
    for row in &comments {
        search::index_comment(conn, workspace_id, &row.get::<String>("id")?)?;
    }
    Ok(())
}

fn hidden_items(conn: &Connection, scope: Scope<'_>) -> StoreResult<i64> {
    let steps = scope.steps_sql();
    Ok(conn.query_row(
        &format!("SELECT count(*) AS n FROM items WHERE hidden = 1 AND step_id IN ({steps})"),
        [scope.id()],
        |row| row.get("n"),
    )?)
}

/// What `archive` and `restore` take: a journey (id or slug), stage, step or item, by id.
enum Target {
    Journey(String),
    Stage(String),
    Step(String),
    Item(String),
}

/// What `archive` or `restore` answers for an `id` that names nothing they take (a key
/// confined to some journeys gets it for one outside them too).
pub(super) fn unknown_target(id: &str) -> StoreError {
    StoreError::Invalid(format!(
        "{:?} is not the id of a journey (jrn_… or its slug), stage (stg_…), step (stp_…) or \
         item (itm_…) of this workspace",
        id.trim()
    ))
}

impl Target {
    fn parse(conn: &Connection, workspace_id: i64, id: &str) -> StoreResult<Target> {
        let id = id.trim();
        Ok(match id.split('_').next() {
            Some("stg") => Target::Stage(id.to_owned()),
            Some("stp") => Target::Step(id.to_owned()),
            Some("itm") => Target::Item(id.to_owned()),
            Some("jrn") => Target::Journey(find_journey(conn, workspace_id, id)?.id),
            _ => match find_journey(conn, workspace_id, id) {
                Ok(journey) => Target::Journey(journey.id),
                Err(_) => return Err(unknown_target(id)),
            },
        })
    }
}

/// Archives (`archived`) or restores a journey, stage, step or item, with all it holds.
pub(super) fn set_archived(
    s: &ContentStore<'_>,
    workspace_id: i64,
    actor: Actor<'_>,
    id: &str,
    archived: bool,
) -> StoreResult<ArchiveResult> {
    let verb = if archived { "archive" } else { "restore" };
    super::writes::write(s, workspace_id, actor, |tx, now| {
        let target = Target::parse(tx, workspace_id, id)?;
        let result = match &target {
            Target::Item(id) => set_item_archived(tx, workspace_id, id, archived, now)?,
            Target::Journey(id) => {
                set_node_archived(tx, workspace_id, Scope::Journey(id), archived, now)?
            }
            Target::Stage(id) => {
                set_node_archived(tx, workspace_id, Scope::Stage(id), archived, now)?
            }
            Target::Step(id) => {
                set_node_archived(tx, workspace_id, Scope::Step(id), archived, now)?
            }
        };
        let detail = format!("{verb} {} {:?}", result.id, result.name);
        Ok((result, detail))
    })
}

fn set_node_archived(
    conn: &Connection,
    workspace_id: i64,
    scope: Scope<'_>,
    archived: bool,
    now: i64,
) -> StoreResult<ArchiveResult> {
    let (table, node_type) = match scope {
        Scope::Journey(_) => ("journeys", "journey"),
        Scope::Stage(_) => ("stages", "stage"),
        Scope::Step(_) => ("steps", "step"),
    };
    let id = scope.id();
    // `table` is one of three names, never text from a request.
    let (name, was): (String, Option<i64>) = conn
        .query_row(
            &format!("SELECT name, archived_at FROM {table} WHERE workspace_id = ?1 AND id = ?2"),
            params![workspace_id, id],
            |row| Ok((row.get("name")?, row.get("archived_at")?)),
        )
        .optional()?
        .ok_or_else(|| match scope {
            Scope::Stage(id) => not_found_stage(id),
            _ => not_found_step(id),
        })?;
    check_change(node_type, id, was.is_some(), archived)?;
    let before = hidden_items(conn, scope)?;
    conn.execute(
        &format!("UPDATE {table} SET archived_at = ?2 WHERE id = ?1"),
        params![id, archived.then_some(now)],
    )?;
    let after = refresh(conn, workspace_id, scope, false)?;
    Ok(ArchiveResult {
        id: id.to_owned(),
        node_type: node_type.to_owned(),
        name,
        archived,
        items: (after - before).abs(),
    })
}

fn set_item_archived(
    conn: &Connection,
    workspace_id: i64,
    id: &str,
    archived: bool,
    now: i64,
) -> StoreResult<ArchiveResult> {
    let (title, step_id, was, hidden): (String, String, Option<i64>, i64) = conn
        .query_row(
            "SELECT title, step_id, archived_at, hidden FROM items
             WHERE workspace_id = ?1 AND id = ?2",
            params![workspace_id, id],
            |row| {
                Ok((
                    row.get("title")?,
                    row.get("step_id")?,
                    row.get("archived_at")?,
                    row.get("hidden")?,
                ))
            },
        )
        .optional()?
        .ok_or_else(|| not_found_item(id))?;
    check_change("item", id, was.is_some(), archived)?;
    conn.execute(
        "UPDATE items SET archived_at = ?2,
             hidden = CASE WHEN ?3 = 1 THEN 1
                           ELSE (SELECT hidden FROM steps WHERE id = items.step_id) END
         WHERE id = ?1",
        params![id, archived.then_some(now), i64::from(archived)],
    )?;
    conn.execute(
        "UPDATE steps SET item_count = item_count + ?2 WHERE id = ?1",
        params![step_id, if archived { -1_i64 } else { 1 }],
    )?;
    search::index_item(conn, workspace_id, id)?;
    for row in conn.query("SELECT id FROM comments WHERE item_id = ?1", [id])? {
        search::index_comment(conn, workspace_id, &row.get::<String>("id")?)?;
    }
    let now_hidden: i64 =
        conn.query_row("SELECT hidden FROM items WHERE id = ?1", [id], |row| row.get("hidden"))?;
    Ok(ArchiveResult {
        id: id.to_owned(),
        node_type: "item".to_owned(),
        name: title,
        archived,
        items: i64::from(now_hidden != hidden),
    })
}

/// Refuses to archive what is archived, or restore what is not.
fn check_change(node_type: &str, id: &str, was: bool, archived: bool) -> StoreResult<()> {
    match (was, archived) {
        (true, true) => Err(StoreError::Conflict(format!(
            "the {node_type} {id} is already archived; nothing to do"
        ))),
        (false, false) => Err(StoreError::Conflict(format!(
            "the {node_type} {id} is not archived, so there is nothing to restore (if it is \
             missing from reads, what it sits in is archived: restore that)"
        ))),
        _ => Ok(()),
    }
}
