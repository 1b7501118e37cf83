//! Worker versions over HTTP: deploy a component to a running pipeline
//! (`PUT /api/pipelines/{id}/component`, the one route that takes `application/wasm`),
//! list the registered versions, roll back.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ApiPath, ErrorBody};
use crate::domain::format_ts;
use crate::registry::RegistryError;
use crate::registry::versions::VersionInfo;
use crate::registry::worker::json_type;

/// The path of the upload route (the edge lets `application/wasm` through here only).
pub const COMPONENT_ROUTE: &str = "/api/pipelines/{id}/component";
/// The media type of a component upload.
pub const WASM_MEDIA_TYPE: &str = "application/wasm";

/// Routes of worker versions; uploads are capped at `max_component_bytes`.
pub fn routes(max_component_bytes: usize) -> Router<AppState> {
    Router::new()
        .route(COMPONENT_ROUTE, put(deploy).layer(DefaultBodyLimit::max(max_component_bytes)))
        .route("/api/pipelines/{id}/versions", get(list))
        .route("/api/pipelines/{id}/rollback", post(rollback))
}

/// A component's bytes, as uploaded.
#[derive(Debug, ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct ComponentBytes(pub Vec<u8>);

/// A registered version, as answered by deploy and rollback.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionChange {
    /// Pipeline id.
    pub pipeline_id: String,
    /// The version now active (what the worker's `describe` reports).
    pub version: String,
    /// SHA-256 of its component (hex).
    pub digest: String,
    /// False when the component was registered already and only re-activated.
    pub new: bool,
    /// RFC 3339 time of the answer.
    #[schema(format = DateTime)]
    pub timestamp: String,
}

/// A pipeline's registered versions.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionList {
    /// Pipeline id.
    pub pipeline_id: String,
    /// Digest of the active version (null before the worker was first loaded).
    pub active: Option<String>,
    /// Oldest first.
    pub versions: Vec<VersionInfo>,
    /// RFC 3339 time of the answer.
    #[schema(format = DateTime)]
    pub timestamp: String,
}

/// Body of a rollback: a version to go back to, or none for the one before the active one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// A registered version (as `describe` reports it).
    pub version: Option<String>,
}

/// Deploys a component: it is compiled, described and initialised before it takes a job;
/// jobs already triggered finish on the version they were triggered on.
#[utoipa::path(put, path = "/api/pipelines/{id}/component", tag = "pipelines", operation_id = "deployComponent",
    params(("id" = String, Path, description = "Pipeline id")),
    request_body(content = ComponentBytes, content_type = "application/wasm",
        description = "The component's bytes (a WASI 0.2 component targeting the alephauto:worker world), at most server.max_component_bytes"),
    security(("apiKey" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "That component was registered already; it is active again", body = VersionChange),
        (status = 201, description = "Deployed: the new version takes new jobs", body = VersionChange),
        (status = 400, description = "Unknown pipeline", body = ErrorBody),
        (status = 401, description = "API key missing", body = ErrorBody),
        (status = 403, description = "API key wrong, or Origin/Host refused", body = ErrorBody),
        (status = 405, description = "Method not allowed", body = ErrorBody),
        (status = 413, description = "Larger than server.max_component_bytes", body = ErrorBody),
        (status = 415, description = "Body is not application/wasm", body = ErrorBody),
        (status = 422, description = "Refused: not a component, or it failed to link, describe or init (the message says which); the active version keeps serving", body = ErrorBody),
        (status = 429, description = "Rate limited, or this component was refused repeatedly and cools down (COMPONENT_COOLDOWN; see Retry-After)", body = ErrorBody),
        (status = 503, description = "Shutting down", body = ErrorBody)))]
pub async fn deploy(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<VersionChange>), ApiError> {
    if !state.queue.has_pipeline(&id) {
        return Err(ApiError::bad_request("UNKNOWN_PIPELINE", format!("Unknown pipeline: {id}")));
    }
    if body.is_empty() {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "COMPONENT_REFUSED", "The body is empty"));
    }
    let deployed = state.queue.deploy(&id, body.to_vec()).await.map_err(|e| match e {
        // The client's own component keeps failing: a 4xx (retry later), not the server's fault.
        RegistryError::Cooldown { retry_after, last_error, .. } => ApiError {
            retry_after: Some(retry_after.as_secs().max(1)),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "COMPONENT_COOLDOWN",
                format!(
                    "This component was refused repeatedly; retry in {}s (last error: {last_error})",
                    retry_after.as_secs().max(1)
                ),
            )
        },
        other => other.into(),
    })?;
    let status = if deployed.new { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(change(id, &deployed.worker, deployed.new))))
}

