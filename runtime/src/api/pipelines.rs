//! `/api/pipelines`: listing, triggering, and a pipeline's jobs.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use chrono::Utc;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::query::{self, RawQuery};
use crate::queue::job::{JobStatus, format_ts};
use crate::registry::worker::json_type;
use crate::store::JobFilter;

/// Routes under `/api/pipelines`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/pipelines", get(list))
        .route("/api/pipelines/{id}/trigger", post(trigger))
        .route("/api/pipelines/{id}/jobs", get(jobs))
}

/// Every pipeline with its state, counts and parameter schema.
///
/// Answers from what is known: it starts loading workers not yet loaded and waits at most
/// one second for them, never for an initialisation already under way. `state` says where
/// each worker stands: `ready` (loaded; `paramsSchema` is set), `initialising` (under way),
/// `failed` (the latest attempt failed: `lastError`) or `not_loaded`.
#[utoipa::path(get, path = "/api/pipelines", tag = "pipelines",
    responses((status = 200, description = "Pipelines, each with `state`: ready | initialising | failed | not_loaded", body = Object)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let registry = state.queue.registry();
    let ids = registry.pipeline_ids();
    // Schemas come from the workers themselves, so listing starts loading them (cached,
    // shared) but never waits on a worker's init beyond a short grace; one still under way
    // is listed with `state: initialising`.
    registry.start_loading(&ids, crate::registry::LIST_GRACE).await;
    let counts = state.queue.store().counts().await?;
    let mut out = Vec::new();
    for id in ids {
        let Some(st) = registry.status(&id) else { continue };
        let config = registry.pipeline_config(&id);
        let lane = state.queue.lane_counts(&id);
        let c = counts.get(&id).cloned().unwrap_or_default();
        let n = |s: JobStatus| c.by_status.get(&s).copied().unwrap_or(0);
        let status = if config.is_some_and(|c| !c.enabled) {
            "disabled"
        } else if st.cooling_down {
            "cooldown"
        } else if lane.running > 0 {
            "running"
        } else {
            "idle"
        };
        let info = st.info.as_ref();
        out.push(json!({
            "id": id,
            "name": info.map(|i| i.name.clone()).unwrap_or_else(|| id.clone()),
            "description": info.map(|i| i.description.clone()),
            "version": info.map(|i| i.version.clone()),
            "status": status,
            "workerLoaded": st.loaded,
            "state": st.state.as_str(),
            "queued": n(JobStatus::Queued),
            "running": n(JobStatus::Running),
            "completed": n(JobStatus::Completed),
            "failed": n(JobStatus::Failed),
            "cancelled": n(JobStatus::Cancelled),
            "maxConcurrent": lane.capacity,
            "lastRun": c.last_run.as_ref().map(format_ts),
            "paramsSchema": info.map(|i| i.params_schema.clone()),
            "gitWorkflow": config.is_some_and(|c| c.git_workflow) && info.is_some_and(|i| i.git_workflow.is_some()),
            "lastError": st.last_error,
        }));
    }
    Ok(Json(json!({"pipelines": out, "timestamp": format_ts(&Utc::now())})))
}

/// Parses the trigger body: `{"parameters": {...}}`, parameters optional.
fn parse_trigger_body(body: &Bytes) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("INVALID_JSON", format!("Malformed JSON body: {e}")))?;
    let Value::Object(mut top) = value else {
        return Err(ApiError::bad_request(
            "INVALID_BODY",
            format!("Body must be a JSON object like {{\"parameters\": {{...}}}}, got {}", json_type(&value)),
        ));
    };
    if let Some(k) = top.keys().find(|k| k.as_str() != "parameters") {
        return Err(ApiError::bad_request(
            "INVALID_BODY",
            format!("Unknown field '{k}' in body; only 'parameters' is accepted"),
        ));
    }
    match top.remove("parameters") {
        None | Some(Value::Null) => Ok(json!({})),
        Some(Value::Object(p)) => Ok(Value::Object(p)),
        Some(other) => Err(ApiError::bad_request(
            "INVALID_PARAMETERS",
            format!("'parameters' must be a JSON object, got {}", json_type(&other)),
        )),
    }
}

