//! MCP prompts: whole workflows a person starts from their client (a slash command, a prompt
//! picker), each expanded into instructions that use the tools and the part of the map it is
//! about. Prompts that write are offered to read-write keys only.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::protocol::{RpcError, to_raw};
use super::render;
use super::resources::store_error;
use crate::api::Access;
use crate::store::Store;
use crate::store::access::KeyIdentity;
use crate::store::content::JourneyMap;
use crate::store::content::model::{StageNode, StepNode};

/// The longest `notes` a prompt takes: a page of pasted support notes, not a dump.
const NOTES_MAX_CHARS: usize = 20_000;
/// The most of the map a prompt carries (a stage can hold about 1 MB): with the instructions
/// and notes (at most 80 kB), a prompt stays within the ceiling of every answer.
const SECTION_MAX_BYTES: usize = render::MAX_TEXT_BYTES - 128 * 1024;

/// A prompt, as `prompts/list` shows it.
pub struct Prompt {
    pub name: &'static str,
    title: &'static str,
    description: &'static str,
    pub arguments: &'static [Argument],
    writes: bool,
}

pub struct Argument {
    pub name: &'static str,
    description: &'static str,
    required: bool,
}

const JOURNEY: Argument =
    Argument { name: "journey", description: "The journey: its slug or id.", required: true };
const STAGE: Argument = Argument {
    name: "stage",
    description: "A stage of the journey: its name or id.",
    required: true,
};

pub const PROMPTS: [Prompt; 3] = [
    Prompt {
        name: "review_stage",
        title: "Review a stage for friction",
        description: "Walk through one stage of a journey step by step, find where customers \
                      struggle or drop off, and say what is missing on the map.",
        arguments: &[JOURNEY, STAGE],
        writes: false,
    },
    Prompt {
        name: "notes_to_insights",
        title: "Turn support notes into insights",
        description: "Read pasted support notes and record what they show as insights on one \
                      step of a journey, linked to the touchpoints they concern, without \
                      duplicating what is there.",
        arguments: &[
            JOURNEY,
            STAGE,
            Argument {
                name: "step",
                description: "A step of that stage: its name or id.",
                required: true,
            },
            Argument {
                name: "notes",
                description: "The support notes, pasted as they are.",
                required: true,
            },
        ],
        writes: true,
    },
    Prompt {
        name: "summarise_changes",
        title: "Summarise what changed in a journey",
        description: "Summarise the items added or changed, and the comments added, in a journey \
                      over a recent period.",
        arguments: &[
            JOURNEY,
            Argument {
                name: "since",
                description: "How far back: 24h, 7d, 30d (the default is 7d), or a date \
                              (2026-11-01).",
                required: false,
            },
        ],
        writes: false,
    },
];

/// What `completion/complete` offers for `since`.
pub const SINCE_CHOICES: [&str; 4] = ["24h", "7d", "30d", "90d"];

impl Prompt {
    fn allowed(&self, access: Access) -> bool {
        !self.writes || access == Access::ReadWrite
    }
}

/// The prompt called `name`, if a key with `access` may use it.
pub fn find(name: &str, access: Access) -> Option<&'static Prompt> {
    PROMPTS.iter().find(|p| p.name == name && p.allowed(access))
}

/// The `prompts/list` result for a key with `access`, serialized once.
pub fn list_result(access: Access) -> &'static RawValue {
    fn build(access: Access) -> Box<RawValue> {
        let prompts: Vec<Value> = PROMPTS
            .iter()
            .filter(|p| p.allowed(access))
            .map(|p| {
                let arguments: Vec<Value> = p
                    .arguments
                    .iter()
                    .map(|a| {
                        json!({"name": a.name, "description": a.description, "required": a.required})
                    })
                    .collect();
                json!({
                    "name": p.name,
                    "title": p.title,
                    "description": p.description,
                    "arguments": arguments,
                })
            })
            .collect();
        to_raw(&json!({"prompts": prompts}))
    }
    static READ_WRITE: LazyLock<Box<RawValue>> = LazyLock::new(|| build(Access::ReadWrite));
    static READ_ONLY: LazyLock<Box<RawValue>> = LazyLock::new(|| build(Access::ReadOnly));
    match access {
        Access::ReadWrite => &READ_WRITE,
        Access::ReadOnly => &READ_ONLY,
    }
}

/// `prompts/get` parameters. Arguments are strings, as the spec has them.
#[derive(Debug, Deserialize)]
pub struct GetParams {
    pub name: String,
    #[serde(default)]
    pub arguments: Option<BTreeMap<String, String>>,
}