fn change(id: String, worker: &crate::registry::worker::Worker, new: bool) -> VersionChange {
    VersionChange {
        pipeline_id: id,
        version: worker.info.version.clone(),
        digest: worker.digest.clone(),
        new,
        timestamp: format_ts(&Utc::now()),
    }
}

/// A pipeline's registered versions, oldest first; `active` is what new jobs run on.
#[utoipa::path(get, path = "/api/pipelines/{id}/versions", tag = "pipelines", operation_id = "listPipelineVersions",
    params(("id" = String, Path, description = "Pipeline id")),
    responses((status = 200, description = "Registered versions", body = VersionList),
        (status = 403, description = "Origin refused (not this server's, nor in server.allowed_origins)", body = ErrorBody),
        (status = 404, description = "Unknown pipeline", body = ErrorBody),
        (status = 405, description = "Method not allowed", body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, ApiPath(id): ApiPath<String>) -> Result<Json<VersionList>, ApiError> {
    if !state.queue.has_pipeline(&id) {
        return Err(ApiError::not_found("UNKNOWN_PIPELINE", format!("Unknown pipeline: {id}")));
    }
    // The configured version registers when first loaded; start that, briefly.
    state.queue.start_loading(std::slice::from_ref(&id), crate::registry::LIST_GRACE).await;
    let (active, versions) = state.queue.versions(&id)?;
    Ok(Json(VersionList { pipeline_id: id, active, versions, timestamp: format_ts(&Utc::now()) }))
}

/// Parses a rollback body strictly: `{}` or `{"version": "1.2.0"}`.
fn parse_rollback(body: &Bytes) -> Result<Option<String>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("INVALID_JSON", format!("Malformed JSON body: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "INVALID_BODY",
            format!("Body must be a JSON object like {{\"version\": \"1.2.0\"}}, got {}", json_type(&value)),
        ));
    }
    let req: RollbackRequest = serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request("INVALID_BODY", format!("Invalid rollback body: {e}")))?;
    Ok(req.version)
}

/// Makes an earlier version active: the named one, or the one registered before the
/// active one. Jobs under way are not touched.
#[utoipa::path(post, path = "/api/pipelines/{id}/rollback", tag = "pipelines", operation_id = "rollbackPipeline",
    params(("id" = String, Path, description = "Pipeline id")),
    request_body(content = RollbackRequest, content_type = "application/json",
        description = "`{}` for the version before the active one, or `{\"version\": \"1.2.0\"}`"),
    security(("apiKey" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Rolled back", body = VersionChange),
        (status = 400, description = "Unknown pipeline or malformed body", body = ErrorBody),
        (status = 401, description = "API key missing", body = ErrorBody),
        (status = 403, description = "API key wrong, or Origin/Host refused", body = ErrorBody),
        (status = 404, description = "No registered version reports that version", body = ErrorBody),
        (status = 405, description = "Method not allowed", body = ErrorBody),
        (status = 409, description = "Nothing was registered before the active version", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not application/json", body = ErrorBody),
        (status = 429, description = "Rate limited (see Retry-After)", body = ErrorBody),
        (status = 503, description = "Worker cooling down, failed to load, or shutting down", body = ErrorBody)))]
pub async fn rollback(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    body: Bytes,
) -> Result<Json<VersionChange>, ApiError> {
    if !state.queue.has_pipeline(&id) {
        return Err(ApiError::bad_request("UNKNOWN_PIPELINE", format!("Unknown pipeline: {id}")));
    }
    let version = parse_rollback(&body)?;
    let worker = state.queue.rollback(&id, version.as_deref()).await?;
    Ok(Json(change(id, &worker, false)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollback_bodies_are_checked_strictly() {
        assert_eq!(parse_rollback(&Bytes::from_static(b"")).unwrap(), None);
        assert_eq!(parse_rollback(&Bytes::from_static(b"{}")).unwrap(), None);
        assert_eq!(parse_rollback(&Bytes::from_static(b"{\"version\":\"1.0.0\"}")).unwrap().as_deref(), Some("1.0.0"));
        for bad in [&b"{"[..], b"[]", b"{\"versions\":\"1\"}", b"{\"version\":1}"] {
            let err = parse_rollback(&Bytes::copy_from_slice(bad)).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
