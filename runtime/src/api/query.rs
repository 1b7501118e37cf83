//! Parsing of query strings with messages that name the bad parameter.

use std::collections::HashMap;

use super::error::ApiError;
use crate::queue::job::JobStatus;
use crate::store::Cursor;

/// Raw query parameters.
pub type RawQuery = HashMap<String, String>;

/// Checks that only `allowed` keys are present.
pub fn only(q: &RawQuery, allowed: &[&str]) -> Result<(), ApiError> {
    if let Some(k) = q.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::bad_request(
            "INVALID_QUERY",
            format!("Unknown query parameter '{k}'. Allowed: {}", allowed.join(", ")),
        ));
    }
    Ok(())
}

/// An integer in `min..=max`, or `default` when absent.
pub fn int_in(q: &RawQuery, key: &str, min: u32, max: u32, default: u32) -> Result<u32, ApiError> {
    let Some(raw) = q.get(key) else { return Ok(default) };
    raw.trim()
        .parse::<u32>()
        .ok()
        .filter(|v| (min..=max).contains(v))
        .ok_or_else(|| ApiError::bad_request("INVALID_QUERY", format!("'{key}' must be an integer from {min} to {max}, got {raw:?}")))
}

/// An offset (0 or more).
pub fn offset(q: &RawQuery) -> Result<u32, ApiError> {
    int_in(q, "offset", 0, u32::MAX, 0)
}

/// A listing cursor (`nextCursor` of a previous page), when given.
pub fn cursor(q: &RawQuery) -> Result<Option<Cursor>, ApiError> {
    let Some(raw) = q.get("cursor") else { return Ok(None) };
    Cursor::decode(raw.trim()).map(Some).ok_or_else(|| {
        ApiError::bad_request("INVALID_CURSOR", "'cursor' is not a cursor this server handed out: pass a page's 'nextCursor' as it is")
    })
}

/// A comma-separated list of statuses.
pub fn statuses(q: &RawQuery) -> Result<Vec<JobStatus>, ApiError> {
    let Some(raw) = q.get("status") else { return Ok(Vec::new()) };
    raw.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            JobStatus::parse(s.trim()).ok_or_else(|| {
                ApiError::bad_request(
                    "INVALID_QUERY",
                    format!("'status' must be one of queued, running, completed, failed, cancelled; got {s:?}"),
                )
            })
        })
        .collect()
}
