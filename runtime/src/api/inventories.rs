//! `/api/inventories`: list, create, show (targets with their latest run entry) and delete.
//! Configured inventories are read-only; created ones must lie inside the granted roots.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ApiPath, ErrorBody};
use crate::config::inventory::is_valid_name;
use crate::config::{DiscoverConfig, InventoryConfig, TargetKind};
use crate::domain::{JobStatus, format_ts};
use crate::runs::inventory::{Inventory, Source};

/// Routes under `/api/inventories`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/inventories", get(list).post(create))
        .route("/api/inventories/{name}", get(one).delete(remove))
}

/// A discovery walk as sent and listed.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DiscoverDto {
    /// Absolute folder the walk starts from (inside a pipeline's roots when made over the API).
    pub base: String,
    /// Folder levels searched below `base` (1-8, default 2).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 8)]
    pub depth: Option<usize>,
    /// Globs (git wildmatch) on the relative path or the name of entries not to enter.
    #[serde(default)]
    #[schema(max_items = 64)]
    pub exclude: Vec<String>,
    /// Only git work trees (default true; folder targets only).
    #[serde(default)]
    pub git_only: Option<bool>,
    /// `folders` (default) or `readme` (README files, e.g. for schema-enhancement).
    #[serde(default)]
    pub targets: Option<TargetKind>,
    /// Entries the walk may visit (1-10000 over the API, default 10000).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10000)]
    pub max_entries: Option<usize>,
}

/// An inventory as listed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InventoryDto {
    /// Its name.
    pub name: String,
    /// `config` (read-only) or `api`.
    pub source: Source,
    /// Explicit targets (empty for a discovery).
    pub paths: Vec<String>,
    /// The discovery walk, if it is one.
    pub discover: Option<DiscoverDto>,
    /// RFC 3339 creation time (API-created ones).
    #[schema(format = DateTime)]
    pub created_at: Option<String>,
}

impl From<Inventory> for InventoryDto {
    fn from(i: Inventory) -> Self {
        Self {
            name: i.name,
            source: i.source,
            paths: i.spec.paths.iter().map(|p| p.display().to_string()).collect(),
            discover: i.spec.discover.map(|d| DiscoverDto {
                base: d.base.display().to_string(),
                depth: Some(d.depth),
                exclude: d.exclude,
                git_only: Some(d.git_only),
                targets: Some(d.targets),
                max_entries: Some(d.max_entries),
            }),
            created_at: i.created_at.as_ref().map(format_ts),
        }
    }
}

/// `GET /api/inventories`.
#[derive(Debug, Serialize, ToSchema)]
pub struct InventoryList {
    /// Configured ones, then API-created ones, each by name.
    pub inventories: Vec<InventoryDto>,
    /// RFC 3339 time of the answer.
    #[schema(format = DateTime)]
    pub timestamp: String,
}

/// Body of `POST /api/inventories`: a name and `paths` or `discover`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateInventoryRequest {
    /// `[a-z0-9][a-z0-9-]{0,62}`.
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    pub name: String,
    /// Absolute target paths (1-1000), each inside a pipeline's roots.
    #[serde(default)]
    #[schema(max_items = 1000)]
    pub paths: Vec<String>,
    /// A discovery walk instead of `paths`.
    #[serde(default)]
    pub discover: Option<DiscoverDto>,
}

/// One target of an inventory with its latest run entry (per-repository metadata).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InventoryTargetDto {
    /// The target path.
    pub path: String,
    /// RFC 3339 start of the last run that included it.
    #[schema(format = DateTime)]
    pub last_scanned: Option<String>,
    /// That run.
    pub last_run_id: Option<String>,
    /// Its job there.
    pub last_job_id: Option<String>,
    /// The job's status (null: refused or never run).
    pub last_outcome: Option<JobStatus>,
    /// Why it was refused there.
    pub last_refused: Option<String>,
    /// RFC 3339 time that job finished.
    #[schema(format = DateTime)]
    pub last_completed_at: Option<String>,
    /// Where that job's files (its report) are listed.
    pub last_artifacts: Option<String>,
}

/// `GET /api/inventories/{name}`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InventoryDetailDto {
    /// The inventory.
    pub inventory: InventoryDto,
    /// Its targets as they resolve now (a discovery walks again).
    pub targets: Vec<InventoryTargetDto>,
    /// The walk hit a budget.
    pub truncated: bool,
    /// Symbolic links met and not followed.
    pub links_skipped: usize,
    /// Why the targets could not be resolved (e.g. the base is gone).
    pub error: Option<String>,
    /// RFC 3339 time of the answer.
    #[schema(format = DateTime)]
    pub timestamp: String,
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(ApiError::bad_request("INVALID_INVENTORY_NAME", "Inventory names match [a-z0-9][a-z0-9-]{0,62}"))
    }
}

