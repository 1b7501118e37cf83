//! The scheduler loop: on each tick, every unpaused schedule whose next fire has come is
//! fired through the `JobLauncher` (or its inventory's launcher), after the misfire policy
//! (fires more than `GRACE` late were missed while the service was down) and the overlap
//! policy (the previous job still queued or running) had their say. State is saved after the
//! launches; a crash in between re-decides the same fires, and the fire's job id makes the
//! second launch a no-op (`LaunchError::AlreadyLaunched`).
//!
//! In a cluster every node ticks; the job id decides which node's launch wins, so a node
//! killed between deciding and inserting leaves the fire to the others. (A miss may then be
//! reported by more than one node.)

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::clock::Clock;
use super::cron::Timing;
use super::launch::{InventoryLauncher, JobLauncher, LaunchError, MissSink, StartRun, fire_job_id, fire_key};
use crate::config::{MisfirePolicy, OverlapPolicy};
use crate::domain::{JobStatus, format_ts};
use crate::events::{EventKind, JobEvent};
use crate::failpoints;
use crate::queue::Origin;
use crate::store::schedules::{ScheduleDef, ScheduleRecord, ScheduleState, ScheduleStore};

/// Seconds after its time a fire still counts as on time; later, it was missed (the service
/// was not running) and the misfire policy decides.
pub const GRACE_SECS: i64 = 60;
/// Missed fires counted one by one at most; beyond, the miss says "more".
const MAX_CATCH_UP: usize = 1000;

/// What the loop and the API share.
pub(crate) struct Engine {
    pub(crate) store: Arc<dyn ScheduleStore>,
    pub(crate) jobs: Arc<dyn JobLauncher>,
    pub(crate) inventories: Arc<dyn InventoryLauncher>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Told of missed fires (webhooks), when set.
    pub(crate) misses: Option<Arc<dyn MissSink>>,
    /// Rung when a schedule changes over the API, so the loop re-reads at once.
    pub(crate) wake: Notify,
}

