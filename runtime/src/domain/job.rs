//! A job and its lifecycle: `queued → running → completed | failed`, and
//! `queued | running → cancelled`. Terminal states never change again.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::failure::JobFailure;

/// Keys the server sets in a job's data; callers cannot forge them.
pub const RESERVED_KEYS: [&str; 4] = ["triggeredBy", "triggeredAt", "runId", "scheduledFor"];

/// Where a job is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Waiting for a worker slot.
    Queued,
    /// A guest is executing it.
    Running,
    /// Finished with a result.
    Completed,
    /// Finished with an error.
    Failed,
    /// Stopped by a user before it finished.
    Cancelled,
}

impl JobStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [JobStatus; 5] =
        [JobStatus::Queued, JobStatus::Running, JobStatus::Completed, JobStatus::Failed, JobStatus::Cancelled];

    /// The lowercase name used in JSON, SQL and URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// Parses the lowercase name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// True for completed, failed and cancelled.
    pub fn is_terminal(self) -> bool {
        matches!(self, JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled)
    }
}

/// Progress a worker reported.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Progress {
    /// 0–100.
    pub percent: u8,
    /// What the worker is doing.
    pub message: String,
}

/// Git workflow facts recorded on a job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitInfo {
    /// Job branch, when one was created.
    pub branch_name: Option<String>,
    /// Branch checked out before the job.
    pub original_branch: Option<String>,
    /// Commit on the job branch.
    pub commit_sha: Option<String>,
    /// Pull request opened for it.
    pub pr_url: Option<String>,
    /// Files the job changed.
    pub changed_files: Vec<String>,
}

/// A job as stored and served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// `<pipeline>-manual-<ms>[-n]` or `<pipeline>-retry-<ms>[-n]`.
    pub id: String,
    /// Pipeline that runs it.
    pub pipeline_id: String,
    /// Lifecycle state.
    pub status: JobStatus,
    /// Parameters plus `triggeredBy` / `triggeredAt`.
    pub data: Value,
    /// When it was queued.
    #[serde(with = "crate::domain::time::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    /// When its current attempt started.
    #[serde(with = "crate::domain::time::rfc3339_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached a terminal state.
    #[serde(with = "crate::domain::time::rfc3339_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub completed_at: Option<DateTime<Utc>>,
    /// 1-based attempt number; fences stale writers.
    pub attempt: u32,
    /// Last reported progress.
    pub progress: Progress,
    /// The worker's result on success.
    pub result: Option<Value>,
    /// The failure, when failed or cancelled.
    pub error: Option<JobFailure>,
    /// Git workflow facts, when the workflow ran.
    pub git: Option<GitInfo>,
    /// The job this one retries.
    pub retried_from: Option<String>,
    /// How many manual retries led to this job.
    pub retry_count: u32,
    /// The worker version (its `describe` version) the job runs on, set at the trigger.
    #[serde(default)]
    pub worker_version: Option<String>,
    /// SHA-256 (hex) of the component the job runs on, set at the trigger.
    #[serde(default)]
    pub component_digest: Option<String>,
}

impl Job {
    /// A new queued job.
    pub fn new(id: String, pipeline_id: String, data: Value, now: DateTime<Utc>) -> Self {
        Self {
            id,
            pipeline_id,
            status: JobStatus::Queued,
            data,
            created_at: now,
            started_at: None,
            completed_at: None,
            attempt: 1,
            progress: Progress::default(),
            result: None,
            error: None,
            git: None,
            retried_from: None,
            retry_count: 0,
            worker_version: None,
            component_digest: None,
        }
    }
}

/// True for ids the API accepts: `[A-Za-z0-9_-]{1,100}`.
pub fn is_valid_job_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 100 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A job's parameters: its data without the keys the server set.
pub fn job_params(data: &Value) -> Value {
    let mut params = data.as_object().cloned().unwrap_or_default();
    for key in RESERVED_KEYS {
        params.remove(key);
    }
    Value::Object(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_checked_for_the_api_alphabet() {
        assert!(is_valid_job_id("repomix-manual-1732567890123-2"));
        assert!(!is_valid_job_id("../etc/passwd"));
        assert!(!is_valid_job_id(""));
        assert!(!is_valid_job_id(&"a".repeat(101)));
    }

    #[test]
    fn status_names_round_trip() {
        for st in JobStatus::ALL {
            assert_eq!(JobStatus::parse(st.as_str()), Some(st));
        }
        assert_eq!(JobStatus::parse("done"), None);
    }
}
