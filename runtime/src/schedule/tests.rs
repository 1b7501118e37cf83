//! The scheduler against a real SQLite file, a fake launcher and a hand-moved clock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::clock::Clock;
use super::launch::{InventoryLauncher, JobLauncher, LaunchError, StartRun};
use super::spec::ScheduleInput;
use super::{ScheduleError, Schedules};
use crate::config::{MisfirePolicy, OverlapPolicy};
use crate::domain::{JobStatus, parse_ts};
use crate::events::{EventKind, JobEvent};
use crate::queue::Origin;
use crate::store::sqlite::SqliteStore;

fn t(s: &str) -> DateTime<Utc> {
    parse_ts(s).unwrap()
}

#[derive(Default)]
struct FakeClock(Mutex<Option<DateTime<Utc>>>);

impl FakeClock {
    fn set(&self, s: &str) {
        *self.0.lock().unwrap() = Some(t(s));
    }
}

#[async_trait]
impl Clock for FakeClock {
    fn now(&self) -> DateTime<Utc> {
        self.0.lock().unwrap().unwrap()
    }
    async fn wait(&self, _until: Option<DateTime<Utc>>, _max: Duration) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Jobs by id, with a settable status; refuses a second job with the same id, like the store.
#[derive(Default)]
struct FakeJobs {
    jobs: Mutex<HashMap<String, (Value, JobStatus)>>,
    order: Mutex<Vec<String>>,
    events: Mutex<Vec<JobEvent>>,
    counter: Mutex<u32>,
}

impl FakeJobs {
    fn fired(&self) -> Vec<String> {
        self.order.lock().unwrap().clone()
    }
    fn finish_all(&self) {
        for (_, st) in self.jobs.lock().unwrap().values_mut() {
            *st = JobStatus::Completed;
        }
    }
    fn events(&self, kind: EventKind) -> Vec<Value> {
        self.events.lock().unwrap().iter().filter(|e| e.kind == kind).map(|e| e.payload.clone()).collect()
    }
}

#[async_trait]
impl JobLauncher for FakeJobs {
    fn has_pipeline(&self, pipeline: &str) -> bool {
        pipeline == "echo"
    }
    async fn validate(&self, _pipeline: &str, params: Value) -> Result<(), String> {
        if params.get("bad").is_some() { Err("bad: not allowed".into()) } else { Ok(()) }
    }
    async fn launch(&self, _pipeline: &str, params: Value, origin: Origin) -> Result<String, LaunchError> {
        let id = origin.job_id.unwrap_or_else(|| {
            let mut c = self.counter.lock().unwrap();
            *c += 1;
            format!("echo-manual-{c}")
        });
        let mut jobs = self.jobs.lock().unwrap();
        if jobs.contains_key(&id) {
            return Err(LaunchError::AlreadyLaunched);
        }
        let mut data = params;
        data["triggeredBy"] = json!(origin.triggered_by);
        jobs.insert(id.clone(), (data, JobStatus::Queued));
        self.order.lock().unwrap().push(id.clone());
        Ok(id)
    }
    async fn status(&self, job_id: &str) -> Option<JobStatus> {
        self.jobs.lock().unwrap().get(job_id).map(|(_, s)| *s)
    }
    async fn publish(&self, event: JobEvent) {
        self.events.lock().unwrap().push(event);
    }
}

#[derive(Default)]
struct FakeInventories {
    runs: Mutex<Vec<StartRun>>,
}

#[async_trait]
impl InventoryLauncher for FakeInventories {
    async fn has_inventory(&self, inventory: &str) -> bool {
        inventory == "repos"
    }
    async fn start(&self, run: StartRun) -> Result<String, LaunchError> {
        let mut runs = self.runs.lock().unwrap();
        if runs.iter().any(|r| r.dedupe_key == run.dedupe_key) {
            return Err(LaunchError::AlreadyLaunched);
        }
        runs.push(run);
        Ok(format!("run-{}", runs.len()))
    }
    async fn is_active(&self, _run_id: &str) -> bool {
        false
    }
}

struct Rig {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    clock: Arc<FakeClock>,
    jobs: Arc<FakeJobs>,
    inventories: Arc<FakeInventories>,
    schedules: Schedules,
}

fn rig(now: &str) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("s.db")).unwrap());
    let clock = Arc::new(FakeClock::default());
    clock.set(now);
    let jobs = Arc::new(FakeJobs::default());
    let inventories = Arc::new(FakeInventories::default());
    let schedules = Schedules::new(store.clone(), jobs.clone(), inventories.clone(), clock.clone(), None);
    Rig { _dir: dir, store, clock, jobs, inventories, schedules }
}

