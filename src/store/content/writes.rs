//! Writes of the journey domain. Every write method takes the caller's workspace id, checks
//! what it is given (`validate.rs`) and records a `tool.called` audit event in the same
//! transaction as the change. The inserts are shared with the import (and so with the templates
//! and the demo workspace), so a document obeys the same rules as an MCP client.

use serde_json::{Map, Value};

use crate::api::EventKind;

use super::ContentStore;
use super::model::{
    Comment, ItemComment, ItemDetail, ItemKind, ItemLink, ItemUpdate, JourneyTree, LEVELS, NewItem,
    NewPersona, PRIORITIES, Persona, PersonaArgs, PersonaLink, PersonaRef, PersonaUpdate,
    link_directions_text,
};
use super::reads::{
    ensure_step, find_journey, item_detail, item_summary, json_column, json_text, not_found_item,
    text_enum,
};
use super::search;
use super::validate::{
    DESCRIPTION_MAX, NAME_MAX, PERSONA_LIST_MAX, TITLE_MAX, check_choice, check_status, clean_text,
    merge_fields, non_empty, optional_choice, optional_text, required_text,
    required_text_multiline,
};
use crate::store::access::edge::{self, Actor, NewEvent, insert_event};
use crate::store::db::{Connection, OptionalExtension as _, Transaction, params};
use crate::store::{StoreError, StoreResult, from_secs, new_id};

// ---------------------------------------------------------------------------------------------
// Writes.

pub(super) fn create_item(
    s: &ContentStore<'_>,
    workspace_id: i64,
    actor: Actor<'_>,
    new: &NewItem,
) -> StoreResult<ItemDetail> {
    write(s, workspace_id, actor, |tx, now| {
        let id = insert_item(tx, workspace_id, new, now)?;
        let item = item_detail(tx, workspace_id, &id, None)?;
        let detail = format!("create_item {id} {:?}", item.item.title);
        Ok((item, detail))
    })
}

pub(super) fn update_item(
    s: &ContentStore<'_>,
    workspace_id: i64,
    actor: Actor<'_>,
    update: &ItemUpdate,
) -> StoreResult<ItemDetail> {
    let priority = optional_choice("priority", &update.priority, &PRIORITIES)?;
    let impact = optional_choice("impact", &update.impact, &LEVELS)?;
    let effort = optional_choice("effort", &update.effort, &LEVELS)?;
    write(s, workspace_id, actor, |tx, now| {
        let id = update.item_id.trim();
        let old = tx
            .prepare_cached(
                "SELECT kind, title, description, status, owner, fields, priority, impact,
                            effort, step_id, archived_at
                     FROM items WHERE workspace_id = ?1 AND id = ?2",
            )?
            .query_row(params![workspace_id, id], |row| {
                Ok(ItemRow {
                    kind: text_enum(row, "kind", ItemKind::parse)?,
                    title: row.get("title")?,
                    description: row.get("description")?,
                    status: row.get("status")?,
                    owner: row.get("owner")?,
                    fields: json_column(row, "fields")?,
                    properties: [row.get("priority")?, row.get("impact")?, row.get("effort")?],
                    step_id: row.get("step_id")?,
                    archived: row.get::<Option<i64>>("archived_at")?.is_some(),
                })
            })
            .optional()?
            .ok_or_else(|| not_found_item(id))?;
        let before = text_bytes(&[&old.title, &old.description, &json_text(&old.fields)?]);
        let mut new = old.clone();
        let mut changed = Vec::new();
        if let Some(value) = &update.title {
            new.title = required_text("title", value, TITLE_MAX)?;
            changed.push("title");
        }
        if let Some(value) = &update.description {
            new.description = clean_text("description", value, DESCRIPTION_MAX, true)?;
            changed.push("description");
        }
        if let Some(value) = &update.status {
            new.status = check_status(old.kind, value)?;
            changed.push("status");
        }
        if let Some(value) = &update.owner {
            new.owner = optional_text("owner", value)?;
            changed.push("owner");
        }
        for (at, (name, value)) in
            [("priority", &priority), ("impact", &impact), ("effort", &effort)]
                .into_iter()
                .enumerate()
        {
            if let Some(value) = value {
                new.properties[at] = value.clone();
                changed.push(name);
            }
        }
        if let Some(patch) = &update.fields {
            new.fields = merge_fields(old.kind, old.fields.clone(), patch)?;
            changed.push("fields");
        }
        if let Some(step) = update.step_id.as_deref().map(str::trim) {
            ensure_step(tx, workspace_id, step)?;
            new.step_id = step.to_owned();
            changed.push("step");
        }
        if changed.is_empty() {
            return Err(StoreError::Invalid(
                "nothing to update: give at least one of title, description, status, owner, \
                     priority, impact, effort, step_id, fields"
                    .into(),
            ));
        }
        let fields_text = json_text(&new.fields)?;
        let [priority, impact, effort] = &new.properties;
        tx.prepare_cached(
            "UPDATE items SET title = ?3, description = ?4, status = ?5, owner = ?6,
                                  fields = ?7, updated_at = ?8, priority = ?9, impact = ?10,
                                  effort = ?11
                 WHERE workspace_id = ?1 AND id = ?2",
        )?
        .execute(params![
            workspace_id,
            id,
            new.title,
            new.description,
            new.status,
            new.owner,
            fields_text,
            now,
            priority,
            impact,
            effort
        ])?;
        let after = text_bytes(&[&new.title, &new.description, &fields_text]);
        count(tx, workspace_id, "text_bytes", after - before)?;
        if new.step_id != old.step_id {
            move_item(tx, workspace_id, id, &old.step_id, &new.step_id, old.archived)?;
        }
        let detail = format!("update_item {id} {:?}: {}", new.title, changed.join(", "));
        search::index_item(tx, workspace_id, id)?;
        Ok((item_detail(tx, workspace_id, id, None)?, detail))
    })
}

