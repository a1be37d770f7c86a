//! The admin API (`/api/admin/…`): workspaces, MCP keys and the audit trail, for the server's
//! administrator and, within their roles, members (the route table names who may call each
//! route; `admission::Caller` enforces it). Handlers are thin: validate, call the store, shape
//! the response.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use super::admission::Owner;
use super::error::{ApiError, ApiResult};
use super::extract::{JsonBody, Path, Query};
use super::{AppState, work};
use crate::api::{
    self, Access, CreatedKeyResponse, EventsResponse, ExpiryPolicy, KeyResponse, KeyStatus,
    KeysResponse, Template, WorkspaceResponse, WorkspacesResponse,
};
use crate::store::Store;
use crate::store::access::WorkspaceRow;
use crate::store::content::transfer::ImportError;

/// [`work::read`] with the admin API's error type.
async fn read<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(&Store) -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    work::read(state, work).await
}

/// [`work::write`] with the admin API's error type: it waits for the writer's turn holding no
/// thread.
async fn write<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(&Store) -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    work::write(state, work).await
}

pub(super) fn workspace(store: &Store, slug: &str) -> ApiResult<WorkspaceRow> {
    if let Some(row) = store.access().workspace_by_slug(slug)? {
        return Ok(row);
    }
    // Never the list of workspaces: on a server hosting thousands it would be long, and it
    // is not this caller's to read.
    Err(ApiError::not_found("workspace_not_found", format!("no workspace {slug:?} on this server")))
}

/// A name from a request body: present, and valid after trimming (see `api::validate_name`).
fn required_name(raw: Option<&str>) -> ApiResult<&str> {
    let raw = raw.ok_or_else(|| ApiError::unprocessable("invalid_name", "name is required"))?;
    api::validate_name(raw).map_err(|m| ApiError::unprocessable("invalid_name", m))
}

fn key_not_found(error: crate::store::StoreError) -> ApiError {
    match error {
        crate::store::StoreError::NotFound(message) => {
            ApiError::not_found("key_not_found", message)
        }
        other => other.into(),
    }
}

#[derive(Debug, Deserialize)]
pub struct ListWorkspacesQuery {
    limit: Option<String>,
    cursor: Option<String>,
    /// Only slugs that start with this (what completion offers).
    prefix: Option<String>,
}

/// Workspaces per page unless `?limit=` says otherwise, and the most a page holds.
const WORKSPACES_PAGE: (u32, u32) = (100, api::PAGE_MAX);

/// `GET /api/admin/workspaces`: a page of workspaces by slug. A member sees the workspaces they
/// have a role in, the administrator every one.
pub async fn list_workspaces(
    caller: Owner,
    State(state): State<AppState>,
    Query(query): Query<ListWorkspacesQuery>,
) -> ApiResult<Json<WorkspacesResponse>> {
    let limit = page_limit(query.limit.as_deref(), WORKSPACES_PAGE)?;
    let prefix = query.prefix.filter(|p| !p.is_empty());
    // A prefix no slug can start with selects nothing (and never reaches the range below).
    if prefix.as_deref().is_some_and(|p| {
        !p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    }) {
        return Ok(Json(WorkspacesResponse { workspaces: Vec::new(), next_cursor: None }));
    }
    let filter = crate::store::access::WorkspaceFilter {
        member_id: caller.member_id().map(str::to_owned),
        prefix,
    };
    let (workspaces, next_cursor) = read(&state, move |store| {
        store.access().list_workspaces(&filter, limit, query.cursor.as_deref()).map_err(bad_cursor)
    })
    .await?;
    Ok(Json(WorkspacesResponse { workspaces, next_cursor }))
}

