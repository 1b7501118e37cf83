//! The HTTP API (axum): routers built by small functions per area, one shared
//! `AppState` of handles, one error type, and auth around mutating routes.

pub mod auth;
pub mod dashboard;
pub mod error;
pub mod jobs;
pub mod openapi;
pub mod pipelines;
pub mod query;
pub mod service;
pub mod ws;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use tokio_util::sync::CancellationToken;

use self::error::ApiError;
use crate::queue::Queue;

/// Handles shared by every request; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The job queue (and through it the registry, store and events).
    pub queue: Queue,
    /// When the server started.
    pub started: Instant,
    /// API key required on mutating routes, when set.
    pub api_key: Option<Arc<str>>,
    /// Cancelled when the server shuts down (closes WebSockets).
    pub shutdown: CancellationToken,
}

/// The whole HTTP application.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    Router::new()
        .merge(pipelines::routes())
        .merge(jobs::routes())
        .merge(service::routes())
        .merge(openapi::routes())
        .merge(dashboard::routes())
        .merge(ws::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_key))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::map_response(body_limit_as_json))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("NOT_FOUND", "No such route")
}

/// axum answers an oversized body with a plain-text 413; give it our JSON shape.
async fn body_limit_as_json(res: axum::response::Response) -> axum::response::Response {
    if res.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "PAYLOAD_TOO_LARGE",
            message: "Request body is larger than the configured limit (server.max_body_bytes)".into(),
            retry_after: None,
        }
        .into_response();
    }
    res
}
