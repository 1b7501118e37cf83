//! The runtime's executor: a pipeline's jobs run in its sandboxed worker (`Sandbox::run_job`),
//! wrapped in the git workflow when configured, or natively when a handler was installed for
//! that pipeline (the benchmark's no-sandbox baseline).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::{Value, json};

use super::executor::{Attempt, Executor, Outcome, RunsOn, Validated};
use super::{TriggerError, outputs};
use crate::domain::LogStream;
use crate::domain::{FailureCode, job_params};
use crate::domain::{Job, JobFailure};
use crate::failpoints;
use crate::gitflow::{BeginRequest, GitSession, GitWorkflow};
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::registry::worker::{ValidParams, Worker};
use crate::sandbox::grants::{Access, Grant};
use crate::sandbox::{GuestFailure, JobRun, RunError};

/// A handler that runs a pipeline's jobs natively in the host instead of in its
/// component: the baseline that shows what the sandbox costs (benchmarks, tests).
/// Triggers are still validated by the pipeline's worker.
pub type NativeHandler = Arc<dyn Fn(&Job) -> Result<Value, JobFailure> + Send + Sync>;

/// Runs each pipeline's jobs through its worker from the registry.
pub struct Workers {
    registry: Arc<Registry>,
    git: GitWorkflow,
    metrics: Arc<Metrics>,
    /// Canonical folder holding each job's output folder.
    outputs_dir: PathBuf,
    max_result_bytes: usize,
    native: RwLock<HashMap<String, NativeHandler>>,
    /// Removes empty output folders off the hot path.
    janitor: std::sync::mpsc::Sender<PathBuf>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers").field("outputs_dir", &self.outputs_dir).finish_non_exhaustive()
    }
}

fn failure(code: FailureCode, message: impl Into<String>, retryable: bool) -> JobFailure {
    JobFailure::new(code, message, retryable)
}

