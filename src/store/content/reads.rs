//! Reads of the journey domain. Every method takes the caller's workspace id and never reads
//! outside it: an id that belongs to another workspace behaves exactly like an unknown id.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::ContentStore;
use super::model::{
    Comment, ItemCounts, ItemDetail, ItemFilter, ItemKind, ItemList, ItemLocation, ItemSummary,
    JourneySummary, JourneyTree, LEVELS, ListedItem, PRIORITIES, Persona, PersonaRef, StageNode,
    StepNode, WorkspaceSummary, per_kind_text,
};
use super::validate::{check_choice, clamp_limit, non_empty};
use crate::store::access::edge;
use crate::store::db::{
    Connection, DbError, DbResult, OptionalExtension as _, Row, ToValue, Value as DbValue, params,
};
use crate::store::page::{Budget, Cursor, PAGE_BYTES, fingerprint, paged};
use crate::store::{StoreError, StoreResult, from_secs};

const ITEMS_LIMIT: (u32, u32) = (50, 200);
/// Journeys and personas per page.
const LIST_PAGE: i64 = 50;
/// A journey's map shows at most this many item summaries per step, and in all.
const MAP_ITEMS_PER_STEP: i64 = 10;
const MAP_ITEMS_MAX: i64 = 100;
/// A journey's map stays within this many bytes (see [`fit_map`]).
const MAP_BYTES: usize = 200 * 1024;
const MAP_DESCRIPTION_CHARS: usize = 300;
/// An item shows at most this many links each way.
const LINKS_SHOWN: i64 = 50;
/// Comments per page of `get_item`, and the bytes they may take.
const COMMENTS_PAGE: i64 = 20;
const COMMENTS_BYTES: usize = 128 * 1024;

// ---------------------------------------------------------------------------------------------
// Reads.

