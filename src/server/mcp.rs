//! `POST /api/mcp`: the MCP endpoint's HTTP side. Admission is the [`McpCaller`] extractor, run
//! before the body is read; then the body limit, JSON parsing, and the answer from
//! [`crate::mcp::Session`], turned into a status: 200 with JSON, 400 for what is not JSON-RPC
//! (or, in 2026-07-28, breaks that revision's rules), 404 for a method 2026-07-28 does not
//! know, 202 for notifications only. Stateless: no session id is issued, GET and DELETE are 405.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::admission::{McpCaller, McpKey};
use super::error::{ApiError, json_response};
use super::limits::OverRate;
use super::{AppState, MAX_BODY_BYTES, work};
use crate::mcp::protocol::{Body as RpcBody, ErrorCode};
use crate::mcp::{Answer, Session};
use crate::store::access::KeyUsage;

pub async fn handle(
    State(state): State<AppState>,
    caller: McpCaller,
    request: Request,
) -> Response {
    // The request taken whole: a `HeaderMap` extractor would copy every header.
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let McpCaller { key, version, mirror } = caller;
    // The key's share, taken before the body is read: one key cannot have more bodies in
    // memory, or requests running, than its share. The rest wait here, holding no thread.
    let Some(slot) = state.shares.enter(&key.identity.key_id).await else {
        metrics::counter!("custory_rate_limited_total", "reason" => "key_concurrency").increment(1);
        return ApiError::mcp(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::InternalError,
            format!(
                "this MCP key already has {} requests running and they did not finish in time; \
                 send fewer at once, or give another client a key of its own",
                state.shares.per_key()
            ),
        )
        .retry_after(Duration::from_secs(1))
        .into_response();
    };
    // A refusal before this point is sent before the body is read; server/connection.rs then
    // marks the response `Connection: close`.
    let bytes = match read_body(headers, body, state.config.body_timeout).await {
        Ok(bytes) => bytes,
        Err(refusal) => return refusal.into_response(),
    };
    let body = match RpcBody::parse(&bytes) {
        Ok(body) => body,
        Err(error) => {
            return ApiError::mcp(
                StatusCode::BAD_REQUEST,
                ErrorCode::ParseError,
                format!("Parse error: the body is not valid JSON ({error})"),
            )
            .into_response();
        }
    };
    drop(bytes);
    let (messages, writes) = Session::cost(&body);
    if let Err(over) = state.rates.take(&key.identity.key_id, messages, writes) {
        return over_rate(over).into_response();
    }

    // Tool calls (which wait on the database) and batches (which may answer megabytes) run on
    // the blocking pool, so the async workers stay free for everything else (authentication,
    // a single tools/list, /healthz); a body that writes first waits its turn at the writer
    // without a thread (`work.rs`). The rest is answered in place.
    let (answer, client) = if Session::runs_blocking(&body) {
        let (shared, identity, token, ip) =
            (state.clone(), Arc::clone(&key.identity), key.token, key.ip);
        let work = move || {
            let mut session = Session::new(&shared.store, &identity, token, version, mirror, ip);
            let answer = session.answer(body);
            // The share is given back when the work ends, not when its answer is sent.
            drop(slot);
            (answer, session.client())
        };
        let deadline = state.config.call_deadline;
        let run = async {
            if writes > 0 {
                work::blocking_write(&state.writes, deadline, work).await
            } else {
                work::blocking(work).await
            }
        };
        match tokio::time::timeout(deadline, run).await {
            Ok(Ok(done)) => done,
            Ok(Err(work::Stopped::Panicked)) => {
                let internal = ApiError::mcp(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::InternalError,
                    "Internal error",
                );
                return internal.into_response();
            }
            Ok(Err(work::Stopped::Busy(_))) | Err(_) => {
                return ApiError::mcp(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::InternalError,
                    format!(
                        "the request took longer than {} s and its answer was given up; ask for \
                         less at once (a smaller batch, a narrower query)",
                        deadline.as_secs()
                    ),
                )
                .into_response();
            }
        }
    } else {
        let mut session =
            Session::new(&state.store, &key.identity, key.token, version, mirror, key.ip);
        let answer = session.answer(body);
        (answer, session.client())
    };

    // The client named at `initialize`, else the one last seen with the key, else the stored
    // one, else the User-Agent (cut short: it is free text from the network).
    let otherwise = || {
        key.identity.stored_client.clone().or_else(|| {
            headers
                .get(header::USER_AGENT)
                .and_then(|ua| ua.to_str().ok())
                .map(|ua| crate::api::displayable(ua).chars().take(USER_AGENT_CHARS).collect())
        })
    };
    let at = state.store.now();
    let usage = KeyUsage { at, client, ip: key.ip };
    let client = state.store.access().note_usage(&key.identity.key_id, usage, otherwise);
    state.store.access().note_origin(&key.identity, key.ip, client.as_deref(), at);

    match answer {
        Answer::Reply(body) => json_response(StatusCode::OK, body.get().to_owned()),
        Answer::Invalid(body) => json_response(StatusCode::BAD_REQUEST, body.get().to_owned()),
        Answer::NotFound(body) => json_response(StatusCode::NOT_FOUND, body.get().to_owned()),
        Answer::Accepted => StatusCode::ACCEPTED.into_response(),
    }
}

/// The longest User-Agent kept as a key's last client.
const USER_AGENT_CHARS: usize = 100;

/// 429 for a key past one of its rates.
fn over_rate(over: OverRate) -> ApiError {
    let (what, wait) = match over {
        OverRate::Requests(wait) => ("requests", wait),
        OverRate::Writes(wait) => ("write tool calls", wait),
    };
    let (flag, reason) = match over {
        OverRate::Requests(_) => ("--key-requests-per-second", "key_requests"),
        OverRate::Writes(_) => ("--key-writes-per-second", "key_writes"),
    };
    metrics::counter!("custory_rate_limited_total", "reason" => reason).increment(1);
    ApiError::mcp(
        StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::InternalError,
        format!(
            "this MCP key is sending {what} faster than the server allows each key; slow down \
             and retry in {} s (the limit is `custory-mcp serve {flag}`)",
            super::error::retry_seconds(wait)
        ),
    )
    .retry_after(wait)
}

/// GET (an SSE stream) and DELETE (a session's end) are not offered: the endpoint is stateless.
/// The key is checked first, so a bad token is a 401 with its reason on every method.
pub async fn method_not_allowed(_: McpKey, method: Method) -> Response {
    let mut response = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not supported: this MCP endpoint is stateless and takes POST only"),
    )
    .into_response();
    response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
    response
}

async fn read_body(headers: &HeaderMap, body: Body, within: Duration) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::mcp(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::InvalidRequest,
            format!("Payload Too Large: the body exceeds {MAX_BODY_BYTES} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let read = tokio::time::timeout(within, axum::body::to_bytes(body, MAX_BODY_BYTES));
    let Ok(read) = read.await else {
        return Err(ApiError::mcp(
            StatusCode::REQUEST_TIMEOUT,
            ErrorCode::ParseError,
            format!("Request Timeout: the body did not arrive within {} s", within.as_secs()),
        ));
    };
    read.map_err(|error| {
        // `to_bytes` fails for the length limit or for a broken connection.
        if std::error::Error::source(&error)
            .is_some_and(|e| e.is::<http_body_util::LengthLimitError>())
        {
            too_large()
        } else {
            ApiError::mcp(
                StatusCode::BAD_REQUEST,
                ErrorCode::ParseError,
                "Parse error: the request body could not be read completely",
            )
        }
    })
}
