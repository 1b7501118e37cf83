//! `/api/webhooks`: the configured hooks (never their secrets or the secret parts of their
//! URLs), deliveries with their attempts, and redelivery. Hooks come from the operator's
//! configuration only; nothing here can add one or change where a payload goes.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ApiPath, ApiQuery, ErrorBody};
use super::jobs::check_id;
use super::query;
use crate::domain::format_ts;
use crate::notify::HookView;
use crate::store::deliveries::{Delivery, DeliveryAttempt, DeliveryFilter, DeliveryStatus};

/// Routes under `/api/webhooks`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/webhooks", get(hooks))
        .route("/api/webhooks/deliveries", get(deliveries))
        .route("/api/webhooks/deliveries/{id}", get(delivery))
        .route("/api/webhooks/deliveries/{id}/redeliver", post(redeliver))
}

/// The configured webhooks.
#[derive(Debug, Serialize, ToSchema)]
pub struct HookList {
    /// Every `[[notify.webhooks]]` entry, in configuration order.
    pub webhooks: Vec<HookView>,
}

/// A delivery as listed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    /// Delivery id (the `X-AlephAuto-Delivery` header).
    pub id: i64,
    /// The hook.
    pub hook_id: String,
    /// `failed`, `retries_exhausted`, `completed` or `schedule_missed`.
    pub event: String,
    /// Unique per hook: `job:<id>:<event>` for job events.
    pub event_key: String,
    /// Pipeline.
    pub pipeline_id: String,
    /// Job, when the event is about one.
    pub job_id: Option<String>,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Attempts made.
    pub attempts: u32,
    /// When it was stored, RFC 3339.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When the next attempt is due (pending only), RFC 3339.
    #[schema(format = DateTime)]
    pub next_attempt_at: Option<String>,
    /// HTTP status of the last attempt, when the receiver answered.
    pub last_status_code: Option<u16>,
    /// Error of the last attempt.
    pub last_error: Option<String>,
}

impl From<&Delivery> for DeliveryView {
    fn from(d: &Delivery) -> Self {
        Self {
            id: d.id,
            hook_id: d.hook_id.clone(),
            event: d.event.clone(),
            event_key: d.event_key.clone(),
            pipeline_id: d.pipeline_id.clone(),
            job_id: d.job_id.clone(),
            status: d.status.as_str().to_string(),
            attempts: d.attempts,
            created_at: format_ts(&d.created_at),
            next_attempt_at: d.next_at.filter(|_| d.status == DeliveryStatus::Pending).map(|t| format_ts(&t)),
            last_status_code: d.last_status,
            last_error: d.last_error.clone(),
        }
    }
}

/// A page of deliveries, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveriesPage {
    /// The deliveries.
    pub deliveries: Vec<DeliveryView>,
    /// Pass as `before` for the next page; absent on the last one.
    pub next_before: Option<i64>,
}

/// One attempt.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptView {
    /// 1-based.
    pub n: u32,
    /// When it started, RFC 3339.
    #[schema(format = DateTime)]
    pub at: String,
    /// How long it took.
    pub duration_ms: u64,
    /// HTTP status, when the receiver answered.
    pub status_code: Option<u16>,
    /// What went wrong.
    pub error: Option<String>,
    /// The start of the receiver's answer (at most 1 KiB).
    pub response_excerpt: Option<String>,
}

impl From<&DeliveryAttempt> for AttemptView {
    fn from(a: &DeliveryAttempt) -> Self {
        Self {
            n: a.n,
            at: format_ts(&a.at),
            duration_ms: a.duration_ms,
            status_code: a.status_code,
            error: a.error.clone(),
            response_excerpt: a.response_excerpt.clone(),
        }
    }
}

/// A delivery with its payload and attempts.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryDetail {
    /// The delivery.
    #[serde(flatten)]
    pub delivery: DeliveryView,
    /// The body sent (JSON in the hook's format).
    #[schema(value_type = Object)]
    pub payload: Value,
    /// Attempts, oldest first.
    pub attempt_log: Vec<AttemptView>,
}

/// Query of `GET /api/webhooks/deliveries`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// Only this hook.
    #[param(pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    pub hook: Option<String>,
    /// Only this status.
    #[param(pattern = "^(pending|delivered|failed)$")]
    pub status: Option<String>,
    /// Only this job.
    #[param(pattern = "^[A-Za-z0-9_-]{1,100}$")]
    pub job_id: Option<String>,
    /// Deliveries per page, 1-200 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// The `nextBefore` of the previous page.
    #[param(value_type = Option<i64>, minimum = 1)]
    pub before: Option<String>,
}

/// A delivery id from the path, or a 400 naming the rule (an integer no delivery has is a 404).
fn delivery_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>().map_err(|_| {
        ApiError::bad_request("INVALID_DELIVERY_ID", format!("A delivery id is a positive integer, got {raw:?}"))
    })
}

fn not_found(id: i64) -> ApiError {
    ApiError::not_found("DELIVERY_NOT_FOUND", format!("Delivery not found: {id}"))
}

/// The configured webhooks (secrets are never shown; URLs only to their first path segment).
#[utoipa::path(get, path = "/api/webhooks", tag = "webhooks", operation_id = "listWebhooks",
    responses((status = 200, description = "The configured hooks", body = HookList),
        (status = 403, description = "Origin refused (not this server's, nor in server.allowed_origins)", body = ErrorBody),
        (status = 405, description = "Method not allowed", body = ErrorBody)))]