pub(super) fn workspace_summary(
    s: &ContentStore<'_>,
    workspace_id: i64,
) -> StoreResult<WorkspaceSummary> {
    let reader = s.reader()?;
    let conn = reader.snapshot()?;
    let workspace = edge::workspace(&conn, workspace_id)?
        .ok_or_else(|| StoreError::NotFound("this workspace no longer exists".into()))?;
    let (journeys, personas) = conn
        .prepare_cached(
            "SELECT (SELECT count(*) FROM journeys WHERE workspace_id = ?1
                     AND archived_at IS NULL) AS journeys,
                    (SELECT count(*) FROM personas WHERE workspace_id = ?1) AS personas",
        )?
        .query_row([workspace_id], |row| Ok((row.get("journeys")?, row.get("personas")?)))?;
    let mut summary = WorkspaceSummary {
        name: workspace.workspace.name,
        slug: workspace.workspace.slug,
        journeys,
        personas,
        items: ItemCounts::default(),
    };
    let mut stmt = conn.prepare_cached(
        "SELECT counter, n FROM workspace_counts WHERE workspace_id = ?1 AND counter LIKE 'item:%'",
    )?;
    let rows = stmt.query_map([workspace_id], |row| {
        let counter: String = row.get("counter")?;
        let kind = counter.strip_prefix("item:").and_then(ItemKind::parse);
        Ok((kind, row.get::<i64>("n")?))
    })?;
    for row in rows {
        let (Some(kind), count) = row? else { continue };
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

/// One page of the workspace's journeys, in their order, with the size of each map
/// (archived stages and steps, and what they hold, aside). Archived journeys are listed
/// only when `include_archived`.
pub(super) fn list_journeys(
    s: &ContentStore<'_>,
    workspace_id: i64,
    cursor: Option<&str>,
    include_archived: bool,
) -> StoreResult<(Vec<JourneySummary>, Option<String>)> {
    let after = position_after(cursor, "journeys")?;
    let conn = s.reader()?;
    let archived = if include_archived { "" } else { "AND j.archived_at IS NULL" };
    let rows = conn.query(
        &format!(
            "SELECT j.id, j.slug, j.name, j.description,
                    (SELECT count(*) FROM stages s WHERE s.journey_id = j.id
                     AND s.archived_at IS NULL) AS stages,
                    (SELECT count(*) FROM steps st JOIN stages s ON s.id = st.stage_id
                     WHERE s.journey_id = j.id AND s.archived_at IS NULL
                     AND st.archived_at IS NULL) AS steps,
                    (SELECT CAST(COALESCE(sum(st.item_count), 0) AS BIGINT) FROM steps st
                     JOIN stages s ON s.id = st.stage_id WHERE s.journey_id = j.id
                     AND s.archived_at IS NULL AND st.archived_at IS NULL) AS items,
                    j.position, j.rowid, j.archived_at
             FROM journeys j WHERE j.workspace_id = ?1 {archived}
               AND (j.position > ?2 OR (j.position = ?2 AND j.rowid > ?3))
             ORDER BY j.position, j.rowid LIMIT ?4"
        ),
        params![workspace_id, after.0, after.1, LIST_PAGE + 1],
    )?;
    let journeys = rows
        .iter()
        .map(|row| {
            let journey = JourneySummary {
                id: row.get("id")?,
                slug: row.get("slug")?,
                name: row.get("name")?,
                description: row.get("description")?,
                stages: row.get("stages")?,
                steps: row.get("steps")?,
                items: row.get("items")?,
                archived: row.get::<Option<i64>>("archived_at")?.is_some(),
            };
            Ok((journey, row.get::<i64>("position")?, row.get::<i64>("rowid")?))
        })
        .collect::<DbResult<Vec<_>>>()?;
    Ok(page_of(journeys, "journeys"))
}

/// A journey by id or slug: its personas, its stages, their steps with how many items each
/// holds, and the first items of each step, within bounds (see [`JourneyTree`]). Archived
/// stages, steps and items are left out unless `include_archived` (or the journey itself
/// is archived: asking for it by name is asking for what it holds).
pub(super) fn get_journey(
    s: &ContentStore<'_>,
    workspace_id: i64,
    journey: &str,
    include_archived: bool,
) -> StoreResult<JourneyTree> {
    let reader = s.reader()?;
    let conn = reader.snapshot()?;
    journey_tree(&conn, workspace_id, journey, include_archived)
}

/// One page of items, in map order (journey, stage, step, then as added), filtered.
pub(super) fn list_items(
    s: &ContentStore<'_>,
    workspace_id: i64,
    filter: &ItemFilter,
) -> StoreResult<ItemList> {
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
    let reader = s.reader()?;
    let conn = reader.snapshot()?;

    // Journey, stage and step each narrow the map to a range of steps.
    let mut range: Option<(i64, i64)> = None;
    let mut narrow = |found: Option<(i64, i64)>| {
        let (lo, hi) = found.unwrap_or((1, 0)); // no steps: an empty range
        range = Some(match range {
            Some((a, b)) => (a.max(lo), b.min(hi)),
            None => (lo, hi),
        });
    };
    let journey = match non_empty(&filter.journey) {
        Some(journey) => Some(find_journey(&conn, workspace_id, journey)?.id),
        None => None,
    };
    if let Some(journey) = &journey {
        narrow(map_range(
            &conn,
            "SELECT min(st.map_order) AS lo, max(st.map_order) AS hi FROM steps st
                 JOIN stages s ON s.id = st.stage_id WHERE s.journey_id = ?1",
            journey,
        )?);
    }
    let stage_id = non_empty(&filter.stage_id);
    if let Some(id) = stage_id {
        ensure_stage(&conn, workspace_id, id)?;
        narrow(map_range(
            &conn,
            "SELECT min(map_order) AS lo, max(map_order) AS hi FROM steps WHERE stage_id = ?1",
            id,
        )?);
    }
    let step_id = non_empty(&filter.step_id);
    if let Some(id) = step_id {
        ensure_step(&conn, workspace_id, id)?;
        narrow(map_range(
            &conn,
            "SELECT map_order AS lo, map_order AS hi FROM steps WHERE id = ?1",
            id,
        )?);
    }
    // A confined key's journeys: each a range of the map's order, one of which an item must
    // lie in (none at all: nothing to list).
    let mut within: Option<Vec<(i64, i64)>> = None;
    if let Some(journeys) = &filter.within_journeys {
        let mut ranges = Vec::new();
        for journey in journeys {
            ranges.extend(map_range(
                &conn,
                "SELECT min(st.map_order) AS lo, max(st.map_order) AS hi FROM steps st
                     JOIN stages s ON s.id = st.stage_id WHERE s.journey_id = ?1",
                journey,
            )?);
        }
        within = Some(ranges);
    }
    let owner = non_empty(&filter.owner);
    let properties = item_properties(&filter.priority, &filter.impact, &filter.effort)?;
    let include_archived = filter.include_archived.unwrap_or(false);
    let fingerprint = fingerprint(&[
        journey.as_deref().unwrap_or(""),
        stage_id.unwrap_or(""),
        step_id.unwrap_or(""),
        kind.map(ItemKind::as_str).unwrap_or(""),
        status.unwrap_or(""),
        &owner.map(str::to_lowercase).unwrap_or_default(),
        &format!("{properties:?} {include_archived} {:?}", filter.within_journeys),
    ]);
    let after = match non_empty(&filter.cursor) {
        Some(text) => Some(Cursor::decode(text, "items", fingerprint, 2)?.position),
        None => None,
    };

    // Only the filters given, so each query can use the index that fits it.
    let mut sql = format!(
        "SELECT {SUMMARY_COLUMNS}, {LOCATION_COLUMNS}, i.map_order, i.rowid FROM {ITEM_JOINS}
             WHERE i.workspace_id = ?1"
    );
    let mut values: Vec<DbValue> = vec![DbValue::Integer(workspace_id)];
    let mut condition = |sql_text: &str, value: DbValue, sql: &mut String| {
        values.push(value);
        sql.push_str(&sql_text.replace('#', &format!("?{}", values.len())));
    };
    if let Some((lo, hi)) = range {
        condition(" AND i.map_order >= #", DbValue::Integer(lo), &mut sql);
        condition(" AND i.map_order <= #", DbValue::Integer(hi), &mut sql);
    }
    if let Some(ranges) = &within {
        if ranges.is_empty() {
            sql.push_str(" AND 1 = 0");
        } else {
            for (n, (lo, hi)) in ranges.iter().enumerate() {
                sql.push_str(if n == 0 { " AND (" } else { " OR " });
                condition("(i.map_order >= #", DbValue::Integer(*lo), &mut sql);
                condition(" AND i.map_order <= #)", DbValue::Integer(*hi), &mut sql);
            }
            sql.push(')');
        }
    }
    if let Some(id) = step_id {
        condition(" AND i.step_id = #", DbValue::Text(id.to_owned()), &mut sql);
    }
    if let Some(kind) = kind {
        condition(" AND i.kind = #", DbValue::Text(kind.as_str().to_owned()), &mut sql);
    }
    if let Some(status) = status {
        condition(" AND i.status = #", DbValue::Text(status.to_owned()), &mut sql);
    }
    if let Some(owner) = owner {
        condition(" AND lower(i.owner) = lower(#)", DbValue::Text(owner.to_owned()), &mut sql);
    }
    for (column, value) in properties {
        // `column` is one of three names, never text from a request.
        let text = format!(" AND i.{column} = #");
        condition(&text, DbValue::Text(value.to_owned()), &mut sql);
    }
    if !include_archived {
        sql.push_str(" AND i.hidden = 0");
    }
    if let Some(after) = &after {
        condition(" AND (i.map_order > #", DbValue::Integer(after[0]), &mut sql);
        condition(" OR (i.map_order = #", DbValue::Integer(after[0]), &mut sql);
        condition(" AND i.rowid > #))", DbValue::Integer(after[1]), &mut sql);
    }
    condition(
        " ORDER BY i.map_order, i.rowid LIMIT #",
        DbValue::Integer(i64::from(limit) + 1),
        &mut sql,
    );
    let params: Vec<&dyn ToValue> = values.iter().map(|v| v as &dyn ToValue).collect();
    let rows = conn.query(&sql, params.as_slice())?;
    let items = rows
        .iter()
        .map(|row| {
            let item = ListedItem { item: item_summary_row(row)?, location: location_row(row)? };
            Ok((item, row.get::<i64>("map_order")?, row.get::<i64>("rowid")?))
        })
        .collect::<DbResult<Vec<_>>>()?;
    let page = paged(items, limit as usize, Budget::new(PAGE_BYTES), |(_, order, rowid)| {
        Cursor::new("items", fingerprint, vec![*order, *rowid])
    });
    Ok(ItemList {
        truncated: page.next.is_some(),
        next_cursor: page.next.map(|cursor| cursor.encode()),
        items: page.rows.into_iter().map(|(item, _, _)| item).collect(),
    })
}

/// An item in full, with one page of its comments (`comments_cursor`: the next one).
pub(super) fn get_item(
    s: &ContentStore<'_>,
    workspace_id: i64,
    item_id: &str,
    comments_cursor: Option<&str>,
) -> StoreResult<ItemDetail> {
    let reader = s.reader()?;
    let snapshot = reader.snapshot()?;
    item_detail(&snapshot, workspace_id, item_id, comments_cursor)
}

/// One page of the workspace's personas, oldest first.
pub(super) fn list_personas(
    s: &ContentStore<'_>,
    workspace_id: i64,
    cursor: Option<&str>,
) -> StoreResult<(Vec<Persona>, Option<String>)> {
    let after = position_after(cursor, "personas")?;
    let conn = s.reader()?;
    let rows = conn.query(
        "SELECT id, name, role, bio, job_to_be_done, goals, frustrations, rowid FROM personas
             WHERE workspace_id = ?1 AND rowid > ?2 ORDER BY rowid LIMIT ?3",
        params![workspace_id, after.1, LIST_PAGE + 1],
    )?;
    let personas = rows
        .iter()
        .map(|row| {
            let persona = Persona {
                id: row.get("id")?,
                name: row.get("name")?,
                role: row.get("role")?,
                bio: row.get("bio")?,
                job_to_be_done: row.get("job_to_be_done")?,
                goals: json_column(row, "goals")?,
                frustrations: json_column(row, "frustrations")?,
            };
            Ok((persona, 0, row.get::<i64>("rowid")?))
        })
        .collect::<DbResult<Vec<_>>>()?;
    Ok(page_of(personas, "personas"))
}

/// The priority, impact and effort filters given, checked: (column, value).
pub(super) fn item_properties<'a>(
    priority: &'a Option<String>,
    impact: &'a Option<String>,
    effort: &'a Option<String>,
) -> StoreResult<Vec<(&'static str, &'a str)>> {
    let mut given = Vec::new();
    for (column, value, allowed) in [
        ("priority", priority, &PRIORITIES[..]),
        ("impact", impact, &LEVELS[..]),
        ("effort", effort, &LEVELS[..]),
    ] {
        if let Some(value) = non_empty(value) {
            given.push((column, check_choice(column, value, allowed)?));
        }
    }
    Ok(given)
}

