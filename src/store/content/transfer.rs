//! A workspace as one JSON document (`custory-workspace/1`): export writes it, import reads it.
//!
//! Import is all or nothing: the document is checked whole first (every error names its JSON
//! path, and up to [`ERRORS_MAX`] are reported at once), then written in one transaction
//! through the same inserts as the MCP tools, so it obeys the same rules. A
//! dry run does all of that and rolls back. The document's item ids are references inside the
//! document only: the workspace gets new ids. Importing into a workspace that already holds
//! journeys or personas is refused rather than merged (see `docs/WORKSPACE_FORMAT.md`).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ContentStore;
use super::archive::{Scope, refresh};
use super::bounded;
use super::map::renumber_map;
use super::model::{ItemKind, LEVELS, PRIORITIES};
use super::reads::json_column;
use super::validate::{
    DESCRIPTION_MAX, JOURNEYS_MAX, NAME_MAX, PERSONA_LIST_MAX, STAGES_MAX, STEPS_MAX, TITLE_MAX,
    check_choice, check_status, clean_text, merge_fields, optional_text, required_text,
    required_text_multiline,
};
use super::writes::{
    Tally, insert_comment_tallied, insert_item_tallied, insert_journey, insert_link,
    insert_persona, insert_stage, insert_step,
};
use crate::api;
use crate::store::access::edge;
use crate::store::db::{Connection, params};
use crate::store::{StoreError, StoreResult, from_secs};

/// The `format` of a workspace document.
pub const FORMAT: &str = "custory-workspace/1";
/// The most validation errors one answer lists.
pub const ERRORS_MAX: usize = 50;

/// A whole workspace: its journeys (stages, steps, items and their comments), the links
/// between items, and its personas.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Custory workspace document", extend("$id" = "https://custory.example/schemas/custory-workspace-1.json"))]
pub struct WorkspaceDocument {
    /// Always `custory-workspace/1`.
    pub format: String,
    pub workspace: DocWorkspace,
    /// In map order.
    #[serde(default, deserialize_with = "bounded::journeys")]
    pub journeys: Vec<DocJourney>,
    /// Links between items, by the items' `id` in this document.
    #[serde(default, deserialize_with = "bounded::links")]
    pub links: Vec<DocLink>,
    #[serde(default, deserialize_with = "bounded::personas")]
    pub personas: Vec<DocPersona>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DocWorkspace {
    pub name: String,
    pub slug: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DocJourney {
    /// Unique in the workspace: 1-40 lowercase letters, digits and dashes.
    pub slug: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Archived: left out of reads until restored.
    #[serde(default, skip_serializing_if = "is_false")]
    pub archived: bool,
    #[serde(default, deserialize_with = "bounded::stages")]
    pub stages: Vec<DocStage>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DocStage {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Archived: left out of reads until restored.
    #[serde(default, skip_serializing_if = "is_false")]
    pub archived: bool,
    #[serde(default, deserialize_with = "bounded::steps")]
    pub steps: Vec<DocStep>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DocStep {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Archived: left out of reads until restored.
    #[serde(default, skip_serializing_if = "is_false")]
    pub archived: bool,
    #[serde(default, deserialize_with = "bounded::items")]
    pub items: Vec<DocItem>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DocItem {
    /// The item's reference in this document (links name it); an import gives it a new id.
    pub id: String,
    /// touchpoint, insight, opportunity, solution or metric.
    pub kind: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// One of the kind's statuses; its default when absent. (`archived`, a status before
    /// archiving existed, is read as `"archived": true` with the kind's default status.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// P0 (most urgent), P1, P2 or P3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = PRIORITIES))]
    pub priority: Option<String>,
    /// low, medium or high.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = LEVELS))]
    pub impact: Option<String>,
    /// low, medium or high.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = LEVELS))]
    pub effort: Option<String>,
    /// Archived: left out of reads until restored.
    #[serde(default, skip_serializing_if = "is_false")]
    pub archived: bool,

    /// The kind's own fields (strings, numbers, booleans).
    #[serde(default, skip_serializing_if = "Map::is_empty", deserialize_with = "bounded::fields")]
    pub fields: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
    /// Oldest first.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "bounded::comments"
    )]
    pub comments: Vec<DocComment>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DocComment {
    pub author: String,
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
}

/// A link from cause to effect, by the items' `id` in this document.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DocLink {
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DocPersona {
    pub name: String,
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub bio: String,
    #[serde(default)]
    pub job_to_be_done: String,
    #[serde(default, deserialize_with = "bounded::persona_list")]
    pub goals: Vec<String>,
    #[serde(default, deserialize_with = "bounded::persona_list")]
    pub frustrations: Vec<String>,
    /// The journeys (by slug) this persona appears in.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "bounded::persona_journeys"
    )]
    pub journeys: Vec<String>,
}

/// One thing wrong with a document: where (a JSON path) and what.
pub type DocError = api::ErrorDetail;

/// What an import wrote (or, in a dry run, would write).
pub type ImportCounts = api::ImportCounts;

/// Where an import goes.
#[derive(Debug, Clone)]
pub enum ImportTarget {
    /// A new workspace (name, slug); a taken slug is refused.
    New { name: String, slug: String },
    /// An existing workspace, which must hold no journeys and no personas.
    Existing(i64),
}

/// Why an import was refused.
#[derive(Debug)]
pub enum ImportError {
    /// The document is not valid: nothing was written.
    Invalid(Vec<DocError>),
    Store(StoreError),
}

impl From<StoreError> for ImportError {
    fn from(error: StoreError) -> Self {
        ImportError::Store(error)
    }
}

impl From<crate::store::db::DbError> for ImportError {
    fn from(error: crate::store::db::DbError) -> Self {
        ImportError::Store(error.into())
    }
}

/// Collects errors with their paths, up to [`ERRORS_MAX`].
#[derive(Default)]
struct Check {
    errors: Vec<DocError>,
}

impl Check {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        if self.errors.len() < ERRORS_MAX {
            self.errors.push(DocError { path: path.into(), message: message.into() });
        }
    }

    /// Records `result`'s error (a validation message) under `path`.
    fn rule<T>(&mut self, path: impl FnOnce() -> String, result: StoreResult<T>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(StoreError::Invalid(message)) => {
                self.error(path(), message);
                None
            }
            Err(other) => {
                self.error(path(), other.to_string());
                None
            }
        }
    }
}

