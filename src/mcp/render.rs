//! Markdown renderings of workspace content, for people and models alike: a journey's map (a
//! journey resource, and the stage or step a prompt is about), an item (an item resource), and
//! what changed in a journey. Every rendering ends within [`MAX_TEXT_BYTES`].

use std::fmt::Write as _;

use crate::store::content::model::{ItemDetail, ItemSummary, StageNode, StepNode};
use crate::store::content::{JourneyChanges, JourneyMap};

/// A rendering is cut at this many bytes, with a line saying so: the tools' ceiling.
pub const MAX_TEXT_BYTES: usize = super::tools::MAX_RESULT_BYTES;
/// Links shown under each item of a map.
const LINKS_PER_ITEM: usize = crate::store::content::MAP_LINKS_SHOWN;
/// Change entries quote at most this many characters of a comment.
const QUOTE_CHARS: usize = 300;

/// The URI of a journey's resource.
pub fn journey_uri(slug: &str) -> String {
    format!("custory://journeys/{slug}")
}

/// The URI of an item's resource.
pub fn item_uri(id: &str) -> String {
    format!("custory://items/{id}")
}

/// A journey's whole map.
pub fn journey(map: &JourneyMap) -> String {
    let tree = &map.tree;
    let mut out = String::new();
    let _ = writeln!(out, "# {} (journey `{}`, {})", one_line(&tree.name), tree.slug, tree.id);
    if tree.archived {
        out.push_str("\n*This journey is archived.*\n");
    }
    paragraph(&mut out, &tree.description);
    if !tree.personas.is_empty() {
        let personas: Vec<String> = tree
            .personas
            .iter()
            .map(|p| format!("{} ({}, {})", one_line(&p.name), one_line(&p.role), p.id))
            .collect();
        let _ = writeln!(out, "\nPersonas: {}", personas.join("; "));
    }
    let steps: usize = tree.stages.iter().map(|s| s.steps.len()).sum();
    let _ = writeln!(
        out,
        "\n{} stages, {steps} steps, {} items ({} shown).",
        tree.stages.len(),
        tree.items_total,
        tree.items_shown
    );
    if let Some(note) = &tree.note {
        let _ = writeln!(out, "Note: {note}.");
    }
    for (number, stage_node) in tree.stages.iter().enumerate() {
        stage(&mut out, map, number + 1, stage_node);
    }
    bounded(out)
}

/// One stage of a journey's map, numbered as in the journey.
pub fn stage(out: &mut String, map: &JourneyMap, number: usize, stage: &StageNode) {
    let _ = writeln!(out, "\n## {number}. {} ({})", one_line(&stage.name), stage.id);
    paragraph(out, &stage.description);
    if stage.steps.is_empty() {
        out.push_str("\n(no steps)\n");
    }
    for (index, step_node) in stage.steps.iter().enumerate() {
        step(out, map, &format!("{number}.{}", index + 1), step_node);
    }
}

/// One step of a journey's map with its items and their links.
pub fn step(out: &mut String, map: &JourneyMap, number: &str, step: &StepNode) {
    let _ = writeln!(
        out,
        "\n### {number} {} ({}, {} items)",
        one_line(&step.name),
        step.id,
        step.item_count
    );
    paragraph(out, &step.description);
    if !step.items.is_empty() {
        out.push('\n');
    }
    for item in &step.items {
        let _ = writeln!(out, "- {}", item_line(item));
        let links = map.links.get(&item.id).map_or(&[][..], Vec::as_slice);
        for to in links.iter().take(LINKS_PER_ITEM) {
            let _ = writeln!(out, "  - links to {}", item_line(to));
        }
        if links.len() > LINKS_PER_ITEM {
            let _ =
                writeln!(out, "  - and more links: read {} for all of them", item_uri(&item.id));
        }
    }
    let hidden = step.item_count - i64::try_from(step.items.len()).unwrap_or(0);
    if hidden > 0 {
        let _ = writeln!(
            out,
            "- … and {hidden} more items on this step (list_items with step_id {})",
            step.id
        );
    }
}

