//! The customer-journey domain: journeys, stages, steps, items, links, comments, personas.
//!
//! Every method takes the caller's workspace id and never reads or writes outside it: an id that
//! belongs to another workspace behaves exactly like an unknown id. Write methods record a
//! `tool.called` audit event in the same transaction as the change.

use std::fmt;

use super::db::{
    Connection, DbError, DbResult, OptionalExtension as _, Row, ToValue, Transaction,
    Value as DbValue, params,
};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Map, Value};

use super::audit::{NewEvent, insert_event};
use super::{Store, StoreError, StoreResult, from_secs, new_id};

const TITLE_MAX: usize = 200;
const DESCRIPTION_MAX: usize = 10_000;
const NAME_MAX: usize = 100;
const FIELD_VALUE_MAX: usize = 500;
const QUERY_MAX: usize = 200;
const QUERY_TERMS_MAX: usize = 8;
const SNIPPET_CHARS: usize = 160;
const ITEMS_LIMIT: (u32, u32) = (50, 200);
const SEARCH_LIMIT: (u32, u32) = (20, 100);

// ---------------------------------------------------------------------------------------------
// Vocabulary: kinds, their statuses and fields, and the link directions.

/// The five kinds of item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ItemKind {
    Touchpoint,
    Insight,
    Opportunity,
    Solution,
    Metric,
}

/// The only directions a link may take, from cause to effect.
pub const LINK_DIRECTIONS: [(ItemKind, ItemKind); 5] = [
    (ItemKind::Touchpoint, ItemKind::Insight),
    (ItemKind::Insight, ItemKind::Opportunity),
    (ItemKind::Opportunity, ItemKind::Solution),
    (ItemKind::Opportunity, ItemKind::Metric),
    (ItemKind::Solution, ItemKind::Metric),
];

impl ItemKind {
    pub const ALL: [ItemKind; 5] =
        [Self::Touchpoint, Self::Insight, Self::Opportunity, Self::Solution, Self::Metric];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Touchpoint => "touchpoint",
            Self::Insight => "insight",
            Self::Opportunity => "opportunity",
            Self::Solution => "solution",
            Self::Metric => "metric",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The statuses an item of this kind can have. The first is the default for a new item;
    /// `archived` retires an item of any kind.
    pub fn statuses(self) -> &'static [&'static str] {
        match self {
            Self::Touchpoint | Self::Insight => &["draft", "validated", "archived"],
            Self::Opportunity => &["open", "in-progress", "done", "archived"],
            Self::Solution => &["idea", "planned", "building", "shipped", "archived"],
            Self::Metric => &["tracking", "on-track", "at-risk", "archived"],
        }
    }

    pub fn default_status(self) -> &'static str {
        self.statuses()[0]
    }

    /// The names an item of this kind may use in its kind-specific `fields`.
    pub fn field_names(self) -> &'static [&'static str] {
        match self {
            Self::Touchpoint => &["channel", "actor"],
            Self::Insight => &["type", "confidence", "severity", "segment"],
            Self::Opportunity => &["impact", "effort", "priority", "confidence"],
            Self::Solution => &["solution_type", "impact", "effort", "priority", "target_date"],
            Self::Metric => &["metric_type", "unit", "baseline", "current", "target", "direction"],
        }
    }

    /// Whether an item of this kind may link to an item of kind `to`.
    pub fn can_link_to(self, to: ItemKind) -> bool {
        LINK_DIRECTIONS.contains(&(self, to))
    }
}

impl fmt::Display for ItemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line per kind for messages and tool descriptions, e.g. with [`ItemKind::statuses`]:
/// `touchpoint: draft, validated, archived; insight: …`.
pub fn per_kind_text(list: fn(ItemKind) -> &'static [&'static str]) -> String {
    ItemKind::ALL
        .iter()
        .map(|kind| format!("{kind}: {}", list(*kind).join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// `touchpoint → insight, insight → opportunity, …`
pub fn link_directions_text() -> String {
    LINK_DIRECTIONS.iter().map(|(from, to)| format!("{from} → {to}")).collect::<Vec<_>>().join(", ")
}

// ---------------------------------------------------------------------------------------------
// What the domain methods return. Each serializes exactly as its JSON Schema says (an `Option`
// is a required, nullable property), so tool results validate against their output schemas.

/// A workspace at a glance.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct WorkspaceSummary {
    pub name: String,
    pub slug: String,
    /// Number of journeys.
    pub journeys: i64,
    /// Number of personas.
    pub personas: i64,
    pub items: ItemCounts,
}

/// Item counts, in total and per kind.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct ItemCounts {
    pub total: i64,
    pub touchpoint: i64,
    pub insight: i64,
    pub opportunity: i64,
    pub solution: i64,
    pub metric: i64,
}

/// A journey with the size of its map.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct JourneySummary {
    /// Journey id (`jrn_…`).
    pub id: String,
    pub slug: String,
    pub name: String,
    pub description: String,
    pub stages: i64,
    pub steps: i64,
    pub items: i64,
}

/// A journey's map: stages in order, their steps in order, the items on each step.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct JourneyTree {
    /// Journey id (`jrn_…`).
    pub id: String,
    pub slug: String,
    pub name: String,
    pub description: String,
    pub stages: Vec<StageNode>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct StageNode {
    /// Stage id (`stg_…`).
    pub id: String,
    pub name: String,
    pub description: String,
    pub steps: Vec<StepNode>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct StepNode {
    /// Step id (`stp_…`): where `create_item` puts new items.
    pub id: String,
    pub name: String,
    pub description: String,
    pub items: Vec<ItemSummary>,
}

/// The short form of an item.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ItemSummary {
    /// Item id (`itm_…`).
    pub id: String,
    pub kind: ItemKind,
    pub title: String,
    pub status: String,
    pub owner: Option<String>,
}

