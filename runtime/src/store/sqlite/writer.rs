//! The single writer thread: it owns the write connection and commits whatever requests
//! have queued up in one transaction (group commit), replying to each only after the
//! commit, and applies each committed transition to the in-memory tally.

use std::sync::mpsc;

use anyhow::anyhow;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use super::checkpoint::Checkpoints;
use super::counts::{Delta, Tally};
use super::read::{get_job, row_to_job};
use super::schema::{ACTIVE, INSERT_JOB, JOB_COLUMN_COUNT, JOB_COLUMNS};
use crate::domain::{FailureCode, Job, JobFailure, JobStatus, LogEntry, Progress, format_ts};
use crate::store::{Claim, Finish, Recovered, StoreError, StoreResult};

/// Most requests committed in one transaction.
const MAX_BATCH: usize = 512;

/// How long the idle writer keeps polling for the next op before it sleeps on the channel.
/// Under load the next write arrives within tens of µs of the last reply; sleeping instead
/// costs the sender a futex wake and the writer a context switch per batch (a cross-CPU
/// interrupt on a VM), about a tenth of the writer's time in a profile of the burn-down.
const POLL_BEFORE_SLEEP: std::time::Duration = std::time::Duration::from_micros(50);

pub(super) type Reply<T> = oneshot::Sender<StoreResult<T>>;

/// Sends an op's answer once the batch's commit outcome (an error text, if any) is known.
type Deferred = Box<dyn FnOnce(Option<&str>) + Send>;

/// A new job's row, serialised by the caller so the single writer thread only runs SQL.
pub(super) struct NewRow {
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
    worker_version: Option<String>,
    component_digest: Option<String>,
}

impl NewRow {
    pub(super) fn of(job: &Job) -> StoreResult<Self> {
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
            worker_version: job.worker_version.clone(),
            component_digest: job.component_digest.clone(),
        })
    }
}

/// An attempt's outcome, serialised by the caller.
pub(super) struct FinishRow {
    id: String,
    attempt: u32,
    status: JobStatus,
    result: Option<String>,
    error: Option<String>,
    git: Option<String>,
    at: DateTime<Utc>,
}

