//! The admin API's extractors: axum's `Json`, `Query` and `Path`, whose rejections answer in the
//! API's error shape (`{"error":{"code":…,"message":…}}`) with the status axum chose, so that
//! no malformed request gets a plain-text answer.
//!
//! A field that cannot be read is named in the message (`shared: provided string was not `true`
//! or `false``); a field holding a closed set (`api::KeyStatus`, …) has a code of its own and
//! the sentence its type writes (`status "old" is not one of active, expired, revoked`).

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::StatusCode;

use super::error::ApiError;

/// A JSON request body.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct JsonBody<T>(pub T);

/// The query string.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// The route's path parameters.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// The request fields that hold a closed set: the code a value outside it answers, and the
/// status when it is not the extractor's (422 in a body, 400 in a query).
const CLOSED_SET_FIELDS: [(&str, &str, Option<StatusCode>); 4] = [
    ("status", "invalid_status", None),
    ("expires", "invalid_expires", None),
    ("access", "invalid_access", None),
    ("template", "unknown_template", Some(StatusCode::BAD_REQUEST)),
];

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        if matches!(rejection, JsonRejection::JsonDataError(_))
            && let Some((field, error)) = field_error::<serde_json::Error>(&rejection)
        {
            // The path says where: the line and column add nothing.
            let text = error.to_string();
            let position = format!(" at line {} column {}", error.line(), error.column());
            let problem = text.strip_suffix(&position).unwrap_or(&text);
            return refused(status, "invalid_body", &field, problem);
        }
        let code = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::UNPROCESSABLE_ENTITY => "invalid_body",
            _ => "malformed_json",
        };
        Self::new(status, code, rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        let status = rejection.status();
        match field_error::<serde_urlencoded::de::Error>(&rejection) {
            Some((field, error)) => refused(status, "invalid_query", &field, &error.to_string()),
            None => Self::new(status, "invalid_query", rejection.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        // A route whose parameters do not fit its handler: a bug, not the caller's mistake.
        if rejection.status().is_server_error() {
            tracing::error!(%rejection, "a route's path parameters do not fit its handler");
            return Self::internal();
        }
        let status = rejection.status();
        Self::new(status, "invalid_path", rejection.body_text())
    }
}

/// The field (`expires`, `.` for the whole) that a request part's deserializer stopped at, and
/// why, from a rejection of axum's (which keeps `serde_path_to_error`'s error as its source).
fn field_error<'a, E: std::error::Error + 'static>(
    rejection: &'a (dyn std::error::Error + 'static),
) -> Option<(String, &'a E)> {
    let mut source = rejection.source();
    while let Some(error) = source {
        if let Some(found) = error.downcast_ref::<serde_path_to_error::Error<E>>() {
            return Some((found.path().to_string(), found.inner()));
        }
        source = error.source();
    }
    None
}

/// A request refused because of `field`: its own code if it holds a closed set (whose message
/// names the value and the allowed ones), else `code`.
fn refused(status: StatusCode, code: &'static str, field: &str, problem: &str) -> ApiError {
    match CLOSED_SET_FIELDS.iter().find(|(name, ..)| *name == field) {
        Some(&(_, own, own_status)) => {
            ApiError::new(own_status.unwrap_or(status), own, format!("{field} {problem}"))
        }
        None if field == "." => ApiError::new(status, code, problem),
        None => ApiError::new(status, code, format!("{field}: {problem}")),
    }
}
