//! The `RunStore` trait: fan-out runs (one job per inventory target, grouped under a run id),
//! their targets, and the inventories created over the API. Implemented by `sqlite::runs`
//! and `postgres_runs`, each next to the jobs table it joins for a run's aggregate.
//!
//! **Invariant:** a run's `dedupe_key` is unique, so a repeated start (a schedule's fire
//! replayed after a restart, or by a second node) finds the existing run instead of a second.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::StoreResult;
use crate::domain::JobStatus;

/// A run as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// `run-<pipeline>-<ms>-<n>`.
    pub id: String,
    /// Pipeline every job of the run belongs to.
    pub pipeline_id: String,
    /// Inventory the targets came from.
    pub inventory: String,
    /// Parameters shared by every job (the path parameter is set per target).
    pub parameters: Value,
    /// Which parameter received each target's path.
    pub path_parameter: String,
    /// Who started it (`api`, `cli`, `schedule:<id>`).
    pub triggered_by: String,
    /// Unique when set: a second start with it returns this run.
    pub dedupe_key: Option<String>,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// When every target had its job (or refusal); None while jobs are still being created.
    pub started_at: Option<DateTime<Utc>>,
    /// When it was cancelled.
    pub cancelled_at: Option<DateTime<Utc>>,
    /// Targets the inventory yielded (jobs plus refusals).
    pub target_count: u32,
    /// The discovery walk stopped at its entry budget.
    pub truncated: bool,
}

/// One target of a run: its job, or why it got none.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetRecord {
    /// Position in the run (0-based).
    pub seq: u32,
    /// The target path.
    pub path: String,
    /// Its job, when one was created.
    pub job_id: Option<String>,
    /// Why no job was created (outside the roots, queue full, ...).
    pub refused: Option<String>,
    /// The job's status, read from the jobs table (None: refused, or the job was pruned).
    pub status: Option<JobStatus>,
    /// When the job finished.
    pub completed_at: Option<DateTime<Utc>>,
}

/// A run's targets counted by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunCounts {
    /// Jobs waiting.
    pub queued: u32,
    /// Jobs running.
    pub running: u32,
    /// Jobs completed.
    pub completed: u32,
    /// Jobs failed.
    pub failed: u32,
    /// Jobs cancelled.
    pub cancelled: u32,
    /// Targets refused at trigger (no job).
    pub refused: u32,
    /// Jobs no longer stored (pruned by retention).
    pub missing: u32,
}

impl RunCounts {
    /// Adds `n` targets in `status` (None: refused when `refused`, else missing).
    pub fn add(&mut self, status: Option<JobStatus>, refused: bool, n: u32) {
        let slot = match status {
            Some(JobStatus::Queued) => &mut self.queued,
            Some(JobStatus::Running) => &mut self.running,
            Some(JobStatus::Completed) => &mut self.completed,
            Some(JobStatus::Failed) => &mut self.failed,
            Some(JobStatus::Cancelled) => &mut self.cancelled,
            None if refused => &mut self.refused,
            None => &mut self.missing,
        };
        *slot += n;
    }
}

/// The latest job of one inventory target, across runs.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetHistory {
    /// The target path.
    pub path: String,
    /// The run it was last part of.
    pub run_id: String,
    /// When that run started.
    pub scanned_at: DateTime<Utc>,
    /// Its job there (None: refused).
    pub job_id: Option<String>,
    /// The job's status.
    pub status: Option<JobStatus>,
    /// Why it was refused.
    pub refused: Option<String>,
    /// When the job finished.
    pub completed_at: Option<DateTime<Utc>>,
}

/// An inventory created over the API.
#[derive(Debug, Clone, PartialEq)]
pub struct InventoryRecord {
    /// Its name.
    pub name: String,
    /// Its definition (`config::InventoryConfig` as JSON).
    pub spec: Value,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// Storage of runs, their targets and API-created inventories.
#[async_trait]
pub trait RunStore: Send + Sync + 'static {
    /// Inserts `run`; when its dedupe key is taken, returns the existing run and false.
    async fn create_run(&self, run: &RunRecord) -> StoreResult<(RunRecord, bool)>;
    /// Records target `seq` of a run: its job or its refusal.
    async fn add_target(&self, run_id: &str, target: &TargetRecord) -> StoreResult<()>;
    /// Marks every target of the run as recorded.
    async fn mark_started(&self, run_id: &str, targets: u32, truncated: bool, at: DateTime<Utc>) -> StoreResult<()>;
    /// Marks the run cancelled (idempotent: the first time is kept); false when it does not exist.
    async fn mark_cancelled(&self, run_id: &str, at: DateTime<Utc>) -> StoreResult<bool>;
    /// One run.
    async fn run(&self, id: &str) -> StoreResult<Option<RunRecord>>;
    /// Runs newest first, and how many there are in all (`pipeline`: only its runs).
    async fn runs(&self, pipeline: Option<&str>, limit: u32, offset: u32) -> StoreResult<(Vec<RunRecord>, u64)>;
    /// A run's targets in order, with their jobs' statuses.
    async fn targets(&self, run_id: &str) -> StoreResult<Vec<TargetRecord>>;
    /// A run's targets counted by outcome.
    async fn counts(&self, run_id: &str) -> StoreResult<RunCounts>;
    /// The latest run entry of every target ever run from `inventory`.
    async fn history(&self, inventory: &str) -> StoreResult<Vec<TargetHistory>>;
    /// Stores an inventory; false when the name is taken.
    async fn put_inventory(&self, inv: &InventoryRecord) -> StoreResult<bool>;
    /// One API-created inventory.
    async fn inventory(&self, name: &str) -> StoreResult<Option<InventoryRecord>>;
    /// Every API-created inventory, by name.
    async fn inventories(&self) -> StoreResult<Vec<InventoryRecord>>;
    /// Deletes an API-created inventory; false when there was none.
    async fn delete_inventory(&self, name: &str) -> StoreResult<bool>;
}
