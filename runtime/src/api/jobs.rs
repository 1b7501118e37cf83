//! `/api/jobs`: listing, one job, cancel, retry and logs.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use chrono::Utc;
use serde_json::value::RawValue;

use super::AppState;
use super::error::{ApiError, ApiPath, ApiQuery, ErrorBody};
use super::openapi::{JobLogs, JobsPage, RetryResponse};
use super::query::{self, JobsQuery};
use crate::domain::{Job, SystemNote, format_ts, is_valid_job_id};
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

/// A 400 naming the rule unless `id` is a well-formed job id.
pub(super) fn check_id(id: &str) -> Result<(), ApiError> {
    if is_valid_job_id(id) {
        Ok(())
    } else {
        Err(ApiError::bad_request("INVALID_JOB_ID", "Job ids are 1-100 characters of A-Z, a-z, 0-9, '_' and '-'"))
    }
}

/// Jobs across pipelines, newest first.
#[utoipa::path(get, path = "/api/jobs", tag = "jobs", operation_id = "listJobs",
    params(JobsQuery),
    responses((status = 200, description = "A page of jobs", body = JobsPage),
        (status = 400, description = "Bad query: unknown parameter, limit/offset out of range, unknown status or pipeline, \
            or a cursor that is not 32 hex digits", body = ErrorBody),
        (status = 403, description = "Origin refused (not this server's, nor in server.allowed_origins)", body = ErrorBody),
        (status = 405, description = "Method not allowed", body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, ApiQuery(q): ApiQuery<JobsQuery>) -> Result<Json<JobsPage>, ApiError> {
    let limit = query::int_in(q.limit.as_deref(), "limit", 1, 1000, 50)?;
    let offset = query::offset(q.offset.as_deref())?;
    let after = query::cursor(q.cursor.as_deref())?;
    let statuses = query::statuses(q.status.as_deref())?;
    let pipeline_id = q.pipeline_id.filter(|p| !p.is_empty());
    if let Some(p) = &pipeline_id
        && !state.queue.has_pipeline(p)
    {
        return Err(ApiError::bad_request("UNKNOWN_PIPELINE", format!("Unknown pipeline: {p}")));
    }
    let page = state.queue.jobs_json(&JobFilter { pipeline_id, statuses, limit, offset, after }).await?;
    let has_more = page.next.is_some();
    let next_cursor = page.next.map(|c| c.encode());
    // The jobs arrive as JSON text from the store; embedding them raw avoids a parse and re-serialise.
    let jobs = RawValue::from_string(page.jobs).map_err(ApiError::internal)?;
    Ok(Json(JobsPage {
        jobs,
        total: page.total,
        limit,
        offset,
        has_more,
        next_cursor,
        timestamp: format_ts(&Utc::now()),
    }))
}

/// One job.
#[utoipa::path(get, path = "/api/jobs/{id}", tag = "jobs", operation_id = "getJob",
    params(("id" = String, Path, description = "Job id: 1-100 of A-Z, a-z, 0-9, '_', '-'")),
    responses((status = 200, description = "The job", body = Job),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 403, description = "Origin refused (not this server's, nor in server.allowed_origins)", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 405, description = "Method not allowed", body = ErrorBody)))]
pub async fn one(State(state): State<AppState>, ApiPath(id): ApiPath<String>) -> Result<Json<Job>, ApiError> {
    check_id(&id)?;
    let job = state.queue.job(&id).await?;
    let job = job.ok_or_else(|| ApiError::not_found("JOB_NOT_FOUND", format!("Job not found: {id}")))?;
    Ok(Json(job))
}

/// Cancels a queued job at once or interrupts a running one.
#[utoipa::path(post, path = "/api/jobs/{id}/cancel", tag = "jobs", operation_id = "cancelJob",
    params(("id" = String, Path, description = "Job id")),
    request_body(content = Object, content_type = "application/json",
        description = "`{}`: actions take a JSON body (a page cannot send one cross-origin without a preflight)"),
    security(("apiKey" = []), ("bearer" = [])),
    responses((status = 200, description = "The cancelled job", body = Job),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "API key missing", body = ErrorBody),
        (status = 403, description = "API key wrong, or Origin/Host refused", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 405, description = "Method not allowed", body = ErrorBody),
        (status = 409, description = "Job already finished", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "A body that is not application/json", body = ErrorBody),
        (status = 429, description = "Rate limited (see Retry-After)", body = ErrorBody)))]
pub async fn cancel(State(state): State<AppState>, ApiPath(id): ApiPath<String>) -> Result<Json<Job>, ApiError> {
    check_id(&id)?;
    let job = state.queue.cancel(&id).await?;
    Ok(Json(job))
}

/// Creates a new job with the parameters of a failed or cancelled one.
#[utoipa::path(post, path = "/api/jobs/{id}/retry", tag = "jobs", operation_id = "retryJob",
    params(("id" = String, Path, description = "Job id")),
    request_body(content = Object, content_type = "application/json",
        description = "`{}`: actions take a JSON body (a page cannot send one cross-origin without a preflight)"),
    security(("apiKey" = []), ("bearer" = [])),
    responses((status = 201, description = "The new job", body = RetryResponse),
        (status = 400, description = "Malformed id, or the parameters no longer pass the worker's schema", body = ErrorBody),
        (status = 401, description = "API key missing", body = ErrorBody),
        (status = 403, description = "API key wrong, or Origin/Host refused", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 405, description = "Method not allowed", body = ErrorBody),
        (status = 409, description = "Job is not failed or cancelled", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "A body that is not application/json", body = ErrorBody),
        (status = 429, description = "Queue full or rate limited (see Retry-After)", body = ErrorBody),
        (status = 503, description = "Worker cooling down, execution disabled or shutting down", body = ErrorBody)))]
pub async fn retry(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<RetryResponse>), ApiError> {
    check_id(&id)?;
    let job = state.queue.retry(&id).await?;
    Ok((
        StatusCode::CREATED,
        Json(RetryResponse {
            timestamp: format_ts(&job.created_at),
            job_id: job.id,
            pipeline_id: job.pipeline_id,
            status: job.status,
            retried_from: job.retried_from,
            retry_count: job.retry_count,
        }),
    ))
}

/// What the guest logged and printed, in order.
#[utoipa::path(get, path = "/api/jobs/{id}/logs", tag = "jobs", operation_id = "getJobLogs",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, description = "Log lines", body = JobLogs),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 403, description = "Origin refused (not this server's, nor in server.allowed_origins)", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 405, description = "Method not allowed", body = ErrorBody)))]
pub async fn logs(State(state): State<AppState>, ApiPath(id): ApiPath<String>) -> Result<Json<JobLogs>, ApiError> {
    check_id(&id)?;
    let job = state.queue.job(&id).await?;
    let job = job.ok_or_else(|| ApiError::not_found("JOB_NOT_FOUND", format!("Job not found: {id}")))?;
    let logs = state.queue.logs(&id).await?;
    let truncated = logs.iter().any(|e| matches!(e.note(), Some(SystemNote::Truncated { .. })));
    Ok(Json(JobLogs { job_id: id, status: job.status, logs, truncated, timestamp: format_ts(&Utc::now()) }))
}