pub async fn hooks(State(state): State<AppState>) -> Json<HookList> {
    Json(HookList { webhooks: state.notifier.hooks() })
}

/// Deliveries, newest first.
#[utoipa::path(get, path = "/api/webhooks/deliveries", tag = "webhooks", operation_id = "listDeliveries",
    params(DeliveriesQuery),
    responses((status = 200, description = "A page of deliveries", body = DeliveriesPage),
        (status = 400, description = "Bad query: unknown parameter, malformed hook or job id, bad status, limit \
            out of range, or a `before` that is not a positive integer", body = ErrorBody),
        (status = 403, description = "Origin refused (not this server's, nor in server.allowed_origins)", body = ErrorBody),
        (status = 405, description = "Method not allowed", body = ErrorBody)))]
pub async fn deliveries(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<DeliveriesQuery>,
) -> Result<Json<DeliveriesPage>, ApiError> {
    let limit = query::int_in(q.limit.as_deref(), "limit", 1, 200, 50)?;
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(DeliveryStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request("INVALID_QUERY", format!("'status' must be pending, delivered or failed, got {s:?}"))
        })?),
    };
    let before = match q.before.as_deref() {
        None => None,
        Some(b) => Some(b.parse::<i64>().ok().filter(|b| *b > 0).ok_or_else(|| {
            ApiError::bad_request("INVALID_QUERY", format!("'before' must be a positive integer, got {b:?}"))
        })?),
    };
    let (hook, job_id) = (q.hook, q.job_id);
    if let Some(h) = &hook
        && !crate::config::is_valid_pipeline_id(h)
    {
        return Err(ApiError::bad_request(
            "INVALID_QUERY",
            format!("'hook' must match [a-z0-9][a-z0-9-]{{0,62}}, got {h:?}"),
        ));
    }
    if let Some(j) = &job_id {
        check_id(j)?;
    }
    // A hook that is not configured (any more) is not an error: its old deliveries are listed.
    let filter = DeliveryFilter { hook_id: hook, status, job_id, before, limit };
    let rows = state.notifier.deliveries(&filter).await.map_err(ApiError::internal)?;
    let next_before = (rows.len() == limit as usize).then(|| rows.last().map(|d| d.id)).flatten();
    Ok(Json(DeliveriesPage { deliveries: rows.iter().map(DeliveryView::from).collect(), next_before }))
}

/// One delivery: its payload and every attempt.
#[utoipa::path(get, path = "/api/webhooks/deliveries/{id}", tag = "webhooks", operation_id = "getDelivery",
    params(("id" = i64, Path, description = "Delivery id (a positive integer)")),
    responses((status = 200, description = "The delivery", body = DeliveryDetail),
        (status = 400, description = "An id that is not an integer", body = ErrorBody),
        (status = 403, description = "Origin refused (not this server's, nor in server.allowed_origins)", body = ErrorBody),
        (status = 404, description = "No such delivery", body = ErrorBody),
        (status = 405, description = "Method not allowed", body = ErrorBody)))]
pub async fn delivery(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<DeliveryDetail>, ApiError> {
    let id = delivery_id(&id)?;
    let (d, attempts) = state.notifier.delivery(id).await.map_err(ApiError::internal)?.ok_or_else(|| not_found(id))?;
    let payload = serde_json::from_str(&d.payload).unwrap_or(Value::String(d.payload.clone()));
    Ok(Json(DeliveryDetail {
        delivery: DeliveryView::from(&d),
        payload,
        attempt_log: attempts.iter().map(AttemptView::from).collect(),
    }))
}

/// Sends a delivered or failed delivery again, with a new round of attempts.
#[utoipa::path(post, path = "/api/webhooks/deliveries/{id}/redeliver", tag = "webhooks", operation_id = "redeliver",
    params(("id" = i64, Path, description = "Delivery id (a positive integer)")),
    request_body(content = Object, content_type = "application/json",
        description = "`{}`: actions take a JSON body (a page cannot send one cross-origin without a preflight)"),
    security(("apiKey" = []), ("bearer" = [])),
    responses((status = 202, description = "Queued for sending", body = DeliveryView),
        (status = 400, description = "An id that is not an integer", body = ErrorBody),
        (status = 401, description = "API key missing", body = ErrorBody),
        (status = 403, description = "API key wrong, or Origin/Host refused", body = ErrorBody),
        (status = 404, description = "No such delivery", body = ErrorBody),
        (status = 405, description = "Method not allowed", body = ErrorBody),
        (status = 409, description = "The delivery is still pending", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "A body that is not application/json", body = ErrorBody),
        (status = 429, description = "Rate limited (see Retry-After)", body = ErrorBody)))]
pub async fn redeliver(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<DeliveryView>), ApiError> {
    let id = delivery_id(&id)?;
    let queued = state.notifier.redeliver(id).await.map_err(ApiError::internal)?;
    let (d, _) = state.notifier.delivery(id).await.map_err(ApiError::internal)?.ok_or_else(|| not_found(id))?;
    if !queued {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "DELIVERY_PENDING",
            format!("Delivery {id} is still pending; it can be sent again once delivered or failed"),
        ));
    }
    Ok((StatusCode::ACCEPTED, Json(DeliveryView::from(&d))))
}