/// Links `from_id` to `to_id` (cause → effect) in one of the five allowed directions.
pub(super) fn link_items(
    s: &ContentStore<'_>,
    workspace_id: i64,
    actor: Actor<'_>,
    from_id: &str,
    to_id: &str,
) -> StoreResult<ItemLink> {
    write(s, workspace_id, actor, |tx, now| {
        let link = insert_link(tx, workspace_id, from_id, to_id, now)?;
        let detail = format!(
            "link_items {} {:?} → {} {:?}",
            link.from.id, link.from.title, link.to.id, link.to.title
        );
        Ok((link, detail))
    })
}

pub(super) fn add_comment(
    s: &ContentStore<'_>,
    workspace_id: i64,
    actor: Actor<'_>,
    item_id: &str,
    author: &str,
    body: &str,
) -> StoreResult<ItemComment> {
    write(s, workspace_id, actor, |tx, now| {
        let item = item_summary(tx, workspace_id, item_id)?;
        let comment = insert_comment(tx, workspace_id, &item.id, author, body, now)?;
        let detail = format!("add_comment {} on {} {:?}", comment.id, item.id, item.title);
        Ok((ItemComment { item, comment }, detail))
    })
}

pub(super) fn create_persona(
    s: &ContentStore<'_>,
    workspace_id: i64,
    actor: Actor<'_>,
    new: &PersonaArgs,
) -> StoreResult<Persona> {
    let empty = Persona {
        id: String::new(),
        name: String::new(),
        role: String::new(),
        bio: String::new(),
        job_to_be_done: String::new(),
        goals: Vec::new(),
        frustrations: Vec::new(),
    };
    let changes = PersonaUpdate {
        persona_id: String::new(),
        name: Some(new.name.clone()),
        role: new.role.clone(),
        bio: new.bio.clone(),
        job_to_be_done: new.job_to_be_done.clone(),
        goals: Some(new.goals.clone()),
        frustrations: Some(new.frustrations.clone()),
    };
    let mut persona = persona_changed(empty, &changes)?;
    write(s, workspace_id, actor, |tx, now| {
        let goals: Vec<&str> = persona.goals.iter().map(String::as_str).collect();
        let frustrations: Vec<&str> = persona.frustrations.iter().map(String::as_str).collect();
        let new = NewPersona {
            name: &persona.name,
            role: &persona.role,
            bio: &persona.bio,
            job_to_be_done: &persona.job_to_be_done,
            goals: &goals,
            frustrations: &frustrations,
        };
        persona.id = insert_persona(tx, workspace_id, &new, now)?;
        let detail = format!("create_persona {} {:?}", persona.id, persona.name);
        Ok((persona, detail))
    })
}

