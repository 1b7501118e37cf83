//! The embedded SQLite store. One writer thread owns the write connection and
//! commits whatever requests have queued up in one transaction (group commit), so
//! throughput holds under load; reads use their own connections on the blocking
//! pool. WAL mode is required and checked by reading `journal_mode` back.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

use anyhow::{Context, anyhow, bail};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use self::checkpoint::Checkpoints;
use self::counts::{Delta, Tally};
use super::{
    Claim, Finish, JobFilter, JobPage, JobStore, JsonPage, LogEntry, PipelineCounts, StoreError, StoreResult,
};
use crate::queue::job::{Job, JobFailure, JobStatus, Progress, format_ts};

mod checkpoint;
mod counts;
mod read;

use self::read::{get_job, list_json, list_jobs, read_logs, row_to_job};

/// Versioned migrations; each runs once, in order, inside a transaction.
const MIGRATIONS: &[(i64, &str)] = &[
    (
    1,
    "CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        pipeline_id TEXT NOT NULL,
        status TEXT NOT NULL,
        data TEXT NOT NULL,
        created_at TEXT NOT NULL,
        started_at TEXT,
        completed_at TEXT,
        attempt INTEGER NOT NULL,
        progress_percent INTEGER NOT NULL DEFAULT 0,
        progress_message TEXT NOT NULL DEFAULT '',
        result TEXT,
        error TEXT,
        git TEXT,
        retried_from TEXT,
        retry_count INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX jobs_by_pipeline ON jobs(pipeline_id, created_at);
    CREATE INDEX jobs_by_status ON jobs(status, created_at);
    CREATE TABLE job_logs (
        job_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        ts TEXT NOT NULL,
        level TEXT NOT NULL,
        stream TEXT NOT NULL,
        message TEXT NOT NULL,
        fields TEXT,
        PRIMARY KEY (job_id, seq)
    );",
    ),
    // Listing all jobs newest first walks this index instead of sorting the table.
    (2, "CREATE INDEX jobs_by_created ON jobs(created_at)"),
    // Counts per pipeline and status kept by triggers, so a page's `total` is not a table scan.
    (
        3,
        "CREATE TABLE job_counts (
            pipeline_id TEXT NOT NULL,
            status TEXT NOT NULL,
            n INTEGER NOT NULL,
            PRIMARY KEY (pipeline_id, status)
        );
        INSERT INTO job_counts SELECT pipeline_id, status, COUNT(*) FROM jobs GROUP BY pipeline_id, status;
        CREATE TRIGGER job_counts_insert AFTER INSERT ON jobs BEGIN
            INSERT INTO job_counts VALUES (NEW.pipeline_id, NEW.status, 1)
                ON CONFLICT (pipeline_id, status) DO UPDATE SET n = n + 1;
        END;
        CREATE TRIGGER job_counts_update AFTER UPDATE OF status ON jobs WHEN OLD.status <> NEW.status BEGIN
            UPDATE job_counts SET n = n - 1 WHERE pipeline_id = OLD.pipeline_id AND status = OLD.status;
            INSERT INTO job_counts VALUES (NEW.pipeline_id, NEW.status, 1)
                ON CONFLICT (pipeline_id, status) DO UPDATE SET n = n + 1;
        END;
        CREATE TRIGGER job_counts_delete AFTER DELETE ON jobs BEGIN
            UPDATE job_counts SET n = n - 1 WHERE pipeline_id = OLD.pipeline_id AND status = OLD.status;
        END;",
    ),
    // The triggers cost two statements per transition on the single writer; counts are
    // kept in memory by the writer instead (`counts::Tally`).
    (
        4,
        "DROP TRIGGER job_counts_insert;
        DROP TRIGGER job_counts_update;
        DROP TRIGGER job_counts_delete;
        DROP TABLE job_counts;",
    ),
    // The counts saved at clean shutdown, so opening a big database needs no scan.
    (
        5,
        "CREATE TABLE job_tally (
            pipeline_id TEXT NOT NULL,
            status TEXT NOT NULL,
            n INTEGER NOT NULL,
            last_run TEXT,
            PRIMARY KEY (pipeline_id, status)
        );
        CREATE TABLE job_tally_valid (one INTEGER PRIMARY KEY CHECK (one = 1));",
    ),
    // Queued and running jobs share one index in creation order, so a claim rewrites its entry
    // in place and a finish deletes it from the same leaf (the oldest active jobs): a commit
    // dirties one index page instead of one per status region (~21% fewer WAL frames per
    // burn-down commit). Failed and cancelled jobs get their own index, which the happy path
    // never touches; completed ones are listed through `jobs_by_created` / `jobs_by_pipeline`,
    // where they dominate. Queries repeat a predicate to use either (`StatusIndex::predicate`).
    (
        6,
        "DROP INDEX jobs_by_status;
        CREATE INDEX jobs_active ON jobs(created_at) WHERE status IN ('queued', 'running');
        CREATE INDEX jobs_ended_badly ON jobs(status, created_at) WHERE status IN ('failed', 'cancelled');",
    ),
];