/// `GET /api/admin/workspaces/{ws}`: one workspace by slug (a member's only if they have a role
/// in it: the route's rule says so before this runs).
pub async fn get_workspace(
    _: Owner,
    State(state): State<AppState>,
    Path(ws): Path<String>,
) -> ApiResult<Json<api::WorkspaceFoundResponse>> {
    let workspace = read(&state, move |store| Ok(workspace(store, &ws)?.workspace)).await?;
    Ok(Json(api::WorkspaceFoundResponse { workspace }))
}

#[derive(Debug, Deserialize)]
pub struct FindKeysQuery {
    /// A key's id (`key_…`) or displayed prefix (`cst_…`).
    #[serde(rename = "match")]
    reference: Option<String>,
}

/// `GET /api/admin/mcp-keys?match=`: where the key an id or displayed prefix names is, on the
/// whole server (a member: in their workspaces), one index lookup however many workspaces
/// there are. Names are per workspace, so a name is refused here.
pub async fn find_keys(
    caller: Owner,
    State(state): State<AppState>,
    Query(query): Query<FindKeysQuery>,
) -> ApiResult<Json<api::FoundKeysResponse>> {
    let reference = query.reference.as_deref().map(str::trim).unwrap_or_default().to_owned();
    if !(reference.starts_with("key_") || reference.starts_with("cst_")) || reference.len() > 64 {
        return Err(ApiError::bad_request(
            "invalid_match",
            "match must be a key's id (key_…) or displayed prefix (cst_…); a key's name is \
             looked up in its workspace (GET /api/admin/workspaces/{ws}/mcp-keys?match=NAME)",
        ));
    }
    let member = caller.member_id().map(str::to_owned);
    let found = read(&state, move |store| {
        Ok(store.access().find_keys_anywhere(&reference, member.as_deref())?)
    })
    .await?;
    let keys = found.into_iter().map(|(workspace, key)| api::FoundKey { workspace, key }).collect();
    Ok(Json(api::FoundKeysResponse { keys }))
}

#[derive(Debug, Deserialize)]
pub struct CreateWorkspaceBody {
    name: Option<String>,
    slug: Option<String>,
    template: Option<Template>,
}

pub async fn create_workspace(
    _: Owner,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CreateWorkspaceBody>,
) -> ApiResult<(StatusCode, Json<WorkspaceResponse>)> {
    let name = required_name(body.name.as_deref())?.to_owned();
    let slug = match body.slug {
        Some(slug) => api::validate_slug(&slug)
            .map_err(|m| ApiError::unprocessable("invalid_slug", m))?
            .to_owned(),
        None => api::slugify(&name),
    };
    let template = body.template.unwrap_or_default();
    let (workspace, contents) = write(&state, move |store| {
        store.content().create_workspace_from_template(&name, &slug, template).map_err(|error| {
            match error {
                ImportError::Store(error) => error.into(),
                // A shipped template that does not validate: a bug, and the tests say so first.
                ImportError::Invalid(details) => {
                    tracing::error!(%template, ?details, "a workspace template is not valid");
                    ApiError::internal()
                }
            }
        })
    })
    .await?;
    Ok((StatusCode::CREATED, Json(WorkspaceResponse { workspace, template, contents })))
}

#[derive(Debug, Deserialize)]
pub struct ListKeysQuery {
    status: Option<KeyStatus>,
    /// The keys whose id, name or displayed prefix this is (how the CLI finds a KEY).
    #[serde(rename = "match")]
    reference: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
    /// `true`: only keys flagged `shared`.
    shared: Option<bool>,
    /// Only active keys unused for this long (`90d`; never-used ones created that long ago).
    unused_for: Option<String>,
    /// `true`: only keys never used.
    never_used: Option<bool>,
    /// `true`: only keys the caller created.
    mine: Option<bool>,
    /// `true`: only active keys that expire within 7 days.
    expiring: Option<bool>,
}

/// Keys per page unless `?limit=` says otherwise, and the most a page holds.
const KEYS_PAGE: (u32, u32) = (100, api::PAGE_MAX);
/// Events per page unless `?limit=` says otherwise, and the most a page holds.
const EVENTS_PAGE: (u32, u32) = (50, api::PAGE_MAX);

