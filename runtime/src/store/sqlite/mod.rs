//! The embedded SQLite store. One writer thread owns the write connection and
//! commits whatever requests have queued up in one transaction (group commit), so
//! throughput holds under load; reads use their own connections on the blocking
//! pool. WAL mode is required and checked by reading `journal_mode` back.
//!
//! `schema`: migrations, indexes, connection set-up. `writer`: the writer thread and the
//! SQL of every write. `read`: rows to jobs and listing pages. `counts`: the in-memory
//! tally per pipeline and status. `checkpoint`: WAL checkpoints off the commit path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

use anyhow::{Context, anyhow};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::Connection;
use tokio::sync::oneshot;

use self::checkpoint::Checkpoints;
use self::counts::Tally;
use self::read::{get_job, list_jobs, list_json, read_logs};
use self::schema::{StatusIndex, migrate, open_connection};
use self::writer::{ClaimRow, FinishRow, NewRow, Reply, WriteOp, json_text, writer_loop};
use super::{
    Claim, Finish, JobFilter, JobPage, JobStore, JsonPage, PipelineCounts, Recovered, StoreError, StoreResult,
};
use crate::domain::{Job, JobFailure, LogEntry, Progress};

pub use self::deliveries::SqliteDeliveries;

mod checkpoint;
mod counts;
mod deliveries;
mod read;
pub mod runs;
mod schedules;
mod schema;
mod writer;

/// Rows a listing may walk on the calling (async) thread; deeper pages use the blocking pool.
const INLINE_READ_ROWS: u64 = 1000;

/// SQLite-backed `JobStore`.
pub struct SqliteStore {
    path: PathBuf,
    writer: mpsc::Sender<WriteOp>,
    // std Mutex: held only to pop or push an idle connection, never across a query.
    readers: Arc<Mutex<Vec<Connection>>>,
    tally: Arc<Tally>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish()
    }
}

impl SqliteStore {
    /// Opens (creating and migrating) the database at `path` and starts its writer thread.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut conn = open_connection(path)?;
        migrate(&mut conn)?;
        let (tally, snapshot_valid) = Tally::load(&conn).context("counting jobs")?;
        let tally = Arc::new(tally);
        let checkpoints = Checkpoints::start(&conn, path)?;
        let (tx, rx) = mpsc::channel();
        let writer_tally = tally.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx, &writer_tally, snapshot_valid, &checkpoints))
            .context("starting the SQLite writer thread")?;
        Ok(Self { path: path.to_path_buf(), writer: tx, readers: Arc::new(Mutex::new(Vec::new())), tally })
    }

    /// The journal mode the database reports (`wal` when healthy).
    pub fn journal_mode(&self) -> anyhow::Result<String> {
        let conn = Connection::open(&self.path)?;
        Ok(conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?)
    }

    async fn write<T: Send + 'static>(&self, op: impl FnOnce(Reply<T>) -> WriteOp) -> StoreResult<T> {
        let (tx, rx) = oneshot::channel();
        self.writer.send(op(tx)).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs a short read on the calling thread. A page walked in index order costs well under
    /// a millisecond, less than the two thread switches of a hop to the blocking pool.
    fn read_inline<T>(&self, f: impl FnOnce(&Connection) -> anyhow::Result<T>) -> StoreResult<T> {
        with_reader(&self.readers, &self.path, f).map_err(StoreError::Backend)
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> anyhow::Result<T> + Send + 'static,
    ) -> StoreResult<T> {
        let readers = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || with_reader(&readers, &path, f))
            .await
            .map_err(|e| StoreError::Backend(anyhow!("reader task failed: {e}")))?
            .map_err(StoreError::Backend)
    }

    /// A listing page through `page` (rows or JSON), inline when cheap.
    async fn page<T: Send + 'static>(
        &self,
        filter: &JobFilter,
        page: fn(&Connection, &JobFilter, u64) -> anyhow::Result<T>,
    ) -> StoreResult<T> {
        let total = self.tally.total(filter.pipeline_id.as_deref(), &filter.statuses);
        if cheap_page(filter) {
            return self.read_inline(|c| page(c, filter, total));
        }
        let filter = filter.clone();
        self.read(move |c| page(c, &filter, total)).await
    }
}

/// Runs `f` on a pooled reader connection (opening one when the pool is empty).
fn with_reader<T>(
    readers: &Mutex<Vec<Connection>>,
    path: &Path,
    f: impl FnOnce(&Connection) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let pooled = readers.lock().map_err(|_| anyhow!("reader pool poisoned"))?.pop();
    let conn = match pooled {
        Some(c) => c,
        None => open_connection(path)?,
    };
    let out = f(&conn);
    if let Ok(mut pool) = readers.lock()
        && pool.len() < 8
    {
        pool.push(conn);
    }
    out
}

