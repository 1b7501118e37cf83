//! Cron schedules: definitions from the configuration (synced into the store at start) and
//! from the API, a loop that fires them exactly once per fire time, and the operations the
//! API and CLI offer (list, create, update, delete, pause, resume, run now).
//!
//! `cron`: expressions and time zones. `spec`: checking a definition. `clock`: where "now"
//! comes from (a file under the `test-hooks` feature). `launch`: the job and inventory
//! launchers a fire calls and the fire's exactly-once job id. `scheduler`: the loop.
//!
//! **Invariant:** a (schedule, fire time) pair creates at most one job, across restarts and
//! cluster nodes: its job id is derived from the pair and the job table's key refuses a second.

pub mod clock;
pub mod cron;
pub mod launch;
pub mod scheduler;
pub mod spec;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use self::clock::Clock;
use self::cron::Timing;
use self::launch::{InventoryLauncher, JobLauncher, LaunchError, MissSink};
use self::scheduler::Engine;
use self::spec::{FieldError, ScheduleInput};
use crate::config::Config;
use crate::domain::{JobStatus, format_ts};
use crate::queue::Origin;
use crate::store::StoreError;
use crate::store::schedules::{SOURCE_API, SOURCE_CONFIG, ScheduleRecord, ScheduleStore};

/// Why a schedule operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// No schedule with that id.
    #[error("Schedule not found: {0}")]
    NotFound(String),
    /// A field is wrong (400 naming it).
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// The id is taken, or the schedule belongs to the configuration.
    #[error("{0}")]
    Conflict(String),
    /// Run now: the trigger was refused.
    #[error("{0}")]
    Refused(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A schedule as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleView {
    /// Schedule id.
    pub id: String,
    /// The pipeline it triggers.
    pub pipeline_id: String,
    /// Cron expression.
    pub cron: String,
    /// IANA time zone.
    pub timezone: String,
    /// Job parameters.
    #[schema(value_type = Object)]
    pub parameters: Value,
    /// Inventory a fire runs over, if any.
    pub inventory: Option<String>,
    /// `skip` or `run_once`.
    pub misfire: String,
    /// `skip`, `queue` or `allow`.
    pub overlap: String,
    /// Paused schedules do not fire.
    pub paused: bool,
    /// `config` or `api`.
    pub source: String,
    /// The next fire time (null while paused).
    pub next_fire: Option<String>,
    /// The next few fire times after it.
    pub upcoming: Vec<String>,
    /// The newest fire time acted on.
    pub last_fire: Option<String>,
    /// The job the last fire (or run now) created.
    pub last_job_id: Option<String>,
    /// That job's status (`queued`, `running`, `completed`, `failed`, `cancelled`), null when
    /// there is none or it was pruned.
    pub last_outcome: Option<String>,
    /// A fire waiting for the previous job to end (overlap `queue`).
    pub pending_fire: Option<String>,
    /// When it was stored.
    pub created_at: String,
    /// When its definition last changed.
    pub updated_at: String,
}

/// The schedules service; cheap to clone.
#[derive(Clone)]
pub struct Schedules {
    engine: Arc<Engine>,
}

impl std::fmt::Debug for Schedules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schedules").finish_non_exhaustive()
    }
}

impl Schedules {
    /// Schedules kept in `store`, fired through `jobs` (and `inventories`), timed by `clock`;
    /// `misses`, when set, is told of every missed fire (the webhooks' `schedule_missed`).
    pub fn new(
        store: Arc<dyn ScheduleStore>,
        jobs: Arc<dyn JobLauncher>,
        inventories: Arc<dyn InventoryLauncher>,
        clock: Arc<dyn Clock>,
        misses: Option<Arc<dyn MissSink>>,
    ) -> Self {
        Self { engine: Arc::new(Engine { store, jobs, inventories, clock, misses, wake: tokio::sync::Notify::new() }) }
    }

    /// Checks the configuration's schedules and makes them the stored `config` ones; an
    /// invalid entry fails the start with the key at fault.
    pub async fn sync_config(&self, config: &Config) -> anyhow::Result<()> {
        let now = self.engine.clock.now();
        let mut defs = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (pipeline, p) in &config.pipelines {
            for (i, s) in p.schedules.iter().enumerate() {
                let key = format!("pipelines.{pipeline}.schedules[{i}]");
                let (def, timing) = spec::check(spec::from_config(pipeline, s), &s.id, SOURCE_CONFIG)
                    .map_err(|e| anyhow::anyhow!("{key}.{e}"))?;
                if !seen.insert(def.id.clone()) {
                    anyhow::bail!("{key}.id: schedule id {:?} is used twice", def.id);
                }
                defs.push((def, timing.next_after(now)));
            }
        }
        self.engine.store.sync_config_schedules(&defs).await?;
        Ok(())
    }