pub(super) fn update_persona(
    s: &ContentStore<'_>,
    workspace_id: i64,
    actor: Actor<'_>,
    update: &PersonaUpdate,
) -> StoreResult<Persona> {
    let given = [&update.name, &update.role, &update.bio, &update.job_to_be_done];
    if given.iter().all(|v| v.is_none()) && update.goals.is_none() && update.frustrations.is_none()
    {
        return Err(StoreError::Invalid(
            "nothing to update: give at least one of name, role, bio, job_to_be_done, goals, \
                 frustrations"
                .into(),
        ));
    }
    write(s, workspace_id, actor, |tx, _| {
        let old = persona_by_id(tx, workspace_id, &update.persona_id)?;
        let persona = persona_changed(old, update)?;
        tx.prepare_cached(
            "UPDATE personas SET name = ?3, role = ?4, bio = ?5, job_to_be_done = ?6,
                                     goals = ?7, frustrations = ?8
                 WHERE workspace_id = ?1 AND id = ?2",
        )?
        .execute(params![
            workspace_id,
            persona.id,
            persona.name,
            persona.role,
            persona.bio,
            persona.job_to_be_done,
            json_text(&persona.goals)?,
            json_text(&persona.frustrations)?
        ])?;
        search::index_persona(tx, workspace_id, &persona.id)?;
        let detail = format!("update_persona {} {:?}", persona.id, persona.name);
        Ok((persona, detail))
    })
}

/// Says that journey `journey` (id or slug) is about persona `persona_id`.
pub(super) fn link_persona(
    s: &ContentStore<'_>,
    workspace_id: i64,
    actor: Actor<'_>,
    journey: &str,
    persona_id: &str,
) -> StoreResult<PersonaLink> {
    write(s, workspace_id, actor, |tx, now| {
        let journey = find_journey(tx, workspace_id, journey)?;
        let persona = persona_by_id(tx, workspace_id, persona_id)?;
        let linked: i64 = tx.query_row(
            "SELECT count(*) AS n FROM journey_personas WHERE journey_id = ?1",
            [&journey.id],
            |row| row.get("n"),
        )?;
        if linked >= PERSONAS_PER_JOURNEY {
            return Err(StoreError::Quota(format!(
                "a journey names at most {PERSONAS_PER_JOURNEY} personas, and this one is \
                     full; unlink_persona one first"
            )));
        }
        let inserted = tx
            .prepare_cached(
                "INSERT INTO journey_personas (workspace_id, journey_id, persona_id, created_at)
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            )?
            .execute(params![workspace_id, journey.id, persona.id, now])?;
        if inserted == 0 {
            return Err(StoreError::Conflict(format!(
                "the journey {} already names the persona {}; nothing to do",
                journey.id, persona.id
            )));
        }
        let detail = format!("link_persona {} {:?} ↔ {}", journey.id, journey.name, persona.id);
        Ok((persona_link(journey, persona), detail))
    })
}

pub(super) fn unlink_persona(
    s: &ContentStore<'_>,
    workspace_id: i64,
    actor: Actor<'_>,
    journey: &str,
    persona_id: &str,
) -> StoreResult<PersonaLink> {
    write(s, workspace_id, actor, |tx, _| {
        let journey = find_journey(tx, workspace_id, journey)?;
        let persona = persona_by_id(tx, workspace_id, persona_id)?;
        let deleted = tx
            .prepare_cached(
                "DELETE FROM journey_personas WHERE workspace_id = ?1 AND journey_id = ?2
                     AND persona_id = ?3",
            )?
            .execute(params![workspace_id, journey.id, persona.id])?;
        if deleted == 0 {
            return Err(StoreError::Conflict(format!(
                "the journey {} does not name the persona {}; nothing to do",
                journey.id, persona.id
            )));
        }
        let detail = format!("unlink_persona {} {:?} ↔ {}", journey.id, journey.name, persona.id);
        Ok((persona_link(journey, persona), detail))
    })
}

/// Removes the link from `from_id` to `to_id`.
pub(super) fn unlink_items(
    s: &ContentStore<'_>,
    workspace_id: i64,
    actor: Actor<'_>,
    from_id: &str,
    to_id: &str,
) -> StoreResult<ItemLink> {
    write(s, workspace_id, actor, |tx, _| {
        let from = item_summary(tx, workspace_id, from_id)?;
        let to = item_summary(tx, workspace_id, to_id)?;
        let deleted = tx
            .prepare_cached(
                "DELETE FROM item_links WHERE workspace_id = ?1 AND from_item = ?2
                     AND to_item = ?3",
            )?
            .execute(params![workspace_id, from.id, to.id])?;
        if deleted == 0 {
            let hint = if tx
                .prepare_cached(
                    "SELECT 1 FROM item_links WHERE workspace_id = ?1 AND from_item = ?2
                         AND to_item = ?3",
                )?
                .exists(params![workspace_id, to.id, from.id])?
            {
                format!(" (there is one the other way: from {} to {})", to.id, from.id)
            } else {
                String::new()
            };
            return Err(StoreError::Conflict(format!(
                "there is no link from {} to {}{hint}; nothing to do",
                from.id, to.id
            )));
        }
        let detail =
            format!("unlink_items {} {:?} → {} {:?}", from.id, from.title, to.id, to.title);
        Ok((ItemLink { from, to }, detail))
    })
}