/// Where a page of a short list (journeys, personas: ordered by position and row) starts.
fn position_after(cursor: Option<&str>, list: &'static str) -> StoreResult<(i64, i64)> {
    match cursor.map(str::trim).filter(|c| !c.is_empty()) {
        Some(text) => {
            let position = Cursor::decode(text, list, 0, 2)?.position;
            Ok((position[0], position[1]))
        }
        None => Ok((i64::MIN, i64::MIN)),
    }
}

/// A page of `rows` (read with one more than [`LIST_PAGE`]), each with its place in the order.
fn page_of<T: Serialize>(rows: Vec<(T, i64, i64)>, list: &'static str) -> (Vec<T>, Option<String>) {
    let page = paged(rows, LIST_PAGE as usize, Budget::new(PAGE_BYTES), |(_, position, rowid)| {
        Cursor::new(list, 0, vec![*position, *rowid])
    });
    let next = page.next.map(|cursor| cursor.encode());
    (page.rows.into_iter().map(|(row, _, _)| row).collect(), next)
}

// ---------------------------------------------------------------------------------------------
// Queries and row mapping, shared with the writes.

/// An item's summary, as [`item_summary_row`] reads it.
pub(super) const SUMMARY_COLUMNS: &str =
    "i.id, i.kind, i.title, i.status, i.owner, i.priority, i.impact, i.effort, i.hidden";
