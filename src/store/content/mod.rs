//! The content room: the journey model MCP clients read and build. Journeys, stages, steps,
//! items, links, comments and personas; their reads (`reads`, `context` for resources and
//! prompts, `search`), writes (`writes`, `map`, `archive`), the rules every write obeys
//! (`validate`), the workspace document (`transfer`: export, import; `csv`), and the documents
//! new workspaces start from (`templates`, the demo workspace among them).
//!
//! [`ContentStore`] below is the whole interface the rest of the crate uses. Every method takes
//! the caller's workspace id and never reads or writes outside it. What this room needs of the
//! access room (a key still active, a workspace row, an audit event) it asks through
//! `access::edge`, in its own transaction.

mod archive;
pub mod bounded;
mod context;
pub mod csv;
mod map;
pub mod model;
mod reads;
mod scope;
mod search;
pub mod staged;
pub mod templates;
pub mod transfer;
mod validate;
mod writes;

use chrono::{DateTime, Utc};

use super::base::Db;
use super::db::Connection;
use super::{Page, StoreOptions, StoreResult};
use crate::api::{Template, Workspace};
use crate::store::access::edge::Actor;
pub use context::{
    CHANGES_MAX, COMPLETIONS_MAX, ChangedItem, Completing, JourneyChanges, JourneyMap,
    MAP_LINKS_SHOWN,
};
use model::{
    ArchiveResult, ItemComment, ItemDetail, ItemFilter, ItemLink, ItemList, ItemUpdate,
    JourneySummary, JourneyTree, JourneyUpdate, MapNode, NewItem, NewJourney, NewStage, NewStep,
    Persona, PersonaArgs, PersonaLink, PersonaUpdate, SearchQuery, SearchResults, StageUpdate,
    StepUpdate, WorkspaceSummary,
};
use transfer::{DocJourney, ImportCounts, ImportError, ImportTarget, WorkspaceDocument};
#[cfg(test)]
pub(super) use writes::{insert_journey, insert_stage, insert_step};

/// The content room's face: see the module's documentation.
#[derive(Clone, Copy)]
pub struct ContentStore<'s> {
    db: &'s Db,
}

impl<'s> ContentStore<'s> {
    pub(super) fn new(db: &'s Db) -> Self {
        Self { db }
    }

    /// Runs `parse`, a workspace document's parse on this thread, with the document's limits
    /// enforced as it goes (`bounded.rs`): this server's quotas among them.
    pub fn parsing<T>(&self, parse: impl FnOnce() -> T) -> T {
        bounded::with_budget(&self.options().quotas, parse)
    }

    /// Creates the demo workspace when the database has none (a new database).
    pub(super) fn seed_demo_if_empty(&self) -> StoreResult<()> {
        templates::seed_demo_if_empty(self)
    }

    fn now(&self) -> DateTime<Utc> {
        self.db.now()
    }

    fn options(&self) -> &StoreOptions {
        self.db.options()
    }

    fn reader(&self) -> StoreResult<Connection<'s>> {
        self.db.reader()
    }

    fn reader_unlimited(&self) -> StoreResult<Connection<'s>> {
        self.db.reader_unlimited()
    }

    fn writer(&self) -> Connection<'s> {
        self.db.writer()
    }

    fn writer_unlimited(&self) -> Connection<'s> {
        self.db.writer_unlimited()
    }
}

/// For a migration: every workspace's map order and search index, made from what the database
/// holds (0002 added them).
pub(super) fn derive_all(conn: &Connection) -> StoreResult<()> {
    for id in conn.query("SELECT DISTINCT workspace_id FROM journeys", [])? {
        map::renumber_map(conn, id.get("workspace_id")?)?;
    }
    search::rebuild(conn)
}

/// For a migration: the search index again, from what the database holds.
pub(super) fn rebuild_search(conn: &Connection) -> StoreResult<()> {
    search::rebuild(conn)
}

