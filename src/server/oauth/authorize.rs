//! `/oauth/authorize`: the consent page a signed-in owner sees (the sign-in form otherwise),
//! and the owner's decision, which records a code for the key they chose or tells the
//! client they declined.

use std::net::IpAddr;

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;

use super::request::{self, AuthorizeParams, Request};
use super::session::{check_csrf, csrf_token, signed_in};
use super::{OAuthError, Refusal, pages};
use crate::api::{Access, ExpiryPolicy, Role, validate_name};
use crate::server::client_addr::ClientAddr;
use crate::server::client_metadata::is_document_url;
use crate::server::{AppState, work};
use crate::store::access::oauth::{Grant, Signer};

/// Workspaces the consent page offers at most.
const WORKSPACES_SHOWN: i64 = 500;

/// `GET /oauth/authorize`: the sign-in form, or the consent page for a signed-in owner.
pub async fn authorize(
    State(state): State<AppState>,
    ClientAddr(peer): ClientAddr,
    headers: HeaderMap,
    Query(params): Query<AuthorizeParams>,
) -> Result<Response, Refusal> {
    let request = request::check(&state, &headers, peer, &params).await?;
    let (csrf, set_csrf) = csrf_token(&state, &headers);
    let mut response = match signed_in(&state, &headers).await? {
        Some(signer) => consent_page(&state, &signer, &request, &params, &csrf, peer, None).await?,
        None => pages::sign_in(StatusCode::OK, &request.client.name, &csrf, &params.fields(), None),
    };
    if let Some(cookie) = set_csrf {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// The consent form's fields.
#[derive(Debug, Deserialize)]
pub struct Decision {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    decision: String,
    #[serde(default)]
    workspace: String,
    #[serde(default)]
    key_name: String,
    #[serde(default)]
    expires: String,
    #[serde(default)]
    access: String,
    #[serde(flatten)]
    params: AuthorizeParams,
}

/// `POST /oauth/authorize`: the owner's answer. Approving records a code for the key they
/// chose; denying tells the client so.
pub async fn decide(
    State(state): State<AppState>,
    ClientAddr(peer): ClientAddr,
    headers: HeaderMap,
    form: Result<Form<Decision>, FormRejection>,
) -> Result<Response, Refusal> {
    let Form(form) = form.map_err(|e| Refusal::Page(StatusCode::BAD_REQUEST, e.body_text()))?;
    let request = request::check(&state, &headers, peer, &form.params).await?;
    check_csrf(&state, &headers, &form.csrf)?;
    let Some(signer) = signed_in(&state, &headers).await? else {
        let (csrf, _) = csrf_token(&state, &headers);
        return Ok(pages::sign_in(
            StatusCode::UNAUTHORIZED,
            &request.client.name,
            &csrf,
            &form.params.fields(),
            Some("Your sign-in has ended; sign in again."),
        ));
    };
    let back = async |message: &str| {
        consent_page(&state, &signer, &request, &form.params, &form.csrf, peer, Some(message))
            .await
            .map_err(Refusal::from)
    };
    match form.decision.as_str() {
        "deny" => {
            return Ok(request.answer(&[
                ("error", "access_denied"),
                ("error_description", "the owner declined"),
            ]));
        }
        "approve" => {}
        _ => return back("Choose Approve or Deny.").await,
    }
    let slug = form.workspace.clone();
    let found = work::read(&state, move |store| {
        store.access().workspace_by_slug(&slug).map_err(OAuthError::from)
    })
    .await?;
    let Some(workspace) = found else {
        return back("Choose one of the workspaces listed.").await;
    };
    // A member consents within their role there: an editor or owner to any key, a viewer to a
    // read-only key only; no role, no key.
    let role = match &signer {
        Signer::Administrator => None,
        Signer::Member { id, .. } => {
            let member = id.clone();
            let roles = work::read(&state, move |store| {
                store.access().roles_of(&member).map_err(OAuthError::from)
            })
            .await?;
            let slug = &workspace.workspace.slug;
            match roles.into_iter().find(|r| &r.workspace == slug) {
                Some(r) => Some(r.role),
                None => return back("Choose one of the workspaces listed.").await,
            }
        }
    };
    let key_name = match validate_name(&form.key_name) {
        Ok(name) => name.to_owned(),
        Err(why) => return back(&format!("The key's {why}.")).await,
    };
    let (Some(expires), Some(access)) =
        (ExpiryPolicy::parse(&form.expires), Access::parse(&form.access))
    else {
        return back("Choose an expiry and an access.").await;
    };
    if role == Some(Role::Viewer) && access == Access::ReadWrite {
        return back(
            "As a viewer of this workspace you may approve a read-only key only; choose read \
             only, or ask an owner for the editor role.",
        )
        .await;
    }
    // The workspace's key policy: a form that asks for more (forged, or posted before the
    // policy changed) is refused; the key gets the policy's limits (see `redeem_code`).
    let ws = workspace.id;
    let policy =
        work::read(&state, move |store| store.access().policy(ws).map_err(OAuthError::from))
            .await?;
    let (_, _, scopes) = policy.policy.fill(Some(expires), Some(access), Default::default());
    if let Err(breach) = policy.policy.check(expires, access, &scopes) {
        let allowed = match breach.rule {
            crate::api::PolicyRule::MaxExpiry => {
                let names: Vec<&str> =
                    policy.policy.allowed_expiries().iter().map(|e| e.as_str()).collect();
                format!("an expiry of {}", names.join(" or "))
            }
            _ => "a read-only key".to_owned(),
        };
        return back(&format!(
            "The key policy of {} does not allow this key ({}): choose {allowed}.",
            workspace.workspace.slug, breach.rule
        ))
        .await;
    }
    let client = request.client.clone();
    let grant = Grant {
        client_id: request.client.id.clone(),
        redirect_uri: request.redirect_uri.clone(),
        code_challenge: request.code_challenge.clone(),
        resource: request.resource.clone(),
        workspace_id: workspace.id,
        key_name,
        expires,
        access,
        member: Some(signer.clone()),
    };
    let code = work::write(&state, move |store| -> Result<String, OAuthError> {
        if is_document_url(&client.id) {
            store.access().save_document_client(&client)?;
        }
        Ok(store.access().issue_code(&grant)?)
    })
    .await?;
    Ok(request.answer(&[("code", &code)]))
}

/// The consent page for `request`, offering the first workspaces (a member: theirs) and a key
/// name.
async fn consent_page(
    state: &AppState,
    signer: &Signer,
    request: &Request,
    params: &AuthorizeParams,
    csrf: &str,
    peer: IpAddr,
    error: Option<&str>,
) -> Result<Response, OAuthError> {
    let member = match signer {
        Signer::Administrator => None,
        Signer::Member { id, .. } => Some(id.clone()),
    };
    let (workspaces, expiries, accesses) =
        work::read(state, move |store| consent_choices(store, member).map_err(OAuthError::from))
            .await?;
    Ok(pages::consent(&pages::Consent {
        client_name: &request.client.name,
        client_id: &request.client.id,
        redirect_uri: &request.redirect_uri,
        csrf,
        fields: &params.fields(),
        workspaces: &workspaces,
        key_name: &default_key_name(&request.client.name, peer),
        error,
        allowed: (&expiries, &accesses),
    }))
}

/// The workspaces a consent offers (a member's, or the first few), and the expiries and
/// accesses every one of their key policies allows.
type Choices = (Vec<crate::api::Workspace>, Vec<ExpiryPolicy>, Vec<Access>);

fn consent_choices(
    store: &crate::store::Store,
    member: Option<String>,
) -> crate::store::StoreResult<Choices> {
    let workspaces = match member {
        Some(member) => store.access().member_workspaces(&member),
        None => store.access().first_workspaces(WORKSPACES_SHOWN),
    }?;
    // What every workspace offered allows: the form offers no choice a policy refuses.
    let (mut expiries, mut accesses) = (ExpiryPolicy::ALL.to_vec(), Access::ALL.to_vec());
    for workspace in &workspaces {
        let Some(row) = store.access().workspace_by_slug(&workspace.slug)? else { continue };
        let policy = store.access().policy(row.id)?;
        let (allowed_expiries, allowed_accesses) =
            (policy.policy.allowed_expiries(), policy.policy.allowed_accesses());
        expiries.retain(|e| allowed_expiries.contains(e));
        accesses.retain(|a| allowed_accesses.contains(a));
    }
    Ok((workspaces, expiries, accesses))
}

/// `Claude Code on <host>`: the machine the sign-in came from (this one, for a loopback
/// browser).
fn default_key_name(client: &str, peer: IpAddr) -> String {
    let host = if peer.is_loopback() {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "this machine".to_owned())
    } else {
        peer.to_string()
    };
    let name = format!("{client} on {host}");
    name.chars().take(100).collect()
}
