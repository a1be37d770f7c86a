//! The rules every write obeys: text lengths and characters, statuses, kind-specific fields.

use serde_json::{Map, Value};

use super::model::ItemKind;
use crate::store::{StoreError, StoreResult};

pub(super) const TITLE_MAX: usize = 200;
pub(super) const DESCRIPTION_MAX: usize = 10_000;
pub(super) const NAME_MAX: usize = 100;
const FIELD_VALUE_MAX: usize = 500;
/// The most journeys a workspace, stages a journey and steps a stage may hold: a map stays a
/// map an agent can read (`get_journey` answers within its ceiling).
pub(super) const JOURNEYS_MAX: usize = 500;
pub(super) const STAGES_MAX: usize = 30;
pub(super) const STEPS_MAX: usize = 30;
/// The most goals, and frustrations, of a persona.
pub(super) const PERSONA_LIST_MAX: usize = 30;

// ---------------------------------------------------------------------------------------------
// Validation and small helpers.

/// `value` trimmed, refused when longer than `max` characters or when it holds control
/// characters (newlines and tabs are fine in `multiline` text).
pub(super) fn clean_text(
    field: &str,
    value: &str,
    max: usize,
    multiline: bool,
) -> StoreResult<String> {
    let value = value.trim();
    let len = value.chars().count();
    if len > max {
        return Err(StoreError::Invalid(format!(
            "{field} is too long ({len} characters, at most {max})"
        )));
    }
    let allowed = |c: char| multiline && matches!(c, '\n' | '\r' | '\t');
    if value.chars().any(|c| c.is_control() && !allowed(c)) {
        return Err(StoreError::Invalid(format!("{field} must not contain control characters")));
    }
    Ok(value.to_owned())
}

pub(super) fn required_text(field: &str, value: &str, max: usize) -> StoreResult<String> {
    non_blank(field, clean_text(field, value, max, false)?)
}

pub(super) fn required_text_multiline(field: &str, value: &str, max: usize) -> StoreResult<String> {
    non_blank(field, clean_text(field, value, max, true)?)
}

pub(super) fn non_blank(field: &str, value: String) -> StoreResult<String> {
    if value.is_empty() {
        Err(StoreError::Invalid(format!("{field} must not be empty")))
    } else {
        Ok(value)
    }
}

/// A one-line name where an empty string means "none".
pub(super) fn optional_text(field: &str, value: &str) -> StoreResult<Option<String>> {
    let value = clean_text(field, value, NAME_MAX, false)?;
    Ok(Some(value).filter(|v| !v.is_empty()))
}

pub(super) fn check_status(kind: ItemKind, status: &str) -> StoreResult<String> {
    let status = status.trim();
    if kind.statuses().contains(&status) {
        Ok(status.to_owned())
    } else {
        Err(StoreError::Invalid(format!(
            "{status:?} is not a status of a {kind}; use one of: {}",
            kind.statuses().join(", ")
        )))
    }
}

/// `value` when it is one of `allowed` (exactly; `field` names it in the error).
pub(super) fn check_choice<'a>(
    field: &str,
    value: &'a str,
    allowed: &[&str],
) -> StoreResult<&'a str> {
    if allowed.contains(&value) {
        Ok(value)
    } else {
        Err(StoreError::Invalid(format!(
            "{value:?} is not a {field}; use one of: {}",
            allowed.join(", ")
        )))
    }
}

/// An item property (priority, impact, effort) as an update gives it: `None` when not given,
/// `Some(None)` to clear it (an empty string), else the value, checked.
pub(super) fn optional_choice(
    field: &str,
    value: &Option<String>,
    allowed: &[&str],
) -> StoreResult<Option<Option<String>>> {
    match value.as_deref().map(str::trim) {
        None => Ok(None),
        Some("") => Ok(Some(None)),
        Some(value) => Ok(Some(Some(check_choice(field, value, allowed)?.to_owned()))),
    }
}

/// `fields` with `patch` applied: each name must be one of the kind's fields, a null value
/// removes the field, any other value must be a string, number or boolean.
pub(super) fn merge_fields(
    kind: ItemKind,
    mut fields: Map<String, Value>,
    patch: &Map<String, Value>,
) -> StoreResult<Map<String, Value>> {
    for (name, value) in patch {
        // A null for a name the kind does not have removes nothing: it is the same as leaving
        // the name out (a model in a strict mode sends every name, null where it has none).
        if value.is_null() && !kind.field_names().contains(&name.as_str()) {
            continue;
        }
        if !kind.field_names().contains(&name.as_str()) {
            return Err(StoreError::Invalid(format!(
                "{name:?} is not a field of a {kind}; its fields are: {}",
                kind.field_names().join(", ")
            )));
        }
        match value {
            Value::Null => {
                fields.remove(name);
            }
            Value::String(text) if text.chars().count() > FIELD_VALUE_MAX => {
                return Err(StoreError::Invalid(format!(
                    "the field {name:?} is too long (at most {FIELD_VALUE_MAX} characters)"
                )));
            }
            Value::String(_) | Value::Number(_) | Value::Bool(_) => {
                fields.insert(name.clone(), value.clone());
            }
            Value::Array(_) | Value::Object(_) => {
                return Err(StoreError::Invalid(format!(
                    "the field {name:?} must be a string, number or boolean (or null to remove it)"
                )));
            }
        }
    }
    Ok(fields)
}

/// A filter value, ignoring absent and blank ones.
pub(super) fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

pub(super) fn clamp_limit(limit: Option<u32>, (default, max): (u32, u32)) -> u32 {
    limit.unwrap_or(default).clamp(1, max)
}
