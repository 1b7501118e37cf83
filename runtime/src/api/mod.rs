//! The HTTP API (axum): routers built by small functions per area, one shared
//! `AppState` of handles, one error type, and auth around mutating routes; the edge
//! checks (`edge`: Host, Origin, JSON only, rate limit, timeouts) around everything.

pub mod auth;
pub mod dashboard;
pub mod edge;
pub mod error;
pub mod jobs;
pub mod openapi;
pub mod pipelines;
pub mod query;
pub mod service;
pub mod ws;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use tokio_util::sync::CancellationToken;

use self::error::ApiError;
use crate::config::ServerConfig;
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
    /// WebSocket message size, connection cap and idle timeout.
    pub ws: Arc<ws::WsLimits>,
}

/// The whole HTTP application. Layers, outermost first: request timeout, Host and
/// Origin checks, CORS for allowed origins, rate limit, body limit, API key, and (on
/// matched paths) the JSON-only rule for POST.
pub fn router(state: AppState, server: &ServerConfig) -> Router {
    let policy = edge::EdgePolicy::new(server);
    let mut app = Router::new()
        .merge(pipelines::routes())
        .merge(jobs::routes())
        .merge(service::routes())
        .merge(openapi::routes())
        .merge(dashboard::routes())
        .merge(ws::routes())
        .route_layer(axum::middleware::from_fn(edge::require_json))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_key))
        .layer(DefaultBodyLimit::max(server.max_body_bytes))
        .layer(axum::middleware::map_response(body_limit_as_json));
    app = edge::with_rate_limit(app, &server.rate_limit, state.shutdown.clone());
    if let Some(cors) = policy.cors() {
        app = app.layer(cors);
    }
    app.layer(axum::middleware::from_fn_with_state(policy, edge::check_host_and_origin))
        .layer(axum::middleware::from_fn_with_state(
            Duration::from_secs(server.request_timeout_secs),
            edge::request_timeout,
        ))
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
