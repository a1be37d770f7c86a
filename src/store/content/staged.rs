//! An import that no one waits behind: the document (already parsed and validated whole) is
//! written in short slices, each its own transaction of at most [`SLICE_ROWS`] rows or about
//! [`SLICE_TIME`], into a workspace no read can see (`workspaces.importing`), then shown in
//! one short transaction ([`StagedImport::publish`]). Between slices the writer is free, so
//! other writes and revocations go in turn. A failed import removes what it wrote, in slices
//! too ([`StagedImport::discard`]); what an interrupted one (a crash) left is removed when the
//! store next opens ([`discard_interrupted`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::ContentStore;
use super::transfer::{
    DocItem, ImportCounts, ImportError, ImportTarget, WorkspaceDocument, archive_imported,
    validate, workspace_slug, write_item, write_persona,
};
use super::writes::{Tally, insert_journey, insert_link, insert_stage, insert_step};
use crate::api;
use crate::store::access::edge::{self, Importing};
use crate::store::db::{Connection, params};
use crate::store::{StoreError, StoreResult};

/// The most archived items, or journeys, stages and steps, one step archives (each also
/// re-indexes what it hides).
const ARCHIVED_AT_ONCE: usize = 100;

/// The most rows one slice writes (or removes).
pub const SLICE_ROWS: usize = 1_000;
/// A slice stops after this long, whatever it has written.
pub const SLICE_TIME: Duration = Duration::from_millis(100);

/// Where the writing stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Journeys, stages, steps, items and their comments, in map order.
    Map,
    Links(usize),
    Personas(usize),
    ArchivedItems(usize),
    ArchivedNodes(usize),
    Written,
}

/// A document being written out of sight: see the module's documentation.
pub struct StagedImport<'d> {
    doc: &'d WorkspaceDocument,
    target: ImportTarget,
    /// The workspace (id, slug) once the first slice has made or hidden it.
    workspace: Option<(i64, String)>,
    phase: Phase,
    now: i64,
    // The map's cursor: the journey, stage, step and item to write next, and the rows of the
    // journey, stage and step it is in once they are written.
    at: [usize; 4],
    journey_id: Option<String>,
    stage_id: Option<String>,
    step_id: Option<String>,
    /// Each step's place in the map, counted as steps are written (what `renumber_map` would
    /// give them: the workspace held no journeys).
    map_order: i64,
    ids: HashMap<&'d str, String>,
    journey_ids: HashMap<&'d str, String>,
    archived_nodes: Vec<(&'static str, String)>,
    archived_items: Vec<String>,
    counts: ImportCounts,
    slices: usize,
}

impl<'d> StagedImport<'d> {
    /// Checks `doc` (nothing is written yet).
    pub(super) fn new(
        s: &ContentStore<'_>,
        target: &ImportTarget,
        doc: &'d WorkspaceDocument,
    ) -> Result<Self, ImportError> {
        validate(doc).map_err(ImportError::Invalid)?;
        Ok(Self {
            doc,
            target: target.clone(),
            workspace: None,
            phase: Phase::Map,
            now: s.now().timestamp(),
            at: [0; 4],
            journey_id: None,
            stage_id: None,
            step_id: None,
            map_order: 0,
            ids: HashMap::new(),
            journey_ids: HashMap::new(),
            archived_nodes: Vec::new(),
            archived_items: Vec::new(),
            counts: ImportCounts::default(),
            slices: 0,
        })
    }

    /// The workspace being filled, once the first slice has made or hidden it.
    pub fn workspace_id(&self) -> Option<i64> {
        self.workspace.as_ref().map(|(id, _)| *id)
    }

    /// How many slices have been written.
    pub fn slices(&self) -> usize {
        self.slices
    }