impl Engine {
    /// Runs until `shutdown`.
    pub(crate) async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let (next, waiting) = self.tick().await;
            // Other nodes' changes and ended jobs (for a held-back fire) are seen by polling.
            let max = if waiting { Duration::from_millis(500) } else { Duration::from_secs(5) };
            tokio::select! {
                _ = self.clock.wait(next, max) => {}
                _ = self.wake.notified() => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// One pass over every schedule; returns the earliest next fire and whether a fire is
    /// held back by the overlap policy.
    pub(crate) async fn tick(&self) -> (Option<DateTime<Utc>>, bool) {
        let now = self.clock.now();
        let records = match self.store.list_schedules().await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "reading schedules failed");
                return (None, false);
            }
        };
        let (mut earliest, mut waiting) = (None::<DateTime<Utc>>, false);
        for rec in records {
            if rec.def.paused {
                continue;
            }
            match self.step(&rec, now).await {
                Ok(state) => {
                    if let Some(n) = state.next_fire {
                        earliest = Some(earliest.map_or(n, |e| e.min(n)));
                    }
                    waiting |= state.pending_fire.is_some();
                }
                Err(e) => tracing::error!(schedule = %rec.def.id, error = %e, "schedule step failed"),
            }
        }
        (earliest, waiting)
    }

    /// Fires what is due of one schedule and saves its state.
    async fn step(&self, rec: &ScheduleRecord, now: DateTime<Utc>) -> anyhow::Result<ScheduleState> {
        let def = &rec.def;
        let timing = Timing::parse(&def.cron, &def.timezone)?;
        let mut st = rec.state.clone();
        if let Some(pending) = st.pending_fire
            && !self.busy(def, &st).await
        {
            st.pending_fire = None;
            self.fire(def, pending, &mut st).await;
        }
        match st.next_fire {
            None => st.next_fire = timing.next_after(now),
            Some(next) if next <= now => {
                let before_first = next - chrono::TimeDelta::milliseconds(1);
                let (due, more) = timing.fires_between(before_first, now, MAX_CATCH_UP);
                let grace = chrono::TimeDelta::seconds(GRACE_SECS);
                let (mut missed, on_time): (Vec<_>, Vec<_>) = due.iter().copied().partition(|t| now - *t > grace);
                let mut to_fire = on_time;
                if MisfirePolicy::parse(&def.misfire) == Some(MisfirePolicy::RunOnce)
                    && to_fire.is_empty()
                    && let Some(latest) = missed.pop()
                {
                    to_fire.push(latest);
                }
                if let Some(latest) = missed.last() {
                    let reason = "the service was not running at the fire time";
                    self.missed(def, *latest, reason, missed.len(), more).await;
                }
                for t in to_fire {
                    self.fire_unless_overlapping(def, t, &mut st).await;
                }
                st.last_fire = due.last().copied().or(st.last_fire);
                st.next_fire = timing.next_after(now);
            }
            Some(_) => {}
        }
        if st != rec.state {
            self.store.save_schedule_state(&def.id, &st).await?;
        }
        Ok(st)
    }

    /// True while the schedule's last job (or run) is queued or running.
    async fn busy(&self, def: &ScheduleDef, st: &ScheduleState) -> bool {
        let Some(last) = &st.last_job_id else { return false };
        if def.inventory.is_some() {
            return self.inventories.is_active(last).await;
        }
        matches!(self.jobs.status(last).await, Some(JobStatus::Queued | JobStatus::Running))
    }

    async fn fire_unless_overlapping(&self, def: &ScheduleDef, fire: DateTime<Utc>, st: &mut ScheduleState) {
        if self.busy(def, st).await {
            let previous = st.last_job_id.clone().unwrap_or_default();
            match OverlapPolicy::parse(&def.overlap).unwrap_or_default() {
                OverlapPolicy::Skip => {
                    let reason = format!("the previous job {previous} is still going (overlap policy skip)");
                    return self.missed(def, fire, &reason, 1, false).await;
                }
                OverlapPolicy::Queue if st.pending_fire.is_none() => {
                    st.pending_fire = Some(fire);
                    return;
                }
                OverlapPolicy::Queue => {
                    let reason = format!("the previous job {previous} is still going and a fire already waits for it");
                    return self.missed(def, fire, &reason, 1, false).await;
                }
                OverlapPolicy::Allow => {}
            }
        }
        self.fire(def, fire, st).await;
    }

    /// Launches the fire's job (or run), exactly once per (schedule, fire time).
    async fn fire(&self, def: &ScheduleDef, fire: DateTime<Utc>, st: &mut ScheduleState) {
        tracing::info!(schedule = %def.id, fire = %format_ts(&fire), "schedule firing");
        // Test builds: a node can be stopped or killed here, between deciding and inserting.
        failpoints::hit(failpoints::SCHEDULE_FIRE);
        let triggered_by = format!("schedule:{}", def.id);
        let (launched, fixed_id) = match &def.inventory {
            Some(inventory) => {
                let run = StartRun {
                    pipeline: def.pipeline_id.clone(),
                    inventory: inventory.clone(),
                    parameters: def.parameters.clone(),
                    triggered_by,
                    dedupe_key: fire_key(&def.id, fire),
                    scheduled_for: fire,
                };
                (self.inventories.start(run).await, None)
            }
            None => {
                let id = fire_job_id(&def.pipeline_id, &def.id, fire);
                let origin = Origin {
                    job_id: Some(id.clone()),
                    scheduled_for: Some(fire),
                    ..Origin::new("schedule", &triggered_by)
                };
                (self.jobs.launch(&def.pipeline_id, def.parameters.clone(), origin).await, Some(id))
            }
        };
        // Test builds: a process can be killed here, after inserting and before saving state.
        failpoints::hit(failpoints::SCHEDULE_FIRED);
        match launched {
            Ok(id) => {
                st.last_job_id = Some(id.clone());
                let payload = json!({"scheduleId": def.id, "fireTime": format_ts(&fire), "jobId": id});
                self.jobs.publish(JobEvent::schedule(EventKind::ScheduleFired, &def.pipeline_id, &id, payload)).await;
            }
            Err(LaunchError::AlreadyLaunched) => {
                tracing::info!(schedule = %def.id, fire = %format_ts(&fire), "fire already launched elsewhere");
                if fixed_id.is_some() {
                    st.last_job_id = fixed_id;
                }
            }
            Err(LaunchError::Refused(reason)) => {
                tracing::warn!(schedule = %def.id, %reason, "schedule fire refused");
                self.missed(def, fire, &reason, 1, false).await;
            }
        }
    }

    async fn missed(&self, def: &ScheduleDef, fire: DateTime<Utc>, reason: &str, count: usize, more: bool) {
        tracing::warn!(schedule = %def.id, fire = %format_ts(&fire), count, reason, "schedule missed");
        let payload =
            json!({"scheduleId": def.id, "fireTime": format_ts(&fire), "reason": reason, "count": count, "more": more});
        self.jobs.publish(JobEvent::schedule(EventKind::ScheduleMissed, &def.pipeline_id, "", payload)).await;
        if let Some(sink) = &self.misses {
            sink.missed(&def.pipeline_id, &def.id, fire, reason).await;
        }
    }
}
