//! Query strings: typed per route (unknown keys refused by serde), documented for
//! OpenAPI (`IntoParams`, with ranges), and checked with messages that name the bad parameter.
//! Numbers arrive as strings so that a bad value gets our message, not serde's.

use serde::Deserialize;
use utoipa::IntoParams;

use super::error::ApiError;
use crate::domain::JobStatus;
use crate::store::Cursor;

/// Query of `GET /api/jobs`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JobsQuery {
    /// Comma-separated statuses, e.g. `failed,cancelled`.
    #[param(pattern = "^(queued|running|completed|failed|cancelled)(,(queued|running|completed|failed|cancelled))*$")]
    pub status: Option<String>,
    /// Only this pipeline.
    pub pipeline_id: Option<String>,
    /// Page size, 1-1000 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
    /// Rows to skip (default 0; slow on deep pages: prefer `cursor`).
    #[param(value_type = Option<u32>, minimum = 0, maximum = 4294967295u64)]
    pub offset: Option<String>,
    /// Opaque: the `nextCursor` of the previous page; the page starts after that job (keyset
    /// pagination: constant cost at any depth, stable while jobs are added); `offset` then
    /// skips rows after it.
    #[param(pattern = "^[0-9a-f]{16}[0-7][0-9a-f]{15}$")]
    pub cursor: Option<String>,
}

/// Query of `GET /api/pipelines/{id}/jobs`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PipelineJobsQuery {
    /// Comma-separated statuses, e.g. `failed,cancelled`.
    #[param(pattern = "^(queued|running|completed|failed|cancelled)(,(queued|running|completed|failed|cancelled))*$")]
    pub status: Option<String>,
    /// Page size, 1-100 (default 10).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// Rows to skip (default 0).
    #[param(value_type = Option<u32>, minimum = 0, maximum = 4294967295u64)]
    pub offset: Option<String>,
}

/// An integer in `min..=max`, or `default` when absent.
pub fn int_in(raw: Option<&str>, key: &str, min: u32, max: u32, default: u32) -> Result<u32, ApiError> {
    let Some(raw) = raw else { return Ok(default) };
    raw.parse::<u32>().ok().filter(|v| (min..=max).contains(v)).ok_or_else(|| {
        ApiError::bad_request("INVALID_QUERY", format!("'{key}' must be an integer from {min} to {max}, got {raw:?}"))
    })
}

/// An offset (0 or more).
pub fn offset(raw: Option<&str>) -> Result<u32, ApiError> {
    int_in(raw, "offset", 0, u32::MAX, 0)
}

/// A listing cursor (`nextCursor` of a previous page), when given.
pub fn cursor(raw: Option<&str>) -> Result<Option<Cursor>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    Cursor::decode(raw.trim()).map(Some).ok_or_else(|| {
        ApiError::bad_request(
            "INVALID_CURSOR",
            "'cursor' is not a cursor this server handed out: pass a page's 'nextCursor' as it is",
        )
    })
}

/// A comma-separated list of statuses, exactly as the documented pattern says (no blanks).
pub fn statuses(raw: Option<&str>) -> Result<Vec<JobStatus>, ApiError> {
    let Some(raw) = raw else { return Ok(Vec::new()) };
    raw.split(',')
        .map(|s| {
            JobStatus::parse(s).ok_or_else(|| {
                ApiError::bad_request(
                    "INVALID_QUERY",
                    format!("'status' must be one of queued, running, completed, failed, cancelled; got {s:?}"),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_read_exactly_as_documented() {
        assert_eq!(statuses(Some("failed,cancelled")).unwrap(), vec![JobStatus::Failed, JobStatus::Cancelled]);
        assert!(statuses(None).unwrap().is_empty());
        for bad in ["", ",", "failed,", " failed", "FAILED", "done"] {
            assert!(statuses(Some(bad)).is_err(), "{bad:?}");
        }
        assert_eq!(int_in(Some("7"), "limit", 1, 10, 5).unwrap(), 7);
        assert_eq!(int_in(None, "limit", 1, 10, 5).unwrap(), 5);
        for bad in ["0", "11", " 7", "x", "", "-1"] {
            assert!(int_in(Some(bad), "limit", 1, 10, 5).is_err(), "{bad:?}");
        }
    }
}
