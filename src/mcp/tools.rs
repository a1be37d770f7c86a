//! The MCP tools: definitions (schemas, annotations) and their execution against the store.
//!
//! Each tool is one entry of [`TOOLS`]: its metadata and a handler typed by its argument and
//! result structs. The `inputSchema` and `outputSchema` are generated from those same structs, so
//! what a tool accepts and returns cannot drift from what it advertises. Write tools record their
//! audit event inside the store's transaction; nothing else here writes.

use std::sync::{LazyLock, Mutex};

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::confine;
use super::protocol::{CallToolResult, to_raw};
use super::schema::{input_schema, output_schema};
use crate::api::{Access, ToolGroup};
use crate::store::access::KeyIdentity;
use crate::store::content::model::{
    ItemFilter, ItemKind, ItemUpdate, JourneySummary, JourneyUpdate, NewItem, NewJourney, NewStage,
    NewStep, Persona, PersonaArgs, PersonaUpdate, SearchQuery, StageUpdate, StepUpdate,
    WorkspaceSummary, link_directions_text, per_kind_text,
};
use crate::store::{Store, StoreError, StoreResult};

/// A `tools/call` that cannot even start: answered as a JSON-RPC error (-32602).
#[derive(Debug, thiserror::Error)]
pub enum ToolCallError {
    #[error("unknown tool: {0}")]
    UnknownTool(String),
}

/// The `tools` array of `tools/list` for a key with `access`.
pub fn definitions(access: Access) -> Vec<Value> {
    TOOLS.iter().filter(|tool| tool.allowed(access)).map(|tool| tool.definition.clone()).collect()
}

/// The `tools/list` result (`{"tools":[…]}`) for a key with `access`, serialized once: it
/// never changes while the server runs.
pub fn list_result(access: Access) -> &'static RawValue {
    static READ_WRITE: LazyLock<Box<RawValue>> =
        LazyLock::new(|| to_raw(&json!({"tools": definitions(Access::ReadWrite)})));
    static READ_ONLY: LazyLock<Box<RawValue>> =
        LazyLock::new(|| to_raw(&json!({"tools": definitions(Access::ReadOnly)})));
    match access {
        Access::ReadWrite => &READ_WRITE,
        Access::ReadOnly => &READ_ONLY,
    }
}

/// The `tools/list` result for the key `ctx`: the shared one of its access, or for a key
/// limited to some tools, those of them its access allows (serialized once per set of tools
/// and access: a server sees few of them; past [`SCOPED_LISTS_MAX`] the cache starts over).
pub fn list_result_for(ctx: &KeyIdentity) -> Box<RawValue> {
    type Lists = Vec<(Access, Vec<String>, Box<RawValue>)>;
    static SCOPED: LazyLock<Mutex<Lists>> = LazyLock::new(Mutex::default);
    let Some(names) = &ctx.scopes.tools else { return list_result(ctx.access).to_owned() };
    // Entries are whole values; a panic elsewhere cannot leave one torn. Found by comparing,
    // not hashing: there are few, and a comparison stops at the first difference.
    let mut lists = SCOPED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, _, list)) = lists.iter().find(|(a, n, _)| *a == ctx.access && n == names) {
        return list.clone();
    }
    let tools: Vec<&Value> = TOOLS
        .iter()
        .filter(|tool| tool.allowed(ctx.access) && ctx.scopes.allows_tool(tool.name))
        .map(|tool| &tool.definition)
        .collect();
    let list = to_raw(&json!({ "tools": tools }));
    if lists.len() >= SCOPED_LISTS_MAX {
        lists.clear();
    }
    lists.push((ctx.access, names.clone(), list.clone()));
    list
}

/// How many scoped tool lists [`list_result_for`] keeps serialized.
const SCOPED_LISTS_MAX: usize = 256;

/// The tool names `names` stand for, each a tool's name or a group's ([`ToolGroup`]), in the
/// tool table's order without repeats; the error names what is neither.
pub fn expand_names(names: &[String]) -> Result<Vec<String>, String> {
    let mut chosen = vec![false; TOOLS.len()];
    for name in names.iter().map(|name| name.trim()) {
        if let Some(group) = ToolGroup::parse(name) {
            for (i, tool) in TOOLS.iter().enumerate() {
                chosen[i] |= tool.in_group(group);
            }
        } else if let Some(i) = TOOLS.iter().position(|tool| tool.name == name) {
            chosen[i] = true;
        } else {
            return Err(format!(
                "{name:?} is neither a tool nor a group of tools; groups: {}; tools: {}",
                ToolGroup::names(),
                TOOLS.iter().map(|tool| tool.name).collect::<Vec<_>>().join(", ")
            ));
        }
    }
    if !chosen.contains(&true) {
        return Err("name at least one tool or group of tools".to_owned());
    }
    Ok(TOOLS.iter().zip(chosen).filter(|(_, on)| *on).map(|(t, _)| t.name.to_owned()).collect())
}

/// The tool called `name` as the audit trail names it: its own name, or `unknown` (a client
/// could send any string).
pub fn static_name(name: &str) -> &'static str {
    TOOLS.iter().find(|tool| tool.name == name).map_or("unknown", |tool| tool.name)
}

