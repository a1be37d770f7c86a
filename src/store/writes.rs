//! Writes of the journey domain. Every write method takes the caller's workspace id, checks
//! what it is given (`validate.rs`) and records a `tool.called` audit event in the same
//! transaction as the change. The inserts are shared with the demo seed, so the seed obeys the
//! same rules as an MCP client.

use serde_json::{Map, Value};

use super::audit::{NewEvent, insert_event};
use super::db::{Connection, OptionalExtension as _, Transaction, params};
use super::model::{
    Actor, Comment, ItemComment, ItemDetail, ItemKind, ItemLink, ItemUpdate, MapNode, NewItem,
    NewJourney, NewPersona, NewStage, NewStep, Persona, PersonaArgs, link_directions_text,
};
use super::reads::{
    ensure_stage, ensure_step, find_journey, item_detail, item_summary, json_column, json_text,
    not_found_item, text_enum,
};
use super::validate::{
    DESCRIPTION_MAX, JOURNEYS_MAX, NAME_MAX, STAGES_MAX, STEPS_MAX, TITLE_MAX, check_status,
    clean_text, merge_fields, optional_text, required_text, required_text_multiline,
};
use super::{Store, StoreError, StoreResult, from_secs, new_id, search};

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
            let item = item_detail(tx, workspace_id, &id, None)?;
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
            let (kind, mut title, mut description, mut status, mut owner, old_fields) = tx
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
            let fields = old_fields.clone();
            let before = text_bytes(&[&title, &description, &json_text(&old_fields)?]);
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
            let fields_text = json_text(&fields)?;
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
                fields_text,
                now
            ])?;
            let after = text_bytes(&[&title, &description, &fields_text]);
            count(tx, workspace_id, "text_bytes", after - before)?;
            let detail = format!("update_item {id} {title:?}: {}", changed.join(", "));
            search::index_item(tx, workspace_id, id)?;
            Ok((item_detail(tx, workspace_id, id, None)?, detail))
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

    pub fn create_journey(
        &self,
        workspace_id: i64,
        actor: Actor<'_>,
        new: &NewJourney,
    ) -> StoreResult<MapNode> {
        let (name, description) = name_and_description(&new.name, new.description.as_deref())?;
        let slug = match &new.slug {
            Some(slug) => {
                crate::api::validate_slug(slug.trim()).map_err(StoreError::Invalid)?.to_owned()
            }
            None => crate::api::slugify(&name),
        };
        self.write(workspace_id, actor, |tx, now| {
            let taken = tx
                .prepare_cached("SELECT 1 FROM journeys WHERE workspace_id = ?1 AND slug = ?2")?
                .exists(params![workspace_id, slug])?;
            if taken {
                return Err(StoreError::Conflict(format!(
                    "a journey with the slug {slug:?} already exists; give another `slug`"
                )));
            }
            let siblings = "SELECT id, position FROM journeys WHERE workspace_id = ?1
                            ORDER BY position, rowid";
            let (at, index) =
                make_room(tx, "journeys", siblings, workspace_id, None, new.position)?;
            let id = insert_journey(tx, workspace_id, &slug, &name, &description, at, now)?;
            renumber_map(tx, workspace_id)?;
            let detail = format!("create_journey {id} {name:?}");
            let node = MapNode {
                id,
                name,
                description,
                position: index,
                slug: Some(slug),
                parent_id: None,
            };
            Ok((node, detail))
        })
    }

    pub fn create_stage(
        &self,
        workspace_id: i64,
        actor: Actor<'_>,
        new: &NewStage,
    ) -> StoreResult<MapNode> {
        let (name, description) = name_and_description(&new.name, new.description.as_deref())?;
        self.write(workspace_id, actor, |tx, _| {
            let journey = find_journey(tx, workspace_id, &new.journey)?;
            let siblings = "SELECT id, position FROM stages WHERE workspace_id = ?1
                            AND journey_id = ?2 ORDER BY position, rowid";
            let (at, index) =
                make_room(tx, "stages", siblings, workspace_id, Some(&journey.id), new.position)?;
            let id = insert_stage(tx, workspace_id, &journey.id, &name, &description, at)?;
            renumber_map(tx, workspace_id)?;
            let detail = format!("create_stage {id} {name:?} in {}", journey.id);
            let node = MapNode {
                id,
                name,
                description,
                position: index,
                slug: None,
                parent_id: Some(journey.id),
            };
            Ok((node, detail))
        })
    }

    pub fn create_step(
        &self,
        workspace_id: i64,
        actor: Actor<'_>,
        new: &NewStep,
    ) -> StoreResult<MapNode> {
        let (name, description) = name_and_description(&new.name, new.description.as_deref())?;
        let stage_id = new.stage_id.trim();
        self.write(workspace_id, actor, |tx, _| {
            ensure_stage(tx, workspace_id, stage_id)?;
            let siblings = "SELECT id, position FROM steps WHERE workspace_id = ?1
                            AND stage_id = ?2 ORDER BY position, rowid";
            let (at, index) =
                make_room(tx, "steps", siblings, workspace_id, Some(stage_id), new.position)?;
            let id = insert_step(tx, workspace_id, stage_id, &name, &description, at)?;
            renumber_map(tx, workspace_id)?;
            let detail = format!("create_step {id} {name:?} in {stage_id}");
            let node = MapNode {
                id,
                name,
                description,
                position: index,
                slug: None,
                parent_id: Some(stage_id.to_owned()),
            };
            Ok((node, detail))
        })
    }

    pub fn create_persona(
        &self,
        workspace_id: i64,
        actor: Actor<'_>,
        new: &PersonaArgs,
    ) -> StoreResult<Persona> {
        let name = required_text("name", &new.name, NAME_MAX)?;
        let text = |field: &str, value: &Option<String>| {
            clean_text(field, value.as_deref().unwrap_or(""), DESCRIPTION_MAX, true)
        };
        let (role, bio, job) = (
            text("role", &new.role)?,
            text("bio", &new.bio)?,
            text("job_to_be_done", &new.job_to_be_done)?,
        );
        let list = |field: &str, values: &[String]| {
            values
                .iter()
                .map(|v| required_text(field, v, TITLE_MAX))
                .collect::<StoreResult<Vec<_>>>()
        };
        let (goals, frustrations) =
            (list("goals", &new.goals)?, list("frustrations", &new.frustrations)?);
        self.write(workspace_id, actor, |tx, now| {
            let goal_refs: Vec<&str> = goals.iter().map(String::as_str).collect();
            let frustration_refs: Vec<&str> = frustrations.iter().map(String::as_str).collect();
            let persona = NewPersona {
                name: &name,
                role: &role,
                bio: &bio,
                job_to_be_done: &job,
                goals: &goal_refs,
                frustrations: &frustration_refs,
            };
            let id = insert_persona(tx, workspace_id, &persona, now)?;
            let detail = format!("create_persona {id} {name:?}");
            let persona = Persona {
                id,
                name: name.clone(),
                role: role.clone(),
                bio: bio.clone(),
                job_to_be_done: job.clone(),
                goals: goals.clone(),
                frustrations: frustrations.clone(),
            };
            Ok((persona, detail))
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
        let conn = self.writer();
        let tx = conn.transaction()?;
        // The key is checked again under the write lock, which a revoke also takes: a write
        // either commits before the revoke or is refused after it, never in between.
        let active = tx
            .prepare_cached(
                "SELECT 1 FROM mcp_keys WHERE id = ?1 AND revoked_at IS NULL
                 AND (expires_at IS NULL OR expires_at > ?2)",
            )?
            .exists(params![actor.key_id, now])?;
        if !active {
            return Err(StoreError::Conflict(
                "not run: this MCP key has been revoked or has expired; nothing was changed".into(),
            ));
        }
        let (value, detail) = change(&tx, now)?;
        // Checked after the change, inside its transaction: a write past a quota is undone.
        self.check_quotas(&tx, workspace_id)?;
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
    search::index_journey(conn, workspace_id, &id)?;
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
    search::index_stage(conn, workspace_id, &id)?;
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
    search::index_step(conn, workspace_id, &id)?;
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
    search::index_persona(conn, workspace_id, &id)?;
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
    let mut tally = Tally::default();
    let id = insert_item_tallied(conn, workspace_id, new, now, &mut tally)?;
    tally.apply(conn, workspace_id)?;
    Ok(id)
}

/// [`insert_item`], with the counts it changes added to `tally` (applied by the caller).
pub(super) fn insert_item_tallied(
    conn: &Connection,
    workspace_id: i64,
    new: &NewItem,
    now: i64,
    tally: &mut Tally,
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
    let fields_text = json_text(&fields)?;
    let step_id = new.step_id.trim();
    ensure_step(conn, workspace_id, step_id)?;
    let id = new_id("itm");
    // The item takes its step's place in the map, and the step counts it.
    conn.prepare_cached(
        "INSERT INTO items (id, workspace_id, step_id, kind, title, description, status, owner,
                            fields, created_at, updated_at, map_order)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10,
                 (SELECT map_order FROM steps WHERE id = ?3))",
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
        fields_text,
        now
    ])?;
    *tally.steps.entry(step_id.to_owned()).or_default() += 1;
    tally.add(format!("item:{}", new.kind), 1);
    tally.add("items".to_owned(), 1);
    tally.add("text_bytes".to_owned(), text_bytes(&[&title, &description, &fields_text]));
    search::index_item(conn, workspace_id, &id)?;
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
    let mut tally = Tally::default();
    let comment =
        insert_comment_tallied(conn, workspace_id, item_id, author, body, now, &mut tally)?;
    tally.apply(conn, workspace_id)?;
    Ok(comment)
}

