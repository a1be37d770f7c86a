//! Where a thing sits, for keys confined to some journeys: the journey a reference belongs to,
//! and the answer a reference outside those journeys gets (the one a missing id gets).

use super::ContentStore;
use super::model::{ItemCounts, ItemKind, WorkspaceSummary};
use super::reads::{not_found_item, not_found_stage, not_found_step};
use crate::store::db::{OptionalExtension as _, params};
use crate::store::{StoreError, StoreResult};

/// The journey (`jrn_…`) that `reference` sits in: a journey's id or slug, or the id of a
/// stage, step, item or comment. `None` when the workspace has no such thing.
pub(super) fn journey_of(
    s: &ContentStore<'_>,
    workspace_id: i64,
    reference: &str,
) -> StoreResult<Option<String>> {
    let reference = reference.trim();
    let sql = match reference.split_once('_').map(|(prefix, _)| prefix) {
        Some("stg") => "SELECT journey_id AS j FROM stages WHERE workspace_id = ?1 AND id = ?2",
        Some("stp") => {
            "SELECT g.journey_id AS j FROM steps p JOIN stages g ON g.id = p.stage_id
             WHERE p.workspace_id = ?1 AND p.id = ?2"
        }
        Some("itm") => {
            "SELECT g.journey_id AS j FROM items i JOIN steps p ON p.id = i.step_id
             JOIN stages g ON g.id = p.stage_id WHERE i.workspace_id = ?1 AND i.id = ?2"
        }
        Some("cmt") => {
            "SELECT g.journey_id AS j FROM comments c JOIN items i ON i.id = c.item_id
             JOIN steps p ON p.id = i.step_id JOIN stages g ON g.id = p.stage_id
             WHERE c.workspace_id = ?1 AND c.id = ?2"
        }
        Some("per") => return Ok(None),
        _ => "SELECT id AS j FROM journeys WHERE workspace_id = ?1 AND (id = ?2 OR slug = ?2)",
    };
    Ok(s.reader()?
        .prepare_cached(sql)?
        .query_row(params![workspace_id, reference], |row| row.get::<String>("j"))
        .optional()?)
}

/// The workspace as a key confined to `journeys` (`jrn_…`) may see it: its name, and the
/// journeys (not archived), personas linked to them and items in them, counted. A key
/// confined to some journeys learns nothing of the size of the rest.
pub(super) fn summary_within(
    s: &ContentStore<'_>,
    workspace_id: i64,
    journeys: &[String],
) -> StoreResult<WorkspaceSummary> {
    let mut summary = s.workspace_summary(workspace_id)?;
    let reader = s.reader()?;
    let conn = reader.snapshot()?;
    let mut personas = std::collections::BTreeSet::new();
    let (mut shown, mut items) = (0, ItemCounts::default());
    for journey in journeys {
        let open = conn
            .prepare_cached(
                "SELECT count(*) AS n FROM journeys
                 WHERE workspace_id = ?1 AND id = ?2 AND archived_at IS NULL",
            )?
            .query_row(params![workspace_id, journey], |row| row.get::<i64>("n"))?;
        shown += open;
        let linked = conn.query(
            "SELECT persona_id FROM journey_personas WHERE workspace_id = ?1 AND journey_id = ?2",
            params![workspace_id, journey],
        )?;
        for row in &linked {
            personas.insert(row.get::<String>("persona_id")?);
        }
        // The items on the steps of its stages.
        let counted = conn.query(
            "SELECT i.kind AS kind, count(*) AS n FROM items i
             JOIN steps p ON p.id = i.step_id JOIN stages g ON g.id = p.stage_id
             WHERE i.workspace_id = ?1 AND g.journey_id = ?2 GROUP BY i.kind",
            params![workspace_id, journey],
        )?;
        for row in &counted {
            let Some(kind) = ItemKind::parse(&row.get::<String>("kind")?) else { continue };
            let n = row.get::<i64>("n")?;
            items.total += n;
            *match kind {
                ItemKind::Touchpoint => &mut items.touchpoint,
                ItemKind::Insight => &mut items.insight,
                ItemKind::Opportunity => &mut items.opportunity,
                ItemKind::Solution => &mut items.solution,
                ItemKind::Metric => &mut items.metric,
            } += n;
        }
    }
    summary.journeys = shown;
    summary.personas = i64::try_from(personas.len()).unwrap_or(i64::MAX);
    summary.items = items;
    Ok(summary)
}

/// The journeys (`jrn_…`) a persona is linked to.
pub(super) fn persona_journeys(
    s: &ContentStore<'_>,
    workspace_id: i64,
    persona_id: &str,
) -> StoreResult<Vec<String>> {
    let rows = s.reader()?.query(
        "SELECT journey_id FROM journey_personas WHERE workspace_id = ?1 AND persona_id = ?2",
        params![workspace_id, persona_id.trim()],
    )?;
    Ok(rows.iter().map(|row| row.get::<String>("journey_id")).collect::<Result<_, _>>()?)
}

/// What a reference outside a key's journeys is answered, word for word what a reference to
/// nothing is answered.
pub(super) fn not_found(reference: &str) -> StoreError {
    let reference = reference.trim();
    match reference.split_once('_').map(|(prefix, _)| prefix) {
        Some("stg") => not_found_stage(reference),
        Some("stp") => not_found_step(reference),
        Some("itm") => not_found_item(reference),
        Some("per") => StoreError::NotFound(format!(
            "no persona with id {reference:?} in this workspace; list_personas gives their ids \
             (per_…)"
        )),
        Some("cmt") => StoreError::NotFound(format!("{reference:?} is not in this workspace")),
        _ => StoreError::NotFound(format!(
            "no journey with id or slug {reference:?} in this workspace; list_journeys gives the \
             ids and slugs"
        )),
    }
}
