//! The OpenAPI description of the HTTP API, generated from the handlers'
//! `#[utoipa::path]` annotations and the response types below. Every JSON body the
//! API sends is one of these types (or `Job` / `ErrorBody`), so the document and the
//! wire cannot drift apart. The served document also lists the configured pipeline
//! ids as the `enum` of every pipeline-id parameter.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use utoipa::{OpenApi, ToSchema};

use super::AppState;
pub use super::error::ErrorBody;
use crate::domain::{Job, JobStatus, LogEntry};

/// Pattern of a job id (`domain::is_valid_job_id`).
const JOB_ID_PATTERN: &str = "^[A-Za-z0-9_-]{1,100}$";
/// Pattern of an inventory name (`config::inventory::is_valid_name`).
const INVENTORY_NAME_PATTERN: &str = "^[a-z0-9][a-z0-9-]{0,62}$";
/// Pattern of a schedule id (`schedule::spec::is_valid_schedule_id`).
const SCHEDULE_ID_PATTERN: &str = "^[A-Za-z0-9_-]{1,40}$";

/// Body of a trigger request. Any other top-level key is refused.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerRequest {
    /// Parameters, validated against the pipeline's `paramsSchema` (an object; omit it for none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub parameters: Option<serde_json::Map<String, Value>>,
    /// Pins a registered worker version (`GET /api/pipelines/{id}/versions`); omitted: the
    /// active version. An unknown version is a 404 `UNKNOWN_VERSION`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Answer to a trigger.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TriggerResponse {
    /// `<pipelineId>-manual-<unix ms>[-n]`.
    pub job_id: String,
    /// Pipeline id.
    pub pipeline_id: String,
    /// Always `queued`.
    pub status: JobStatus,
    /// RFC 3339 creation time.
    #[schema(format = DateTime)]
    pub timestamp: String,
}

/// Answer to a retry: the new job.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryResponse {
    /// `<pipelineId>-retry-<unix ms>[-n]`.
    pub job_id: String,
    /// Pipeline id.
    pub pipeline_id: String,
    /// Always `queued`.
    pub status: JobStatus,
    /// The job this one retries.
    pub retried_from: Option<String>,
    /// How many manual retries led to this job.
    pub retry_count: u32,
    /// RFC 3339 creation time.
    #[schema(format = DateTime)]
    pub timestamp: String,
}

/// State of a pipeline as listed.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PipelineState {
    /// Nothing running.
    Idle,
    /// At least one job running.
    Running,
    /// The worker's circuit breaker is open.
    Cooldown,
    /// Disabled by configuration.
    Disabled,
}

/// One pipeline in `GET /api/pipelines`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineSummary {
    /// Pipeline id.
    pub id: String,
    /// Display name (the worker's, or the id before the worker loaded).
    pub name: String,
    /// What it does, when the worker loaded.
    pub description: Option<String>,
    /// Worker version, when loaded.
    pub version: Option<String>,
    /// Current state.
    pub status: PipelineState,
    /// Whether the worker is compiled and initialised.
    pub worker_loaded: bool,
    /// Where the worker's loading stands.
    #[schema(value_type = String, example = "ready", pattern = "^(ready|initialising|failed|not_loaded)$")]
    pub state: String,
    /// Jobs queued.
    pub queued: u64,
    /// Jobs running.
    pub running: u64,
    /// Jobs completed.
    pub completed: u64,
    /// Jobs failed.
    pub failed: u64,
    /// Jobs cancelled.
    pub cancelled: u64,
    /// Jobs that may run at once.
    pub max_concurrent: u64,
    /// RFC 3339 time the last job finished.
    #[schema(format = DateTime)]
    pub last_run: Option<String>,
    /// The worker's JSON Schema for `parameters`, when loaded.
    #[schema(value_type = Option<Object>)]
    pub params_schema: Option<Value>,
    /// Whether the git workflow (branch, commit, pull request) wraps its jobs.
    pub git_workflow: bool,
    /// Why the worker last failed to load.
    pub last_error: Option<String>,
}

/// `GET /api/pipelines`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PipelineList {
    /// Every configured pipeline.
    pub pipelines: Vec<PipelineSummary>,
    /// RFC 3339 time of the answer.
    #[schema(format = DateTime)]
    pub timestamp: String,
}

