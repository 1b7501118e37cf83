//! The queue's own tests: lanes, the successor hand-off, retries, cancel races and recovery,
//! over the in-memory store (`store::memory`) and a fake executor. No component, no
//! wasmtime, no registry: each runs in milliseconds. Waits are on conditions (store
//! changes, attempts started), each with a deadline.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::sync::{broadcast, oneshot, watch};

use super::{Attempt, ControlError, Executor, LaneLimits, Outcome, Queue, QueueSettings, TriggerError, retry};
use crate::domain::{Job, JobFailure, JobStatus, Progress};
use crate::events::{EventBus, EventKind, JobEvent};
use crate::registry::RegistryError;
use crate::registry::worker::ParamError;
use crate::store::memory::{DEADLINE, MemoryStore};

/// An attempt the fake started.
#[derive(Debug, Clone)]
struct Started {
    id: String,
    attempt: u32,
    at: Instant,
    wall: DateTime<Utc>,
}

/// Does what each job's `"do"` parameter says: `ok`, `fail`, `flaky` (fails retryably before
/// attempt `until`), `progress` (reports, then completes) or `block` (waits for the test to
/// hand it an outcome, or for its cancel flag).
#[derive(Debug)]
struct Fake {
    started: watch::Sender<Vec<Started>>,
    running: AtomicUsize,
    peak: AtomicUsize,
    outcomes: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    interrupted: Mutex<Vec<String>>,
}

impl Default for Fake {
    fn default() -> Self {
        Self {
            started: watch::Sender::new(Vec::new()),
            running: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            outcomes: Mutex::default(),
            interrupted: Mutex::default(),
        }
    }
}

/// Counts an attempt as running while it lives.
struct Running<'a>(&'a AtomicUsize);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn retryable(message: &str) -> JobFailure {
    JobFailure { message: message.into(), code: "RETRYABLE".into(), retryable: true }
}

impl Executor for Fake {
    async fn validate(&self, _pipeline: &str, params: Value) -> Result<Value, TriggerError> {
        if params.get("invalid").is_some() {
            return Err(ParamError { field: "invalid".into(), message: "is refused".into() }.into());
        }
        Ok(params)
    }

    async fn run(&self, attempt: Attempt<'_>) -> Outcome {
        let job = attempt.job;
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        let _running = Running(&self.running);
        self.peak.fetch_max(now, Ordering::SeqCst);
        let mut outcome = None;
        if job.data["do"] == "block" {
            let (tx, rx) = oneshot::channel();
            self.outcomes.lock().unwrap().insert(job.id.clone(), tx);
            outcome = Some(rx);
        }
        let started = Started { id: job.id.clone(), attempt: job.attempt, at: Instant::now(), wall: Utc::now() };
        self.started.send_modify(|s| s.push(started));
        match job.data["do"].as_str().unwrap_or("ok") {
            "fail" => Outcome::Failed(JobFailure { message: "no".into(), code: "FAILED".into(), retryable: false }),
            "flaky" if u64::from(job.attempt) < job.data["until"].as_u64().unwrap_or(0) => {
                Outcome::Failed(retryable("flaky"))
            }
            "progress" => {
                let mut sink = attempt.progress();
                sink.report(Progress { percent: 50, message: "half".into() });
                if let Some(task) = sink.finish() {
                    task.await.unwrap();
                }
                Outcome::Completed(json!({"attempt": job.attempt}), None)
            }
            "block" => {
                let mut rx = outcome.take().unwrap();
                // Polls the flag the way the sandbox's watchdog does.
                loop {
                    tokio::select! {
                        o = &mut rx => return o.unwrap_or(Outcome::Interrupted),
                        () = tokio::time::sleep(Duration::from_millis(1)) => {
                            if attempt.cancel.load(Ordering::Relaxed) {
                                self.interrupted.lock().unwrap().push(job.id.clone());
                                return Outcome::Interrupted;
                            }
                        }
                    }
                }
            }
            _ => Outcome::Completed(json!({"attempt": job.attempt}), None),
        }
    }
}

