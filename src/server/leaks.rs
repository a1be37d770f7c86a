//! `POST /api/tokens/revoke`: whoever holds a leaked token may kill it, with no other
//! credential, as secret-scanning services expect: an MCP key (`cst_`) is revoked, a member's
//! credential (`csm_`) refused from then on, a waiting invitation (`csi_`) withdrawn. The answer is the same whether or not a
//! token was known, so the endpoint tells a stranger nothing; every report counts alike
//! against the reporting address's own limit (60 a minute, each of up to 100 tokens).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;

use super::client_addr::ClientAddr;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, retry_seconds};
use crate::token::{PlainToken, TokenKind};

/// Tokens one report may carry.
const TOKENS_MAX: usize = 100;

/// Takes `{"token": "cst_…"}`, or a list of such objects (the shape secret-scanning services
/// send); revokes the active keys among them.
pub async fn report(
    State(state): State<AppState>,
    ClientAddr(peer): ClientAddr,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    // Its own limit, not the failed-authentication one: a secret scanner reporting many
    // leaks from one address is no attacker. Every report counts alike, known or not.
    if let Err(not_until) = state.reports.check_key(&super::limiter::address_group(peer)) {
        use governor::clock::Clock as _;
        let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_reports",
            format!("too many reports from this address; retry in {} s", retry_seconds(wait)),
        )
        .retry_after(wait));
    }
    let shape = || {
        ApiError::bad_request(
            "invalid_body",
            format!(
                "send {{\"token\": \"cst_…\"}} (or csm_…, csi_…) or a list of up to {TOKENS_MAX} such objects, as JSON"
            ),
        )
    };
    let body: Value = serde_json::from_slice(&body).map_err(|_| shape())?;
    let reported: Vec<&str> = match &body {
        Value::Object(_) => vec![body["token"].as_str().ok_or_else(shape)?],
        Value::Array(items) if items.len() <= TOKENS_MAX => items
            .iter()
            .map(|item| item["token"].as_str())
            .collect::<Option<_>>()
            .ok_or_else(shape)?,
        _ => return Err(shape()),
    };
    let tokens: Vec<_> = reported
        .iter()
        .filter_map(|raw| PlainToken::parse(raw).ok())
        .map(|token| (token.kind(), token.hash()))
        .collect();
    let count = reported.len();
    let store = Arc::clone(&state.store);
    let revoke = move || {
        let why = "its token was reported as leaked (POST /api/tokens/revoke)";
        let by = crate::api::Author::of(crate::api::AuthorKind::LeakReport);
        let kill = |kind: TokenKind, hash: &crate::token::TokenHash| match kind {
            TokenKind::Mcp => {
                let found = store.access().key_by_token(hash)?;
                if let Some((workspace_id, _, key)) = found
                    && key.status == crate::api::KeyStatus::Active
                {
                    match store.access().revoke_key_because(workspace_id, &key.id, Some(why), &by) {
                        // Revoked meanwhile by someone else: as wanted.
                        Ok(_) | Err(crate::store::StoreError::Conflict(_)) => {}
                        Err(error) => return Err(error),
                    }
                }
                Ok(())
            }
            TokenKind::Member => store.access().revoke_member_credential(hash, why, &by).map(drop),
            TokenKind::Invitation => {
                store.access().withdraw_invitation_by_code(hash, why, &by).map(drop)
            }
            // The server's own credential: its administrator replaces it with
            // `serve --reset-owner-credential`, which no stranger's report should force.
            TokenKind::Owner => Ok(()),
        };
        // One token that cannot be handled now does not stop the others, and the answer stays
        // the same (a failure only for known tokens would tell a stranger which were real).
        for (kind, hash) in tokens {
            if let Err(error) = kill(kind, &hash) {
                tracing::error!(%error, "could not act on a token reported as leaked");
            }
        }
    };
    super::work::blocking(revoke).await?;
    Ok((StatusCode::OK, Json(json!({"status": "received", "tokens": count}))))
}