/// The predicate of `jobs_active`.
const ACTIVE: &str = "status IN ('queued', 'running')";
/// The predicate of `jobs_ended_badly`.
const ENDED_BADLY: &str = "status IN ('failed', 'cancelled')";

/// A partial status index (migration 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatusIndex {
    /// `jobs_active`: queued and running jobs together, in creation order.
    Active,
    /// `jobs_ended_badly`: by status, then creation order.
    EndedBadly,
}

impl StatusIndex {
    /// The partial index that covers every status of a filter, if one does.
    fn covering(statuses: &[JobStatus]) -> Option<Self> {
        use JobStatus::{Cancelled, Failed, Queued, Running};
        if statuses.is_empty() {
            None
        } else if statuses.iter().all(|s| matches!(s, Queued | Running)) {
            Some(Self::Active)
        } else if statuses.iter().all(|s| matches!(s, Failed | Cancelled)) {
            Some(Self::EndedBadly)
        } else {
            None
        }
    }

    /// The index's predicate: SQLite uses a partial index only when the query repeats it.
    fn predicate(self) -> &'static str {
        match self {
            Self::Active => ACTIVE,
            Self::EndedBadly => ENDED_BADLY,
        }
    }
}

/// The columns every job query selects, in `row_to_job` order.
macro_rules! job_columns {
    () => {
        "id, pipeline_id, status, data, created_at, started_at, completed_at, attempt, \
         progress_percent, progress_message, result, error, git, retried_from, retry_count"
    };
}
const JOB_COLUMNS: &str = job_columns!();
const INSERT_JOB: &str = concat!(
    "INSERT INTO jobs (",
    job_columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
);

/// Rows a listing may walk on the calling (async) thread; deeper pages use the blocking pool.
const INLINE_READ_ROWS: u64 = 1000;

/// Most requests committed in one transaction.
const MAX_BATCH: usize = 512;

/// How long the idle writer keeps polling for the next op before it sleeps on the channel.
/// Under load the next write arrives within tens of µs of the last reply; sleeping instead
/// costs the sender a futex wake and the writer a context switch per batch (a cross-CPU
/// interrupt on a VM), about a tenth of the writer's time in a profile of the burn-down.
const POLL_BEFORE_SLEEP: std::time::Duration = std::time::Duration::from_micros(50);

type Reply<T> = oneshot::Sender<StoreResult<T>>;

/// Sends an op's answer once the batch's commit outcome (an error text, if any) is known.
type Deferred = Box<dyn FnOnce(Option<&str>) + Send>;

/// A new job's row, serialised by the caller so the single writer thread only runs SQL.
struct NewRow {
    id: String,
    pipeline_id: String,
    status: JobStatus,
    data: String,
    created_at: String,
    started_at: Option<String>,
    completed_at: Option<String>,
    attempt: u32,
    percent: u8,
    message: String,
    result: Option<String>,
    error: Option<String>,
    git: Option<String>,
    retried_from: Option<String>,
    retry_count: u32,
}

