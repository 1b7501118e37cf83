//! A job's log: lines from the guest (`host.log`, stdout, stderr) and the runtime's own notes.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Which stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    /// The guest's `host.log` calls.
    Log,
    /// The guest's stdout.
    Stdout,
    /// The guest's stderr.
    Stderr,
    /// The runtime's own notes (truncation, limits).
    System,
}

/// One line of a job's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogEntry {
    /// RFC 3339 time it was recorded.
    pub timestamp: String,
    /// trace | debug | info | warn | error.
    pub level: String,
    /// Where it came from.
    pub stream: LogStream,
    /// The text.
    pub message: String,
    /// Structured fields (JSON object) from `host.log`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<Value>,
    /// Attempt that produced it.
    pub attempt: u32,
}

/// A note the runtime writes into a job's log that readers act on. It is stored as a plain
/// `system` line (the wire format has no kind field); this type owns its text, so the
/// writer and the readers cannot drift apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemNote {
    /// The attempt logged more than `cap` bytes; later lines were dropped.
    Truncated {
        /// The journal's cap in bytes.
        cap: usize,
    },
}

const TRUNCATED_PREFIX: &str = "log truncated: more than ";
const TRUNCATED_SUFFIX: &str = " bytes of output";

impl SystemNote {
    /// The note's text as stored.
    pub fn message(&self) -> String {
        match self {
            SystemNote::Truncated { cap } => format!("{TRUNCATED_PREFIX}{cap}{TRUNCATED_SUFFIX}"),
        }
    }

    /// The note as a `warn` line of the `system` stream.
    pub fn entry(&self, timestamp: String, attempt: u32) -> LogEntry {
        LogEntry {
            timestamp,
            level: "warn".into(),
            stream: LogStream::System,
            message: self.message(),
            fields: None,
            attempt,
        }
    }
}

impl LogEntry {
    /// The runtime note this line carries, if it is one.
    pub fn note(&self) -> Option<SystemNote> {
        if self.stream != LogStream::System {
            return None;
        }
        let cap = self.message.strip_prefix(TRUNCATED_PREFIX)?.strip_suffix(TRUNCATED_SUFFIX)?;
        cap.parse().ok().map(|cap| SystemNote::Truncated { cap })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_recognised_only_on_the_system_stream() {
        let note = SystemNote::Truncated { cap: 4096 };
        let entry = note.entry("2026-01-01T00:00:00.000Z".into(), 2);
        assert_eq!(entry.message, "log truncated: more than 4096 bytes of output");
        assert_eq!(entry.note(), Some(note));
        let guest = LogEntry { stream: LogStream::Stdout, ..entry.clone() };
        assert_eq!(guest.note(), None, "a guest printing the same text is not a runtime note");
        let other = LogEntry { message: "memory limit reached".into(), ..entry };
        assert_eq!(other.note(), None);
    }

    #[test]
    fn streams_are_lowercase_on_the_wire() {
        assert_eq!(serde_json::to_string(&LogStream::System).unwrap(), "\"system\"");
    }
}
