//! The domain model: jobs and their lifecycle, failures, log lines and timestamps.
//!
//! **Layer:** the bottom of the crate. This module imports nothing else from the crate
//! (checked by `layers::tests`), so every other module may use it without a cycle. Its
//! types define the wire format (JSON over the API, rows in SQL): renaming a field or a
//! variant's spelling here changes both.

pub mod failure;
pub mod job;
pub mod log;
pub mod time;

pub use self::failure::{FailureCode, JobFailure};
pub use self::job::{GitInfo, Job, JobStatus, Progress, RESERVED_KEYS, is_valid_job_id, job_params};
pub use self::log::{LogEntry, LogStream, SystemNote};
pub use self::time::{format_ts, parse_ts};