/// `?limit=`: absent is `default`, else a number from 1 to `max`.
fn page_limit(raw: Option<&str>, (default, max): (u32, u32)) -> ApiResult<u32> {
    match raw {
        None | Some("") => Ok(default),
        Some(raw) => raw.parse::<u32>().ok().filter(|n| (1..=max).contains(n)).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_limit",
                format!("limit {raw:?} is not a number from 1 to {max}"),
            )
        }),
    }
}

/// A cursor the store refused is a bad request, not a missing resource.
fn bad_cursor(error: crate::store::StoreError) -> ApiError {
    match error {
        crate::store::StoreError::Invalid(message) => {
            ApiError::bad_request("invalid_cursor", message)
        }
        other => other.into(),
    }
}

pub async fn list_keys(
    caller: Owner,
    State(state): State<AppState>,
    Path(ws): Path<String>,
    Query(query): Query<ListKeysQuery>,
) -> ApiResult<Json<KeysResponse>> {
    let status = query.status;
    let limit = page_limit(query.limit.as_deref(), KEYS_PAGE)?;
    let response = read(&state, move |store| {
        let ws = workspace(store, &ws)?;
        // The flags read the origins: this replica's pending ones first.
        flush_calls(store);
        if let Some(reference) = query.reference.as_deref() {
            let mut keys = store.access().find_keys(ws.id, reference)?;
            store.access().annotate_blocked(ws.id, &mut keys)?;
            let keys = keys.into_iter().filter(|k| status.is_none_or(|s| k.status == s)).collect();
            return Ok(KeysResponse { keys, next_cursor: None });
        }
        let unused_since = match query.unused_for.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(raw) => {
                let period = raw.parse::<crate::period::Period>().map_err(|message| {
                    ApiError::bad_request("invalid_unused_for", format!("unused_for: {message}"))
                })?;
                Some(store.now() - period.duration())
            }
        };
        let never_used = query.never_used == Some(true);
        if unused_since.is_some() || never_used {
            // Selected by last use: this replica's pending uses first, so a key in use now is
            // not taken for an unused one.
            if let Err(error) = store.access().flush_usage() {
                tracing::warn!(%error, "could not write last-used times before a selection");
            }
        }
        let filter = crate::store::access::KeyFilter {
            status,
            shared: query.shared == Some(true),
            unused_since,
            never_used,
            created_by: (query.mine == Some(true)).then(|| caller.member_id().map(str::to_owned)),
            expiring_by: (query.expiring == Some(true)).then(|| {
                store.now() + chrono::Duration::days(crate::store::access::EXPIRY_WARNING_DAYS)
            }),
        };
        let (mut keys, next_cursor) = store
            .access()
            .list_keys(ws.id, &filter, limit, query.cursor.as_deref())
            .map_err(bad_cursor)?;
        store.access().annotate_blocked(ws.id, &mut keys)?;
        Ok(KeysResponse { keys, next_cursor })
    })
    .await?;
    Ok(Json(response))
}

/// The create-key body with every field optional, so each mistake gets its own message.
#[derive(Debug, Deserialize)]
pub struct CreateKeyBody {
    name: Option<String>,
    expires: Option<ExpiryPolicy>,
    access: Option<Access>,
    tools: Option<Vec<String>>,
    journeys: Option<Vec<String>>,
    allow_ip: Option<Vec<String>>,
}

/// The networks `--allow-ip` names, each a CIDR or a single address, as CIDRs.
pub(super) fn allowed_networks(given: &[String]) -> ApiResult<Vec<String>> {
    let invalid = |message: String| ApiError::unprocessable("invalid_allow_ip", message);
    if given.is_empty() {
        return Err(invalid("allow_ip names no address: give at least one CIDR".into()));
    }
    given
        .iter()
        .map(|text| {
            let text = text.trim();
            let net = text
                .parse::<ipnet::IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    invalid(format!(
                        "allow_ip: {text:?} is not an address or a CIDR (e.g. 10.0.0.0/8, \
                         2001:db8::/32, 203.0.113.7)"
                    ))
                })?;
            Ok(net.trunc().to_string())
        })
        .collect()
}

