//! `/api/runs` and `POST /api/pipelines/{id}/runs`: fan-out runs over inventories, their
//! aggregate and jobs, and cancel. The wire copies of `runs` types live here.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ApiPath, ApiQuery, ErrorBody};
use super::query;
use crate::domain::{JobStatus, format_ts, is_valid_job_id};
use crate::runs::model::{RunState, RunSummary};
use crate::runs::{RunDetail, RunError, StartRun};
use crate::store::runs::{RunCounts, TargetRecord};

/// Routes of runs.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/pipelines/{id}/runs", post(start))
        .route("/api/runs", get(list))
        .route("/api/runs/{id}", get(one))
        .route("/api/runs/{id}/cancel", post(cancel))
}

impl From<RunError> for ApiError {
    fn from(e: RunError) -> Self {
        let message = e.to_string();
        match e {
            RunError::Trigger(t) => t.into(),
            RunError::UnknownInventory(_) => ApiError::not_found("UNKNOWN_INVENTORY", message),
            RunError::NotFound(_) => ApiError::not_found("RUN_NOT_FOUND", message),
            RunError::Invalid { .. } => ApiError::bad_request("INVALID_REQUEST", message),
            RunError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "CONFLICT", message),
            RunError::Targets { .. } => ApiError::bad_request("INVENTORY_UNRESOLVED", message),
            RunError::Store(s) => s.into(),
        }
    }
}

/// Body of `POST /api/pipelines/{id}/runs`. Any other key is refused.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StartRunRequest {
    /// Inventory whose targets get one job each.
    pub inventory: String,
    /// Parameters shared by every job (checked per job like a trigger's).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Value>,
    /// The parameter each target's path goes into; default: the pipeline's only top-level
    /// `x-alephauto-path` parameter (400 naming the choices when it has several).
    #[serde(default)]
    pub path_parameter: Option<String>,
    /// A repeated key returns the run started with it (200) instead of starting another.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200)]
    pub dedupe_key: Option<String>,
}

/// A run's targets by outcome.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunCountsDto {
    /// Jobs waiting.
    pub queued: u32,
    /// Jobs running.
    pub running: u32,
    /// Jobs completed.
    pub completed: u32,
    /// Jobs failed.
    pub failed: u32,
    /// Jobs cancelled.
    pub cancelled: u32,
    /// Targets refused at trigger (outside the roots, queue full...): never run.
    pub refused: u32,
    /// Jobs pruned by retention since.
    pub missing: u32,
}

impl From<RunCounts> for RunCountsDto {
    fn from(c: RunCounts) -> Self {
        let RunCounts { queued, running, completed, failed, cancelled, refused, missing } = c;
        Self { queued, running, completed, failed, cancelled, refused, missing }
    }
}

/// A run with its aggregate.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunDto {
    /// `run-<pipeline>-<unix ms>-<hex>`.
    pub id: String,
    /// Pipeline of every job.
    pub pipeline_id: String,
    /// Inventory of the targets.
    pub inventory: String,
    /// Parameters shared by every job.
    #[schema(value_type = Object)]
    pub parameters: Value,
    /// The parameter each target's path went into.
    pub path_parameter: String,
    /// `api`, `cli`, `schedule:<id>`.
    pub triggered_by: String,
    /// Aggregate state.
    pub status: RunState,
    /// Targets finished (any outcome) per hundred.
    #[schema(minimum = 0, maximum = 100)]
    pub percent: u8,
    /// Targets in all.
    pub total: u32,
    /// Targets by outcome.
    pub counts: RunCountsDto,
    /// Discovery hit a budget: the inventory had more targets.
    pub truncated: bool,
    /// RFC 3339 start time.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// RFC 3339 time every target had its job (null while starting).
    #[schema(format = DateTime)]
    pub started_at: Option<String>,
    /// RFC 3339 cancel time.
    #[schema(format = DateTime)]
    pub cancelled_at: Option<String>,
}

