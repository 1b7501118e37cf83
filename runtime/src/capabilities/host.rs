//! The `host` interface: structured logs, progress, the job's context, cancellation
//! and the one file fact WASI hides (the executable bit), for granted paths only.

use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::Ordering;

use crate::queue::job::Progress;
use crate::sandbox::HostState;
use crate::sandbox::bindings::host::{self as wit, LogLevel};
use crate::sandbox::bindings::types;
use crate::store::LogStream;

/// Longest progress message kept.
const MAX_PROGRESS_MESSAGE: usize = 500;

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

impl wit::Host for HostState {
    async fn log(&mut self, level: LogLevel, message: String, fields: String) -> wasmtime::Result<()> {
        let fields = match fields.trim() {
            "" | "{}" => None,
            text => Some(
                serde_json::from_str(text)
                    .unwrap_or_else(|_| serde_json::Value::String(text.chars().take(1000).collect())),
            ),
        };
        self.journal.push(level_name(level), LogStream::Log, &message, fields);
        Ok(())
    }

    async fn progress(&mut self, percent: u8, message: String) -> wasmtime::Result<()> {
        if let Some(sink) = &mut self.progress {
            let message: String = message.chars().take(MAX_PROGRESS_MESSAGE).collect();
            // Only the latest value is kept, so a flood of calls costs nothing downstream.
            sink.report(Progress { percent: percent.min(100), message });
        }
        Ok(())
    }

    async fn context(&mut self) -> wasmtime::Result<Option<types::Job>> {
        Ok(self.job.as_deref().cloned())
    }

    async fn cancelled(&mut self) -> wasmtime::Result<bool> {
        Ok(self.deadline.cancelled.load(Ordering::Relaxed))
    }

    async fn file_executable(&mut self, path: String) -> wasmtime::Result<Result<bool, String>> {
        let canonical = match std::fs::canonicalize(&path) {
            Ok(p) => p,
            Err(e) => return Ok(Err(format!("{path}: {e}"))),
        };
        if !self.grants.iter().any(|g| canonical.starts_with(&g.dir)) {
            return Ok(Err(format!("{path} is outside the folders granted to this job")));
        }
        Ok(std::fs::metadata(&canonical)
            .map(|m| m.permissions().mode() & 0o111 != 0)
            .map_err(|e| format!("{path}: {e}")))
    }
}