impl Fake {
    /// Waits until `n` attempts have started; returns them in order.
    async fn wait_started(&self, n: usize) -> Vec<Started> {
        let mut rx = self.started.subscribe();
        match tokio::time::timeout(DEADLINE, rx.wait_for(|s| s.len() >= n)).await {
            Ok(Ok(s)) => s.clone(),
            _ => panic!("timed out waiting for {n} attempts; started: {:?}", self.started.borrow()),
        }
    }

    /// Ids of the started attempts, in order.
    fn started_ids(&self) -> Vec<String> {
        self.started.borrow().iter().map(|s| s.id.clone()).collect()
    }

    /// Hands a blocked attempt its outcome.
    fn release(&self, id: &str, outcome: Outcome) {
        let tx = self.outcomes.lock().unwrap().remove(id).unwrap_or_else(|| panic!("{id} is not blocked"));
        let _ = tx.send(outcome);
    }
}

fn done() -> Outcome {
    Outcome::Completed(json!({"ok": true}), None)
}

fn settings() -> QueueSettings {
    QueueSettings {
        max_attempts: 3,
        retry_base: Duration::from_millis(40),
        max_log_bytes: 64 * 1024,
        max_result_bytes: 1 << 20,
        outputs_dir: std::env::temp_dir(),
        execution_enabled: true,
    }
}

fn limits(max_concurrent: usize) -> LaneLimits {
    LaneLimits { max_concurrent, max_queued: 100, enabled: true }
}

struct Harness {
    store: Arc<MemoryStore>,
    queue: Queue<Fake>,
    events: broadcast::Receiver<JobEvent>,
}

impl Harness {
    fn new(lanes: &[(&str, LaneLimits)]) -> Self {
        Self::with(Arc::default(), lanes, settings())
    }

    fn with(store: Arc<MemoryStore>, lanes: &[(&str, LaneLimits)], settings: QueueSettings) -> Self {
        let bus = EventBus::new(4096);
        let events = bus.subscribe();
        let pipelines = lanes.iter().map(|(id, l)| (id.to_string(), *l));
        let queue = Queue::with_executor(store.clone(), Fake::default(), pipelines, bus, settings);
        Self { store, queue, events }
    }

    fn fake(&self) -> &Fake {
        self.queue.executor()
    }

    async fn trigger(&self, pipeline: &str, what: &str) -> String {
        self.queue.trigger(pipeline, json!({ "do": what })).await.unwrap().id
    }

    fn status(&self, id: &str) -> (JobStatus, u32) {
        self.store.state().status(id).unwrap()
    }

    async fn wait_status(&self, id: &str, status: JobStatus) {
        self.store
            .wait_until(&format!("{id} is {status:?}"), |s| s.status(id).is_some_and(|(st, _)| st == status))
            .await;
    }

    /// Waits until no job of `pipeline` holds a slot (a slot is freed right after the store
    /// write that ends its attempt, in the same task).
    async fn wait_idle(&self, pipeline: &str) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while self.queue.lane_counts(pipeline).running > 0 || self.queue.running_count() > 0 {
            assert!(tokio::time::Instant::now() < deadline, "{pipeline} did not go idle");
            tokio::task::yield_now().await;
        }
    }

    /// The events so far, as (kind, job id).
    fn events(&mut self) -> Vec<(EventKind, String)> {
        let mut out = Vec::new();
        while let Ok(e) = self.events.try_recv() {
            out.push((e.kind, e.job_id));
        }
        out
    }

    fn calls(&self, prefix: &str) -> Vec<String> {
        self.store.state().calls.iter().filter(|c| c.starts_with(prefix)).cloned().collect()
    }
}