/// `GET /api/pipelines/{id}/jobs`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineJobsPage {
    /// Pipeline id.
    pub pipeline_id: String,
    /// Newest first.
    pub jobs: Vec<Job>,
    /// Jobs matching the filter in all.
    pub total: u64,
    /// Whether more pages follow.
    pub has_more: bool,
    /// RFC 3339 time of the answer.
    #[schema(format = DateTime)]
    pub timestamp: String,
}

/// `GET /api/jobs`. The jobs arrive already serialised from the store (`JobStore::list_json`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobsPage {
    /// Newest first.
    #[schema(value_type = Vec<Job>)]
    pub jobs: Box<RawValue>,
    /// Jobs matching the filter in all.
    pub total: u64,
    /// Page size asked for.
    pub limit: u32,
    /// Rows skipped.
    pub offset: u32,
    /// Whether more pages follow.
    pub has_more: bool,
    /// The `cursor` of the next page (keyset pagination), null on the last one.
    pub next_cursor: Option<String>,
    /// RFC 3339 time of the answer.
    #[schema(format = DateTime)]
    pub timestamp: String,
}

/// `GET /api/jobs/{id}/logs`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobLogs {
    /// Job id.
    pub job_id: String,
    /// The job's status.
    pub status: JobStatus,
    /// What the guest logged and printed, in order.
    pub logs: Vec<LogEntry>,
    /// Whether the log hit `runtime.max_log_bytes` and was cut.
    pub truncated: bool,
    /// RFC 3339 time of the answer.
    #[schema(format = DateTime)]
    pub timestamp: String,
}

/// `GET /health`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// Always `healthy`.
    pub status: String,
    /// Server version.
    pub version: String,
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// RFC 3339 time of the answer.
    #[schema(format = DateTime)]
    pub timestamp: String,
}

/// One pipeline's load in `GET /api/status`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineLoad {
    /// Pipeline id.
    pub id: String,
    /// Jobs running.
    pub running: u64,
    /// Jobs queued.
    pub queued: u64,
    /// Whether the worker is loaded.
    pub worker_loaded: bool,
    /// Whether its circuit breaker is open.
    pub cooling_down: bool,
}

/// Queue totals in `GET /api/status`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QueueSummary {
    /// Jobs running.
    pub active: u64,
    /// Jobs queued.
    pub queued: u64,
    /// Jobs that may run at once, over all pipelines.
    pub capacity: u64,
}

/// `GET /api/status`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    /// Per-pipeline load.
    pub pipelines: Vec<PipelineLoad>,
    /// Totals.
    pub queue: QueueSummary,
    /// Running jobs (up to 100).
    pub active_jobs: Vec<Job>,
    /// Queued jobs (up to 100).
    pub queued_jobs: Vec<Job>,
    /// The last 20 finished jobs.
    pub recent_activity: Vec<Job>,
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// RFC 3339 time of the answer.
    #[schema(format = DateTime)]
    pub timestamp: String,
}

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "AlephAuto", description = "Job-queue runtime running pipelines as sandboxed WASI components. \
        Every error is `ErrorBody` with an UPPER_SNAKE `code`. With an API key configured, mutating operations \
        and `/ws` need `X-API-Key` or `Authorization: Bearer`."),
    paths(
        super::pipelines::list, super::pipelines::trigger, super::pipelines::jobs,
        super::versions::deploy, super::versions::list, super::versions::rollback,
        super::jobs::list, super::jobs::one, super::jobs::cancel, super::jobs::retry, super::jobs::logs,
        super::artifacts::list, super::artifacts::download, super::artifacts::reports,
        super::webhooks::hooks, super::webhooks::deliveries, super::webhooks::delivery, super::webhooks::redeliver,
        super::service::health, super::service::status, super::service::metrics, ws_doc,
        super::runs::start, super::runs::list, super::runs::one, super::runs::cancel,
        super::inventories::list, super::inventories::create, super::inventories::one, super::inventories::remove,
        super::schedules::list, super::schedules::create, super::schedules::one, super::schedules::replace,
        super::schedules::remove, super::schedules::pause_doc, super::schedules::resume_doc,
        super::schedules::run_doc,
    ),
    components(schemas(ErrorBody, Job, LogEntry)),
    tags(
        (name = "pipelines"), (name = "jobs"), (name = "schedules"), (name = "runs"), (name = "artifacts"),
        (name = "webhooks"), (name = "service")
    ),
    modifiers(&Security),
)]
pub struct ApiDoc;