/// Runs `change` in a transaction and records it as a `tool.called` audit event, with the
/// detail `change` returns, in the same transaction.
pub(super) fn write<T>(
    s: &ContentStore<'_>,
    workspace_id: i64,
    actor: Actor<'_>,
    change: impl FnOnce(&Transaction<'_, '_>, i64) -> StoreResult<(T, String)>,
) -> StoreResult<T> {
    let now = s.now().timestamp();
    let conn = s.writer();
    let tx = conn.transaction()?;
    // The key is checked again under the write lock, which a revoke also takes: a write
    // either commits before the revoke or is refused after it, never in between.
    if !edge::key_is_active(&tx, actor, now)? {
        return Err(StoreError::Conflict(
            "not run: this MCP key has been revoked or has expired; nothing was changed".into(),
        ));
    }
    let (value, detail) = change(&tx, now)?;
    // Checked after the change, inside its transaction: a write past a quota is undone.
    check_quotas(s, &tx, workspace_id)?;
    insert_event(
        &tx,
        now,
        &NewEvent {
            workspace_id,
            kind: EventKind::ToolCalled,
            key_id: Some(actor.key_id),
            key_prefix: Some(actor.key_prefix),
            detail: &detail,
            actor: &crate::api::Author::of(crate::api::AuthorKind::Key),
        },
    )?;
    tx.commit()?;
    Ok(value)
}

// ---------------------------------------------------------------------------------------------
// Inserts, shared by the write methods and the import. Each checks what it is given, so a
// document obeys the same rules as an MCP client.

