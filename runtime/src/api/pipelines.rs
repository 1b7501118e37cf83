//! `/api/pipelines`: listing, triggering, and a pipeline's jobs.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use chrono::Utc;
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, ApiPath, ApiQuery, ErrorBody};
use super::openapi::{PipelineJobsPage, PipelineList, PipelineState, PipelineSummary, TriggerRequest, TriggerResponse};
use super::query::{self, PipelineJobsQuery};
use crate::domain::{JobStatus, format_ts};
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
#[utoipa::path(get, path = "/api/pipelines", tag = "pipelines", operation_id = "listPipelines",
    responses((status = 200, description = "Pipelines, each with `state`: ready | initialising | failed | not_loaded", body = PipelineList),
        (status = 403, description = "Origin refused (not this server's, nor in server.allowed_origins)", body = ErrorBody),
        (status = 405, description = "Method not allowed", body = ErrorBody)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<PipelineList>, ApiError> {
    let queue = &state.queue;
    let ids = queue.pipeline_ids();
    // Schemas come from the workers themselves, so listing starts loading them (cached,
    // shared) but never waits on a worker's init beyond a short grace; one still under way
    // is listed with `state: initialising`.
    queue.start_loading(&ids, crate::registry::LIST_GRACE).await;
    let counts = queue.job_counts().await?;
    let mut out = Vec::new();
    for id in ids {
        let Some(st) = queue.worker_status(&id) else { continue };
        let config = queue.pipeline_config(&id);
        let lane = queue.lane_counts(&id);
        let c = counts.get(&id).cloned().unwrap_or_default();
        let n = |s: JobStatus| c.by_status.get(&s).copied().unwrap_or(0) as u64;
        let status = if config.is_some_and(|c| !c.enabled) {
            PipelineState::Disabled
        } else if st.cooling_down {
            PipelineState::Cooldown
        } else if lane.running > 0 {
            PipelineState::Running
        } else {
            PipelineState::Idle
        };
        let info = st.info.as_ref();
        out.push(PipelineSummary {
            name: info.map(|i| i.name.clone()).unwrap_or_else(|| id.clone()),
            description: info.map(|i| i.description.clone()),
            version: info.map(|i| i.version.clone()),
            status,
            worker_loaded: st.loaded,
            state: st.state.as_str().to_string(),
            queued: n(JobStatus::Queued),
            running: n(JobStatus::Running),
            completed: n(JobStatus::Completed),
            failed: n(JobStatus::Failed),
            cancelled: n(JobStatus::Cancelled),
            max_concurrent: lane.capacity as u64,
            last_run: c.last_run.as_ref().map(format_ts),
            params_schema: info.map(|i| i.params_schema.clone()),
            git_workflow: config.is_some_and(|c| c.git_workflow) && info.is_some_and(|i| i.git_workflow.is_some()),
            last_error: st.last_error,
            id,
        });
    }
    Ok(Json(PipelineList { pipelines: out, timestamp: format_ts(&Utc::now()) }))
}

/// Longest pinned version accepted in a trigger.
const MAX_VERSION_BYTES: usize = 200;

/// Parses the trigger body: `{"parameters": {...}, "version": "1.2.0"}`, both optional.
fn parse_trigger_body(body: &Bytes) -> Result<(Value, Option<String>), ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok((json!({}), None));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("INVALID_JSON", format!("Malformed JSON body: {e}")))?;
    let Value::Object(mut top) = value else {
        return Err(ApiError::bad_request(
            "INVALID_BODY",
            format!("Body must be a JSON object like {{\"parameters\": {{...}}}}, got {}", json_type(&value)),
        ));
    };
    if let Some(k) = top.keys().find(|k| !matches!(k.as_str(), "parameters" | "version")) {
        return Err(ApiError::bad_request(
            "INVALID_BODY",
            format!("Unknown field '{k}' in body; only 'parameters' and 'version' are accepted"),
        ));
    }
    let version = match top.remove("version") {
        None | Some(Value::Null) => None,
        Some(Value::String(v)) if !v.is_empty() && v.len() <= MAX_VERSION_BYTES => Some(v),
        Some(Value::String(_)) => {
            return Err(ApiError::bad_request(
                "INVALID_BODY",
                format!("'version' must be 1 to {MAX_VERSION_BYTES} bytes"),
            ));
        }
        Some(other) => {
            return Err(ApiError::bad_request(
                "INVALID_BODY",
                format!("'version' must be a string, got {}", json_type(&other)),
            ));
        }
    };
    let params = match top.remove("parameters") {
        None => json!({}),
        Some(Value::Object(p)) => Value::Object(p),
        Some(other) => {
            return Err(ApiError::bad_request(
                "INVALID_PARAMETERS",
                format!("'parameters' must be a JSON object, got {}", json_type(&other)),
            ));
        }
    };
    Ok((params, version))
}