    /// Writes the next slice in its own transaction; true once everything is written (then
    /// [`Self::publish`]).
    pub fn write_slice(&mut self, s: &ContentStore<'_>) -> Result<bool, ImportError> {
        let conn = s.writer_unlimited();
        let tx = conn.transaction()?;
        let ws = match &self.workspace {
            Some((ws, _)) => {
                if !edge::import_progress(&tx, *ws, self.now)? {
                    return Err(StoreError::Conflict(
                        "the import was interrupted (its workspace is no longer being imported); \
                         nothing was imported"
                            .into(),
                    )
                    .into());
                }
                *ws
            }
            None => {
                let workspace = self.begin(&tx)?;
                let ws = workspace.0;
                self.workspace = Some(workspace);
                if matches!(self.target, ImportTarget::Existing(_)) {
                    // Hidden first, filled after: the workspace's keys are refused (once the
                    // caller has re-read them, `workspace_id`) before anything arrives.
                    tx.commit()?;
                    self.slices += 1;
                    return Ok(false);
                }
                ws
            }
        };
        let started = Instant::now();
        let mut rows = 0;
        let mut tally = Tally::default();
        while rows < SLICE_ROWS && started.elapsed() < SLICE_TIME && self.phase != Phase::Written {
            rows += self.write_some(&tx, ws, &mut tally)?;
        }
        tally.apply(&tx, ws)?;
        super::writes::check_quotas(s, &tx, ws)?;
        tx.commit()?;
        self.slices += 1;
        Ok(self.phase == Phase::Written)
    }

    /// The first slice's start: the workspace made (hidden) or an empty one hidden.
    fn begin(&self, conn: &Connection) -> Result<(i64, String), ImportError> {
        match &self.target {
            ImportTarget::New { name, slug } => {
                let id = edge::insert_staged_workspace(conn, name, slug, self.now)?.ok_or_else(
                    || {
                        StoreError::Conflict(format!(
                            "a workspace with the slug {slug:?} already exists; nothing was \
                             imported (pass another --new NAME, or import into it with \
                             --workspace if it is empty)"
                        ))
                    },
                )?;
                Ok((id, slug.clone()))
            }
            ImportTarget::Existing(id) => {
                let slug = workspace_slug(conn, *id)?;
                ensure_empty(conn, *id, &slug)?;
                if !edge::hide_for_import(conn, *id, self.now)? {
                    return Err(StoreError::Conflict(format!(
                        "the workspace {slug:?} is already being imported into; nothing was \
                         imported"
                    ))
                    .into());
                }
                Ok((*id, slug))
            }
        }
    }

