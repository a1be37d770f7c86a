//! The shape of the map: journeys, their stages and the stages' steps, made, changed, moved
//! and reordered. Every change keeps the map's invariants in the same transaction: siblings'
//! positions in order, each step's (and item's) `map_order`, what is hidden under an archived
//! parent and the search index of everything that moved.

use super::ContentStore;
use super::archive::{Scope, refresh};
use super::model::{
    JourneyUpdate, MapNode, NewJourney, NewStage, NewStep, StageUpdate, StepUpdate,
};
use super::reads::{ensure_stage, find_journey, not_found_stage, not_found_step};
use super::search;
use super::validate::{
    DESCRIPTION_MAX, JOURNEYS_MAX, STAGES_MAX, STEPS_MAX, TITLE_MAX, clean_text, required_text,
};
use super::writes::{insert_journey, insert_stage, insert_step};
use crate::store::access::edge::Actor;
use crate::store::db::{Connection, OptionalExtension as _, params};
use crate::store::{StoreError, StoreResult};

/// A level of the map: what its rows are and what they sit in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Level {
    Journey,
    Stage,
    Step,
}

impl Level {
    fn table(self) -> &'static str {
        match self {
            Level::Journey => "journeys",
            Level::Stage => "stages",
            Level::Step => "steps",
        }
    }

    /// The siblings of a row (`id, position`, in order): `?1` the workspace, `?2` the parent.
    fn siblings_sql(self) -> &'static str {
        match self {
            Level::Journey => {
                "SELECT id, position FROM journeys WHERE workspace_id = ?1 ORDER BY position, rowid"
            }
            Level::Stage => {
                "SELECT id, position FROM stages WHERE workspace_id = ?1 AND journey_id = ?2
                 ORDER BY position, rowid"
            }
            Level::Step => {
                "SELECT id, position FROM steps WHERE workspace_id = ?1 AND stage_id = ?2
                 ORDER BY position, rowid"
            }
        }
    }

    fn max(self) -> (usize, &'static str) {
        match self {
            Level::Journey => (JOURNEYS_MAX, "a workspace"),
            Level::Stage => (STAGES_MAX, "a journey"),
            Level::Step => (STEPS_MAX, "a stage"),
        }
    }
}

pub(super) fn create_journey(
    s: &ContentStore<'_>,
    workspace_id: i64,
    actor: Actor<'_>,
    new: &NewJourney,
) -> StoreResult<MapNode> {
    let (name, description) = name_and_description(&new.name, new.description.as_deref())?;
    let slug = match &new.slug {
        Some(slug) => {
            crate::api::validate_slug(slug.trim()).map_err(StoreError::Invalid)?.to_owned()
        }
        None => crate::api::slugify(&name),
    };
    super::writes::write(s, workspace_id, actor, |tx, now| {
        ensure_slug_free(tx, workspace_id, &slug)?;
        let at = room(tx, Level::Journey, workspace_id, None)?;
        let id = insert_journey(tx, workspace_id, &slug, &name, &description, at, now)?;
        let index = place(tx, Level::Journey, workspace_id, None, &id, new.position)?;
        renumber_map(tx, workspace_id)?;
        let detail = format!("create_journey {id} {name:?}");
        let node =
            MapNode { id, name, description, position: index, slug: Some(slug), parent_id: None };
        Ok((node, detail))
    })
}

pub(super) fn create_stage(
    s: &ContentStore<'_>,
    workspace_id: i64,
    actor: Actor<'_>,
    new: &NewStage,
) -> StoreResult<MapNode> {
    let (name, description) = name_and_description(&new.name, new.description.as_deref())?;
    super::writes::write(s, workspace_id, actor, |tx, _| {
        let journey = find_journey(tx, workspace_id, &new.journey)?;
        let parent = Some(journey.id.as_str());
        let at = room(tx, Level::Stage, workspace_id, parent)?;
        let id = insert_stage(tx, workspace_id, &journey.id, &name, &description, at)?;
        let index = place(tx, Level::Stage, workspace_id, parent, &id, new.position)?;
        renumber_map(tx, workspace_id)?;
        let detail = format!("create_stage {id} {name:?} in {}", journey.id);
        let node = MapNode {
            id,
            name,
            description,
            position: index,
            slug: None,
            parent_id: Some(journey.id),
        };
        Ok((node, detail))
    })
}

