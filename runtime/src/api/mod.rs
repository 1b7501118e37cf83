//! The HTTP API (axum): routers built by small functions per area, one shared
//! `AppState` of handles, one error type, and auth around mutating routes; the edge
//! checks (`edge`: Host, Origin, JSON only, rate limit, timeouts) around everything.

pub mod artifacts;
pub mod auth;
pub mod dashboard;
pub mod edge;
pub mod error;
pub mod inventories;
pub mod jobs;
pub mod openapi;
pub mod pipelines;
pub mod query;
pub mod runs;
pub mod schedules;
pub mod service;
pub mod versions;
pub mod webhooks;
pub mod ws;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tokio_util::sync::CancellationToken;

use self::error::ApiError;
use crate::config::ServerConfig;
use crate::queue::Queue;

/// Handles shared by every request; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The job queue: the API's one handle on pipelines, jobs, logs and events.
    pub queue: Queue,
    /// When the server started.
    pub started: Instant,
    /// API key required on mutating routes, when set.
    pub api_key: Option<Arc<str>>,
    /// Cancelled when the server shuts down (closes WebSockets).
    pub shutdown: CancellationToken,
    /// WebSocket message size, connection cap and idle timeout.
    pub ws: Arc<ws::WsLimits>,
    /// Jobs' output folders, read by the artifact routes.
    pub outputs: Arc<crate::artifacts::OutputFolders>,
    /// Inventories and fan-out runs.
    pub runs: crate::runs::Runs,
    /// Webhooks and their deliveries, read and redelivered by `webhooks`.
    pub notifier: crate::notify::Notifier,
    /// Cron schedules.
    pub schedules: crate::schedule::Schedules,
}

/// The whole HTTP application. Layers, outermost first: errors as JSON, request timeout,
/// Host and Origin checks, CORS for allowed origins, rate limit, body limit, and (on
/// matched routes) the API key and the JSON-only rule for POST.
pub fn router(state: AppState, server: &ServerConfig) -> Router {
    let policy = edge::EdgePolicy::new(server);
    let mut app = Router::new()
        .merge(pipelines::routes())
        .merge(versions::routes(server.max_component_bytes))
        .merge(jobs::routes())
        .merge(schedules::routes())
        .merge(artifacts::routes())
        .merge(runs::routes())
        .merge(inventories::routes())
        .merge(webhooks::routes())
        .merge(service::routes())
        .merge(openapi::routes())
        .merge(dashboard::routes())
        .merge(ws::routes())
        .route_layer(axum::middleware::from_fn(edge::require_json))
        // On matched routes only, so a wrong method is a 405 (below) even without the key.
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_key))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(server.max_body_bytes));
    app = edge::with_rate_limit(app, &server.rate_limit, state.shutdown.clone());
    if let Some(cors) = policy.cors() {
        app = app.layer(cors);
    }
    app.layer(axum::middleware::from_fn_with_state(policy, edge::check_host_and_origin))
        .layer(axum::middleware::from_fn_with_state(
            Duration::from_secs(server.request_timeout_secs),
            edge::request_timeout,
        ))
        // Outermost: whatever a layer or axum itself answers with, an error is the JSON body.
        .layer(axum::middleware::from_fn(error::errors_as_json))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("NOT_FOUND", "No such route")
}

/// A known route called with a method it does not serve; axum adds `Allow`.
async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::method_not_allowed(method.as_str(), uri.path())
}
