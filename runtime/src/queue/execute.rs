//! Running one job attempt: claim it (fenced), run the guest in a fresh store with
//! the job's grants, wrap it in the git workflow when configured, then persist the
//! outcome and publish the event, in that order.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::{Inner, retry};
use crate::domain::{FailureCode, GitInfo, Job, JobFailure, JobStatus, LogStream, Progress, format_ts, job_params};
use crate::events::{EventKind, JobEvent};
use crate::gitflow::BeginRequest;
use crate::registry::worker::{ValidParams, Worker};
use crate::sandbox::bindings::types;
use crate::sandbox::capabilities::fs::{FsCaps, QuotaMonitor};
use crate::sandbox::grants::{Access, Grant};
use crate::sandbox::journal::Journal;
use crate::sandbox::{GuestFailure, ProgressSink, StoreSpec, classify};
use crate::store::{Claim, Finish};

/// How an attempt ended.
enum Outcome {
    Completed(Value, Option<GitInfo>),
    Failed(JobFailure, Option<GitInfo>),
    /// Interrupted by a cancel request or by shutdown; the store already knows.
    Interrupted,
}

fn failure(code: FailureCode, message: impl Into<String>, retryable: bool) -> JobFailure {
    JobFailure::new(code, message, retryable)
}

/// How a job reaches `execute`.
pub(super) enum Start {
    /// Taken from a lane: still `queued` in the store; `execute` claims it.
    FromLane,
    /// Already `running` (claimed from a shared store).
    Claimed,
    /// Claimed together with the outcome of the job whose slot it took; its cancel flag
    /// was registered before that claim.
    HandedOff(Arc<AtomicBool>),
}

/// Starts queued jobs of `pipeline` while it has free slots.
pub(super) fn pump(inner: &Arc<Inner>, pipeline: &str) {
    if !inner.dispatching.load(Ordering::Acquire) {
        return;
    }
    if let Some(c) = inner.cluster.get() {
        c.wake.notify_one();
        return;
    }
    let Some(lane) = inner.lanes.get(pipeline) else { return };
    let mut start = Vec::new();
    if let Ok(mut l) = lane.lock() {
        while l.running < l.max_concurrent {
            let Some(job) = l.queued.pop_front() else { break };
            l.running += 1;
            start.push(*job);
        }
    }
    for job in start {
        spawn_execute(inner, job, Start::FromLane);
    }
}

/// Runs `execute` as a tracked task. Boxed: a finishing job starts its successor, and the
/// recursion needs a future type the compiler can name.
pub(super) fn spawn_execute(inner: &Arc<Inner>, job: Job, start: Start) {
    let run: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> =
        Box::pin(execute(inner.clone(), job, start));
    inner.tracker.spawn(run);
}

fn release(inner: &Arc<Inner>, job: &Job) {
    forget(inner, &job.id);
    if let Some(lane) = inner.lanes.get(&job.pipeline_id)
        && let Ok(mut l) = lane.lock()
    {
        l.running = l.running.saturating_sub(1);
    }
    pump(inner, &job.pipeline_id);
}

/// Runs one attempt.
pub(super) async fn execute(inner: Arc<Inner>, mut job: Job, start: Start) {
    let claimed = !matches!(start, Start::FromLane);
    let cancel = match start {
        Start::HandedOff(flag) => flag,
        Start::FromLane | Start::Claimed => {
            let flag = Arc::new(AtomicBool::new(false));
            // Registered before the claim, so a cancel that sees `running` in the store finds the flag.
            if let Ok(mut running) = inner.running.lock() {
                running.insert(job.id.clone(), flag.clone());
            }
            flag
        }
    };
    let now = job.started_at.filter(|_| claimed).unwrap_or_else(Utc::now);
    let claim = if claimed { Ok(true) } else { inner.store.mark_running(&job.id, job.attempt, now).await };
    match claim {
        Ok(true) => {}
        Ok(false) => {
            // Cancelled (or re-queued by another path) while waiting: nothing to run.
            release(&inner, &job);
            return;
        }
        Err(e) => {
            // Still queued in the store: put it back in the lane after a pause.
            tracing::error!(job = %job.id, error = %e, "could not mark job running; will try again");
            release(&inner, &job);
            schedule_retry(inner.clone(), job, Duration::from_millis(500));
            return;
        }
    }
    job.status = JobStatus::Running;
    job.started_at = Some(now);
    job.progress = Progress::default();
    inner.publish_of(EventKind::Started, &job).await;
    // Per-job lines are debug: at thousands of jobs a second, info would cost more than the job.
    tracing::debug!(job = %job.id, pipeline = %job.pipeline_id, attempt = job.attempt, "job started");

    let journal = Journal::new(inner.settings.max_log_bytes, job.attempt);
    let outcome = run_attempt(&inner, &job, cancel, &journal).await;
    if let Err(e) = inner.store.append_logs(&job.id, journal.drain()).await {
        tracing::error!(job = %job.id, error = %e, "saving the job log failed");
    }
    record(&inner, job, outcome).await;
}