/// Every inventory.
#[utoipa::path(get, path = "/api/inventories", tag = "runs", operation_id = "listInventories",
    responses((status = 200, description = "Inventories", body = InventoryList),
        (status = 403, description = "Origin refused (not this server's, nor in server.allowed_origins)", body = ErrorBody),
        (status = 405, description = "Method not allowed", body = ErrorBody)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<InventoryList>, ApiError> {
    let inventories = state.runs.inventories().await?.into_iter().map(Into::into).collect();
    Ok(Json(InventoryList { inventories, timestamp: format_ts(&Utc::now()) }))
}

/// Creates an inventory (its paths or base must lie inside a pipeline's granted roots).
#[utoipa::path(post, path = "/api/inventories", tag = "runs", operation_id = "createInventory",
    request_body(content = CreateInventoryRequest, content_type = "application/json"),
    security(("apiKey" = []), ("bearer" = [])),
    responses((status = 201, description = "Created", body = InventoryDto),
        (status = 400, description = "Malformed body, a bad name, both or neither of paths and discover, or a place outside every pipeline's roots (the message names the field)", body = ErrorBody),
        (status = 401, description = "API key missing", body = ErrorBody),
        (status = 403, description = "API key wrong, or Origin/Host refused", body = ErrorBody),
        (status = 405, description = "Method not allowed", body = ErrorBody),
        (status = 409, description = "The name is taken (or configured)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not application/json", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody)))]
pub async fn create(State(state): State<AppState>, body: Bytes) -> Result<(StatusCode, Json<InventoryDto>), ApiError> {
    let req: CreateInventoryRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("INVALID_BODY", format!("Invalid inventory: {e}")))?;
    check_name(&req.name)?;
    let defaults = DiscoverConfig::default();
    let spec = InventoryConfig {
        paths: req.paths.iter().map(Into::into).collect(),
        discover: req.discover.map(|d| DiscoverConfig {
            base: d.base.into(),
            depth: d.depth.unwrap_or(defaults.depth),
            exclude: d.exclude,
            git_only: d.git_only.unwrap_or(defaults.git_only),
            targets: d.targets.unwrap_or_default(),
            max_entries: d.max_entries.unwrap_or(crate::runs::inventory::API_MAX_ENTRIES),
        }),
    };
    let inv = state.runs.create_inventory(&req.name, spec).await?;
    Ok((StatusCode::CREATED, Json(inv.into())))
}

/// One inventory, its targets and each one's last scan, outcome, job and report.
#[utoipa::path(get, path = "/api/inventories/{name}", tag = "runs", operation_id = "getInventory",
    params(("name" = String, Path, description = "Inventory name")),
    responses((status = 200, description = "The inventory and its targets", body = InventoryDetailDto),
        (status = 400, description = "Malformed name", body = ErrorBody),
        (status = 403, description = "Origin refused (not this server's, nor in server.allowed_origins)", body = ErrorBody),
        (status = 404, description = "No such inventory", body = ErrorBody),
        (status = 405, description = "Method not allowed", body = ErrorBody)))]
pub async fn one(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<InventoryDetailDto>, ApiError> {
    check_name(&name)?;
    let d = state.runs.inventory_detail(&name).await?;
    let targets = d
        .targets
        .into_iter()
        .map(|(path, h)| InventoryTargetDto {
            path,
            last_scanned: h.as_ref().map(|h| format_ts(&h.scanned_at)),
            last_run_id: h.as_ref().map(|h| h.run_id.clone()),
            last_artifacts: h.as_ref().and_then(|h| h.job_id.as_ref()).map(|j| format!("/api/jobs/{j}/artifacts")),
            last_job_id: h.as_ref().and_then(|h| h.job_id.clone()),
            last_outcome: h.as_ref().and_then(|h| h.status),
            last_refused: h.as_ref().and_then(|h| h.refused.clone()),
            last_completed_at: h.as_ref().and_then(|h| h.completed_at.as_ref()).map(format_ts),
        })
        .collect();
    Ok(Json(InventoryDetailDto {
        inventory: d.inventory.into(),
        targets,
        truncated: d.truncated,
        links_skipped: d.links_skipped,
        error: d.error,
        timestamp: format_ts(&Utc::now()),
    }))
}

/// Deletes an API-created inventory (its runs stay).
#[utoipa::path(delete, path = "/api/inventories/{name}", tag = "runs", operation_id = "deleteInventory",
    params(("name" = String, Path, description = "Inventory name")),
    security(("apiKey" = []), ("bearer" = [])),
    responses((status = 204, description = "Deleted"),
        (status = 400, description = "Malformed name", body = ErrorBody),
        (status = 401, description = "API key missing", body = ErrorBody),
        (status = 403, description = "API key wrong, or Origin/Host refused", body = ErrorBody),
        (status = 404, description = "No such inventory", body = ErrorBody),
        (status = 405, description = "Method not allowed", body = ErrorBody),
        (status = 409, description = "Configured inventories are read-only", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody)))]
pub async fn remove(State(state): State<AppState>, ApiPath(name): ApiPath<String>) -> Result<StatusCode, ApiError> {
    check_name(&name)?;
    state.runs.delete_inventory(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