/// [`insert_comment`], with the counts it changes added to `tally` (applied by the caller).
pub(super) fn insert_comment_tallied(
    conn: &Connection,
    workspace_id: i64,
    item_id: &str,
    author: &str,
    body: &str,
    now: i64,
    tally: &mut Tally,
) -> StoreResult<Comment> {
    let author = required_text("author", author, NAME_MAX)?;
    let body = required_text_multiline("body", body, DESCRIPTION_MAX)?;
    let id = new_id("cmt");
    conn.prepare_cached(
        "INSERT INTO comments (id, workspace_id, item_id, author, body, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![id, workspace_id, item_id, author, body, now])?;
    search::index_comment(conn, workspace_id, &id)?;
    tally.add("comments".to_owned(), 1);
    tally.add("text_bytes".to_owned(), text_bytes(&[&author, &body]));
    Ok(Comment { id, author, body, created_at: from_secs(now) })
}

/// Numbers the workspace's steps in map order (journeys, then stages, then steps, each by
/// position) and gives each item its step's number, after the map's shape changed. Only what
/// moved is written.
pub(super) fn renumber_map(conn: &Connection, workspace_id: i64) -> StoreResult<()> {
    let steps = conn.query(
        "SELECT st.id, st.map_order FROM steps st JOIN stages s ON s.id = st.stage_id
         JOIN journeys j ON j.id = s.journey_id WHERE st.workspace_id = ?1
         ORDER BY j.position, j.rowid, s.position, s.rowid, st.position, st.rowid",
        [workspace_id],
    )?;
    for (number, row) in (1_i64..).zip(&steps) {
        if row.get::<i64>(1)? == number {
            continue;
        }
        let id: String = row.get(0)?;
        conn.prepare_cached("UPDATE steps SET map_order = ?2 WHERE id = ?1")?
            .execute(params![id, number])?;
        conn.prepare_cached("UPDATE items SET map_order = ?2 WHERE step_id = ?1")?
            .execute(params![id, number])?;
    }
    Ok(())
}

/// A journey's, stage's or step's name and description, checked.
fn name_and_description(name: &str, description: Option<&str>) -> StoreResult<(String, String)> {
    let name = required_text("name", name, TITLE_MAX)?;
    let description = clean_text("description", description.unwrap_or(""), DESCRIPTION_MAX, true)?;
    Ok((name, description))
}

/// Makes room for a new sibling at `index` (from 0; the end when `None` or past it) among the
/// rows of `table` that `siblings` selects (`id, position`, in order; `?1` the workspace, `?2`
/// the parent when there is one) and returns the position to insert at and the index it gets.
fn make_room(
    conn: &Connection,
    table: &'static str,
    siblings: &str,
    workspace_id: i64,
    parent: Option<&str>,
    index: Option<u32>,
) -> StoreResult<(i64, u32)> {
    let rows = match parent {
        Some(parent) => conn.query(siblings, params![workspace_id, parent])?,
        None => conn.query(siblings, params![workspace_id])?,
    };
    let (max, within) = match table {
        "journeys" => (JOURNEYS_MAX, "a workspace"),
        "stages" => (STAGES_MAX, "a journey"),
        _ => (STEPS_MAX, "a stage"),
    };
    if rows.len() >= max {
        return Err(StoreError::Quota(format!(
            "{within} holds at most {max} {table}, and this one is full; nothing was changed"
        )));
    }
    let siblings: Vec<(String, i64)> =
        rows.iter().map(|row| Ok((row.get(0)?, row.get(1)?))).collect::<StoreResult<_>>()?;
    let count = u32::try_from(siblings.len()).unwrap_or(u32::MAX);
    let Some(i) = index.filter(|&i| i < count) else {
        return Ok((siblings.last().map_or(0, |(_, p)| p + 1), count));
    };
    let at = siblings[i as usize].1;
    // `table` is one of this module's names, never text from a request.
    let shift = format!("UPDATE {table} SET position = position + 1 WHERE id = ?1");
    for (id, position) in &siblings {
        if *position >= at {
            conn.prepare_cached(&shift)?.execute([id])?;
        }
    }
    Ok((at, i))
}

/// The counts a write changes (the workspace's counters, each step's item count), written once
/// at its end: an import of many items updates each counter once, not once per item.
#[derive(Debug, Default)]
pub(super) struct Tally {
    counters: std::collections::BTreeMap<String, i64>,
    steps: std::collections::BTreeMap<String, i64>,
}

impl Tally {
    fn add(&mut self, counter: String, delta: i64) {
        *self.counters.entry(counter).or_default() += delta;
    }

    pub(super) fn apply(self, conn: &Connection, workspace_id: i64) -> StoreResult<()> {
        for (step, n) in &self.steps {
            conn.prepare_cached("UPDATE steps SET item_count = item_count + ?2 WHERE id = ?1")?
                .execute(params![step, n])?;
        }
        for (counter, delta) in &self.counters {
            count(conn, workspace_id, counter, *delta)?;
        }
        Ok(())
    }
}

/// Adds `delta` to one of the workspace's counts (`workspace_counts`).
pub(super) fn count(
    conn: &Connection,
    workspace_id: i64,
    counter: &str,
    delta: i64,
) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO workspace_counts (workspace_id, counter, n) VALUES (?1, ?2, ?3)
         ON CONFLICT (workspace_id, counter) DO UPDATE SET n = workspace_counts.n + excluded.n",
    )?
    .execute(params![workspace_id, counter, delta])?;
    Ok(())
}

