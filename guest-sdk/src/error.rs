//! `JobError`: why a job did not succeed, in plain Rust (converted to the WIT variant at the edge).

use std::fmt;

/// Why a job did not succeed; mirrors the WIT `job-error` variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobError {
    /// The parameters are wrong; retrying cannot help.
    InvalidInput {
        /// The parameter's name (dotted path for nested ones).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The job failed; retrying will not help.
    Failed(String),
    /// The job failed for a reason that may pass; the host retries with backoff.
    Retryable(String),
}

impl JobError {
    /// A parameter the worker refuses.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidInput { field: field.into(), message: message.into() }
    }

    /// A failure that retrying will not fix.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::Failed(message.into())
    }

    /// A failure that may pass on a later attempt.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self::Retryable(message.into())
    }

    /// The job stopped because the host cancelled it.
    pub fn cancelled() -> Self {
        Self::Failed("job cancelled".to_owned())
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidInput { field, message } => {
                write!(f, "invalid parameter `{field}`: {message}")
            }
            Self::Failed(m) => write!(f, "failed: {m}"),
            Self::Retryable(m) => write!(f, "retryable: {m}"),
        }
    }
}

impl std::error::Error for JobError {}

/// Adds context to any error and turns it into a [`JobError::Failed`].
pub trait ResultExt<T> {
    /// On error: `Failed("<context>: <error>")`.
    fn or_fail(self, context: impl fmt::Display) -> Result<T, JobError>;
    /// Like [`ResultExt::or_fail`], building the context lazily.
    fn or_fail_with<C: fmt::Display>(self, context: impl FnOnce() -> C) -> Result<T, JobError>;
}

impl<T, E: fmt::Display> ResultExt<T> for Result<T, E> {
    fn or_fail(self, context: impl fmt::Display) -> Result<T, JobError> {
        self.map_err(|e| JobError::Failed(format!("{context}: {e}")))
    }

    fn or_fail_with<C: fmt::Display>(self, context: impl FnOnce() -> C) -> Result<T, JobError> {
        self.map_err(|e| JobError::Failed(format!("{}: {e}", context())))
    }
}
