//! Reads of the journey domain. Every method takes the caller's workspace id and never reads
//! outside it: an id that belongs to another workspace behaves exactly like an unknown id.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::db::{Connection, DbError, DbResult, OptionalExtension as _, Row, params};
use super::model::{
    Comment, ItemCounts, ItemDetail, ItemFilter, ItemKind, ItemList, ItemLocation, ItemSummary,
    JourneySummary, JourneyTree, ListedItem, Persona, StageNode, StepNode, WorkspaceSummary,
    per_kind_text,
};
use super::validate::{clamp_limit, non_empty};
use super::{Store, StoreError, StoreResult, from_secs};

const ITEMS_LIMIT: (u32, u32) = (50, 200);

// ---------------------------------------------------------------------------------------------
// Reads.

impl Store {
    pub fn workspace_summary(&self, workspace_id: i64) -> StoreResult<WorkspaceSummary> {
        let reader = self.reader()?;
        let conn = reader.snapshot()?;
        let mut summary = conn
            .prepare_cached(
                "SELECT name, slug,
                        (SELECT count(*) FROM journeys WHERE workspace_id = w.id),
                        (SELECT count(*) FROM personas WHERE workspace_id = w.id)
                 FROM workspaces w WHERE id = ?1",
            )?
            .query_row([workspace_id], |row| {
                Ok(WorkspaceSummary {
                    name: row.get(0)?,
                    slug: row.get(1)?,
                    journeys: row.get(2)?,
                    personas: row.get(3)?,
                    items: ItemCounts::default(),
                })
            })
            .optional()?
            .ok_or_else(|| StoreError::NotFound("this workspace no longer exists".into()))?;
        let mut stmt = conn.prepare_cached(
            "SELECT kind, count(*) FROM items WHERE workspace_id = ?1 GROUP BY kind",
        )?;
        let rows = stmt.query_map([workspace_id], |row| {
            Ok((text_enum(row, 0, ItemKind::parse)?, row.get::<i64>(1)?))
        })?;
        for row in rows {
            let (kind, count) = row?;
            let counts = &mut summary.items;
            counts.total += count;
            *match kind {
                ItemKind::Touchpoint => &mut counts.touchpoint,
                ItemKind::Insight => &mut counts.insight,
                ItemKind::Opportunity => &mut counts.opportunity,
                ItemKind::Solution => &mut counts.solution,
                ItemKind::Metric => &mut counts.metric,
            } = count;
        }
        Ok(summary)
    }