/// Where an item is, as [`location_row`] reads it (from [`ITEM_JOINS`]).
pub(super) const LOCATION_COLUMNS: &str = "j.id AS journey_id, j.name AS journey_name, \
     s.id AS stage_id, s.name AS stage_name, st.id AS step_id, st.name AS step_name";
pub(super) const ITEM_JOINS: &str = "items i JOIN steps st ON st.id = i.step_id \
                          JOIN stages s ON s.id = st.stage_id JOIN journeys j ON j.id = s.journey_id";

/// An item's summary, from a row holding [`SUMMARY_COLUMNS`].
pub(super) fn item_summary_row(row: &Row) -> DbResult<ItemSummary> {
    Ok(ItemSummary {
        id: row.get("id")?,
        kind: text_enum(row, "kind", ItemKind::parse)?,
        title: row.get("title")?,
        status: row.get("status")?,
        owner: row.get("owner")?,
        priority: row.get("priority")?,
        impact: row.get("impact")?,
        effort: row.get("effort")?,
        archived: row.get::<i64>("hidden")? != 0,
    })
}

/// Where an item is, from a row holding [`LOCATION_COLUMNS`].
pub(super) fn location_row(row: &Row) -> DbResult<ItemLocation> {
    Ok(ItemLocation {
        journey_id: row.get("journey_id")?,
        journey: row.get("journey_name")?,
        stage_id: row.get("stage_id")?,
        stage: row.get("stage_name")?,
        step_id: row.get("step_id")?,
        step: row.get("step_name")?,
    })
}

