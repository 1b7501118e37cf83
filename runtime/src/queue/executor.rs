//! How an attempt runs: the [`Executor`] the queue hands each claimed job to. The runtime's
//! is [`super::Workers`] (the pipeline's sandboxed worker, or a native handler); the queue's
//! unit tests use a fake that needs no component.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use serde_json::Value;

use super::TriggerError;
use crate::domain::{GitInfo, Job, JobFailure};
use crate::sandbox::ProgressSink;
use crate::sandbox::journal::Journal;

/// How an attempt ended.
#[derive(Debug)]
pub enum Outcome {
    /// A result (and the git workflow's facts, when it ran).
    Completed(Value, Option<GitInfo>),
    /// A failure; a retryable one may be re-queued.
    Failed(JobFailure),
    /// Interrupted by a cancel request or by shutdown; the store already knows.
    Interrupted,
}

/// One claimed attempt, handed to an executor.
pub struct Attempt<'a> {
    /// The job, `running` at `job.attempt`.
    pub job: &'a Job,
    /// Set when the attempt must stop (a cancel, shutdown).
    pub cancel: &'a Arc<AtomicBool>,
    /// The attempt's log, saved when it ends.
    pub journal: &'a Journal,
    pub(super) progress: &'a (dyn Fn() -> ProgressSink + Send + Sync),
}

impl std::fmt::Debug for Attempt<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attempt").field("job", &self.job.id).field("attempt", &self.job.attempt).finish()
    }
}

impl Attempt<'_> {
    /// A sink whose reports are saved and published as `job:progress`. Its forwarding task
    /// starts with the first report, so an attempt that reports nothing pays for no task.
    pub fn progress(&self) -> ProgressSink {
        (self.progress)()
    }
}

/// The worker version a job is triggered on (recorded on the job, and run on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunsOn {
    /// What the worker's `describe` reports.
    pub version: String,
    /// SHA-256 (hex) of its component.
    pub digest: String,
}

/// Trigger parameters as they will be stored, and the version they were checked by.
#[derive(Debug, Clone)]
pub struct Validated {
    /// The parameters, defaults applied.
    pub params: Value,
    /// The worker version, when the executor has versions.
    pub runs_on: Option<RunsOn>,
}

/// How a pipeline's attempts run, and how its trigger parameters are checked.
///
/// Statically dispatched (`Queue<X>`): the queue's per-job path adds no allocation for it.
pub trait Executor: Send + Sync + 'static {
    /// Checks a trigger's parameters for `pipeline`; returns them as they will be stored.
    fn validate(&self, pipeline: &str, params: Value) -> impl Future<Output = Result<Value, TriggerError>> + Send;

    /// Checks a trigger's parameters with the pipeline's active version, or the registered
    /// `version` a trigger pins; says which version the job will run on. An executor
    /// without versions ignores `version`.
    fn validate_on(
        &self,
        pipeline: &str,
        params: Value,
        version: Option<&str>,
    ) -> impl Future<Output = Result<Validated, TriggerError>> + Send {
        let _ = version;
        async move { Ok(Validated { params: self.validate(pipeline, params).await?, runs_on: None }) }
    }

    /// Runs one attempt.
    fn run(&self, attempt: Attempt<'_>) -> impl Future<Output = Outcome> + Send;
}