#[tokio::test]
async fn a_lane_runs_at_most_max_concurrent_jobs_in_fifo_order() {
    let h = Harness::new(&[("p", limits(2))]);
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(h.trigger("p", "block").await);
    }
    h.fake().wait_started(2).await;
    let counts = h.queue.lane_counts("p");
    assert_eq!((counts.running, counts.queued, counts.capacity), (2, 3, 2));
    {
        let state = h.store.state();
        assert_eq!((state.count(JobStatus::Running), state.count(JobStatus::Queued)), (2, 3));
    }
    for (i, id) in ids.iter().enumerate() {
        h.fake().wait_started((i + 2).min(5)).await;
        h.fake().release(id, done());
    }
    for id in &ids {
        h.wait_status(id, JobStatus::Completed).await;
    }
    assert_eq!(h.fake().started_ids(), ids, "started in trigger order");
    assert_eq!(h.fake().peak.load(Ordering::SeqCst), 2, "never more than max_concurrent at once");
    h.wait_idle("p").await;
    assert_eq!(h.queue.lane_counts("p").queued, 0);
}

#[tokio::test]
async fn a_finishing_job_hands_its_slot_to_the_next_in_the_same_write() {
    let mut h = Harness::new(&[("p", limits(1))]);
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(h.trigger("p", "block").await);
    }
    for (i, id) in ids.iter().enumerate() {
        h.fake().wait_started(i + 1).await;
        h.fake().release(id, done());
    }
    h.wait_status(&ids[2], JobStatus::Completed).await;
    h.wait_idle("p").await;
    // Only the first job is claimed on its own; each finish claims the next.
    assert_eq!(h.calls("mark_running"), vec![format!("mark_running {}@1", ids[0])]);
    assert_eq!(
        h.calls("finish"),
        vec![
            format!("finish {}@1 -> {}@1", ids[0], ids[1]),
            format!("finish {}@1 -> {}@1", ids[1], ids[2]),
            format!("finish {}@1", ids[2]),
        ]
    );
    // The successor's start is published after its predecessor's outcome.
    let events = h.events();
    let at = |kind: EventKind, id: &str| events.iter().position(|(k, j)| *k == kind && j == id).unwrap();
    assert!(at(EventKind::Completed, &ids[0]) < at(EventKind::Started, &ids[1]), "{events:?}");
    assert!(at(EventKind::Completed, &ids[1]) < at(EventKind::Started, &ids[2]), "{events:?}");
}

#[tokio::test]
async fn triggers_are_refused_for_a_full_lane_a_disabled_or_unknown_pipeline_and_bad_parameters() {
    let held = LaneLimits { max_concurrent: 0, max_queued: 2, enabled: true };
    let off = LaneLimits { enabled: false, ..limits(1) };
    let h = Harness::new(&[("held", held), ("off", off)]);
    let job = h.queue.trigger("held", json!({"do": "ok", "triggeredBy": "forged"})).await.unwrap();
    assert_eq!(job.data["triggeredBy"], "api", "reserved keys are the server's");
    h.trigger("held", "ok").await;
    match h.queue.trigger("held", json!({})).await {
        Err(TriggerError::QueueFull { pipeline, cap }) => assert_eq!((pipeline.as_str(), cap), ("held", 2)),
        other => panic!("expected QueueFull, got {other:?}"),
    }
    assert!(matches!(h.queue.trigger("off", json!({})).await, Err(TriggerError::Disabled(m)) if m.contains("off")));
    match h.queue.trigger("nope", json!({})).await {
        Err(TriggerError::Registry(RegistryError::Unknown { supported, .. })) => assert_eq!(supported, ["held", "off"]),
        other => panic!("expected Unknown, got {other:?}"),
    }
    assert!(matches!(
        h.queue.trigger("held", json!({"invalid": 1})).await,
        Err(TriggerError::InvalidParams(e)) if e.field == "invalid"
    ));
    assert_eq!(h.store.state().rows.len(), 2, "refused triggers store nothing");
    assert_eq!(h.queue.lane_counts("held").queued, 2);
    assert!(h.fake().started_ids().is_empty(), "a lane without slots runs nothing");

    let mut disabled = settings();
    disabled.execution_enabled = false;
    let h = Harness::with(Arc::default(), &[("p", limits(1))], disabled);
    assert!(matches!(h.queue.trigger("p", json!({})).await, Err(TriggerError::Disabled(_))));
}