/// Persists the outcome, then publishes it.
async fn record(inner: &Arc<Inner>, mut job: Job, outcome: Outcome) {
    let now = Utc::now();
    let (status, result, error, git) = match outcome {
        Outcome::Interrupted => {
            release(inner, &job);
            return;
        }
        Outcome::Completed(result, git) => (JobStatus::Completed, Some(result), None, git),
        Outcome::Failed(f, git) => {
            if retry::should_retry(&f, job.attempt, inner.settings.max_attempts) {
                let delay = retry::backoff(inner.settings.retry_base, job.attempt);
                match inner.store.requeue(&job.id, job.attempt, &f, delay).await {
                    Ok(true) => {
                        job.attempt += 1;
                        job.status = JobStatus::Queued;
                        job.error = Some(f);
                        inner.publish_of(EventKind::Retrying, &job).await;
                        release(inner, &job);
                        // In a cluster the store holds the delay (`run_after`); a claimer picks it up.
                        if inner.cluster.get().is_none() {
                            schedule_retry(inner.clone(), job, delay);
                        }
                        return;
                    }
                    Ok(false) => {
                        release(inner, &job);
                        return;
                    }
                    Err(e) => tracing::error!(job = %job.id, error = %e, "re-queueing failed; failing the job"),
                }
            }
            (JobStatus::Failed, None, Some(f), git)
        }
    };
    let finish = Finish { status, result, error, git, at: now };
    // The next queued job takes this slot, claimed in the same write as this outcome.
    let mut successor = take_successor(inner, &job.pipeline_id);
    let claim = successor.as_ref().map(|(next, _)| Claim { id: &next.id, attempt: next.attempt, at: now });
    let mut persisted = match inner.store.finish_and_claim(&job.id, job.attempt, &finish, claim).await {
        Ok((finished, claimed)) => {
            match (claimed, successor.take()) {
                (Some(true), next) => successor = next,
                // Cancelled while it waited: nothing to run.
                (Some(false), Some((next, _))) => forget(inner, &next.id),
                // The claim itself failed: still queued in the store.
                (None, Some((next, _))) => give_back(inner, next),
                (_, None) => {}
            }
            Ok(finished)
        }
        Err(e) => {
            if let Some((next, _)) = successor.take() {
                give_back(inner, next);
            }
            Err(e)
        }
    };
    for pause in [100, 1000] {
        // A store hiccup must not leave the job `running` until the next restart.
        if persisted.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(pause)).await;
        persisted = inner.store.finish(&job.id, job.attempt, &finish).await;
    }
    match persisted {
        Ok(true) => {
            job.status = finish.status;
            job.result = finish.result;
            job.error = finish.error;
            job.git = finish.git;
            job.completed_at = Some(now);
            let took = job.started_at.map(|s| (now - s).to_std().unwrap_or_default()).unwrap_or_default();
            inner.metrics.job_finished(&job.pipeline_id, status.as_str(), took);
            let kind = if status == JobStatus::Completed { EventKind::Completed } else { EventKind::Failed };
            if status == JobStatus::Completed {
                tracing::debug!(job = %job.id, "job completed");
            } else {
                tracing::info!(job = %job.id, status = status.as_str(), "job did not complete");
            }
            inner.publish_of(kind, &job).await;
        }
        Ok(false) => {
            tracing::info!(job = %job.id, attempt = job.attempt, "outcome fenced out (cancelled or superseded)")
        }
        Err(e) => tracing::error!(job = %job.id, error = %e, "persisting the outcome failed"),
    }
    match successor {
        Some((mut next, flag)) => {
            forget(inner, &job.id);
            next.started_at = Some(now);
            spawn_execute(inner, next, Start::HandedOff(flag));
        }
        None => release(inner, &job),
    }
}

