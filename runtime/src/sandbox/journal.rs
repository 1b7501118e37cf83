//! A job's log while it runs: the guest's `host.log` calls and its stdout/stderr,
//! bounded in bytes. Past the cap, lines are dropped and one truncation note is kept.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::Utc;
use serde_json::Value;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::domain::{LogEntry, LogStream, SystemNote, format_ts};

/// Longest single line kept; longer ones are cut.
const MAX_LINE: usize = 8 * 1024;

/// Bytes an entry costs beyond its text (struct, timestamp, level), counted against the cap.
const ENTRY_OVERHEAD: usize = 64;

/// `text` cut to at most `max` bytes, on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[derive(Debug, Default)]
struct Inner {
    entries: Vec<LogEntry>,
    bytes: usize,
    truncated: bool,
    partial_stdout: String,
    partial_stderr: String,
}

/// The bounded log of one job attempt; cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Journal {
    // std Mutex: appends are short and never held across an await.
    inner: Arc<Mutex<Inner>>,
    cap: usize,
    attempt: u32,
}

impl Journal {
    /// A journal keeping at most `cap` bytes of messages.
    pub fn new(cap: usize, attempt: u32) -> Self {
        Self { inner: Arc::default(), cap, attempt }
    }

    /// Records one line.
    pub fn push(&self, level: &str, stream: LogStream, message: &str, fields: Option<Value>) {
        let Ok(mut inner) = self.inner.lock() else { return };
        self.push_locked(&mut inner, level, stream, message, fields);
    }

    fn push_locked(&self, inner: &mut Inner, level: &str, stream: LogStream, message: &str, fields: Option<Value>) {
        if inner.truncated {
            return;
        }
        // Cut before copying: a guest's 100 MB message costs the host one line, not 100 MB.
        let kept = cut(message, MAX_LINE);
        let was_cut = kept.len() < message.len();
        let mut message = kept.to_string();
        if was_cut {
            message.push_str(" …[line truncated]");
        }
        // Each entry also costs its struct and timestamp: counted, so a flood of empty
        // lines is bounded like a flood of long ones.
        let size = ENTRY_OVERHEAD + message.len() + fields.as_ref().map_or(0, |f| f.to_string().len());
        let entry = |level: &str, stream, message: String, fields| LogEntry {
            timestamp: format_ts(&Utc::now()),
            level: level.into(),
            stream,
            message,
            fields,
            attempt: self.attempt,
        };
        if inner.bytes + size > self.cap {
            inner.truncated = true;
            inner.entries.push(SystemNote::Truncated { cap: self.cap }.entry(format_ts(&Utc::now()), self.attempt));
            return;
        }
        inner.bytes += size;
        inner.entries.push(entry(level, stream, message, fields));
    }

    /// Appends raw stdout/stderr bytes, splitting them into lines. Linear in the bytes
    /// handed over, and stops reading them once the journal is full.
    fn write_stream(&self, stream: LogStream, bytes: &[u8]) {
        let Ok(mut inner) = self.inner.lock() else { return };
        let level = if stream == LogStream::Stderr { "warn" } else { "info" };
        let mut rest = bytes;
        while !rest.is_empty() && !inner.truncated {
            let newline = rest.iter().position(|b| *b == b'\n');
            let line_end = newline.unwrap_or(rest.len());
            let partial = match stream {
                LogStream::Stderr => &mut inner.partial_stderr,
                _ => &mut inner.partial_stdout,
            };
            // Only what fits in the current line is copied; a runaway line is flushed in pieces.
            let take = line_end.min(MAX_LINE.saturating_sub(partial.len()));
            partial.push_str(&String::from_utf8_lossy(&rest[..take]));
            rest = &rest[take..];
            let at_newline = take == line_end && newline.is_some();
            if at_newline {
                rest = &rest[1..];
            }
            if at_newline || partial.len() >= MAX_LINE {
                let line = std::mem::take(partial);
                self.push_locked(&mut inner, level, stream, line.trim_end_matches('\r'), None);
            }
        }
    }

    /// Everything recorded, with unterminated stdout/stderr lines flushed.
    pub fn drain(&self) -> Vec<LogEntry> {
        let Ok(mut inner) = self.inner.lock() else { return Vec::new() };
        for stream in [LogStream::Stdout, LogStream::Stderr] {
            let rest = std::mem::take(match stream {
                LogStream::Stderr => &mut inner.partial_stderr,
                _ => &mut inner.partial_stdout,
            });
            if !rest.is_empty() {
                let level = if stream == LogStream::Stderr { "warn" } else { "info" };
                self.push_locked(&mut inner, level, stream, &rest, None);
            }
        }
        inner.bytes = 0;
        std::mem::take(&mut inner.entries)
    }

    /// A stdout or stderr stream for the guest that writes into this journal.
    pub fn stream(&self, stream: LogStream) -> CapturedOutput {
        CapturedOutput { journal: self.clone(), stream }
    }
}

/// A guest stdout/stderr that lands in the job's journal. Writes never fail: past
/// the cap they are dropped, so a chatty guest is not killed by its own output.
#[derive(Debug, Clone)]
pub struct CapturedOutput {
    journal: Journal,
    stream: LogStream,
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.journal.write_stream(self.stream, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for CapturedOutput {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.journal.write_stream(self.stream, buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdout_is_split_into_lines_and_bounded() {
        // Room for three short entries (text + ENTRY_OVERHEAD each), not the long fourth.
        let j = Journal::new(300, 1);
        j.write_stream(LogStream::Stdout, b"hello\nwor");
        j.write_stream(LogStream::Stdout, b"ld\n");
        j.push("info", LogStream::Log, "from log", None);
        let mut flood = vec![b'x'; 100];
        flood.push(b'\n');
        j.write_stream(LogStream::Stderr, &flood);
        j.push("info", LogStream::Log, "dropped", None);
        let lines = j.drain();
        let texts: Vec<_> = lines.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(&texts[..3], &["hello", "world", "from log"]);
        assert!(texts.last().unwrap().contains("log truncated"), "{texts:?}");
        assert!(matches!(lines.last().unwrap().note(), Some(SystemNote::Truncated { .. })), "{texts:?}");
        assert!(!texts.contains(&"dropped"));
    }

    #[test]
    fn empty_lines_and_huge_writes_stay_bounded() {
        let j = Journal::new(64 * 1024, 1);
        for _ in 0..100_000 {
            j.push("info", LogStream::Log, "", None);
        }
        assert!(j.drain().len() <= 64 * 1024 / ENTRY_OVERHEAD + 1, "empty lines count against the cap");
        let j = Journal::new(1 << 20, 1);
        let mut big = vec![b'z'; 3 * MAX_LINE];
        big.extend_from_slice(b"\ntail\n");
        j.write_stream(LogStream::Stdout, &big);
        let lines = j.drain();
        let texts: Vec<_> = lines.iter().map(|e| e.message.len()).collect();
        assert_eq!(texts, vec![MAX_LINE, MAX_LINE, MAX_LINE, 4], "a runaway line is kept in pieces");
        let j = Journal::new(1 << 20, 1);
        j.push("info", LogStream::Log, &"m".repeat(10 * MAX_LINE), None);
        assert!(j.drain()[0].message.ends_with("[line truncated]"));
    }
}
