//! `/health` and `/api/status`.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use chrono::Utc;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::openapi::{Health, PipelineLoad, QueueSummary, ServiceStatus};
use crate::domain::{JobStatus, format_ts};
use crate::metrics::{Format, Metrics, PipelineLabel, StatusLabel};
use crate::store::JobFilter;

/// Service routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/health", get(health)).route("/api/status", get(status)).route("/metrics", get(metrics))
}

/// Prometheus metrics: OpenMetrics 1.0 when `Accept` prefers `application/openmetrics-text`,
/// else the text format 0.0.4.
#[utoipa::path(get, path = "/metrics", tag = "service", operation_id = "metrics",
    responses((status = 200, description = "Metrics",
            content((String = "text/plain; version=0.0.4"), (String = "application/openmetrics-text; version=1.0.0"))),
        (status = 403, description = "Origin refused (not this server's, nor in server.allowed_origins)", body = ErrorBody),
        (status = 405, description = "Method not allowed", body = ErrorBody)))]
pub async fn metrics(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<impl axum::response::IntoResponse, ApiError> {
    let format = Format::negotiate(headers.get(axum::http::header::ACCEPT).and_then(|v| v.to_str().ok()));
    let queue = &state.queue;
    let m = queue.metrics();
    let counts = queue.job_counts().await?;
    for id in queue.pipeline_ids() {
        let lane = queue.lane_counts(&id);
        Metrics::set(&m.queue_depth, &id, lane.queued as i64);
        Metrics::set(&m.running, &id, lane.running as i64);
        if let Some(st) = queue.worker_status(&id) {
            Metrics::set(&m.breaker_open, &id, i64::from(st.cooling_down));
            if let Some(t) = st.init_time {
                m.worker_init.get_or_create(&PipelineLabel { pipeline: id.clone() }).set(t.as_secs_f64());
            }
        }
        let c = counts.get(&id).cloned().unwrap_or_default();
        for status in JobStatus::ALL {
            let n = c.by_status.get(&status).copied().unwrap_or(0);
            m.jobs.get_or_create(&StatusLabel { pipeline: id.clone(), status: status.as_str().into() }).set(n as i64);
        }
    }
    let body = m.encode_as(format).map_err(ApiError::internal)?;
    Ok(([(axum::http::header::CONTENT_TYPE, format.content_type())], body))
}

/// Liveness.
#[utoipa::path(get, path = "/health", tag = "service", operation_id = "health",
    responses((status = 200, description = "Healthy", body = Health),
        (status = 403, description = "Origin refused (not this server's, nor in server.allowed_origins)", body = ErrorBody),
        (status = 405, description = "Method not allowed", body = ErrorBody)))]
pub async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "healthy".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_seconds: state.started.elapsed().as_secs(),
        timestamp: format_ts(&Utc::now()),
    })
}

/// Queue summary, active and queued jobs, recent activity.
#[utoipa::path(get, path = "/api/status", tag = "service", operation_id = "status",
    responses((status = 200, description = "Status", body = ServiceStatus),
        (status = 403, description = "Origin refused (not this server's, nor in server.allowed_origins)", body = ErrorBody),
        (status = 405, description = "Method not allowed", body = ErrorBody)))]
pub async fn status(State(state): State<AppState>) -> Result<Json<ServiceStatus>, ApiError> {
    let queue = &state.queue;
    let (mut active, mut queued, mut capacity) = (0, 0, 0);
    let mut pipelines = Vec::new();
    for id in queue.pipeline_ids() {
        let lane = queue.lane_counts(&id);
        active += lane.running;
        queued += lane.queued;
        capacity += lane.capacity;
        let st = queue.worker_status(&id);
        pipelines.push(PipelineLoad {
            running: lane.running as u64,
            queued: lane.queued as u64,
            worker_loaded: st.as_ref().is_some_and(|s| s.loaded),
            cooling_down: st.as_ref().is_some_and(|s| s.cooling_down),
            id,
        });
    }
    let filter =
        |statuses: Vec<JobStatus>, limit| JobFilter { pipeline_id: None, statuses, limit, offset: 0, after: None };
    let running_jobs = queue.jobs(&filter(vec![JobStatus::Running], 100)).await?;
    let queued_jobs = queue.jobs(&filter(vec![JobStatus::Queued], 100)).await?;
    let recent = queue.jobs(&filter(vec![JobStatus::Completed, JobStatus::Failed, JobStatus::Cancelled], 20)).await?;
    Ok(Json(ServiceStatus {
        pipelines,
        queue: QueueSummary { active: active as u64, queued: queued as u64, capacity: capacity as u64 },
        active_jobs: running_jobs.jobs,
        queued_jobs: queued_jobs.jobs,
        recent_activity: recent.jobs,
        uptime_seconds: state.started.elapsed().as_secs(),
        timestamp: format_ts(&Utc::now()),
    }))
}