    pub fn list_journeys(&self, workspace_id: i64) -> StoreResult<Vec<JourneySummary>> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(
            "SELECT j.id, j.slug, j.name, j.description,
                    (SELECT count(*) FROM stages s WHERE s.journey_id = j.id),
                    (SELECT count(*) FROM steps st JOIN stages s ON s.id = st.stage_id
                     WHERE s.journey_id = j.id),
                    (SELECT count(*) FROM items i JOIN steps st ON st.id = i.step_id
                     JOIN stages s ON s.id = st.stage_id WHERE s.journey_id = j.id)
             FROM journeys j WHERE j.workspace_id = ?1 ORDER BY j.position, j.name",
        )?;
        let rows = stmt.query_map([workspace_id], |row| {
            Ok(JourneySummary {
                id: row.get(0)?,
                slug: row.get(1)?,
                name: row.get(2)?,
                description: row.get(3)?,
                stages: row.get(4)?,
                steps: row.get(5)?,
                items: row.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A journey by id or slug, with its stages, steps and item summaries.
    pub fn get_journey(&self, workspace_id: i64, journey: &str) -> StoreResult<JourneyTree> {
        let reader = self.reader()?;
        let conn = reader.snapshot()?;
        let mut tree = find_journey(&conn, workspace_id, journey)?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT s.id, s.name, s.description, st.id, st.name, st.description, {SUMMARY_COLUMNS}
             FROM stages s LEFT JOIN steps st ON st.stage_id = s.id
             LEFT JOIN items i ON i.step_id = st.id
             WHERE s.workspace_id = ?1 AND s.journey_id = ?2
             ORDER BY s.position, st.position, i.created_at, i.rowid"
        ))?;
        let rows = stmt.query_map(params![workspace_id, tree.id], |row| {
            let stage = StageNode {
                id: row.get(0)?,
                name: row.get(1)?,
                description: row.get(2)?,
                steps: Vec::new(),
            };
            let step = match row.get::<Option<String>>(3)? {
                Some(id) => Some(StepNode {
                    id,
                    name: row.get(4)?,
                    description: row.get(5)?,
                    items: Vec::new(),
                }),
                None => None,
            };
            let item = match row.get::<Option<String>>(6)? {
                Some(_) => Some(summary_at(row, 6)?),
                None => None,
            };
            Ok((stage, step, item))
        })?;
        // Rows come ordered by stage, then step: each new id opens a new node.
        for row in rows {
            let (stage, step, item) = row?;
            if tree.stages.last().is_none_or(|last| last.id != stage.id) {
                tree.stages.push(stage);
            }
            let (Some(stage), Some(step)) = (tree.stages.last_mut(), step) else { continue };
            if stage.steps.last().is_none_or(|last| last.id != step.id) {
                stage.steps.push(step);
            }
            if let (Some(step), Some(item)) = (stage.steps.last_mut(), item) {
                step.items.push(item);
            }
        }
        Ok(tree)
    }

    pub fn list_items(&self, workspace_id: i64, filter: &ItemFilter) -> StoreResult<ItemList> {
        let kind = filter.kind;
        let status = non_empty(&filter.status);
        if let Some(status) = status {
            let known = match kind {
                Some(kind) => kind.statuses().contains(&status),
                None => ItemKind::ALL.iter().any(|k| k.statuses().contains(&status)),
            };
            if !known {
                return Err(StoreError::Invalid(format!(
                    "no item{} can have the status {status:?}; statuses per kind: {}",
                    kind.map(|k| format!(" of kind {k}")).unwrap_or_default(),
                    per_kind_text(ItemKind::statuses)
                )));
            }
        }
        let limit = clamp_limit(filter.limit, ITEMS_LIMIT);
        let reader = self.reader()?;
        let conn = reader.snapshot()?;
        let journey_id = match non_empty(&filter.journey) {
            Some(journey) => Some(find_journey(&conn, workspace_id, journey)?.id),
            None => None,
        };
        let stage_id = non_empty(&filter.stage_id);
        if let Some(id) = stage_id {
            ensure_stage(&conn, workspace_id, id)?;
        }
        let step_id = non_empty(&filter.step_id);
        if let Some(id) = step_id {
            ensure_step(&conn, workspace_id, id)?;
        }
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {SUMMARY_COLUMNS}, {LOCATION_COLUMNS} FROM {ITEM_JOINS}
             WHERE i.workspace_id = ?1
               AND (CAST(?2 AS TEXT) IS NULL OR j.id = ?2) AND (CAST(?3 AS TEXT) IS NULL OR s.id = ?3)
               AND (CAST(?4 AS TEXT) IS NULL OR st.id = ?4) AND (CAST(?5 AS TEXT) IS NULL OR i.kind = ?5)
               AND (CAST(?6 AS TEXT) IS NULL OR i.status = ?6) AND (CAST(?7 AS TEXT) IS NULL OR lower(i.owner) = lower(?7))
             ORDER BY j.position, s.position, st.position, i.created_at, i.rowid
             LIMIT ?8"
        ))?;
        let rows = stmt.query_map(
            params![
                workspace_id,
                journey_id,
                stage_id,
                step_id,
                kind.map(ItemKind::as_str),
                status,
                non_empty(&filter.owner),
                limit + 1,
            ],
            |row| Ok(ListedItem { item: summary_at(row, 0)?, location: location_at(row, 5)? }),
        )?;
        let mut items = rows.collect::<Result<Vec<_>, _>>()?;
        let truncated = items.len() > limit as usize;
        items.truncate(limit as usize);
        Ok(ItemList { items, truncated })
    }