/// Checks everything about `doc` that does not need the database. Errors come in document
/// order.
pub fn validate(doc: &WorkspaceDocument) -> Result<(), Vec<DocError>> {
    let mut check = Check::default();
    if doc.format != FORMAT {
        check.error("format", format!("is {:?}; this server reads {FORMAT:?}", doc.format));
    }
    if let Err(message) = api::validate_name(&doc.workspace.name) {
        check.error("workspace.name", message);
    }
    if let Err(message) = api::validate_slug(&doc.workspace.slug) {
        check.error("workspace.slug", message);
    }
    let most = |check: &mut Check, at: &str, n: usize, max: usize, what: &str| {
        if n > max {
            check.error(at.to_owned(), format!("holds {n} {what}; at most {max} are allowed"));
        }
    };
    most(&mut check, "journeys", doc.journeys.len(), JOURNEYS_MAX, "journeys");
    let mut slugs: HashMap<&str, usize> = HashMap::new();
    // Each item's kind (when it is one) and its path, by its id.
    let mut items: HashMap<&str, (Option<ItemKind>, String)> = HashMap::new();
    for (j, journey) in doc.journeys.iter().enumerate() {
        let at = format!("journeys[{j}]");
        if let Err(message) = api::validate_slug(&journey.slug) {
            check.error(format!("{at}.slug"), message);
        } else if let Some(first) = slugs.insert(journey.slug.as_str(), j) {
            check.error(
                format!("{at}.slug"),
                format!(
                    "the slug {:?} is also journeys[{first}]'s; slugs are unique",
                    journey.slug
                ),
            );
        }
        check.rule(|| format!("{at}.name"), required_text("name", &journey.name, TITLE_MAX));
        check.rule(
            || format!("{at}.description"),
            clean_text("description", &journey.description, DESCRIPTION_MAX, true),
        );
        most(&mut check, &format!("{at}.stages"), journey.stages.len(), STAGES_MAX, "stages");
        for (s, stage) in journey.stages.iter().enumerate() {
            let at = format!("{at}.stages[{s}]");
            most(&mut check, &format!("{at}.steps"), stage.steps.len(), STEPS_MAX, "steps");
            check.rule(|| format!("{at}.name"), required_text("name", &stage.name, TITLE_MAX));
            check.rule(
                || format!("{at}.description"),
                clean_text("description", &stage.description, DESCRIPTION_MAX, true),
            );
            for (t, step) in stage.steps.iter().enumerate() {
                let at = format!("{at}.steps[{t}]");
                check.rule(|| format!("{at}.name"), required_text("name", &step.name, TITLE_MAX));
                check.rule(
                    || format!("{at}.description"),
                    clean_text("description", &step.description, DESCRIPTION_MAX, true),
                );
                for (i, item) in step.items.iter().enumerate() {
                    let at = format!("{at}.items[{i}]");
                    let kind = check_item(&mut check, &at, item);
                    if item.id.trim().is_empty() {
                        check.error(format!("{at}.id"), "must not be empty");
                    } else if let Some((_, first)) =
                        items.insert(item.id.as_str(), (kind, at.clone()))
                    {
                        check.error(
                            format!("{at}.id"),
                            format!("the id {:?} is also {first}'s; ids are unique", item.id),
                        );
                    }
                }
            }
        }
    }
    let mut links = HashSet::new();
    for (l, link) in doc.links.iter().enumerate() {
        let at = format!("links[{l}]");
        let from = items.get(link.from.as_str());
        let to = items.get(link.to.as_str());
        for (end, id, found) in [("from", &link.from, from), ("to", &link.to, to)] {
            if found.is_none() {
                check.error(format!("{at}.{end}"), format!("no item has the id {id:?}"));
            }
        }
        if let (Some((Some(from_kind), _)), Some((Some(to_kind), _))) = (from, to) {
            if !from_kind.can_link_to(*to_kind) {
                check.error(
                    at.clone(),
                    format!(
                        "{from_kind} items cannot link to {to_kind} items; links go from cause to \
                         effect: {}",
                        super::model::link_directions_text()
                    ),
                );
            } else if !links.insert((link.from.as_str(), link.to.as_str())) {
                check.error(at, "the same link is listed twice");
            }
        }
    }
    for (p, persona) in doc.personas.iter().enumerate() {
        let at = format!("personas[{p}]");
        check.rule(|| format!("{at}.name"), required_text("name", &persona.name, NAME_MAX));
        for (field, value) in [
            ("role", &persona.role),
            ("bio", &persona.bio),
            ("job_to_be_done", &persona.job_to_be_done),
        ] {
            check.rule(|| format!("{at}.{field}"), clean_text(field, value, DESCRIPTION_MAX, true));
        }
        let mut named = HashSet::new();
        for (n, slug) in persona.journeys.iter().enumerate() {
            if !slugs.contains_key(slug.as_str()) {
                check.error(
                    format!("{at}.journeys[{n}]"),
                    format!("no journey has the slug {slug:?}"),
                );
            } else if !named.insert(slug.as_str()) {
                check.error(format!("{at}.journeys[{n}]"), "the same journey is listed twice");
            }
        }
        for (field, list) in [("goals", &persona.goals), ("frustrations", &persona.frustrations)] {
            most(&mut check, &format!("{at}.{field}"), list.len(), PERSONA_LIST_MAX, field);
            for (n, value) in list.iter().enumerate() {
                check.rule(|| format!("{at}.{field}[{n}]"), required_text(field, value, TITLE_MAX));
            }
        }
    }
    if check.errors.is_empty() { Ok(()) } else { Err(check.errors) }
}