/// Queues a job of a pipeline.
#[utoipa::path(post, path = "/api/pipelines/{id}/trigger", tag = "pipelines",
    params(("id" = String, Path, description = "Pipeline id")),
    request_body(content = super::openapi::TriggerRequest, description = "Optional parameters"),
    responses(
        (status = 201, description = "Job queued", body = super::openapi::TriggerResponse),
        (status = 400, description = "Unknown pipeline, malformed body or invalid parameters", body = super::openapi::ErrorBody),
        (status = 401, description = "API key missing", body = super::openapi::ErrorBody),
        (status = 403, description = "API key wrong", body = super::openapi::ErrorBody),
        (status = 413, description = "Body too large", body = super::openapi::ErrorBody),
        (status = 429, description = "Queue full", body = super::openapi::ErrorBody),
        (status = 503, description = "Worker cooling down or execution disabled", body = super::openapi::ErrorBody)))]
pub async fn trigger(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if !state.queue.registry().is_supported(&id) {
        return Err(crate::registry::RegistryError::Unknown { id, supported: state.queue.registry().pipeline_ids() }.into());
    }
    let params = parse_trigger_body(&body)?;
    let job = state.queue.trigger(&id, params).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "jobId": job.id,
            "pipelineId": job.pipeline_id,
            "status": job.status,
            "timestamp": format_ts(&job.created_at),
        })),
    ))
}

/// A pipeline's jobs, newest first.
#[utoipa::path(get, path = "/api/pipelines/{id}/jobs", tag = "pipelines",
    params(("id" = String, Path, description = "Pipeline id"),
        ("limit" = Option<u32>, Query, description = "1-100, default 10"),
        ("offset" = Option<u32>, Query, description = "Rows to skip"),
        ("status" = Option<String>, Query, description = "Comma-separated statuses")),
    responses((status = 200, description = "A page of jobs", body = Object),
        (status = 400, description = "Bad query", body = super::openapi::ErrorBody),
        (status = 404, description = "Unknown pipeline", body = super::openapi::ErrorBody)))]
pub async fn jobs(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<RawQuery>,
) -> Result<Json<Value>, ApiError> {
    if !state.queue.registry().is_supported(&id) {
        return Err(ApiError::not_found("UNKNOWN_PIPELINE", format!("Unknown pipeline: {id}")));
    }
    query::only(&q, &["limit", "offset", "status"])?;
    let limit = query::int_in(&q, "limit", 1, 100, 10)?;
    let offset = query::offset(&q)?;
    let statuses = query::statuses(&q)?;
    let page = state
        .queue
        .store()
        .list(&JobFilter { pipeline_id: Some(id.clone()), statuses, limit, offset, after: None })
        .await?;
    let has_more = u64::from(offset) + (page.jobs.len() as u64) < page.total;
    Ok(Json(json!({
        "pipelineId": id,
        "jobs": page.jobs,
        "total": page.total,
        "hasMore": has_more,
        "timestamp": format_ts(&Utc::now()),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_bodies_are_checked_strictly() {
        assert_eq!(parse_trigger_body(&Bytes::from_static(b"")).unwrap(), json!({}));
        assert_eq!(parse_trigger_body(&Bytes::from_static(b"{}")).unwrap(), json!({}));
        assert_eq!(parse_trigger_body(&Bytes::from_static(b"{\"parameters\":{\"a\":1}}")).unwrap(), json!({"a": 1}));
        for bad in [&b"{"[..], b"[]", b"{\"params\":{}}", b"{\"parameters\":[1]}", b"{\"parameters\":\"x\"}"] {
            let err = parse_trigger_body(&Bytes::copy_from_slice(bad)).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