    /// Writes the next few rows (one item with its comments, a journey, a link…): how many.
    fn write_some(&mut self, conn: &Connection, ws: i64, tally: &mut Tally) -> StoreResult<usize> {
        let (doc, now) = (self.doc, self.now);
        match self.phase {
            Phase::Map => {
                let [j, s, t, i] = self.at;
                let Some(journey) = doc.journeys.get(j) else {
                    self.phase = Phase::Links(0);
                    return Ok(0);
                };
                let Some(journey_id) = self.journey_id.clone() else {
                    let (name, description) = (journey.name.trim(), journey.description.trim());
                    let position = i64::try_from(j).unwrap_or(i64::MAX);
                    let id =
                        insert_journey(conn, ws, &journey.slug, name, description, position, now)?;
                    self.counts.journeys += 1;
                    self.journey_ids.insert(journey.slug.as_str(), id.clone());
                    if journey.archived {
                        self.archived_nodes.push(("journeys", id.clone()));
                    }
                    self.journey_id = Some(id);
                    return Ok(1);
                };
                let Some(stage) = journey.stages.get(s) else {
                    (self.at, self.journey_id) = ([j + 1, 0, 0, 0], None);
                    return Ok(0);
                };
                let Some(stage_id) = self.stage_id.clone() else {
                    let (name, description) = (stage.name.trim(), stage.description.trim());
                    let position = i64::try_from(s).unwrap_or(i64::MAX);
                    let id = insert_stage(conn, ws, &journey_id, name, description, position)?;
                    self.counts.stages += 1;
                    if stage.archived {
                        self.archived_nodes.push(("stages", id.clone()));
                    }
                    self.stage_id = Some(id);
                    return Ok(1);
                };
                let Some(step) = stage.steps.get(t) else {
                    (self.at, self.stage_id) = ([j, s + 1, 0, 0], None);
                    return Ok(0);
                };
                let Some(step_id) = self.step_id.clone() else {
                    let (name, description) = (step.name.trim(), step.description.trim());
                    let position = i64::try_from(t).unwrap_or(i64::MAX);
                    let id = insert_step(conn, ws, &stage_id, name, description, position)?;
                    self.map_order += 1;
                    conn.prepare_cached("UPDATE steps SET map_order = ?2 WHERE id = ?1")?
                        .execute(params![id, self.map_order])?;
                    self.counts.steps += 1;
                    if step.archived {
                        self.archived_nodes.push(("steps", id.clone()));
                    }
                    self.step_id = Some(id);
                    return Ok(1);
                };
                let Some(item) = step.items.get(i) else {
                    (self.at, self.step_id) = ([j, s, t + 1, 0], None);
                    return Ok(0);
                };
                Ok(self.write_item(conn, ws, &step_id, item, tally)?)
            }
            Phase::Links(l) => {
                let Some(link) = doc.links.get(l) else {
                    self.phase = Phase::Personas(0);
                    return Ok(0);
                };
                let id = |reference: &str| {
                    self.ids.get(reference).cloned().ok_or_else(|| {
                        StoreError::Invalid(format!("no item has the id {reference:?}"))
                    })
                };
                insert_link(conn, ws, &id(&link.from)?, &id(&link.to)?, now)?;
                self.counts.links += 1;
                self.phase = Phase::Links(l + 1);
                Ok(1)
            }
            Phase::Personas(p) => {
                let Some(persona) = doc.personas.get(p) else {
                    self.phase = Phase::ArchivedItems(0);
                    return Ok(0);
                };
                let written = write_persona(conn, ws, persona, &self.journey_ids, now)?;
                self.counts.personas += 1;
                self.phase = Phase::Personas(p + 1);
                Ok(written)
            }
            Phase::ArchivedItems(a) => {
                let end = (a + ARCHIVED_AT_ONCE).min(self.archived_items.len());
                if a == end {
                    self.phase = Phase::ArchivedNodes(0);
                    return Ok(0);
                }
                archive_imported(conn, ws, &[], &self.archived_items[a..end], now)?;
                self.phase = Phase::ArchivedItems(end);
                Ok(end - a)
            }
            Phase::ArchivedNodes(a) => {
                // In document order (a journey before its stages, a stage before its steps), a
                // bounded number at a time: each refreshes what lies under it.
                let end = (a + ARCHIVED_AT_ONCE).min(self.archived_nodes.len());
                if a == end {
                    self.phase = Phase::Written;
                    return Ok(0);
                }
                let nodes: Vec<(&str, String)> =
                    self.archived_nodes[a..end].iter().map(|(t, id)| (*t, id.clone())).collect();
                archive_imported(conn, ws, &nodes, &[], now)?;
                self.phase = Phase::ArchivedNodes(end);
                Ok(end - a)
            }
            Phase::Written => Ok(0),
        }
    }

    fn write_item(
        &mut self,
        conn: &Connection,
        ws: i64,
        step_id: &str,
        item: &'d DocItem,
        tally: &mut Tally,
    ) -> StoreResult<usize> {
        let (id, archived) = write_item(conn, ws, step_id, item, self.now, tally)?;
        if archived {
            self.archived_items.push(id.clone());
        }
        self.counts.items += 1;
        self.counts.comments += item.comments.len() as u64;
        self.ids.insert(item.id.as_str(), id);
        self.at[3] += 1;
        Ok(1 + item.comments.len())
    }

