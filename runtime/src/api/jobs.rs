//! `/api/jobs`: listing, one job, cancel, retry and logs.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::query::{self, RawQuery};
use crate::queue::job::{Job, format_ts, is_valid_job_id};
use crate::store::JobFilter;

/// Routes under `/api/jobs`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/jobs", get(list))
        .route("/api/jobs/{id}", get(one))
        .route("/api/jobs/{id}/cancel", post(cancel))
        .route("/api/jobs/{id}/retry", post(retry))
        .route("/api/jobs/{id}/logs", get(logs))
}

fn check_id(id: &str) -> Result<(), ApiError> {
    if is_valid_job_id(id) {
        Ok(())
    } else {
        Err(ApiError::bad_request("INVALID_JOB_ID", "Job ids are 1-100 characters of A-Z, a-z, 0-9, '_' and '-'"))
    }
}

/// Jobs across pipelines, newest first.
#[utoipa::path(get, path = "/api/jobs", tag = "jobs",
    params(("status" = Option<String>, Query, description = "Comma-separated statuses"),
        ("pipelineId" = Option<String>, Query, description = "Only this pipeline"),
        ("limit" = Option<u32>, Query, description = "1-1000, default 50"),
        ("offset" = Option<u32>, Query, description = "Rows to skip (slow on deep pages: prefer `cursor`)"),
        ("cursor" = Option<String>, Query, description = "Opaque: the `nextCursor` of the previous page; the page starts \
            after that job (keyset pagination: constant cost at any depth, stable while jobs are added). Not with `offset`.")),
    responses((status = 200, description = "A page of jobs: `jobs`, `total`, `limit`, `offset`, `hasMore`, and \
            `nextCursor` (the `cursor` of the next page, null on the last one)", body = Object),
        (status = 400, description = "Bad query", body = super::openapi::ErrorBody)))]
pub async fn list(State(state): State<AppState>, Query(q): Query<RawQuery>) -> Result<Response, ApiError> {
    query::only(&q, &["limit", "offset", "status", "pipelineId", "cursor"])?;
    let limit = query::int_in(&q, "limit", 1, 1000, 50)?;
    let offset = query::offset(&q)?;
    let after = query::cursor(&q)?;
    if after.is_some() && q.contains_key("offset") {
        return Err(ApiError::bad_request("INVALID_QUERY", "'cursor' and 'offset' cannot be combined: a cursor already says where the page starts"));
    }
    let statuses = query::statuses(&q)?;
    let pipeline_id = q.get("pipelineId").cloned().filter(|p| !p.is_empty());
    if let Some(p) = &pipeline_id
        && !state.queue.registry().is_supported(p) {
            return Err(ApiError::bad_request("UNKNOWN_PIPELINE", format!("Unknown pipeline: {p}")));
        }
    let page = state.queue.store().list_json(&JobFilter { pipeline_id, statuses, limit, offset, after }).await?;
    let has_more = page.next.is_some();
    // Hex digits: no JSON escaping needed.
    let next_cursor = page.next.map_or_else(|| "null".to_string(), |c| format!("\"{}\"", c.encode()));
    // The jobs arrive as JSON text from the store; the rest are numbers and a timestamp.
    let body = format!(
        "{{\"jobs\":{},\"total\":{},\"limit\":{limit},\"offset\":{offset},\"hasMore\":{has_more},\"nextCursor\":{next_cursor},\"timestamp\":\"{}\"}}",
        page.jobs,
        page.total,
        format_ts(&Utc::now())
    );
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// One job.
#[utoipa::path(get, path = "/api/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, description = "The job", body = crate::queue::job::Job),
        (status = 400, description = "Malformed id", body = super::openapi::ErrorBody),
        (status = 404, description = "No such job", body = super::openapi::ErrorBody)))]
pub async fn one(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Job>, ApiError> {
    check_id(&id)?;
    let job = state.queue.store().get(&id).await?;
    let job = job.ok_or_else(|| ApiError::not_found("JOB_NOT_FOUND", format!("Job not found: {id}")))?;
    Ok(Json(job))
}

/// Cancels a queued job at once or interrupts a running one.
#[utoipa::path(post, path = "/api/jobs/{id}/cancel", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, description = "The cancelled job", body = crate::queue::job::Job),
        (status = 404, description = "No such job", body = super::openapi::ErrorBody),
        (status = 409, description = "Job already finished", body = super::openapi::ErrorBody)))]
pub async fn cancel(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Job>, ApiError> {
    check_id(&id)?;
    let job = state.queue.cancel(&id).await?;
    Ok(Json(job))
}

/// Creates a new job with the parameters of a failed or cancelled one.
#[utoipa::path(post, path = "/api/jobs/{id}/retry", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 201, description = "The new job", body = Object),
        (status = 404, description = "No such job", body = super::openapi::ErrorBody),
        (status = 409, description = "Job is not failed or cancelled", body = super::openapi::ErrorBody)))]
pub async fn retry(State(state): State<AppState>, Path(id): Path<String>) -> Result<(StatusCode, Json<Value>), ApiError> {
    check_id(&id)?;
    let job = state.queue.retry(&id).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "jobId": job.id,
            "pipelineId": job.pipeline_id,
            "status": job.status,
            "retriedFrom": job.retried_from,
            "retryCount": job.retry_count,
            "timestamp": format_ts(&job.created_at),
        })),
    ))
}

/// What the guest logged and printed, in order.
#[utoipa::path(get, path = "/api/jobs/{id}/logs", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, description = "Log lines", body = Object),
        (status = 404, description = "No such job", body = super::openapi::ErrorBody)))]
pub async fn logs(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    check_id(&id)?;
    let job = state.queue.store().get(&id).await?;
    let job = job.ok_or_else(|| ApiError::not_found("JOB_NOT_FOUND", format!("Job not found: {id}")))?;
    let entries = state.queue.store().logs(&id).await?;
    let truncated = entries.iter().any(|e| e.stream == crate::store::LogStream::System && e.message.starts_with("log truncated"));
    Ok(Json(json!({
        "jobId": id,
        "status": job.status,
        "logs": entries,
        "truncated": truncated,
        "timestamp": format_ts(&Utc::now()),
    })))
}
