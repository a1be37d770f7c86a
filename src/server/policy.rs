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

/// Blocked keys a `policy set` answer lists at most.
const BLOCKED_LISTED: u32 = 100;

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
    let response = work::write(&state, move |store| -> ApiResult<SetPolicyResponse> {
        let row = workspace(store, &ws)?;
        // From the rules as stored now, not a replica's copy of up to SHARED_TTL ago.
        let old = store.access().fresh_policy(row.id)?;
        let new = changed(store, row.id, &old.policy, change)?;
        let (stored, changes) = store.access().set_policy(row.id, &new, &caller.author())?;
        let filter = KeyFilter { status: Some(api::KeyStatus::Active), ..KeyFilter::default() };
        let mut blocked = Vec::new();
        if !stored.policy.is_empty() {
            let (mut keys, _) = store.access().list_keys(row.id, &filter, BLOCKED_LISTED, None)?;
            store.access().annotate_blocked(row.id, &mut keys)?;
            blocked = keys.into_iter().filter(|k| k.blocked.is_some()).collect();
        }
        Ok(SetPolicyResponse {
            workspace: row.workspace.slug,
            policy: stored.policy.clone(),
            changes,
            blocked,
        })
    })
    .await?;
    Ok(Json(response))
}