impl NewRow {
    fn of(job: &Job) -> StoreResult<Self> {
        Ok(Self {
            id: job.id.clone(),
            pipeline_id: job.pipeline_id.clone(),
            status: job.status,
            data: json_text(&job.data)?,
            created_at: format_ts(&job.created_at),
            started_at: job.started_at.as_ref().map(format_ts),
            completed_at: job.completed_at.as_ref().map(format_ts),
            attempt: job.attempt,
            percent: job.progress.percent,
            message: job.progress.message.clone(),
            result: opt_json(&job.result)?,
            error: opt_json(&job.error)?,
            git: opt_json(&job.git)?,
            retried_from: job.retried_from.clone(),
            retry_count: job.retry_count,
        })
    }
}

/// An attempt's outcome, serialised by the caller.
struct FinishRow {
    id: String,
    attempt: u32,
    status: JobStatus,
    result: Option<String>,
    error: Option<String>,
    git: Option<String>,
    at: DateTime<Utc>,
}

impl FinishRow {
    fn of(id: &str, attempt: u32, f: &Finish) -> StoreResult<Self> {
        Ok(Self {
            id: id.to_string(),
            attempt,
            status: f.status,
            result: opt_json(&f.result)?,
            error: opt_json(&f.error)?,
            git: opt_json(&f.git)?,
            at: f.at,
        })
    }
}

/// queued(attempt) → running, serialised by the caller.
struct ClaimRow {
    id: String,
    attempt: u32,
    at: String,
}

impl ClaimRow {
    fn of(c: Claim<'_>) -> Self {
        Self { id: c.id.to_string(), attempt: c.attempt, at: format_ts(&c.at) }
    }
}

/// A write the writer thread performs.
enum WriteOp {
    Insert(Box<NewRow>, Reply<()>),
    MarkRunning(ClaimRow, Reply<bool>),
    Progress(String, u32, Progress),
    /// Finishes an attempt and claims the job taking over its slot, if any.
    Finish(Box<FinishRow>, Option<ClaimRow>, Reply<(bool, Option<bool>)>),
    /// Error as JSON text.
    Requeue(String, u32, String, Reply<bool>),
    Cancel(String, DateTime<Utc>, Reply<Option<Job>>),
    Recover(Reply<Vec<Job>>),
    AppendLogs(String, Vec<LogEntry>, Reply<()>),
    Flush(Reply<()>),
}

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

fn open_connection(path: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open(path).with_context(|| format!("opening SQLite database {}", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        bail!("SQLite refused WAL mode for {} (journal_mode is {mode})", path.display());
    }
    // WAL + NORMAL: durable across process crashes (the WAL is fsynced at checkpoint).
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
    // Plans must not depend on bound values: otherwise SQLite marks a cached statement with
    // `LIMIT ?` stale whenever it is re-bound and compiles it again on every step (11% of the
    // server's CPU under a `GET /api/jobs` load). Partial-index predicates are literal SQL.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> anyhow::Result<()> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")?;
    for (version, sql) in MIGRATIONS {
        let tx = conn.transaction()?;
        let done: bool =
            tx.query_row("SELECT EXISTS(SELECT 1 FROM schema_migrations WHERE version = ?1)", [version], |r| r.get(0))?;
        if !done {
            tx.execute_batch(sql).with_context(|| format!("applying migration {version}"))?;
            tx.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)", params![
                version,
                format_ts(&Utc::now())
            ])?;
        }
        tx.commit()?;
    }
    Ok(())
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

/// The next op: polled for `POLL_BEFORE_SLEEP` (yielding the core to anything runnable),
/// then waited for. None once every sender is gone.
fn next_op(rx: &mpsc::Receiver<WriteOp>) -> Option<WriteOp> {
    let start = std::time::Instant::now();
    loop {
        match rx.try_recv() {
            Ok(op) => return Some(op),
            Err(mpsc::TryRecvError::Disconnected) => return None,
            Err(mpsc::TryRecvError::Empty) if start.elapsed() < POLL_BEFORE_SLEEP => std::thread::yield_now(),
            Err(mpsc::TryRecvError::Empty) => return rx.recv().ok(),
        }
    }
}