pub(in crate::store) fn insert_journey(
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

pub(in crate::store) fn insert_stage(
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

pub(in crate::store) fn insert_step(
    conn: &Connection,
    workspace_id: i64,
    stage_id: &str,
    name: &str,
    description: &str,
    position: i64,
) -> StoreResult<String> {
    let id = new_id("stp");
    // Hidden from the start when its stage or journey is archived.
    conn.prepare_cached(
        "INSERT INTO steps (id, workspace_id, stage_id, name, description, position, hidden)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6,
                 (SELECT CASE WHEN s.archived_at IS NULL AND j.archived_at IS NULL THEN 0 ELSE 1 END
                  FROM stages s JOIN journeys j ON j.id = s.journey_id WHERE s.id = ?3))",
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
    let choice = |field: &str, value: &Option<String>, allowed: &[&str]| match non_empty(value) {
        Some(value) => check_choice(field, value, allowed).map(|v| Some(v.to_owned())),
        None => Ok(None),
    };
    let priority = choice("priority", &new.priority, &PRIORITIES)?;
    let impact = choice("impact", &new.impact, &LEVELS)?;
    let effort = choice("effort", &new.effort, &LEVELS)?;
    let step_id = new.step_id.trim();
    ensure_step(conn, workspace_id, step_id)?;
    let id = new_id("itm");
    // The item takes its step's place in the map (and is hidden when its step is), and the
    // step counts it. (One row of VALUES, not INSERT … SELECT: a statement that may write
    // several rows opens a savepoint, and at each savepoint FTS5 writes out the index terms it
    // holds in memory, which would cost an import its batching.)
    conn.prepare_cached(
        "INSERT INTO items (id, workspace_id, step_id, kind, title, description, status, owner,
                            fields, created_at, updated_at, priority, impact, effort, map_order,
                            hidden)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11, ?12, ?13,
                 (SELECT map_order FROM steps WHERE id = ?3),
                 (SELECT hidden FROM steps WHERE id = ?3))",
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
        now,
        priority,
        impact,
        effort
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

/// The most personas one journey names.
const PERSONAS_PER_JOURNEY: i64 = 50;

/// A persona by id, in this workspace.
fn persona_by_id(conn: &Connection, workspace_id: i64, id: &str) -> StoreResult<Persona> {
    let id = id.trim();
    conn.prepare_cached(
        "SELECT id, name, role, bio, job_to_be_done, goals, frustrations FROM personas
         WHERE workspace_id = ?1 AND id = ?2",
    )?
    .query_row(params![workspace_id, id], |row| {
        Ok(Persona {
            id: row.get("id")?,
            name: row.get("name")?,
            role: row.get("role")?,
            bio: row.get("bio")?,
            job_to_be_done: row.get("job_to_be_done")?,
            goals: json_column(row, "goals")?,
            frustrations: json_column(row, "frustrations")?,
        })
    })
    .optional()?
    .ok_or_else(|| {
        StoreError::NotFound(format!(
            "no persona with id {id:?} in this workspace; list_personas gives their ids (per_…)"
        ))
    })
}

fn persona_link(journey: JourneyTree, persona: Persona) -> PersonaLink {
    PersonaLink {
        journey_id: journey.id,
        journey: journey.name,
        persona: PersonaRef { id: persona.id, name: persona.name, role: persona.role },
    }
}

/// `persona` with `changes` applied, checked.
fn persona_changed(mut persona: Persona, changes: &PersonaUpdate) -> StoreResult<Persona> {
    if let Some(name) = &changes.name {
        persona.name = required_text("name", name, NAME_MAX)?;
    }
    for (field, value, target) in [
        ("role", &changes.role, &mut persona.role),
        ("bio", &changes.bio, &mut persona.bio),
        ("job_to_be_done", &changes.job_to_be_done, &mut persona.job_to_be_done),
    ] {
        if let Some(value) = value {
            *target = clean_text(field, value, DESCRIPTION_MAX, true)?;
        }
    }
    for (field, values, target) in [
        ("goals", &changes.goals, &mut persona.goals),
        ("frustrations", &changes.frustrations, &mut persona.frustrations),
    ] {
        if let Some(values) = values {
            if values.len() > PERSONA_LIST_MAX {
                return Err(StoreError::Invalid(format!(
                    "{field} holds {} entries; at most {PERSONA_LIST_MAX} are allowed",
                    values.len()
                )));
            }
            *target = values
                .iter()
                .map(|v| required_text(field, v, TITLE_MAX))
                .collect::<StoreResult<_>>()?;
        }
    }
    Ok(persona)
}

/// An item's row, as an update reads and writes it.
#[derive(Clone)]
struct ItemRow {
    kind: ItemKind,
    title: String,
    description: String,
    status: String,
    owner: Option<String>,
    fields: Map<String, Value>,
    /// Priority, impact, effort.
    properties: [Option<String>; 3],
    step_id: String,
    archived: bool,
}

/// Moves item `id` from step `from` to the end of step `to`: its map order, both steps'
/// counts, whether it is hidden, and its comments' place in the index.
fn move_item(
    conn: &Connection,
    workspace_id: i64,
    id: &str,
    from: &str,
    to: &str,
    archived: bool,
) -> StoreResult<()> {
    conn.prepare_cached(
        "UPDATE items SET step_id = ?2,
             map_order = (SELECT map_order FROM steps WHERE id = ?2),
             hidden = CASE WHEN archived_at IS NULL
                           THEN (SELECT hidden FROM steps WHERE id = ?2) ELSE 1 END
         WHERE id = ?1",
    )?
    .execute(params![id, to])?;
    if !archived {
        let sql = "UPDATE steps SET item_count = item_count + ?2 WHERE id = ?1";
        conn.prepare_cached(sql)?.execute(params![from, -1_i64])?;
        conn.prepare_cached(sql)?.execute(params![to, 1_i64])?;
    }
    for row in conn.query("SELECT id FROM comments WHERE item_id = ?1", [id])? {
        search::index_comment(conn, workspace_id, &row.get::<String>("id")?)?;
    }
    Ok(())
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

/// Refuses a write that took the workspace past one of its quotas (see [`crate::store::Quotas`]).
pub(super) fn check_quotas(
    s: &ContentStore<'_>,
    conn: &Connection,
    workspace_id: i64,
) -> StoreResult<()> {
    let quotas = s.options().quotas;
    let rows = conn.query(
        "SELECT counter, n FROM workspace_counts WHERE workspace_id = ?1
             AND counter IN ('items', 'comments', 'text_bytes')",
        [workspace_id],
    )?;
    for row in rows {
        let (counter, n): (String, i64) = (row.get("counter")?, row.get("n")?);
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
