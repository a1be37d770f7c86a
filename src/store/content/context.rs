//! What MCP resources and prompts read beyond the tools' reads: a journey's map with the links
//! of the items it shows, what changed in a journey since a moment, and the names that begin
//! with what someone has typed (argument completion). Confined to the caller's workspace and
//! bounded, like every read.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::ContentStore;
use super::model::{Comment, ItemSummary, JourneyTree, ListedItem};
use super::reads::{
    ITEM_JOINS, LOCATION_COLUMNS, SUMMARY_COLUMNS, find_journey, item_summary_row, journey_tree,
    linked_items, location_row,
};
use crate::store::db::{DbResult, params};
use crate::store::{StoreResult, from_secs};

/// The steps of journey `?2`: what the change queries keep, while they walk the workspace's
/// items (or comments) newest first along an index and stop at their limit.
const JOURNEY_STEPS: &str = "SELECT st.id FROM steps st JOIN stages s ON s.id = st.stage_id
     WHERE s.journey_id = ?2 AND st.workspace_id = ?1";

/// The links a map shows under each item; one more is read, to say when there are more.
pub const MAP_LINKS_SHOWN: usize = 10;
/// At most this many changed items, and comments, are listed.
pub const CHANGES_MAX: i64 = 100;
/// At most this many names are offered for one completion.
pub const COMPLETIONS_MAX: i64 = 100;

/// A journey's map ([`super::ContentStore::get_journey`]'s bounds) and where its shown items link to.
#[derive(Debug)]
pub struct JourneyMap {
    pub tree: JourneyTree,
    /// Per shown item id, the first items it links to.
    pub links: HashMap<String, Vec<ItemSummary>>,
}

/// What changed in a journey since a moment, newest first.
#[derive(Debug)]
pub struct JourneyChanges {
    pub journey_id: String,
    pub journey_slug: String,
    pub journey_name: String,
    pub items: Vec<ChangedItem>,
    /// True when more items changed than are listed.
    pub items_more: bool,
    pub comments: Vec<(ItemSummary, Comment)>,
    pub comments_more: bool,
}

#[derive(Debug)]
pub struct ChangedItem {
    pub item: ListedItem,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a completion completes.
#[derive(Debug, Clone, Copy)]
pub enum Completing<'a> {
    /// Journey slugs (matched on slug or name).
    Journey,
    /// Stage names, within a journey (id or slug) when one is given.
    Stage { journey: Option<&'a str> },
    /// Step names, within a journey and a stage (id or name) when given.
    Step { journey: Option<&'a str>, stage: Option<&'a str> },
}

/// A journey's map, as `get_journey` shows it (archived things aside), with the first links
/// of each item shown.
pub(super) fn journey_map(
    s: &ContentStore<'_>,
    workspace_id: i64,
    journey: &str,
) -> StoreResult<JourneyMap> {
    let reader = s.reader()?;
    let conn = reader.snapshot()?;
    let tree = journey_tree(&conn, workspace_id, journey, false)?;
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS} FROM item_links l JOIN items i ON i.id = l.to_item
             WHERE l.workspace_id = ?1 AND l.from_item = ?2 ORDER BY l.rowid LIMIT ?3"
    );
    let mut links = HashMap::new();
    for item in tree.stages.iter().flat_map(|s| &s.steps).flat_map(|st| &st.items) {
        let to = linked_items(&conn, &sql, workspace_id, &item.id, MAP_LINKS_SHOWN as i64 + 1)?;
        if !to.is_empty() {
            links.insert(item.id.clone(), to);
        }
    }
    Ok(JourneyMap { tree, links })
}

