//! `ApiError`: the one type that knows HTTP status codes. Every error leaves as
//! `{"error": "...", "code": "UPPER_SNAKE"}`; internal details are logged, not sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::queue::{ControlError, TriggerError};
use crate::registry::RegistryError;
use crate::store::StoreError;

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
    /// A 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, code, message: message.into(), retry_after: None }
    }

    /// A 404.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self { status: StatusCode::NOT_FOUND, code, message: message.into(), retry_after: None }
    }

    /// A 500 that hides `detail` from the client.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "INTERNAL_ERROR",
            message: "internal error; see the server log".into(),
            retry_after: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (self.status, axum::Json(json!({"error": self.message, "code": self.code}))).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
        res
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
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "WORKER_COOLDOWN",
                message,
                retry_after: Some(retry_after.as_secs().max(1)),
            },
            RegistryError::InitFailed { .. } => ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "WORKER_INIT_FAILED",
                message,
                retry_after: None,
            },
            RegistryError::ShuttingDown => ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "SHUTTING_DOWN",
                message,
                retry_after: Some(5),
            },
        }
    }
}

impl From<TriggerError> for ApiError {
    fn from(e: TriggerError) -> Self {
        let message = e.to_string();
        match e {
            TriggerError::Registry(r) => r.into(),
            TriggerError::InvalidParams(_) => ApiError::bad_request("INVALID_PARAMETERS", message),
            TriggerError::QueueFull { .. } => ApiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                code: "QUEUE_FULL",
                message,
                retry_after: Some(1),
            },
            TriggerError::Disabled(_) => ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "EXECUTION_DISABLED",
                message,
                retry_after: None,
            },
            TriggerError::ShuttingDown => ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "SHUTTING_DOWN",
                message,
                retry_after: Some(5),
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
            ControlError::Conflict { .. } => {
                ApiError { status: StatusCode::CONFLICT, code: "INVALID_STATE", message, retry_after: None }
            }
            ControlError::Trigger(t) => t.into(),
            ControlError::Store(s) => s.into(),
        }
    }
}
