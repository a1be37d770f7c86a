//! The admin API's members (issue 33): who am I, a workspace's members, invitations and their
//! redemption, role changes and removals. Who may call each is in the route table.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use super::admin::workspace;
use super::admission::{Caller, Who, failed_auth_admin};
use super::client_addr::ClientAddr;
use super::error::{ApiError, ApiResult};
use super::extract::{JsonBody, Path};
use super::{AppState, work};
use crate::api::{self, AuthorKind, Role};
use crate::period::Period;
use crate::store::access::InvitationError;
use crate::token::{PlainToken, TokenKind};

/// How long an invitation lasts unless `expires` says otherwise, and at most.
const INVITATION_DEFAULT: Period = Period::days(7);
const INVITATION_MAX: Period = Period::days(30);

/// `GET /api/admin/whoami`: the caller, and their roles.
pub async fn whoami(
    caller: Caller,
    State(state): State<AppState>,
) -> ApiResult<Json<api::WhoAmIResponse>> {
    let answer = match caller.who {
        Who::Administrator => api::WhoAmIResponse {
            kind: AuthorKind::Administrator,
            member_id: None,
            name: None,
            roles: Vec::new(),
        },
        Who::Member { id, name } => {
            let member = id.clone();
            let roles = work::read::<_, ApiError>(&state, move |store| {
                Ok(store.access().roles_of(&member)?)
            })
            .await?;
            api::WhoAmIResponse {
                kind: AuthorKind::Member,
                member_id: Some(id),
                name: Some(name),
                roles,
            }
        }
    };
    Ok(Json(answer))
}

/// `GET …/{ws}/members`.
pub async fn list(
    _: Caller,
    State(state): State<AppState>,
    Path(ws): Path<String>,
) -> ApiResult<Json<api::MembersResponse>> {
    let members = work::read::<_, ApiError>(&state, move |store| {
        let ws = workspace(store, &ws)?;
        Ok(store.access().list_members(ws.id)?)
    })
    .await?;
    Ok(Json(api::MembersResponse { members }))
}

#[derive(Debug, Deserialize)]
pub struct InviteBody {
    name: Option<String>,
    role: Option<Role>,
    expires: Option<String>,
    email: Option<String>,
}

/// `POST …/{ws}/invitations`: a one-time code, shown in this answer only.
pub async fn invite(
    caller: Caller,
    State(state): State<AppState>,
    Path(ws): Path<String>,
    JsonBody(body): JsonBody<InviteBody>,
) -> ApiResult<(StatusCode, Json<api::CreatedInvitationResponse>)> {
    let name = body.name.as_deref().ok_or_else(|| {
        ApiError::unprocessable("invalid_name", "name is required: who the invitation is for")
    })?;
    let name = api::validate_name(name)
        .map_err(|m| ApiError::unprocessable("invalid_name", m))?
        .to_owned();
    let role = body.role.ok_or_else(|| {
        ApiError::unprocessable(
            "invalid_role",
            format!("role is required: one of {}", Role::names()),
        )
    })?;
    let period = match body.expires.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => INVITATION_DEFAULT,
        Some(raw) => raw
            .parse::<Period>()
            .map_err(|m| ApiError::unprocessable("invalid_expires", format!("expires: {m}")))?,
    };
    if period > INVITATION_MAX {
        return Err(ApiError::unprocessable(
            "invalid_expires",
            "an invitation lasts at most 30d; invite again later if it runs out",
        ));
    }
    let email = match body.email.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
        None => None,
        Some(raw) => Some(
            api::validate_email(raw)
                .map_err(|m| ApiError::unprocessable("invalid_email", m))?
                .to_owned(),
        ),
    };
    let by = caller.author();
    let (invitation, code) = work::write::<_, ApiError>(&state, move |store| {
        let ws = workspace(store, &ws)?;
        let expires_at = store.now() + period.duration();
        Ok(store.access().create_invitation(
            ws.id,
            &ws.workspace.slug,
            &name,
            email.as_deref(),
            role,
            expires_at,
            &by,
        )?)
    })
    .await?;
    let response = api::CreatedInvitationResponse { invitation, code: code.expose().to_owned() };
    Ok((StatusCode::CREATED, Json(response)))
}

/// `GET …/{ws}/invitations`: the ones still waiting to be redeemed (never their codes).
pub async fn invitations(
    _: Caller,
    State(state): State<AppState>,
    Path(ws): Path<String>,
) -> ApiResult<Json<api::InvitationsResponse>> {
    let invitations = work::read::<_, ApiError>(&state, move |store| {
        let ws = workspace(store, &ws)?;
        Ok(store.access().list_invitations(ws.id)?)
    })
    .await?;
    Ok(Json(api::InvitationsResponse { invitations }))
}

/// `POST …/{ws}/invitations/{prefix}/withdraw`: its code is refused from now on. Withdrawing
/// one already withdrawn answers as the first time did, saying so.
pub async fn withdraw(
    caller: Caller,
    State(state): State<AppState>,
    Path((ws, prefix)): Path<(String, String)>,
) -> ApiResult<Json<api::WithdrawnInvitationResponse>> {
    let by = caller.author();
    let (invitation, already_withdrawn) = work::write::<_, ApiError>(&state, move |store| {
        let ws = workspace(store, &ws)?;
        Ok(store.access().withdraw_invitation(ws.id, &prefix, &by)?)
    })
    .await?;
    Ok(Json(api::WithdrawnInvitationResponse { invitation, already_withdrawn }))
}