impl Workers {
    /// An executor over `registry`'s workers, with output folders under `outputs_dir`.
    pub fn new(
        registry: Arc<Registry>,
        git: GitWorkflow,
        metrics: Arc<Metrics>,
        outputs_dir: PathBuf,
        max_result_bytes: usize,
    ) -> Self {
        // Resolved once here, so each job's folder needs one mkdir and no path walk.
        if let Err(e) = std::fs::create_dir_all(&outputs_dir) {
            tracing::warn!(dir = %outputs_dir.display(), error = %e, "cannot create the outputs folder");
        }
        let outputs_dir = std::fs::canonicalize(&outputs_dir).unwrap_or(outputs_dir);
        let (janitor, folders) = std::sync::mpsc::channel::<PathBuf>();
        let spawned = std::thread::Builder::new().name("output-janitor".into()).spawn(move || {
            for dir in folders {
                outputs::tidy(&dir);
            }
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the output-folder janitor; empty folders stay");
        }
        Self { registry, git, metrics, outputs_dir, max_result_bytes, native: RwLock::default(), janitor }
    }

    /// The registry the workers come from.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Runs `pipeline`'s jobs with `handler` in the host instead of its component.
    pub fn set_native_handler(&self, pipeline: &str, handler: NativeHandler) {
        if let Ok(mut native) = self.native.write() {
            native.insert(pipeline.to_string(), handler);
        }
    }

    async fn run_in_worker(&self, attempt: Attempt<'_>) -> Outcome {
        let job = attempt.job;
        // The version the job was triggered on; jobs from before versions use the active one.
        let worker = match &job.component_digest {
            Some(digest) => self.registry.worker_for(&job.pipeline_id, digest).await,
            None => self.registry.get_worker(&job.pipeline_id).await,
        };
        let worker = match worker {
            Ok(w) => w,
            Err(e) => return Outcome::Failed(failure(FailureCode::WorkerUnavailable, e.to_string(), true)),
        };
        // Paths are checked again at run time: the tree may have changed since the trigger. A
        // schema without path parameters has nothing to re-check (the stored parameters passed
        // it at the trigger; the guest still checks its own input).
        let params = job_params(&job.data);
        let valid = if worker.takes_paths {
            match worker.validate(params).await {
                Ok(v) => v,
                Err(e) => return Outcome::Failed(failure(FailureCode::InvalidInput, e.to_string(), false)),
            }
        } else {
            ValidParams { params, grants: Vec::new() }
        };
        let dry_run = valid.params.get("dryRun").and_then(Value::as_bool).unwrap_or(false);
        let session = match self.begin_git(&worker, job, &valid.params).await {
            Ok(s) => s,
            Err(f) => return Outcome::Failed(f),
        };
        let outcome = self.run_guest(&worker, &attempt, valid.params, valid.grants).await;
        failpoints::hit(failpoints::GUEST_FINISHED);
        let Some(session) = session else {
            return match outcome {
                Ok(result) => Outcome::Completed(result, None),
                Err(Some(f)) => Outcome::Failed(f),
                Err(None) => Outcome::Interrupted,
            };
        };
        match outcome {
            Ok(mut result) => match self.git.complete(session, &job.id, dry_run).await {
                Ok(git) => {
                    if let Value::Object(map) = &mut result {
                        map.entry("git").or_insert_with(|| json!(git));
                    }
                    Outcome::Completed(result, Some(git))
                }
                Err(e) => Outcome::Failed(failure(crate::gitflow::failure_code(&e), format!("{e:#}"), false)),
            },
            Err(f) => {
                // A job that changed the git metadata fails with SECURITY whatever else it did.
                let tampered = self.git.abort(session).await.err();
                match (f, tampered) {
                    (Some(_), Some(e)) => {
                        Outcome::Failed(failure(crate::gitflow::failure_code(&e), format!("{e:#}"), false))
                    }
                    (Some(f), None) => Outcome::Failed(f),
                    (None, _) => Outcome::Interrupted,
                }
            }
        }
    }

    async fn begin_git(&self, worker: &Worker, job: &Job, params: &Value) -> Result<Option<GitSession>, JobFailure> {
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
        self.git.begin(request).await.map_err(|e| failure(crate::gitflow::failure_code(&e), format!("{e:#}"), false))
    }

    /// Runs the guest; Err(None) means interrupted (cancel or shutdown).
    async fn run_guest(
        &self,
        worker: &Worker,
        attempt: &Attempt<'_>,
        params: Value,
        mut grants: Vec<Grant>,
    ) -> Result<Value, Option<JobFailure>> {
        let job = attempt.job;
        // A worker that declared it writes no reports gets no folder: one capability fewer,
        // and no mkdir on the per-job path.
        let output_dir = worker.wants_output.then(|| self.outputs_dir.join(&job.id));
        if let Some(dir) = &output_dir {
            match std::fs::create_dir(dir) {
                Ok(()) => {}
                // An earlier attempt of the same job made it (a real folder, not a link to elsewhere).
                Err(e)
                    if e.kind() == std::io::ErrorKind::AlreadyExists
                        && std::fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_dir()) => {}
                Err(e) => {
                    return Err(Some(failure(
                        FailureCode::OutputDir,
                        format!("creating {}: {e}", dir.display()),
                        true,
                    )));
                }
            }
            grants.push(Grant { param: "output".into(), dir: dir.clone(), access: Access::Write });
        }
        let run = JobRun {
            id: &job.id,
            pipeline_id: &job.pipeline_id,
            attempt: job.attempt,
            params: params.to_string(),
            output_dir: output_dir.as_deref(),
            grants,
            memory_bytes: (worker.config.memory_mb as usize) << 20,
            timeout: Duration::from_secs(worker.config.timeout_secs),
            caps: (&worker.config).into(),
            cancelled: attempt.cancel.clone(),
            journal: attempt.journal.clone(),
            // Started by the guest's first progress report; most jobs never make one.
            progress: Some(attempt.progress()),
        };
        let report = self.registry.sandbox().run_job(&worker.pre, run).await;
        if let Some(took) = report.instantiated {
            self.metrics.instantiated(&worker.pipeline_id, took);
        }
        if let Some(dir) = output_dir {
            if matches!(report.outcome, Err(RunError::Guest(GuestFailure::DiskQuota(_)))) {
                // An over-quota folder is not a report anyone asked for: it goes with the job.
                let doomed = dir.clone();
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&doomed)).await {
                    tracing::warn!(job = %job.id, dir = %dir.display(), error = %e, "removing an over-quota output folder failed");
                }
            }
            let _ = self.janitor.send(dir);
        }
        match report.outcome {
            Ok(text) => {
                if text.len() > self.max_result_bytes {
                    return Err(Some(failure(
                        FailureCode::ResultTooLarge,
                        format!("the worker returned {} bytes; the limit is {}", text.len(), self.max_result_bytes),
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
            Err(RunError::InvalidInput { field, message }) => {
                Err(Some(failure(FailureCode::InvalidInput, format!("Invalid parameter '{field}': {message}"), false)))
            }
            Err(RunError::Failed(msg)) => Err(Some(failure(FailureCode::Failed, msg, false))),
            Err(RunError::Retryable(msg)) => Err(Some(failure(FailureCode::Retryable, msg, true))),
            Err(RunError::Guest(GuestFailure::Cancelled)) => Err(None),
            Err(RunError::Guest(f)) => {
                attempt.journal.push("error", LogStream::System, &f.to_string(), None);
                Err(Some(failure(f.code(), f.to_string(), false)))
            }
        }
    }
}

impl Executor for Workers {
    async fn validate(&self, pipeline: &str, params: Value) -> Result<Value, TriggerError> {
        let worker = self.registry.get_worker(pipeline).await?;
        Ok(worker.validate(params).await?.params)
    }

    async fn validate_on(
        &self,
        pipeline: &str,
        params: Value,
        version: Option<&str>,
    ) -> Result<Validated, TriggerError> {
        let worker = self.registry.resolve(pipeline, version).await?;
        let params = worker.validate(params).await?.params;
        Ok(Validated {
            params,
            runs_on: Some(RunsOn { version: worker.info.version.clone(), digest: worker.digest.clone() }),
        })
    }

    async fn run(&self, attempt: Attempt<'_>) -> Outcome {
        let native = self.native.read().ok().and_then(|n| n.get(&attempt.job.pipeline_id).cloned());
        if let Some(handler) = native {
            return match handler(attempt.job) {
                Ok(result) => Outcome::Completed(result, None),
                Err(f) => Outcome::Failed(f),
            };
        }
        self.run_in_worker(attempt).await
    }
}