    /// Shows the workspace, in one short transaction with the quotas' check and the audit
    /// event. Returns its slug and what was written.
    pub fn publish(&self, s: &ContentStore<'_>) -> Result<(String, ImportCounts), ImportError> {
        let Some((ws, slug)) = self.workspace.clone() else {
            return Err(StoreError::Invalid("the import has not been written".into()).into());
        };
        if self.phase != Phase::Written {
            return Err(StoreError::Invalid("the import has not been written whole".into()).into());
        }
        let conn = s.writer();
        let tx = conn.transaction()?;
        super::writes::check_quotas(s, &tx, ws)?;
        let counts = self.counts.clone();
        edge::insert_event(
            &tx,
            self.now,
            &edge::NewEvent {
                workspace_id: ws,
                kind: api::EventKind::WorkspaceImported,
                key_id: None,
                key_prefix: None,
                detail: &format!(
                    "{} journeys, {} items, {} links, {} comments, {} personas",
                    counts.journeys, counts.items, counts.links, counts.comments, counts.personas
                ),
                actor: &api::Author::of(api::AuthorKind::Administrator),
            },
        )?;
        if !edge::publish_workspace(&tx, ws)? {
            return Err(StoreError::Conflict(
                "the import was interrupted (its workspace is no longer being imported); nothing \
                 was imported"
                    .into(),
            )
            .into());
        }
        tx.commit()?;
        Ok((slug, counts))
    }

    /// Removes the next slice of what a failed import wrote; true once nothing is left (a new
    /// workspace is gone, an existing one is shown again, empty).
    pub fn discard(&self, s: &ContentStore<'_>) -> StoreResult<bool> {
        match self.workspace {
            None => Ok(true),
            Some((ws, _)) => discard_slice(s, ws),
        }
    }
}

/// Refuses a workspace that holds journeys or personas: an import goes into an empty one.
fn ensure_empty(conn: &Connection, id: i64, slug: &str) -> Result<(), ImportError> {
    let things: i64 = conn.query_row(
        "SELECT (SELECT count(*) FROM journeys WHERE workspace_id = ?1)
                  + (SELECT count(*) FROM personas WHERE workspace_id = ?1) AS n",
        [id],
        |row| row.get("n"),
    )?;
    if things > 0 {
        return Err(StoreError::Conflict(format!(
            "the workspace {slug:?} already holds journeys or personas; an import goes into an \
             empty workspace only, so that importing a file twice cannot duplicate it (import \
             with --new NAME instead)"
        ))
        .into());
    }
    Ok(())
}

/// What an import holds, by table and the column a slice deletes by, in an order no foreign
/// key minds.
const CONTENT: [(&str, &str); 10] = [
    ("hidden_docs", "doc_id"),
    ("search_docs", "doc_id"),
    ("comments", "id"),
    ("item_links", "rowid"),
    ("journey_personas", "rowid"),
    ("personas", "id"),
    ("items", "id"),
    ("steps", "id"),
    ("stages", "id"),
    ("journeys", "id"),
];