/// The journeys `--journeys` names (slugs or ids) as ids; an unknown one is refused.
pub(super) fn journey_ids(store: &Store, ws: i64, given: &[String]) -> ApiResult<Vec<String>> {
    if given.is_empty() {
        return Err(ApiError::unprocessable(
            "invalid_journeys",
            "journeys names no journey: give at least one slug",
        ));
    }
    let mut ids: Vec<String> = Vec::new();
    for reference in given {
        let reference = reference.trim();
        // Only a journey's slug or id: journey_of would also place a stage or an item.
        let not_journey = ["stg_", "stp_", "itm_", "cmt_"].iter().any(|p| reference.starts_with(p));
        let found = if not_journey { None } else { store.content().journey_of(ws, reference)? };
        let Some(id) = found else {
            return Err(ApiError::unprocessable(
                "invalid_journeys",
                format!(
                    "journeys: no journey {reference:?} in this workspace; {}",
                    journeys_like(store, ws, reference)?
                ),
            ));
        };
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// What to say after an unknown journey `reference`: every journey's slug when the first page
/// holds them all (a handful), else the few closest to it on that page; never more than a page.
fn journeys_like(store: &Store, ws: i64, reference: &str) -> ApiResult<String> {
    let (journeys, more) = store.content().list_journeys(ws, None, false)?;
    let mut slugs: Vec<&str> = journeys.iter().map(|j| j.slug.as_str()).collect();
    if slugs.is_empty() {
        return Ok("it has no journeys yet".to_owned());
    }
    if more.is_some() || slugs.len() > 10 {
        slugs.sort_by_key(|slug| strsim::levenshtein(slug, reference));
        slugs.retain(|slug| strsim::levenshtein(slug, reference) <= 3);
        slugs.truncate(3);
        return Ok(match slugs.as_slice() {
            [] => "give a journey's slug as list_journeys shows it".to_owned(),
            close => format!("did you mean {}?", close.join(", ")),
        });
    }
    slugs.sort_unstable();
    Ok(format!("its journeys: {}", slugs.join(", ")))
}

#[derive(Debug, Deserialize)]
pub struct JourneysQuery {
    cursor: Option<String>,
}

/// The workspace's journeys by id, slug and name, a page at a time, archived ones too (a key
/// or the policy may name one): what `--journeys` takes and what the CLI shows for an id.
pub async fn list_journeys(
    _: Owner,
    State(state): State<AppState>,
    Path(ws): Path<String>,
    Query(query): Query<JourneysQuery>,
) -> ApiResult<Json<api::JourneysResponse>> {
    let (journeys, next_cursor) = read(&state, move |store| {
        let ws = workspace(store, &ws)?;
        Ok(store.content().list_journeys(ws.id, query.cursor.as_deref(), true)?)
    })
    .await?;
    let journeys = journeys
        .into_iter()
        .map(|j| api::JourneyRef { id: j.id, slug: j.slug, name: j.name })
        .collect();
    Ok(Json(api::JourneysResponse { journeys, next_cursor }))
}

pub async fn create_key(
    caller: Owner,
    State(state): State<AppState>,
    Path(ws): Path<String>,
    JsonBody(body): JsonBody<CreateKeyBody>,
) -> ApiResult<(StatusCode, Json<CreatedKeyResponse>)> {
    let name = required_name(body.name.as_deref())?.to_owned();
    let tools =
        body.tools.map(|names| crate::mcp::expand_tool_names(&names)).transpose().map_err(
            |message| ApiError::unprocessable("invalid_tools", format!("tools: {message}")),
        )?;
    let allow_ip = body.allow_ip.as_deref().map(allowed_networks).transpose()?;
    let (key, token) = write(&state, move |store| {
        let ws = workspace(store, &ws)?;
        let journeys =
            body.journeys.as_deref().map(|j| journey_ids(store, ws.id, j)).transpose()?;
        let scopes = api::KeyScopes { tools, journeys, allow_ip };
        // What is left out comes from the workspace policy; what is asked must keep it.
        let policy = store.access().policy(ws.id)?;
        let (expires, access, scopes) = policy.policy.fill(body.expires, body.access, scopes);
        let expires = expires.ok_or_else(|| {
            ApiError::unprocessable(
                "invalid_expires",
                format!("expires is required: one of {}", ExpiryPolicy::names()),
            )
        })?;
        policy
            .policy
            .check(expires, access, &scopes)
            .map_err(|breach| ApiError::unprocessable(breach.rule.code(), breach.message))?;
        // Checked as asked; made as what it is (a key whose tools all read is read-only).
        let access = crate::mcp::access_with_tools(access, scopes.tools.as_deref());
        Ok(store.access().create_key_by(
            ws.id,
            &name,
            expires,
            access,
            &scopes,
            &caller.author(),
        )?)
    })
    .await?;
    let response = CreatedKeyResponse { key, token: token.expose().to_owned(), replaced: None };
    Ok((StatusCode::CREATED, Json(response)))
}

pub async fn get_key(
    _: Owner,
    State(state): State<AppState>,
    Path((ws, id)): Path<(String, String)>,
) -> ApiResult<Json<KeyResponse>> {
    let key = read(&state, move |store| {
        let ws = workspace(store, &ws)?;
        flush_calls(store);
        let mut key = store.access().get_key(ws.id, &id).map_err(key_not_found)?;
        store.access().annotate_blocked(ws.id, std::slice::from_mut(&mut key))?;
        Ok(key)
    })
    .await?;
    Ok(Json(KeyResponse { key }))
}

pub async fn revoke_key(
    caller: Owner,
    State(state): State<AppState>,
    Path((ws, id)): Path<(String, String)>,
) -> ApiResult<Json<KeyResponse>> {
    let key = work::revoke::<_, ApiError>(&state, move |store| {
        let ws = workspace(store, &ws)?;
        caller.may_manage(&store.access().get_key(ws.id, &id).map_err(key_not_found)?)?;
        store.access().revoke_key(ws.id, &id, &caller.author()).map_err(key_not_found)
    })
    .await?;
    Ok(Json(KeyResponse { key }))
}

/// `POST /api/admin/mcp-keys/revoke-token`: revokes the key a found token belongs to, in
/// whichever workspace it is, without knowing its name.
pub async fn revoke_token(
    caller: Owner,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<api::RevokeToken>,
) -> ApiResult<Json<api::RevokedByTokenResponse>> {
    let token = crate::token::PlainToken::parse(&body.token)
        .ok()
        .filter(|t| t.kind() == crate::token::TokenKind::Mcp)
        .ok_or_else(|| {
            ApiError::unprocessable(
                "invalid_token",
                "that is not an MCP key's token (cst_ followed by 38 characters)",
            )
        })?;
    let hash = token.hash();
    let (workspace, key, already_revoked) = work::revoke::<_, ApiError>(&state, move |store| {
        let Some((workspace_id, slug, key)) = store.access().key_by_token(&hash)? else {
            return Err(ApiError::not_found(
                "key_not_found",
                "no MCP key on this server has this token: it is not one of this server's, or \
                 it was mistyped",
            ));
        };
        // Revoking twice is done: the answer says it was already so.
        if key.status == KeyStatus::Revoked {
            return Ok((slug, key, true));
        }
        let key = store.access().revoke_key_because(
            workspace_id,
            &key.id,
            Some("its token was found (keys revoke --token-stdin)"),
            &caller.author(),
        )?;
        Ok((slug, key, false))
    })
    .await?;
    Ok(Json(api::RevokedByTokenResponse { workspace, key, already_revoked }))
}

pub async fn rotate_key(
    caller: Owner,
    State(state): State<AppState>,
    Path((ws, id)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<CreatedKeyResponse>)> {
    let (key, token, replaced) = work::revoke::<_, ApiError>(&state, move |store| {
        let ws = workspace(store, &ws)?;
        let old = store.access().get_key(ws.id, &id).map_err(key_not_found)?;
        caller.may_manage(&old)?;
        // The new key keeps the workspace policy (narrowed to it when the old one broke it).
        store
            .access()
            .policy(ws.id)?
            .policy
            .conform(old.expires, old.access, &old.scopes)
            .map_err(|breach| ApiError::unprocessable(breach.rule.code(), breach.message))?;
        store.access().rotate_key(ws.id, &id, &caller.author()).map_err(key_not_found)
    })
    .await?;
    let response =
        CreatedKeyResponse { key, token: token.expose().to_owned(), replaced: Some(replaced) };
    Ok((StatusCode::CREATED, Json(response)))
}

pub async fn narrow_key(
    caller: Owner,
    State(state): State<AppState>,
    Path((ws, id)): Path<(String, String)>,
    JsonBody(body): JsonBody<CreateKeyBody>,
) -> ApiResult<Json<KeyResponse>> {
    if body.name.is_some() || body.expires.is_some() {
        return Err(ApiError::unprocessable(
            "invalid_narrow",
            "a key's name and expiry stay as they are; narrow takes access, tools, journeys \
             and allow_ip",
        ));
    }
    if body.access.is_none()
        && body.tools.is_none()
        && body.journeys.is_none()
        && body.allow_ip.is_none()
    {
        return Err(ApiError::unprocessable(
            "invalid_narrow",
            "nothing to narrow: give access, tools, journeys or allow_ip",
        ));
    }
    let tools =
        body.tools.map(|names| crate::mcp::expand_tool_names(&names)).transpose().map_err(
            |message| ApiError::unprocessable("invalid_tools", format!("tools: {message}")),
        )?;
    let allow_ip = body.allow_ip.as_deref().map(allowed_networks).transpose()?;
    let key = work::revoke::<_, ApiError>(&state, move |store| {
        let ws = workspace(store, &ws)?;
        let old = store.access().get_key(ws.id, &id).map_err(key_not_found)?;
        caller.may_manage(&old)?;
        let journeys =
            body.journeys.as_deref().map(|j| journey_ids(store, ws.id, j)).transpose()?;
        let scopes = api::KeyScopes {
            tools: tools.or(old.scopes.tools),
            journeys: journeys.or(old.scopes.journeys),
            allow_ip: allow_ip.or(old.scopes.allow_ip),
        };
        // A key whose tools all read is read-only; asking a read-only key for read-write is
        // passed on as asked, to be refused as a widening.
        let access = match body.access.unwrap_or(old.access) {
            api::Access::ReadWrite if old.access == api::Access::ReadOnly => api::Access::ReadWrite,
            asked => crate::mcp::access_with_tools(asked, scopes.tools.as_deref()),
        };
        store.access().narrow_key(ws.id, &id, access, &scopes, &caller.author()).map_err(
            |e| match e {
                crate::store::StoreError::Invalid(message) => {
                    ApiError::unprocessable("would_widen", message)
                }
                other => key_not_found(other),
            },
        )
    })
    .await?;
    Ok(Json(KeyResponse { key }))
}

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    key: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
    /// `true`: the calls keys made (reads included) merged in.
    calls: Option<bool>,
    /// Only what this actor did: a member's name, or `administrator`, `key`, `consent`…
    by: Option<String>,
}

/// Writes this replica's queued call records and origins, so that a read of them (or of the
/// flags they decide) is current; another replica's are written within its flush interval.
fn flush_calls(store: &Store) {
    if let Err(error) = store.access().flush_activity() {
        tracing::warn!(%error, "could not write the record of calls before reading it");
    }
}

pub async fn audit(
    _: Owner,
    State(state): State<AppState>,
    Path(ws): Path<String>,
    Query(query): Query<AuditQuery>,
) -> ApiResult<Json<EventsResponse>> {
    let limit = page_limit(query.limit.as_deref(), EVENTS_PAGE)?;
    let (events, next_cursor) = read(&state, move |store| {
        let ws = workspace(store, &ws)?;
        let filter = crate::store::access::EventFilter {
            key_id: query.key.as_deref(),
            by: query.by.as_deref().map(str::trim).filter(|by| !by.is_empty()),
        };
        let cursor = query.cursor.as_deref();
        // Pending calls may hold a `key.new_origin` event, so every read of the trail flushes.
        flush_calls(store);
        if query.calls == Some(true) {
            store.access().list_events_and_calls(ws.id, filter, limit, cursor).map_err(bad_cursor)
        } else {
            store.access().list_events(ws.id, filter, limit, cursor).map_err(bad_cursor)
        }
    })
    .await?;
    Ok(Json(EventsResponse { events, next_cursor }))
}

#[derive(Debug, Deserialize)]
pub struct UsageQuery {
    /// A period back from now (`7d`) or an RFC 3339 time; 30 days when absent.
    since: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// Pages of usage: hours of one key, or keys of a workspace.
const USAGE_PAGE: (u32, u32) = (48, api::PAGE_MAX);

fn usage_since(store: &Store, raw: Option<&str>) -> ApiResult<chrono::DateTime<chrono::Utc>> {
    let Some(raw) = raw.filter(|s| !s.is_empty()) else {
        return Ok(store.now() - chrono::Duration::days(30));
    };
    // A period counts back from this server's clock, not the caller's.
    if let Ok(period) = raw.parse::<crate::period::Period>() {
        return Ok(store.now() - period.duration());
    }
    chrono::DateTime::parse_from_rfc3339(raw).map(|at| at.with_timezone(&chrono::Utc)).map_err(
        |_| {
            ApiError::bad_request(
                "invalid_since",
                format!("since {raw:?} is neither a period (24h, 7d) nor an RFC 3339 time"),
            )
        },
    )
}

/// `GET …/usage`: each key's calls since `since`, busiest first.
pub async fn workspace_usage(
    _: Owner,
    State(state): State<AppState>,
    Path(ws): Path<String>,
    Query(query): Query<UsageQuery>,
) -> ApiResult<Json<api::WorkspaceUsageResponse>> {
    let limit = page_limit(query.limit.as_deref(), USAGE_PAGE)?;
    let usage = read(&state, move |store| {
        let ws = workspace(store, &ws)?;
        let since = usage_since(store, query.since.as_deref())?;
        flush_calls(store);
        store
            .access()
            .workspace_usage(ws.id, since, limit, query.cursor.as_deref())
            .map_err(bad_cursor)
    })
    .await?;
    Ok(Json(usage))
}

/// `GET …/mcp-keys/{id}/usage`: one key's calls since `since` (totals, hours, origins).
pub async fn key_usage(
    _: Owner,
    State(state): State<AppState>,
    Path((ws, id)): Path<(String, String)>,
    Query(query): Query<UsageQuery>,
) -> ApiResult<Json<api::KeyUsageResponse>> {
    let limit = page_limit(query.limit.as_deref(), USAGE_PAGE)?;
    let usage = read(&state, move |store| {
        let ws = workspace(store, &ws)?;
        let key = store.access().get_key(ws.id, &id).map_err(key_not_found)?;
        let since = usage_since(store, query.since.as_deref())?;
        flush_calls(store);
        store
            .access()
            .key_usage(ws.id, &key.id, since, limit, query.cursor.as_deref())
            .map_err(bad_cursor)
    })
    .await?;
    Ok(Json(usage))
}