pub(super) fn create_step(
    s: &ContentStore<'_>,
    workspace_id: i64,
    actor: Actor<'_>,
    new: &NewStep,
) -> StoreResult<MapNode> {
    let (name, description) = name_and_description(&new.name, new.description.as_deref())?;
    let stage_id = new.stage_id.trim();
    super::writes::write(s, workspace_id, actor, |tx, _| {
        ensure_stage(tx, workspace_id, stage_id)?;
        let at = room(tx, Level::Step, workspace_id, Some(stage_id))?;
        let id = insert_step(tx, workspace_id, stage_id, &name, &description, at)?;
        let index = place(tx, Level::Step, workspace_id, Some(stage_id), &id, new.position)?;
        renumber_map(tx, workspace_id)?;
        let detail = format!("create_step {id} {name:?} in {stage_id}");
        let node = MapNode {
            id,
            name,
            description,
            position: index,
            slug: None,
            parent_id: Some(stage_id.to_owned()),
        };
        Ok((node, detail))
    })
}

pub(super) fn update_journey(
    s: &ContentStore<'_>,
    workspace_id: i64,
    actor: Actor<'_>,
    update: &JourneyUpdate,
) -> StoreResult<MapNode> {
    let (name, description) = changed_text(&update.name, &update.description)?;
    let slug = match &update.slug {
        Some(slug) => {
            Some(crate::api::validate_slug(slug.trim()).map_err(StoreError::Invalid)?.to_owned())
        }
        None => None,
    };
    if name.is_none() && description.is_none() && slug.is_none() && update.position.is_none() {
        return Err(nothing_to_update("name, slug, description, position"));
    }
    super::writes::write(s, workspace_id, actor, |tx, _| {
        let journey = find_journey(tx, workspace_id, &update.journey)?;
        if let Some(slug) = slug.as_ref().filter(|s| **s != journey.slug) {
            ensure_slug_free(tx, workspace_id, slug)?;
        }
        let name = name.clone().unwrap_or(journey.name);
        let description = description.clone().unwrap_or(journey.description);
        let slug = slug.clone().unwrap_or(journey.slug);
        tx.prepare_cached(
            "UPDATE journeys SET name = ?3, slug = ?4, description = ?5
                 WHERE workspace_id = ?1 AND id = ?2",
        )?
        .execute(params![workspace_id, journey.id, name, slug, description])?;
        search::index_journey(tx, workspace_id, &journey.id)?;
        let position = match update.position {
            Some(index) => {
                let at = place(tx, Level::Journey, workspace_id, None, &journey.id, Some(index))?;
                renumber_map(tx, workspace_id)?;
                at
            }
            None => index_of(tx, Level::Journey, workspace_id, None, &journey.id)?,
        };
        let detail = format!("update_journey {} {name:?}", journey.id);
        let node = MapNode {
            id: journey.id,
            name,
            description,
            position,
            slug: Some(slug),
            parent_id: None,
        };
        Ok((node, detail))
    })
}

pub(super) fn update_stage(
    s: &ContentStore<'_>,
    workspace_id: i64,
    actor: Actor<'_>,
    update: &StageUpdate,
) -> StoreResult<MapNode> {
    let (name, description) = changed_text(&update.name, &update.description)?;
    if name.is_none()
        && description.is_none()
        && update.journey.is_none()
        && update.position.is_none()
    {
        return Err(nothing_to_update("name, description, journey, position"));
    }
    super::writes::write(s, workspace_id, actor, |tx, _| {
        let target = match &update.journey {
            Some(journey) => Some(find_journey(tx, workspace_id, journey)?.id),
            None => None,
        };
        let change = NodeChange { name, description, parent: target, position: update.position };
        change_node(tx, workspace_id, Level::Stage, update.stage_id.trim(), change)
    })
}

pub(super) fn update_step(
    s: &ContentStore<'_>,
    workspace_id: i64,
    actor: Actor<'_>,
    update: &StepUpdate,
) -> StoreResult<MapNode> {
    let (name, description) = changed_text(&update.name, &update.description)?;
    if name.is_none()
        && description.is_none()
        && update.stage_id.is_none()
        && update.position.is_none()
    {
        return Err(nothing_to_update("name, description, stage_id, position"));
    }
    super::writes::write(s, workspace_id, actor, |tx, _| {
        let target = match update.stage_id.as_deref().map(str::trim) {
            Some(stage) => {
                ensure_stage(tx, workspace_id, stage)?;
                Some(stage.to_owned())
            }
            None => None,
        };
        let change = NodeChange { name, description, parent: target, position: update.position };
        change_node(tx, workspace_id, Level::Step, update.step_id.trim(), change)
    })
}