/// `snapshot_valid`: the saved counts snapshot is marked valid in the database.
fn writer_loop(
    mut conn: Connection,
    rx: mpsc::Receiver<WriteOp>,
    tally: &Tally,
    mut snapshot_valid: bool,
    checkpoints: &Checkpoints,
) {
    while let Some(first) = next_op(&rx) {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let writes = batch.iter().any(|op| !matches!(op, WriteOp::Flush(_)));
        let flush = batch.iter().any(|op| matches!(op, WriteOp::Flush(_)));
        // The first write after a snapshot invalidates it, in the same transaction.
        let invalidate = writes && snapshot_valid;
        if apply_batch(&mut conn, batch, tally, invalidate, flush) {
            snapshot_valid = (snapshot_valid && !invalidate) || flush;
        }
        checkpoints.after_commit(&conn);
    }
    tracing::debug!("SQLite writer stopped");
}

/// Runs a batch in one transaction. Each op's reply is sent only after the commit,
/// so callers publish events only for durable state. With `save`, the counts snapshot is
/// written before the replies (a flush at shutdown leaves it behind). True when committed.
fn apply_batch(conn: &mut Connection, batch: Vec<WriteOp>, tally: &Tally, invalidate: bool, save: bool) -> bool {
    let mut replies: Vec<Deferred> = Vec::with_capacity(batch.len());
    let mut deltas = Vec::new();
    let commit = in_transaction(conn, |conn| {
        if invalidate {
            conn.execute("DELETE FROM job_tally_valid", [])?;
        }
        for op in batch {
            replies.push(apply_op(conn, op, &mut deltas));
        }
        Ok(())
    });
    let failure = commit.err().map(|e| format!("{e:#}"));
    let mut saved = true;
    match &failure {
        Some(err) => tracing::error!(error = %err, "SQLite batch failed; replying with errors"),
        None => {
            // Counted before the replies go out, so a caller that saw its write sees it counted.
            tally.apply(deltas, conn);
            if save && let Err(e) = tally.save(conn) {
                // Not fatal: the next open counts the table instead.
                tracing::warn!(error = %format!("{e:#}"), "saving the job counts failed");
                saved = false;
            }
        }
    }
    for reply in replies {
        reply(failure.as_deref());
    }
    failure.is_none() && saved
}

/// Runs `body` in one write transaction and commits it; rolls back when either fails.
/// BEGIN and COMMIT come from the statement cache: `Connection::transaction` prepares both
/// again for every batch, and the writer commits thousands of batches a second.
fn in_transaction(conn: &Connection, body: impl FnOnce(&Connection) -> anyhow::Result<()>) -> anyhow::Result<()> {
    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    let done = body(conn).and_then(|()| {
        conn.prepare_cached("COMMIT")?.execute([])?;
        Ok(())
    });
    if done.is_err() && !conn.is_autocommit() {
        // Nothing of a failed batch may stay behind for the next one.
        if let Err(e) = conn.execute_batch("ROLLBACK") {
            tracing::error!(error = %e, "rolling back a failed SQLite batch failed");
        }
    }
    done
}

fn send<T: Send + 'static>(reply: Reply<T>, res: StoreResult<T>) -> Deferred {
    Box::new(move |commit_err| {
        let res = match commit_err {
            Some(e) => Err(StoreError::Backend(anyhow!("commit failed: {e}"))),
            None => res,
        };
        let _ = reply.send(res);
    })
}

fn backend<T>(r: rusqlite::Result<T>) -> StoreResult<T> {
    r.map_err(|e| StoreError::Backend(e.into()))
}

/// Runs `sql` through the connection's statement cache (the writer repeats a few statements).
fn exec(tx: &Connection, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
    tx.prepare_cached(sql)?.execute(params)
}

