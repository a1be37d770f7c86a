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

    /// The statuses an item of this kind can have. The first is the default for a new item.
    /// (An item is retired by archiving it, not by a status.)
    pub fn statuses(self) -> &'static [&'static str] {
        match self {
            Self::Touchpoint | Self::Insight => &["draft", "validated"],
            Self::Opportunity => &["open", "in-progress", "done"],
            Self::Solution => &["idea", "planned", "building", "shipped"],
            Self::Metric => &["tracking", "on-track", "at-risk"],
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
            Self::Opportunity => &["confidence"],
            Self::Solution => &["solution_type", "target_date"],
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

/// An item's priority, most urgent first.
pub const PRIORITIES: [&str; 4] = ["P0", "P1", "P2", "P3"];
/// An item's impact or effort.
pub const LEVELS: [&str; 3] = ["low", "medium", "high"];

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
    /// True for an archived journey (listed only with `include_archived`).
    #[serde(skip_serializing_if = "is_false")]
    pub archived: bool,
}

fn is_false(value: &bool) -> bool {
    !*value
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
    /// True when the journey is archived.
    #[serde(skip_serializing_if = "is_false")]
    pub archived: bool,
    /// The personas this journey is about (`link_persona`).
    pub personas: Vec<PersonaRef>,
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
    /// True when the stage is archived (shown only with `include_archived`).
    #[serde(skip_serializing_if = "is_false")]
    pub archived: bool,
    pub steps: Vec<StepNode>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct StepNode {
    /// Step id (`stp_…`): where `create_item` puts new items.
    pub id: String,
    pub name: String,
    pub description: String,
    /// True when the step is archived (shown only with `include_archived`).
    #[serde(skip_serializing_if = "is_false")]
    pub archived: bool,
    /// How many items the step holds (archived ones aside).
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
    /// P0 (most urgent) to P3.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
    /// low, medium or high.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impact: Option<String>,
    /// low, medium or high.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effort: Option<String>,
    /// True when the item, or the step, stage or journey it sits in, is archived: it is left
    /// out of every list, map and search unless `include_archived` is given.
    #[serde(skip_serializing_if = "is_false")]
    pub archived: bool,
}

/// A persona, named.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PersonaRef {
    /// Persona id (`per_…`).
    pub id: String,
    pub name: String,
    pub role: String,
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
    /// Only items with this priority.
    #[schemars(extend("enum" = PRIORITIES))]
    pub priority: Option<String>,
    /// Only items with this impact.
    #[schemars(extend("enum" = LEVELS))]
    pub impact: Option<String>,
    /// Only items with this effort.
    #[schemars(extend("enum" = LEVELS))]
    pub effort: Option<String>,
    /// Also list archived items and items on archived steps, stages and journeys (they are
    /// left out by default).
    pub include_archived: Option<bool>,
    /// How many items to return: default 50, at most 200.
    #[schemars(range(min = 1, max = 200))]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page, with the same filters.
    pub cursor: Option<String>,
    /// Only items of these journeys (`jrn_…`): those of a key confined to them. Set by the
    /// server, never by the request, and applied in the query, so a page is never cut short.
    #[serde(skip)]
    #[schemars(skip)]
    pub within_journeys: Option<Vec<String>>,
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
    /// Only items with this priority.
    #[schemars(extend("enum" = PRIORITIES))]
    pub priority: Option<String>,
    /// Only items with this impact.
    #[schemars(extend("enum" = LEVELS))]
    pub impact: Option<String>,
    /// Only items with this effort.
    #[schemars(extend("enum" = LEVELS))]
    pub effort: Option<String>,
    /// Also find archived things (left out by default).
    pub include_archived: Option<bool>,
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
    /// P0 (most urgent), P1, P2 or P3.
    #[schemars(extend("enum" = PRIORITIES))]
    pub priority: Option<String>,
    /// low, medium or high.
    #[schemars(extend("enum" = LEVELS))]
    pub impact: Option<String>,
    /// low, medium or high.
    #[schemars(extend("enum" = LEVELS))]
    pub effort: Option<String>,
    /// Kind-specific fields; values are strings, numbers or booleans (a null is the same as
    /// leaving the name out).
    #[serde(default)]
    #[schemars(schema_with = "item_fields_schema")]
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
    /// What the persona wants to achieve; none when left out.
    #[serde(default)]
    pub goals: Vec<String>,
    /// What stands in the persona's way; none when left out.
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
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
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
    /// P0 (most urgent), P1, P2 or P3; an empty string clears it.
    #[schemars(extend("enum" = ["P0", "P1", "P2", "P3", ""]))]
    pub priority: Option<String>,
    /// low, medium or high; an empty string clears it.
    #[schemars(extend("enum" = ["low", "medium", "high", ""]))]
    pub impact: Option<String>,
    /// low, medium or high; an empty string clears it.
    #[schemars(extend("enum" = ["low", "medium", "high", ""]))]
    pub effort: Option<String>,
    /// Move the item to this step (`stp_…`), at the end of its items.
    pub step_id: Option<String>,
    /// Merged into the item's fields: given names are set, a null value removes that field.
    #[serde(default)]
    #[schemars(schema_with = "item_fields_schema")]
    pub fields: Option<Map<String, Value>>,
}

/// The schema of an item's `fields` argument: a closed object with a property for every
/// kind-specific field name of every kind (which kind uses which is in the tool's
/// description and in each property's), each a string, number, boolean or null. A closed
/// object, not an open map, so that models' strict modes (OpenAI's refuses
/// `additionalProperties: true`) take it; a null stands for a name left out, so a strict
/// mode that makes every property required still lets a model fill only the kind's own.
fn item_fields_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut properties = Map::new();
    for kind in ItemKind::ALL {
        for name in kind.field_names() {
            let users: Vec<&str> = ItemKind::ALL
                .into_iter()
                .filter(|k| k.field_names().contains(name))
                .map(ItemKind::as_str)
                .collect();
            properties.entry(name.to_string()).or_insert_with(|| {
                serde_json::json!({
                    "description": format!("For items of kind {}.", users.join(", ")),
                    "anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"},
                        {"type": "null"}],
                })
            });
        }
    }
    schemars::json_schema!({
        "type": "object",
        "properties": properties,
        "required": [],
        "additionalProperties": false,
    })
}

