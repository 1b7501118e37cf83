//! `/api/schedules`: list, create, get, replace, delete, pause, resume and run now. The
//! handlers hold the `Schedules` handle only; every refusal names its field or state.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ApiPath, ErrorBody};
use crate::domain::format_ts;
use crate::schedule::spec::ScheduleInput;
use crate::schedule::{ScheduleError, ScheduleView, Schedules};

/// Routes under `/api/schedules`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/schedules", get(list).post(create))
        .route("/api/schedules/{id}", get(one).put(replace).delete(remove))
        .route("/api/schedules/{id}/pause", post(pause))
        .route("/api/schedules/{id}/resume", post(resume))
        .route("/api/schedules/{id}/run", post(run_now))
}

/// Every schedule.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleList {
    /// By id.
    pub schedules: Vec<ScheduleView>,
    /// RFC 3339 time of the answer.
    #[schema(format = DateTime)]
    pub timestamp: String,
}

/// Answer to run now.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunNowResponse {
    /// The schedule.
    pub schedule_id: String,
    /// The job (or run) created.
    pub job_id: String,
    /// RFC 3339 time of the answer.
    #[schema(format = DateTime)]
    pub timestamp: String,
}

impl From<ScheduleError> for ApiError {
    fn from(e: ScheduleError) -> Self {
        let message = e.to_string();
        match e {
            ScheduleError::NotFound(_) => ApiError::not_found("SCHEDULE_NOT_FOUND", message),
            ScheduleError::Invalid(_) => ApiError::bad_request("INVALID_SCHEDULE", message),
            ScheduleError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "SCHEDULE_CONFLICT", message),
            ScheduleError::Refused(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "TRIGGER_REFUSED", message),
            ScheduleError::Store(s) => s.into(),
        }
    }
}

fn schedules(state: &AppState) -> Result<&Schedules, ApiError> {
    Ok(&state.schedules)
}

fn parse_body(headers: &HeaderMap, body: &Bytes) -> Result<ScheduleInput, ApiError> {
    // POST is checked by the edge (`require_json`); PUT is held to the same rule here.
    let media = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !media.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "Expected request with `Content-Type: application/json`",
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("INVALID_SCHEDULE", format!("Malformed schedule: {e}")))
}

/// Every schedule with its next fire times, last fire, last job and its outcome.
#[utoipa::path(get, path = "/api/schedules", tag = "schedules", operation_id = "listSchedules",
    responses((status = 200, description = "The schedules", body = ScheduleList),
        (status = 403, description = "Origin refused (not this server's, nor in server.allowed_origins)", body = ErrorBody),
        (status = 405, description = "Method not allowed", body = ErrorBody)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<ScheduleList>, ApiError> {
    let schedules = schedules(&state)?.list().await?;
    Ok(Json(ScheduleList { schedules, timestamp: format_ts(&Utc::now()) }))
}

/// Creates a schedule.
#[utoipa::path(post, path = "/api/schedules", tag = "schedules", operation_id = "createSchedule",
    request_body(content = ScheduleInput, content_type = "application/json"),
    security(("apiKey" = []), ("bearer" = [])),
    responses((status = 201, description = "The new schedule", body = ScheduleView),
        (status = 400, description = "A field is wrong: id, pipelineId, cron, timezone, parameters or inventory (the message names it)", body = ErrorBody),
        (status = 401, description = "API key missing", body = ErrorBody),
        (status = 403, description = "API key wrong, or Origin/Host refused", body = ErrorBody),
        (status = 405, description = "Method not allowed", body = ErrorBody),
        (status = 409, description = "A schedule with this id exists", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not application/json", body = ErrorBody),
        (status = 429, description = "Rate limited (see Retry-After)", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<ScheduleView>), ApiError> {
    let input = parse_body(&headers, &body)?;
    let view = schedules(&state)?.create(input).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// One schedule.
#[utoipa::path(get, path = "/api/schedules/{id}", tag = "schedules", operation_id = "getSchedule",
    params(("id" = String, Path, description = "Schedule id: 1-40 of A-Z, a-z, 0-9, '_', '-'")),
    responses((status = 200, description = "The schedule", body = ScheduleView),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 403, description = "Origin refused (not this server's, nor in server.allowed_origins)", body = ErrorBody),
        (status = 404, description = "No such schedule", body = ErrorBody),
        (status = 405, description = "Method not allowed", body = ErrorBody)))]
pub async fn one(State(state): State<AppState>, ApiPath(id): ApiPath<String>) -> Result<Json<ScheduleView>, ApiError> {
    Ok(Json(schedules(&state)?.get(&id).await?))
}

/// Replaces a schedule made over the API (the configuration's are edited in the file).
#[utoipa::path(put, path = "/api/schedules/{id}", tag = "schedules", operation_id = "replaceSchedule",
    params(("id" = String, Path, description = "Schedule id")),
    request_body(content = ScheduleInput, content_type = "application/json"),
    security(("apiKey" = []), ("bearer" = [])),
    responses((status = 200, description = "The schedule", body = ScheduleView),
        (status = 400, description = "Malformed id, or a field is wrong (the message names it)", body = ErrorBody),
        (status = 401, description = "API key missing", body = ErrorBody),
        (status = 403, description = "API key wrong, or Origin/Host refused", body = ErrorBody),
        (status = 404, description = "No such schedule", body = ErrorBody),
        (status = 405, description = "Method not allowed", body = ErrorBody),
        (status = 409, description = "The schedule comes from the configuration file", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not application/json", body = ErrorBody),
        (status = 429, description = "Rate limited (see Retry-After)", body = ErrorBody)))]