fn apply_op(tx: &Connection, op: WriteOp, deltas: &mut Vec<Delta>) -> Deferred {
    match op {
        WriteOp::Insert(row, reply) => {
            let res = insert_job(tx, &row);
            if res.is_ok() {
                deltas.push(Delta::Move { pipeline: row.pipeline_id, from: None, to: row.status, ended: None });
            }
            send(reply, res)
        }
        WriteOp::MarkRunning(claim, reply) => send(reply, claim_job(tx, &claim, deltas)),
        WriteOp::Progress(id, attempt, p) => {
            if let Err(e) = exec(tx, 
                "UPDATE jobs SET progress_percent = ?3, progress_message = ?4 \
                 WHERE id = ?1 AND attempt = ?2 AND status = 'running'",
                params![id, attempt, p.percent, p.message],
            ) {
                tracing::warn!(job = %id, error = %e, "saving progress failed");
            }
            Box::new(|_| {})
        }
        WriteOp::Finish(row, next, reply) => {
            let res = finish_job(tx, &row, deltas).map(|done| {
                // A failed claim leaves the successor queued (None): the caller puts it back.
                let claimed = next.and_then(|c| match claim_job(tx, &c, deltas) {
                    Ok(claimed) => Some(claimed),
                    Err(e) => {
                        tracing::warn!(job = %c.id, error = %e, "claiming the next job failed");
                        None
                    }
                });
                (done, claimed)
            });
            send(reply, res)
        }
        WriteOp::Requeue(id, attempt, err, reply) => {
            let moved = backend(returning_pipeline(
                tx,
                "UPDATE jobs SET status = 'queued', attempt = attempt + 1, error = ?3, started_at = NULL \
                 WHERE id = ?1 AND attempt = ?2 AND status = 'running' RETURNING pipeline_id",
                params![id, attempt, err],
            ));
            send(reply, moved.map(|p| moved_to(deltas, p, JobStatus::Running, JobStatus::Queued, None)))
        }
        WriteOp::Cancel(id, at, reply) => send(reply, cancel_job(tx, &id, at, deltas)),
        WriteOp::Recover(reply) => {
            deltas.push(Delta::Recount);
            send(reply, recover_jobs(tx))
        }
        WriteOp::AppendLogs(id, entries, reply) => send(reply, append_logs(tx, &id, &entries)),
        WriteOp::Flush(reply) => send(reply, Ok(())),
    }
}

/// Runs a fenced single-row UPDATE … RETURNING pipeline_id; None when no row matched.
fn returning_pipeline(
    tx: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<Option<String>> {
    // All changes of an UPDATE … RETURNING happen on its first step.
    tx.prepare_cached(sql)?.query_row(params, |r| r.get(0)).optional()
}

/// Records a transition that matched a row; true when it did.
fn moved_to(
    deltas: &mut Vec<Delta>,
    pipeline: Option<String>,
    from: JobStatus,
    to: JobStatus,
    ended: Option<DateTime<Utc>>,
) -> bool {
    match pipeline {
        Some(pipeline) => {
            deltas.push(Delta::Move { pipeline, from: Some(from), to, ended });
            true
        }
        None => false,
    }
}

fn claim_job(tx: &Connection, c: &ClaimRow, deltas: &mut Vec<Delta>) -> StoreResult<bool> {
    let pipeline = backend(returning_pipeline(
        tx,
        "UPDATE jobs SET status = 'running', started_at = ?3, progress_percent = 0, progress_message = '' \
         WHERE id = ?1 AND attempt = ?2 AND status = 'queued' RETURNING pipeline_id",
        params![c.id, c.attempt, c.at],
    ))?;
    Ok(moved_to(deltas, pipeline, JobStatus::Queued, JobStatus::Running, None))
}

fn json_text<T: serde::Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Backend(e.into()))
}

fn opt_json<T: serde::Serialize>(v: &Option<T>) -> StoreResult<Option<String>> {
    v.as_ref().map(json_text).transpose()
}

fn insert_job(tx: &Connection, row: &NewRow) -> StoreResult<()> {
    // Cached statements: the writer runs these for every job.
    let mut stmt = backend(tx.prepare_cached(INSERT_JOB))?;
    let res = stmt.execute(params![
        row.id,
        row.pipeline_id,
        row.status.as_str(),
        row.data,
        row.created_at,
        row.started_at,
        row.completed_at,
        row.attempt,
        row.percent,
        row.message,
        row.result,
        row.error,
        row.git,
        row.retried_from,
        row.retry_count,
    ]);
    match res {
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
            Err(StoreError::Duplicate(row.id.clone()))
        }
        Err(e) => Err(StoreError::Backend(e.into())),
    }
}