/// What an update changes of a stage or step (`None`: unchanged); `parent` is where it moves.
struct NodeChange {
    name: Option<String>,
    description: Option<String>,
    parent: Option<String>,
    position: Option<u32>,
}

/// Renames, re-describes, reorders or moves stage or step `id`: the row, its place among its
/// siblings and in the map, and the search index of what it holds (everything in it, when it
/// moved to another parent, which may be archived). Returns the node and the audit detail.
fn change_node(
    conn: &Connection,
    workspace_id: i64,
    level: Level,
    id: &str,
    change: NodeChange,
) -> StoreResult<(MapNode, String)> {
    let (table, parent_column, verb) = match level {
        Level::Stage => ("stages", "journey_id", "update_stage"),
        _ => ("steps", "stage_id", "update_step"),
    };
    // `table` and `parent_column` are this module's names, never text from a request.
    let (parent, old_name, old_description) = conn
        .query_row(
            &format!(
                "SELECT {parent_column} AS parent, name, description FROM {table}
                 WHERE workspace_id = ?1 AND id = ?2"
            ),
            params![workspace_id, id],
            |row| {
                Ok((
                    row.get::<String>("parent")?,
                    row.get::<String>("name")?,
                    row.get::<String>("description")?,
                ))
            },
        )
        .optional()?
        .ok_or_else(|| match level {
            Level::Stage => not_found_stage(id),
            _ => not_found_step(id),
        })?;
    let target = change.parent.unwrap_or_else(|| parent.clone());
    let moved = target != parent;
    let name = change.name.unwrap_or(old_name);
    let description = change.description.unwrap_or(old_description);
    conn.execute(
        &format!(
            "UPDATE {table} SET name = ?3, description = ?4, {parent_column} = ?5
             WHERE workspace_id = ?1 AND id = ?2"
        ),
        params![workspace_id, id, name, description, target],
    )?;
    let position = if moved || change.position.is_some() {
        let at = place(conn, level, workspace_id, Some(&target), id, change.position)?;
        renumber_map(conn, workspace_id)?;
        at
    } else {
        index_of(conn, level, workspace_id, Some(&target), id)?
    };
    let scope = match level {
        Level::Stage => Scope::Stage(id),
        _ => Scope::Step(id),
    };
    if moved {
        refresh(conn, workspace_id, scope, true)?;
    } else if level == Level::Stage {
        search::index_stage(conn, workspace_id, id)?;
    } else {
        search::index_step(conn, workspace_id, id)?;
    }
    let into = if moved { format!(" into {target}") } else { String::new() };
    let detail = format!("{verb} {id} {name:?}{into}");
    let node = MapNode {
        id: id.to_owned(),
        name,
        description,
        position,
        slug: None,
        parent_id: Some(target),
    };
    Ok((node, detail))
}

/// Numbers the workspace's steps in map order (journeys, then stages, then steps, each by
/// position) and gives each item its step's number, after the map's shape changed. Only what
/// moved is written.
pub(super) fn renumber_map(conn: &Connection, workspace_id: i64) -> StoreResult<()> {
    let steps = conn.query(
        "SELECT st.id, st.map_order FROM steps st JOIN stages s ON s.id = st.stage_id
         JOIN journeys j ON j.id = s.journey_id WHERE st.workspace_id = ?1
         ORDER BY j.position, j.rowid, s.position, s.rowid, st.position, st.rowid",
        [workspace_id],
    )?;
    for (number, row) in (1_i64..).zip(&steps) {
        if row.get::<i64>("map_order")? == number {
            continue;
        }
        let id: String = row.get("id")?;
        conn.prepare_cached("UPDATE steps SET map_order = ?2 WHERE id = ?1")?
            .execute(params![id, number])?;
        conn.prepare_cached("UPDATE items SET map_order = ?2 WHERE step_id = ?1")?
            .execute(params![id, number])?;
    }
    Ok(())
}