/// Pops the job that will take over a finishing job's slot (single node, while dispatching)
/// and registers its cancel flag; the slot stays counted as running.
fn take_successor(inner: &Arc<Inner>, pipeline: &str) -> Option<(Job, Arc<AtomicBool>)> {
    if inner.cluster.get().is_some() || !inner.dispatching.load(Ordering::Acquire) {
        return None;
    }
    let next = *inner.lanes.get(pipeline)?.lock().ok()?.queued.pop_front()?;
    let flag = Arc::new(AtomicBool::new(false));
    if let Ok(mut running) = inner.running.lock() {
        running.insert(next.id.clone(), flag.clone());
    }
    Some((next, flag))
}

/// Drops a job's cancel flag.
fn forget(inner: &Arc<Inner>, id: &str) {
    if let Ok(mut running) = inner.running.lock() {
        running.remove(id);
    }
}

/// Puts a successor whose claim was not written back at the head of its lane.
fn give_back(inner: &Arc<Inner>, job: Job) {
    forget(inner, &job.id);
    if let Some(lane) = inner.lanes.get(&job.pipeline_id)
        && let Ok(mut l) = lane.lock()
    {
        l.queued.push_front(Box::new(job));
    }
}

fn schedule_retry(inner: Arc<Inner>, job: Job, delay: Duration) {
    let tracker = inner.tracker.clone();
    tracker.spawn(async move {
        tokio::time::sleep(delay).await;
        if !inner.dispatching.load(Ordering::Acquire) {
            return; // stays queued in the store; the next start picks it up
        }
        let pipeline = job.pipeline_id.clone();
        if let Some(lane) = inner.lanes.get(&pipeline)
            && let Ok(mut l) = lane.lock()
        {
            l.queued.push_back(Box::new(job));
        }
        pump(&inner, &pipeline);
    });
}

async fn run_attempt(inner: &Arc<Inner>, job: &Job, cancel: Arc<AtomicBool>, journal: &Journal) -> Outcome {
    let native = inner.native.read().ok().and_then(|n| n.get(&job.pipeline_id).cloned());
    if let Some(handler) = native {
        return match handler(job) {
            Ok(result) => Outcome::Completed(result, None),
            Err(f) => Outcome::Failed(f, None),
        };
    }
    let worker = match inner.registry.get_worker(&job.pipeline_id).await {
        Ok(w) => w,
        Err(e) => return Outcome::Failed(failure(FailureCode::WorkerUnavailable, e.to_string(), true), None),
    };
    // Paths are checked again at run time: the tree may have changed since the trigger. A
    // schema without path parameters has nothing to re-check (the stored parameters passed
    // it at the trigger; the guest still checks its own input).
    let params = job_params(&job.data);
    let valid = if worker.takes_paths {
        match worker.validate(params).await {
            Ok(v) => v,
            Err(e) => return Outcome::Failed(failure(FailureCode::InvalidInput, e.to_string(), false), None),
        }
    } else {
        ValidParams { params, grants: Vec::new() }
    };
    let dry_run = valid.params.get("dryRun").and_then(Value::as_bool).unwrap_or(false);
    let session = match begin_git(inner, &worker, job, &valid.params).await {
        Ok(s) => s,
        Err(f) => return Outcome::Failed(f, None),
    };
    let outcome = run_guest(inner, &worker, job, valid.params, valid.grants, cancel, journal).await;
    let Some(session) = session else {
        return match outcome {
            Ok(result) => Outcome::Completed(result, None),
            Err(Some(f)) => Outcome::Failed(f, None),
            Err(None) => Outcome::Interrupted,
        };
    };
    match outcome {
        Ok(mut result) => match inner.git.complete(session, &job.id, dry_run).await {
            Ok(git) => {
                if let Value::Object(map) = &mut result {
                    map.entry("git").or_insert_with(|| json!(git));
                }
                Outcome::Completed(result, Some(git))
            }
            Err(e) => Outcome::Failed(failure(crate::gitflow::failure_code(&e), format!("{e:#}"), false), None),
        },
        Err(f) => {
            // A job that changed the git metadata fails with SECURITY whatever else it did.
            let tampered = inner.git.abort(session).await.err();
            match (f, tampered) {
                (Some(_), Some(e)) => {
                    Outcome::Failed(failure(crate::gitflow::failure_code(&e), format!("{e:#}"), false), None)
                }
                (Some(f), None) => Outcome::Failed(f, None),
                (None, _) => Outcome::Interrupted,
            }
        }
    }
}