/// Items of a journey added or changed since `since`, and comments added to its items
/// since then: at most [`CHANGES_MAX`] of each, newest first.
pub(super) fn journey_changes(
    s: &ContentStore<'_>,
    workspace_id: i64,
    journey: &str,
    since: DateTime<Utc>,
) -> StoreResult<JourneyChanges> {
    let reader = s.reader()?;
    let conn = reader.snapshot()?;
    let found = find_journey(&conn, workspace_id, journey)?;
    let since = since.timestamp();
    let rows = conn.query(
        &format!(
            "SELECT {SUMMARY_COLUMNS}, {LOCATION_COLUMNS}, i.created_at, i.updated_at
                 FROM {ITEM_JOINS}
                 WHERE i.workspace_id = ?1 AND i.updated_at >= ?3
                   AND i.step_id IN ({JOURNEY_STEPS})
                 ORDER BY i.updated_at DESC, i.rowid DESC LIMIT ?4"
        ),
        params![workspace_id, found.id, since, CHANGES_MAX + 1],
    )?;
    let mut items = rows
        .iter()
        .map(|row| {
            Ok(ChangedItem {
                item: ListedItem { item: item_summary_row(row)?, location: location_row(row)? },
                created_at: from_secs(row.get("created_at")?),
                updated_at: from_secs(row.get("updated_at")?),
            })
        })
        .collect::<DbResult<Vec<_>>>()?;
    let items_more = cut(&mut items, CHANGES_MAX);
    let rows = conn.query(
        &format!(
            "SELECT {SUMMARY_COLUMNS}, c.id AS comment_id, c.author, c.body, c.created_at
                 FROM comments c JOIN items i ON i.id = c.item_id
                 WHERE c.workspace_id = ?1 AND c.created_at >= ?3
                   AND i.step_id IN ({JOURNEY_STEPS})
                 ORDER BY c.created_at DESC, c.rowid DESC LIMIT ?4"
        ),
        params![workspace_id, found.id, since, CHANGES_MAX + 1],
    )?;
    let mut comments = rows
        .iter()
        .map(|row| {
            let comment = Comment {
                id: row.get("comment_id")?,
                author: row.get("author")?,
                body: row.get("body")?,
                created_at: from_secs(row.get("created_at")?),
            };
            Ok((item_summary_row(row)?, comment))
        })
        .collect::<DbResult<Vec<_>>>()?;
    let comments_more = cut(&mut comments, CHANGES_MAX);
    Ok(JourneyChanges {
        journey_id: found.id,
        journey_slug: found.slug,
        journey_name: found.name,
        items,
        items_more,
        comments,
        comments_more,
    })
}

/// Up to `limit` (at most [`COMPLETIONS_MAX`]) names of what `completing` names that begin
/// with `typed` (case aside; for journeys, the slug or the name), in map order, and whether
/// there are more. Archived things are not offered.
pub(super) fn complete(
    s: &ContentStore<'_>,
    workspace_id: i64,
    completing: Completing<'_>,
    typed: &str,
) -> StoreResult<(Vec<String>, bool)> {
    let conn = s.reader()?;
    let pattern = format!("{}%", like_escaped(&typed.to_ascii_lowercase()));
    let limit = COMPLETIONS_MAX + 1;
    let rows = match completing {
        Completing::Journey => conn.query(
            "SELECT slug AS label FROM journeys WHERE workspace_id = ?1 AND archived_at IS NULL
                   AND (lower(slug) LIKE ?2 ESCAPE '\\' OR lower(name) LIKE ?2 ESCAPE '\\')
                 ORDER BY position, rowid LIMIT ?3",
            params![workspace_id, pattern, limit],
        )?,
        Completing::Stage { journey } => {
            let journey = journey.map(str::trim).unwrap_or_default();
            conn.query(
                "SELECT s.name AS label FROM stages s JOIN journeys j ON j.id = s.journey_id
                     WHERE s.workspace_id = ?1 AND s.archived_at IS NULL
                       AND j.archived_at IS NULL AND lower(s.name) LIKE ?2 ESCAPE '\\'
                       AND (?3 = '' OR j.id = ?3 OR j.slug = ?3)
                     GROUP BY s.name ORDER BY min(j.position), min(s.position) LIMIT ?4",
                params![workspace_id, pattern, journey, limit],
            )?
        }
        Completing::Step { journey, stage } => {
            let journey = journey.map(str::trim).unwrap_or_default();
            let stage = stage.map(str::trim).unwrap_or_default();
            conn.query(
                "SELECT st.name AS label FROM steps st JOIN stages s ON s.id = st.stage_id
                       JOIN journeys j ON j.id = s.journey_id
                     WHERE st.workspace_id = ?1 AND st.hidden = 0
                       AND lower(st.name) LIKE ?2 ESCAPE '\\'
                       AND (?3 = '' OR j.id = ?3 OR j.slug = ?3)
                       AND (?4 = '' OR s.id = ?4 OR lower(s.name) = lower(?4))
                     GROUP BY st.name ORDER BY min(st.map_order) LIMIT ?5",
                params![workspace_id, pattern, journey, stage, limit],
            )?
        }
    };
    let mut names =
        rows.iter().map(|row| row.get::<String>("label")).collect::<DbResult<Vec<String>>>()?;
    let more = cut(&mut names, COMPLETIONS_MAX);
    Ok((names, more))
}

/// Keeps the first `keep` rows; true when there were more (each query reads one more than it
/// keeps).
fn cut<T>(rows: &mut Vec<T>, keep: i64) -> bool {
    let keep = usize::try_from(keep).unwrap_or(usize::MAX);
    let more = rows.len() > keep;
    rows.truncate(keep);
    more
}

/// `text` with LIKE's wildcards (and the escape character) escaped by `\`.
fn like_escaped(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}