pub async fn replace(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ScheduleView>, ApiError> {
    let schedules = schedules(&state)?;
    schedules.get(&id).await?;
    let input = parse_body(&headers, &body)?;
    Ok(Json(schedules.update(&id, input).await?))
}

/// Deletes a schedule made over the API.
#[utoipa::path(delete, path = "/api/schedules/{id}", tag = "schedules", operation_id = "deleteSchedule",
    params(("id" = String, Path, description = "Schedule id")),
    security(("apiKey" = []), ("bearer" = [])),
    responses((status = 204, description = "Deleted"),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "API key missing", body = ErrorBody),
        (status = 403, description = "API key wrong, or Origin/Host refused", body = ErrorBody),
        (status = 404, description = "No such schedule", body = ErrorBody),
        (status = 405, description = "Method not allowed", body = ErrorBody),
        (status = 409, description = "The schedule comes from the configuration file", body = ErrorBody),
        (status = 429, description = "Rate limited (see Retry-After)", body = ErrorBody)))]
pub async fn remove(State(state): State<AppState>, ApiPath(id): ApiPath<String>) -> Result<StatusCode, ApiError> {
    schedules(&state)?.delete(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

macro_rules! action_doc {
    ($fn:ident, $path:literal, $op:literal, $what:literal, $ok:literal, $body:ident) => {
        #[doc = $what]
        #[utoipa::path(post, path = $path, tag = "schedules", operation_id = $op,
            params(("id" = String, Path, description = "Schedule id")),
            request_body(content = Object, content_type = "application/json",
                description = "`{}`: actions take a JSON body (a page cannot send one cross-origin without a preflight)"),
            security(("apiKey" = []), ("bearer" = [])),
            responses((status = 200, description = $ok, body = $body),
                (status = 400, description = "Malformed id", body = ErrorBody),
                (status = 401, description = "API key missing", body = ErrorBody),
                (status = 403, description = "API key wrong, or Origin/Host refused", body = ErrorBody),
                (status = 404, description = "No such schedule", body = ErrorBody),
                (status = 405, description = "Method not allowed", body = ErrorBody),
                (status = 413, description = "Body too large", body = ErrorBody),
                (status = 415, description = "Body is not application/json", body = ErrorBody),
                (status = 429, description = "Rate limited (see Retry-After)", body = ErrorBody),
                (status = 503, description = "The trigger was refused (queue full, pipeline disabled, shutting down)", body = ErrorBody)))]
        #[allow(dead_code)]
        fn $fn() {}
    };
}

action_doc!(
    pause_doc,
    "/api/schedules/{id}/pause",
    "pauseSchedule",
    "Pauses a schedule.",
    "The schedule",
    ScheduleView
);
action_doc!(
    resume_doc,
    "/api/schedules/{id}/resume",
    "resumeSchedule",
    "Resumes a schedule (no catch-up).",
    "The schedule",
    ScheduleView
);
action_doc!(
    run_doc,
    "/api/schedules/{id}/run",
    "runSchedule",
    "Triggers the schedule's job now.",
    "The job created",
    RunNowResponse
);

/// `POST /api/schedules/{id}/pause`.
pub async fn pause(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    Ok(Json(schedules(&state)?.pause(&id).await?))
}

/// `POST /api/schedules/{id}/resume`.
pub async fn resume(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    Ok(Json(schedules(&state)?.resume(&id).await?))
}

/// `POST /api/schedules/{id}/run`.
pub async fn run_now(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<RunNowResponse>, ApiError> {
    let job_id = schedules(&state)?.run_now(&id).await?;
    Ok(Json(RunNowResponse { schedule_id: id, job_id, timestamp: format_ts(&Utc::now()) }))
}
