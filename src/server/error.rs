//! The one error type of the HTTP surface, for both APIs and for admission to them: a status,
//! a sentence, and the body shape of the API it belongs to — the admin API's
//! `{"error":{"code":"…","message":"…"}}`, or a JSON-RPC error without id at the MCP endpoint.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::api::{ErrorBody, ErrorResponse};
use crate::mcp::protocol::{ErrorCode, Id, RpcError, failure};
use crate::store::StoreError;
use crate::store::db::ErrorKind;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// The admin API's error code (`key_not_found`, …).
    pub code: &'static str,
    pub message: String,
    /// Sent as `Retry-After` (429).
    pub retry_after: Option<std::time::Duration>,
    /// Sent as `WWW-Authenticate` (401 at the MCP endpoint).
    pub challenge: Option<String>,
    /// `Some` at the MCP endpoint: the body is a JSON-RPC error with this code.
    pub rpc: Option<ErrorCode>,
    /// That JSON-RPC error's `data`, for the kinds that carry one.
    pub rpc_data: Option<Box<serde_json::Value>>,
    /// Each problem with its place (the admin API's `details`).
    pub details: Vec<crate::api::ErrorDetail>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
            challenge: None,
            rpc: None,
            rpc_data: None,
            details: Vec::new(),
        }
    }

    pub fn details(mut self, details: Vec<crate::api::ErrorDetail>) -> Self {
        self.details = details;
        self
    }

    /// An error of the MCP endpoint: `status`, with a JSON-RPC error body.
    pub fn mcp(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self { rpc: Some(code), ..Self::new(status, "mcp_error", message) }
    }

    /// An error of the MCP endpoint from a JSON-RPC error, `data` included.
    pub fn rpc(status: StatusCode, error: RpcError) -> Self {
        Self { rpc_data: error.data.map(Box::new), ..Self::mcp(status, error.code, error.message) }
    }

    pub fn retry_after(mut self, wait: std::time::Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    pub fn challenge(mut self, challenge: String) -> Self {
        self.challenge = Some(challenge);
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the server hit an internal error; see its log for details",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(message) => Self::not_found("not_found", message),
            StoreError::Conflict(message) => Self::new(StatusCode::CONFLICT, "conflict", message),
            StoreError::Invalid(message) => Self::unprocessable("invalid", message),
            StoreError::Quota(message) => {
                Self::new(StatusCode::FORBIDDEN, "quota_exceeded", message)
            }
            StoreError::TimedOut(message) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "query_timed_out", message)
            }
            StoreError::Db(error) => {
                tracing::error!(%error, "database error");
                match error.kind() {
                    ErrorKind::StorageFull => Self::new(
                        StatusCode::INSUFFICIENT_STORAGE,
                        "storage_full",
                        "the server's disk is full; nothing was changed. Free some space and retry",
                    ),
                    ErrorKind::ReadOnly => Self::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "storage_read_only",
                        "the server's database is read-only; nothing was changed",
                    ),
                    ErrorKind::Unavailable => Self::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "storage_unavailable",
                        "the server cannot reach its database; nothing was changed. Retry shortly",
                    ),
                    // Turned into `StoreError::TimedOut` before it gets here.
                    ErrorKind::TimedOut | ErrorKind::Other => Self::internal(),
                }
            }
        }
    }
}

/// Whole seconds to wait, rounded up, at least 1.
pub fn retry_seconds(wait: std::time::Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // Refusals at -vv (their messages hold no secrets: none ever quotes a token).
        tracing::debug!(status = self.status.as_u16(), code = self.code, message = %self.message, "refused");
        let mut response = match self.rpc {
            Some(code) => {
                let error = RpcError {
                    data: self.rpc_data.map(|d| *d),
                    ..RpcError::new(code, self.message)
                };
                let body = failure(&Id::NULL, &error);
                let mut response = json_response(self.status, body.get().to_owned());
                if let Some(reason) = refusal_reason(self.status, &error.message) {
                    response.extensions_mut().insert(reason);
                }
                response
            }
            None => {
                let body = ErrorResponse {
                    error: ErrorBody {
                        code: self.code.to_owned(),
                        message: self.message,
                        details: self.details,
                    },
                };
                (self.status, Json(body)).into_response()
            }
        };
        let headers = response.headers_mut();
        if let Some(wait) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_seconds(wait)));
        }
        if let Some(value) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// The status line of a refused MCP request (401, 403) with the reason in it: `401
/// Unauthorized - this MCP key was revoked: create a new one (custory-mcp keys create)`. Many
/// clients show a failed connection as the status line alone (httpx's `Client error '401 …'`,
/// which langchain and smolagents print; fetch's `statusText`), never the body or
/// `WWW-Authenticate`: there, the person reads why and what to run. Printable ASCII only, as
/// HTTP/1.1 allows in a reason phrase; HTTP/2 has none.
fn refusal_reason(status: StatusCode, message: &str) -> Option<hyper::ext::ReasonPhrase> {
    if status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN {
        return None;
    }
    let canonical = status.canonical_reason()?;
    let message = message.strip_prefix("Forbidden: ").unwrap_or(message);
    let ascii: String =
        message.chars().filter(|c| c.is_ascii_graphic() || *c == ' ').take(200).collect();
    hyper::ext::ReasonPhrase::try_from(format!("{canonical} - {ascii}")).ok()
}

/// A response with a JSON body that is already serialized.
pub fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body)
        .into_response()
}