/// Expands a prompt with its arguments.
pub fn get(store: &Store, key: &KeyIdentity, params: GetParams) -> Result<Box<RawValue>, RpcError> {
    let Some(prompt) = find(&params.name, key.access) else {
        let known = PROMPTS.iter().find(|p| p.name == params.name);
        return Err(RpcError::invalid_params(match known {
            Some(_) => format!(
                "the prompt {:?} records things and this MCP key is read-only; use a read-write \
                 key",
                params.name
            ),
            None => format!("unknown prompt {:?}; prompts/list names the prompts", params.name),
        }));
    };
    let arguments = params.arguments.unwrap_or_default();
    let argument = |name: &str| arguments.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    for required in prompt.arguments.iter().filter(|a| a.required) {
        if argument(required.name).is_none() {
            return Err(RpcError::invalid_params(format!(
                "the prompt {} needs the argument {:?} ({})",
                prompt.name, required.name, required.description
            )));
        }
    }
    if let Some(unknown) = arguments.keys().find(|k| !prompt.arguments.iter().any(|a| a.name == *k))
    {
        return Err(RpcError::invalid_params(format!(
            "the prompt {} takes no argument {unknown:?}; it takes {}",
            prompt.name,
            prompt.arguments.iter().map(|a| a.name).collect::<Vec<_>>().join(", ")
        )));
    }
    if let Some(journey) = argument("journey") {
        super::confine::check(store, key, journey).map_err(store_error)?;
    }
    let ws = key.workspace_id;
    // Required arguments were checked above: `expect` cannot fail on them.
    let required = |name: &str| argument(name).expect("a required argument, checked");
    let (description, text) = match prompt.name {
        "review_stage" => {
            let map = store.content().journey_map(ws, required("journey")).map_err(store_error)?;
            let (number, stage) = find_stage(&map, required("stage"))?;
            let mut section = String::new();
            render::stage(&mut section, &map, number, stage);
            let section = render::bounded_to(section, SECTION_MAX_BYTES);
            (
                format!("Review the stage {:?} of the journey {:?}", stage.name, map.tree.name),
                review_stage(&map, stage, &section),
            )
        }
        "notes_to_insights" => {
            let notes = required("notes");
            if notes.chars().count() > NOTES_MAX_CHARS {
                return Err(RpcError::invalid_params(format!(
                    "the notes are longer than {NOTES_MAX_CHARS} characters; paste them in parts"
                )));
            }
            let map = store.content().journey_map(ws, required("journey")).map_err(store_error)?;
            let (number, stage) = find_stage(&map, required("stage"))?;
            let (index, step) = find_step(stage, required("step"))?;
            let mut section = String::new();
            render::step(&mut section, &map, &format!("{number}.{index}"), step);
            let section = render::bounded_to(section, SECTION_MAX_BYTES);
            (
                format!("Turn support notes into insights on the step {:?}", step.name),
                notes_to_insights(&map, step, &section, notes),
            )
        }
        "summarise_changes" => {
            let since_text = argument("since").unwrap_or("7d");
            let since = since_moment(since_text, store.now())?;
            let changes = store
                .content()
                .journey_changes(ws, required("journey"), since)
                .map_err(store_error)?;
            let listed = render::changes(&changes, &since.format("%Y-%m-%d %H:%M UTC").to_string());
            (
                format!("Summarise what changed in {:?} since {since_text}", changes.journey_name),
                summarise_changes(&listed),
            )
        }
        // `find` only returns the prompts above.
        other => unreachable!("prompt {other} has no expansion"),
    };
    Ok(to_raw(&json!({
        "description": description,
        "messages": [{"role": "user", "content": {"type": "text", "text": text}}],
    })))
}

fn find_stage<'a>(map: &'a JourneyMap, wanted: &str) -> Result<(usize, &'a StageNode), RpcError> {
    let stages = &map.tree.stages;
    stages
        .iter()
        .position(|s| s.id == wanted || s.name.trim().eq_ignore_ascii_case(wanted))
        .map(|at| (at + 1, &stages[at]))
        .ok_or_else(|| {
            RpcError::invalid_params(format!(
                "the journey {:?} has no stage {wanted:?}; its stages are {}",
                map.tree.slug,
                names(stages.iter().map(|s| s.name.as_str()))
            ))
        })
}

fn find_step<'a>(stage: &'a StageNode, wanted: &str) -> Result<(usize, &'a StepNode), RpcError> {
    stage
        .steps
        .iter()
        .position(|s| s.id == wanted || s.name.trim().eq_ignore_ascii_case(wanted))
        .map(|at| (at + 1, &stage.steps[at]))
        .ok_or_else(|| {
            RpcError::invalid_params(format!(
                "the stage {:?} has no step {wanted:?}; its steps are {}",
                stage.name,
                names(stage.steps.iter().map(|s| s.name.as_str()))
            ))
        })
}

