//! Durable job storage behind the `JobStore` trait. SQLite (`sqlite`) is the
//! embedded default; every transition is fenced by the job's attempt number so a
//! stale attempt can never overwrite a newer one.
//!
//! **Invariant:** a terminal status is never changed by the store.

pub mod deliveries;
#[cfg(test)]
pub(crate) mod memory;
pub mod postgres;
pub mod postgres_runs;
pub mod runs;
pub mod schedules;
pub mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::domain::{GitInfo, Job, JobFailure, JobStatus, LogEntry, Progress};

/// What can go wrong talking to the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A job with this id exists already.
    #[error("job {0} already exists")]
    Duplicate(String),
    /// The backend failed (I/O, SQL, corrupt row).
    #[error("store backend: {0:#}")]
    Backend(#[from] anyhow::Error),
    /// The store was shut down.
    #[error("store is closed")]
    Closed,
}

/// Result alias for store calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// How a running attempt ended.
#[derive(Debug, Clone)]
pub struct Finish {
    /// completed, failed or cancelled.
    pub status: JobStatus,
    /// Result on success.
    pub result: Option<Value>,
    /// Failure otherwise.
    pub error: Option<JobFailure>,
    /// Git workflow facts.
    pub git: Option<GitInfo>,
    /// When it ended.
    pub at: DateTime<Utc>,
}

/// A queued attempt to move to `running`: the job that takes over a finishing job's slot.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    /// Job id.
    pub id: &'a str,
    /// Its queued attempt.
    pub attempt: u32,
    /// When it starts.
    pub at: DateTime<Utc>,
}

/// A queued job as `recover` hands it back.
#[derive(Debug, Clone)]
pub struct Recovered {
    /// The job, `queued`.
    pub job: Job,
    /// Not runnable before this time: a re-queued job's backoff (None: runnable now).
    pub run_after: Option<DateTime<Utc>>,
}

/// Filters for listing jobs.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only this pipeline.
    pub pipeline_id: Option<String>,
    /// Only these statuses (empty: all).
    pub statuses: Vec<JobStatus>,
    /// Page size.
    pub limit: u32,
    /// Rows to skip.
    pub offset: u32,
    /// Only jobs after this position of the newest-first order (keyset pagination); the
    /// offset then counts from there.
    pub after: Option<Cursor>,
}

/// A position in the newest-first listing: the sort key (creation time, then insertion
/// sequence) of the last job of a page. Jobs inserted later sort before it, so a walk by
/// cursor neither repeats nor skips a job while new ones arrive, and each page costs an index
/// seek instead of a walk over every row before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// `created_at` in microseconds since the Unix epoch.
    pub created_us: i64,
    /// The store's insertion sequence (SQLite `rowid`, PostgreSQL `seq`).
    pub seq: i64,
}

impl Cursor {
    /// The cursor of a job created at `created_at` with sequence `seq`.
    pub fn new(created_at: &DateTime<Utc>, seq: i64) -> Self {
        Self { created_us: created_at.timestamp_micros(), seq }
    }

    /// `created_at` as a time (a forged cursor beyond chrono's range is clamped to it: the
    /// page is then empty or the first one, never an error).
    pub fn created_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.created_us).unwrap_or(if self.created_us > 0 {
            DateTime::<Utc>::MAX_UTC
        } else {
            DateTime::<Utc>::MIN_UTC
        })
    }

    /// The opaque text form the API hands out: 32 hex digits.
    pub fn encode(&self) -> String {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.created_us.to_be_bytes());
        bytes[8..].copy_from_slice(&self.seq.to_be_bytes());
        hex::encode(bytes)
    }

    /// Parses `encode`'s form; None for anything else.
    pub fn decode(text: &str) -> Option<Self> {
        let bytes: [u8; 16] = hex::decode(text).ok()?.try_into().ok()?;
        let created_us = i64::from_be_bytes(bytes[..8].try_into().ok()?);
        let seq = i64::from_be_bytes(bytes[8..].try_into().ok()?);
        let cursor = Self { created_us, seq };
        (seq >= 0).then_some(cursor)
    }
}