/// One transaction removing up to [`SLICE_ROWS`] rows of workspace `ws`'s content; once none
/// is left, its counts go and the workspace is ended ([`edge::end_failed_import`]). True then.
fn discard_slice(s: &ContentStore<'_>, ws: i64) -> StoreResult<bool> {
    let conn = s.writer_unlimited();
    let tx = conn.transaction()?;
    let limit = i64::try_from(SLICE_ROWS).unwrap_or(i64::MAX);
    for (table, key) in CONTENT {
        // `table` and `key` are the constants above, never outside text.
        let some =
            format!("SELECT {key} FROM {table} WHERE workspace_id = ?1 ORDER BY {key} LIMIT ?2");
        if !tx.prepare_cached(&some)?.exists(params![ws, limit])? {
            continue;
        }
        if table == "search_docs" && !tx.is_postgres() {
            // A contentless FTS5 index is told which words each row had.
            tx.execute(
                &format!(
                    "INSERT INTO search_fts (search_fts, rowid, scope, title, body)
                     SELECT 'delete', doc_id, scope_words, title_words, body_words
                     FROM search_docs WHERE doc_id IN ({some})"
                ),
                params![ws, limit],
            )?;
        }
        tx.execute(&format!("DELETE FROM {table} WHERE {key} IN ({some})"), params![ws, limit])?;
        tx.commit()?;
        return Ok(false);
    }
    tx.execute("DELETE FROM workspace_counts WHERE workspace_id = ?1", [ws])?;
    edge::end_failed_import(&tx, ws)?;
    tx.commit()?;
    Ok(true)
}

/// Removes what imports interrupted before `before` (seconds: their last slice) left, slice by
/// slice: how many workspaces were cleaned.
pub(super) fn discard_interrupted(s: &ContentStore<'_>, before: i64) -> StoreResult<usize> {
    let left = edge::interrupted_imports(&s.writer(), before)?;
    for &(ws, kind) in &left {
        tracing::warn!(
            workspace_id = ws,
            new = kind == Importing::New,
            "removing what an interrupted import left"
        );
        while !discard_slice(s, ws)? {}
    }
    Ok(left.len())
}

/// What a dry run answers: `doc` checked whole, against the database too (the slug, an empty
/// target, the quotas), with nothing written and the writer never taken.
pub(super) fn check_import(
    s: &ContentStore<'_>,
    target: &ImportTarget,
    doc: &WorkspaceDocument,
) -> Result<(String, ImportCounts), ImportError> {
    validate(doc).map_err(ImportError::Invalid)?;
    let conn = s.reader()?;
    let slug = match target {
        ImportTarget::New { slug, .. } => {
            if edge::workspace_with_slug(&conn, slug)?.is_some() {
                return Err(StoreError::Conflict(format!(
                    "a workspace with the slug {slug:?} already exists; nothing was imported \
                     (pass another --new NAME, or import into it with --workspace if it is \
                     empty)"
                ))
                .into());
            }
            slug.clone()
        }
        ImportTarget::Existing(id) => {
            let slug = workspace_slug(&conn, *id)?;
            ensure_empty(&conn, *id, &slug)?;
            slug
        }
    };
    let mut counts = ImportCounts {
        journeys: doc.journeys.len() as u64,
        links: doc.links.len() as u64,
        personas: doc.personas.len() as u64,
        ..ImportCounts::default()
    };
    let mut text: u64 = 0;
    for stage in doc.journeys.iter().flat_map(|j| &j.stages) {
        counts.stages += 1;
        for step in &stage.steps {
            counts.steps += 1;
            for item in &step.items {
                counts.items += 1;
                counts.comments += item.comments.len() as u64;
                let fields = serde_json::to_string(&item.fields).map_or(0, |f| f.len());
                text += (item.title.trim().len() + item.description.trim().len() + fields) as u64;
                for comment in &item.comments {
                    text += (comment.author.trim().len() + comment.body.trim().len()) as u64;
                }
            }
        }
    }
    let quotas = s.options().quotas;
    for (n, max, what, flag) in [
        (counts.items, quotas.items, "items", "--max-items"),
        (counts.comments, quotas.comments, "comments", "--max-comments"),
        (text, quotas.text_bytes, "bytes of text", "--max-text-bytes"),
    ] {
        if n > u64::try_from(max).unwrap_or(0) {
            return Err(StoreError::Quota(format!(
                "this workspace would hold more than {max} {what}, the most this server allows \
                 one workspace; nothing was changed (the server's admin can raise it: \
                 `custory-mcp serve {flag} N`)"
            ))
            .into());
        }
    }
    Ok((slug, counts))
}
