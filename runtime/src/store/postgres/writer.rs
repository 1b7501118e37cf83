//! Group commit for PostgreSQL, like the SQLite writer thread: inserts, outcomes, log lines and
//! events from every task of this node queue up on one channel; a writer task takes all that
//! is waiting (up to [`MAX_BATCH`]) and writes it in at most two statements, sent together on
//! one connection (one pipelined round trip, two commits), whatever the batch size:
//!
//! - new jobs: one multi-row `INSERT … ON CONFLICT DO NOTHING` (a missing id in `RETURNING` is
//!   a duplicate) that also NOTIFYs the wake-up channel;
//! - outcomes, logs and events: one statement whose CTEs insert the log lines and apply the
//!   outcomes, fenced by `(id, attempt, status = 'running')` like every write, and NOTIFY the
//!   events, which PostgreSQL delivers at commit, after the states they report.
//!
//! A caller waiting for an insert or an outcome is answered after its commit. Log lines and
//! events are not waited for: they are committed in the same or a later batch than anything
//! their sender wrote before, so a reader who sees a job's outcome sees its log, and an event
//! still follows the state it reports. An event whose batch fails is published on this node
//! only (the listener's path for events), as an event that fails to broadcast always was.

use std::collections::HashSet;

use anyhow::anyhow;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde_json::Value;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::json;
use crate::domain::{Job, LogEntry};
use crate::events::{EventKind, JobEvent};
use crate::store::{ClusterNote, Finish, StoreError, StoreResult};

/// Most operations written in one batch.
const MAX_BATCH: usize = 1024;
/// Operations waiting at most; senders wait beyond it (back-pressure, not unbounded memory).
const CHANNEL: usize = 16 * 1024;

const INSERT: &str = "WITH ins AS (
        INSERT INTO jobs (id, pipeline_id, status, data, created_at, started_at, completed_at, attempt,
            progress_percent, progress_message, result, error, git, retried_from, retry_count, worker_version,
            component_digest)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::timestamptz[], $6::timestamptz[],
            $7::timestamptz[], $8::int[], $9::smallint[], $10::text[], $11::jsonb[], $12::jsonb[], $13::jsonb[],
            $14::text[], $15::int[], $16::text[], $17::text[])
        ON CONFLICT (id) DO NOTHING
        RETURNING id, pipeline_id)
    SELECT ins.id FROM ins
        CROSS JOIN LATERAL pg_notify($18, ins.pipeline_id) AS n
        CROSS JOIN LATERAL (SELECT pg_notify($20, e.payload) FROM unnest($1::text[], $19::text[]) AS e(id, payload)
            WHERE e.id = ins.id) AS created";

const FINISH: &str = "WITH logs AS (
        INSERT INTO job_logs (job_id, attempt, ts, level, stream, message, fields)
        SELECT * FROM unnest($8::text[], $9::int[], $10::text[], $11::text[], $12::text[], $13::text[], $14::jsonb[])),
    fin AS (
        UPDATE jobs SET status = f.status, result = f.result, error = f.error, git = f.git, completed_at = f.at,
            lease_until = NULL,
            progress_percent = CASE WHEN f.status = 'completed' THEN 100 ELSE jobs.progress_percent END
        FROM unnest($1::text[], $2::int[], $3::text[], $4::jsonb[], $5::jsonb[], $6::jsonb[], $7::timestamptz[])
            AS f(id, attempt, status, result, error, git, at)
        WHERE jobs.id = f.id AND jobs.attempt = f.attempt AND jobs.status = 'running'
        RETURNING jobs.id)
    SELECT id FROM fin
    UNION ALL
    SELECT NULL FROM unnest($16::text[]) WITH ORDINALITY AS e(payload, n) CROSS JOIN LATERAL pg_notify($15, e.payload) AS s";