impl Rig {
    /// Another process (or node) over the same store, launcher and clock.
    fn second(&self) -> Schedules {
        Schedules::new(self.store.clone(), self.jobs.clone(), self.inventories.clone(), self.clock.clone(), None)
    }
    async fn at(&self, now: &str) {
        self.clock.set(now);
        self.schedules.engine.tick().await;
    }
}

fn input(id: &str, cron: &str) -> ScheduleInput {
    ScheduleInput {
        id: Some(id.into()),
        pipeline_id: "echo".into(),
        cron: cron.into(),
        timezone: None,
        parameters: Some(json!({"n": 1}).as_object().unwrap().clone()),
        inventory: None,
        misfire: None,
        overlap: None,
        paused: None,
    }
}

#[tokio::test]
async fn fires_once_per_fire_time_and_marks_the_job() {
    let r = rig("2026-05-01T01:00:00Z");
    let view = r.schedules.create(input("nightly", "0 2 * * *")).await.unwrap();
    assert_eq!(view.next_fire.as_deref(), Some("2026-05-01T02:00:00.000Z"));
    r.at("2026-05-01T01:59:59Z").await;
    assert!(r.jobs.fired().is_empty());
    r.at("2026-05-01T02:00:00Z").await;
    r.at("2026-05-01T02:00:30Z").await;
    let fired = r.jobs.fired();
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(r.jobs.jobs.lock().unwrap()[&fired[0]].0["triggeredBy"], "schedule:nightly");
    let fired_events = r.jobs.events(EventKind::ScheduleFired);
    assert_eq!(fired_events[0]["fireTime"], "2026-05-01T02:00:00.000Z");
    let view = r.schedules.get("nightly").await.unwrap();
    assert_eq!(view.last_job_id.as_deref(), Some(fired[0].as_str()));
    assert_eq!(view.last_outcome.as_deref(), Some("queued"));
    assert_eq!(view.next_fire.as_deref(), Some("2026-05-02T02:00:00.000Z"));
}

#[tokio::test]
async fn a_second_process_deciding_the_same_fire_creates_nothing() {
    let r = rig("2026-05-01T01:00:00Z");
    r.schedules.create(input("nightly", "0 2 * * *")).await.unwrap();
    r.clock.set("2026-05-01T02:00:00Z");
    // Both read the schedule due before either saves: the fire's job id decides.
    let other = r.second();
    let (a, b) = tokio::join!(r.schedules.engine.tick(), other.engine.tick());
    let _ = (a, b);
    assert_eq!(r.jobs.fired().len(), 1);
    assert_eq!(r.jobs.events(EventKind::ScheduleFired).len(), 1);
}

#[tokio::test]
async fn misfire_skip_reports_and_run_once_runs_the_latest() {
    let r = rig("2026-05-01T01:00:00Z");
    r.schedules.create(input("skip", "0 2 * * *")).await.unwrap();
    let mut once = input("once", "0 2 * * *");
    once.misfire = Some(MisfirePolicy::RunOnce.as_str().into());
    r.schedules.create(once).await.unwrap();
    // Down for three days.
    r.at("2026-05-04T09:00:00Z").await;
    let fired = r.jobs.fired();
    assert_eq!(fired, vec![super::launch::fire_job_id("echo", "once", t("2026-05-04T02:00:00Z"))]);
    let missed = r.jobs.events(EventKind::ScheduleMissed);
    let skip = missed.iter().find(|m| m["scheduleId"] == "skip").unwrap();
    assert_eq!(skip["count"], 4);
    let once = missed.iter().find(|m| m["scheduleId"] == "once").unwrap();
    assert_eq!(once["count"], 3);
    assert_eq!(r.schedules.get("skip").await.unwrap().next_fire.as_deref(), Some("2026-05-05T02:00:00.000Z"));
}