async fn begin_git(
    inner: &Arc<Inner>,
    worker: &Worker,
    job: &Job,
    params: &Value,
) -> Result<Option<crate::gitflow::GitSession>, JobFailure> {
    let (true, Some(flow), Some(repo)) = (
        worker.config.git_workflow,
        worker.info.git_workflow.as_ref(),
        params.get("repositoryPath").and_then(Value::as_str),
    ) else {
        return Ok(None);
    };
    let request = BeginRequest {
        pipeline_id: &job.pipeline_id,
        job_id: &job.id,
        repo: std::path::Path::new(repo),
        branch_prefix: &flow.branch_prefix,
        commit_title: &flow.commit_title,
        description: params.get("description").and_then(Value::as_str),
    };
    inner.git.begin(request).await.map_err(|e| failure(crate::gitflow::failure_code(&e), format!("{e:#}"), false))
}

/// Runs the guest; Err(None) means interrupted (cancel or shutdown).
async fn run_guest(
    inner: &Arc<Inner>,
    worker: &Worker,
    job: &Job,
    params: Value,
    mut grants: Vec<Grant>,
    cancel: Arc<AtomicBool>,
    journal: &Journal,
) -> Result<Value, Option<JobFailure>> {
    // A worker that declared it writes no reports gets no folder: one capability fewer,
    // and no mkdir on the per-job path.
    let output_dir = worker.wants_output.then(|| inner.settings.outputs_dir.join(&job.id));
    if let Some(dir) = &output_dir {
        match std::fs::create_dir(dir) {
            Ok(()) => {}
            // An earlier attempt of the same job made it (a real folder, not a link to elsewhere).
            Err(e)
                if e.kind() == std::io::ErrorKind::AlreadyExists
                    && std::fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_dir()) => {}
            Err(e) => {
                return Err(Some(failure(FailureCode::OutputDir, format!("creating {}: {e}", dir.display()), true)));
            }
        }
        grants.push(Grant { param: "output".into(), dir: dir.clone(), access: Access::Write });
    }
    let wit_job = types::Job {
        id: job.id.clone(),
        pipeline_id: job.pipeline_id.clone(),
        attempt: job.attempt,
        params: params.to_string(),
        output_dir: output_dir.as_ref().map(|d| d.to_string_lossy().into_owned()).unwrap_or_default(),
        grants: grants
            .iter()
            .map(|g| types::Grant {
                param: g.param.clone(),
                path: g.dir.to_string_lossy().into_owned(),
                access: match g.access {
                    Access::Read => types::Access::ReadOnly,
                    Access::Write => types::Access::ReadWrite,
                },
            })
            .collect(),
    };
    let timeout = Duration::from_secs(worker.config.timeout_secs);
    // Started by the guest's first progress report; most jobs never make one.
    let progress = {
        let inner = inner.clone();
        let (id, pipeline, attempt) = (job.id.clone(), job.pipeline_id.clone(), job.attempt);
        ProgressSink::new(move |rx| tokio::spawn(forward_progress(inner, id, pipeline, attempt, rx)))
    };
    let wit_job = Arc::new(wit_job);
    let spec = StoreSpec {
        memory_bytes: (worker.config.memory_mb as usize) << 20,
        timeout,
        cancelled: cancel,
        job: Some(wit_job.clone()),
        grants,
        journal: journal.clone(),
        progress: Some(progress),
    };
    let (result, forwarder) = call_run(inner, worker, spec, &wit_job, timeout, output_dir.as_deref()).await;
    if let Some(dir) = output_dir {
        if matches!(result, Err(GuestFailure::DiskQuota(_))) {
            // An over-quota folder is not a report anyone asked for: it goes with the job.
            let doomed = dir.clone();
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&doomed)).await {
                tracing::warn!(job = %job.id, dir = %dir.display(), error = %e, "removing an over-quota output folder failed");
            }
        }
        let _ = inner.janitor.send(dir);
    }
    // The progress sender is closed: the forwarder drains and ends, so every progress event
    // precedes the terminal one.
    if let Some(task) = forwarder {
        let _ = task.await;
    }
    match result {
        Ok(Ok(text)) => {
            if text.len() > inner.settings.max_result_bytes {
                return Err(Some(failure(
                    FailureCode::ResultTooLarge,
                    format!(
                        "the worker returned {} bytes; the limit is {}",
                        text.len(),
                        inner.settings.max_result_bytes
                    ),
                    false,
                )));
            }
            serde_json::from_str(&text).map_err(|e| {
                Some(failure(
                    FailureCode::InvalidResult,
                    format!("the worker returned a result that is not JSON: {e}"),
                    false,
                ))
            })
        }
        Ok(Err(types::JobError::InvalidInput(f))) => Err(Some(failure(
            FailureCode::InvalidInput,
            format!("Invalid parameter '{}': {}", f.field, f.message),
            false,
        ))),
        Ok(Err(types::JobError::Failed(msg))) => Err(Some(failure(FailureCode::Failed, msg, false))),
        Ok(Err(types::JobError::Retryable(msg))) => Err(Some(failure(FailureCode::Retryable, msg, true))),
        Err(GuestFailure::Cancelled) => Err(None),
        Err(f) => {
            journal.push("error", LogStream::System, &f.to_string(), None);
            Err(Some(failure(f.code(), f.to_string(), false)))
        }
    }
}