/// Where an item sits on the journey map.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ItemLocation {
    pub journey_id: String,
    /// The journey's name.
    pub journey: String,
    pub stage_id: String,
    /// The stage's name.
    pub stage: String,
    pub step_id: String,
    /// The step's name.
    pub step: String,
}

/// An item summary with its place on the map.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ListedItem {
    #[serde(flatten)]
    pub item: ItemSummary,
    #[serde(flatten)]
    pub location: ItemLocation,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ItemList {
    pub items: Vec<ListedItem>,
    /// True when more items match than were returned: raise `limit` or narrow the filters.
    pub truncated: bool,
}

/// An item in full.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ItemDetail {
    #[serde(flatten)]
    pub item: ItemSummary,
    pub description: String,
    /// Kind-specific fields (e.g. a metric's unit, baseline, current, target).
    pub fields: Map<String, Value>,
    #[serde(flatten)]
    pub location: ItemLocation,
    #[schemars(with = "String")]
    pub created_at: DateTime<Utc>,
    #[schemars(with = "String")]
    pub updated_at: DateTime<Utc>,
    /// Items this item links to (its effects).
    pub links_to: Vec<ItemSummary>,
    /// Items that link to this item (its causes).
    pub linked_from: Vec<ItemSummary>,
    /// Oldest first.
    pub comments: Vec<Comment>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Comment {
    /// Comment id (`cmt_…`).
    pub id: String,
    pub author: String,
    pub body: String,
    #[schemars(with = "String")]
    pub created_at: DateTime<Utc>,
}

/// A comment and the item it was added to.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ItemComment {
    pub item: ItemSummary,
    pub comment: Comment,
}

/// Two linked items.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ItemLink {
    pub from: ItemSummary,
    pub to: ItemSummary,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HitType {
    Item,
    Step,
    Stage,
    Persona,
}

impl HitType {
    fn parse(s: &str) -> Option<Self> {
        [Self::Item, Self::Step, Self::Stage, Self::Persona].into_iter().find(|t| t.as_str() == s)
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Item => "item",
            Self::Step => "step",
            Self::Stage => "stage",
            Self::Persona => "persona",
        }
    }
}

/// One search result.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SearchHit {
    /// What was found; its id has the matching prefix (`itm_`, `stp_`, `stg_`, `per_`).
    #[serde(rename = "type")]
    pub hit_type: HitType,
    pub id: String,
    /// The item's title, or the step's, stage's or persona's name.
    pub title: String,
    /// Text around the first match in the description (or bio).
    pub snippet: String,
    /// Where it is: `journey › stage › step` for items, shorter for steps and stages, the role
    /// for personas.
    pub context: String,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Persona {
    /// Persona id (`per_…`).
    pub id: String,
    pub name: String,
    pub role: String,
    pub bio: String,
    pub job_to_be_done: String,
    pub goals: Vec<String>,
    pub frustrations: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// What the write and filter methods take. These are also the MCP tools' arguments, so their
// doc comments are what an agent reads in the input schema.

/// Filters for listing items; all optional and combined with AND.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemFilter {
    /// Only items of this journey: its id (`jrn_…`) or slug (e.g. `trial-to-paid`).
    pub journey: Option<String>,
    /// Only items of this stage (`stg_…`).
    pub stage_id: Option<String>,
    /// Only items on this step (`stp_…`).
    pub step_id: Option<String>,
    /// Only items of this kind.
    pub kind: Option<ItemKind>,
    /// Only items with this status (e.g. `open`, `validated`).
    pub status: Option<String>,
    /// Only items with this owner (exact name, case-insensitive).
    pub owner: Option<String>,
    /// How many items to return: default 50, at most 200.
    #[schemars(range(min = 1, max = 200))]
    pub limit: Option<u32>,
}

/// A new item.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewItem {
    /// The step (`stp_…`) the item goes on; `get_journey` lists a journey's steps.
    pub step_id: String,
    pub kind: ItemKind,
    /// A short title, at most 200 characters.
    pub title: String,
    pub description: Option<String>,
    /// One of the kind's statuses; defaults to the kind's first status.
    pub status: Option<String>,
    /// Who owns the item (a person's name).
    pub owner: Option<String>,
    /// Kind-specific fields; values are strings, numbers or booleans.
    pub fields: Option<Map<String, Value>>,
}

/// A partial update of an item: only the properties given change.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemUpdate {
    /// The item (`itm_…`) to update.
    pub item_id: String,
    pub title: Option<String>,
    pub description: Option<String>,
    /// One of the statuses of the item's kind.
    pub status: Option<String>,
    /// The new owner; an empty string clears it.
    pub owner: Option<String>,
    /// Merged into the item's fields: given names are set, a null value removes that field.
    pub fields: Option<Map<String, Value>>,
}

/// A persona to insert (the demo seed uses this).
#[derive(Debug, Clone, Copy)]
pub struct NewPersona<'a> {
    pub name: &'a str,
    pub role: &'a str,
    pub bio: &'a str,
    pub job_to_be_done: &'a str,
    pub goals: &'a [&'a str],
    pub frustrations: &'a [&'a str],
}

/// Who makes a change, for the audit trail: the MCP key that called the tool.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub key_id: &'a str,
    pub key_prefix: &'a str,
}

// ---------------------------------------------------------------------------------------------
// Reads.

impl Store {
    pub fn workspace_summary(&self, workspace_id: i64) -> StoreResult<WorkspaceSummary> {
        let conn = self.conn();
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
        let conn = self.conn();
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
        let conn = self.conn();
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
        let conn = self.conn();
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
        item_detail(&self.conn(), workspace_id, item_id)
    }