/// Queues a job of a pipeline.
#[utoipa::path(post, path = "/api/pipelines/{id}/trigger", tag = "pipelines", operation_id = "triggerPipeline",
    params(("id" = String, Path, description = "Pipeline id")),
    request_body(content = TriggerRequest, content_type = "application/json",
        description = "Optional parameters, checked against the pipeline's paramsSchema and granted roots"),
    security(("apiKey" = []), ("bearer" = [])),
    responses(
        (status = 201, description = "Job queued", body = TriggerResponse),
        (status = 400, description = "Unknown pipeline, malformed body, or parameters that fail the worker's schema or name a path outside the granted roots (the message names the field)", body = ErrorBody),
        (status = 401, description = "API key missing", body = ErrorBody),
        (status = 403, description = "API key wrong, or Origin/Host refused", body = ErrorBody),
        (status = 404, description = "The pinned `version` is not registered", body = ErrorBody),
        (status = 405, description = "Method not allowed", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not application/json", body = ErrorBody),
        (status = 429, description = "Queue full or rate limited (see Retry-After)", body = ErrorBody),
        (status = 503, description = "Worker cooling down, failed to load, execution disabled or shutting down", body = ErrorBody)))]
pub async fn trigger(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<TriggerResponse>), ApiError> {
    // The pipeline is looked up once, before the body is read: an unknown id is the error
    // reported first.
    let pipeline = state.queue.pipeline(&id)?;
    let (params, version) = parse_trigger_body(&body)?;
    let job = pipeline.trigger_on(params, version.as_deref()).await?;
    Ok((
        StatusCode::CREATED,
        Json(TriggerResponse {
            timestamp: format_ts(&job.created_at),
            job_id: job.id,
            pipeline_id: job.pipeline_id,
            status: job.status,
        }),
    ))
}

/// A pipeline's jobs, newest first.
#[utoipa::path(get, path = "/api/pipelines/{id}/jobs", tag = "pipelines", operation_id = "listPipelineJobs",
    params(("id" = String, Path, description = "Pipeline id"), PipelineJobsQuery),
    responses((status = 200, description = "A page of jobs", body = PipelineJobsPage),
        (status = 400, description = "Bad query: unknown parameter, limit/offset out of range, unknown status", body = ErrorBody),
        (status = 403, description = "Origin refused (not this server's, nor in server.allowed_origins)", body = ErrorBody),
        (status = 404, description = "Unknown pipeline", body = ErrorBody),
        (status = 405, description = "Method not allowed", body = ErrorBody)))]
pub async fn jobs(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<PipelineJobsQuery>,
) -> Result<Json<PipelineJobsPage>, ApiError> {
    if !state.queue.has_pipeline(&id) {
        return Err(ApiError::not_found("UNKNOWN_PIPELINE", format!("Unknown pipeline: {id}")));
    }
    let limit = query::int_in(q.limit.as_deref(), "limit", 1, 100, 10)?;
    let offset = query::offset(q.offset.as_deref())?;
    let statuses = query::statuses(q.status.as_deref())?;
    let page =
        state.queue.jobs(&JobFilter { pipeline_id: Some(id.clone()), statuses, limit, offset, after: None }).await?;
    let has_more = u64::from(offset) + (page.jobs.len() as u64) < page.total;
    Ok(Json(PipelineJobsPage {
        pipeline_id: id,
        jobs: page.jobs,
        total: page.total,
        has_more,
        timestamp: format_ts(&Utc::now()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_bodies_are_checked_strictly() {
        assert_eq!(parse_trigger_body(&Bytes::from_static(b"")).unwrap(), (json!({}), None));
        assert_eq!(parse_trigger_body(&Bytes::from_static(b"{}")).unwrap(), (json!({}), None));
        assert_eq!(
            parse_trigger_body(&Bytes::from_static(b"{\"parameters\":{\"a\":1}}")).unwrap(),
            (json!({"a": 1}), None)
        );
        assert_eq!(
            parse_trigger_body(&Bytes::from_static(b"{\"version\":\"1.2.0\"}")).unwrap(),
            (json!({}), Some("1.2.0".to_string()))
        );
        for bad in [
            &b"{"[..],
            b"[]",
            b"{\"params\":{}}",
            b"{\"parameters\":[1]}",
            b"{\"parameters\":\"x\"}",
            b"{\"parameters\":null}",
            b"{\"version\":1}",
            b"{\"version\":\"\"}",
        ] {
            let err = parse_trigger_body(&Bytes::copy_from_slice(bad)).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
