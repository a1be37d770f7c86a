//! The domain's types and vocabulary: kinds of item, their statuses and fields, the link
//! directions, what the reads return and what the writes take.
//!
//! These types are also what the MCP tools take and return, so their doc comments are what an
//! agent reads in the tools' schemas, and each serializes exactly as its JSON Schema says (an
//! `Option` is a required, nullable property).

use std::fmt;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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

/// A journey's map: stages in order, their steps in order, and the first items on each step
/// (`item_count` says how many a step holds; `list_items` with `step_id` pages through them).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct JourneyTree {
    /// Journey id (`jrn_…`).
    pub id: String,
    pub slug: String,
    pub name: String,
    pub description: String,
    pub stages: Vec<StageNode>,
    /// Items on the journey's steps, in all.
    pub items_total: i64,
    /// Item summaries shown in this map (at most a few per step, and a bounded number in all).
    pub items_shown: i64,
    /// What was left out and how to get it, when something was.
    pub note: Option<String>,
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
    /// How many items the step holds.
    pub item_count: i64,
    /// The first items on the step, in order.
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
    /// True when more items match than were returned: pass `next_cursor` for the next page.
    pub truncated: bool,
    /// Where the next page starts (give it as `cursor`); null on the last page.
    pub next_cursor: Option<String>,
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
    /// Items this item links to (its effects); the first ones when there are many.
    pub links_to: Vec<ItemSummary>,
    /// How many items this item links to.
    pub links_to_total: i64,
    /// Items that link to this item (its causes); the first ones when there are many.
    pub linked_from: Vec<ItemSummary>,
    /// How many items link to this item.
    pub linked_from_total: i64,
    /// Comments, oldest first: one page (see `comments_next_cursor`).
    pub comments: Vec<Comment>,
    /// How many comments the item has.
    pub comments_total: i64,
    /// Where the next page of comments starts (give it as `comments_cursor`); null when all
    /// are shown.
    pub comments_next_cursor: Option<String>,
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
    Comment,
    Step,
    Stage,
    Journey,
    Persona,
}

impl HitType {
    pub const ALL: [HitType; 6] =
        [Self::Item, Self::Comment, Self::Step, Self::Stage, Self::Journey, Self::Persona];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Item => "item",
            Self::Comment => "comment",
            Self::Step => "step",
            Self::Stage => "stage",
            Self::Journey => "journey",
            Self::Persona => "persona",
        }
    }
}

/// One search result.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SearchHit {
    /// What was found; its id has the matching prefix (`itm_`, `cmt_`, `stp_`, `stg_`, `jrn_`,
    /// `per_`).
    #[serde(rename = "type")]
    pub hit_type: HitType,
    pub id: String,
    /// The item's title, the commented item's title, or the step's, stage's, journey's or
    /// persona's name.
    pub title: String,
    /// Text around the first match (the description, the comment, the bio).
    pub snippet: String,
    /// Where it is: `journey › stage › step` for items and comments, shorter for steps and
    /// stages, the role for personas.
    pub context: String,
    /// For items and comments: the item, for `get_item`.
    pub item_id: Option<String>,
}

/// One page of search hits, best first.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SearchResults {
    pub hits: Vec<SearchHit>,
    /// Where the next page starts (give it as `cursor`); null on the last page.
    pub next_cursor: Option<String>,
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
    /// The `next_cursor` of the previous page, with the same filters.
    pub cursor: Option<String>,
}

/// A text search, optionally narrowed; every filter is applied inside the search.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// Words to look for; every word must match, as a word or the start of one (`onboard`
    /// finds "onboarding"). Case and accents do not matter.
    pub query: String,
    /// Only hits in this journey: its id (`jrn_…`) or slug.
    pub journey: Option<String>,
    /// Only items of this kind.
    pub kind: Option<ItemKind>,
    /// Only items with this status.
    pub status: Option<String>,
    /// How many hits to return: default 20, at most 100.
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page, with the same query and filters.
    pub cursor: Option<String>,
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

/// A new journey.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewJourney {
    /// The journey's name, at most 200 characters (e.g. "Trial to paid").
    pub name: String,
    /// Its slug (1-40 lowercase letters, digits, dashes; unique); made from the name if absent.
    pub slug: Option<String>,
    pub description: Option<String>,
    /// Its place among the journeys, from 0; at the end when absent.
    pub position: Option<u32>,
}

/// A new stage of a journey.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewStage {
    /// The journey (`jrn_…` or its slug).
    pub journey: String,
    /// The stage's name, at most 200 characters (e.g. "Evaluate").
    pub name: String,
    pub description: Option<String>,
    /// Its place among the journey's stages, from 0; at the end when absent.
    pub position: Option<u32>,
}

/// A new step of a stage.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewStep {
    /// The stage (`stg_…`) from get_journey.
    pub stage_id: String,
    /// The step's name, at most 200 characters (e.g. "Invites a teammate").
    pub name: String,
    pub description: Option<String>,
    /// Its place among the stage's steps, from 0; at the end when absent.
    pub position: Option<u32>,
}

/// A new persona.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonaArgs {
    /// The persona's name, at most 100 characters.
    pub name: String,
    pub role: Option<String>,
    pub bio: Option<String>,
    pub job_to_be_done: Option<String>,
    #[serde(default)]
    pub goals: Vec<String>,
    #[serde(default)]
    pub frustrations: Vec<String>,
}

/// A journey, stage or step just made, and where it sits.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct MapNode {
    /// `jrn_…`, `stg_…` or `stp_…`.
    pub id: String,
    pub name: String,
    pub description: String,
    /// Its place among its siblings, from 0.
    pub position: u32,
    /// A journey's slug.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
    /// A stage's journey (`jrn_…`) or a step's stage (`stg_…`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
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
