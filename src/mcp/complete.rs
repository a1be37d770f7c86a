//! `completion/complete`: what a person may type for a prompt's argument or a resource
//! template's variable — journey slugs, stage and step names (within the journey and stage
//! already chosen, given as `context.arguments`), and the periods `since` takes.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;

use super::confine;
use super::prompts::{self, SINCE_CHOICES};
use super::protocol::{RpcError, to_raw};
use super::resources::{ITEM_TEMPLATE, JOURNEY_TEMPLATE, store_error};
use crate::store::Store;
use crate::store::access::KeyIdentity;
use crate::store::content::Completing;

/// The most one answer offers: the spec's ceiling.
const VALUES_MAX: usize = 100;
/// The longest value completed: a name is never longer.
const TYPED_MAX_CHARS: usize = 200;

#[derive(Debug, Deserialize)]
pub struct CompleteParams {
    #[serde(rename = "ref")]
    reference: Reference,
    argument: ArgumentValue,
    #[serde(default)]
    context: Option<Context>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type")]
enum Reference {
    #[serde(rename = "ref/prompt")]
    Prompt { name: String },
    #[serde(rename = "ref/resource")]
    Resource { uri: String },
}

#[derive(Debug, Deserialize)]
struct ArgumentValue {
    name: String,
    value: String,
}

#[derive(Debug, Default, Deserialize)]
struct Context {
    #[serde(default)]
    arguments: BTreeMap<String, String>,
}

pub fn complete(
    store: &Store,
    key: &KeyIdentity,
    params: CompleteParams,
) -> Result<Box<RawValue>, RpcError> {
    let typed = params.argument.value.trim();
    if typed.chars().count() > TYPED_MAX_CHARS {
        return Err(RpcError::invalid_params(format!(
            "the value to complete is longer than {TYPED_MAX_CHARS} characters"
        )));
    }
    let context = params.context.unwrap_or_default().arguments;
    let given = |name: &str| context.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let argument = params.argument.name.as_str();
    let completing = match &params.reference {
        Reference::Prompt { name } => {
            let Some(prompt) = prompts::find(name, key.access) else {
                return Err(RpcError::invalid_params(format!(
                    "unknown prompt {name:?}; prompts/list names the prompts"
                )));
            };
            if !prompt.arguments.iter().any(|a| a.name == argument) {
                return Err(RpcError::invalid_params(format!(
                    "the prompt {name} has no argument {argument:?}"
                )));
            }
            match argument {
                "journey" => Some(Completing::Journey),
                "stage" => Some(Completing::Stage { journey: given("journey") }),
                "step" => {
                    Some(Completing::Step { journey: given("journey"), stage: given("stage") })
                }
                _ => None,
            }
        }
        Reference::Resource { uri } if uri == JOURNEY_TEMPLATE && argument == "journey" => {
            Some(Completing::Journey)
        }
        Reference::Resource { uri } if uri == JOURNEY_TEMPLATE || uri == ITEM_TEMPLATE => None,
        Reference::Resource { uri } => {
            return Err(RpcError::invalid_params(format!(
                "unknown resource template {uri:?}; resources/templates/list names them"
            )));
        }
    };
    // A key confined to some journeys is offered only what lies in them: journeys it sees,
    // stages and steps of a journey it names and sees.
    let completing = match completing {
        Some(Completing::Stage { journey } | Completing::Step { journey, .. })
            if confine::confined(key)
                && !journey.is_some_and(|j| confine::visible(store, key, j).unwrap_or(false)) =>
        {
            return Ok(to_raw(&json!({"completion": {"values": [], "hasMore": false}})));
        }
        other => other,
    };
    let confined_journeys =
        matches!(completing, Some(Completing::Journey)) && confine::confined(key);
    let (values, more) = match completing {
        Some(completing) => {
            let (mut values, more) = store
                .content()
                .complete(key.workspace_id, completing, typed)
                .map_err(store_error)?;
            if confined_journeys {
                confine::retain(store, key, &mut values, String::as_str).map_err(store_error)?;
            }
            (values, more)
        }
        None if argument == "since" => {
            let values = SINCE_CHOICES
                .iter()
                .filter(|choice| choice.starts_with(typed))
                .map(|choice| (*choice).to_owned())
                .collect();
            (values, false)
        }
        // Free text (the notes) and item ids: nothing to offer.
        None => (Vec::new(), false),
    };
    debug_assert!(values.len() <= VALUES_MAX);
    Ok(to_raw(&json!({"completion": {"values": values, "hasMore": more}})))
}