impl FinishRow {
    pub(super) fn of(id: &str, attempt: u32, f: &Finish) -> StoreResult<Self> {
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
pub(super) struct ClaimRow {
    id: String,
    attempt: u32,
    at: String,
}

impl ClaimRow {
    pub(super) fn of(c: Claim<'_>) -> Self {
        Self { id: c.id.to_string(), attempt: c.attempt, at: format_ts(&c.at) }
    }
}

/// A write the writer thread performs.
pub(super) enum WriteOp {
    Insert(Box<NewRow>, Reply<()>),
    MarkRunning(ClaimRow, Reply<bool>),
    /// Progress of a running attempt; answered once committed, so its event follows the commit.
    Progress(String, u32, Progress, Reply<()>),
    /// Finishes an attempt and claims the job taking over its slot, if any.
    Finish(Box<FinishRow>, Option<ClaimRow>, Reply<(bool, Option<bool>)>),
    /// Error as JSON text; runnable after the time.
    Requeue(String, u32, String, DateTime<Utc>, Reply<bool>),
    Cancel(String, DateTime<Utc>, Reply<Option<Job>>),
    Recover(Reply<Vec<Recovered>>),
    AppendLogs(String, Vec<LogEntry>, Reply<()>),
    /// Deletes terminal jobs (retention).
    DeleteTerminal(Vec<String>, Reply<u64>),
    Flush(Reply<()>),
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
pub(super) fn writer_loop(
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
        WriteOp::Progress(id, attempt, p, reply) => {
            let res = exec(
                tx,
                "UPDATE jobs SET progress_percent = ?3, progress_message = ?4 \
                 WHERE id = ?1 AND attempt = ?2 AND status = 'running'",
                params![id, attempt, p.percent, p.message],
            )
            .map(|_| ());
            send(reply, backend(res))
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
        WriteOp::Requeue(id, attempt, err, run_after, reply) => {
            let moved = backend(returning_pipeline(
                tx,
                "UPDATE jobs SET status = 'queued', attempt = attempt + 1, error = ?3, started_at = NULL, run_after = ?4 \
                 WHERE id = ?1 AND attempt = ?2 AND status = 'running' RETURNING pipeline_id",
                params![id, attempt, err, run_after.timestamp_micros()],
            ));
            send(reply, moved.map(|p| moved_to(deltas, p, JobStatus::Running, JobStatus::Queued, None)))
        }
        WriteOp::Cancel(id, at, reply) => send(reply, cancel_job(tx, &id, at, deltas)),
        WriteOp::Recover(reply) => {
            deltas.push(Delta::Recount);
            send(reply, recover_jobs(tx))
        }
        WriteOp::AppendLogs(id, entries, reply) => send(reply, append_logs(tx, &id, &entries)),
        WriteOp::DeleteTerminal(ids, reply) => {
            deltas.push(Delta::Recount);
            send(reply, delete_terminal(tx, &ids))
        }
        WriteOp::Flush(reply) => send(reply, Ok(())),
    }
}

/// Runs a fenced single-row UPDATE … RETURNING pipeline_id; None when no row matched.
fn returning_pipeline(tx: &Connection, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<Option<String>> {
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

pub(super) fn json_text<T: serde::Serialize>(v: &T) -> StoreResult<String> {
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
        row.worker_version,
        row.component_digest,
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

fn cancel_job(tx: &Connection, id: &str, at: DateTime<Utc>, deltas: &mut Vec<Delta>) -> StoreResult<Option<Job>> {
    let before = get_job(tx, id).map_err(StoreError::Backend)?;
    let Some(before) = before.filter(|j| !j.status.is_terminal()) else { return Ok(None) };
    let error = JobFailure::new(FailureCode::Cancelled, "cancelled by request", false);
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

fn delete_terminal(tx: &Connection, ids: &[String]) -> StoreResult<u64> {
    let mut logs = backend(tx.prepare_cached(
        "DELETE FROM job_logs WHERE job_id = ?1 \
         AND EXISTS (SELECT 1 FROM jobs WHERE id = ?1 AND status IN ('completed','failed','cancelled'))",
    ))?;
    let mut jobs =
        backend(tx.prepare_cached("DELETE FROM jobs WHERE id = ?1 AND status IN ('completed','failed','cancelled')"))?;
    let mut n = 0;
    for id in ids {
        backend(logs.execute(params![id]))?;
        n += backend(jobs.execute(params![id]))? as u64;
    }
    Ok(n)
}

fn recover_jobs(tx: &Connection) -> StoreResult<Vec<Recovered>> {
    let moved = backend(tx.execute(
        "UPDATE jobs SET status = 'queued', attempt = attempt + 1, started_at = NULL, run_after = NULL \
         WHERE status = 'running'",
        [],
    ))?;
    if moved > 0 {
        tracing::warn!(jobs = moved, "re-queued jobs left running by a previous process");
    }
    let mut stmt = backend(tx.prepare(&format!(
        "SELECT {JOB_COLUMNS}, run_after FROM jobs WHERE status = 'queued' AND {ACTIVE} ORDER BY created_at, rowid"
    )))?;
    let rows = backend(stmt.query_map([], |r| {
        let run_after: Option<i64> = r.get(JOB_COLUMN_COUNT)?;
        Ok((row_to_job(r)?, run_after))
    }))?;
    rows.map(|r| {
        let (job, run_after) = backend(r)?;
        let job = job.map_err(StoreError::Backend)?;
        // A time beyond chrono's range is no reason to lose the job: it runs now.
        Ok(Recovered { job, run_after: run_after.and_then(DateTime::from_timestamp_micros) })
    })
    .collect()
}

fn append_logs(tx: &Connection, id: &str, entries: &[LogEntry]) -> StoreResult<()> {
    let next: i64 =
        backend(tx.query_row("SELECT COALESCE(MAX(seq), -1) + 1 FROM job_logs WHERE job_id = ?1", [id], |r| r.get(0)))?;
    let mut stmt = backend(tx.prepare_cached(
        "INSERT INTO job_logs (job_id, seq, attempt, ts, level, stream, message, fields) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    ))?;
    for (i, e) in entries.iter().enumerate() {
        let stream =
            serde_json::to_value(e.stream).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
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
