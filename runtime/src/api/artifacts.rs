//! `/api/jobs/{id}/artifacts` and `/api/reports`: what jobs wrote to their output folders.
//!
//! Files come from untrusted guests. They are served so a browser cannot treat them as ours:
//! `Content-Security-Policy: sandbox` (an HTML report runs in a unique origin with scripts off,
//! even when opened directly), `nosniff`, and `Cross-Origin-Resource-Policy: same-origin`.
//! Links are never followed (`crate::artifacts`).

use std::io::SeekFrom;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ApiPath, ApiQuery, ErrorBody};
use super::jobs::check_id;
use super::query;
use crate::artifacts::{Artifact, ArtifactError};
use crate::domain::{JobStatus, format_ts};
use crate::store::JobFilter;

/// Every artifact response carries these: the content is a guest's, never the dashboard's.
pub const ARTIFACT_CSP: &str =
    "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; media-src 'self'";

/// Parameters that name a job's target, in the order a report's `repository` is taken from.
const TARGET_KEYS: [&str; 6] = ["repositoryPath", "sourceDir", "baseDir", "targetDir", "readmePath", "configDir"];
/// Extensions of files listed as reports.
const REPORT_EXTENSIONS: [&str; 5] = ["html", "md", "json", "svg", "txt"];
/// Jobs looked at per `/api/reports` request at most; the cursor continues from there.
const MAX_SCANNED: u32 = 2_000;

/// Routes for artifacts and reports.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/jobs/{id}/artifacts", get(list))
        .route("/api/jobs/{id}/artifacts/{*path}", get(download))
        .route("/api/reports", get(reports))
}

/// A job's output files.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactList {
    /// The job.
    pub job_id: String,
    /// Its files, sorted by path (symbolic links and special files are never listed).
    pub artifacts: Vec<Artifact>,
    /// Number of files listed.
    pub total: usize,
    /// True when the folder held more than 10,000 files or nested deeper than 32 folders.
    pub truncated: bool,
}

/// One job's reports.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportEntry {
    /// The job that wrote them.
    pub job_id: String,
    /// Its pipeline.
    pub pipeline_id: String,
    /// The folder the job worked on (its first path parameter), when it had one.
    pub repository: Option<String>,
    /// When the job completed, RFC 3339.
    pub completed_at: Option<String>,
    /// Report files (HTML, Markdown, JSON, SVG, text), sorted by path.
    pub reports: Vec<Artifact>,
}

/// A page of reports, newest job first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportsPage {
    /// Jobs with at least one report.
    pub reports: Vec<ReportEntry>,
    /// Pass as `cursor` for the next page; absent when every job has been looked at.
    pub next_cursor: Option<String>,
}

/// Query of `GET /api/reports`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReportsQuery {
    /// Only this pipeline.
    pub pipeline_id: Option<String>,
    /// Only jobs whose target folder is this path (or inside it).
    pub repository: Option<String>,
    /// Only jobs completed at or after this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<String>,
    /// Only jobs completed at or before this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub until: Option<String>,
    /// Jobs per page, 1-100 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// The `nextCursor` of the previous page.
    #[param(pattern = "^[0-9a-f]{16}[0-7][0-9a-f]{15}$")]
    pub cursor: Option<String>,
}

async fn require_job(state: &AppState, id: &str) -> Result<(), ApiError> {
    check_id(id)?;
    match state.queue.job(id).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::not_found("JOB_NOT_FOUND", format!("Job not found: {id}"))),
    }
}

/// Lists a job's output files.
#[utoipa::path(get, path = "/api/jobs/{id}/artifacts", tag = "artifacts", operation_id = "listArtifacts",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, description = "The job's files (an empty list when it wrote none)", body = ArtifactList),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 403, description = "Origin refused (not this server's, nor in server.allowed_origins)", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 405, description = "Method not allowed", body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, ApiPath(id): ApiPath<String>) -> Result<Json<ArtifactList>, ApiError> {
    require_job(&state, &id).await?;
    let folders = state.outputs.clone();
    let job = id.clone();
    let listing = tokio::task::spawn_blocking(move || folders.list(&job))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    Ok(Json(ArtifactList {
        job_id: id,
        total: listing.files.len(),
        artifacts: listing.files,
        truncated: listing.truncated,
    }))
}

/// Serves one output file (single byte ranges honoured).
#[utoipa::path(get, path = "/api/jobs/{id}/artifacts/{path}", tag = "artifacts", operation_id = "getArtifact",
    params(("id" = String, Path, description = "Job id"),
        ("path" = String, Path, description = "Path inside the job's output folder, `/`-separated")),
    responses((status = 200, description = "The file, with its media type", content_type = "application/octet-stream"),
        (status = 206, description = "The requested byte range", content_type = "application/octet-stream"),
        (status = 400, description = "Malformed id, or a path with '..', '.', an empty component or a leading '/'", body = ErrorBody),
        (status = 403, description = "Origin refused (not this server's, nor in server.allowed_origins)", body = ErrorBody),
        (status = 404, description = "No such job, or no regular file there (symbolic links are never followed)", body = ErrorBody),
        (status = 405, description = "Method not allowed", body = ErrorBody),
        (status = 416, description = "Range not satisfiable", body = ErrorBody)))]
