//! The workspace's key policy (issue 34): `GET …/policy` (every member: editors make keys under
//! it) and `POST …/policy` (owners), and what a change blocks (the
//! check of each MCP key is `admission::check_policy`).

use axum::Json;
use axum::extract::State;

use super::admin::{allowed_networks, journey_ids, workspace};
use super::admission::Owner;
use super::error::{ApiError, ApiResult};
use super::extract::{JsonBody, Path};
use super::{AppState, work};
use crate::api::{self, Policy, PolicyResponse, PolicyRule, SetPolicy, SetPolicyResponse};
use crate::store::Store;
use crate::store::access::KeyFilter;

/// Blocked keys a `policy set` answer lists at most (all are counted).
const BLOCKED_LISTED: usize = 100;
/// Active keys read at a time while counting those a new policy blocks.
const KEYS_PER_PAGE: u32 = 500;

pub async fn show(
    _: Owner,
    State(state): State<AppState>,
    Path(ws): Path<String>,
) -> ApiResult<Json<PolicyResponse>> {
    let response = work::read(&state, move |store| -> ApiResult<PolicyResponse> {
        let row = workspace(store, &ws)?;
        let stored = store.access().policy(row.id)?;
        Ok(PolicyResponse {
            workspace: row.workspace.slug,
            policy: stored.policy.clone(),
            updated_at: stored.updated_at,
            updated_by: stored.updated_by.clone(),
        })
    })
    .await?;
    Ok(Json(response))
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::unprocessable("invalid_policy", message)
}

/// The policy `change` makes of `old`: the rules given replace theirs, the rules in `clear` go;
/// tools, journeys and networks are checked and written as keys' scopes are.
fn changed(store: &Store, ws: i64, old: &Policy, change: SetPolicy) -> ApiResult<Policy> {
    let mut new = old.clone();
    for rule in &change.clear {
        let given = match rule {
            PolicyRule::MaxExpiry => change.max_expiry.is_some(),
            PolicyRule::DefaultExpiry => change.default_expiry.is_some(),
            PolicyRule::Access => change.access.is_some(),
            PolicyRule::Tools => change.tools.is_some(),
            PolicyRule::Journeys => change.journeys.is_some(),
            PolicyRule::Addresses => change.allow_ip.is_some(),
            PolicyRule::RevokeUnused => change.revoke_unused_after.is_some(),
        };
        if given {
            return Err(invalid(format!("{rule} is both set and cleared: choose one")));
        }
        new.clear(*rule);
    }
    if let Some(expiry) = change.max_expiry {
        new.max_expiry = Some(expiry);
    }
    if let Some(expiry) = change.default_expiry {
        new.default_expiry = Some(expiry);
    }
    if let Some(access) = change.access {
        new.access = Some(access);
    }
    if let Some(tools) = change.tools {
        new.tools = Some(crate::mcp::expand_tool_names(&tools).map_err(|message| {
            ApiError::unprocessable("invalid_tools", format!("tools: {message}"))
        })?);
    }
    if let Some(journeys) = change.journeys {
        new.journeys = Some(journey_ids(store, ws, &journeys)?);
    }
    if let Some(networks) = change.allow_ip {
        new.allow_ip = Some(allowed_networks(&networks)?);
    }
    if let Some(period) = change.revoke_unused_after {
        new.revoke_unused_after = Some(period);
    }
    if let Some(default) = new.default_expiry
        && !new.allowed_expiries().contains(&default)
    {
        let max = new.max_expiry.map_or("none", api::ExpiryPolicy::as_str);
        return Err(invalid(format!(
            "the default expiry ({default}) is longer than the longest allowed ({max}): set a \
             shorter --default-expiry, or a longer --max-expiry"
        )));
    }
    Ok(new)
}

/// `POST …/policy`: sets and clears rules; answers what changed and which active keys the
/// policy now blocks (they are refused until rotated).
pub async fn set(
    caller: Owner,
    State(state): State<AppState>,
    Path(ws): Path<String>,
    JsonBody(change): JsonBody<SetPolicy>,
) -> ApiResult<Json<SetPolicyResponse>> {
    let (id, mut response) = work::write(&state, move |store| {
        let row = workspace(store, &ws)?;
        // From the rules as stored now, not a replica's copy of up to SHARED_TTL ago.
        let old = store.access().fresh_policy(row.id)?;
        let new = changed(store, row.id, &old.policy, change)?;
        let (stored, changes) = store.access().set_policy(row.id, &new, &caller.author())?;
        let response = SetPolicyResponse {
            workspace: row.workspace.slug,
            policy: stored.policy.clone(),
            changes,
            blocked: Vec::new(),
            blocked_total: 0,
        };
        Ok::<_, ApiError>((row.id, response))
    })
    .await?;
    if !response.policy.is_empty() {
        // Every active key is checked, a page at a time, after the write (not holding the
        // writer): the first ones blocked are listed, all are counted.
        let (blocked, total) = work::read(&state, move |store| blocked_keys(store, id)).await?;
        response.blocked = blocked;
        response.blocked_total = total;
    }
    Ok(Json(response))
}

/// The first [`BLOCKED_LISTED`] active keys of the workspace the policy blocks, and how many
/// it blocks in all.
fn blocked_keys(store: &Store, ws: i64) -> ApiResult<(Vec<api::Key>, usize)> {
    let filter = KeyFilter { status: Some(api::KeyStatus::Active), ..KeyFilter::default() };
    let (mut listed, mut total, mut cursor) = (Vec::new(), 0, None);
    loop {
        let (mut keys, next) =
            store.access().list_keys(ws, &filter, KEYS_PER_PAGE, cursor.as_deref())?;
        store.access().annotate_blocked(ws, &mut keys)?;
        for key in keys.into_iter().filter(|key| key.blocked.is_some()) {
            total += 1;
            if listed.len() < BLOCKED_LISTED {
                listed.push(key);
            }
        }
        match next {
            Some(next) => cursor = Some(next),
            None => return Ok((listed, total)),
        }
    }
}