/// An item in full: what it is, where it sits, its fields, links and first comments.
pub fn item(item: &ItemDetail) -> String {
    let mut out = String::new();
    let summary = &item.item;
    let _ = writeln!(out, "# {}", one_line(&summary.title));
    let _ = writeln!(out, "\n**{}** · {}", summary.kind.as_str(), properties(summary));
    let place = &item.location;
    let _ = writeln!(
        out,
        "On the map: {} › {} › {} (step {})",
        one_line(&place.journey),
        one_line(&place.stage),
        one_line(&place.step),
        place.step_id
    );
    paragraph(&mut out, &item.description);
    if !item.fields.is_empty() {
        out.push_str("\n## Fields\n\n");
        for (name, value) in &item.fields {
            let value = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
            let _ = writeln!(out, "- {name}: {}", one_line(&value));
        }
    }
    for (title, links, total) in [
        ("Links to", &item.links_to, item.links_to_total),
        ("Linked from", &item.linked_from, item.linked_from_total),
    ] {
        if total == 0 {
            continue;
        }
        let _ = writeln!(out, "\n## {title} ({total})\n");
        for linked in links {
            let _ = writeln!(out, "- {}", item_line(linked));
        }
        if total > i64::try_from(links.len()).unwrap_or(0) {
            out.push_str("- … and more (the get_item tool pages through them)\n");
        }
    }
    if item.comments_total > 0 {
        let _ = writeln!(out, "\n## Comments ({})\n", item.comments_total);
        for comment in &item.comments {
            let _ = writeln!(
                out,
                "- {} ({}): {}",
                one_line(&comment.author),
                comment.created_at.format("%Y-%m-%d %H:%M UTC"),
                one_line(&comment.body)
            );
        }
        if item.comments_next_cursor.is_some() {
            out.push_str("- … and more (get_item with comments_cursor pages through them)\n");
        }
    }
    let _ = writeln!(
        out,
        "\nCreated {}, updated {}.",
        item.created_at.format("%Y-%m-%d %H:%M UTC"),
        item.updated_at.format("%Y-%m-%d %H:%M UTC")
    );
    bounded(out)
}

/// What changed in a journey since `since` (as the person gave it).
pub fn changes(changes: &JourneyChanges, since: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Changes in the journey {} (`{}`) since {since}:",
        one_line(&changes.journey_name),
        changes.journey_slug
    );
    if changes.items.is_empty() && changes.comments.is_empty() {
        out.push_str("\nNothing was added or changed in that time.\n");
        return out;
    }
    if !changes.items.is_empty() {
        let _ =
            writeln!(out, "\n## Items added or changed ({}, newest first)\n", changes.items.len());
        for changed in &changes.items {
            let what = if changed.created_at == changed.updated_at { "added" } else { "changed" };
            let place = &changed.item.location;
            let _ = writeln!(
                out,
                "- {what} {}: {} › {} — {}",
                changed.updated_at.format("%Y-%m-%d %H:%M UTC"),
                one_line(&place.stage),
                one_line(&place.step),
                item_line(&changed.item.item)
            );
        }
        if changes.items_more {
            out.push_str("- … and more: list_items with the journey lists them all\n");
        }
    }
    if !changes.comments.is_empty() {
        let _ = writeln!(out, "\n## Comments added ({}, newest first)\n", changes.comments.len());
        for (on, comment) in &changes.comments {
            let body: String = one_line(&comment.body).chars().take(QUOTE_CHARS).collect();
            let _ = writeln!(
                out,
                "- {} by {} on {}: {body}",
                comment.created_at.format("%Y-%m-%d %H:%M UTC"),
                one_line(&comment.author),
                item_line(on)
            );
        }
        if changes.comments_more {
            out.push_str("- … and more comments in that time\n");
        }
    }
    bounded(out)
}

/// An item on one line: kind, title, properties, id.
fn item_line(item: &ItemSummary) -> String {
    format!("**{}** {} — {}", item.kind.as_str(), one_line(&item.title), properties(item))
}

fn properties(item: &ItemSummary) -> String {
    let mut parts = vec![format!("status {}", item.status)];
    if let Some(owner) = &item.owner {
        parts.push(format!("owner {}", one_line(owner)));
    }
    if let Some(priority) = &item.priority {
        parts.push(priority.clone());
    }
    if let Some(impact) = &item.impact {
        parts.push(format!("impact {impact}"));
    }
    if let Some(effort) = &item.effort {
        parts.push(format!("effort {effort}"));
    }
    if item.archived {
        parts.push("archived".to_owned());
    }
    parts.push(format!("`{}`", item.id));
    parts.join(" · ")
}

fn paragraph(out: &mut String, text: &str) {
    let text = text.trim();
    if !text.is_empty() {
        let _ = writeln!(out, "\n{text}");
    }
}

/// Text from the workspace on one line: a title or comment must not start headings or lists.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `text`, cut at [`MAX_TEXT_BYTES`] (on a character boundary) with a line saying so.
fn bounded(text: String) -> String {
    bounded_to(text, MAX_TEXT_BYTES)
}

/// `text`, cut at `max` bytes (on a character boundary) with a line saying so.
pub(super) fn bounded_to(mut text: String, max: usize) -> String {
    const TAIL: &str = "\n… cut here: the rest is larger than one answer may be; the tools \
                        (get_journey, list_items, get_item) page through it.\n";
    if text.len() <= max {
        return text;
    }
    let mut end = max - TAIL.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(TAIL);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_on_a_character_boundary_and_says_so() {
        let text = "é".repeat(MAX_TEXT_BYTES);
        let cut = bounded(text);
        assert!(cut.len() <= MAX_TEXT_BYTES, "{}", cut.len());
        assert!(cut.ends_with("page through it.\n"));
        assert_eq!(one_line("a\n# b\t c"), "a # b c");
    }
}