pub async fn download(
    State(state): State<AppState>,
    ApiPath((id, path)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_job(&state, &id).await?;
    let folders = state.outputs.clone();
    let job = id.clone();
    let wanted = path.clone();
    let opened = tokio::task::spawn_blocking(move || folders.open(&job, &wanted)).await.map_err(ApiError::internal)?;
    let opened = match opened {
        Ok(o) => o,
        Err(ArtifactError::InvalidPath(why)) => {
            return Err(ApiError::bad_request(
                "INVALID_ARTIFACT_PATH",
                format!("Invalid artifact path {path:?}: {why}"),
            ));
        }
        Err(ArtifactError::NotFound) => {
            return Err(ApiError::not_found("ARTIFACT_NOT_FOUND", format!("Job {id} has no file {path:?}")));
        }
        Err(ArtifactError::Io(e)) => return Err(ApiError::internal(e)),
    };
    let size = opened.size;
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        None => None,
        Some(raw) => match http_range_header::parse_range_header(raw).and_then(|r| r.validate(size)) {
            // One range is served as asked; several are answered with the whole file (RFC 9110 allows it).
            Ok(ranges) if ranges.len() == 1 => Some(ranges[0].clone()),
            Ok(_) => None,
            Err(_) => {
                let mut response = ApiError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "RANGE_NOT_SATISFIABLE",
                    format!("Range {raw:?} cannot be served from a file of {size} bytes"),
                )
                .into_response();
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    response.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return Ok(response);
            }
        },
    };
    let mut file = tokio::fs::File::from_std(opened.file);
    let (status, start, len) = match &range {
        Some(r) => (StatusCode::PARTIAL_CONTENT, *r.start(), r.end() - r.start() + 1),
        None => (StatusCode::OK, 0, size),
    };
    if start > 0 {
        file.seek(SeekFrom::Start(start)).await.map_err(ApiError::internal)?;
    }
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file.take(len)));
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&opened.media_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Some(r) = &range
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {}-{}/{size}", r.start(), r.end()))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&opened.modified.format("%a, %d %b %Y %H:%M:%S GMT").to_string()) {
        h.insert(header::LAST_MODIFIED, v);
    }
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(ARTIFACT_CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

fn instant(raw: Option<&str>, key: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    DateTime::parse_from_rfc3339(raw).map(|t| Some(t.with_timezone(&Utc))).map_err(|e| {
        ApiError::bad_request("INVALID_QUERY", format!("'{key}' must be an RFC 3339 instant, got {raw:?}: {e}"))
    })
}

/// The folder a job worked on: its first path parameter.
fn target_of(data: &Value) -> Option<String> {
    TARGET_KEYS.iter().find_map(|k| data.get(*k).and_then(Value::as_str)).map(str::to_string)
}

fn is_report(a: &Artifact) -> bool {
    let ext = a.path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    REPORT_EXTENSIONS.contains(&ext.as_str())
}

/// Reports across jobs, newest first.
#[utoipa::path(get, path = "/api/reports", tag = "artifacts", operation_id = "listReports",
    params(ReportsQuery),
    responses((status = 200, description = "Completed jobs that wrote reports, newest first", body = ReportsPage),
        (status = 400, description = "Bad query: unknown parameter or pipeline, bad instant, limit out of range, bad cursor", body = ErrorBody),
        (status = 403, description = "Origin refused (not this server's, nor in server.allowed_origins)", body = ErrorBody),
        (status = 405, description = "Method not allowed", body = ErrorBody)))]
pub async fn reports(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ReportsQuery>,
) -> Result<Json<ReportsPage>, ApiError> {
    let limit = query::int_in(q.limit.as_deref(), "limit", 1, 100, 20)? as usize;
    let mut after = query::cursor(q.cursor.as_deref())?;
    let since = instant(q.since.as_deref(), "since")?;
    let until = instant(q.until.as_deref(), "until")?;
    let pipeline_id = q.pipeline_id.filter(|p| !p.is_empty());
    if let Some(p) = &pipeline_id
        && !state.queue.has_pipeline(p)
    {
        return Err(ApiError::bad_request("UNKNOWN_PIPELINE", format!("Unknown pipeline: {p}")));
    }
    let repository = q.repository.filter(|r| !r.is_empty());
    let mut reports = Vec::new();
    let mut scanned = 0u32;
    loop {
        let filter = JobFilter {
            pipeline_id: pipeline_id.clone(),
            statuses: vec![JobStatus::Completed],
            // Never more jobs than reports still wanted, so `page.next` is exactly where to resume.
            limit: (limit - reports.len()) as u32,
            offset: 0,
            after,
        };
        let page = state.queue.jobs(&filter).await?;
        for job in &page.jobs {
            scanned += 1;
            let repo = target_of(&job.data);
            if let Some(want) = &repository
                && !repo.as_deref().is_some_and(|r| std::path::Path::new(r).starts_with(want))
            {
                continue;
            }
            if since.is_some_and(|s| job.completed_at.is_none_or(|c| c < s))
                || until.is_some_and(|u| job.completed_at.is_none_or(|c| c > u))
            {
                continue;
            }
            let folders = state.outputs.clone();
            let id = job.id.clone();
            let listing = tokio::task::spawn_blocking(move || folders.list(&id))
                .await
                .map_err(ApiError::internal)?
                .map_err(ApiError::internal)?;
            let files: Vec<Artifact> = listing.files.into_iter().filter(is_report).collect();
            if files.is_empty() {
                continue;
            }
            reports.push(ReportEntry {
                job_id: job.id.clone(),
                pipeline_id: job.pipeline_id.clone(),
                repository: repo,
                completed_at: job.completed_at.as_ref().map(format_ts),
                reports: files,
            });
        }
        match page.next {
            Some(next) if reports.len() < limit && scanned < MAX_SCANNED => after = Some(next),
            next => return Ok(Json(ReportsPage { reports, next_cursor: next.map(|c| c.encode()) })),
        }
    }
}