/// The status that meant "archived" before archiving was its own flag.
const LEGACY_ARCHIVED: &str = "archived";

/// Checks one item and its comments; returns its kind when that is known.
fn check_item(check: &mut Check, at: &str, item: &DocItem) -> Option<ItemKind> {
    check.rule(|| format!("{at}.title"), required_text("title", &item.title, TITLE_MAX));
    check.rule(
        || format!("{at}.description"),
        clean_text("description", &item.description, DESCRIPTION_MAX, true),
    );
    if let Some(owner) = &item.owner {
        check.rule(|| format!("{at}.owner"), optional_text("owner", owner));
    }
    for (c, comment) in item.comments.iter().enumerate() {
        let at = format!("{at}.comments[{c}]");
        check.rule(|| format!("{at}.author"), required_text("author", &comment.author, NAME_MAX));
        check.rule(
            || format!("{at}.body"),
            required_text_multiline("body", &comment.body, DESCRIPTION_MAX),
        );
    }
    let Some(kind) = ItemKind::parse(item.kind.trim()) else {
        check.error(
            format!("{at}.kind"),
            format!(
                "{:?} is not a kind of item; use one of: {}",
                item.kind,
                ItemKind::ALL.map(ItemKind::as_str).join(", ")
            ),
        );
        return None;
    };
    if let Some(status) = item.status.as_deref().filter(|s| s.trim() != LEGACY_ARCHIVED) {
        check.rule(|| format!("{at}.status"), check_status(kind, status));
    }
    for (field, value, allowed) in [
        ("priority", &item.priority, &PRIORITIES[..]),
        ("impact", &item.impact, &LEVELS[..]),
        ("effort", &item.effort, &LEVELS[..]),
    ] {
        if let Some(value) = value {
            check.rule(|| format!("{at}.{field}"), check_choice(field, value, allowed));
        }
    }
    check.rule(|| format!("{at}.fields"), merge_fields(kind, Map::new(), &item.fields));
    Some(kind)
}