/// A text column holding one of an enum's names.
pub(super) fn text_enum<T>(row: &Row, column: &str, parse: fn(&str) -> Option<T>) -> DbResult<T> {
    let text: String = row.get(column)?;
    parse(&text).ok_or_else(|| DbError::Decode {
        column: column.to_owned(),
        message: format!("unexpected value {text:?}"),
    })
}

/// A text column holding JSON.
pub(super) fn json_column<T: DeserializeOwned>(row: &Row, column: &str) -> DbResult<T> {
    let text: String = row.get(column)?;
    serde_json::from_str(&text).map_err(|e| DbError::Decode {
        column: column.to_owned(),
        message: format!("not the JSON expected: {e}"),
    })
}

pub(super) fn json_text(value: &impl Serialize) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Invalid(e.to_string()))
}

/// [`super::ContentStore::get_journey`] on `conn` (a snapshot, so the map is of one moment).
pub(super) fn journey_tree(
    conn: &Connection,
    workspace_id: i64,
    journey: &str,
    include_archived: bool,
) -> StoreResult<JourneyTree> {
    let mut tree = find_journey(conn, workspace_id, journey)?;
    let all = include_archived || tree.archived;
    tree.personas = journey_personas(conn, workspace_id, &tree.id)?;
    let stages = conn.query(
        &format!(
            "SELECT id, name, description, archived_at FROM stages
             WHERE workspace_id = ?1 AND journey_id = ?2 {}
             ORDER BY position, rowid",
            if all { "" } else { "AND archived_at IS NULL" }
        ),
        params![workspace_id, tree.id],
    )?;
    for row in &stages {
        tree.stages.push(StageNode {
            id: row.get("id")?,
            name: row.get("name")?,
            description: row.get("description")?,
            archived: row.get::<Option<i64>>("archived_at")?.is_some(),
            steps: Vec::new(),
        });
    }
    let steps = conn.query(
        &format!(
            "SELECT st.stage_id, st.id, st.name, st.description, st.item_count, st.archived_at
             FROM steps st JOIN stages s ON s.id = st.stage_id
             WHERE st.workspace_id = ?1 AND s.journey_id = ?2 {}
             ORDER BY st.map_order, st.rowid",
            if all { "" } else { "AND st.hidden = 0" }
        ),
        params![workspace_id, tree.id],
    )?;
    for row in &steps {
        let stage_id: String = row.get("stage_id")?;
        let step = StepNode {
            id: row.get("id")?,
            name: row.get("name")?,
            description: row.get("description")?,
            item_count: row.get("item_count")?,
            archived: row.get::<Option<i64>>("archived_at")?.is_some(),
            items: Vec::new(),
        };
        tree.items_total += step.item_count;
        if let Some(stage) = tree.stages.iter_mut().find(|s| s.id == stage_id) {
            stage.steps.push(step);
        }
    }
    // The first items of each step, in map order, until the map holds enough of them.
    let mut items_sql = conn.prepare_cached(&format!(
        "SELECT {SUMMARY_COLUMNS} FROM items i WHERE i.step_id = ?1 {}
         ORDER BY i.rowid LIMIT ?2",
        if all { "" } else { "AND i.archived_at IS NULL" }
    ))?;
    'steps: for stage in &mut tree.stages {
        for step in &mut stage.steps {
            let room = MAP_ITEMS_MAX - tree.items_shown;
            if room <= 0 {
                break 'steps;
            }
            if step.item_count == 0 && !all {
                continue;
            }
            let rows = items_sql
                .query_map(params![step.id, room.min(MAP_ITEMS_PER_STEP)], |row| {
                    item_summary_row(row)
                })?;
            step.items = rows.collect::<Result<_, _>>()?;
            tree.items_shown += i64::try_from(step.items.len()).unwrap_or(i64::MAX);
        }
    }
    fit_map(&mut tree);
    Ok(tree)
}