#[tokio::test]
async fn retryable_failures_are_retried_with_backoff_until_they_pass() {
    let mut h = Harness::new(&[("p", limits(1))]);
    let id = h.queue.trigger("p", json!({"do": "flaky", "until": 3})).await.unwrap().id;
    h.wait_status(&id, JobStatus::Completed).await;
    let started = h.fake().wait_started(3).await;
    assert_eq!(started.iter().map(|s| s.attempt).collect::<Vec<_>>(), vec![1, 2, 3]);
    let base = settings().retry_base;
    // Each attempt waited out its backoff (40 ms, then 80 ms) after the one before it.
    for (before, after) in started.iter().zip(&started[1..]) {
        let backoff = retry::backoff(base, before.attempt);
        assert!(
            after.at - before.at >= backoff,
            "attempt {} began {:?} after the one before",
            after.attempt,
            after.at - before.at
        );
    }
    assert_eq!(h.calls("requeue"), vec![format!("requeue {id}@1"), format!("requeue {id}@2")]);
    let job = h.store.state().rows[&id].job.clone();
    assert_eq!((job.attempt, job.result), (3, Some(json!({"attempt": 3}))));
    let kinds: Vec<EventKind> = h.events().into_iter().filter(|(_, j)| *j == id).map(|(k, _)| k).collect();
    use EventKind::{Completed, Created, Retrying, Started};
    assert_eq!(kinds, vec![Created, Started, Retrying, Started, Retrying, Started, Completed]);
}

#[tokio::test]
async fn a_permanent_failure_fails_at_once_and_retries_stop_at_max_attempts() {
    let h = Harness::new(&[("p", limits(2))]);
    let failing = h.trigger("p", "fail").await;
    let hopeless = h.queue.trigger("p", json!({"do": "flaky", "until": 99})).await.unwrap().id;
    h.wait_status(&failing, JobStatus::Failed).await;
    h.wait_status(&hopeless, JobStatus::Failed).await;
    {
        let state = h.store.state();
        let (f, g) = (&state.rows[&failing].job, &state.rows[&hopeless].job);
        assert_eq!((f.attempt, f.error.as_ref().unwrap().code.as_str()), (1, "FAILED"));
        assert_eq!((g.attempt, g.error.as_ref().unwrap().code.as_str()), (3, "RETRYABLE"));
    }
    assert_eq!(h.calls("requeue").len(), 2, "two retries of the flaky job, none of the failing one");
}