/// The access a key limited to `tools` really has: read-only when none of them writes (so it
/// is shown, audited and reviewed as what it is), else `access`.
pub fn access_with(access: Access, tools: Option<&[String]>) -> Access {
    match tools {
        Some(tools) if !tools.iter().any(|tool| is_write(tool)) => Access::ReadOnly,
        _ => access,
    }
}

/// Whether `name` is a tool that changes the workspace.
pub fn is_write(name: &str) -> bool {
    TOOLS.iter().any(|tool| tool.name == name && matches!(tool.effect, Effect::Write { .. }))
}

/// Runs a tool and returns its `tools/call` result.
///
/// Business errors, bad arguments and a write tool called with a read-only key are results with
/// `isError: true` and a sentence the agent can act on; only an unknown tool name is an `Err`.
pub fn call(
    store: &Store,
    ctx: &KeyIdentity,
    name: &str,
    arguments: Value,
) -> Result<CallToolResult, ToolCallError> {
    // A tool outside the key's scope is unknown to it, as it is not in its list.
    let found = TOOLS.iter().find(|tool| tool.name == name && ctx.scopes.allows_tool(tool.name));
    let Some(tool) = found else {
        // Not labelled by the name asked for: a client could make a series of every string.
        metrics::counter!("custory_tool_calls_total", "tool" => "unknown", "outcome" => "unknown_tool")
            .increment(1);
        return Err(ToolCallError::UnknownTool(name.to_owned()));
    };
    let result = if tool.allowed(ctx.access) {
        match confine::check_call(store, ctx, tool.name, &arguments) {
            Ok(()) => (tool.handler)(store, ctx, arguments),
            Err(e) => tool_result::<()>(tool.name, Err(e)),
        }
    } else {
        CallToolResult::error(format!(
            "This MCP key is read-only, so it cannot call {name}. To make changes, ask the \
             workspace admin for a read-write key (`custory-mcp keys create`)."
        ))
    };
    let outcome = if result.is_error { "error" } else { "ok" };
    metrics::counter!("custory_tool_calls_total", "tool" => tool.name, "outcome" => outcome)
        .increment(1);
    Ok(result)
}

// ---------------------------------------------------------------------------------------------
// Arguments and results specific to the tools (the store's own input and output types serve
// the rest).

/// No arguments.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct JourneyArgs {
    /// The journey's id (`jrn_…`) or slug (e.g. `trial-to-paid`), from `list_journeys`.
    journey: String,
    /// Also show archived stages, steps and items (left out by default).
    include_archived: Option<bool>,
}