/// One page of jobs, newest first.
#[derive(Debug, Clone)]
pub struct JobPage {
    /// The jobs on this page.
    pub jobs: Vec<Job>,
    /// Jobs matching the filter in all.
    pub total: u64,
    /// Where the next page starts, when more jobs match after this one.
    pub next: Option<Cursor>,
}

/// One page of jobs already serialised as the API's JSON array, newest first.
#[derive(Debug, Clone)]
pub struct JsonPage {
    /// `[job, …]`, each as `Job` serialises.
    pub jobs: String,
    /// Jobs on this page.
    pub count: usize,
    /// Jobs matching the filter in all.
    pub total: u64,
    /// Where the next page starts, when more jobs match after this one.
    pub next: Option<Cursor>,
}

/// Per-pipeline counts and the time of the last finished job.
#[derive(Debug, Clone, Default)]
pub struct PipelineCounts {
    /// Jobs per status.
    pub by_status: std::collections::HashMap<JobStatus, u64>,
    /// When the newest terminal job ended.
    pub last_run: Option<DateTime<Utc>>,
}

/// Durable job storage.
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Persists a new queued job.
    async fn insert(&self, job: &Job) -> StoreResult<()>;
    /// queued(attempt) → running; false when the job is no longer queued at that attempt.
    async fn mark_running(&self, id: &str, attempt: u32, at: DateTime<Utc>) -> StoreResult<bool>;
    /// Records progress of a running attempt (fenced; stale writes are ignored).
    async fn save_progress(&self, id: &str, attempt: u32, progress: &Progress) -> StoreResult<()>;
    /// running(attempt) → terminal; false when fenced out (stale attempt or already terminal).
    async fn finish(&self, id: &str, attempt: u32, finish: &Finish) -> StoreResult<bool>;
    /// `finish`, then `mark_running` of `next`, as one durable write where the backend can, so a
    /// busy lane pays one commit per job; returns (finished, claimed). The default makes two calls.
    async fn finish_and_claim(
        &self,
        id: &str,
        attempt: u32,
        finish: &Finish,
        next: Option<Claim<'_>>,
    ) -> StoreResult<(bool, Option<bool>)> {
        let finished = self.finish(id, attempt, finish).await?;
        let claimed = match next {
            Some(c) => Some(self.mark_running(c.id, c.attempt, c.at).await?),
            None => None,
        };
        Ok((finished, claimed))
    }
    /// running(attempt) → queued(attempt + 1) after a retryable failure, runnable after `delay`:
    /// the store keeps the time (`run_after`), so `recover` and `ClusterStore::claim` hold the
    /// job until then, on every backend and across restarts.
    async fn requeue(
        &self,
        id: &str,
        attempt: u32,
        error: &JobFailure,
        delay: std::time::Duration,
    ) -> StoreResult<bool>;
    /// queued | running → cancelled; returns the job as it was before, None when absent or terminal.
    async fn cancel(&self, id: &str, at: DateTime<Utc>) -> StoreResult<Option<Job>>;
    /// One job.
    async fn get(&self, id: &str) -> StoreResult<Option<Job>>;
    /// A page of jobs, newest first.
    async fn list(&self, filter: &JobFilter) -> StoreResult<JobPage>;
    /// A page of jobs as JSON, newest first: what `GET /api/jobs` sends. The default
    /// serialises `list`; a backend may write its rows straight to JSON.
    async fn list_json(&self, filter: &JobFilter) -> StoreResult<JsonPage> {
        let page = self.list(filter).await?;
        let jobs = serde_json::to_string(&page.jobs).map_err(|e| StoreError::Backend(e.into()))?;
        Ok(JsonPage { jobs, count: page.jobs.len(), total: page.total, next: page.next })
    }
    /// Counts per pipeline.
    async fn counts(&self) -> StoreResult<std::collections::HashMap<String, PipelineCounts>>;
    /// At start: jobs left running by a dead process go back to queued with attempt + 1;
    /// returns every queued job, oldest first, with the time it may run from.
    async fn recover(&self) -> StoreResult<Vec<Recovered>>;
    /// Appends log lines of a job.
    async fn append_logs(&self, id: &str, entries: Vec<LogEntry>) -> StoreResult<()>;
    /// A job's log, in order.
    async fn logs(&self, id: &str) -> StoreResult<Vec<LogEntry>>;
    /// Waits until every accepted write is durable.
    async fn flush(&self) -> StoreResult<()>;
    /// Terminal jobs of `pipeline` past its retention, oldest first, at most `limit`: those
    /// finished before `before`, and those beyond the newest `keep` terminal ones.
    async fn expired(
        &self,
        pipeline: &str,
        before: Option<DateTime<Utc>>,
        keep: Option<u32>,
        limit: u32,
    ) -> StoreResult<Vec<String>>;
    /// Deletes these jobs and their logs, if they are terminal; returns how many went.
    async fn delete_terminal(&self, ids: &[String]) -> StoreResult<u64>;
}