#[tokio::test]
async fn overlap_skip_queue_and_allow() {
    let r = rig("2026-05-01T00:00:30Z");
    for (id, policy) in [("s", OverlapPolicy::Skip), ("q", OverlapPolicy::Queue), ("a", OverlapPolicy::Allow)] {
        let mut i = input(id, "* * * * *");
        i.overlap = Some(policy.as_str().into());
        r.schedules.create(i).await.unwrap();
    }
    r.at("2026-05-01T00:01:00Z").await;
    assert_eq!(r.jobs.fired().len(), 3);
    // The first jobs still run at the next fire.
    r.at("2026-05-01T00:02:00Z").await;
    let by = |sched: &str| {
        r.jobs.jobs.lock().unwrap().values().filter(|(d, _)| d["triggeredBy"] == format!("schedule:{sched}")).count()
    };
    assert_eq!((by("s"), by("q"), by("a")), (1, 1, 2));
    assert_eq!(r.schedules.get("q").await.unwrap().pending_fire.as_deref(), Some("2026-05-01T00:02:00.000Z"));
    assert!(r.jobs.events(EventKind::ScheduleMissed).iter().any(|m| m["scheduleId"] == "s"));
    // The previous jobs end: the queued fire goes, the skipped one stays skipped.
    r.jobs.finish_all();
    r.at("2026-05-01T00:02:10Z").await;
    assert_eq!((by("s"), by("q"), by("a")), (1, 2, 2));
    assert_eq!(r.schedules.get("q").await.unwrap().pending_fire, None);
}

#[tokio::test]
async fn pause_resume_and_run_now() {
    let r = rig("2026-05-01T00:00:30Z");
    r.schedules.create(input("m", "* * * * *")).await.unwrap();
    let v = r.schedules.pause("m").await.unwrap();
    assert!(v.paused && v.next_fire.is_none());
    r.at("2026-05-01T00:05:00Z").await;
    assert!(r.jobs.fired().is_empty());
    let v = r.schedules.resume("m").await.unwrap();
    assert_eq!(v.next_fire.as_deref(), Some("2026-05-01T00:06:00.000Z"), "no catch-up for the paused time");
    let id = r.schedules.run_now("m").await.unwrap();
    assert_eq!(r.jobs.fired(), vec![id.clone()]);
    assert_eq!(r.schedules.get("m").await.unwrap().last_job_id, Some(id));
}

#[tokio::test]
async fn inventory_schedules_start_runs_once_per_fire() {
    let r = rig("2026-05-01T00:00:30Z");
    let mut i = input("inv", "* * * * *");
    i.inventory = Some("nope".into());
    assert!(matches!(r.schedules.create(i.clone()).await, Err(ScheduleError::Invalid(e)) if e.field == "inventory"));
    i.inventory = Some("repos".into());
    r.schedules.create(i).await.unwrap();
    r.clock.set("2026-05-01T00:01:00Z");
    let other = r.second();
    let _ = tokio::join!(r.schedules.engine.tick(), other.engine.tick());
    let runs = r.inventories.runs.lock().unwrap().clone();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].dedupe_key, "inv@2026-05-01T00:01:00.000Z");
    assert_eq!(runs[0].triggered_by, "schedule:inv");
    assert!(r.jobs.fired().is_empty());
}

#[tokio::test]
async fn bad_definitions_are_refused_naming_the_field() {
    let r = rig("2026-05-01T00:00:00Z");
    let field = |e: ScheduleError| match e {
        ScheduleError::Invalid(f) => f.field,
        other => panic!("{other}"),
    };
    assert_eq!(field(r.schedules.create(input("x", "0 0 32 * *")).await.unwrap_err()), "cron");
    let mut i = input("x", "@daily");
    i.pipeline_id = "nope".into();
    assert_eq!(field(r.schedules.create(i).await.unwrap_err()), "pipelineId");
    let mut i = input("x", "@daily");
    i.parameters = Some(json!({"bad": 1}).as_object().unwrap().clone());
    assert_eq!(field(r.schedules.create(i).await.unwrap_err()), "parameters");
    r.schedules.create(input("x", "@daily")).await.unwrap();
    assert!(matches!(r.schedules.create(input("x", "@daily")).await, Err(ScheduleError::Conflict(_))));
}
