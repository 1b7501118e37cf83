//! What a fire calls: the `JobLauncher` (one job through the queue; the runtime's is the
//! `Queue`, a test's is a fake) and, for schedules naming an inventory, an `InventoryLauncher`
//! that starts a run over it. The runs module implements the latter at merge; until then the
//! runtime's `NoInventories` refuses, and the fire is reported missed with its reason.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::Digest as _;

use crate::domain::{JobStatus, format_ts};
use crate::events::JobEvent;
use crate::queue::{Executor, Origin, Queue, TriggerError};
use crate::store::StoreError;

/// Why a launch created nothing.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The job (or run) for this fire exists already: another node or an earlier process made it.
    #[error("already launched")]
    AlreadyLaunched,
    /// The trigger was refused (bad parameters, queue full, pipeline disabled, ...).
    #[error("{0}")]
    Refused(String),
}

/// Creates a schedule's jobs and answers what the scheduler asks about them.
#[async_trait]
pub trait JobLauncher: Send + Sync + 'static {
    /// Whether `pipeline` is configured.
    fn has_pipeline(&self, pipeline: &str) -> bool;
    /// Checks parameters as a trigger would (a 400 at schedule creation, not a miss later).
    async fn validate(&self, pipeline: &str, params: Value) -> Result<(), String>;
    /// Creates the job; with `origin.job_id` set, exactly once for that id.
    async fn launch(&self, pipeline: &str, params: Value, origin: Origin) -> Result<String, LaunchError>;
    /// The status of a job this launcher created; None when it is gone.
    async fn status(&self, job_id: &str) -> Option<JobStatus>;
    /// Publishes a schedule event (after the state it reports is stored).
    async fn publish(&self, event: JobEvent);
}

/// What an inventory schedule hands the runs module for one fire.
#[derive(Debug, Clone)]
pub struct StartRun {
    /// The pipeline of every job of the run.
    pub pipeline: String,
    /// The inventory's name.
    pub inventory: String,
    /// Parameters shared by every job (each gets its repository on top).
    pub parameters: Value,
    /// `schedule:<id>`.
    pub triggered_by: String,
    /// Unique per (schedule, fire time): a second start with the same key must create nothing
    /// and answer `LaunchError::AlreadyLaunched`.
    pub dedupe_key: String,
    /// The fire time.
    pub scheduled_for: DateTime<Utc>,
}

/// Starts runs over inventories (implemented over the runs module at merge).
#[async_trait]
pub trait InventoryLauncher: Send + Sync + 'static {
    /// Whether `inventory` exists (checked when a schedule is created).
    async fn has_inventory(&self, inventory: &str) -> bool;
    /// Starts a run; returns its id.
    async fn start(&self, run: StartRun) -> Result<String, LaunchError>;
    /// Whether the run is still going (for the overlap policy).
    async fn is_active(&self, run_id: &str) -> bool;
}

/// Told of every missed fire (the webhooks' `schedule_missed`); storing it must be durable
/// before it returns, and a repeat of the same (schedule, fire) must store nothing new.
#[async_trait]
pub trait MissSink: Send + Sync + 'static {
    /// `schedule` of `pipeline` missed its fire at `fire` because of `reason`.
    async fn missed(&self, pipeline: &str, schedule: &str, fire: DateTime<Utc>, reason: &str);
}

/// The launcher of a build without runs: every inventory is unknown.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoInventories;

#[async_trait]
impl InventoryLauncher for NoInventories {
    async fn has_inventory(&self, _inventory: &str) -> bool {
        false
    }

    async fn start(&self, run: StartRun) -> Result<String, LaunchError> {
        Err(LaunchError::Refused(format!("inventory {:?} is unknown: no inventories are configured", run.inventory)))
    }

    async fn is_active(&self, _run_id: &str) -> bool {
        false
    }
}

/// The id of the job for `schedule`'s fire at `fire`: `<pipeline>-schedule-<unix s>-<12 hex of
/// the schedule id's SHA-256>`, at most 97 characters for a 63-character pipeline id, so every
/// process derives the same id and the job table's key makes the fire exactly once.
pub fn fire_job_id(pipeline: &str, schedule: &str, fire: DateTime<Utc>) -> String {
    let digest = sha2::Sha256::digest(schedule.as_bytes());
    format!("{pipeline}-schedule-{}-{}", fire.timestamp(), &hex::encode(digest)[..12])
}

/// The dedupe key of an inventory fire.
pub fn fire_key(schedule: &str, fire: DateTime<Utc>) -> String {
    format!("{schedule}@{}", format_ts(&fire))
}

#[async_trait]
impl<X: Executor> JobLauncher for Queue<X> {
    fn has_pipeline(&self, pipeline: &str) -> bool {
        self.pipeline(pipeline).is_ok()
    }

    async fn validate(&self, pipeline: &str, params: Value) -> Result<(), String> {
        self.executor().validate(pipeline, params).await.map(|_| ()).map_err(|e| e.to_string())
    }

    async fn launch(&self, pipeline: &str, params: Value, origin: Origin) -> Result<String, LaunchError> {
        let p = self.pipeline(pipeline).map_err(|e| LaunchError::Refused(e.to_string()))?;
        match p.trigger_as(params, origin).await {
            Ok(job) => Ok(job.id),
            Err(TriggerError::Store(StoreError::Duplicate(_))) => Err(LaunchError::AlreadyLaunched),
            Err(e) => Err(LaunchError::Refused(e.to_string())),
        }
    }

    async fn status(&self, job_id: &str) -> Option<JobStatus> {
        match self.store().get(job_id).await {
            Ok(job) => job.map(|j| j.status),
            Err(e) => {
                // Unknown is treated as "still going" by the overlap check (no double run).
                tracing::warn!(error = %e, job_id, "reading a scheduled job's status failed");
                Some(JobStatus::Running)
            }
        }
    }

    async fn publish(&self, event: JobEvent) {
        self.publish_event(event).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fire_ids_are_stable_valid_and_bounded() {
        let fire = crate::domain::parse_ts("2026-03-29T01:00:00Z").unwrap();
        let a = fire_job_id("duplicate-detection", "nightly", fire);
        assert_eq!(a, fire_job_id("duplicate-detection", "nightly", fire));
        assert_ne!(a, fire_job_id("duplicate-detection", "nightly2", fire));
        assert!(crate::domain::is_valid_job_id(&a), "{a}");
        let long = fire_job_id(&"p".repeat(63), &"s".repeat(40), fire);
        assert!(crate::domain::is_valid_job_id(&long) && long.len() <= 100, "{long}");
    }
}
