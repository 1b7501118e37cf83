//! API-key auth: when a key is configured, mutating routes and `/ws` need it in
//! `X-API-Key` or `Authorization: Bearer` (or `?apiKey=` on `/ws`, which browsers
//! cannot send headers to). Missing → 401, wrong → 403.

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;

/// Compares in time independent of where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn presented_key(req: &Request) -> Option<String> {
    let headers = req.headers();
    if let Some(v) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.to_string());
    }
    if let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
        && let Some(token) = v.strip_prefix("Bearer ") {
            return Some(token.trim().to_string());
        }
    if req.uri().path() == "/ws" {
        let query = req.uri().query().unwrap_or("");
        return form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "apiKey").map(|(_, v)| v.into_owned());
    }
    None
}

/// Middleware enforcing the key on mutating methods and the WebSocket.
pub async fn require_key(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(expected) = state.api_key.as_deref() else { return next.run(req).await };
    let guarded = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) || req.uri().path() == "/ws";
    if !guarded {
        return next.run(req).await;
    }
    match presented_key(&req) {
        None => ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "UNAUTHORIZED",
            message: "This route needs an API key: send X-API-Key or Authorization: Bearer".into(),
            retry_after: None,
        }
        .into_response(),
        Some(key) if constant_time_eq(key.as_bytes(), expected.as_bytes()) => next.run(req).await,
        Some(_) => ApiError {
            status: StatusCode::FORBIDDEN,
            code: "FORBIDDEN",
            message: "The API key is not valid".into(),
            retry_after: None,
        }
        .into_response(),
    }
}