/// Where a waiting caller's answer goes.
type Reply<T> = oneshot::Sender<StoreResult<T>>;
/// A queued insert.
type InsertOp = (Box<Job>, Reply<()>);
/// A queued outcome: job id, attempt, outcome.
type FinishOp = (String, u32, Box<Finish>, Reply<bool>);

/// One write for the writer task.
enum Op {
    Insert(Box<Job>, oneshot::Sender<StoreResult<()>>),
    Finish { id: String, attempt: u32, finish: Box<Finish>, done: oneshot::Sender<StoreResult<bool>> },
    Logs { id: String, entries: Vec<LogEntry> },
    Event { payload: String, event: Box<JobEvent> },
    Flush(oneshot::Sender<()>),
}

/// The sending side: what the store's methods call.
pub(super) struct Writer {
    tx: mpsc::Sender<Op>,
}

/// Where the writer sends its NOTIFYs and its fallback events.
pub(super) struct Channels {
    /// The wake-up channel (payload: the pipeline id).
    pub wake: String,
    /// The events channel.
    pub events: String,
    /// This node's notes: an event whose batch failed is published here.
    pub notes: broadcast::Sender<ClusterNote>,
}

impl Writer {
    /// Starts the writer task on `pool`; it ends when the store (the last sender) is dropped.
    pub fn start(pool: Pool, channels: Channels) -> Self {
        let (tx, rx) = mpsc::channel(CHANNEL);
        tokio::spawn(run(pool, channels, rx));
        Self { tx }
    }

    async fn send(&self, op: Op) -> StoreResult<()> {
        self.tx.send(op).await.map_err(|_| StoreError::Closed)
    }

    /// Inserts `job`; answered after the commit.
    pub async fn insert(&self, job: &Job) -> StoreResult<()> {
        let (done, rx) = oneshot::channel();
        self.send(Op::Insert(Box::new(job.clone()), done)).await?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Applies an outcome, fenced; answered after the commit (false: fenced out).
    pub async fn finish(&self, id: &str, attempt: u32, finish: &Finish) -> StoreResult<bool> {
        let (done, rx) = oneshot::channel();
        self.send(Op::Finish { id: id.to_string(), attempt, finish: Box::new(finish.clone()), done }).await?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Queues log lines (committed no later than anything sent after them).
    pub async fn logs(&self, id: &str, entries: Vec<LogEntry>) -> StoreResult<()> {
        self.send(Op::Logs { id: id.to_string(), entries }).await
    }

    /// Queues an event for NOTIFY (`payload` is its JSON, already within NOTIFY's size limit).
    pub async fn event(&self, payload: String, event: &JobEvent) -> StoreResult<()> {
        self.send(Op::Event { payload, event: Box::new(event.clone()) }).await
    }

    /// Waits until everything sent before is committed (or has failed).
    pub async fn flush(&self) -> StoreResult<()> {
        let (done, rx) = oneshot::channel();
        self.send(Op::Flush(done)).await?;
        rx.await.map_err(|_| StoreError::Closed)
    }
}

async fn run(pool: Pool, channels: Channels, mut rx: mpsc::Receiver<Op>) {
    let mut ops = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut ops, MAX_BATCH).await > 0 {
        let mut batch = Batch::default();
        for op in ops.drain(..) {
            batch.add(op);
        }
        batch.write(&pool, &channels).await;
    }
}

/// One batch, split by statement.
#[derive(Default)]
struct Batch {
    insert_ids: HashSet<String>,
    inserts: Vec<InsertOp>,
    finishes: Vec<FinishOp>,
    logs: Vec<(String, LogEntry)>,
    events: Vec<(String, Box<JobEvent>)>,
    flushes: Vec<oneshot::Sender<()>>,
}

impl Batch {
    fn add(&mut self, op: Op) {
        match op {
            // Two inserts of one id in a batch: the statement would keep one and report both.
            Op::Insert(job, done) => {
                if self.insert_ids.insert(job.id.clone()) {
                    self.inserts.push((job, done));
                } else {
                    let _ = done.send(Err(StoreError::Duplicate(job.id.clone())));
                }
            }
            Op::Finish { id, attempt, finish, done } => self.finishes.push((id, attempt, finish, done)),
            Op::Logs { id, entries } => self.logs.extend(entries.into_iter().map(|e| (id.clone(), e))),
            Op::Event { payload, event } => self.events.push((payload, event)),
            Op::Flush(done) => self.flushes.push(done),
        }
    }