/// The whole workspace as a document, read in one snapshot. Its statements read a whole
/// workspace each (a million items at the quota), so the per-statement limit is lifted:
/// the owner asked for it, and the server runs one export at a time.
pub(super) fn export_workspace(
    s: &ContentStore<'_>,
    workspace_id: i64,
) -> StoreResult<WorkspaceDocument> {
    let reader = s.reader_unlimited()?;
    let conn = reader.snapshot()?;
    if conn.is_postgres() {
        conn.execute_batch("SET LOCAL statement_timeout = 0")?;
    }
    let workspace = edge::workspace(&conn, workspace_id)?
        .map(|row| DocWorkspace { name: row.workspace.name, slug: row.workspace.slug })
        .ok_or_else(|| StoreError::NotFound("this workspace no longer exists".into()))?;
    let mut journeys = Vec::new();
    let mut journey_at = HashMap::new();
    for row in conn.query(
        "SELECT id, slug, name, description, archived_at FROM journeys WHERE workspace_id = ?1
             ORDER BY position, rowid",
        [workspace_id],
    )? {
        journey_at.insert(row.get::<String>("id")?, journeys.len());
        journeys.push(DocJourney {
            slug: row.get("slug")?,
            name: row.get("name")?,
            description: row.get("description")?,
            archived: row.get::<Option<i64>>("archived_at")?.is_some(),
            stages: Vec::new(),
        });
    }
    let mut stage_at = HashMap::new();
    for row in conn.query(
        "SELECT id, journey_id, name, description, archived_at FROM stages
             WHERE workspace_id = ?1 ORDER BY position, rowid",
        [workspace_id],
    )? {
        let Some(&j) = journey_at.get(&row.get::<String>("journey_id")?) else { continue };
        stage_at.insert(row.get::<String>("id")?, (j, journeys[j].stages.len()));
        journeys[j].stages.push(DocStage {
            name: row.get("name")?,
            description: row.get("description")?,
            archived: row.get::<Option<i64>>("archived_at")?.is_some(),
            steps: Vec::new(),
        });
    }
    let mut step_at = HashMap::new();
    for row in conn.query(
        "SELECT id, stage_id, name, description, archived_at FROM steps WHERE workspace_id = ?1
             ORDER BY position, rowid",
        [workspace_id],
    )? {
        let Some(&(j, s)) = stage_at.get(&row.get::<String>("stage_id")?) else { continue };
        let steps = &mut journeys[j].stages[s].steps;
        step_at.insert(row.get::<String>("id")?, (j, s, steps.len()));
        steps.push(DocStep {
            name: row.get("name")?,
            description: row.get("description")?,
            archived: row.get::<Option<i64>>("archived_at")?.is_some(),
            items: Vec::new(),
        });
    }
    let mut item_at = HashMap::new();
    for row in conn.query(
        "SELECT id, step_id, kind, title, description, status, owner, fields, created_at,
                    updated_at, priority, impact, effort, archived_at
             FROM items WHERE workspace_id = ?1 ORDER BY rowid",
        [workspace_id],
    )? {
        let Some(&(j, s, t)) = step_at.get(&row.get::<String>("step_id")?) else { continue };
        let id: String = row.get("id")?;
        let items = &mut journeys[j].stages[s].steps[t].items;
        item_at.insert(id.clone(), (j, s, t, items.len()));
        let (created, updated): (i64, i64) = (row.get("created_at")?, row.get("updated_at")?);
        items.push(DocItem {
            id,
            kind: row.get("kind")?,
            title: row.get("title")?,
            description: row.get("description")?,
            status: Some(row.get("status")?),
            owner: row.get("owner")?,
            fields: json_column(&row, "fields")?,
            priority: row.get("priority")?,
            impact: row.get("impact")?,
            effort: row.get("effort")?,
            archived: row.get::<Option<i64>>("archived_at")?.is_some(),
            created_at: Some(from_secs(created)),
            updated_at: Some(from_secs(updated)),
            comments: Vec::new(),
        });
    }
    for row in conn.query(
        "SELECT item_id, author, body, created_at FROM comments WHERE workspace_id = ?1
             ORDER BY created_at, rowid",
        [workspace_id],
    )? {
        let Some(&(j, s, t, i)) = item_at.get(&row.get::<String>("item_id")?) else { continue };
        journeys[j].stages[s].steps[t].items[i].comments.push(DocComment {
            author: row.get("author")?,
            body: row.get("body")?,
            created_at: Some(from_secs(row.get("created_at")?)),
        });
    }
    let links = conn
        .query(
            "SELECT from_item, to_item FROM item_links WHERE workspace_id = ?1
                 ORDER BY rowid",
            [workspace_id],
        )?
        .iter()
        .map(|row| Ok(DocLink { from: row.get("from_item")?, to: row.get("to_item")? }))
        .collect::<StoreResult<_>>()?;
    let mut persona_journeys: HashMap<String, Vec<String>> = HashMap::new();
    for row in conn.query(
        "SELECT jp.persona_id, j.slug FROM journey_personas jp
             JOIN journeys j ON j.id = jp.journey_id WHERE jp.workspace_id = ?1
             ORDER BY j.position, j.rowid",
        [workspace_id],
    )? {
        persona_journeys.entry(row.get("persona_id")?).or_default().push(row.get("slug")?);
    }
    let personas = conn
        .query(
            "SELECT id, name, role, bio, job_to_be_done, goals, frustrations FROM personas
                 WHERE workspace_id = ?1 ORDER BY rowid",
            [workspace_id],
        )?
        .iter()
        .map(|row| {
            let id: String = row.get("id")?;
            Ok(DocPersona {
                journeys: persona_journeys.remove(&id).unwrap_or_default(),
                name: row.get("name")?,
                role: row.get("role")?,
                bio: row.get("bio")?,
                job_to_be_done: row.get("job_to_be_done")?,
                goals: json_column(row, "goals")?,
                frustrations: json_column(row, "frustrations")?,
            })
        })
        .collect::<StoreResult<_>>()?;
    Ok(WorkspaceDocument { format: FORMAT.to_owned(), workspace, journeys, links, personas })
}

