//! `ApiError`: the one type that knows HTTP status codes. Every error leaves as
//! `{"error": "...", "code": "UPPER_SNAKE"}`; internal details are logged, not sent.
//! Framework rejections (path, query, JSON) are converted here too, through the
//! `ApiPath` / `ApiQuery` extractors, so no error reaches a client as plain text.

use axum::extract::FromRequestParts;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::queue::{ControlError, TriggerError};
use crate::registry::RegistryError;
use crate::store::StoreError;

/// Longest message sent to a client; longer ones (echoed input) are cut.
const MAX_MESSAGE_CHARS: usize = 500;

/// The body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"error": "Job not found: x", "code": "JOB_NOT_FOUND"}))]
pub struct ErrorBody {
    /// A message a person can act on.
    pub error: String,
    /// UPPER_SNAKE code, e.g. `INVALID_PARAMETERS`, `UNAUTHORIZED`, `METHOD_NOT_ALLOWED`.
    #[schema(pattern = "^[A-Z][A-Z0-9_]*$")]
    pub code: String,
}

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// UPPER_SNAKE code.
    pub code: &'static str,
    /// A message a person can act on.
    pub message: String,
    /// Seconds for `Retry-After`.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with `status` and `code`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after: None }
    }

    /// A 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// A 404.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 401 `UNAUTHORIZED`: a guarded route was called without an API key.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "This route needs an API key: send X-API-Key or Authorization: Bearer",
        )
    }

    /// 403 `FORBIDDEN`: the API key presented is wrong.
    pub fn forbidden() -> Self {
        Self::new(StatusCode::FORBIDDEN, "FORBIDDEN", "The API key is not valid")
    }

    /// 405 `METHOD_NOT_ALLOWED` (the router adds `Allow`).
    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            format!("{method} is not allowed on {path}; see the Allow header"),
        )
    }

    /// 413 `PAYLOAD_TOO_LARGE`.
    pub fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            "Request body is larger than the configured limit (server.max_body_bytes)",
        )
    }

    /// A 500 that hides `detail` from the client.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", "internal error; see the server log")
    }
}

/// Cuts `message` to `MAX_MESSAGE_CHARS` characters, saying so.
fn bounded(mut message: String) -> String {
    if let Some((at, _)) = message.char_indices().nth(MAX_MESSAGE_CHARS) {
        message.truncate(at);
        message.push_str("… (truncated)");
    }
    message
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: bounded(self.message), code: self.code.to_string() };
        let mut res = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        res
    }
}

/// The UPPER_SNAKE code for a framework-made error of `status`.
fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "BAD_REQUEST",
        StatusCode::UNAUTHORIZED => "UNAUTHORIZED",
        StatusCode::FORBIDDEN => "FORBIDDEN",
        StatusCode::NOT_FOUND => "NOT_FOUND",
        StatusCode::METHOD_NOT_ALLOWED => "METHOD_NOT_ALLOWED",
        StatusCode::REQUEST_TIMEOUT => "REQUEST_TIMEOUT",
        StatusCode::PAYLOAD_TOO_LARGE => "PAYLOAD_TOO_LARGE",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "UNSUPPORTED_MEDIA_TYPE",
        StatusCode::MISDIRECTED_REQUEST => "HOST_NOT_ALLOWED",
        StatusCode::UNPROCESSABLE_ENTITY => "UNPROCESSABLE_ENTITY",
        StatusCode::UPGRADE_REQUIRED => "UPGRADE_REQUIRED",
        StatusCode::TOO_MANY_REQUESTS => "RATE_LIMITED",
        StatusCode::SERVICE_UNAVAILABLE => "UNAVAILABLE",
        StatusCode::GATEWAY_TIMEOUT => "TIMEOUT",
        s if s.is_client_error() => "BAD_REQUEST",
        _ => "INTERNAL_ERROR",
    }
}

