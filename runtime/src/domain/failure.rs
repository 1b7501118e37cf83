//! Why a job failed: a typed code plus a message a person can act on.
//!
//! Codes travel as UPPER_SNAKE strings (the `code` of a job's `error` in JSON and SQL). A
//! code this build does not know (written by another version into a shared database) reads
//! back as [`FailureCode::Other`] and is written out unchanged.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The code of a job failure.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FailureCode {
    /// The parameters were refused: at run time by the host's re-check, or by the worker.
    InvalidInput,
    /// The worker reported a failure.
    Failed,
    /// The worker reported a transient failure; the job is retried.
    Retryable,
    /// The guest ran past its deadline.
    Timeout,
    /// The guest grew its memory past the pipeline's limit.
    MemoryLimit,
    /// The guest trapped (panic, unreachable, stack overflow, ...).
    Trap,
    /// A user cancelled the job.
    Cancelled,
    /// The guest held more WASI handles than a job may.
    HandleLimit,
    /// The job's output folder grew past its quota.
    DiskQuota,
    /// The job changed the git metadata, or the repository's config names a program.
    Security,
    /// The component could not be instantiated.
    InstantiateFailed,
    /// The pipeline's worker could not be loaded when the job ran.
    WorkerUnavailable,
    /// The job's output folder could not be created.
    OutputDir,
    /// The worker's result was over the size limit.
    ResultTooLarge,
    /// The worker's result was not JSON.
    InvalidResult,
    /// A step of the git workflow (branch, commit, push, pull request) failed.
    GitWorkflowFailed,
    /// A code this build does not know, kept verbatim. Build it with [`FailureCode::parse`],
    /// which never wraps a known code.
    Other(String),
}

impl FailureCode {
    /// Every known code, in declaration order.
    pub const KNOWN: [FailureCode; 16] = [
        FailureCode::InvalidInput,
        FailureCode::Failed,
        FailureCode::Retryable,
        FailureCode::Timeout,
        FailureCode::MemoryLimit,
        FailureCode::Trap,
        FailureCode::Cancelled,
        FailureCode::HandleLimit,
        FailureCode::DiskQuota,
        FailureCode::Security,
        FailureCode::InstantiateFailed,
        FailureCode::WorkerUnavailable,
        FailureCode::OutputDir,
        FailureCode::ResultTooLarge,
        FailureCode::InvalidResult,
        FailureCode::GitWorkflowFailed,
    ];

    /// The UPPER_SNAKE spelling used in JSON and SQL.
    pub fn as_str(&self) -> &str {
        match self {
            FailureCode::InvalidInput => "INVALID_INPUT",
            FailureCode::Failed => "FAILED",
            FailureCode::Retryable => "RETRYABLE",
            FailureCode::Timeout => "TIMEOUT",
            FailureCode::MemoryLimit => "MEMORY_LIMIT",
            FailureCode::Trap => "TRAP",
            FailureCode::Cancelled => "CANCELLED",
            FailureCode::HandleLimit => "HANDLE_LIMIT",
            FailureCode::DiskQuota => "DISK_QUOTA",
            FailureCode::Security => "SECURITY",
            FailureCode::InstantiateFailed => "INSTANTIATE_FAILED",
            FailureCode::WorkerUnavailable => "WORKER_UNAVAILABLE",
            FailureCode::OutputDir => "OUTPUT_DIR",
            FailureCode::ResultTooLarge => "RESULT_TOO_LARGE",
            FailureCode::InvalidResult => "INVALID_RESULT",
            FailureCode::GitWorkflowFailed => "GIT_WORKFLOW_FAILED",
            FailureCode::Other(code) => code,
        }
    }

    /// The code spelled `s`: a known variant, else `Other(s)`.
    pub fn parse(s: &str) -> Self {
        Self::KNOWN.into_iter().find(|c| c.as_str() == s).unwrap_or_else(|| FailureCode::Other(s.to_string()))
    }
}

impl fmt::Display for FailureCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FailureCode {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::parse(s))
    }
}

impl From<&str> for FailureCode {
    fn from(s: &str) -> Self {
        Self::parse(s)
    }
}

impl PartialEq<str> for FailureCode {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for FailureCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for FailureCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for FailureCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Ok(Self::parse(&s))
    }
}

/// Why a job failed, as stored and shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobFailure {
    /// A message a person can act on.
    pub message: String,
    /// UPPER_SNAKE code: INVALID_INPUT, FAILED, RETRYABLE, TIMEOUT, MEMORY_LIMIT, TRAP, ...
    #[schema(value_type = String)]
    pub code: FailureCode,
    /// Whether the runtime considers a retry useful.
    pub retryable: bool,
}

impl JobFailure {
    /// A failure with `code` and `message`.
    pub fn new(code: FailureCode, message: impl Into<String>, retryable: bool) -> Self {
        Self { message: message.into(), code, retryable }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes_round_trip_through_their_wire_spelling() {
        for code in FailureCode::KNOWN {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<FailureCode>(&json).unwrap(), code);
            assert_eq!(FailureCode::parse(code.as_str()), code, "{code} parses to its variant, never Other");
        }
    }

    #[test]
    fn unknown_codes_load_and_are_written_back_unchanged() {
        let stored = r#"{"message":"m","code":"SOMETHING_NEWER","retryable":false}"#;
        let failure: JobFailure = serde_json::from_str(stored).unwrap();
        assert_eq!(failure.code, FailureCode::Other("SOMETHING_NEWER".into()));
        assert_eq!(serde_json::to_string(&failure).unwrap(), stored);
    }

    #[test]
    fn the_wire_form_is_unchanged() {
        let failure = JobFailure::new(FailureCode::MemoryLimit, "too big", false);
        assert_eq!(
            serde_json::to_string(&failure).unwrap(),
            r#"{"message":"too big","code":"MEMORY_LIMIT","retryable":false}"#
        );
        assert_eq!(failure.code, "MEMORY_LIMIT");
    }
}