    /// Case-insensitive text search; every word of `query` must match. Items come first, then
    /// steps, stages and personas; hits whose title matches rank above the rest.
    pub fn search(
        &self,
        workspace_id: i64,
        query: &str,
        limit: Option<u32>,
    ) -> StoreResult<Vec<SearchHit>> {
        let query = query.trim();
        if query.chars().count() > QUERY_MAX {
            return Err(StoreError::Invalid(format!(
                "the search query is too long (at most {QUERY_MAX} characters); use a few words"
            )));
        }
        let terms: Vec<&str> = query.split_whitespace().take(QUERY_TERMS_MAX).collect();
        if terms.is_empty() {
            return Err(StoreError::Invalid(
                "the search query is empty; give one or more words to look for".into(),
            ));
        }
        let patterns: Vec<String> =
            terms.iter().map(|t| format!("%{}%", escape_like(&t.to_lowercase()))).collect();
        let limit = clamp_limit(limit, SEARCH_LIMIT);
        let mut values = vec![DbValue::Integer(workspace_id), DbValue::Integer(limit.into())];
        values.extend(patterns.into_iter().map(DbValue::Text));
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&search_sql(terms.len()))?;
        let values: Vec<&dyn ToValue> = values.iter().map(|v| v as &dyn ToValue).collect();
        let rows = stmt.query_map(values.as_slice(), |row| {
            let body: String = row.get(3)?;
            Ok(SearchHit {
                hit_type: text_enum(row, 0, HitType::parse)?,
                id: row.get(1)?,
                title: row.get(2)?,
                snippet: snippet(&body, &terms),
                context: row.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn list_personas(&self, workspace_id: i64) -> StoreResult<Vec<Persona>> {
        let conn = self.conn();
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
// Writes.

impl Store {
    pub fn create_item(
        &self,
        workspace_id: i64,
        actor: Actor<'_>,
        new: &NewItem,
    ) -> StoreResult<ItemDetail> {
        self.write(workspace_id, actor, |tx, now| {
            let id = insert_item(tx, workspace_id, new, now)?;
            let item = item_detail(tx, workspace_id, &id)?;
            let detail = format!("create_item {id} {:?}", item.item.title);
            Ok((item, detail))
        })
    }

    pub fn update_item(
        &self,
        workspace_id: i64,
        actor: Actor<'_>,
        update: &ItemUpdate,
    ) -> StoreResult<ItemDetail> {
        self.write(workspace_id, actor, |tx, now| {
            let id = update.item_id.trim();
            let (kind, mut title, mut description, mut status, mut owner, fields) = tx
                .prepare_cached(
                    "SELECT kind, title, description, status, owner, fields FROM items
                     WHERE workspace_id = ?1 AND id = ?2",
                )?
                .query_row(params![workspace_id, id], |row| {
                    Ok((
                        text_enum(row, 0, ItemKind::parse)?,
                        row.get::<String>(1)?,
                        row.get::<String>(2)?,
                        row.get::<String>(3)?,
                        row.get::<Option<String>>(4)?,
                        json_column::<Map<String, Value>>(row, 5)?,
                    ))
                })
                .optional()?
                .ok_or_else(|| not_found_item(id))?;
            let mut changed = Vec::new();
            if let Some(value) = &update.title {
                title = required_text("title", value, TITLE_MAX)?;
                changed.push("title");
            }
            if let Some(value) = &update.description {
                description = clean_text("description", value, DESCRIPTION_MAX, true)?;
                changed.push("description");
            }
            if let Some(value) = &update.status {
                status = check_status(kind, value)?;
                changed.push("status");
            }
            if let Some(value) = &update.owner {
                owner = optional_text("owner", value)?;
                changed.push("owner");
            }
            let fields = match &update.fields {
                Some(patch) => {
                    changed.push("fields");
                    merge_fields(kind, fields, patch)?
                }
                None => fields,
            };
            if changed.is_empty() {
                return Err(StoreError::Invalid(
                    "nothing to update: give at least one of title, description, status, owner, \
                     fields"
                        .into(),
                ));
            }
            tx.prepare_cached(
                "UPDATE items SET title = ?3, description = ?4, status = ?5, owner = ?6,
                                  fields = ?7, updated_at = ?8
                 WHERE workspace_id = ?1 AND id = ?2",
            )?
            .execute(params![
                workspace_id,
                id,
                title,
                description,
                status,
                owner,
                json_text(&fields)?,
                now
            ])?;
            let detail = format!("update_item {id} {title:?}: {}", changed.join(", "));
            Ok((item_detail(tx, workspace_id, id)?, detail))
        })
    }

    /// Links `from_id` to `to_id` (cause → effect) in one of the five allowed directions.
    pub fn link_items(
        &self,
        workspace_id: i64,
        actor: Actor<'_>,
        from_id: &str,
        to_id: &str,
    ) -> StoreResult<ItemLink> {
        self.write(workspace_id, actor, |tx, now| {
            let link = insert_link(tx, workspace_id, from_id, to_id, now)?;
            let detail = format!(
                "link_items {} {:?} → {} {:?}",
                link.from.id, link.from.title, link.to.id, link.to.title
            );
            Ok((link, detail))
        })
    }

    pub fn add_comment(
        &self,
        workspace_id: i64,
        actor: Actor<'_>,
        item_id: &str,
        author: &str,
        body: &str,
    ) -> StoreResult<ItemComment> {
        self.write(workspace_id, actor, |tx, now| {
            let item = item_summary(tx, workspace_id, item_id)?;
            let comment = insert_comment(tx, workspace_id, &item.id, author, body, now)?;
            let detail = format!("add_comment {} on {} {:?}", comment.id, item.id, item.title);
            Ok((ItemComment { item, comment }, detail))
        })
    }

    /// Runs `change` in a transaction and records it as a `tool.called` audit event, with the
    /// detail `change` returns, in the same transaction.
    fn write<T>(
        &self,
        workspace_id: i64,
        actor: Actor<'_>,
        change: impl FnOnce(&Transaction<'_, '_>, i64) -> StoreResult<(T, String)>,
    ) -> StoreResult<T> {
        let now = self.now().timestamp();
        let conn = self.conn();
        let tx = conn.transaction()?;
        let (value, detail) = change(&tx, now)?;
        insert_event(
            &tx,
            now,
            &NewEvent {
                workspace_id,
                kind: "tool.called",
                key_id: Some(actor.key_id),
                key_prefix: Some(actor.key_prefix),
                detail: &detail,
            },
        )?;
        tx.commit()?;
        Ok(value)
    }
}

// ---------------------------------------------------------------------------------------------
// Inserts, shared by the write methods and the demo seed. Each checks what it is given, so the
// seed obeys the same rules as an MCP client.

pub(super) fn insert_journey(
    conn: &Connection,
    workspace_id: i64,
    slug: &str,
    name: &str,
    description: &str,
    position: i64,
    now: i64,
) -> StoreResult<String> {
    let id = new_id("jrn");
    conn.prepare_cached(
        "INSERT INTO journeys (id, workspace_id, slug, name, description, position, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![id, workspace_id, slug, name, description, position, now])?;
    Ok(id)
}

pub(super) fn insert_stage(
    conn: &Connection,
    workspace_id: i64,
    journey_id: &str,
    name: &str,
    description: &str,
    position: i64,
) -> StoreResult<String> {
    let id = new_id("stg");
    conn.prepare_cached(
        "INSERT INTO stages (id, workspace_id, journey_id, name, description, position)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![id, workspace_id, journey_id, name, description, position])?;
    Ok(id)
}

pub(super) fn insert_step(
    conn: &Connection,
    workspace_id: i64,
    stage_id: &str,
    name: &str,
    description: &str,
    position: i64,
) -> StoreResult<String> {
    let id = new_id("stp");
    conn.prepare_cached(
        "INSERT INTO steps (id, workspace_id, stage_id, name, description, position)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![id, workspace_id, stage_id, name, description, position])?;
    Ok(id)
}

pub(super) fn insert_persona(
    conn: &Connection,
    workspace_id: i64,
    persona: &NewPersona<'_>,
    now: i64,
) -> StoreResult<String> {
    let id = new_id("per");
    conn.prepare_cached(
        "INSERT INTO personas (id, workspace_id, name, role, bio, job_to_be_done, goals,
                               frustrations, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        id,
        workspace_id,
        persona.name,
        persona.role,
        persona.bio,
        persona.job_to_be_done,
        json_text(&persona.goals)?,
        json_text(&persona.frustrations)?,
        now
    ])?;
    Ok(id)
}

/// Validates `new` (text, status and fields for its kind, the step in this workspace) and
/// inserts it. Returns the new item's id.
pub(super) fn insert_item(
    conn: &Connection,
    workspace_id: i64,
    new: &NewItem,
    now: i64,
) -> StoreResult<String> {
    let title = required_text("title", &new.title, TITLE_MAX)?;
    let description =
        clean_text("description", new.description.as_deref().unwrap_or(""), DESCRIPTION_MAX, true)?;
    let status = match &new.status {
        Some(status) => check_status(new.kind, status)?,
        None => new.kind.default_status().to_owned(),
    };
    let owner = match &new.owner {
        Some(owner) => optional_text("owner", owner)?,
        None => None,
    };
    let fields = match &new.fields {
        Some(fields) => merge_fields(new.kind, Map::new(), fields)?,
        None => Map::new(),
    };
    let step_id = new.step_id.trim();
    ensure_step(conn, workspace_id, step_id)?;
    let id = new_id("itm");
    conn.prepare_cached(
        "INSERT INTO items (id, workspace_id, step_id, kind, title, description, status, owner,
                            fields, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
    )?
    .execute(params![
        id,
        workspace_id,
        step_id,
        new.kind.as_str(),
        title,
        description,
        status,
        owner,
        json_text(&fields)?,
        now
    ])?;
    Ok(id)
}

/// Links two items of the workspace, refusing directions other than [`LINK_DIRECTIONS`] and a
/// link that already exists.
pub(super) fn insert_link(
    conn: &Connection,
    workspace_id: i64,
    from_id: &str,
    to_id: &str,
    now: i64,
) -> StoreResult<ItemLink> {
    let from = item_summary(conn, workspace_id, from_id)?;
    let to = item_summary(conn, workspace_id, to_id)?;
    if !from.kind.can_link_to(to.kind) {
        let hint = if to.kind.can_link_to(from.kind) {
            format!(" To link them, swap the items: from {} to {}.", to.id, from.id)
        } else {
            String::new()
        };
        return Err(StoreError::Invalid(format!(
            "{} items cannot link to {} items: links go from cause to effect, and only these \
             directions are allowed: {}.{hint}",
            from.kind,
            to.kind,
            link_directions_text()
        )));
    }
    let inserted = conn
        .prepare_cached(
            "INSERT INTO item_links (workspace_id, from_item, to_item, created_at)
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
        )?
        .execute(params![workspace_id, from.id, to.id, now])?;
    if inserted == 0 {
        return Err(StoreError::Conflict(format!(
            "the link from {} to {} already exists; nothing to do",
            from.id, to.id
        )));
    }
    Ok(ItemLink { from, to })
}

/// Adds a comment to `item_id`, which the caller has checked is in the workspace.
pub(super) fn insert_comment(
    conn: &Connection,
    workspace_id: i64,
    item_id: &str,
    author: &str,
    body: &str,
    now: i64,
) -> StoreResult<Comment> {
    let author = required_text("author", author, NAME_MAX)?;
    let body = required_text_multiline("body", body, DESCRIPTION_MAX)?;
    let id = new_id("cmt");
    conn.prepare_cached(
        "INSERT INTO comments (id, workspace_id, item_id, author, body, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![id, workspace_id, item_id, author, body, now])?;
    Ok(Comment { id, author, body, created_at: from_secs(now) })
}

// ---------------------------------------------------------------------------------------------
// Queries and row mapping.

const SUMMARY_COLUMNS: &str = "i.id, i.kind, i.title, i.status, i.owner";
const LOCATION_COLUMNS: &str = "j.id, j.name, s.id, s.name, st.id, st.name";
const ITEM_JOINS: &str = "items i JOIN steps st ON st.id = i.step_id \
                          JOIN stages s ON s.id = st.stage_id JOIN journeys j ON j.id = s.journey_id";

/// The search over items, steps, stages and personas for `terms` words: `?1` workspace, `?2`
/// limit, `?3`… one lowercased, escaped LIKE pattern per word. Every word must match the title,
/// role or description; hits with more words in the title come first. Both databases run it:
/// `lower()` on both sides makes the match case-insensitive (ASCII on SQLite, all of Unicode on
/// PostgreSQL).
fn search_sql(terms: usize) -> String {
    let patterns = || (0..terms).map(|t| format!("?{}", t + 3));
    let every_word: Vec<String> = patterns()
        .map(|p| format!("lower(title || '\n' || extra || '\n' || body) LIKE {p} ESCAPE '\\'"))
        .collect();
    let title_misses: Vec<String> = patterns()
        .map(|p| format!("CASE WHEN lower(title) LIKE {p} ESCAPE '\\' THEN 0 ELSE 1 END"))
        .collect();
    format!(
        r"
WITH docs (type, rank, id, title, body, extra, context) AS (
    SELECT 'item', 0, i.id, i.title, i.description, '', j.name || ' › ' || s.name || ' › ' || st.name
    FROM items i JOIN steps st ON st.id = i.step_id JOIN stages s ON s.id = st.stage_id
    JOIN journeys j ON j.id = s.journey_id WHERE i.workspace_id = ?1
    UNION ALL
    SELECT 'step', 1, st.id, st.name, st.description, '', j.name || ' › ' || s.name
    FROM steps st JOIN stages s ON s.id = st.stage_id JOIN journeys j ON j.id = s.journey_id
    WHERE st.workspace_id = ?1
    UNION ALL
    SELECT 'stage', 2, s.id, s.name, s.description, '', j.name
    FROM stages s JOIN journeys j ON j.id = s.journey_id WHERE s.workspace_id = ?1
    UNION ALL
    SELECT 'persona', 3, p.id, p.name, p.bio, p.role, p.role FROM personas p WHERE p.workspace_id = ?1
)
SELECT type, id, title, body, context FROM docs
WHERE {}
ORDER BY {}, rank, title
LIMIT ?2",
        every_word.join(" AND "),
        title_misses.join(" + ")
    )
}

fn summary_at(row: &Row, at: usize) -> DbResult<ItemSummary> {
    Ok(ItemSummary {
        id: row.get(at)?,
        kind: text_enum(row, at + 1, ItemKind::parse)?,
        title: row.get(at + 2)?,
        status: row.get(at + 3)?,
        owner: row.get(at + 4)?,
    })
}

fn location_at(row: &Row, at: usize) -> DbResult<ItemLocation> {
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
fn text_enum<T>(row: &Row, at: usize, parse: fn(&str) -> Option<T>) -> DbResult<T> {
    let text: String = row.get(at)?;
    parse(&text).ok_or_else(|| DbError::Decode {
        column: at,
        message: format!("unexpected value {text:?}"),
    })
}

/// A text column holding JSON.
fn json_column<T: DeserializeOwned>(row: &Row, at: usize) -> DbResult<T> {
    let text: String = row.get(at)?;
    serde_json::from_str(&text)
        .map_err(|e| DbError::Decode { column: at, message: format!("not the JSON expected: {e}") })
}

fn json_text(value: &impl Serialize) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Invalid(e.to_string()))
}

fn find_journey(conn: &Connection, workspace_id: i64, journey: &str) -> StoreResult<JourneyTree> {
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

fn item_summary(conn: &Connection, workspace_id: i64, id: &str) -> StoreResult<ItemSummary> {
    let id = id.trim();
    conn.prepare_cached(&format!(
        "SELECT {SUMMARY_COLUMNS} FROM items i WHERE i.workspace_id = ?1 AND i.id = ?2"
    ))?
    .query_row(params![workspace_id, id], |row| summary_at(row, 0))
    .optional()?
    .ok_or_else(|| not_found_item(id))
}

fn item_detail(conn: &Connection, workspace_id: i64, id: &str) -> StoreResult<ItemDetail> {
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

fn linked_items(
    conn: &Connection,
    sql: &str,
    workspace_id: i64,
    id: &str,
) -> StoreResult<Vec<ItemSummary>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params![workspace_id, id], |row| summary_at(row, 0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn ensure_stage(conn: &Connection, workspace_id: i64, id: &str) -> StoreResult<()> {
    let sql = "SELECT 1 FROM stages WHERE workspace_id = ?1 AND id = ?2";
    if conn.prepare_cached(sql)?.exists(params![workspace_id, id])? {
        return Ok(());
    }
    Err(StoreError::NotFound(format!(
        "no stage with id {id:?} in this workspace; get_journey lists a journey's stages (stg_…)"
    )))
}

fn ensure_step(conn: &Connection, workspace_id: i64, id: &str) -> StoreResult<()> {
    let sql = "SELECT 1 FROM steps WHERE workspace_id = ?1 AND id = ?2";
    if conn.prepare_cached(sql)?.exists(params![workspace_id, id])? {
        return Ok(());
    }
    Err(StoreError::NotFound(format!(
        "no step with id {id:?} in this workspace; get_journey lists a journey's steps (stp_…)"
    )))
}

fn not_found_item(id: &str) -> StoreError {
    StoreError::NotFound(format!(
        "no item with id {id:?} in this workspace; search or list_items give item ids (itm_…)"
    ))
}

// ---------------------------------------------------------------------------------------------
// Validation and small helpers.

/// `value` trimmed, refused when longer than `max` characters or when it holds control
/// characters (newlines and tabs are fine in `multiline` text).
fn clean_text(field: &str, value: &str, max: usize, multiline: bool) -> StoreResult<String> {
    let value = value.trim();
    let len = value.chars().count();
    if len > max {
        return Err(StoreError::Invalid(format!(
            "{field} is too long ({len} characters, at most {max})"
        )));
    }
    let allowed = |c: char| multiline && matches!(c, '\n' | '\r' | '\t');
    if value.chars().any(|c| c.is_control() && !allowed(c)) {
        return Err(StoreError::Invalid(format!("{field} must not contain control characters")));
    }
    Ok(value.to_owned())
}

fn required_text(field: &str, value: &str, max: usize) -> StoreResult<String> {
    non_blank(field, clean_text(field, value, max, false)?)
}

fn required_text_multiline(field: &str, value: &str, max: usize) -> StoreResult<String> {
    non_blank(field, clean_text(field, value, max, true)?)
}

fn non_blank(field: &str, value: String) -> StoreResult<String> {
    if value.is_empty() {
        Err(StoreError::Invalid(format!("{field} must not be empty")))
    } else {
        Ok(value)
    }
}

/// A one-line name where an empty string means "none".
fn optional_text(field: &str, value: &str) -> StoreResult<Option<String>> {
    let value = clean_text(field, value, NAME_MAX, false)?;
    Ok(Some(value).filter(|v| !v.is_empty()))
}

fn check_status(kind: ItemKind, status: &str) -> StoreResult<String> {
    let status = status.trim();
    if kind.statuses().contains(&status) {
        Ok(status.to_owned())
    } else {
        Err(StoreError::Invalid(format!(
            "{status:?} is not a status of a {kind}; use one of: {}",
            kind.statuses().join(", ")
        )))
    }
}

/// `fields` with `patch` applied: each name must be one of the kind's fields, a null value
/// removes the field, any other value must be a string, number or boolean.
fn merge_fields(
    kind: ItemKind,
    mut fields: Map<String, Value>,
    patch: &Map<String, Value>,
) -> StoreResult<Map<String, Value>> {
    for (name, value) in patch {
        if !kind.field_names().contains(&name.as_str()) {
            return Err(StoreError::Invalid(format!(
                "{name:?} is not a field of a {kind}; its fields are: {}",
                kind.field_names().join(", ")
            )));
        }
        match value {
            Value::Null => {
                fields.remove(name);
            }
            Value::String(text) if text.chars().count() > FIELD_VALUE_MAX => {
                return Err(StoreError::Invalid(format!(
                    "the field {name:?} is too long (at most {FIELD_VALUE_MAX} characters)"
                )));
            }
            Value::String(_) | Value::Number(_) | Value::Bool(_) => {
                fields.insert(name.clone(), value.clone());
            }
            Value::Array(_) | Value::Object(_) => {
                return Err(StoreError::Invalid(format!(
                    "the field {name:?} must be a string, number or boolean (or null to remove it)"
                )));
            }
        }
    }
    Ok(fields)
}

/// A filter value, ignoring absent and blank ones.
fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn clamp_limit(limit: Option<u32>, (default, max): (u32, u32)) -> u32 {
    limit.unwrap_or(default).clamp(1, max)
}

/// `term` with LIKE's wildcards (and the escape character) escaped for `ESCAPE '\'`.
fn escape_like(term: &str) -> String {
    let mut escaped = String::with_capacity(term.len());
    for c in term.chars() {
        if matches!(c, '\\' | '%' | '_') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// About [`SNIPPET_CHARS`] characters of `text` around the first of `terms` it contains (its
/// start when it contains none), whitespace collapsed, `…` where cut.
fn snippet(text: &str, terms: &[&str]) -> String {
    // ASCII lowercasing keeps byte offsets, and matches SQLite's case-insensitive LIKE.
    let haystack = text.to_ascii_lowercase();
    let first = terms.iter().filter_map(|t| haystack.find(&t.to_ascii_lowercase())).min();
    let at_char = first.map_or(0, |byte| text[..byte].chars().count());
    let start = at_char.saturating_sub(SNIPPET_CHARS / 3);
    let total = text.chars().count();
    let window: String = text.chars().skip(start).take(SNIPPET_CHARS).collect();
    let mut snippet = window.split_whitespace().collect::<Vec<_>>().join(" ");
    if start > 0 {
        snippet.insert(0, '…');
    }
    if start + SNIPPET_CHARS < total {
        snippet.push('…');
    }
    snippet
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Clock;

    const ACTOR: Actor<'static> = Actor { key_id: "key_test", key_prefix: "cst_test1234" };

    fn store() -> (tempfile::TempDir, Store, i64) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("t.db"), Clock::default()).expect("open");
        let acme = store.workspace_by_slug("acme").expect("query").expect("acme").id;
        (dir, store, acme)
    }

    fn find(store: &Store, ws: i64, kind: ItemKind) -> ItemSummary {
        let filter = ItemFilter { kind: Some(kind), ..ItemFilter::default() };
        store.list_items(ws, &filter).expect("list").items.remove(0).item
    }

    fn first_step(store: &Store, ws: i64) -> String {
        store.get_journey(ws, "trial-to-paid").expect("journey").stages[0].steps[0].id.clone()
    }

    fn new_item(step_id: &str, kind: ItemKind, title: &str) -> NewItem {
        NewItem {
            step_id: step_id.into(),
            kind,
            title: title.into(),
            description: None,
            status: None,
            owner: None,
            fields: None,
        }
    }

    fn fields(value: Value) -> Option<Map<String, Value>> {
        match value {
            Value::Object(map) => Some(map),
            _ => None,
        }
    }

    #[test]
    fn seed_has_every_kind_allowed_links_and_personas() {
        let (_dir, store, acme) = store();
        let summary = store.workspace_summary(acme).expect("summary");
        assert_eq!(summary.slug, "acme");
        assert_eq!(summary.journeys, 2);
        assert_eq!(summary.personas, 2);
        let c = &summary.items;
        assert!((15..=20).contains(&c.total), "{c:?}");
        for count in [c.touchpoint, c.insight, c.opportunity, c.solution, c.metric] {
            assert!(count > 0, "{c:?}");
        }
        let items = store
            .list_items(acme, &ItemFilter { limit: Some(200), ..ItemFilter::default() })
            .expect("list");
        assert_eq!(items.items.len() as i64, c.total);
        let mut links = 0;
        for listed in &items.items {
            let item = store.get_item(acme, &listed.item.id).expect("item");
            assert!(item.item.kind.statuses().contains(&item.item.status.as_str()));
            assert!(item.fields.keys().all(|f| item.item.kind.field_names().contains(&f.as_str())));
            for to in &item.links_to {
                assert!(item.item.kind.can_link_to(to.kind), "{} → {}", item.item.id, to.id);
                links += 1;
            }
        }
        assert!(links >= 10, "{links}");
        let trial = store.get_journey(acme, "trial-to-paid").expect("journey");
        assert_eq!(trial.stages.len(), 4);
        assert!(trial.stages.iter().all(|s| (2..=3).contains(&s.steps.len())));
    }

    #[test]
    fn other_workspaces_are_invisible() {
        let (_dir, store, acme) = store();
        store.create_workspace("Other", "other").expect("workspace");
        let other = store.workspace_by_slug("other").expect("query").expect("other").id;
        let (step, journey) = {
            let conn = store.conn();
            let journey = insert_journey(&conn, other, "secret", "Secret", "", 0, 0).expect("j");
            let stage = insert_stage(&conn, other, &journey, "Hidden", "", 0).expect("stage");
            (insert_step(&conn, other, &stage, "Covert", "", 0).expect("step"), journey)
        };
        let secret = store
            .create_item(other, ACTOR, &new_item(&step, ItemKind::Insight, "Zebra secret"))
            .expect("create");
        let secret_id = secret.item.id.as_str();
        let acme_touchpoint = find(&store, acme, ItemKind::Touchpoint);
        let not_found = |result: StoreResult<()>| {
            assert!(matches!(result, Err(StoreError::NotFound(_))), "{result:?}");
        };

        not_found(store.get_item(acme, secret_id).map(drop));
        let update = ItemUpdate {
            item_id: secret_id.into(),
            title: Some("mine".into()),
            description: None,
            status: None,
            owner: None,
            fields: None,
        };
        not_found(store.update_item(acme, ACTOR, &update).map(drop));
        not_found(store.link_items(acme, ACTOR, &acme_touchpoint.id, secret_id).map(drop));
        not_found(store.add_comment(acme, ACTOR, secret_id, "me", "hi").map(drop));
        not_found(
            store.create_item(acme, ACTOR, &new_item(&step, ItemKind::Metric, "x")).map(drop),
        );
        not_found(store.get_journey(acme, &journey).map(drop));
        not_found(store.get_journey(acme, "secret").map(drop));
        let by_step = ItemFilter { step_id: Some(step.clone()), ..ItemFilter::default() };
        not_found(store.list_items(acme, &by_step).map(drop));
        assert!(store.search(acme, "zebra", None).expect("search").is_empty());
        assert!(store.search(acme, "covert", None).expect("search").is_empty());

        // The other way round: acme's items are invisible from `other`.
        not_found(store.get_item(other, &acme_touchpoint.id).map(drop));
        not_found(store.link_items(other, ACTOR, &acme_touchpoint.id, secret_id).map(drop));
        assert_eq!(store.search(other, "zebra", None).expect("search").len(), 1);
        assert!(store.search(other, "pricing", None).expect("search").is_empty());
        assert_eq!(store.workspace_summary(other).expect("summary").items.total, 1);
        assert_eq!(store.get_item(other, secret_id).expect("own item").item.title, "Zebra secret");
    }

    #[test]
    fn links_only_go_in_the_five_directions() {
        let (_dir, store, acme) = store();
        let touchpoint = find(&store, acme, ItemKind::Touchpoint);
        let insight = find(&store, acme, ItemKind::Insight);
        let opportunity = find(&store, acme, ItemKind::Opportunity);
        let step = first_step(&store, acme);

        let err =
            store.link_items(acme, ACTOR, &touchpoint.id, &opportunity.id).expect_err("refused");
        let StoreError::Invalid(message) = err else { panic!("{err:?}") };
        assert!(message.contains("touchpoint → insight"), "{message}");
        assert!(message.contains("solution → metric"), "{message}");

        let err = store.link_items(acme, ACTOR, &insight.id, &touchpoint.id).expect_err("refused");
        assert!(err.to_string().contains("swap"), "{err}");
        assert!(store.link_items(acme, ACTOR, &touchpoint.id, &touchpoint.id).is_err());

        let fresh = store
            .create_item(acme, ACTOR, &new_item(&step, ItemKind::Insight, "Fresh insight"))
            .expect("create");
        let link = store.link_items(acme, ACTOR, &touchpoint.id, &fresh.item.id).expect("link");
        assert_eq!(link.to.id, fresh.item.id);
        let again = store.link_items(acme, ACTOR, &touchpoint.id, &fresh.item.id);
        assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
        let fresh = store.get_item(acme, &fresh.item.id).expect("item");
        assert_eq!(fresh.linked_from[0].id, touchpoint.id);
    }

    #[test]
    fn create_and_update_validate_and_audit() {
        let (_dir, store, acme) = store();
        let step = first_step(&store, acme);

        let mut new = new_item(&step, ItemKind::Metric, "  Weekly active teams ");
        let created = store.create_item(acme, ACTOR, &new).expect("create");
        assert_eq!(created.item.title, "Weekly active teams");
        assert_eq!(created.item.status, "tracking");
        assert_eq!(created.location.step_id, step);

        new.status = Some("shipped".into());
        let err = store.create_item(acme, ACTOR, &new).expect_err("refused");
        assert!(err.to_string().contains("tracking, on-track, at-risk"), "{err}");
        new.status = None;
        new.fields = fields(serde_json::json!({"channel": "email"}));
        let err = store.create_item(acme, ACTOR, &new).expect_err("refused");
        assert!(err.to_string().contains("metric_type, unit"), "{err}");
        new.fields = None;
        new.title = " ".into();
        assert!(matches!(store.create_item(acme, ACTOR, &new), Err(StoreError::Invalid(_))));

        let update = ItemUpdate {
            item_id: created.item.id.clone(),
            title: None,
            description: Some("Teams with 3+ active members".into()),
            status: Some("on-track".into()),
            owner: Some("Priya Nair".into()),
            fields: fields(serde_json::json!({"unit": "teams", "target": 120})),
        };
        let updated = store.update_item(acme, ACTOR, &update).expect("update");
        assert_eq!(updated.item.status, "on-track");
        assert_eq!(updated.item.owner.as_deref(), Some("Priya Nair"));
        let clear = ItemUpdate {
            owner: Some(String::new()),
            description: None,
            status: None,
            fields: fields(serde_json::json!({"unit": null, "current": 80})),
            ..update
        };
        let updated = store.update_item(acme, ACTOR, &clear).expect("update");
        assert_eq!(updated.item.owner, None);
        assert_eq!(
            Value::Object(updated.fields),
            serde_json::json!({"target": 120, "current": 80})
        );
        let nothing = ItemUpdate { owner: None, fields: None, ..clear };
        assert!(matches!(store.update_item(acme, ACTOR, &nothing), Err(StoreError::Invalid(_))));

        let comment =
            store.add_comment(acme, ACTOR, &created.item.id, "Dana", "Looks right").expect("c");
        assert_eq!(
            store.get_item(acme, &created.item.id).expect("item").comments[0].id,
            comment.comment.id
        );

        let events = store.list_events(acme, Some("key_test"), 10).expect("events");
        let details: Vec<&str> = events.iter().map(|e| e.detail.as_str()).collect();
        assert_eq!(events.len(), 4, "{details:?}");
        assert!(events.iter().all(|e| e.kind == "tool.called" && e.key_prefix.as_deref() == Some("cst_test1234")));
        assert!(details[3].starts_with(&format!("create_item {} \"Weekly", created.item.id)));
        assert!(details[2].ends_with(": description, status, owner, fields"), "{details:?}");
        assert!(details[0].starts_with("add_comment cmt_"), "{details:?}");
    }

    #[test]
    fn list_items_filters_and_truncates() {
        let (_dir, store, acme) = store();
        let all = ItemFilter { journey: Some("trial-to-paid".into()), ..ItemFilter::default() };
        let all = store.list_items(acme, &all).expect("list");
        assert!(!all.truncated);
        assert!(all.items.iter().all(|i| i.location.journey == "Trial to paid"));
        let two = ItemFilter { limit: Some(2), ..ItemFilter::default() };
        let two = store.list_items(acme, &two).expect("list");
        assert_eq!(two.items.len(), 2);
        assert!(two.truncated);
        let owner = all.items[0].item.owner.clone().expect("seed items have owners");
        let by_owner = ItemFilter { owner: Some(owner.to_uppercase()), ..ItemFilter::default() };
        let by_owner = store.list_items(acme, &by_owner).expect("list");
        assert!(!by_owner.items.is_empty());
        assert!(by_owner.items.iter().all(|i| i.item.owner.as_deref() == Some(owner.as_str())));
        let bad = ItemFilter { status: Some("nope".into()), ..ItemFilter::default() };
        assert!(matches!(store.list_items(acme, &bad), Err(StoreError::Invalid(_))));
        let bad = ItemFilter { journey: Some("nope".into()), ..ItemFilter::default() };
        assert!(matches!(store.list_items(acme, &bad), Err(StoreError::NotFound(_))));
    }

    #[test]
    fn search_matches_every_word_and_escapes_wildcards() {
        let (_dir, store, acme) = store();
        let hits = store.search(acme, "SDK install", None).expect("search");
        assert!(!hits.is_empty());
        assert_eq!(hits[0].hit_type, HitType::Item);
        assert!(hits.iter().any(|h| h.hit_type == HitType::Step));
        let persona = store.search(acme, "head of data", None).expect("search");
        assert!(persona.iter().any(|h| h.hit_type == HitType::Persona), "{persona:?}");
        assert!(store.search(acme, "sdk zzzz", None).expect("search").is_empty());
        assert!(store.search(acme, "_", None).expect("search").is_empty());
        assert!(store.search(acme, "a%b", None).expect("search").is_empty());
        assert!(matches!(store.search(acme, "  ", None), Err(StoreError::Invalid(_))));
        assert_eq!(store.search(acme, "a", Some(3)).expect("search").len(), 3);
    }

    #[test]
    fn snippet_centres_on_the_match() {
        let text = format!("{} needle {}", "word ".repeat(60), "tail ".repeat(60));
        let s = snippet(&text, &["NEEDLE"]);
        assert!(s.starts_with('…') && s.ends_with('…') && s.contains("needle"), "{s}");
        assert_eq!(snippet("short  text", &["x"]), "short text");
    }
}