impl From<RunSummary> for RunDto {
    fn from(s: RunSummary) -> Self {
        let total =
            s.record.target_count.max(crate::runs::model::finished(&s.counts) + s.counts.queued + s.counts.running);
        let r = s.record;
        Self {
            id: r.id,
            pipeline_id: r.pipeline_id,
            inventory: r.inventory,
            parameters: r.parameters,
            path_parameter: r.path_parameter,
            triggered_by: r.triggered_by,
            status: s.state,
            percent: s.percent,
            total,
            counts: s.counts.into(),
            truncated: r.truncated,
            created_at: format_ts(&r.created_at),
            started_at: r.started_at.as_ref().map(format_ts),
            cancelled_at: r.cancelled_at.as_ref().map(format_ts),
        }
    }
}

/// One target of a run.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunTargetDto {
    /// The target path.
    pub path: String,
    /// Its job (null when refused).
    pub job_id: Option<String>,
    /// The job's status (null when refused or pruned).
    pub status: Option<JobStatus>,
    /// Why no job was created.
    pub refused: Option<String>,
    /// RFC 3339 time the job finished.
    #[schema(format = DateTime)]
    pub completed_at: Option<String>,
}

impl From<TargetRecord> for RunTargetDto {
    fn from(t: TargetRecord) -> Self {
        Self {
            path: t.path,
            job_id: t.job_id,
            status: t.status,
            refused: t.refused,
            completed_at: t.completed_at.as_ref().map(format_ts),
        }
    }
}

/// A run with its targets.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunDetailDto {
    /// The run.
    pub run: RunDto,
    /// Its targets in order, each with its job.
    pub targets: Vec<RunTargetDto>,
    /// RFC 3339 time of the answer.
    #[schema(format = DateTime)]
    pub timestamp: String,
}

impl From<RunDetail> for RunDetailDto {
    fn from(d: RunDetail) -> Self {
        Self {
            run: d.summary.into(),
            targets: d.targets.into_iter().map(Into::into).collect(),
            timestamp: format_ts(&Utc::now()),
        }
    }
}

/// `GET /api/runs`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunsPage {
    /// Newest first.
    pub runs: Vec<RunDto>,
    /// Runs matching in all.
    pub total: u64,
    /// Whether more pages follow.
    pub has_more: bool,
    /// RFC 3339 time of the answer.
    #[schema(format = DateTime)]
    pub timestamp: String,
}

/// Query of `GET /api/runs`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// Only this pipeline's runs.
    pub pipeline_id: Option<String>,
    /// Page size, 1-100 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// Rows to skip (default 0).
    #[param(value_type = Option<u32>, minimum = 0, maximum = 4294967295u64)]
    pub offset: Option<String>,
}

fn check_run_id(id: &str) -> Result<(), ApiError> {
    if is_valid_job_id(id) {
        Ok(())
    } else {
        Err(ApiError::bad_request("INVALID_RUN_ID", "Run ids are 1-100 characters of A-Z, a-z, 0-9, '_' and '-'"))
    }
}

/// Starts a run: one job per target of an inventory, through the pipeline's queue.
#[utoipa::path(post, path = "/api/pipelines/{id}/runs", tag = "runs", operation_id = "startRun",
    params(("id" = String, Path, description = "Pipeline id")),
    request_body(content = StartRunRequest, content_type = "application/json"),
    security(("apiKey" = []), ("bearer" = [])),
    responses(
        (status = 201, description = "Run started; targets refused at trigger are listed with `refused`", body = RunDetailDto),
        (status = 200, description = "The dedupe key named an existing run, returned as it stands", body = RunDetailDto),
        (status = 400, description = "Unknown pipeline or inventory, malformed body, a bad `pathParameter`, or an inventory whose targets cannot be resolved (the message names the field)", body = ErrorBody),
        (status = 401, description = "API key missing", body = ErrorBody),
        (status = 403, description = "API key wrong, or Origin/Host refused", body = ErrorBody),
        (status = 405, description = "Method not allowed", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not application/json", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 503, description = "Worker cooling down, failed to load, execution disabled or shutting down", body = ErrorBody)))]
pub async fn start(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<RunDetailDto>), ApiError> {
    state.queue.pipeline(&id)?;
    let req: StartRunRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("INVALID_BODY", format!("Invalid run request: {e}")))?;
    if req.dedupe_key.as_ref().is_some_and(|k| k.is_empty() || k.len() > 200) {
        return Err(ApiError::bad_request("INVALID_BODY", "'dedupeKey' must be 1 to 200 characters"));
    }
    let start = StartRun {
        pipeline: id,
        inventory: req.inventory,
        parameters: req.parameters.unwrap_or(Value::Null),
        path_parameter: req.path_parameter,
        triggered_by: "api".into(),
        dedupe_key: req.dedupe_key,
    };
    let (detail, created) = state.runs.start(start).await.map_err(|e| match e {
        // In a body, an unknown inventory is a bad field, not a missing resource.
        RunError::UnknownInventory(name) => {
            ApiError::bad_request("UNKNOWN_INVENTORY", format!("Invalid 'inventory': no inventory named {name:?}"))
        }
        other => other.into(),
    })?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(detail.into())))
}