    /// Triggers one job of every pipeline with `run_on_startup`.
    pub async fn run_on_startup(&self, config: &Config) {
        for (pipeline, _) in config.pipelines.iter().filter(|(_, p)| p.run_on_startup) {
            let origin = Origin::new("startup", "startup");
            match self.engine.jobs.launch(pipeline, Value::Object(Default::default()), origin).await {
                Ok(id) => tracing::info!(pipeline, job = %id, "run on startup"),
                Err(e) => tracing::warn!(pipeline, error = %e, "run on startup refused"),
            }
        }
    }

    /// Starts the scheduler loop; it ends with `shutdown`.
    pub fn spawn(&self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.engine.clone().run(shutdown))
    }

    /// Every schedule, by id.
    pub async fn list(&self) -> Result<Vec<ScheduleView>, ScheduleError> {
        let records = self.engine.store.list_schedules().await?;
        let mut out = Vec::with_capacity(records.len());
        for rec in records {
            out.push(self.view(rec).await);
        }
        Ok(out)
    }

    /// One schedule.
    pub async fn get(&self, id: &str) -> Result<ScheduleView, ScheduleError> {
        let rec = self.record(id).await?;
        Ok(self.view(rec).await)
    }

    /// Creates a schedule over the API.
    pub async fn create(&self, input: ScheduleInput) -> Result<ScheduleView, ScheduleError> {
        let id = input.id.clone().ok_or_else(|| FieldError::new("id", "is required"))?;
        let (def, timing) = spec::check(input, &id, SOURCE_API)?;
        self.check_target(&def).await?;
        let next = (!def.paused).then(|| timing.next_after(self.engine.clock.now())).flatten();
        match self.engine.store.create_schedule(&def, next).await {
            Err(StoreError::Duplicate(_)) => {
                return Err(ScheduleError::Conflict(format!("Schedule {id} already exists")));
            }
            other => other?,
        }
        self.engine.wake.notify_one();
        self.get(&id).await
    }

    /// Replaces an API schedule's definition (its history stays; the next fire is recomputed).
    pub async fn update(&self, id: &str, input: ScheduleInput) -> Result<ScheduleView, ScheduleError> {
        if input.id.as_deref().is_some_and(|i| i != id) {
            return Err(FieldError::new("id", "differs from the id in the path").into());
        }
        let old = self.record(id).await?;
        Self::owned_by_api(&old, "changed")?;
        let (def, timing) = spec::check(input, id, SOURCE_API)?;
        self.check_target(&def).await?;
        let next = (!def.paused).then(|| timing.next_after(self.engine.clock.now())).flatten();
        if !self.engine.store.update_schedule(&def, next).await? {
            return Err(ScheduleError::NotFound(id.into()));
        }
        self.engine.wake.notify_one();
        self.get(id).await
    }

    /// Deletes an API schedule.
    pub async fn delete(&self, id: &str) -> Result<(), ScheduleError> {
        let old = self.record(id).await?;
        Self::owned_by_api(&old, "deleted")?;
        if !self.engine.store.delete_schedule(id).await? {
            return Err(ScheduleError::NotFound(id.into()));
        }
        Ok(())
    }

    /// Pauses a schedule (config ones too; the pause survives restarts).
    pub async fn pause(&self, id: &str) -> Result<ScheduleView, ScheduleError> {
        self.set_paused(id, true).await
    }

    /// Resumes a schedule: it next fires at its first fire time from now (no catch-up).
    pub async fn resume(&self, id: &str) -> Result<ScheduleView, ScheduleError> {
        self.set_paused(id, false).await
    }

    /// Triggers the schedule's job now, outside its timing; returns the job (or run) id.
    pub async fn run_now(&self, id: &str) -> Result<String, ScheduleError> {
        let rec = self.record(id).await?;
        let def = &rec.def;
        let triggered_by = format!("schedule:{}", def.id);
        let launched = match &def.inventory {
            Some(inventory) => {
                let now = self.engine.clock.now();
                let run = launch::StartRun {
                    pipeline: def.pipeline_id.clone(),
                    inventory: inventory.clone(),
                    parameters: def.parameters.clone(),
                    triggered_by,
                    dedupe_key: format!("{}@manual-{}", def.id, Utc::now().timestamp_micros()),
                    scheduled_for: now,
                };
                self.engine.inventories.start(run).await
            }
            None => {
                let origin = Origin::new("schedule", &triggered_by);
                self.engine.jobs.launch(&def.pipeline_id, def.parameters.clone(), origin).await
            }
        };
        let job_id = launched.map_err(|e| match e {
            LaunchError::Refused(m) => ScheduleError::Refused(m),
            LaunchError::AlreadyLaunched => ScheduleError::Conflict("already launched".into()),
        })?;
        let mut state = rec.state.clone();
        state.last_job_id = Some(job_id.clone());
        self.engine.store.save_schedule_state(id, &state).await?;
        Ok(job_id)
    }

    async fn set_paused(&self, id: &str, paused: bool) -> Result<ScheduleView, ScheduleError> {
        let rec = self.record(id).await?;
        let mut def = rec.def.clone();
        def.paused = paused;
        let next = if paused {
            None
        } else {
            let timing = Timing::parse(&def.cron, &def.timezone).map_err(|e| ScheduleError::Conflict(e.to_string()))?;
            timing.next_after(self.engine.clock.now())
        };
        self.engine.store.update_schedule(&def, next).await?;
        self.engine.wake.notify_one();
        self.get(id).await
    }

    async fn record(&self, id: &str) -> Result<ScheduleRecord, ScheduleError> {
        if !spec::is_valid_schedule_id(id) {
            return Err(FieldError::new("id", "must match [A-Za-z0-9_-]{1,40}").into());
        }
        self.engine.store.get_schedule(id).await?.ok_or_else(|| ScheduleError::NotFound(id.into()))
    }

    fn owned_by_api(rec: &ScheduleRecord, what: &str) -> Result<(), ScheduleError> {
        if rec.def.source == SOURCE_CONFIG {
            return Err(ScheduleError::Conflict(format!(
                "Schedule {} comes from the configuration file and cannot be {what} over the API \
                 (edit the file; pause, resume and run now work)",
                rec.def.id
            )));
        }
        Ok(())
    }

    /// The pipeline exists, the parameters pass its schema, the inventory exists.
    async fn check_target(&self, def: &crate::store::schedules::ScheduleDef) -> Result<(), ScheduleError> {
        if !self.engine.jobs.has_pipeline(&def.pipeline_id) {
            return Err(FieldError::new("pipelineId", format!("unknown pipeline {:?}", def.pipeline_id)).into());
        }
        if let Some(inv) = &def.inventory
            && !self.engine.inventories.has_inventory(inv).await
        {
            return Err(FieldError::new("inventory", format!("unknown inventory {inv:?}")).into());
        }
        if def.inventory.is_none() {
            self.engine
                .jobs
                .validate(&def.pipeline_id, def.parameters.clone())
                .await
                .map_err(|m| FieldError::new("parameters", m))?;
        }
        Ok(())
    }

    async fn view(&self, rec: ScheduleRecord) -> ScheduleView {
        let def = rec.def;
        let st = rec.state;
        let last_outcome = match (&st.last_job_id, &def.inventory) {
            (Some(id), None) => self.engine.jobs.status(id).await.map(|s: JobStatus| s.as_str().to_string()),
            (Some(id), Some(_)) => {
                Some(if self.engine.inventories.is_active(id).await { "running" } else { "finished" }.to_string())
            }
            (None, _) => None,
        };
        let upcoming = match (st.next_fire, Timing::parse(&def.cron, &def.timezone)) {
            (Some(next), Ok(t)) if !def.paused => {
                let (fires, _) = t.fires_between(next, DateTime::<Utc>::MAX_UTC, 3);
                fires.iter().map(format_ts).collect()
            }
            _ => Vec::new(),
        };
        ScheduleView {
            id: def.id,
            pipeline_id: def.pipeline_id,
            cron: def.cron,
            timezone: def.timezone,
            parameters: def.parameters,
            inventory: def.inventory,
            misfire: def.misfire,
            overlap: def.overlap,
            paused: def.paused,
            source: def.source,
            next_fire: st.next_fire.filter(|_| !def.paused).as_ref().map(format_ts),
            upcoming,
            last_fire: st.last_fire.as_ref().map(format_ts),
            last_job_id: st.last_job_id,
            last_outcome,
            pending_fire: st.pending_fire.as_ref().map(format_ts),
            created_at: format_ts(&rec.created_at),
            updated_at: format_ts(&rec.updated_at),
        }
    }
}
