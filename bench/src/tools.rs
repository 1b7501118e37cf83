//! Section 5's shared helpers: one job through the real queue, and a CLI run, each timed.
//! The rows themselves: `repomix` (repomix CLI) and `dupes` (jscpd 4 and 5).

use std::process::Command;
use std::time::{Duration, Instant};

use alephauto::domain::JobStatus;
use alephauto::events::EventKind;
use alephauto::queue::Queue;
use anyhow::{Context, Result, bail};
use serde_json::Value;

/// Runs one job to its end; returns (wall time trigger → completed, result).
pub(crate) async fn run_job(queue: &Queue, pipeline: &str, params: Value) -> Result<(Duration, Value)> {
    let mut rx = queue.events().subscribe();
    let started = Instant::now();
    let job = queue.trigger(pipeline, params).await?;
    loop {
        let e = tokio::time::timeout(Duration::from_secs(600), rx.recv()).await??;
        if e.job_id == job.id && matches!(e.kind, EventKind::Completed | EventKind::Failed | EventKind::Cancelled) {
            break;
        }
    }
    let took = started.elapsed();
    let done = queue.store().get(&job.id).await?.context("job vanished")?;
    if done.status != JobStatus::Completed {
        bail!("{pipeline} job failed: {:?}", done.error);
    }
    Ok((took, done.result.unwrap_or(Value::Null)))
}

/// Runs a command to its end; its wall time.
pub(crate) fn timed(mut cmd: Command) -> Result<Duration> {
    let started = Instant::now();
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    let took = started.elapsed();
    if !out.status.success() {
        bail!("{cmd:?} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    Ok(took)
}
