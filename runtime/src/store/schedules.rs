//! Durable schedules behind the `ScheduleStore` trait: each schedule's definition (from the
//! configuration, synced at start, or created over the API) and its state (last and next fire,
//! the last job, a fire held back by the `queue` overlap policy).
//!
//! **Invariant:** a fire time produces at most one job: the scheduler derives the job's id from
//! (schedule id, fire time), so the job table's primary key is the exactly-once key, written in
//! the same statement as the job itself (see `schedule::launch`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::StoreResult;

/// Where a schedule was declared.
pub const SOURCE_CONFIG: &str = "config";
/// Created over the API.
pub const SOURCE_API: &str = "api";

/// A schedule's definition, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleDef {
    /// Unique id (`[A-Za-z0-9_-]{1,40}`).
    pub id: String,
    /// The pipeline it triggers.
    pub pipeline_id: String,
    /// Cron expression (5 or 6 fields, or an `@daily`-style alias).
    pub cron: String,
    /// IANA time zone the expression is read in.
    pub timezone: String,
    /// The job's parameters (a JSON object).
    pub parameters: Value,
    /// When set, each fire starts a run over this inventory instead of one job.
    pub inventory: Option<String>,
    /// `skip` or `run_once`.
    pub misfire: String,
    /// `skip`, `queue` or `allow`.
    pub overlap: String,
    /// Paused schedules do not fire.
    pub paused: bool,
    /// `config` or `api`.
    pub source: String,
}

/// A schedule's moving state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScheduleState {
    /// The newest fire time acted on (fired, skipped or missed).
    pub last_fire: Option<DateTime<Utc>>,
    /// The next fire time the scheduler waits for.
    pub next_fire: Option<DateTime<Utc>>,
    /// The job (or run) the last fire created.
    pub last_job_id: Option<String>,
    /// A fire held back until the previous job ends (overlap `queue`).
    pub pending_fire: Option<DateTime<Utc>>,
}

/// A stored schedule: its definition and state.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleRecord {
    /// The definition.
    pub def: ScheduleDef,
    /// The state.
    pub state: ScheduleState,
    /// When it was first stored.
    pub created_at: DateTime<Utc>,
    /// When its definition last changed.
    pub updated_at: DateTime<Utc>,
}

/// Durable schedule storage.
#[async_trait]
pub trait ScheduleStore: Send + Sync + 'static {
    /// Every schedule, ordered by id.
    async fn list_schedules(&self) -> StoreResult<Vec<ScheduleRecord>>;
    /// One schedule.
    async fn get_schedule(&self, id: &str) -> StoreResult<Option<ScheduleRecord>>;
    /// Stores a new schedule; `StoreError::Duplicate` when the id is taken.
    async fn create_schedule(&self, def: &ScheduleDef, next_fire: Option<DateTime<Utc>>) -> StoreResult<()>;
    /// Replaces a schedule's definition and next fire (its history stays); false when absent.
    async fn update_schedule(&self, def: &ScheduleDef, next_fire: Option<DateTime<Utc>>) -> StoreResult<bool>;
    /// Deletes a schedule; false when absent.
    async fn delete_schedule(&self, id: &str) -> StoreResult<bool>;
    /// Writes a schedule's state, unless another writer (a node of the cluster) already
    /// recorded a later fire; returns whether it was written.
    async fn save_schedule_state(&self, id: &str, state: &ScheduleState) -> StoreResult<bool>;
    /// Makes the configuration's schedules the stored `config` ones: new ones are created with
    /// `next_fire`, changed definitions are replaced (keeping their history; the next fire is
    /// recomputed when the cron or time zone changed), and `config` schedules no longer
    /// declared are deleted. Each entry is (definition, next fire if new or re-timed).
    async fn sync_config_schedules(&self, defs: &[(ScheduleDef, Option<DateTime<Utc>>)]) -> StoreResult<()>;
}

/// A changed configuration entry; `paused` alone does not count, so a pause made over the API
/// survives a restart with the same configuration.
pub fn differs(old: &ScheduleDef, new: &ScheduleDef) -> bool {
    let mut old = old.clone();
    old.paused = new.paused;
    &old != new
}