/// Middleware (outermost): an error response made by the framework or a layer rather
/// than by `ApiError` (axum's 405 and 413, a WebSocket upgrade refusal, a timeout) gets
/// the JSON error body; its status and headers (`Allow`, `Retry-After`) are kept.
pub async fn errors_as_json(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if status.as_u16() < 400 || is_json {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    // The framework's texts are short; anything longer is not worth echoing.
    let text = axum::body::to_bytes(body, 4096).await.map(|b| String::from_utf8_lossy(&b).trim().to_string());
    let message = match text {
        Ok(t) if !t.is_empty() => t,
        _ => status.canonical_reason().unwrap_or("error").to_string(),
    };
    let message = if status == StatusCode::PAYLOAD_TOO_LARGE { ApiError::payload_too_large().message } else { message };
    let fresh = ApiError::new(status, code_for(status), message).into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Response::from_parts(parts, fresh.into_body())
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> Self {
        match e {
            PathRejection::FailedToDeserializePathParams(inner) => {
                ApiError::bad_request("INVALID_PATH", format!("Bad path segment: {}", inner.body_text()))
            }
            other => ApiError::internal(other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        ApiError::bad_request("INVALID_QUERY", format!("Bad query string: {}", e.body_text()))
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        let status = e.status();
        let code = match status {
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "UNSUPPORTED_MEDIA_TYPE",
            StatusCode::PAYLOAD_TOO_LARGE => "PAYLOAD_TOO_LARGE",
            _ => "INVALID_JSON",
        };
        ApiError::new(status, code, e.body_text())
    }
}

/// `axum::extract::Path` whose rejection is an `ApiError` (a bad UTF-8 segment → 400 JSON).
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(v) = axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(ApiPath(v))
    }
}

/// `axum::extract::Query` whose rejection is an `ApiError` (unknown or malformed parameter → 400 JSON).
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(v) = axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(ApiQuery(v))
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::internal(e)
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        let message = e.to_string();
        match e {
            RegistryError::Unknown { .. } => ApiError::bad_request("UNKNOWN_PIPELINE", message),
            RegistryError::Cooldown { retry_after, .. } => ApiError {
                retry_after: Some(retry_after.as_secs().max(1)),
                ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "WORKER_COOLDOWN", message)
            },
            RegistryError::InitFailed { .. } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "WORKER_INIT_FAILED", message)
            }
            RegistryError::ShuttingDown => ApiError {
                retry_after: Some(5),
                ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "SHUTTING_DOWN", message)
            },
            RegistryError::Refused { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "COMPONENT_REFUSED", message)
            }
            RegistryError::UnknownVersion { .. } => ApiError::not_found("UNKNOWN_VERSION", message),
            RegistryError::NoPreviousVersion { .. } => {
                ApiError::new(StatusCode::CONFLICT, "NO_PREVIOUS_VERSION", message)
            }
        }
    }
}

impl From<TriggerError> for ApiError {
    fn from(e: TriggerError) -> Self {
        let message = e.to_string();
        match e {
            TriggerError::Registry(r) => r.into(),
            TriggerError::InvalidParams(_) => ApiError::bad_request("INVALID_PARAMETERS", message),
            TriggerError::QueueFull { .. } => {
                ApiError { retry_after: Some(1), ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "QUEUE_FULL", message) }
            }
            TriggerError::Disabled(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "EXECUTION_DISABLED", message),
            TriggerError::ShuttingDown => ApiError {
                retry_after: Some(5),
                ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "SHUTTING_DOWN", message)
            },
            TriggerError::Store(s) => s.into(),
        }
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        let message = e.to_string();
        match e {
            ControlError::NotFound(_) => ApiError::not_found("JOB_NOT_FOUND", message),
            ControlError::Conflict { .. } => ApiError::new(StatusCode::CONFLICT, "INVALID_STATE", message),
            ControlError::Trigger(t) => t.into(),
            ControlError::Store(s) => s.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut() {
        let cut = bounded("x".repeat(10_000));
        assert!(cut.chars().count() < MAX_MESSAGE_CHARS + 20, "{}", cut.len());
        assert!(cut.ends_with("(truncated)"));
        assert_eq!(bounded("short".into()), "short");
    }
}