/// A note from the cluster to this node.
#[derive(Debug, Clone)]
pub enum ClusterNote {
    /// A job event, from any node (this one included).
    Event(crate::events::JobEvent),
    /// Jobs of this pipeline were queued.
    Wake(String),
    /// This job was cancelled.
    Cancel(String),
}

/// One pipeline's part of a [`ClusterStore::claim_many`].
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    /// The pipeline.
    pub pipeline: String,
    /// Jobs this node can start now.
    pub limit: u32,
    /// Jobs of the pipeline that may run at once across the cluster.
    pub cap: u32,
}

/// What a store shared by several runtime nodes adds: claiming with a cluster-wide
/// concurrency cap, leases, rescue, pruning, leader election and cross-node notes.
#[async_trait]
pub trait ClusterStore: JobStore {
    /// Claims up to `limit` runnable queued jobs of `pipeline` for `node`, never letting more
    /// than `cap` of that pipeline run across the cluster; they come back `running`.
    async fn claim(
        &self,
        pipeline: &str,
        node: &str,
        limit: u32,
        cap: u32,
        lease: std::time::Duration,
    ) -> StoreResult<Vec<Job>>;
    /// `claim` for several pipelines at once, each with its own limit and cap; a backend
    /// may do it in one statement. The default claims pipeline by pipeline.
    async fn claim_many(
        &self,
        requests: &[ClaimRequest],
        node: &str,
        lease: std::time::Duration,
    ) -> StoreResult<Vec<Job>> {
        let mut jobs = Vec::new();
        for r in requests {
            jobs.extend(self.claim(&r.pipeline, node, r.limit, r.cap, lease).await?);
        }
        Ok(jobs)
    }
    /// Renews `node`'s leases; returns the ids among `running` that were cancelled meanwhile.
    async fn heartbeat(&self, node: &str, running: &[String], lease: std::time::Duration) -> StoreResult<Vec<String>>;
    /// Re-queues, with attempt + 1, running jobs whose lease expired; returns how many.
    async fn rescue_expired(&self) -> StoreResult<u64>;
    /// Deletes terminal jobs (and their logs) that ended before `before`.
    async fn prune(&self, before: DateTime<Utc>) -> StoreResult<u64>;
    /// True while this process holds the maintenance leadership.
    async fn try_lead(&self) -> StoreResult<bool>;
    /// Jobs of `pipeline` waiting, across the cluster.
    async fn queued_count(&self, pipeline: &str) -> StoreResult<u64>;
    /// Sends an event to every node, this one included.
    async fn broadcast(&self, event: &crate::events::JobEvent) -> StoreResult<()>;
    /// Whether `insert` itself broadcasts the job's `job:created` event, in the transaction
    /// that commits the row, so no node can see a later event of the job (a claim's
    /// `job:started`) before it; the queue then does not broadcast it again.
    fn notifies_created(&self) -> bool {
        false
    }
    /// Notes from the cluster.
    fn notes(&self) -> tokio::sync::broadcast::Receiver<ClusterNote>;
}
