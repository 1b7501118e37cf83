//! WAL checkpoints off the commit path. SQLite's autocheckpoint runs inside the COMMIT that
//! takes the WAL past 1,000 frames, so that batch's callers wait for the copy and its two
//! fsyncs (a tenth of the writer's time in a profile of the burn-down). Instead the writer
//! records the WAL's size after each commit (`wal_hook`, which also turns autocheckpoint off
//! for its connection) and wakes a checkpoint thread with its own connection, which copies
//! frames back while the writer goes on.
//!
//! A passive checkpoint never catches up with a writer that never pauses, and the WAL starts
//! over from its beginning only once one has; so past `WRITER_CHECKPOINT_FRAMES` the writer
//! checkpoints itself, after sending its batch's replies. By then the thread has copied and
//! synced most frames, so that copy is short, and the WAL stays bounded under any load.

use std::cell::Cell;
use std::os::raw::c_int;
use std::path::Path;
use std::sync::mpsc::{self, SyncSender, TrySendError};

use anyhow::Context;
use rusqlite::Connection;
use rusqlite::hooks::Wal;

/// WAL frames (pages) between wake-ups of the checkpoint thread: SQLite's autocheckpoint size.
/// Waking it on every commit instead runs pass after pass, each with two fsyncs, and takes
/// the second core from the workers.
const BACKGROUND_CHECKPOINT_FRAMES: c_int = 1000;

/// WAL frames after which the writer checkpoints itself (16 MiB of 4 KiB pages).
const WRITER_CHECKPOINT_FRAMES: c_int = 4096;

thread_local! {
    /// Frames in the WAL after this thread's last commit (written by `note_wal_frames`).
    static WAL_FRAMES: Cell<c_int> = const { Cell::new(0) };
}

/// The writer connection's WAL hook: runs inside every commit, on the writer thread.
fn note_wal_frames(_: &Wal, frames: c_int) -> rusqlite::Result<()> {
    WAL_FRAMES.set(frames);
    Ok(())
}

/// Schedules the checkpoints of one database; owned by its writer thread.
pub(super) struct Checkpoints {
    wake: SyncSender<()>,
    /// WAL frames at which the thread is woken next.
    next_wake: Cell<c_int>,
}

impl Checkpoints {
    /// Hooks the writer's connection and starts the checkpoint thread on its own connection.
    pub(super) fn start(writer: &Connection, path: &Path) -> anyhow::Result<Self> {
        let conn = super::schema::open_connection(path)?;
        // At most one wake-up pending: commits during a checkpoint ask for one more, not many.
        let (wake, woken) = mpsc::sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                // Ends when the writer (the only sender) is gone.
                while woken.recv().is_ok() {
                    checkpoint(&conn, "checkpoint thread");
                }
            })
            .context("starting the SQLite checkpoint thread")?;
        writer.wal_hook(Some(note_wal_frames));
        Ok(Self { wake, next_wake: Cell::new(BACKGROUND_CHECKPOINT_FRAMES) })
    }

    /// Called by the writer after a committed batch's replies are sent.
    pub(super) fn after_commit(&self, writer: &Connection) {
        let frames = WAL_FRAMES.get();
        if frames < self.next_wake.get() - BACKGROUND_CHECKPOINT_FRAMES {
            // The WAL started over.
            self.next_wake.set(BACKGROUND_CHECKPOINT_FRAMES);
        }
        if frames >= WRITER_CHECKPOINT_FRAMES {
            checkpoint(writer, "writer");
        } else if frames >= self.next_wake.get() {
            self.next_wake.set(frames + BACKGROUND_CHECKPOINT_FRAMES);
            match self.wake.try_send(()) {
                Ok(()) | Err(TrySendError::Full(())) => {}
                // The thread died: the writer keeps the WAL bounded on its own.
                Err(TrySendError::Disconnected(())) => checkpoint(writer, "writer"),
            }
        }
    }
}

/// A passive checkpoint: copies what it can without waiting on any connection.
fn checkpoint(conn: &Connection, by: &'static str) {
    let outcome = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
    });
    match outcome {
        Ok((busy, frames, copied)) => tracing::trace!(by, busy, frames, copied, "WAL checkpoint"),
        // Not fatal: the WAL only grows until the next checkpoint succeeds.
        Err(e) => tracing::warn!(by, error = %e, "WAL checkpoint failed"),
    }
}
