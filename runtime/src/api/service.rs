//! `/health` and `/api/status`.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use chrono::Utc;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use crate::queue::job::{JobStatus, format_ts};
use crate::store::JobFilter;

/// Service routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/health", get(health)).route("/api/status", get(status))
}

async fn health(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "status": "healthy",
        "version": env!("CARGO_PKG_VERSION"),
        "uptimeSeconds": state.started.elapsed().as_secs(),
        "timestamp": format_ts(&Utc::now()),
    }))
}

async fn status(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let registry = state.queue.registry();
    let store = state.queue.store();
    let (mut active, mut queued, mut capacity) = (0, 0, 0);
    let mut pipelines = Vec::new();
    for id in registry.pipeline_ids() {
        let lane = state.queue.lane_counts(&id);
        active += lane.running;
        queued += lane.queued;
        capacity += lane.capacity;
        let st = registry.status(&id);
        pipelines.push(json!({
            "id": id,
            "running": lane.running,
            "queued": lane.queued,
            "workerLoaded": st.as_ref().is_some_and(|s| s.loaded),
            "coolingDown": st.as_ref().is_some_and(|s| s.cooling_down),
        }));
    }
    let filter = |statuses: Vec<JobStatus>, limit| JobFilter { pipeline_id: None, statuses, limit, offset: 0 };
    let running_jobs = store.list(&filter(vec![JobStatus::Running], 100)).await?;
    let queued_jobs = store.list(&filter(vec![JobStatus::Queued], 100)).await?;
    let recent = store.list(&filter(vec![JobStatus::Completed, JobStatus::Failed, JobStatus::Cancelled], 20)).await?;
    Ok(Json(json!({
        "pipelines": pipelines,
        "queue": {"active": active, "queued": queued, "capacity": capacity},
        "activeJobs": running_jobs.jobs,
        "queuedJobs": queued_jobs.jobs,
        "recentActivity": recent.jobs,
        "uptimeSeconds": state.started.elapsed().as_secs(),
        "timestamp": format_ts(&Utc::now()),
    })))
}
