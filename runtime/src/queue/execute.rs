//! Running one job attempt: claim it (fenced), hand it to the executor, then persist the
//! outcome and publish the event, in that order. Where jobs come from and where their
//! events go is the source's business (`Inner::source`).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use tokio::sync::watch;

use super::executor::{Attempt, Executor, Outcome};
use super::{Inner, retry};
use crate::domain::{Job, JobStatus, Progress, format_ts};
use crate::events::{EventKind, JobEvent};
use crate::failpoints;
use crate::sandbox::ProgressSink;
use crate::sandbox::journal::Journal;
use crate::store::{Claim, Finish};

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

/// Runs `execute` as a tracked task. Boxed: a finishing job starts its successor, and the
/// recursion needs a future type the compiler can name.
pub(super) fn spawn_execute<X: Executor>(inner: &Arc<Inner<X>>, job: Job, start: Start) {
    let run: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> =
        Box::pin(execute(inner.clone(), job, start));
    inner.tracker.spawn(run);
}

/// Frees a finished job's slot and fills it.
fn release<X: Executor>(inner: &Arc<Inner<X>>, job: &Job) {
    forget(inner, &job.id);
    if let Some(lane) = inner.lanes.get(&job.pipeline_id)
        && let Ok(mut l) = lane.lock()
    {
        l.running = l.running.saturating_sub(1);
    }
    inner.source().pump(inner, &job.pipeline_id);
}

/// Runs one attempt.
pub(super) async fn execute<X: Executor>(inner: Arc<Inner<X>>, mut job: Job, start: Start) {
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
            inner.source().run_later(&inner, job, Duration::from_millis(500));
            return;
        }
    }
    failpoints::hit(failpoints::CLAIMED);
    job.status = JobStatus::Running;
    job.started_at = Some(now);
    job.progress = Progress::default();
    inner.publish_of(EventKind::Started, &job).await;
    // Per-job lines are debug: at thousands of jobs a second, info would cost more than the job.
    tracing::debug!(job = %job.id, pipeline = %job.pipeline_id, attempt = job.attempt, "job started");

    let journal = Journal::new(inner.settings.max_log_bytes, job.attempt);
    // Made only when the executor asks (the wasm worker does; a native handler does not).
    let progress = || {
        let inner = inner.clone();
        let (id, pipeline, attempt) = (job.id.clone(), job.pipeline_id.clone(), job.attempt);
        ProgressSink::new(move |rx| tokio::spawn(forward_progress(inner, id, pipeline, attempt, rx)))
    };
    let attempt = Attempt { job: &job, cancel: &cancel, journal: &journal, progress: &progress };
    let outcome = inner.executor.run(attempt).await;
    if let Err(e) = inner.store.append_logs(&job.id, journal.drain()).await {
        tracing::error!(job = %job.id, error = %e, "saving the job log failed");
    }
    record(&inner, job, outcome).await;
}

/// Persists the outcome, then publishes it.
async fn record<X: Executor>(inner: &Arc<Inner<X>>, mut job: Job, outcome: Outcome) {
    let now = Utc::now();
    let (status, result, error, git) = match outcome {
        Outcome::Interrupted => {
            release(inner, &job);
            return;
        }
        Outcome::Completed(result, git) => (JobStatus::Completed, Some(result), None, git),
        Outcome::Failed(f) => {
            if retry::should_retry(&f, job.attempt, inner.settings.max_attempts) {
                let delay = retry::backoff(inner.settings.retry_base, job.attempt);
                match inner.store.requeue(&job.id, job.attempt, &f, delay).await {
                    Ok(true) => {
                        job.attempt += 1;
                        job.status = JobStatus::Queued;
                        job.error = Some(f);
                        inner.publish_of(EventKind::Retrying, &job).await;
                        release(inner, &job);
                        inner.source().run_later(inner, job, delay);
                        return;
                    }
                    Ok(false) => {
                        release(inner, &job);
                        return;
                    }
                    Err(e) => tracing::error!(job = %job.id, error = %e, "re-queueing failed; failing the job"),
                }
            }
            (JobStatus::Failed, None, Some(f), None)
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
            failpoints::hit(failpoints::OUTCOME_WRITTEN);
            let kind = if status == JobStatus::Completed { EventKind::Completed } else { EventKind::Failed };
            if status == JobStatus::Completed {
                tracing::debug!(job = %job.id, "job completed");
            } else {
                tracing::info!(job = %job.id, status = status.as_str(), "job did not complete");
                if let Some(f) = &job.error {
                    crate::telemetry::report_job_failure(&job.pipeline_id, &job.id, job.attempt, f);
                }
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

/// Takes the job that will take over a finishing job's slot from the source and registers
/// its cancel flag; the slot stays counted as running.
fn take_successor<X: Executor>(inner: &Arc<Inner<X>>, pipeline: &str) -> Option<(Job, Arc<AtomicBool>)> {
    let next = inner.source().successor(inner, pipeline)?;
    let flag = Arc::new(AtomicBool::new(false));
    if let Ok(mut running) = inner.running.lock() {
        running.insert(next.id.clone(), flag.clone());
    }
    Some((next, flag))
}

/// Drops a job's cancel flag.
fn forget<X: Executor>(inner: &Arc<Inner<X>>, id: &str) {
    if let Ok(mut running) = inner.running.lock() {
        running.remove(id);
    }
}

/// Puts a successor whose claim was not written back at the head of its lane.
fn give_back<X: Executor>(inner: &Arc<Inner<X>>, job: Job) {
    forget(inner, &job.id);
    if let Some(lane) = inner.lanes.get(&job.pipeline_id)
        && let Ok(mut l) = lane.lock()
    {
        l.queued.push_front(Box::new(job));
    }
}

async fn forward_progress<X: Executor>(
    inner: Arc<Inner<X>>,
    id: String,
    pipeline: String,
    attempt: u32,
    mut rx: watch::Receiver<Progress>,
) {
    while rx.changed().await.is_ok() {
        let progress = rx.borrow_and_update().clone();
        // Committed before its event (the writer answers after the commit); a report that
        // could not be saved is not announced. The watch channel keeps only the newest
        // report, so a slow commit coalesces reports instead of queueing them.
        if let Err(e) = inner.store.save_progress(&id, attempt, &progress).await {
            tracing::warn!(job = %id, error = %e, "saving progress failed; not published");
            continue;
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
