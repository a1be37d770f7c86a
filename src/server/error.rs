//! The admin API's one error shape: `{"error":{"code":"…","message":"…"}}` with the right status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::api::{ErrorBody, ErrorResponse};
use crate::store::StoreError;
use crate::store::db::ErrorKind;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Sent as `Retry-After` (429).
    pub retry_after: Option<std::time::Duration>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after: None }
    }

    pub fn retry_after(mut self, wait: std::time::Duration) -> Self {
        self.retry_after = Some(wait);
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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorResponse {
            error: ErrorBody { code: self.code.to_owned(), message: self.message },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(wait) = self.retry_after {
            let seconds = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(seconds));
        }
        response
    }
}
