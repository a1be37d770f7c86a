//! A key confined to some journeys (`keys create --journeys`): every reference it sends is
//! checked to sit in one of them, and every list it reads is cut to them. Whatever lies
//! outside is answered exactly as a reference to nothing is, so the key cannot even tell that
//! it exists.

use serde_json::Value;

use crate::store::access::KeyIdentity;
use crate::store::content::ContentStore;
use crate::store::content::model::ItemDetail;
use crate::store::{Store, StoreError, StoreResult};

/// Whether `ctx` is confined to some journeys (else nothing here applies).
pub fn confined(ctx: &KeyIdentity) -> bool {
    ctx.scopes.journeys.is_some()
}

/// Whether the key may see what `reference` names (a journey id or slug, a stage, step, item,
/// comment or persona id). A reference to nothing is "visible": its own answer says so.
pub fn visible(store: &Store, ctx: &KeyIdentity, reference: &str) -> StoreResult<bool> {
    if !confined(ctx) {
        return Ok(true);
    }
    let content = store.content();
    if reference.trim().starts_with("per_") {
        let journeys = content.persona_journeys(ctx.workspace_id, reference)?;
        return Ok(journeys.iter().any(|journey| ctx.scopes.allows_journey(journey)));
    }
    Ok(match content.journey_of(ctx.workspace_id, reference)? {
        Some(journey) => ctx.scopes.allows_journey(&journey),
        None => true,
    })
}

/// `Ok` when the key may see `reference`, else the error a reference to nothing gets.
pub fn check(store: &Store, ctx: &KeyIdentity, reference: &str) -> StoreResult<()> {
    if visible(store, ctx, reference)? { Ok(()) } else { Err(ContentStore::not_found(reference)) }
}

/// The arguments of a tool call that name something in the map: ids by their prefix, and by
/// their argument's name whatever they hold: `journey`, and `id` (archive and restore take a
/// journey's slug there).
fn references(arguments: &Value) -> impl Iterator<Item = &str> {
    const PREFIXES: [&str; 6] = ["jrn_", "stg_", "stp_", "itm_", "cmt_", "per_"];
    arguments.as_object().into_iter().flatten().filter_map(|(name, value)| {
        let text = value.as_str()?;
        let named = matches!(name.as_str(), "journey" | "id");
        (named || PREFIXES.iter().any(|prefix| text.trim().starts_with(prefix))).then_some(text)
    })
}

/// Checks a tool call of a confined key before it runs: every reference inside its journeys,
/// and nothing made that would fall outside them. The error is the call's answer.
pub fn check_call(
    store: &Store,
    ctx: &KeyIdentity,
    tool: &str,
    arguments: &Value,
) -> StoreResult<()> {
    if !confined(ctx) {
        return Ok(());
    }
    if matches!(tool, "create_journey" | "create_persona") {
        let what = if tool == "create_journey" { "journeys" } else { "personas" };
        return Err(StoreError::Invalid(format!(
            "this MCP key is confined to some journeys, so it cannot create {what}; ask the \
             workspace admin for a key without --journeys"
        )));
    }
    for reference in references(arguments) {
        if !visible(store, ctx, reference)? {
            // Answered as the tool answers a reference to nothing.
            let prefixed =
                ["jrn_", "stg_", "stp_", "itm_"].iter().any(|p| reference.trim().starts_with(p));
            return Err(if matches!(tool, "archive" | "restore") && !prefixed {
                ContentStore::unknown_archive_target(reference)
            } else {
                ContentStore::not_found(reference)
            });
        }
    }
    Ok(())
}

/// `items` cut to those the key may see, by `id`.
pub fn retain<T>(
    store: &Store,
    ctx: &KeyIdentity,
    items: &mut Vec<T>,
    id: impl Fn(&T) -> &str,
) -> StoreResult<()> {
    if !confined(ctx) {
        return Ok(());
    }
    let mut kept = Vec::with_capacity(items.len());
    for item in items.drain(..) {
        if visible(store, ctx, id(&item))? {
            kept.push(item);
        }
    }
    *items = kept;
    Ok(())
}

/// An item's links cut to the items the key may see: links may cross into other journeys.
pub fn item_links(store: &Store, ctx: &KeyIdentity, item: &mut ItemDetail) -> StoreResult<()> {
    if !confined(ctx) {
        return Ok(());
    }
    let (to, from) = (item.links_to.len(), item.linked_from.len());
    retain(store, ctx, &mut item.links_to, |link| &link.id)?;
    retain(store, ctx, &mut item.linked_from, |link| &link.id)?;
    // The totals count what the key sees: less by what was cut from the page shown.
    item.links_to_total -= (to - item.links_to.len()) as i64;
    item.linked_from_total -= (from - item.linked_from.len()) as i64;
    Ok(())
}