/// Writes `doc` into `target` in one transaction (rolled back when `dry_run`), after
/// [`validate`]. Returns the workspace's slug and what was written.
pub(super) fn import_workspace(
    s: &ContentStore<'_>,
    target: &ImportTarget,
    doc: &WorkspaceDocument,
    dry_run: bool,
) -> Result<(String, ImportCounts), ImportError> {
    validate(doc).map_err(ImportError::Invalid)?;
    let now = s.now().timestamp();
    // Without the per-statement limit: an import is one long transaction of short
    // statements, and the owner asked for it.
    let conn = s.writer_unlimited();
    let tx = conn.transaction()?;
    let (workspace_id, slug) = match target {
        ImportTarget::New { name, slug } => (
            insert_workspace(
                &tx,
                name,
                slug,
                now,
                "import into it with --workspace if it is empty",
            )?,
            slug.clone(),
        ),
        ImportTarget::Existing(id) => {
            let slug = workspace_slug(&tx, *id)?;
            let things: i64 = tx.query_row(
                "SELECT (SELECT count(*) FROM journeys WHERE workspace_id = ?1)
                          + (SELECT count(*) FROM personas WHERE workspace_id = ?1) AS n",
                [*id],
                |row| row.get("n"),
            )?;
            if things > 0 {
                return Err(StoreError::Conflict(format!(
                    "the workspace {slug:?} already holds journeys or personas; an import \
                         goes into an empty workspace only, so that importing a file twice \
                         cannot duplicate it (import with --new NAME instead)"
                ))
                .into());
            }
            (*id, slug)
        }
    };
    let counts = write_document(&tx, workspace_id, doc, 0, now)?;
    super::writes::check_quotas(s, &tx, workspace_id)?;
    if dry_run {
        drop(tx); // rolled back
    } else {
        edge::insert_event(
            &tx,
            now,
            &edge::NewEvent {
                workspace_id,
                kind: api::EventKind::WorkspaceImported,
                key_id: None,
                key_prefix: None,
                actor: &api::Author::of(api::AuthorKind::Administrator),
                detail: &format!(
                    "{} journeys, {} items, {} links, {} comments, {} personas",
                    counts.journeys, counts.items, counts.links, counts.comments, counts.personas
                ),
            },
        )?;
        tx.commit()?;
    }
    Ok((slug, counts))
}