/// How often a running call checks its cancel flag and deadline from outside the guest.
const WATCH_TICK: Duration = Duration::from_millis(50);

/// Instantiates and runs the guest; also hands back the progress forwarder, if the guest
/// started one.
async fn call_run(
    inner: &Arc<Inner>,
    worker: &Worker,
    spec: StoreSpec,
    wit_job: &types::Job,
    timeout: Duration,
    output_dir: Option<&Path>,
) -> (Result<Result<String, types::JobError>, GuestFailure>, Option<tokio::task::JoinHandle<()>>) {
    let sandbox = inner.registry.sandbox();
    let caps = FsCaps::from(&worker.config);
    let cancelled = spec.cancelled.clone();
    let mut store = match sandbox.new_store_with(spec, caps) {
        Ok(store) => store,
        Err(e) => return (Err(GuestFailure::Instantiate(format!("{e:#}"))), None),
    };
    let deadline = tokio::time::Instant::from_std(store.data().deadline());
    let mut monitor = output_dir.map(|dir| QuotaMonitor::new(dir.to_path_buf(), caps));
    let outcome = async {
        let started = std::time::Instant::now();
        let instance = sandbox.instantiate(&worker.pre, &mut store).await?;
        inner.metrics.instantiated(&worker.pipeline_id, started.elapsed());
        let call = instance.alephauto_worker_worker().call_run(&mut store, wit_job);
        // Epochs stop guest code, but not a call parked in a host call (a WASI sleep, a
        // blocking read): the watchdog ends those. Dropping the call future abandons the
        // guest; its store is dropped right after and never reused.
        let ended = tokio::select! {
            ended = call => Ok(ended),
            stop = watchdog(&cancelled, deadline, timeout, monitor.as_mut()) => Err(stop),
        };
        match ended {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(classify(e, &store, timeout)),
            Err(stop) => Err(stop),
        }
    }
    .await;
    // A job that wrote fast and returned before the next scan is measured once more.
    let outcome = match (outcome, monitor.as_mut()) {
        (Ok(r), Some(m)) => match m.check().await {
            Some(why) => Err(GuestFailure::DiskQuota(why)),
            None => Ok(r),
        },
        (outcome, _) => outcome,
    };
    let forwarder = store.data_mut().take_progress().and_then(ProgressSink::finish);
    (outcome, forwarder)
}

/// Resolves when a running call must end from outside: a cancel, the deadline, or an
/// output folder over its quota. Checks every `WATCH_TICK`; scans when the monitor says.
async fn watchdog(
    cancelled: &AtomicBool,
    deadline: tokio::time::Instant,
    budget: Duration,
    mut monitor: Option<&mut QuotaMonitor>,
) -> GuestFailure {
    loop {
        let mut wake = (tokio::time::Instant::now() + WATCH_TICK).min(deadline);
        if let Some(m) = &monitor {
            wake = wake.min(tokio::time::Instant::from_std(m.due()));
        }
        tokio::time::sleep_until(wake).await;
        if cancelled.load(Ordering::Relaxed) {
            return GuestFailure::Cancelled;
        }
        if tokio::time::Instant::now() >= deadline {
            return GuestFailure::Timeout(budget);
        }
        if let Some(m) = monitor.as_deref_mut()
            && std::time::Instant::now() >= m.due()
            && let Some(why) = m.check().await
        {
            return GuestFailure::DiskQuota(why);
        }
    }
}

async fn forward_progress(
    inner: Arc<Inner>,
    id: String,
    pipeline: String,
    attempt: u32,
    mut rx: watch::Receiver<Progress>,
) {
    while rx.changed().await.is_ok() {
        let progress = rx.borrow_and_update().clone();
        if let Err(e) = inner.store.save_progress(&id, attempt, &progress).await {
            tracing::warn!(job = %id, error = %e, "saving progress failed");
        }
        inner
            .publish(JobEvent {
                kind: EventKind::Progress,
                job_id: id.clone(),
                pipeline_id: pipeline.clone(),
                payload: json!({"status": "running", "progress": progress}),
                timestamp: format_ts(&Utc::now()),
            })
            .await;
    }
}