/// The bytes `parts` add to a workspace's text.
fn text_bytes(parts: &[&str]) -> i64 {
    parts.iter().map(|p| i64::try_from(p.len()).unwrap_or(i64::MAX)).sum()
}

impl Store {
    /// Refuses a write that took the workspace past one of its quotas (see [`super::Quotas`]).
    pub(super) fn check_quotas(&self, conn: &Connection, workspace_id: i64) -> StoreResult<()> {
        let quotas = self.options.quotas;
        let rows = conn.query(
            "SELECT counter, n FROM workspace_counts WHERE workspace_id = ?1
             AND counter IN ('items', 'comments', 'text_bytes')",
            [workspace_id],
        )?;
        for row in rows {
            let (counter, n): (String, i64) = (row.get(0)?, row.get(1)?);
            let (max, what, flag) = match counter.as_str() {
                "items" => (quotas.items, "items", "--max-items"),
                "comments" => (quotas.comments, "comments", "--max-comments"),
                _ => (quotas.text_bytes, "bytes of text", "--max-text-bytes"),
            };
            if n > max {
                return Err(StoreError::Quota(format!(
                    "this workspace would hold more than {max} {what}, the most this server \
                     allows one workspace; nothing was changed (the server's admin can raise it: \
                     `custory-mcp serve {flag} N`)"
                )));
            }
        }
        Ok(())
    }
}