#[derive(Debug, Deserialize)]
pub struct RoleBody {
    role: Option<Role>,
}

fn member_not_found(error: crate::store::StoreError) -> ApiError {
    match error {
        crate::store::StoreError::NotFound(message) => {
            ApiError::not_found("member_not_found", message)
        }
        crate::store::StoreError::Conflict(message) => {
            ApiError::new(StatusCode::CONFLICT, "last_owner", message)
        }
        other => other.into(),
    }
}

/// `POST …/{ws}/members/{name}/role`.
pub async fn change_role(
    caller: Caller,
    State(state): State<AppState>,
    Path((ws, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<RoleBody>,
) -> ApiResult<Json<api::MemberResponse>> {
    let role = body.role.ok_or_else(|| {
        ApiError::unprocessable(
            "invalid_role",
            format!("role is required: one of {}", Role::names()),
        )
    })?;
    let by = caller.author();
    let member = work::write::<_, ApiError>(&state, move |store| {
        let ws = workspace(store, &ws)?;
        store.access().change_role(ws.id, &name, role, &by).map_err(member_not_found)
    })
    .await?;
    Ok(Json(api::MemberResponse { member }))
}

#[derive(Debug, Deserialize)]
pub struct RemoveBody {
    revoke_keys: Option<bool>,
}

/// `POST …/{ws}/members/{name}/remove`: `revoke_keys` is required, so nobody decides by
/// default what happens to the keys the member made.
pub async fn remove(
    caller: Caller,
    State(state): State<AppState>,
    Path((ws, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<RemoveBody>,
) -> ApiResult<Json<api::RemovedMemberResponse>> {
    let revoke_keys = body.revoke_keys.ok_or_else(|| {
        ApiError::unprocessable(
            "invalid_revoke_keys",
            "revoke_keys is required: true revokes the active keys they created here, false \
             keeps them",
        )
    })?;
    let by = caller.author();
    let removal = work::revoke::<_, ApiError>(&state, move |store| {
        let ws = workspace(store, &ws)?;
        store.access().remove_member(ws.id, &name, revoke_keys, &by).map_err(member_not_found)
    })
    .await?;
    Ok(Json(api::RemovedMemberResponse {
        member: removal.member,
        revoked_keys: removal.revoked_keys,
        credential_revoked: removal.credential_revoked,
    }))
}

/// A code that is no invitation: counted as a failed authentication of the address (429 past
/// its limit), else said plainly (404).
fn not_an_invitation(state: &AppState, ip: Option<std::net::IpAddr>, message: &str) -> ApiError {
    let counted = failed_auth_admin(state, ip, message);
    if counted.status == StatusCode::TOO_MANY_REQUESTS {
        return counted;
    }
    ApiError::not_found("invitation_not_found", message)
}

/// `POST /api/admin/invitations/redeem` (no credential: the code is one): the member's own
/// credential, shown in this answer only. A code that is not one counts as a failed
/// authentication of the caller's address.
pub async fn redeem(
    State(state): State<AppState>,
    address: Option<axum::Extension<ClientAddr>>,
    JsonBody(body): JsonBody<api::RedeemInvitation>,
) -> ApiResult<(StatusCode, Json<api::RedeemedInvitationResponse>)> {
    let ip = address.map(|axum::Extension(ClientAddr(ip))| ip);
    let code = PlainToken::parse(&body.code)
        .ok()
        .filter(|code| code.kind() == TokenKind::Invitation)
        .ok_or_else(|| {
            not_an_invitation(
                &state,
                ip,
                "that is not an invitation code (csi_ followed by 38 characters); copy it again",
            )
        })?;
    // A guess is refused on a reader: only a code that was issued waits for the writer.
    let known = {
        let code = code.clone();
        work::read::<_, ApiError>(&state, move |store| {
            Ok(store.access().invitation_known(&code)?)
        })
        .await?
    };
    if !known {
        return Err(not_an_invitation(&state, ip, &InvitationError::Unknown.to_string()));
    }
    let redeemed = work::write::<_, ApiError>(&state, move |store| {
        Ok(store.access().redeem_invitation(&code))
    })
    .await?;
    let (member, workspace, credential) = redeemed.map_err(|error| match error {
        InvitationError::Unknown => not_an_invitation(&state, ip, &error.to_string()),
        InvitationError::Expired(_) => {
            ApiError::new(StatusCode::GONE, "invitation_expired", error.to_string())
        }
        InvitationError::Used => {
            ApiError::new(StatusCode::CONFLICT, "invitation_used", error.to_string())
        }
        InvitationError::Withdrawn => {
            ApiError::new(StatusCode::GONE, "invitation_withdrawn", error.to_string())
        }
        InvitationError::Store(error) => error.into(),
    })?;
    let response = api::RedeemedInvitationResponse {
        member,
        workspace,
        credential: credential.expose().to_owned(),
    };
    Ok((StatusCode::CREATED, Json(response)))
}