#[tokio::test]
async fn a_manual_retry_runs_the_same_parameters_as_a_new_job() {
    let h = Harness::new(&[("p", limits(1))]);
    let id = h.trigger("p", "fail").await;
    h.wait_status(&id, JobStatus::Failed).await;
    let again = h.queue.retry(&id).await.unwrap();
    assert_eq!((again.retried_from.as_deref(), again.retry_count), (Some(id.as_str()), 1));
    assert_eq!(again.data["do"], "fail");
    assert!(again.id.starts_with("p-retry-"), "{}", again.id);
    h.wait_status(&again.id, JobStatus::Failed).await;
    match h.queue.retry("missing").await {
        Err(ControlError::NotFound(_)) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[tokio::test]
async fn progress_is_saved_and_published_before_the_outcome() {
    let mut h = Harness::new(&[("p", limits(1))]);
    let id = h.trigger("p", "progress").await;
    h.wait_status(&id, JobStatus::Completed).await;
    assert!(h.calls("progress").contains(&format!("progress {id}@1")));
    let kinds: Vec<EventKind> = h.events().into_iter().map(|(k, _)| k).collect();
    let at = |kind| kinds.iter().position(|k| *k == kind).unwrap();
    assert!(at(EventKind::Progress) < at(EventKind::Completed), "{kinds:?}");
}

#[tokio::test]
async fn cancelling_a_queued_job_takes_it_out_of_its_lane() {
    let mut h = Harness::new(&[("p", limits(1))]);
    let a = h.trigger("p", "block").await;
    let b = h.trigger("p", "block").await;
    h.fake().wait_started(1).await;
    let cancelled = h.queue.cancel(&b).await.unwrap();
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    assert_eq!(h.queue.lane_counts("p").queued, 0);
    h.fake().release(&a, done());
    h.wait_status(&a, JobStatus::Completed).await;
    h.wait_idle("p").await;
    assert_eq!(h.fake().started_ids(), vec![a.clone()], "the cancelled job never ran");
    assert_eq!(h.calls("finish"), vec![format!("finish {a}@1")], "no successor to claim");
    assert!(h.events().contains(&(EventKind::Cancelled, b.clone())));
    assert!(matches!(h.queue.cancel(&b).await, Err(ControlError::Conflict { status: "cancelled", .. })));
}

#[tokio::test]
async fn cancelling_a_running_job_interrupts_it_and_frees_its_slot() {
    let mut h = Harness::new(&[("p", limits(1))]);
    let a = h.trigger("p", "block").await;
    let b = h.trigger("p", "ok").await;
    h.fake().wait_started(1).await;
    assert_eq!(h.queue.cancel(&a).await.unwrap().status, JobStatus::Cancelled);
    h.wait_status(&b, JobStatus::Completed).await;
    h.wait_idle("p").await;
    assert_eq!(*h.fake().interrupted.lock().unwrap(), vec![a.clone()]);
    assert_eq!(h.status(&a), (JobStatus::Cancelled, 1));
    let of_a: Vec<EventKind> = h.events().into_iter().filter(|(_, j)| *j == a).map(|(k, _)| k).collect();
    assert_eq!(of_a, vec![EventKind::Created, EventKind::Started, EventKind::Cancelled]);
}

#[tokio::test]
async fn a_cancel_that_beats_the_outcome_write_fences_the_outcome_out() {
    let mut h = Harness::new(&[("p", limits(1))]);
    let a = h.trigger("p", "block").await;
    let b = h.trigger("p", "ok").await;
    h.fake().wait_started(1).await;
    let gate = h.store.hold_finishes();
    // The attempt ends; its outcome write waits at the gate while the cancel lands.
    h.fake().release(&a, done());
    h.store.wait_for_held(1).await;
    assert_eq!(h.queue.cancel(&a).await.unwrap().status, JobStatus::Cancelled);
    gate.add_permits(100);
    h.wait_status(&b, JobStatus::Completed).await;
    h.wait_idle("p").await;
    let job = h.store.state().rows[&a].job.clone();
    assert_eq!((job.status, job.result), (JobStatus::Cancelled, None), "the late outcome was fenced out");
    let of_a: Vec<EventKind> = h.events().into_iter().filter(|(_, j)| *j == a).map(|(k, _)| k).collect();
    assert_eq!(of_a, vec![EventKind::Created, EventKind::Started, EventKind::Cancelled]);
    // The fenced write still handed the slot on.
    assert_eq!(h.calls("finish")[0], format!("finish {a}@1 -> {b}@1"));
}

#[tokio::test]
async fn a_finish_that_beats_the_cancel_makes_the_cancel_a_conflict() {
    let h = Harness::new(&[("p", limits(1))]);
    let a = h.trigger("p", "ok").await;
    h.wait_status(&a, JobStatus::Completed).await;
    match h.queue.cancel(&a).await {
        Err(ControlError::Conflict { status, .. }) => assert_eq!(status, "completed"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(matches!(h.queue.cancel("missing").await, Err(ControlError::NotFound(_))));
}

#[tokio::test]
async fn a_successor_cancelled_before_its_claim_never_runs() {
    let h = Harness::new(&[("p", limits(1))]);
    let a = h.trigger("p", "block").await;
    let b = h.trigger("p", "ok").await;
    let c = h.trigger("p", "ok").await;
    h.fake().wait_started(1).await;
    let gate = h.store.hold_finishes();
    h.fake().release(&a, done());
    // `b` has left the lane as `a`'s successor; the claim waits at the gate with `a`'s outcome.
    h.store.wait_for_held(1).await;
    assert_eq!(h.queue.cancel(&b).await.unwrap().status, JobStatus::Cancelled);
    gate.add_permits(100);
    h.wait_status(&c, JobStatus::Completed).await;
    h.wait_idle("p").await;
    assert_eq!(h.fake().started_ids(), vec![a.clone(), c.clone()]);
    assert_eq!(h.status(&a), (JobStatus::Completed, 1));
    assert_eq!(h.status(&b), (JobStatus::Cancelled, 1));
}

#[tokio::test]
async fn recovery_requeues_what_a_dead_process_left_and_waits_out_a_pending_backoff() {
    let store = Arc::<MemoryStore>::default();
    let now = Utc::now();
    let job = |id: &str, pipeline: &str, ms: i64| {
        Job::new(id.into(), pipeline.into(), json!({"do": "ok"}), now + chrono::Duration::milliseconds(ms))
    };
    store.put(job("queued", "p", 0), None);
    let mut running = job("running", "p", 1);
    running.status = JobStatus::Running;
    running.started_at = Some(now);
    store.put(running, None);
    let mut backing_off = job("backing-off", "p", 2);
    backing_off.attempt = 2;
    let run_after = Utc::now() + chrono::Duration::milliseconds(300);
    store.put(backing_off, Some(run_after));
    let mut finished = job("finished", "p", 3);
    finished.status = JobStatus::Completed;
    store.put(finished, None);
    store.put(job("orphan", "gone", 4), None);

    let h = Harness::with(store, &[("p", limits(2))], settings());
    assert_eq!(h.queue.recover().await.unwrap(), 4, "every queued job is counted, the orphan too");
    for id in ["queued", "running", "backing-off"] {
        h.wait_status(id, JobStatus::Completed).await;
    }
    assert_eq!(h.status("running"), (JobStatus::Completed, 2), "a dead process's attempt does not count");
    assert_eq!(h.status("backing-off"), (JobStatus::Completed, 2));
    assert_eq!(h.status("orphan"), (JobStatus::Queued, 1), "left queued for when its pipeline returns");
    let started = h.fake().wait_started(3).await;
    assert_eq!(started.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), vec!["queued", "running", "backing-off"]);
    assert!(started[2].wall >= run_after, "the recovered retry ran before its backoff ended");
}

#[tokio::test]
async fn shutdown_interrupts_what_outlives_the_drain_and_leaves_it_for_the_next_start() {
    let h = Harness::new(&[("p", limits(1))]);
    let a = h.trigger("p", "block").await;
    let b = h.trigger("p", "ok").await;
    h.fake().wait_started(1).await;
    h.queue.shutdown(Duration::from_millis(20)).await;
    assert!(matches!(h.queue.trigger("p", json!({})).await, Err(TriggerError::ShuttingDown)));
    assert_eq!(*h.fake().interrupted.lock().unwrap(), vec![a.clone()]);
    // Interrupted by shutdown: still `running` in the store (the next start re-runs it), and
    // nothing new started.
    assert_eq!(h.status(&a), (JobStatus::Running, 1));
    assert_eq!(h.status(&b), (JobStatus::Queued, 1));
    assert_eq!(h.fake().started_ids(), vec![a]);
}