/// Adds one journey (a CSV import: `store/csv.rs`) to `target` in one transaction (rolled
/// back when `dry_run`), after [`validate`], through the same inserts, quotas and renumbering
/// as [`super::ContentStore::import_workspace`]. Unlike a whole document it goes into a workspace that
/// already holds journeys, after them; a journey slug already taken is refused, so the same
/// file imported twice is not duplicated. Returns the workspace's slug and what was written.
pub(super) fn import_journey(
    s: &ContentStore<'_>,
    target: &ImportTarget,
    journey: DocJourney,
    dry_run: bool,
) -> Result<(String, ImportCounts), ImportError> {
    let doc = single_journey(journey);
    validate(&doc).map_err(ImportError::Invalid)?;
    let journey = &doc.journeys[0];
    let now = s.now().timestamp();
    let conn = s.writer_unlimited();
    let tx = conn.transaction()?;
    let (workspace_id, slug) = match target {
        ImportTarget::New { name, slug } => (
            insert_workspace(&tx, name, slug, now, "add the journey to it with --workspace")?,
            slug.clone(),
        ),
        ImportTarget::Existing(id) => (*id, workspace_slug(&tx, *id)?),
    };
    let taken = tx
        .prepare_cached("SELECT 1 FROM journeys WHERE workspace_id = ?1 AND slug = ?2")?
        .exists(params![workspace_id, journey.slug])?;
    if taken {
        return Err(StoreError::Conflict(format!(
            "the workspace {slug:?} already has a journey with the slug {:?}; nothing was \
                 imported (importing the same file twice is refused rather than duplicated: \
                 pass another --journey NAME to import it as another journey)",
            journey.slug
        ))
        .into());
    }
    let (journeys, position): (i64, i64) = tx.query_row(
        "SELECT count(*) AS n, COALESCE(MAX(position) + 1, 0) AS next_position FROM journeys
         WHERE workspace_id = ?1",
        [workspace_id],
        |row| Ok((row.get("n")?, row.get("next_position")?)),
    )?;
    if usize::try_from(journeys).unwrap_or(usize::MAX) >= JOURNEYS_MAX {
        return Err(StoreError::Quota(format!(
            "the workspace {slug:?} holds {journeys} journeys, the most a workspace may \
                 hold; nothing was imported"
        ))
        .into());
    }
    let counts = write_document(&tx, workspace_id, &doc, position, now)?;
    super::writes::check_quotas(s, &tx, workspace_id)?;
    if dry_run {
        drop(tx); // rolled back
    } else {
        edge::insert_event(
            &tx,
            now,
            &edge::NewEvent {
                workspace_id,
                kind: api::EventKind::JourneyImported,
                key_id: None,
                key_prefix: None,
                actor: &api::Author::of(api::AuthorKind::Administrator),
                detail: &format!(
                    "journey {:?}: {} stages, {} steps, {} items",
                    journey.slug, counts.stages, counts.steps, counts.items
                ),
            },
        )?;
        tx.commit()?;
    }
    Ok((slug, counts))
}

/// A document holding `journey` alone, as [`validate`] and [`write_document`] take it (its
/// workspace member is a placeholder: a journey import goes into a workspace named apart).
pub(super) fn single_journey(journey: DocJourney) -> WorkspaceDocument {
    WorkspaceDocument {
        format: FORMAT.to_owned(),
        workspace: DocWorkspace { name: "journey".to_owned(), slug: "journey".to_owned() },
        journeys: vec![journey],
        links: Vec::new(),
        personas: Vec::new(),
    }
}

