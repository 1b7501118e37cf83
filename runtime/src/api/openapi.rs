//! The OpenAPI description of the HTTP API, generated from the handlers'
//! `#[utoipa::path]` annotations and the types they use.

use axum::Json;
use axum::Router;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{OpenApi, ToSchema};

use super::AppState;

/// Body of a trigger request.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TriggerRequest {
    /// Parameters, validated against the pipeline's `paramsSchema`.
    pub parameters: Option<Value>,
}

/// Answer to a trigger.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TriggerResponse {
    /// `<pipelineId>-manual-<unix ms>`.
    pub job_id: String,
    /// Pipeline id.
    pub pipeline_id: String,
    /// Always `queued`.
    pub status: String,
    /// RFC 3339 creation time.
    pub timestamp: String,
}

/// Every error response.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// A message a person can act on.
    pub error: String,
    /// UPPER_SNAKE code.
    pub code: String,
}

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "AlephAuto", description = "Job-queue runtime running pipelines as sandboxed WASI components"),
    paths(
        super::pipelines::list, super::pipelines::trigger, super::pipelines::jobs,
        super::jobs::list, super::jobs::one, super::jobs::cancel, super::jobs::retry, super::jobs::logs,
        super::service::health, super::service::status, super::service::metrics,
    ),
    components(schemas(TriggerRequest, TriggerResponse, ErrorBody, crate::queue::job::Job)),
    tags((name = "pipelines"), (name = "jobs"), (name = "service")),
    modifiers(&ApiKeyScheme),
)]
pub struct ApiDoc;

/// Adds the API-key security scheme.
struct ApiKeyScheme;

impl utoipa::Modify for ApiKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("apiKey", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))));
    }
}

/// `GET /api/openapi.json`.
pub fn routes() -> Router<AppState> {
    Router::new().route("/api/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
}