/// `GET /ws`: documented here, served by `api::ws`.
#[utoipa::path(get, path = "/ws", tag = "service", operation_id = "websocket",
    description = "WebSocket upgrade for the live event feed (see the API contract for the messages).",
    security(("apiKey" = []), ("bearer" = [])),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket upgrade request", body = ErrorBody),
        (status = 401, description = "API key missing", body = ErrorBody),
        (status = 403, description = "API key wrong, or Origin/Host refused", body = ErrorBody),
        (status = 405, description = "Method not allowed", body = ErrorBody),
        (status = 426, description = "Upgrade required", body = ErrorBody)))]
#[allow(dead_code)]
fn ws_doc() {}

/// Adds the API-key security schemes (header and bearer).
struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("apiKey", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))));
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document as served: `ApiDoc` with the configured pipeline ids as the `enum`
/// of every pipeline-id parameter.
pub fn document(pipeline_ids: &[String]) -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or(Value::Null);
    let ids: Vec<Value> = pipeline_ids.iter().cloned().map(Value::String).collect();
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else { continue };
            for op in item.values_mut() {
                // The edge layers answer these on every route (`api::edge`).
                if let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) {
                    for (status, description) in [
                        ("408", "The request took longer than server.request_timeout_secs"),
                        ("421", "The Host header names neither this server nor server.allowed_hosts"),
                    ] {
                        responses.entry(status).or_insert_with(|| {
                            serde_json::json!({"description": description, "content": {"application/json": {
                                "schema": {"$ref": "#/components/schemas/ErrorBody"}}}})
                        });
                    }
                }
                let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) else { continue };
                for p in params {
                    let is_pipeline =
                        (path.starts_with("/api/pipelines/{id}") && p["name"] == "id" && p["in"] == "path")
                            || (p["name"] == "pipelineId" && p["in"] == "query");
                    if is_pipeline && !ids.is_empty() {
                        p["schema"] = serde_json::json!({"type": "string", "enum": ids});
                    }
                    if path.starts_with("/api/runs/{id}") && p["name"] == "id" && p["in"] == "path" {
                        p["schema"] = serde_json::json!({"type": "string", "pattern": JOB_ID_PATTERN});
                    }
                    if path.starts_with("/api/inventories/{name}") && p["name"] == "name" && p["in"] == "path" {
                        p["schema"] = serde_json::json!({"type": "string", "pattern": INVENTORY_NAME_PATTERN});
                    }
                    if path.starts_with("/api/jobs/{id}") && p["name"] == "id" && p["in"] == "path" {
                        p["schema"] = serde_json::json!({"type": "string", "pattern": JOB_ID_PATTERN});
                    }
                    if path.starts_with("/api/schedules/{id}") && p["name"] == "id" && p["in"] == "path" {
                        p["schema"] = serde_json::json!({"type": "string", "pattern": SCHEDULE_ID_PATTERN});
                    }
                }
            }
        }
    }
    doc
}

/// `GET /api/openapi.json`.
pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/api/openapi.json",
        get(|State(state): State<AppState>| async move { Json(document(&state.queue.pipeline_ids())) }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_ids_are_unique_and_mutations_carry_security() {
        let doc = document(&["a".into(), "b".into()]);
        let mut ids = std::collections::HashSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no operationId"));
                assert!(ids.insert(id.to_string()), "operationId {id} twice");
                if method == "post" || path == "/ws" {
                    assert!(
                        op["security"].as_array().is_some_and(|s| !s.is_empty()),
                        "{method} {path} has no security"
                    );
                }
            }
        }
        let trigger = &doc["paths"]["/api/pipelines/{id}/trigger"]["post"];
        assert_eq!(trigger["parameters"][0]["schema"]["enum"], serde_json::json!(["a", "b"]));
    }
}