/// Creates the workspace an import goes into; a taken slug is refused (`otherwise`: what
/// else the owner can do).
fn insert_workspace(
    conn: &Connection,
    name: &str,
    slug: &str,
    now: i64,
    otherwise: &str,
) -> Result<i64, ImportError> {
    edge::insert_workspace(conn, name, slug, now)?.ok_or_else(|| {
        StoreError::Conflict(format!(
            "a workspace with the slug {slug:?} already exists; nothing was imported (pass \
             another --new NAME, or {otherwise})"
        ))
        .into()
    })
}

/// The slug of the workspace an import goes into.
pub(super) fn workspace_slug(conn: &Connection, id: i64) -> StoreResult<String> {
    edge::workspace(conn, id)?
        .map(|row| row.workspace.slug)
        .ok_or_else(|| StoreError::NotFound("this workspace no longer exists".into()))
}

/// Inserts a validated document's contents into the workspace, its journeys from
/// `first_position` on (after the journeys the workspace already holds).
pub(super) fn write_document(
    conn: &Connection,
    ws: i64,
    doc: &WorkspaceDocument,
    first_position: i64,
    now: i64,
) -> StoreResult<ImportCounts> {
    let mut counts = ImportCounts::default();
    let mut ids: HashMap<&str, String> = HashMap::new();
    // The workspace's counters are written once, at the end.
    let mut tally = Tally::default();
    let mut journey_ids: HashMap<&str, String> = HashMap::new();
    // Archived things are written as they are and archived at the end, all at once.
    let mut archived_nodes: Vec<(&str, String)> = Vec::new();
    let mut archived_items: Vec<String> = Vec::new();
    for (position, journey) in (first_position..).zip(&doc.journeys) {
        let name = journey.name.trim();
        let description = journey.description.trim();
        let journey_id = insert_journey(conn, ws, &journey.slug, name, description, position, now)?;
        counts.journeys += 1;
        journey_ids.insert(journey.slug.as_str(), journey_id.clone());
        if journey.archived {
            archived_nodes.push(("journeys", journey_id.clone()));
        }
        for (position, stage) in (0..).zip(&journey.stages) {
            let (name, description) = (stage.name.trim(), stage.description.trim());
            let stage_id = insert_stage(conn, ws, &journey_id, name, description, position)?;
            counts.stages += 1;
            if stage.archived {
                archived_nodes.push(("stages", stage_id.clone()));
            }
            for (position, step) in (0..).zip(&stage.steps) {
                let (name, description) = (step.name.trim(), step.description.trim());
                let step_id = insert_step(conn, ws, &stage_id, name, description, position)?;
                counts.steps += 1;
                if step.archived {
                    archived_nodes.push(("steps", step_id.clone()));
                }
                for item in &step.items {
                    let (id, archived) = write_item(conn, ws, &step_id, item, now, &mut tally)?;
                    if archived {
                        archived_items.push(id.clone());
                    }
                    counts.items += 1;
                    counts.comments += item.comments.len() as u64;
                    ids.insert(item.id.as_str(), id);
                }
            }
        }
    }
    tally.apply(conn, ws)?;
    renumber_map(conn, ws)?;
    for link in &doc.links {
        let id = |reference: &str| {
            ids.get(reference)
                .cloned()
                .ok_or_else(|| StoreError::Invalid(format!("no item has the id {reference:?}")))
        };
        insert_link(conn, ws, &id(&link.from)?, &id(&link.to)?, now)?;
        counts.links += 1;
    }
    for persona in &doc.personas {
        write_persona(conn, ws, persona, &journey_ids, now)?;
        counts.personas += 1;
    }
    if !archived_items.is_empty() || !archived_nodes.is_empty() {
        archive_imported(conn, ws, &archived_nodes, &archived_items, now)?;
    }
    Ok(counts)
}