/// Runs, newest first, each with its aggregate state and progress.
#[utoipa::path(get, path = "/api/runs", tag = "runs", operation_id = "listRuns",
    params(RunsQuery),
    responses((status = 200, description = "A page of runs", body = RunsPage),
        (status = 400, description = "Bad query: unknown parameter, limit/offset out of range, unknown pipeline", body = ErrorBody),
        (status = 403, description = "Origin refused (not this server's, nor in server.allowed_origins)", body = ErrorBody),
        (status = 405, description = "Method not allowed", body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, ApiQuery(q): ApiQuery<RunsQuery>) -> Result<Json<RunsPage>, ApiError> {
    let limit = query::int_in(q.limit.as_deref(), "limit", 1, 100, 20)?;
    let offset = query::offset(q.offset.as_deref())?;
    let pipeline = q.pipeline_id.filter(|p| !p.is_empty());
    if let Some(p) = &pipeline
        && !state.queue.has_pipeline(p)
    {
        return Err(ApiError::bad_request("UNKNOWN_PIPELINE", format!("Unknown pipeline: {p}")));
    }
    let (runs, total) = state.runs.list(pipeline.as_deref(), limit, offset).await?;
    let has_more = u64::from(offset) + (runs.len() as u64) < total;
    Ok(Json(RunsPage {
        runs: runs.into_iter().map(Into::into).collect(),
        total,
        has_more,
        timestamp: format_ts(&Utc::now()),
    }))
}

/// One run with its targets and their jobs.
#[utoipa::path(get, path = "/api/runs/{id}", tag = "runs", operation_id = "getRun",
    params(("id" = String, Path, description = "Run id")),
    responses((status = 200, description = "The run", body = RunDetailDto),
        (status = 400, description = "Malformed run id", body = ErrorBody),
        (status = 403, description = "Origin refused (not this server's, nor in server.allowed_origins)", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 405, description = "Method not allowed", body = ErrorBody)))]
pub async fn one(State(state): State<AppState>, ApiPath(id): ApiPath<String>) -> Result<Json<RunDetailDto>, ApiError> {
    check_run_id(&id)?;
    Ok(Json(state.runs.detail(&id).await?.into()))
}

/// Cancels a run: its queued and running jobs are cancelled and no more are created.
#[utoipa::path(post, path = "/api/runs/{id}/cancel", tag = "runs", operation_id = "cancelRun",
    params(("id" = String, Path, description = "Run id")),
    request_body(content = Object, content_type = "application/json",
        description = "`{}`: actions take a JSON body (a page cannot send one cross-origin without a preflight)"),
    security(("apiKey" = []), ("bearer" = [])),
    responses((status = 200, description = "The run after the cancel (cancelling twice changes nothing)", body = RunDetailDto),
        (status = 400, description = "Malformed run id", body = ErrorBody),
        (status = 401, description = "API key missing", body = ErrorBody),
        (status = 403, description = "API key wrong, or Origin/Host refused", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 405, description = "Method not allowed", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not application/json", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<RunDetailDto>, ApiError> {
    check_run_id(&id)?;
    Ok(Json(state.runs.cancel(&id).await?.into()))
}