impl ContentStore<'_> {
    // Reads ----------------------------------------------------------------------------------

    pub fn workspace_summary(&self, ws: i64) -> StoreResult<WorkspaceSummary> {
        reads::workspace_summary(self, ws)
    }

    /// One page of the journeys, in their order, with the size of each map.
    pub fn list_journeys(
        &self,
        ws: i64,
        cursor: Option<&str>,
        archived: bool,
    ) -> StoreResult<Page<JourneySummary>> {
        reads::list_journeys(self, ws, cursor, archived)
    }

    /// A journey by id or slug: its personas, stages, steps and first items, within bounds.
    pub fn get_journey(&self, ws: i64, journey: &str, archived: bool) -> StoreResult<JourneyTree> {
        reads::get_journey(self, ws, journey, archived)
    }

    /// One page of items, in map order, filtered.
    pub fn list_items(&self, ws: i64, filter: &ItemFilter) -> StoreResult<ItemList> {
        reads::list_items(self, ws, filter)
    }

    /// An item in full, with one page of its comments.
    pub fn get_item(
        &self,
        ws: i64,
        item_id: &str,
        comments: Option<&str>,
    ) -> StoreResult<ItemDetail> {
        reads::get_item(self, ws, item_id, comments)
    }

    /// One page of the personas, oldest first.
    pub fn list_personas(&self, ws: i64, cursor: Option<&str>) -> StoreResult<Page<Persona>> {
        reads::list_personas(self, ws, cursor)
    }

    /// The journey (`jrn_…`) a reference sits in: a journey's id or slug, or a stage, step,
    /// item or comment id; `None` for anything else or nothing (keys confined to journeys).
    pub fn journey_of(&self, ws: i64, reference: &str) -> StoreResult<Option<String>> {
        scope::journey_of(self, ws, reference)
    }

    /// The workspace's summary counted within `journeys` only (keys confined to journeys).
    pub fn workspace_summary_within(
        &self,
        ws: i64,
        journeys: &[String],
    ) -> StoreResult<WorkspaceSummary> {
        scope::summary_within(self, ws, journeys)
    }

    /// The journeys (`jrn_…`) a persona is linked to.
    pub fn persona_journeys(&self, ws: i64, persona_id: &str) -> StoreResult<Vec<String>> {
        scope::persona_journeys(self, ws, persona_id)
    }

    /// The error a reference to nothing gets, for one outside a key's journeys: the same words.
    pub fn not_found(reference: &str) -> crate::store::StoreError {
        scope::not_found(reference)
    }

    /// What `archive`/`restore` answers for an id that names nothing they take.
    pub fn unknown_archive_target(id: &str) -> crate::store::StoreError {
        archive::unknown_target(id)
    }

    /// One page of hits, best first.
    pub fn search(&self, ws: i64, query: &SearchQuery) -> StoreResult<SearchResults> {
        search::search(self, ws, query)
    }

    /// A journey's map as `get_journey` shows it, with the first links of each item shown.
    pub fn journey_map(&self, ws: i64, journey: &str) -> StoreResult<JourneyMap> {
        context::journey_map(self, ws, journey)
    }

    /// A journey's items added or changed, and comments added, since `since`.
    pub fn journey_changes(
        &self,
        ws: i64,
        journey: &str,
        since: DateTime<Utc>,
    ) -> StoreResult<JourneyChanges> {
        context::journey_changes(self, ws, journey, since)
    }

    /// Names of what `completing` names that begin with `typed`, and whether there are more.
    pub fn complete(
        &self,
        ws: i64,
        completing: Completing<'_>,
        typed: &str,
    ) -> StoreResult<(Vec<String>, bool)> {
        context::complete(self, ws, completing, typed)
    }

    // Writes, each in one transaction with its audit event -------------------------------------

    pub fn create_journey(&self, ws: i64, by: Actor<'_>, new: &NewJourney) -> StoreResult<MapNode> {
        map::create_journey(self, ws, by, new)
    }

    pub fn create_stage(&self, ws: i64, by: Actor<'_>, new: &NewStage) -> StoreResult<MapNode> {
        map::create_stage(self, ws, by, new)
    }

    pub fn create_step(&self, ws: i64, by: Actor<'_>, new: &NewStep) -> StoreResult<MapNode> {
        map::create_step(self, ws, by, new)
    }

    pub fn update_journey(
        &self,
        ws: i64,
        by: Actor<'_>,
        update: &JourneyUpdate,
    ) -> StoreResult<MapNode> {
        map::update_journey(self, ws, by, update)
    }

    pub fn update_stage(
        &self,
        ws: i64,
        by: Actor<'_>,
        update: &StageUpdate,
    ) -> StoreResult<MapNode> {
        map::update_stage(self, ws, by, update)
    }

    pub fn update_step(&self, ws: i64, by: Actor<'_>, update: &StepUpdate) -> StoreResult<MapNode> {
        map::update_step(self, ws, by, update)
    }

    pub fn create_item(&self, ws: i64, by: Actor<'_>, new: &NewItem) -> StoreResult<ItemDetail> {
        writes::create_item(self, ws, by, new)
    }

    pub fn update_item(
        &self,
        ws: i64,
        by: Actor<'_>,
        update: &ItemUpdate,
    ) -> StoreResult<ItemDetail> {
        writes::update_item(self, ws, by, update)
    }

    /// Links `from_id` to `to_id` (cause → effect) in one of the five allowed directions.
    pub fn link_items(
        &self,
        ws: i64,
        by: Actor<'_>,
        from_id: &str,
        to_id: &str,
    ) -> StoreResult<ItemLink> {
        writes::link_items(self, ws, by, from_id, to_id)
    }

    pub fn unlink_items(
        &self,
        ws: i64,
        by: Actor<'_>,
        from_id: &str,
        to_id: &str,
    ) -> StoreResult<ItemLink> {
        writes::unlink_items(self, ws, by, from_id, to_id)
    }

    pub fn add_comment(
        &self,
        ws: i64,
        by: Actor<'_>,
        item_id: &str,
        author: &str,
        body: &str,
    ) -> StoreResult<ItemComment> {
        writes::add_comment(self, ws, by, item_id, author, body)
    }

    pub fn create_persona(
        &self,
        ws: i64,
        by: Actor<'_>,
        new: &PersonaArgs,
    ) -> StoreResult<Persona> {
        writes::create_persona(self, ws, by, new)
    }

    pub fn update_persona(
        &self,
        ws: i64,
        by: Actor<'_>,
        update: &PersonaUpdate,
    ) -> StoreResult<Persona> {
        writes::update_persona(self, ws, by, update)
    }

    /// Says that journey `journey` (id or slug) is about persona `persona_id`.
    pub fn link_persona(
        &self,
        ws: i64,
        by: Actor<'_>,
        journey: &str,
        persona_id: &str,
    ) -> StoreResult<PersonaLink> {
        writes::link_persona(self, ws, by, journey, persona_id)
    }

    pub fn unlink_persona(
        &self,
        ws: i64,
        by: Actor<'_>,
        journey: &str,
        persona_id: &str,
    ) -> StoreResult<PersonaLink> {
        writes::unlink_persona(self, ws, by, journey, persona_id)
    }

    /// Archives (`archived`) or restores a journey, stage, step or item, with all it holds.
    pub fn set_archived(
        &self,
        ws: i64,
        by: Actor<'_>,
        id: &str,
        archived: bool,
    ) -> StoreResult<ArchiveResult> {
        archive::set_archived(self, ws, by, id, archived)
    }

    // Whole workspaces -------------------------------------------------------------------------

    /// A new workspace holding what `template` holds (one transaction; a taken slug writes
    /// nothing). Returns the workspace and what the template wrote.
    pub fn create_workspace_from_template(
        &self,
        name: &str,
        slug: &str,
        template: Template,
    ) -> Result<(Workspace, ImportCounts), ImportError> {
        templates::create_workspace_from_template(self, name, slug, template)
    }

    /// The whole workspace as a document, read in one snapshot.
    pub fn export_workspace(&self, ws: i64) -> StoreResult<WorkspaceDocument> {
        transfer::export_workspace(self, ws)
    }

    /// Writes a validated document into `target`, all or nothing (`dry_run`: rolled back).
    pub fn import_workspace(
        &self,
        target: &ImportTarget,
        doc: &WorkspaceDocument,
        dry_run: bool,
    ) -> Result<(String, ImportCounts), ImportError> {
        transfer::import_workspace(self, target, doc, dry_run)
    }

    /// An import of `doc` into `target` written in short slices out of sight, then published
    /// (`staged.rs`); `doc` is checked whole first.
    pub fn stage_import<'d>(
        &self,
        target: &ImportTarget,
        doc: &'d WorkspaceDocument,
    ) -> Result<staged::StagedImport<'d>, ImportError> {
        staged::StagedImport::new(self, target, doc)
    }

    /// A dry run of an import: everything checked, nothing written, the writer not taken.
    pub fn check_import(
        &self,
        target: &ImportTarget,
        doc: &WorkspaceDocument,
    ) -> Result<(String, ImportCounts), ImportError> {
        staged::check_import(self, target, doc)
    }

    /// Removes what imports interrupted before `before` (seconds) left: how many workspaces.
    pub(super) fn discard_interrupted_imports(&self, before: i64) -> StoreResult<usize> {
        staged::discard_interrupted(self, before)
    }

    /// Adds one journey (a CSV import) to `target`, all or nothing (`dry_run`: rolled back).
    pub fn import_journey(
        &self,
        target: &ImportTarget,
        journey: DocJourney,
        dry_run: bool,
    ) -> Result<(String, ImportCounts), ImportError> {
        transfer::import_journey(self, target, journey, dry_run)
    }
}