/// A journey's, stage's or step's name and description, checked.
fn name_and_description(name: &str, description: Option<&str>) -> StoreResult<(String, String)> {
    let name = required_text("name", name, TITLE_MAX)?;
    let description = clean_text("description", description.unwrap_or(""), DESCRIPTION_MAX, true)?;
    Ok((name, description))
}

/// Refuses a journey slug the workspace already uses.
fn ensure_slug_free(conn: &Connection, workspace_id: i64, slug: &str) -> StoreResult<()> {
    let taken = conn
        .prepare_cached("SELECT 1 FROM journeys WHERE workspace_id = ?1 AND slug = ?2")?
        .exists(params![workspace_id, slug])?;
    if taken {
        return Err(StoreError::Conflict(format!(
            "a journey with the slug {slug:?} already exists; give another `slug`"
        )));
    }
    Ok(())
}

/// An update's new name and description, checked (`None`: unchanged).
fn changed_text(
    name: &Option<String>,
    description: &Option<String>,
) -> StoreResult<(Option<String>, Option<String>)> {
    let name = match name {
        Some(name) => Some(required_text("name", name, TITLE_MAX)?),
        None => None,
    };
    let description = match description {
        Some(text) => Some(clean_text("description", text, DESCRIPTION_MAX, true)?),
        None => None,
    };
    Ok((name, description))
}

fn nothing_to_update(what: &str) -> StoreError {
    StoreError::Invalid(format!("nothing to update: give at least one of {what}"))
}

/// The siblings of `level` under `parent` (the workspace's journeys when `None`), in order.
fn siblings(
    conn: &Connection,
    level: Level,
    workspace_id: i64,
    parent: Option<&str>,
) -> StoreResult<Vec<(String, i64)>> {
    let rows = match parent {
        Some(parent) => conn.query(level.siblings_sql(), params![workspace_id, parent])?,
        None => conn.query(level.siblings_sql(), params![workspace_id])?,
    };
    rows.iter().map(|row| Ok((row.get("id")?, row.get("position")?))).collect()
}

/// Refuses a new row of `level` under `parent` when that is full; returns the position after
/// the last sibling.
fn room(
    conn: &Connection,
    level: Level,
    workspace_id: i64,
    parent: Option<&str>,
) -> StoreResult<i64> {
    let siblings = siblings(conn, level, workspace_id, parent)?;
    let (max, within) = level.max();
    if siblings.len() >= max {
        return Err(StoreError::Quota(format!(
            "{within} holds at most {max} {}, and this one is full; nothing was changed",
            level.table()
        )));
    }
    Ok(siblings.last().map_or(0, |(_, position)| position + 1))
}

/// Puts row `id` (already under `parent`) at `index` among its siblings (from 0; the end when
/// `None` or past it) and numbers them all from 0, writing only the positions that change.
/// Returns the index it got. Refuses when the parent would hold more than its maximum.
fn place(
    conn: &Connection,
    level: Level,
    workspace_id: i64,
    parent: Option<&str>,
    id: &str,
    index: Option<u32>,
) -> StoreResult<u32> {
    let mut rows = siblings(conn, level, workspace_id, parent)?;
    let (max, within) = level.max();
    if rows.len() > max {
        return Err(StoreError::Quota(format!(
            "{within} holds at most {max} {}, and this one is full; nothing was changed",
            level.table()
        )));
    }
    let Some(from) = rows.iter().position(|(row, _)| row == id) else {
        return Err(StoreError::NotFound(format!("{id:?} is not in this workspace's map")));
    };
    let row = rows.remove(from);
    let to = index.map_or(rows.len(), |i| (i as usize).min(rows.len()));
    rows.insert(to, row);
    // `table` is one of this module's names, never text from a request.
    let sql = format!("UPDATE {} SET position = ?2 WHERE id = ?1", level.table());
    for (position, (row, old)) in (0_i64..).zip(&rows) {
        if *old != position {
            conn.prepare_cached(&sql)?.execute(params![row, position])?;
        }
    }
    Ok(u32::try_from(to).unwrap_or(u32::MAX))
}

/// The index of `id` among its siblings.
fn index_of(
    conn: &Connection,
    level: Level,
    workspace_id: i64,
    parent: Option<&str>,
    id: &str,
) -> StoreResult<u32> {
    let rows = siblings(conn, level, workspace_id, parent)?;
    let index = rows.iter().position(|(row, _)| row == id).unwrap_or(rows.len());
    Ok(u32::try_from(index).unwrap_or(u32::MAX))
}
