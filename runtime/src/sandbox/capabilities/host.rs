//! The `host` interface: structured logs, progress, the job's context, cancellation
//! and the one file fact WASI hides (the executable bit), for granted paths only.
//!
//! Everything a guest hands over is bounded *before* the host works on it: a log
//! message is cut before it is copied, `fields` larger than `MAX_FIELDS` are kept as a
//! short string and never parsed, a progress message is cut to `MAX_PROGRESS_MESSAGE`.
//! The lifted strings themselves are bounded by the guest's own linear memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use wasmtime::component::{HasSelf, Linker};

use crate::domain::{LogStream, Progress};
use crate::sandbox::bindings::host::{self as wit, LogLevel};
use crate::sandbox::bindings::types;
use crate::sandbox::journal::Journal;
use crate::sandbox::{HostState, ProgressSink};

/// Longest progress message kept.
const MAX_PROGRESS_MESSAGE: usize = 500;

/// Largest `fields` JSON a log call may hand over to be parsed; larger ones are stored as
/// a truncated string (parsing is where a 100 MB document became gigabytes of host memory).
pub const MAX_FIELDS: usize = 64 * 1024;

/// What is kept of `fields` past `MAX_FIELDS`.
const FIELDS_PREVIEW: usize = 1000;

/// Per-job state of the `host` interface.
#[derive(Debug)]
pub struct HostCapability {
    /// The job (none for the registry's control instance).
    pub job: Option<Arc<types::Job>>,
    /// Where log calls and stdout/stderr go.
    pub journal: Journal,
    /// Where progress goes.
    pub progress: Option<ProgressSink>,
    /// Set by a cancel request.
    pub cancelled: Arc<AtomicBool>,
}

/// Adds the `host` and `types` interfaces to the linker.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> Result<()> {
    types::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)
        .map_err(anyhow::Error::from)
        .context("adding alephauto:worker/types")?;
    wit::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)
        .map_err(anyhow::Error::from)
        .context("adding alephauto:worker/host")
}

impl types::Host for HostState {}

fn level_name(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Trace => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn prefix(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    &text[..cut]
}

/// `fields` as stored: none when empty, parsed JSON when small, a cut string otherwise.
pub fn bounded_fields(fields: &str) -> Option<serde_json::Value> {
    let text = fields.trim();
    match text {
        "" | "{}" => None,
        text if text.len() > MAX_FIELDS => Some(serde_json::Value::String(format!(
            "{} …[fields of {} bytes truncated; the limit is {MAX_FIELDS}]",
            prefix(text, FIELDS_PREVIEW),
            text.len()
        ))),
        text => Some(
            serde_json::from_str(text)
                .unwrap_or_else(|_| serde_json::Value::String(prefix(text, FIELDS_PREVIEW).to_string())),
        ),
    }
}

impl wit::Host for HostState {
    async fn log(&mut self, level: LogLevel, message: String, fields: String) -> wasmtime::Result<()> {
        let fields = bounded_fields(&fields);
        self.host.journal.push(level_name(level), LogStream::Log, &message, fields);
        Ok(())
    }

    async fn progress(&mut self, percent: u8, message: String) -> wasmtime::Result<()> {
        if let Some(sink) = &mut self.host.progress {
            let message: String = message.chars().take(MAX_PROGRESS_MESSAGE).collect();
            // Only the latest value is kept, so a flood of calls costs nothing downstream.
            sink.report(Progress { percent: percent.min(100), message });
        }
        Ok(())
    }

    async fn context(&mut self) -> wasmtime::Result<Option<types::Job>> {
        Ok(self.host.job.as_deref().cloned())
    }

    async fn cancelled(&mut self) -> wasmtime::Result<bool> {
        Ok(self.host.cancelled.load(Ordering::Relaxed))
    }

    async fn file_executable(&mut self, path: String) -> wasmtime::Result<Result<bool, String>> {
        // A stat of a granted folder is quick; keep it off the async threads all the same.
        let grants = self.grants.clone();
        let answer =
            tokio::task::spawn_blocking(move || crate::sandbox::capabilities::fs::file_executable(&grants, &path))
                .await
                .map_err(|e| wasmtime::Error::msg(format!("file-executable task failed: {e}")))?;
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_fields_are_never_parsed() {
        let big = format!("{{\"a\":[{}0]}}", "0,".repeat(MAX_FIELDS));
        let Some(serde_json::Value::String(kept)) = bounded_fields(&big) else { panic!("kept as a string") };
        assert!(kept.len() < FIELDS_PREVIEW + 100 && kept.contains("truncated"), "{}", kept.len());
        assert_eq!(bounded_fields(r#"{"n":1}"#), Some(serde_json::json!({"n": 1})));
        assert_eq!(bounded_fields(" {} "), None);
        assert_eq!(prefix("héllo", 2), "h");
    }
}