/// Pages that one index serves in order (no filter, one pipeline, queued and/or running, or
/// one of failed and cancelled) and that start near the top: cheap enough to read inline. A
/// sort, a deep offset or a filter on `completed` (a walk of every job newest first, past any
/// backlog) is not.
fn cheap_page(filter: &JobFilter) -> bool {
    let one_index = match (&filter.pipeline_id, filter.statuses.as_slice()) {
        (_, []) => true,
        // `jobs_ended_badly` is in creation order within one status only.
        (None, statuses) => match StatusIndex::covering(statuses) {
            Some(StatusIndex::Active) => true,
            Some(StatusIndex::EndedBadly) => statuses.len() == 1,
            None => false,
        },
        _ => false,
    };
    one_index && u64::from(filter.offset) + u64::from(filter.limit) <= INLINE_READ_ROWS
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn insert(&self, job: &Job) -> StoreResult<()> {
        let row = Box::new(NewRow::of(job)?);
        self.write(|r| WriteOp::Insert(row, r)).await
    }
    async fn mark_running(&self, id: &str, attempt: u32, at: DateTime<Utc>) -> StoreResult<bool> {
        let claim = ClaimRow::of(Claim { id, attempt, at });
        self.write(|r| WriteOp::MarkRunning(claim, r)).await
    }
    async fn save_progress(&self, id: &str, attempt: u32, progress: &Progress) -> StoreResult<()> {
        // Answered after the batch commits: the caller publishes `job:progress` only then.
        self.write(|r| WriteOp::Progress(id.to_string(), attempt, progress.clone(), r)).await
    }
    async fn finish(&self, id: &str, attempt: u32, finish: &Finish) -> StoreResult<bool> {
        Ok(self.finish_and_claim(id, attempt, finish, None).await?.0)
    }
    async fn finish_and_claim(
        &self,
        id: &str,
        attempt: u32,
        finish: &Finish,
        next: Option<Claim<'_>>,
    ) -> StoreResult<(bool, Option<bool>)> {
        let row = Box::new(FinishRow::of(id, attempt, finish)?);
        let next = next.map(ClaimRow::of);
        self.write(|r| WriteOp::Finish(row, next, r)).await
    }
    async fn requeue(
        &self,
        id: &str,
        attempt: u32,
        error: &JobFailure,
        delay: std::time::Duration,
    ) -> StoreResult<bool> {
        // Kept with the row: a restart honours what is left of the backoff (`recover`).
        let error = json_text(error)?;
        let run_after = Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        self.write(|r| WriteOp::Requeue(id.to_string(), attempt, error, run_after, r)).await
    }
    async fn cancel(&self, id: &str, at: DateTime<Utc>) -> StoreResult<Option<Job>> {
        self.write(|r| WriteOp::Cancel(id.to_string(), at, r)).await
    }
    async fn get(&self, id: &str) -> StoreResult<Option<Job>> {
        // A primary-key lookup.
        self.read_inline(|c| get_job(c, id))
    }
    async fn list(&self, filter: &JobFilter) -> StoreResult<JobPage> {
        self.page(filter, list_jobs).await
    }
    async fn list_json(&self, filter: &JobFilter) -> StoreResult<JsonPage> {
        self.page(filter, list_json).await
    }
    async fn counts(&self) -> StoreResult<HashMap<String, PipelineCounts>> {
        Ok(self.tally.snapshot())
    }
    async fn recover(&self) -> StoreResult<Vec<Recovered>> {
        self.write(WriteOp::Recover).await
    }
    async fn append_logs(&self, id: &str, entries: Vec<LogEntry>) -> StoreResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        self.write(|r| WriteOp::AppendLogs(id.to_string(), entries, r)).await
    }
    async fn logs(&self, id: &str) -> StoreResult<Vec<LogEntry>> {
        let id = id.to_string();
        self.read(move |c| read_logs(c, &id)).await
    }
    async fn expired(
        &self,
        pipeline: &str,
        before: Option<DateTime<Utc>>,
        keep: Option<u32>,
        limit: u32,
    ) -> StoreResult<Vec<String>> {
        let pipeline = pipeline.to_string();
        // Timestamps are stored in one fixed-width UTC format, so text order is time order.
        let before = before.map(|b| crate::domain::format_ts(&b));
        // SQLite: a negative LIMIT is no limit.
        let keep = keep.map_or(-1, i64::from);
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id FROM jobs WHERE pipeline_id = ?1 AND status IN ('completed','failed','cancelled') \
                 AND (completed_at < ?2 OR id NOT IN (SELECT id FROM jobs WHERE pipeline_id = ?1 \
                      AND status IN ('completed','failed','cancelled') ORDER BY completed_at DESC, rowid DESC LIMIT ?3)) \
                 ORDER BY completed_at, rowid LIMIT ?4",
            )?;
            let ids = stmt
                .query_map(rusqlite::params![pipeline, before, keep, i64::from(limit)], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            Ok(ids)
        })
        .await
    }
    async fn delete_terminal(&self, ids: &[String]) -> StoreResult<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        self.write(|r| WriteOp::DeleteTerminal(ids.to_vec(), r)).await
    }
    async fn flush(&self) -> StoreResult<()> {
        self.write(WriteOp::Flush).await
    }
}

#[cfg(test)]
mod tests;
