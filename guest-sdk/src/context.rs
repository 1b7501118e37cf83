//! `Context`: the running job and the host calls a worker may make (progress, log, cancel, exec bit),
//! plus the `Reporter` trait so worker logic can be unit-tested natively with [`Silent`].

use std::path::{Path, PathBuf};

use crate::bindings::alephauto::worker::{host, types};
use crate::{Git, JobError};

/// Severity of a log record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Very fine detail.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something odd that the job survived.
    Warn,
    /// Something failed.
    Error,
}

/// Where worker logic sends progress and log lines; implemented by [`Context`] and [`Silent`].
pub trait Reporter {
    /// Percent done (0-100) and what is happening now.
    fn progress(&self, percent: u8, message: &str);
    /// One log line.
    fn log(&self, level: Level, message: &str);
    /// True once the host cancelled the job.
    fn cancelled(&self) -> bool {
        false
    }
    /// `Err(cancelled)` once the job was cancelled, so long loops can `?` out.
    fn check_cancelled(&self) -> Result<(), JobError> {
        if self.cancelled() { Err(JobError::cancelled()) } else { Ok(()) }
    }
}

/// A reporter that drops everything (native unit tests).
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Reporter for Silent {
    fn progress(&self, _: u8, _: &str) {}
    fn log(&self, _: Level, _: &str) {}
}

/// A directory the host preopened for this job (guest path equals host path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// JSON pointer of the parameter that named it, or `output`.
    pub param: String,
    /// Absolute path.
    pub path: PathBuf,
    /// Whether the guest may write there.
    pub writable: bool,
}

/// Structured logging into the job's log.
#[derive(Debug, Default, Clone, Copy)]
pub struct Log;

impl Log {
    /// Logs at `level` with a JSON object of fields.
    pub fn with_fields(&self, level: Level, message: &str, fields: &serde_json::Value) {
        let level = match level {
            Level::Trace => host::LogLevel::Trace,
            Level::Debug => host::LogLevel::Debug,
            Level::Info => host::LogLevel::Info,
            Level::Warn => host::LogLevel::Warn,
            Level::Error => host::LogLevel::Error,
        };
        host::log(level, message, &fields.to_string());
    }
    /// Debug line.
    pub fn debug(&self, message: &str) {
        self.with_fields(Level::Debug, message, &serde_json::json!({}));
    }
    /// Info line.
    pub fn info(&self, message: &str) {
        self.with_fields(Level::Info, message, &serde_json::json!({}));
    }
    /// Warning line.
    pub fn warn(&self, message: &str) {
        self.with_fields(Level::Warn, message, &serde_json::json!({}));
    }
    /// Error line.
    pub fn error(&self, message: &str) {
        self.with_fields(Level::Error, message, &serde_json::json!({}));
    }
    /// Info line with fields.
    pub fn info_fields(&self, message: &str, fields: &serde_json::Value) {
        self.with_fields(Level::Info, message, fields);
    }
}

/// The job being run and the host calls available to it.
#[derive(Debug, Clone)]
pub struct Context {
    /// Structured logging (`ctx.log.info(..)`).
    pub log: Log,
    job_id: String,
    pipeline_id: String,
    attempt: u32,
    output_dir: PathBuf,
    grants: Vec<Grant>,
}

impl Context {
    pub(crate) fn from_job(job: &types::Job) -> Self {
        let grants = job
            .grants
            .iter()
            .map(|g| Grant {
                param: g.param.clone(),
                path: PathBuf::from(&g.path),
                writable: matches!(g.access, types::Access::ReadWrite),
            })
            .collect();
        Self {
            log: Log,
            job_id: job.id.clone(),
            pipeline_id: job.pipeline_id.clone(),
            attempt: job.attempt,
            output_dir: PathBuf::from(&job.output_dir),
            grants,
        }
    }

    /// Reports progress (clamped to 100); the host emits a `job:progress` event.
    pub fn progress(&self, percent: u8, message: &str) {
        host::progress(percent.min(100), message);
    }
    /// The job id.
    pub fn job_id(&self) -> &str {
        &self.job_id
    }
    /// The pipeline id.
    pub fn pipeline_id(&self) -> &str {
        &self.pipeline_id
    }
    /// 1 on the first run, higher on re-runs.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
    /// The job's own read-write directory for reports.
    pub fn output_dir(&self) -> &Path {
        &self.output_dir
    }
    /// Every directory preopened for this job.
    pub fn grants(&self) -> &[Grant] {
        &self.grants
    }
    /// True once the host cancelled the job.
    pub fn cancelled(&self) -> bool {
        host::cancelled()
    }
    /// `Err(cancelled)` once the host cancelled the job, so long loops can `?` out.
    pub fn check_cancelled(&self) -> Result<(), JobError> {
        Reporter::check_cancelled(self)
    }
    /// Read-only git queries on granted repositories.
    pub fn git(&self) -> Git {
        Git
    }
    /// Whether a granted file has an executable bit (WASI does not expose modes).
    pub fn file_executable(&self, path: &Path) -> Result<bool, String> {
        host::file_executable(&path.to_string_lossy())
    }
}

impl Reporter for Context {
    fn progress(&self, percent: u8, message: &str) {
        Context::progress(self, percent, message);
    }
    fn log(&self, level: Level, message: &str) {
        self.log.with_fields(level, message, &serde_json::json!({}));
    }
    fn cancelled(&self) -> bool {
        Context::cancelled(self)
    }
}