/// A partial update of a journey: only what is given changes.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JourneyUpdate {
    /// The journey (`jrn_…` or its slug).
    pub journey: String,
    pub name: Option<String>,
    /// A new slug (1-40 lowercase letters, digits, dashes; unique).
    pub slug: Option<String>,
    pub description: Option<String>,
    /// Move it to this place among the journeys, from 0 (past the end: last).
    pub position: Option<u32>,
}

/// A partial update of a stage: only what is given changes.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StageUpdate {
    /// The stage (`stg_…`).
    pub stage_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    /// Move the stage, with its steps and items, to this journey (`jrn_…` or slug); at the end
    /// of its stages unless `position` is given.
    pub journey: Option<String>,
    /// Move it to this place among its journey's stages, from 0 (past the end: last).
    pub position: Option<u32>,
}

/// A partial update of a step: only what is given changes.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepUpdate {
    /// The step (`stp_…`).
    pub step_id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    /// Move the step, with its items, to this stage (`stg_…`); at the end of its steps unless
    /// `position` is given.
    pub stage_id: Option<String>,
    /// Move it to this place among its stage's steps, from 0 (past the end: last).
    pub position: Option<u32>,
}

/// A partial update of a persona: only what is given changes (a list given replaces the old).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonaUpdate {
    /// The persona (`per_…`).
    pub persona_id: String,
    pub name: Option<String>,
    pub role: Option<String>,
    pub bio: Option<String>,
    pub job_to_be_done: Option<String>,
    pub goals: Option<Vec<String>>,
    pub frustrations: Option<Vec<String>>,
}

/// What `archive` or `restore` did.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ArchiveResult {
    /// The journey, stage, step or item (`jrn_…`, `stg_…`, `stp_…`, `itm_…`).
    pub id: String,
    /// journey, stage, step or item.
    #[serde(rename = "type")]
    pub node_type: String,
    /// Its name or title.
    pub name: String,
    /// Whether it is archived now.
    pub archived: bool,
    /// How many items left the reads (archive) or came back to them (restore) with it.
    pub items: i64,
}

/// A journey and one of its personas.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PersonaLink {
    pub journey_id: String,
    /// The journey's name.
    pub journey: String,
    pub persona: PersonaRef,
}

/// A persona to insert (`create_persona` and the import).
#[derive(Debug, Clone, Copy)]
pub struct NewPersona<'a> {
    pub name: &'a str,
    pub role: &'a str,
    pub bio: &'a str,
    pub job_to_be_done: &'a str,
    pub goals: &'a [&'a str],
    pub frustrations: &'a [&'a str],
}