/// Inserts one validated persona and its links to the journeys (by slug, among `journey_ids`)
/// it names: how many rows that wrote.
pub(super) fn write_persona(
    conn: &Connection,
    ws: i64,
    persona: &DocPersona,
    journey_ids: &HashMap<&str, String>,
    now: i64,
) -> StoreResult<usize> {
    let goals: Vec<&str> = persona.goals.iter().map(|g| g.trim()).collect();
    let frustrations: Vec<&str> = persona.frustrations.iter().map(|f| f.trim()).collect();
    let new = super::model::NewPersona {
        name: persona.name.trim(),
        role: persona.role.trim(),
        bio: persona.bio.trim(),
        job_to_be_done: persona.job_to_be_done.trim(),
        goals: &goals,
        frustrations: &frustrations,
    };
    let persona_id = insert_persona(conn, ws, &new, now)?;
    for slug in &persona.journeys {
        let journey_id = journey_ids
            .get(slug.as_str())
            .ok_or_else(|| StoreError::Invalid(format!("no journey has the slug {slug:?}")))?;
        conn.prepare_cached(
            "INSERT INTO journey_personas (workspace_id, journey_id, persona_id, created_at)
             VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![ws, journey_id, persona_id, now])?;
    }
    Ok(1 + persona.journeys.len())
}

/// Inserts one validated item and its comments into step `step_id`: its new id, and whether
/// the document says it is archived (it is archived after everything is written).
pub(super) fn write_item(
    conn: &Connection,
    ws: i64,
    step_id: &str,
    item: &DocItem,
    now: i64,
    tally: &mut Tally,
) -> StoreResult<(String, bool)> {
    let kind = ItemKind::parse(item.kind.trim())
        .ok_or_else(|| StoreError::Invalid(format!("kind {:?}", item.kind)))?;
    let legacy = item.status.as_deref().map(str::trim) == Some(LEGACY_ARCHIVED);
    let new = super::model::NewItem {
        step_id: step_id.to_owned(),
        kind,
        title: item.title.clone(),
        description: Some(item.description.clone()),
        status: if legacy { None } else { item.status.clone() },
        owner: item.owner.clone(),
        priority: item.priority.clone(),
        impact: item.impact.clone(),
        effort: item.effort.clone(),
        fields: Some(item.fields.clone()),
    };
    let created = item.created_at.map_or(now, |at| at.timestamp());
    let id = insert_item_tallied(conn, ws, &new, created, tally)?;
    if let Some(updated) = item.updated_at.map(|at| at.timestamp())
        && updated != created
    {
        conn.prepare_cached("UPDATE items SET updated_at = ?2 WHERE id = ?1")?
            .execute(params![id, updated])?;
    }
    for comment in &item.comments {
        let at = comment.created_at.map_or(now, |at| at.timestamp());
        let (author, body) = (&comment.author, &comment.body);
        insert_comment_tallied(conn, ws, &id, author, body, at, tally)?;
    }
    Ok((id, item.archived || legacy))
}

/// Marks what a document says is archived, after it was written: the rows' own flags, each
/// step's count of items, then what is hidden and its place in the index.
pub(super) fn archive_imported(
    conn: &Connection,
    ws: i64,
    nodes: &[(&str, String)],
    items: &[String],
    now: i64,
) -> StoreResult<()> {
    for id in items {
        conn.prepare_cached("UPDATE items SET archived_at = ?2, hidden = 1 WHERE id = ?1")?
            .execute(params![id, now])?;
        conn.prepare_cached(
            "UPDATE steps SET item_count = item_count - 1
             WHERE id = (SELECT step_id FROM items WHERE id = ?1)",
        )?
        .execute([id])?;
        super::search::index_item(conn, ws, id)?;
        for row in conn.query("SELECT id FROM comments WHERE item_id = ?1", [id])? {
            super::search::index_comment(conn, ws, &row.get::<String>("id")?)?;
        }
    }
    for (table, id) in nodes {
        // `table` is one of three names, never text from the document.
        conn.execute(
            &format!("UPDATE {table} SET archived_at = ?2 WHERE id = ?1"),
            params![id, now],
        )?;
    }
    for (table, id) in nodes {
        let scope = match *table {
            "journeys" => Scope::Journey(id),
            "stages" => Scope::Stage(id),
            _ => Scope::Step(id),
        };
        refresh(conn, ws, scope, false)?;
    }
    Ok(())
}

/// The JSON Schema of [`WorkspaceDocument`], as `docs/workspace.schema.json` holds it.
pub fn json_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(WorkspaceDocument)).unwrap_or(Value::Null)
}