pub(super) fn find_journey(
    conn: &Connection,
    workspace_id: i64,
    journey: &str,
) -> StoreResult<JourneyTree> {
    let journey = journey.trim();
    conn.prepare_cached(
        "SELECT id, slug, name, description, archived_at FROM journeys
         WHERE workspace_id = ?1 AND (id = ?2 OR slug = ?2)",
    )?
    .query_row(params![workspace_id, journey], |row| {
        Ok(JourneyTree {
            id: row.get("id")?,
            slug: row.get("slug")?,
            name: row.get("name")?,
            description: row.get("description")?,
            archived: row.get::<Option<i64>>("archived_at")?.is_some(),
            personas: Vec::new(),
            stages: Vec::new(),
            items_total: 0,
            items_shown: 0,
            note: None,
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

/// The personas linked to a journey, in the order they were linked.
pub(super) fn journey_personas(
    conn: &Connection,
    workspace_id: i64,
    journey_id: &str,
) -> StoreResult<Vec<PersonaRef>> {
    let rows = conn.query(
        "SELECT p.id, p.name, p.role FROM journey_personas jp JOIN personas p ON p.id = jp.persona_id
         WHERE jp.workspace_id = ?1 AND jp.journey_id = ?2 ORDER BY jp.rowid",
        params![workspace_id, journey_id],
    )?;
    rows.iter()
        .map(|row| {
            Ok(PersonaRef { id: row.get("id")?, name: row.get("name")?, role: row.get("role")? })
        })
        .collect()
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
    .query_row(params![workspace_id, id], item_summary_row)
    .optional()?
    .ok_or_else(|| not_found_item(id))
}

pub(super) fn item_detail(
    conn: &Connection,
    workspace_id: i64,
    id: &str,
    comments_cursor: Option<&str>,
) -> StoreResult<ItemDetail> {
    let id = id.trim();
    let mut item = conn
        .prepare_cached(&format!(
            "SELECT {SUMMARY_COLUMNS}, {LOCATION_COLUMNS}, i.description, i.fields, i.created_at,
                    i.updated_at,
                    (SELECT count(*) FROM item_links l WHERE l.workspace_id = i.workspace_id
                     AND l.from_item = i.id) AS links_to,
                    (SELECT count(*) FROM item_links l WHERE l.workspace_id = i.workspace_id
                     AND l.to_item = i.id) AS linked_from,
                    (SELECT count(*) FROM comments c WHERE c.item_id = i.id) AS comments
             FROM {ITEM_JOINS} WHERE i.workspace_id = ?1 AND i.id = ?2"
        ))?
        .query_row(params![workspace_id, id], |row| {
            Ok(ItemDetail {
                item: item_summary_row(row)?,
                location: location_row(row)?,
                description: row.get("description")?,
                fields: json_column(row, "fields")?,
                created_at: from_secs(row.get("created_at")?),
                updated_at: from_secs(row.get("updated_at")?),
                links_to: Vec::new(),
                links_to_total: row.get("links_to")?,
                linked_from: Vec::new(),
                linked_from_total: row.get("linked_from")?,
                comments: Vec::new(),
                comments_total: row.get("comments")?,
                comments_next_cursor: None,
            })
        })
        .optional()?
        .ok_or_else(|| not_found_item(id))?;
    item.links_to = linked_items(
        conn,
        &format!(
            "SELECT {SUMMARY_COLUMNS} FROM item_links l JOIN items i ON i.id = l.to_item
             WHERE l.workspace_id = ?1 AND l.from_item = ?2 ORDER BY l.rowid LIMIT ?3"
        ),
        workspace_id,
        id,
        LINKS_SHOWN,
    )?;
    item.linked_from = linked_items(
        conn,
        &format!(
            "SELECT {SUMMARY_COLUMNS} FROM item_links l JOIN items i ON i.id = l.from_item
             WHERE l.workspace_id = ?1 AND l.to_item = ?2 ORDER BY l.rowid LIMIT ?3"
        ),
        workspace_id,
        id,
        LINKS_SHOWN,
    )?;
    // Comments a page at a time: their bodies are long, so the page is bounded in bytes too.
    let fingerprint = fingerprint(&[id]);
    let after = match comments_cursor.map(str::trim).filter(|c| !c.is_empty()) {
        Some(text) => Cursor::decode(text, "comments", fingerprint, 1)?.position[0],
        None => 0,
    };
    let rows = conn.query(
        "SELECT id, author, body, created_at, rowid FROM comments
         WHERE workspace_id = ?1 AND item_id = ?2 AND rowid > ?3 ORDER BY rowid LIMIT ?4",
        params![workspace_id, id, after, COMMENTS_PAGE + 1],
    )?;
    let comments = rows
        .iter()
        .map(|row| {
            let comment = Comment {
                id: row.get("id")?,
                author: row.get("author")?,
                body: row.get("body")?,
                created_at: from_secs(row.get("created_at")?),
            };
            Ok((comment, row.get::<i64>("rowid")?))
        })
        .collect::<DbResult<Vec<_>>>()?;
    let budget = Budget::new(COMMENTS_BYTES);
    let page = paged(comments, COMMENTS_PAGE as usize, budget, |(_, rowid)| {
        Cursor::new("comments", fingerprint, vec![*rowid])
    });
    item.comments = page.rows.into_iter().map(|(comment, _)| comment).collect();
    item.comments_next_cursor = page.next.map(|cursor| cursor.encode());
    Ok(item)
}

/// The first `limit` linked items (`sql` takes the workspace, the item and the limit).
pub(super) fn linked_items(
    conn: &Connection,
    sql: &str,
    workspace_id: i64,
    id: &str,
    limit: i64,
) -> StoreResult<Vec<ItemSummary>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params![workspace_id, id, limit], item_summary_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The map orders (first, last) of the steps `sql` selects for `id`; `None` when it has none.
fn map_range(conn: &Connection, sql: &str, id: &str) -> StoreResult<Option<(i64, i64)>> {
    let (lo, hi) =
        conn.query_row(sql, [id], |row| Ok((row.get::<Option<i64>>("lo")?, row.get("hi")?)))?;
    Ok(lo.zip(hi))
}

/// Keeps a journey's map within [`MAP_BYTES`]: long descriptions are shortened first, then
/// item summaries are left out from the end, then steps; `note` says what is missing.
fn fit_map(tree: &mut JourneyTree) {
    let size = |tree: &JourneyTree| serde_json::to_vec(tree).map_or(usize::MAX, |b| b.len());
    let mut notes = Vec::new();
    if tree.items_shown < tree.items_total {
        notes.push(format!(
            "{} of the journey's {} items are shown (at most {MAP_ITEMS_PER_STEP} per step); \
             list_items with step_id (or journey) pages through the rest",
            tree.items_shown, tree.items_total
        ));
    }
    if size(tree) > MAP_BYTES {
        let shorten = |text: &mut String| {
            if text.chars().count() > MAP_DESCRIPTION_CHARS {
                *text = text.chars().take(MAP_DESCRIPTION_CHARS).collect::<String>() + "…";
            }
        };
        for stage in &mut tree.stages {
            shorten(&mut stage.description);
            stage.steps.iter_mut().for_each(|step| shorten(&mut step.description));
        }
        notes.push(format!(
            "stage and step descriptions are cut to {MAP_DESCRIPTION_CHARS} characters; search \
             finds text in them"
        ));
    }
    while size(tree) > MAP_BYTES {
        let last = tree
            .stages
            .iter_mut()
            .flat_map(|stage| stage.steps.iter_mut())
            .rev()
            .find(|step| !step.items.is_empty());
        match last {
            Some(step) => {
                tree.items_shown -= i64::try_from(step.items.len()).unwrap_or(0);
                step.items.clear();
            }
            None => break,
        }
    }
    let mut dropped = 0;
    while size(tree) > MAP_BYTES {
        let Some(stage) = tree.stages.iter_mut().rev().find(|s| !s.steps.is_empty()) else { break };
        stage.steps.pop();
        dropped += 1;
    }
    if dropped > 0 {
        notes.push(format!("the last {dropped} steps are left out: the map is too large"));
    }
    tree.note = (!notes.is_empty()).then(|| notes.join("; "));
}

pub(super) fn ensure_stage(conn: &Connection, workspace_id: i64, id: &str) -> StoreResult<()> {
    let sql = "SELECT 1 FROM stages WHERE workspace_id = ?1 AND id = ?2";
    if conn.prepare_cached(sql)?.exists(params![workspace_id, id])? {
        return Ok(());
    }
    Err(not_found_stage(id))
}

pub(super) fn ensure_step(conn: &Connection, workspace_id: i64, id: &str) -> StoreResult<()> {
    let sql = "SELECT 1 FROM steps WHERE workspace_id = ?1 AND id = ?2";
    if conn.prepare_cached(sql)?.exists(params![workspace_id, id])? {
        return Ok(());
    }
    Err(not_found_step(id))
}

pub(super) fn not_found_stage(id: &str) -> StoreError {
    StoreError::NotFound(format!(
        "no stage with id {id:?} in this workspace; get_journey lists a journey's stages (stg_…)"
    ))
}

pub(super) fn not_found_step(id: &str) -> StoreError {
    StoreError::NotFound(format!(
        "no step with id {id:?} in this workspace; get_journey lists a journey's steps (stp_…)"
    ))
}

pub(super) fn not_found_item(id: &str) -> StoreError {
    StoreError::NotFound(format!(
        "no item with id {id:?} in this workspace; search or list_items give item ids (itm_…)"
    ))
}