/// A page of journeys.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct JourneysArgs {
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Also list archived journeys (left out by default).
    include_archived: Option<bool>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ArchiveArgs {
    /// What to archive or restore: a journey (`jrn_…` or its slug), stage (`stg_…`), step
    /// (`stp_…`) or item (`itm_…`).
    id: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PersonaLinkArgs {
    /// The journey (`jrn_…` or its slug).
    journey: String,
    /// The persona (`per_…`), from list_personas.
    persona_id: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ItemArgs {
    /// The item's id (`itm_…`).
    item_id: String,
    /// The `comments_next_cursor` of a previous call, for the next page of comments.
    comments_cursor: Option<String>,
}

/// A page of a list.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PageArgs {
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct LinkArgs {
    /// The cause (`itm_…`), e.g. the insight.
    from_item_id: String,
    /// The effect (`itm_…`), e.g. the opportunity the insight supports.
    to_item_id: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct CommentArgs {
    /// The item (`itm_…`) to comment on.
    item_id: String,
    /// The comment text.
    body: String,
    /// Who is commenting (e.g. "Claude Code for Dana"); defaults to the MCP key's prefix.
    author: Option<String>,
}

/// The workspace at a glance, and the key making this call.
#[derive(Serialize, JsonSchema)]
struct WorkspaceInfo {
    #[serde(flatten)]
    workspace: WorkspaceSummary,
    key: KeyInfo,
}

/// The MCP key making this call.
#[derive(Serialize, JsonSchema)]
struct KeyInfo {
    id: String,
    prefix: String,
    /// `read-write` or `read-only` (write tools need `read-write`).
    access: String,
}

#[derive(Serialize, JsonSchema)]
struct Journeys {
    journeys: Vec<JourneySummary>,
    /// Where the next page starts (give it as `cursor`); null on the last page.
    next_cursor: Option<String>,
}

#[derive(Serialize, JsonSchema)]
struct Personas {
    personas: Vec<Persona>,
    /// Where the next page starts (give it as `cursor`); null on the last page.
    next_cursor: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// The tool table.

static TOOLS: LazyLock<Vec<Tool>> = LazyLock::new(tools);

fn tools() -> Vec<Tool> {
    let kinds = ItemKind::ALL.map(ItemKind::as_str).join(", ");
    let statuses = per_kind_text(ItemKind::statuses);
    let fields = per_kind_text(ItemKind::field_names);
    let directions = link_directions_text();
    vec![
        Tool::new(
            "get_workspace",
            "Get workspace",
            "Get the workspace this MCP key belongs to: name, slug, how many journeys, personas \
             and items (per kind) it holds, and the calling key's id, prefix and access \
             (read-write or read-only). A workspace holds journeys; a journey has stages, a \
             stage has steps, and items sit on steps. Start here to orient yourself."
                .into(),
            Effect::Read,
            |store, ctx, NoArgs {}| {
                let content = store.content();
                let workspace = match &ctx.scopes.journeys {
                    Some(journeys) => {
                        content.workspace_summary_within(ctx.workspace_id, journeys)?
                    }
                    None => content.workspace_summary(ctx.workspace_id)?,
                };
                Ok(WorkspaceInfo {
                    workspace,
                    key: KeyInfo {
                        id: ctx.key_id.clone(),
                        prefix: ctx.key_prefix.clone(),
                        access: ctx.access.as_str().to_owned(),
                    },
                })
            },
        ),
        Tool::new(
            "list_journeys",
            "List journeys",
            "List the workspace's journeys (customer flows such as trial to paid) with their \
             ids (jrn_…), slugs, descriptions and how many stages, steps and items each has. \
             Archived journeys are left out unless include_archived is true. Use get_journey \
             for the map of one journey."
                .into(),
            Effect::Read,
            |store, ctx, args: JourneysArgs| {
                let (mut journeys, next_cursor) = store.content().list_journeys(
                    ctx.workspace_id,
                    args.cursor.as_deref(),
                    args.include_archived.unwrap_or(false),
                )?;
                journeys.retain(|journey| ctx.scopes.allows_journey(&journey.id));
                Ok(Journeys { journeys, next_cursor })
            },
        ),
        Tool::new(
            "get_journey",
            "Get journey map",
            "Get one journey as a tree: the personas it is about, its stages (stg_…) in order, \
             each stage's steps (stp_…) in order, and the items on each step (id itm_…, kind, \
             title, status, owner, priority, impact, effort). `journey` is a journey id (jrn_…) \
             or slug from list_journeys. Archived stages, steps and items are left out unless \
             include_archived is true. Step ids from here are where create_item puts new items."
                .into(),
            Effect::Read,
            |store, ctx, args: JourneyArgs| {
                let all = args.include_archived.unwrap_or(false);
                store.content().get_journey(ctx.workspace_id, &args.journey, all)
            },
        )
        .with_view(),
        Tool::new(
            "list_items",
            "List items",
            format!(
                "List items with their journey, stage and step, optionally filtered by journey \
                 (id jrn_… or slug), stage_id (stg_…), step_id (stp_…), kind ({kinds}), status, \
                 owner (exact name, case-insensitive), priority (P0-P3), impact and effort \
                 (low, medium, high); filters combine with AND. Statuses per kind: {statuses}. \
                 Archived items (and items on archived steps, stages, journeys) are left out \
                 unless include_archived is true. Returns at most `limit` items (default 50, at \
                 most 200); `truncated` is true when more match. Use get_item for an item's full \
                 detail."
            ),
            Effect::Read,
            |store, ctx, filter: ItemFilter| {
                let filter = ItemFilter { within_journeys: ctx.scopes.journeys.clone(), ..filter };
                store.content().list_items(ctx.workspace_id, &filter)
            },
        ),
        Tool::new(
            "get_item",
            "Get item",
            "Get one item in full by id (itm_…): title, description, status, owner, \
             kind-specific fields, where it sits (journey, stage, step), the items it links to \
             (links_to: its effects) and is linked from (linked_from: its causes), and its \
             comments."
                .into(),
            Effect::Read,
            |store, ctx, args: ItemArgs| {
                let mut item = store.content().get_item(
                    ctx.workspace_id,
                    &args.item_id,
                    args.comments_cursor.as_deref(),
                )?;
                confine::item_links(store, ctx, &mut item)?;
                Ok(item)
            },
        ),
        Tool::new(
            "search",
            "Search workspace",
            "Search the workspace by text (case-insensitive; every word must match) across item \
             titles and descriptions, step and stage names and descriptions, and persona names, \
             roles and bios. Hits have a type (item, step, stage, persona), an id (itm_…, stp_…, \
             stg_…, per_…), a title, a snippet and their context (journey › stage › step). \
             Filters: journey, kind, status, priority, impact, effort. Archived things are left \
             out unless include_archived is true. Use get_item on item hits for the full detail."
                .into(),
            Effect::Read,
            |store, ctx, query: SearchQuery| {
                let mut results = store.content().search(ctx.workspace_id, &query)?;
                confine::retain(store, ctx, &mut results.hits, |hit| &hit.id)?;
                Ok(results)
            },
        ),
        Tool::new(
            "list_personas",
            "List personas",
            "List the workspace's personas (per_…): name, role, bio, job to be done, goals and \
             frustrations. Use them to reason about who experiences a journey."
                .into(),
            Effect::Read,
            |store, ctx, args: PageArgs| {
                let (mut personas, next_cursor) =
                    store.content().list_personas(ctx.workspace_id, args.cursor.as_deref())?;
                confine::retain(store, ctx, &mut personas, |persona| &persona.id)?;
                Ok(Personas { personas, next_cursor })
            },
        ),
        Tool::new(
            "create_journey",
            "Create journey",
            "Create a journey (a customer flow, e.g. trial to paid) in the workspace. `slug` \
             (lowercase letters, digits, dashes) is made from the name when absent and must be \
             unique. `position` (from 0) places it among the journeys; at the end by default. \
             Then add its stages with create_stage."
                .into(),
            Effect::Write { idempotent: false },
            |store, ctx, new: NewJourney| {
                store.content().create_journey(ctx.workspace_id, ctx.actor(), &new)
            },
        ),
        Tool::new(
            "update_journey",
            "Update journey",
            "Rename a journey, change its slug or description, or move it to another place \
             among the journeys (`position`, from 0). Give only what changes; `journey` is its \
             id (jrn_…) or current slug."
                .into(),
            Effect::Write { idempotent: true },
            |store, ctx, update: JourneyUpdate| {
                store.content().update_journey(ctx.workspace_id, ctx.actor(), &update)
            },
        ),
        Tool::new(
            "create_stage",
            "Create stage",
            "Create a stage (a phase, e.g. Evaluate) in a journey (`journey`: jrn_… or its \
             slug). `position` (from 0) places it among the journey's stages, moving later \
             ones along; at the end by default. Then add its steps with create_step."
                .into(),
            Effect::Write { idempotent: false },
            |store, ctx, new: NewStage| {
                store.content().create_stage(ctx.workspace_id, ctx.actor(), &new)
            },
        ),
        Tool::new(
            "update_stage",
            "Update stage",
            "Rename a stage, change its description, reorder it among its journey's stages \
             (`position`, from 0), or move it with its steps and items to another journey \
             (`journey`: jrn_… or slug; at the end unless `position` is given). Give only what \
             changes."
                .into(),
            Effect::Write { idempotent: true },
            |store, ctx, update: StageUpdate| {
                store.content().update_stage(ctx.workspace_id, ctx.actor(), &update)
            },
        ),
        Tool::new(
            "create_step",
            "Create step",
            "Create a step (something the customer does, e.g. Invites a teammate) in a stage \
             (stage_id stg_… from get_journey). `position` (from 0) places it among the stage's \
             steps, moving later ones along; at the end by default. Items go on steps \
             (create_item)."
                .into(),
            Effect::Write { idempotent: false },
            |store, ctx, new: NewStep| {
                store.content().create_step(ctx.workspace_id, ctx.actor(), &new)
            },
        ),
        Tool::new(
            "update_step",
            "Update step",
            "Rename a step, change its description, reorder it among its stage's steps \
             (`position`, from 0), or move it with its items to another stage (`stage_id`: \
             stg_…, in any journey; at the end unless `position` is given). Give only what \
             changes."
                .into(),
            Effect::Write { idempotent: true },
            |store, ctx, update: StepUpdate| {
                store.content().update_step(ctx.workspace_id, ctx.actor(), &update)
            },
        ),
        Tool::new(
            "archive",
            "Archive",
            "Archive a journey (jrn_… or slug), stage (stg_…), step (stp_…) or item (itm_…): \
             it and everything in it leave list_journeys, get_journey, list_items and search \
             (they are kept: include_archived shows them, restore brings them back). Returns \
             how many items left the reads with it."
                .into(),
            Effect::Write { idempotent: false },
            |store, ctx, args: ArchiveArgs| {
                store.content().set_archived(ctx.workspace_id, ctx.actor(), &args.id, true)
            },
        ),
        Tool::new(
            "restore",
            "Restore",
            "Restore an archived journey (jrn_… or slug), stage (stg_…), step (stp_…) or item \
             (itm_…): it and what it holds come back to every read, unless what it sits in is \
             archived too. Returns how many items came back."
                .into(),
            Effect::Write { idempotent: false },
            |store, ctx, args: ArchiveArgs| {
                store.content().set_archived(ctx.workspace_id, ctx.actor(), &args.id, false)
            },
        ),
        Tool::new(
            "create_persona",
            "Create persona",
            "Create a persona (who experiences the journeys): a name, and optionally a role, a \
             bio, the job to be done, goals and frustrations (lists of short sentences)."
                .into(),
            Effect::Write { idempotent: false },
            |store, ctx, new: PersonaArgs| {
                store.content().create_persona(ctx.workspace_id, ctx.actor(), &new)
            },
        ),
        Tool::new(
            "update_persona",
            "Update persona",
            "Update a persona (per_…): name, role, bio, job to be done, goals, frustrations. \
             Give only what changes; a list given replaces the old one."
                .into(),
            Effect::Write { idempotent: true },
            |store, ctx, update: PersonaUpdate| {
                store.content().update_persona(ctx.workspace_id, ctx.actor(), &update)
            },
        ),
        Tool::new(
            "link_persona",
            "Link persona to journey",
            "Say that a journey (jrn_… or slug) is about a persona (per_…): get_journey then \
             lists the persona with the map. Linking the same pair twice is an error."
                .into(),
            Effect::Write { idempotent: true },
            |store, ctx, args: PersonaLinkArgs| {
                store.content().link_persona(
                    ctx.workspace_id,
                    ctx.actor(),
                    &args.journey,
                    &args.persona_id,
                )
            },
        ),
        Tool::new(
            "unlink_persona",
            "Unlink persona from journey",
            "Remove a persona (per_…) from a journey (jrn_… or slug); the persona itself is \
             kept."
                .into(),
            Effect::Write { idempotent: true },
            |store, ctx, args: PersonaLinkArgs| {
                store.content().unlink_persona(
                    ctx.workspace_id,
                    ctx.actor(),
                    &args.journey,
                    &args.persona_id,
                )
            },
        ),
        Tool::new(
            "create_item",
            "Create item",
            format!(
                "Create an item on a step (step_id stp_… from get_journey). kind is one of \
                 {kinds}. status is optional and defaults to the kind's first status; allowed \
                 statuses per kind: {statuses}. Optional `fields` holds kind-specific values \
                 (strings, numbers or booleans) under these names: {fields}. Any item may have a \
                 priority (P0 most urgent to P3), an impact and an effort (low, medium, high). \
                 Returns the new item, with its id (itm_…). Connect it to other items with \
                 link_items."
            ),
            Effect::Write { idempotent: false },
            |store, ctx, new: NewItem| {
                store.content().create_item(ctx.workspace_id, ctx.actor(), &new)
            },
        ),
        Tool::new(
            "update_item",
            "Update item",
            format!(
                "Update an item (itm_…); give only what changes. status must be one of the \
                 statuses of the item's kind ({statuses}). owner: an empty string clears it. \
                 `fields` is merged into the item's fields: each name given is set, and a null \
                 value removes that field; names per kind: {fields}. priority (P0-P3), impact \
                 and effort (low, medium, high): an empty string clears them. step_id moves \
                 the item to another step. The kind cannot change. Returns the updated item."
            ),
            Effect::Write { idempotent: true },
            |store, ctx, update: ItemUpdate| {
                store.content().update_item(ctx.workspace_id, ctx.actor(), &update)
            },
        ),
        Tool::new(
            "link_items",
            "Link items",
            format!(
                "Link two items of the workspace, from cause (from_item_id) to effect \
                 (to_item_id). Only these directions are allowed: {directions}; any other pair \
                 of kinds is refused. Linking the same pair twice is an error. Returns both \
                 items."
            ),
            Effect::Write { idempotent: true },
            |store, ctx, args: LinkArgs| {
                store.content().link_items(
                    ctx.workspace_id,
                    ctx.actor(),
                    &args.from_item_id,
                    &args.to_item_id,
                )
            },
        ),
        Tool::new(
            "unlink_items",
            "Unlink items",
            "Remove the link from one item (from_item_id, the cause) to another (to_item_id, \
             the effect); both items are kept. Returns both items."
                .into(),
            Effect::Write { idempotent: true },
            |store, ctx, args: LinkArgs| {
                store.content().unlink_items(
                    ctx.workspace_id,
                    ctx.actor(),
                    &args.from_item_id,
                    &args.to_item_id,
                )
            },
        ),
        Tool::new(
            "add_comment",
            "Add comment",
            "Add a comment to an item (itm_…), e.g. evidence, a decision or a question for the \
             team. `author` says who is speaking and defaults to the MCP key's prefix. Returns \
             the comment and the item it is on."
                .into(),
            Effect::Write { idempotent: false },
            |store, ctx, args: CommentArgs| {
                let default_author = format!("MCP key {}", ctx.key_prefix);
                let author = args.author.as_deref().filter(|a| !a.trim().is_empty());
                store.content().add_comment(
                    ctx.workspace_id,
                    ctx.actor(),
                    &args.item_id,
                    author.unwrap_or(&default_author),
                    &args.body,
                )
            },
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// The machinery: one generic constructor turns a typed handler into a definition plus a
// handler over JSON values.

/// Whether a tool changes the workspace: decides who may list and call it, and its annotations.
#[derive(Debug, Clone, Copy)]
enum Effect {
    Read,
    Write { idempotent: bool },
}

type Handler = Box<dyn Fn(&Store, &KeyIdentity, Value) -> CallToolResult + Send + Sync>;

struct Tool {
    name: &'static str,
    effect: Effect,
    definition: Value,
    handler: Handler,
}

impl Tool {
    fn new<A, R>(
        name: &'static str,
        title: &'static str,
        description: String,
        effect: Effect,
        run: fn(&Store, &KeyIdentity, A) -> StoreResult<R>,
    ) -> Self
    where
        A: DeserializeOwned + JsonSchema + 'static,
        R: Serialize + JsonSchema + 'static,
    {
        let (read_only, idempotent) = match effect {
            Effect::Read => (true, true),
            Effect::Write { idempotent } => (false, idempotent),
        };
        let definition = json!({
            "name": name,
            "title": title,
            "description": description,
            "inputSchema": input_schema::<A>(),
            "outputSchema": output_schema::<R>(),
            "annotations": {
                "title": title,
                "readOnlyHint": read_only,
                "destructiveHint": false,
                "idempotentHint": idempotent,
                "openWorldHint": false,
            },
        });
        let handler = Box::new(move |store: &Store, ctx: &KeyIdentity, arguments: Value| {
            let arguments = match arguments {
                // A call without arguments means "no arguments".
                Value::Null => Value::Object(Map::new()),
                // Serde would also take an array, positionally; MCP arguments are an object.
                Value::Object(_) => arguments,
                _ => {
                    return CallToolResult::error(format!(
                        "The arguments of {name} must be a JSON object."
                    ));
                }
            };
            match serde_json::from_value::<A>(arguments) {
                Ok(args) => tool_result(name, run(store, ctx, args)),
                Err(e) => CallToolResult::error(format!(
                    "Invalid arguments for {name}: {e}. The tool's inputSchema lists the \
                     arguments it takes."
                )),
            }
        });
        Self { name, effect, definition, handler }
    }

    /// Names the MCP App view a host of the `io.modelcontextprotocol/ui` extension draws the
    /// tool's result in (`_meta.ui.resourceUri`, see `app.rs`); other hosts ignore it and read
    /// the text.
    fn with_view(mut self) -> Self {
        self.definition["_meta"] = super::app::tool_meta();
        self
    }

    /// Whether the tool belongs to `group` (`keys create --tools GROUP`).
    fn in_group(&self, group: ToolGroup) -> bool {
        let name = self.name;
        match group {
            ToolGroup::Read => matches!(self.effect, Effect::Read),
            ToolGroup::Map => {
                matches!(name, "get_workspace" | "list_journeys" | "get_journey" | "archive")
                    || name == "restore"
                    || ["journey", "stage", "step"].iter().any(|what| name.ends_with(what))
            }
            ToolGroup::Items => {
                matches!(name, "list_items" | "get_item" | "search" | "link_items")
                    || matches!(name, "create_item" | "update_item" | "unlink_items")
            }
            ToolGroup::Comments => matches!(name, "list_items" | "get_item" | "add_comment"),
            ToolGroup::Personas => name.contains("persona"),
        }
    }

    fn allowed(&self, access: Access) -> bool {
        matches!(self.effect, Effect::Read) || access == Access::ReadWrite
    }
}

/// The ceiling of every tool result, in bytes of structured content (the text copy doubles it
/// on the wire, before compression). Lists page and maps are cut well below it; this is the
/// guarantee behind them.
pub const MAX_RESULT_BYTES: usize = 256 * 1024;

fn tool_result<R: Serialize>(name: &str, result: StoreResult<R>) -> CallToolResult {
    let internal = |error: &dyn std::fmt::Display| {
        tracing::error!(tool = name, %error, "tool call failed");
        CallToolResult::error("internal error, try again")
    };
    match result.map(|value| serde_json::value::to_raw_value(&value)) {
        Ok(Ok(structured)) if structured.get().len() > MAX_RESULT_BYTES => {
            tracing::warn!(tool = name, bytes = structured.get().len(), "result over the ceiling");
            CallToolResult::error(format!(
                "The answer of {name} would be larger than {} KB. Ask for less: a smaller limit, \
                 a filter, or one item at a time.",
                MAX_RESULT_BYTES / 1024
            ))
        }
        Ok(Ok(structured)) => CallToolResult::structured(structured),
        Ok(Err(e)) => internal(&e),
        // Never show SQL or database details to the client.
        Err(StoreError::Db(e)) => internal(&e),
        Err(e) => CallToolResult::error(sentence(e.to_string())),
    }
}

/// Store messages are clauses ("no item with id …"); a tool result reads as a sentence.
fn sentence(message: String) -> String {
    let mut chars = message.chars();
    let mut sentence: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => message,
    };
    if !sentence.ends_with(['.', '?', '!']) {
        sentence.push('.');
    }
    sentence
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Clock;

    const READ_TOOLS: [&str; 7] = [
        "get_workspace",
        "list_journeys",
        "get_journey",
        "list_items",
        "get_item",
        "search",
        "list_personas",
    ];
    const WRITE_TOOLS: [&str; 17] = [
        "create_journey",
        "update_journey",
        "create_stage",
        "update_stage",
        "create_step",
        "update_step",
        "archive",
        "restore",
        "create_persona",
        "update_persona",
        "link_persona",
        "unlink_persona",
        "create_item",
        "update_item",
        "link_items",
        "unlink_items",
        "add_comment",
    ];

    fn setup(access: Access) -> (tempfile::TempDir, Store, KeyIdentity) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("t.db"), Clock::default()).expect("open");
        let acme = store.access().workspace_by_slug("acme").expect("query").expect("acme");
        store.insert_test_key(acme.id, "key_test");
        let ctx = KeyIdentity {
            workspace_id: acme.id,
            workspace_slug: "acme".into(),
            key_id: "key_test".into(),
            key_prefix: "cst_test1234".into(),
            access,
            stored_client: None,
            scopes: Default::default(),
            expires: crate::api::ExpiryPolicy::Days30,
            networks: Vec::new(),
        };
        (dir, store, ctx)
    }

    fn names(definitions: &[Value]) -> Vec<&str> {
        definitions.iter().filter_map(|d| d["name"].as_str()).collect()
    }

    fn definition(name: &str) -> Value {
        definitions(Access::ReadWrite)
            .into_iter()
            .find(|d| d["name"] == name)
            .expect("tool is defined")
    }

    /// Calls a tool that must succeed; checks its result shape and that its structured content
    /// matches the tool's output schema.
    /// A call's result as a client reads it.
    fn called(store: &Store, ctx: &KeyIdentity, name: &str, arguments: Value) -> Value {
        let result = call(store, ctx, name, arguments).expect("known tool");
        serde_json::to_value(&result).expect("a result serializes")
    }

    fn ok(store: &Store, ctx: &KeyIdentity, name: &str, arguments: Value) -> Value {
        let result = called(store, ctx, name, arguments);
        assert_eq!(result["isError"], false, "{name}: {result}");
        let structured = result["structuredContent"].clone();
        let text = result["content"][0]["text"].as_str().expect("text content");
        assert_eq!(serde_json::from_str::<Value>(text).expect("JSON text"), structured);
        let schema = &definition(name)["outputSchema"];
        if let Err(problem) = check(schema, &structured, "$") {
            panic!(
                "{name}: structuredContent does not match outputSchema: {problem}\n{structured}"
            );
        }
        structured
    }

    fn err(store: &Store, ctx: &KeyIdentity, name: &str, arguments: Value) -> String {
        let result = called(store, ctx, name, arguments);
        assert_eq!(result["isError"], true, "{name}: {result}");
        assert!(result.get("structuredContent").is_none());
        result["content"][0]["text"].as_str().expect("text").to_owned()
    }

    /// A structural JSON Schema check covering what schemars emits: type (incl. nullable type
    /// arrays), enum, required, properties, additionalProperties: false, items, anyOf/oneOf.
    fn check(schema: &Value, value: &Value, path: &str) -> Result<(), String> {
        if schema == &Value::Bool(true) {
            return Ok(());
        }
        if let Some(types) = schema.get("type") {
            let types: Vec<&str> = match types {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                other => return Err(format!("{path}: odd type {other}")),
            };
            let fits = |t: &str| match t {
                "object" => value.is_object(),
                "array" => value.is_array(),
                "string" => value.is_string(),
                "integer" => value.is_i64() || value.is_u64(),
                "number" => value.is_number(),
                "boolean" => value.is_boolean(),
                "null" => value.is_null(),
                _ => false,
            };
            if !types.iter().any(|t| fits(t)) {
                return Err(format!("{path}: {value} is not {types:?}"));
            }
        }
        if let Some(Value::Array(options)) = schema.get("enum")
            && !options.contains(value)
        {
            return Err(format!("{path}: {value} not in {options:?}"));
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(Value::Array(options)) = schema.get(key)
                && !options.iter().any(|o| check(o, value, path).is_ok())
            {
                return Err(format!("{path}: {value} matches no {key} option"));
            }
        }
        if let Value::Object(object) = value {
            if let Some(Value::Array(required)) = schema.get("required") {
                for key in required.iter().filter_map(Value::as_str) {
                    if !object.contains_key(key) {
                        return Err(format!("{path}: missing required {key}"));
                    }
                }
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            for (key, field) in object {
                match properties.and_then(|p| p.get(key)) {
                    Some(sub) => check(sub, field, &format!("{path}.{key}"))?,
                    None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                        return Err(format!("{path}: unexpected property {key}"));
                    }
                    None => {}
                }
            }
        }
        if let (Value::Array(values), Some(items)) = (value, schema.get("items")) {
            for (i, v) in values.iter().enumerate() {
                check(items, v, &format!("{path}[{i}]"))?;
            }
        }
        Ok(())
    }

    fn text_has_null_type(schema: &Value) -> bool {
        let text = schema.to_string();
        text.contains("\"null\"") || text.contains(",null]")
    }

    #[test]
    fn definitions_are_complete_and_schemas_are_inline_objects() {
        let all = definitions(Access::ReadWrite);
        let expected: Vec<&str> = READ_TOOLS.iter().chain(&WRITE_TOOLS).copied().collect();
        assert_eq!(names(&all), expected);
        for d in &all {
            let name = d["name"].as_str().expect("name");
            assert!(
                d["title"].is_string() && d["description"].as_str().is_some_and(|s| s.len() > 80)
            );
            for key in ["inputSchema", "outputSchema"] {
                let schema = &d[key];
                assert_eq!(schema["type"], "object", "{name} {key}");
                assert!(schema["properties"].is_object(), "{name} {key}");
                if key == "inputSchema" {
                    // An argument left out is not advertised as nullable too; only the values
                    // inside an item's `fields` may be null (a name left out).
                    for (arg, property) in schema["properties"].as_object().expect("properties") {
                        let inside = if arg == "fields" { &property["type"] } else { property };
                        assert!(!text_has_null_type(inside), "{name}.{arg} is nullable: {schema}");
                    }
                }
                let text = schema.to_string();
                for banned in ["$ref", "$defs", "$schema", "definitions"] {
                    assert!(!text.contains(banned), "{name} {key} has {banned}: {text}");
                }
            }
            let read_only = READ_TOOLS.contains(&name);
            let annotations = &d["annotations"];
            assert_eq!(annotations["readOnlyHint"], read_only, "{name}");
            assert_eq!(annotations["destructiveHint"], false);
            assert_eq!(annotations["openWorldHint"], false);
            assert!(annotations["idempotentHint"].is_boolean());
        }
        let link = definition("link_items");
        assert!(link["description"].as_str().expect("text").contains("opportunity → metric"));
        let create = definition("create_item");
        assert_eq!(create["inputSchema"]["required"], json!(["step_id", "kind", "title"]));
        assert!(create["description"].as_str().expect("text").contains("in-progress"));
    }

    #[test]
    fn read_only_keys_neither_see_nor_call_write_tools() {
        let (_dir, store, ctx) = setup(Access::ReadOnly);
        assert_eq!(names(&definitions(Access::ReadOnly)), READ_TOOLS);
        let before =
            store.content().workspace_summary(ctx.workspace_id).expect("summary").items.total;
        let step = store
            .content()
            .get_journey(ctx.workspace_id, "trial-to-paid", false)
            .expect("journey")
            .stages[0]
            .steps[0]
            .id
            .clone();
        let args = json!({"step_id": step, "kind": "insight", "title": "Sneaky"});
        let message = err(&store, &ctx, "create_item", args);
        assert!(message.contains("read-only"), "{message}");
        assert!(message.contains("custory-mcp keys create"), "{message}");
        for name in WRITE_TOOLS {
            assert!(err(&store, &ctx, name, json!({})).contains("read-only"));
        }
        assert_eq!(
            store.content().workspace_summary(ctx.workspace_id).expect("summary").items.total,
            before
        );
        assert!(
            store
                .access()
                .list_events(ctx.workspace_id, Some("key_test"), 10, None)
                .expect("events")
                .0
                .is_empty()
        );
        ok(&store, &ctx, "get_workspace", Value::Null);
    }

    #[test]
    fn every_tool_returns_structured_content_matching_its_output_schema() {
        let (_dir, store, ctx) = setup(Access::ReadWrite);
        let workspace = ok(&store, &ctx, "get_workspace", Value::Null);
        assert_eq!(workspace["slug"], "acme");
        assert_eq!(workspace["items"]["total"], 20);
        assert_eq!(workspace["key"]["access"], "read-write");
        let journeys = ok(&store, &ctx, "list_journeys", json!({}));
        assert_eq!(journeys["journeys"][0]["slug"], "trial-to-paid");
        let journey = ok(&store, &ctx, "get_journey", json!({"journey": "trial-to-paid"}));
        let step = journey["stages"][0]["steps"][0]["id"].as_str().expect("step id").to_owned();
        let items = ok(&store, &ctx, "list_items", json!({"kind": "opportunity", "limit": 5}));
        let opportunity = items["items"][0]["id"].as_str().expect("item id").to_owned();
        let item = ok(&store, &ctx, "get_item", json!({"item_id": opportunity}));
        assert!(!item["linked_from"].as_array().expect("links").is_empty());
        ok(&store, &ctx, "search", json!({"query": "dashboard"}));
        let personas = ok(&store, &ctx, "list_personas", json!({}));
        assert_eq!(personas["personas"].as_array().expect("personas").len(), 2);

        let created = ok(
            &store,
            &ctx,
            "create_item",
            json!({"step_id": step, "kind": "solution", "title": "Comparison page vs. Mixpanel",
                   "fields": {"solution_type": "content", "target_date": "2026-09-01",
                              "unit": null, "channel": null}}),
        );
        let solution = created["id"].as_str().expect("id").to_owned();
        assert_eq!(created["status"], "idea");
        // What a strict mode sends: every name, null for those the kind does not have.
        assert_eq!(
            created["fields"],
            json!({"solution_type": "content", "target_date": "2026-09-01"})
        );
        let wrong = err(
            &store,
            &ctx,
            "create_item",
            json!({"step_id": step, "kind": "solution", "title": "x", "fields": {"unit": "%"}}),
        );
        assert!(wrong.contains("not a field of a solution"), "{wrong}");
        let updated = ok(
            &store,
            &ctx,
            "update_item",
            json!({"item_id": solution, "status": "planned", "owner": "Maya Chen"}),
        );
        assert_eq!(updated["fields"]["solution_type"], "content");
        let link = ok(
            &store,
            &ctx,
            "link_items",
            json!({"from_item_id": opportunity, "to_item_id": solution}),
        );
        assert_eq!(link["to"]["status"], "planned");
        let comment = ok(
            &store,
            &ctx,
            "add_comment",
            json!({"item_id": solution, "body": "Draft is in Notion."}),
        );
        assert_eq!(comment["comment"]["author"], "MCP key cst_test1234");

        let events = store
            .access()
            .list_events(ctx.workspace_id, Some("key_test"), 10, None)
            .expect("events")
            .0;
        assert_eq!(events.len(), 4);
    }

    #[test]
    fn bad_calls_get_actionable_errors() {
        let (_dir, store, ctx) = setup(Access::ReadWrite);
        assert!(matches!(
            call(&store, &ctx, "delete_everything", json!({})),
            Err(ToolCallError::UnknownTool(name)) if name == "delete_everything"
        ));
        let message = err(&store, &ctx, "get_item", json!({}));
        assert!(
            message.contains("get_item") && message.contains("missing field `item_id`"),
            "{message}"
        );
        let message = err(&store, &ctx, "get_item", json!(["itm_x"]));
        assert!(message.contains("must be a JSON object"), "{message}");
        let message = err(&store, &ctx, "get_item", json!({"item_id": 7}));
        assert!(message.contains("invalid type"), "{message}");
        let message = err(&store, &ctx, "list_items", json!({"kind": "epic"}));
        assert!(message.contains("touchpoint"), "{message}");
        let message = err(&store, &ctx, "list_items", json!({"journey_id": "x"}));
        assert!(message.contains("unknown field `journey_id`"), "{message}");
        let message = err(&store, &ctx, "get_item", json!({"item_id": "itm_nope"}));
        assert!(message.starts_with("No item with id \"itm_nope\""), "{message}");

        let metric =
            ok(&store, &ctx, "list_items", json!({"kind": "metric"}))["items"][0]["id"].clone();
        let touchpoint =
            ok(&store, &ctx, "list_items", json!({"kind": "touchpoint"}))["items"][0]["id"].clone();
        let message = err(
            &store,
            &ctx,
            "link_items",
            json!({"from_item_id": metric, "to_item_id": touchpoint}),
        );
        assert!(message.contains("only these directions are allowed"), "{message}");
        let message =
            err(&store, &ctx, "update_item", json!({"item_id": metric, "status": "done"}));
        assert!(message.contains("tracking, on-track, at-risk"), "{message}");
        let message = err(
            &store,
            &ctx,
            "update_item",
            json!({"item_id": metric, "fields": {"channel": "x"}}),
        );
        assert!(message.contains("\"channel\" is not a field of a metric"), "{message}");
    }
}