fn finish_job(tx: &Connection, f: &FinishRow, deltas: &mut Vec<Delta>) -> StoreResult<bool> {
    let pipeline = backend(returning_pipeline(
        tx,
        "UPDATE jobs SET status = ?3, result = ?4, error = ?5, git = ?6, completed_at = ?7, \
         progress_percent = CASE WHEN ?3 = 'completed' THEN 100 ELSE progress_percent END \
         WHERE id = ?1 AND attempt = ?2 AND status = 'running' RETURNING pipeline_id",
        params![f.id, f.attempt, f.status.as_str(), f.result, f.error, f.git, format_ts(&f.at)],
    ))?;
    Ok(moved_to(deltas, pipeline, JobStatus::Running, f.status, Some(f.at)))
}

fn cancel_job(
    tx: &Connection,
    id: &str,
    at: DateTime<Utc>,
    deltas: &mut Vec<Delta>,
) -> StoreResult<Option<Job>> {
    let before = get_job(tx, id).map_err(StoreError::Backend)?;
    let Some(before) = before.filter(|j| !j.status.is_terminal()) else { return Ok(None) };
    let error = JobFailure { message: "cancelled by request".into(), code: "CANCELLED".into(), retryable: false };
    backend(tx.execute(
        "UPDATE jobs SET status = 'cancelled', completed_at = ?2, error = ?3 WHERE id = ?1 AND status IN ('queued', 'running')",
        params![id, format_ts(&at), json_text(&error)?],
    ))?;
    deltas.push(Delta::Move {
        pipeline: before.pipeline_id.clone(),
        from: Some(before.status),
        to: JobStatus::Cancelled,
        ended: Some(at),
    });
    Ok(Some(before))
}

fn recover_jobs(tx: &Connection) -> StoreResult<Vec<Job>> {
    let moved = backend(tx.execute(
        "UPDATE jobs SET status = 'queued', attempt = attempt + 1, started_at = NULL WHERE status = 'running'",
        [],
    ))?;
    if moved > 0 {
        tracing::warn!(jobs = moved, "re-queued jobs left running by a previous process");
    }
    let mut stmt = backend(tx.prepare(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE status = 'queued' AND {ACTIVE} ORDER BY created_at, rowid"
    )))?;
    let rows = backend(stmt.query_map([], row_to_job))?;
    rows.map(|r| backend(r).and_then(|j| j.map_err(StoreError::Backend))).collect()
}

fn append_logs(tx: &Connection, id: &str, entries: &[LogEntry]) -> StoreResult<()> {
    let next: i64 = backend(tx.query_row(
        "SELECT COALESCE(MAX(seq), -1) + 1 FROM job_logs WHERE job_id = ?1",
        [id],
        |r| r.get(0),
    ))?;
    let mut stmt = backend(tx.prepare_cached(
        "INSERT INTO job_logs (job_id, seq, attempt, ts, level, stream, message, fields) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    ))?;
    for (i, e) in entries.iter().enumerate() {
        let stream = serde_json::to_value(e.stream).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        backend(stmt.execute(params![
            id,
            next + i as i64,
            e.attempt,
            e.timestamp,
            e.level,
            stream,
            e.message,
            opt_json(&e.fields)?
        ]))?;
    }
    Ok(())
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
        // Progress is advisory: queued for the next batch without waiting for the commit.
        self.writer
            .send(WriteOp::Progress(id.to_string(), attempt, progress.clone()))
            .map_err(|_| StoreError::Closed)
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
    async fn requeue(&self, id: &str, attempt: u32, error: &JobFailure, _delay: std::time::Duration) -> StoreResult<bool> {
        // The single node keeps the delay in memory (`queue::execute::schedule_retry`).
        let error = json_text(error)?;
        self.write(|r| WriteOp::Requeue(id.to_string(), attempt, error, r)).await
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
    async fn recover(&self) -> StoreResult<Vec<Job>> {
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
    async fn flush(&self) -> StoreResult<()> {
        self.write(WriteOp::Flush).await
    }
}

#[cfg(test)]
mod tests;