    pub fn get_item(&self, workspace_id: i64, item_id: &str) -> StoreResult<ItemDetail> {
        let reader = self.reader()?;
        let snapshot = reader.snapshot()?;
        item_detail(&snapshot, workspace_id, item_id)
    }

    pub fn list_personas(&self, workspace_id: i64) -> StoreResult<Vec<Persona>> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(
            "SELECT id, name, role, bio, job_to_be_done, goals, frustrations FROM personas
             WHERE workspace_id = ?1 ORDER BY rowid",
        )?;
        let rows = stmt.query_map([workspace_id], |row| {
            Ok(Persona {
                id: row.get(0)?,
                name: row.get(1)?,
                role: row.get(2)?,
                bio: row.get(3)?,
                job_to_be_done: row.get(4)?,
                goals: json_column(row, 5)?,
                frustrations: json_column(row, 6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

// ---------------------------------------------------------------------------------------------
// Queries and row mapping, shared with the writes.

pub(super) const SUMMARY_COLUMNS: &str = "i.id, i.kind, i.title, i.status, i.owner";
pub(super) const LOCATION_COLUMNS: &str = "j.id, j.name, s.id, s.name, st.id, st.name";
pub(super) const ITEM_JOINS: &str = "items i JOIN steps st ON st.id = i.step_id \
                          JOIN stages s ON s.id = st.stage_id JOIN journeys j ON j.id = s.journey_id";

pub(super) fn summary_at(row: &Row, at: usize) -> DbResult<ItemSummary> {
    Ok(ItemSummary {
        id: row.get(at)?,
        kind: text_enum(row, at + 1, ItemKind::parse)?,
        title: row.get(at + 2)?,
        status: row.get(at + 3)?,
        owner: row.get(at + 4)?,
    })
}

pub(super) fn location_at(row: &Row, at: usize) -> DbResult<ItemLocation> {
    Ok(ItemLocation {
        journey_id: row.get(at)?,
        journey: row.get(at + 1)?,
        stage_id: row.get(at + 2)?,
        stage: row.get(at + 3)?,
        step_id: row.get(at + 4)?,
        step: row.get(at + 5)?,
    })
}

/// A text column holding one of an enum's names.
pub(super) fn text_enum<T>(row: &Row, at: usize, parse: fn(&str) -> Option<T>) -> DbResult<T> {
    let text: String = row.get(at)?;
    parse(&text).ok_or_else(|| DbError::Decode {
        column: at,
        message: format!("unexpected value {text:?}"),
    })
}

/// A text column holding JSON.
pub(super) fn json_column<T: DeserializeOwned>(row: &Row, at: usize) -> DbResult<T> {
    let text: String = row.get(at)?;
    serde_json::from_str(&text)
        .map_err(|e| DbError::Decode { column: at, message: format!("not the JSON expected: {e}") })
}

pub(super) fn json_text(value: &impl Serialize) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Invalid(e.to_string()))
}

pub(super) fn find_journey(
    conn: &Connection,
    workspace_id: i64,
    journey: &str,
) -> StoreResult<JourneyTree> {
    let journey = journey.trim();
    conn.prepare_cached(
        "SELECT id, slug, name, description FROM journeys
         WHERE workspace_id = ?1 AND (id = ?2 OR slug = ?2)",
    )?
    .query_row(params![workspace_id, journey], |row| {
        Ok(JourneyTree {
            id: row.get(0)?,
            slug: row.get(1)?,
            name: row.get(2)?,
            description: row.get(3)?,
            stages: Vec::new(),
        })
    })
    .optional()?
    .ok_or_else(|| {
        StoreError::NotFound(format!(
            "no journey with id or slug {journey:?} in this workspace; list_journeys gives the \
             ids and slugs"
        ))
    })
}

pub(super) fn item_summary(
    conn: &Connection,
    workspace_id: i64,
    id: &str,
) -> StoreResult<ItemSummary> {
    let id = id.trim();
    conn.prepare_cached(&format!(
        "SELECT {SUMMARY_COLUMNS} FROM items i WHERE i.workspace_id = ?1 AND i.id = ?2"
    ))?
    .query_row(params![workspace_id, id], |row| summary_at(row, 0))
    .optional()?
    .ok_or_else(|| not_found_item(id))
}

pub(super) fn item_detail(
    conn: &Connection,
    workspace_id: i64,
    id: &str,
) -> StoreResult<ItemDetail> {
    let id = id.trim();
    let mut item = conn
        .prepare_cached(&format!(
            "SELECT {SUMMARY_COLUMNS}, {LOCATION_COLUMNS}, i.description, i.fields, i.created_at,
                    i.updated_at
             FROM {ITEM_JOINS} WHERE i.workspace_id = ?1 AND i.id = ?2"
        ))?
        .query_row(params![workspace_id, id], |row| {
            Ok(ItemDetail {
                item: summary_at(row, 0)?,
                location: location_at(row, 5)?,
                description: row.get(11)?,
                fields: json_column(row, 12)?,
                created_at: from_secs(row.get(13)?),
                updated_at: from_secs(row.get(14)?),
                links_to: Vec::new(),
                linked_from: Vec::new(),
                comments: Vec::new(),
            })
        })
        .optional()?
        .ok_or_else(|| not_found_item(id))?;
    item.links_to = linked_items(
        conn,
        &format!(
            "SELECT {SUMMARY_COLUMNS} FROM item_links l JOIN items i ON i.id = l.to_item
             WHERE l.workspace_id = ?1 AND l.from_item = ?2 ORDER BY l.created_at, l.rowid"
        ),
        workspace_id,
        id,
    )?;
    item.linked_from = linked_items(
        conn,
        &format!(
            "SELECT {SUMMARY_COLUMNS} FROM item_links l JOIN items i ON i.id = l.from_item
             WHERE l.workspace_id = ?1 AND l.to_item = ?2 ORDER BY l.created_at, l.rowid"
        ),
        workspace_id,
        id,
    )?;
    let mut stmt = conn.prepare_cached(
        "SELECT id, author, body, created_at FROM comments
         WHERE workspace_id = ?1 AND item_id = ?2 ORDER BY created_at, rowid",
    )?;
    let comments = stmt.query_map(params![workspace_id, id], |row| {
        Ok(Comment {
            id: row.get(0)?,
            author: row.get(1)?,
            body: row.get(2)?,
            created_at: from_secs(row.get(3)?),
        })
    })?;
    item.comments = comments.collect::<Result<_, _>>()?;
    Ok(item)
}

pub(super) fn linked_items(
    conn: &Connection,
    sql: &str,
    workspace_id: i64,
    id: &str,
) -> StoreResult<Vec<ItemSummary>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params![workspace_id, id], |row| summary_at(row, 0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn ensure_stage(conn: &Connection, workspace_id: i64, id: &str) -> StoreResult<()> {
    let sql = "SELECT 1 FROM stages WHERE workspace_id = ?1 AND id = ?2";
    if conn.prepare_cached(sql)?.exists(params![workspace_id, id])? {
        return Ok(());
    }
    Err(StoreError::NotFound(format!(
        "no stage with id {id:?} in this workspace; get_journey lists a journey's stages (stg_…)"
    )))
}

pub(super) fn ensure_step(conn: &Connection, workspace_id: i64, id: &str) -> StoreResult<()> {
    let sql = "SELECT 1 FROM steps WHERE workspace_id = ?1 AND id = ?2";
    if conn.prepare_cached(sql)?.exists(params![workspace_id, id])? {
        return Ok(());
    }
    Err(StoreError::NotFound(format!(
        "no step with id {id:?} in this workspace; get_journey lists a journey's steps (stp_…)"
    )))
}

pub(super) fn not_found_item(id: &str) -> StoreError {
    StoreError::NotFound(format!(
        "no item with id {id:?} in this workspace; search or list_items give item ids (itm_…)"
    ))
}