/// The first names of a list, quoted, for an error that says what there is.
fn names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<String> = names.map(|n| format!("{n:?}")).collect();
    match names.len() {
        0 => "none".to_owned(),
        n if n > 20 => format!("{}, … ({n} in all)", names[..20].join(", ")),
        _ => names.join(", "),
    }
}

/// When `since` began: `24h`, `7d`, `30d` back from `now`, or a date's midnight (UTC).
fn since_moment(since: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, RpcError> {
    let bad = || {
        RpcError::invalid_params(format!(
            "\"since\" is {since:?}; give a period such as 24h, 7d or 30d, or a date such as \
             2026-11-01"
        ))
    };
    if let Ok(date) = NaiveDate::parse_from_str(since, "%Y-%m-%d") {
        let midnight = date.and_hms_opt(0, 0, 0).ok_or_else(bad)?;
        return Ok(midnight.and_utc());
    }
    let unit = since.chars().last().ok_or_else(bad)?;
    let number: i64 = since[..since.len() - unit.len_utf8()].parse().map_err(|_| bad())?;
    let back = match unit {
        'h' if (1..=24 * 366).contains(&number) => Duration::hours(number),
        'd' if (1..=366 * 5).contains(&number) => Duration::days(number),
        _ => return Err(bad()),
    };
    Ok(now - back)
}

fn review_stage(map: &JourneyMap, stage: &StageNode, section: &str) -> String {
    format!(
        "Review the stage \"{stage}\" of the customer journey \"{journey}\" (journey `{slug}`) \
         for friction: the places where customers struggle, wait, get confused or drop off.\n\n\
         1. Go through its steps in order. For each step, say what the customer is trying to \
         do, what the touchpoints and insights on the map say happens, and where the friction \
         is.\n\
         2. Read the items that matter in full with get_item (links, comments), and use search \
         to find related evidence elsewhere in the workspace.\n\
         3. Point out what the map is missing: steps with no insights, insights that lead to no \
         opportunity, opportunities without a solution or a metric.\n\
         4. End with the three changes that would remove the most friction, each tied to the \
         step and items it concerns (by id).\n\n\
         Do not change the map unless asked. The stage as the map shows it now:\n{section}",
        stage = stage.name,
        journey = map.tree.name,
        slug = map.tree.slug,
    )
}

fn notes_to_insights(map: &JourneyMap, step: &StepNode, section: &str, notes: &str) -> String {
    format!(
        "Turn the support notes below into insights on the step \"{step_name}\" (step \
         `{step_id}`) of the journey \"{journey}\".\n\n\
         1. Read the notes and group what they say into distinct problems or needs; each group \
         is one insight. Quote the notes that show it.\n\
         2. Before creating anything, check what the step already holds (below, and list_items \
         with step_id {step_id}) and search the workspace for the same insight. Where one \
         exists, add a comment with the new evidence (add_comment) instead of a duplicate.\n\
         3. Create each new insight with create_item (kind insight, step_id {step_id}): a short \
         title that names the problem, a description with the evidence, and a priority when \
         the notes make the urgency clear.\n\
         4. Link each insight to the touchpoint it concerns with link_items (touchpoint -> \
         insight), when the step has one.\n\
         5. End with a list of what you created and commented on, by id.\n\n\
         The step as the map shows it now:\n{section}\n\
         The support notes:\n\n<notes>\n{notes}\n</notes>",
        step_name = step.name,
        step_id = step.id,
        journey = map.tree.name,
    )
}

fn summarise_changes(listed: &str) -> String {
    format!(
        "Summarise for the team what changed in this customer journey, from the list below.\n\n\
         - Group the changes by stage, most significant first; say what was learned (new \
         insights), what was decided (opportunities, solutions) and what is measured \
         (metrics).\n\
         - Call out new insights that no opportunity addresses yet, and work that was \
         archived.\n\
         - Read items in full with get_item where the title is not enough.\n\
         - Keep it short: a paragraph per stage at most, then a list of open questions.\n\n\
         {listed}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_periods_and_dates_and_refuses_the_rest() {
        let now = DateTime::parse_from_rfc3339("2026-12-02T12:00:00Z").expect("a time").to_utc();
        assert_eq!(since_moment("24h", now).expect("24h"), now - Duration::hours(24));
        assert_eq!(since_moment("7d", now).expect("7d"), now - Duration::days(7));
        assert_eq!(
            since_moment("2026-11-01", now).expect("a date").to_rfc3339(),
            "2026-11-01T00:00:00+00:00"
        );
        for bad in ["", "d", "7", "-1d", "7w", "999999d", "2026-13-01", "é"] {
            assert!(since_moment(bad, now).is_err(), "{bad:?} is refused");
        }
    }
}