    async fn write(self, pool: &Pool, channels: &Channels) {
        let Batch { inserts, finishes, logs, events, flushes, .. } = self;
        let client = match pool.get().await {
            Ok(client) => Ok(client),
            Err(e) => Err(anyhow!("PostgreSQL pool: {e}")),
        };
        let (inserted, finished) = match &client {
            Ok(client) => {
                // Both statements go out before either answer is awaited: one round trip.
                futures::join!(
                    write_inserts(client, &inserts, channels),
                    write_finishes(client, &finishes, &logs, &events, &channels.events)
                )
            }
            Err(e) => (Err(anyhow!("{e:#}")), Err(anyhow!("{e:#}"))),
        };
        match inserted {
            Ok(ids) => {
                for (job, done) in inserts {
                    let result =
                        if ids.contains(&job.id) { Ok(()) } else { Err(StoreError::Duplicate(job.id.clone())) };
                    let _ = done.send(result);
                }
            }
            Err(e) => {
                if !inserts.is_empty() {
                    tracing::warn!(error = %format!("{e:#}"), jobs = inserts.len(), "inserting jobs failed");
                }
                for (_, done) in inserts {
                    let _ = done.send(Err(StoreError::Backend(anyhow!("{e:#}"))));
                }
            }
        }
        match finished {
            Ok(ids) => {
                for (id, _, _, done) in finishes {
                    let _ = done.send(Ok(ids.contains(&id)));
                }
            }
            Err(e) => {
                tracing::warn!(
                    error = %format!("{e:#}"),
                    outcomes = finishes.len(),
                    log_lines = logs.len(),
                    events = events.len(),
                    "writing outcomes, logs and events failed; events published on this node only"
                );
                for (_, _, _, done) in finishes {
                    let _ = done.send(Err(StoreError::Backend(anyhow!("{e:#}"))));
                }
                for (_, event) in events {
                    let _ = channels.notes.send(ClusterNote::Event(*event));
                }
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// Inserts the jobs; each inserted row wakes the claimers and broadcasts its `job:created`
/// in the same transaction (ahead of any later event of the job, on every node).
async fn write_inserts(
    client: &deadpool_postgres::Object,
    inserts: &[InsertOp],
    channels: &Channels,
) -> anyhow::Result<HashSet<String>> {
    if inserts.is_empty() {
        return Ok(HashSet::new());
    }
    let stmt = client.prepare_cached(INSERT).await?;
    let jobs: Vec<&Job> = inserts.iter().map(|(j, _)| &**j).collect();
    let ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
    let pipelines: Vec<&str> = jobs.iter().map(|j| j.pipeline_id.as_str()).collect();
    let statuses: Vec<&str> = jobs.iter().map(|j| j.status.as_str()).collect();
    let data: Vec<&Value> = jobs.iter().map(|j| &j.data).collect();
    let created: Vec<DateTime<Utc>> = jobs.iter().map(|j| j.created_at).collect();
    let started: Vec<Option<DateTime<Utc>>> = jobs.iter().map(|j| j.started_at).collect();
    let completed: Vec<Option<DateTime<Utc>>> = jobs.iter().map(|j| j.completed_at).collect();
    let attempts: Vec<i32> = jobs.iter().map(|j| j.attempt as i32).collect();
    let percents: Vec<i16> = jobs.iter().map(|j| i16::from(j.progress.percent)).collect();
    let messages: Vec<&str> = jobs.iter().map(|j| j.progress.message.as_str()).collect();
    let results: Vec<Option<&Value>> = jobs.iter().map(|j| j.result.as_ref()).collect();
    let errors = jobs.iter().map(|j| json(&j.error)).collect::<StoreResult<Vec<_>>>()?;
    let gits = jobs.iter().map(|j| json(&j.git)).collect::<StoreResult<Vec<_>>>()?;
    let retried: Vec<Option<&str>> = jobs.iter().map(|j| j.retried_from.as_deref()).collect();
    let retries: Vec<i32> = jobs.iter().map(|j| j.retry_count as i32).collect();
    let versions: Vec<Option<&str>> = jobs.iter().map(|j| j.worker_version.as_deref()).collect();
    let digests: Vec<Option<&str>> = jobs.iter().map(|j| j.component_digest.as_deref()).collect();
    let created_events = jobs
        .iter()
        .map(|j| super::claim::notify_payload(&JobEvent::of(EventKind::Created, j)))
        .collect::<StoreResult<Vec<_>>>()?;
    let rows = client
        .query(
            &stmt,
            &[
                &ids,
                &pipelines,
                &statuses,
                &data,
                &created,
                &started,
                &completed,
                &attempts,
                &percents,
                &messages,
                &results,
                &errors,
                &gits,
                &retried,
                &retries,
                &versions,
                &digests,
                &channels.wake,
                &created_events,
                &channels.events,
            ],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

async fn write_finishes(
    client: &deadpool_postgres::Object,
    finishes: &[FinishOp],
    logs: &[(String, LogEntry)],
    events: &[(String, Box<JobEvent>)],
    channel: &str,
) -> anyhow::Result<HashSet<String>> {
    if finishes.is_empty() && logs.is_empty() && events.is_empty() {
        return Ok(HashSet::new());
    }
    let stmt = client.prepare_cached(FINISH).await?;
    let ids: Vec<&str> = finishes.iter().map(|f| f.0.as_str()).collect();
    let attempts: Vec<i32> = finishes.iter().map(|f| f.1 as i32).collect();
    let statuses: Vec<&str> = finishes.iter().map(|f| f.2.status.as_str()).collect();
    let results: Vec<Option<&Value>> = finishes.iter().map(|f| f.2.result.as_ref()).collect();
    let errors = finishes.iter().map(|f| json(&f.2.error)).collect::<StoreResult<Vec<_>>>()?;
    let gits = finishes.iter().map(|f| json(&f.2.git)).collect::<StoreResult<Vec<_>>>()?;
    let ats: Vec<DateTime<Utc>> = finishes.iter().map(|f| f.2.at).collect();
    let log_ids: Vec<&str> = logs.iter().map(|l| l.0.as_str()).collect();
    let log_attempts: Vec<i32> = logs.iter().map(|l| l.1.attempt as i32).collect();
    let log_ts: Vec<&str> = logs.iter().map(|l| l.1.timestamp.as_str()).collect();
    let log_levels: Vec<&str> = logs.iter().map(|l| l.1.level.as_str()).collect();
    let log_streams: Vec<String> = logs.iter().map(|l| stream_name(&l.1)).collect();
    let log_messages: Vec<&str> = logs.iter().map(|l| l.1.message.as_str()).collect();
    let log_fields: Vec<Option<&Value>> = logs.iter().map(|l| l.1.fields.as_ref()).collect();
    let payloads: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
    let rows = client
        .query(
            &stmt,
            &[
                &ids,
                &attempts,
                &statuses,
                &results,
                &errors,
                &gits,
                &ats,
                &log_ids,
                &log_attempts,
                &log_ts,
                &log_levels,
                &log_streams,
                &log_messages,
                &log_fields,
                &channel,
                &payloads,
            ],
        )
        .await?;
    Ok(rows.iter().filter_map(|r| r.get::<_, Option<String>>(0)).collect())
}

/// A log line's stream as stored (its wire spelling).
pub(super) fn stream_name(e: &LogEntry) -> String {
    serde_json::to_value(e.stream).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}
