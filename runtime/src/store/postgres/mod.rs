//! The PostgreSQL store, for several runtime nodes sharing one database. One statement claims
//! queued jobs of many pipelines (`FOR UPDATE SKIP LOCKED`), each pipeline's cap counted in
//! the same statement from a trigger-kept count row it locks (`claim`), so the concurrency
//! cap holds across the cluster; running jobs carry a node and a lease; inserts, outcomes,
//! logs and events are group-committed (`writer`); events, wake-ups and cancels travel over
//! LISTEN/NOTIFY (a hint: nodes also poll). The schema is in `migrations`.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, anyhow};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures::StreamExt;
use serde_json::Value;
use sha2::Digest as _;
use tokio::sync::{Mutex, broadcast};
use tokio_postgres::{AsyncMessage, Client, NoTls, Row};

mod claim;
mod migrations;
mod writer;

use super::{ClusterNote, Cursor, Finish, JobFilter, JobPage, JobStore, PipelineCounts, StoreError, StoreResult};
use crate::domain::{FailureCode, Job, JobFailure, JobStatus, LogEntry, Progress};
use crate::events::JobEvent;

mod deliveries;
mod schedules;
pub use self::deliveries::PostgresDeliveries;

pub(super) const JOB_COLUMNS: &str = "id, pipeline_id, status, data, created_at, started_at, completed_at, attempt, \
    progress_percent, progress_message, result, error, git, retried_from, retry_count, \
    worker_version, component_digest";

/// Advisory lock key of the maintenance leader (arbitrary constant: "alephaut").
const LEADER_LOCK: i64 = 0x616c_6570_6861_7574;
/// NOTIFY channels (suffixed per schema, see [`Scope`]).
const EVENTS: &str = "alephauto_events";
const WAKE: &str = "alephauto_wake";
const CANCEL: &str = "alephauto_cancel";

/// What keeps one cluster apart from another in the same database: NOTIFY channels and
/// advisory locks are database-wide, so two clusters in different schemas (`search_path`)
/// would otherwise wake, cancel and lead each other. Derived from the schema name alone,
/// so every node of one cluster computes the same names.
#[derive(Debug, Clone)]
struct Scope {
    events: String,
    wake: String,
    cancel: String,
    /// Advisory lock key of the leader.
    leader_lock: i64,
}

impl Scope {
    fn new(schema: Option<&str>) -> Self {
        match schema {
            None => Self { events: EVENTS.into(), wake: WAKE.into(), cancel: CANCEL.into(), leader_lock: LEADER_LOCK },
            Some(schema) => {
                // A digest keeps channel names under PostgreSQL's 63-byte identifier limit.
                let digest = sha2::Sha256::digest(schema.as_bytes());
                let tag = hex::encode(&digest[..8]);
                let key = i64::from_be_bytes(digest[..8].try_into().unwrap_or([0; 8]));
                Self {
                    events: format!("{EVENTS}_{tag}"),
                    wake: format!("{WAKE}_{tag}"),
                    cancel: format!("{CANCEL}_{tag}"),
                    leader_lock: LEADER_LOCK ^ key,
                }
            }
        }
    }
}
/// NOTIFY payloads must stay under 8000 bytes.
pub(super) const MAX_NOTIFY: usize = 7900;

pub(super) fn backend(e: impl Into<anyhow::Error>) -> StoreError {
    StoreError::Backend(e.into())
}

/// PostgreSQL-backed `JobStore` and `ClusterStore`.
pub struct PostgresStore {
    pool: Pool,
    notes: broadcast::Sender<ClusterNote>,
    /// The dedicated session that LISTENs and holds the leader lock.
    session: Arc<Mutex<Client>>,
    leader: AtomicBool,
    scope: Scope,
    /// The group-commit writer of inserts, outcomes, logs and events.
    writer: writer::Writer,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

/// The schema named by `-csearch_path=...` in the URL's `options`, if any.
fn search_path(config: &tokio_postgres::Config) -> Option<String> {
    let options = config.get_options()?;
    options.split_whitespace().find_map(|o| {
        o.trim_start_matches("-c").strip_prefix("search_path=").map(|s| s.split(',').next().unwrap_or(s).to_string())
    })
}

impl PostgresStore {
    /// Connects to `url`, applies migrations, and starts listening for cluster notes.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let config = tokio_postgres::Config::from_str(url).context("invalid PostgreSQL URL")?;
        let (session, connection) = config.connect(NoTls).await.context("connecting to PostgreSQL")?;
        let (notes, _) = broadcast::channel(4096);
        let schema = search_path(&config);
        let scope = Scope::new(schema.as_deref());
        spawn_listener(connection, notes.clone(), scope.clone());
        if let Some(schema) = schema {
            let ident = schema.replace('"', "\"\"");
            session
                .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{ident}\""))
                .await
                .context("creating the schema")?;
        }
        migrations::migrate(&session).await?;
        session
            .batch_execute(&format!("LISTEN {}; LISTEN {}; LISTEN {};", scope.events, scope.wake, scope.cancel))
            .await
            .context("LISTEN")?;
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager).max_size(16).build().context("building the connection pool")?;
        let writer = writer::Writer::start(
            pool.clone(),
            writer::Channels { wake: scope.wake.clone(), events: scope.events.clone(), notes: notes.clone() },
        );
        Ok(Self { pool, notes, session: Arc::new(Mutex::new(session)), leader: AtomicBool::new(false), scope, writer })
    }

    async fn client(&self) -> StoreResult<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|e| backend(anyhow!("PostgreSQL pool: {e}")))
    }

    /// The connection pool, shared with the other stores on this database (`postgres_runs`).
    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }
}

/// Drives the LISTEN connection and turns notifications into `ClusterNote`s.
fn spawn_listener(
    mut connection: tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
    notes: broadcast::Sender<ClusterNote>,
    scope: Scope,
) {
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    let channel = n.channel();
                    let note = match () {
                        () if channel == scope.events => match serde_json::from_str::<JobEvent>(n.payload()) {
                            Ok(e) => ClusterNote::Event(e),
                            Err(e) => {
                                tracing::warn!(error = %e, "unreadable cluster event");
                                continue;
                            }
                        },
                        () if channel == scope.wake => ClusterNote::Wake(n.payload().to_string()),
                        () if channel == scope.cancel => ClusterNote::Cancel(n.payload().to_string()),
                        _ => continue,
                    };
                    let _ = notes.send(note);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "PostgreSQL listener connection failed");
                    break;
                }
            }
        }
    });
}

pub(super) fn to_job(row: &Row) -> StoreResult<Job> {
    let status: String = row.get(2);
    let json_opt = |i: usize| -> Option<Value> { row.get::<_, Option<Value>>(i) };
    Ok(Job {
        id: row.get(0),
        pipeline_id: row.get(1),
        status: JobStatus::parse(&status).ok_or_else(|| backend(anyhow!("bad status {status:?}")))?,
        data: row.get(3),
        created_at: row.get(4),
        started_at: row.get(5),
        completed_at: row.get(6),
        attempt: row.get::<_, i32>(7) as u32,
        progress: Progress { percent: row.get::<_, i16>(8) as u8, message: row.get(9) },
        result: json_opt(10),
        error: parse_json(json_opt(11))?,
        git: parse_json(json_opt(12))?,
        retried_from: row.get(13),
        retry_count: row.get::<_, i32>(14) as u32,
        worker_version: row.get(15),
        component_digest: row.get(16),
    })
}

fn parse_json<T: serde::de::DeserializeOwned>(v: Option<Value>) -> StoreResult<Option<T>> {
    v.map(serde_json::from_value).transpose().map_err(backend)
}

pub(super) fn json<T: serde::Serialize>(v: &Option<T>) -> StoreResult<Option<Value>> {
    v.as_ref().map(serde_json::to_value).transpose().map_err(backend)
}

#[async_trait]
impl JobStore for PostgresStore {
    async fn insert(&self, job: &Job) -> StoreResult<()> {
        // Group-committed with the other inserts waiting, with a NOTIFY that wakes the claimers.
        self.writer.insert(job).await
    }

    async fn mark_running(&self, id: &str, attempt: u32, at: DateTime<Utc>) -> StoreResult<bool> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "UPDATE jobs SET status = 'running', started_at = $3, progress_percent = 0, progress_message = '' \
                 WHERE id = $1 AND attempt = $2 AND status = 'queued'",
            )
            .await
            .map_err(backend)?;
        let n = client.execute(&stmt, &[&id, &(attempt as i32), &at]).await.map_err(backend)?;
        Ok(n == 1)
    }

    async fn save_progress(&self, id: &str, attempt: u32, p: &Progress) -> StoreResult<()> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "UPDATE jobs SET progress_percent = $3, progress_message = $4 WHERE id = $1 AND attempt = $2 AND status = 'running'",
            )
            .await
            .map_err(backend)?;
        client.execute(&stmt, &[&id, &(attempt as i32), &i16::from(p.percent), &p.message]).await.map_err(backend)?;
        Ok(())
    }

    async fn finish(&self, id: &str, attempt: u32, f: &Finish) -> StoreResult<bool> {
        self.writer.finish(id, attempt, f).await
    }

    async fn requeue(&self, id: &str, attempt: u32, error: &JobFailure, delay: Duration) -> StoreResult<bool> {
        let client = self.client().await?;
        let err = serde_json::to_value(error).map_err(backend)?;
        let n = client
            .execute(
                "UPDATE jobs SET status = 'queued', attempt = attempt + 1, error = $3, started_at = NULL, node_id = NULL, \
                 lease_until = NULL, run_after = now() + make_interval(secs => $4) \
                 WHERE id = $1 AND attempt = $2 AND status = 'running'",
                &[&id, &(attempt as i32), &err, &delay.as_secs_f64()],
            )
            .await
            .map_err(backend)?;
        Ok(n == 1)
    }

    async fn cancel(&self, id: &str, at: DateTime<Utc>) -> StoreResult<Option<Job>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let before = tx
            .query_opt(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 FOR UPDATE"), &[&id])
            .await
            .map_err(backend)?;
        let Some(before) = before.map(|r| to_job(&r)).transpose()? else { return Ok(None) };
        if before.status.is_terminal() {
            return Ok(None);
        }
        let error = serde_json::to_value(JobFailure::new(FailureCode::Cancelled, "cancelled by request", false))
            .context("serialising the cancel failure")?;
        tx.execute(
            "UPDATE jobs SET status = 'cancelled', completed_at = $2, error = $3, node_id = NULL, lease_until = NULL WHERE id = $1",
            &[&id, &at, &error],
        )
        .await
        .map_err(backend)?;
        // Delivered at commit: the node running it interrupts the guest.
        tx.execute("SELECT pg_notify($1, $2)", &[&self.scope.cancel, &id]).await.map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(Some(before))
    }

    async fn get(&self, id: &str) -> StoreResult<Option<Job>> {
        let client = self.client().await?;
        let row = client
            .query_opt(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"), &[&id])
            .await
            .map_err(backend)?;
        row.map(|r| to_job(&r)).transpose()
    }

    async fn list(&self, filter: &JobFilter) -> StoreResult<JobPage> {
        let client = self.client().await?;
        let statuses: Vec<String> = filter.statuses.iter().map(|s| s.as_str().to_string()).collect();
        let where_sql =
            "WHERE ($1::text IS NULL OR pipeline_id = $1) AND (cardinality($2::text[]) = 0 OR status = ANY($2))";
        let total: i64 = client
            .query_one(&format!("SELECT count(*) FROM jobs {where_sql}"), &[&filter.pipeline_id, &statuses])
            .await
            .map_err(backend)?
            .get(0);
        // One row more than the page tells whether another follows.
        let (limit, offset) = (i64::from(filter.limit) + 1, i64::from(filter.offset));
        let order = "ORDER BY created_at DESC, seq DESC LIMIT $3 OFFSET $4";
        let rows = match filter.after {
            None => client
                .query(
                    &format!("SELECT {JOB_COLUMNS}, seq FROM jobs {where_sql} {order}"),
                    &[&filter.pipeline_id, &statuses, &limit, &offset],
                )
                .await
                .map_err(backend)?,
            Some(after) => {
                // A row comparison: an index range on `jobs_created (created_at, seq)`.
                let created = after.created_at();
                client
                    .query(
                        &format!(
                            "SELECT {JOB_COLUMNS}, seq FROM jobs {where_sql} AND (created_at, seq) < ($5, $6) {order}"
                        ),
                        &[&filter.pipeline_id, &statuses, &limit, &offset, &created, &after.seq],
                    )
                    .await
                    .map_err(backend)?
            }
        };
        let page = &rows[..rows.len().min(filter.limit as usize)];
        let next = match (rows.len() > page.len(), page.last()) {
            (true, Some(last)) => Some(Cursor::new(&last.get(4), last.get(17))),
            _ => None,
        };
        Ok(JobPage { jobs: page.iter().map(to_job).collect::<StoreResult<_>>()?, total: total as u64, next })
    }

    async fn counts(&self) -> StoreResult<HashMap<String, PipelineCounts>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT pipeline_id, status, count(*), max(completed_at) FROM jobs GROUP BY pipeline_id, status",
                &[],
            )
            .await
            .map_err(backend)?;
        let mut out: HashMap<String, PipelineCounts> = HashMap::new();
        for r in rows {
            let entry = out.entry(r.get(0)).or_default();
            if let Some(st) = JobStatus::parse(r.get(1)) {
                entry.by_status.insert(st, r.get::<_, i64>(2) as u64);
            }
            if let Some(last) = r.get::<_, Option<DateTime<Utc>>>(3) {
                entry.last_run = Some(entry.last_run.map_or(last, |p| p.max(last)));
            }
        }
        Ok(out)
    }

    /// In a cluster a starting node must not take over its peers' running jobs: it only
    /// rescues expired leases. Queued jobs are claimed from the table, not returned here.
    async fn recover(&self) -> StoreResult<Vec<super::Recovered>> {
        super::ClusterStore::rescue_expired(self).await?;
        Ok(Vec::new())
    }

    /// Queued on the writer and not waited for: committed no later than the job's outcome.
    async fn append_logs(&self, id: &str, entries: Vec<LogEntry>) -> StoreResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        self.writer.logs(id, entries).await
    }

    async fn logs(&self, id: &str) -> StoreResult<Vec<LogEntry>> {
        // This node's lines still in the writer's queue are read too.
        self.writer.flush().await?;
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT ts, level, stream, message, fields, attempt FROM job_logs WHERE job_id = $1 ORDER BY seq",
                &[&id],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                Ok(LogEntry {
                    timestamp: r.get(0),
                    level: r.get(1),
                    stream: serde_json::from_value(Value::String(r.get(2))).map_err(backend)?,
                    message: r.get(3),
                    fields: r.get(4),
                    attempt: r.get::<_, i32>(5) as u32,
                })
            })
            .collect()
    }

    async fn flush(&self) -> StoreResult<()> {
        // The writer's log lines and events are the only writes not awaited by their callers.
        self.writer.flush().await
    }

    async fn expired(
        &self,
        pipeline: &str,
        before: Option<DateTime<Utc>>,
        keep: Option<u32>,
        limit: u32,
    ) -> StoreResult<Vec<String>> {
        let client = self.client().await?;
        let keep = keep.map(i64::from);
        let rows = client
            .query(
                "SELECT id FROM jobs WHERE pipeline_id = $1 AND status IN ('completed','failed','cancelled')
                 AND (completed_at < $2 OR id NOT IN (SELECT id FROM jobs WHERE pipeline_id = $1
                      AND status IN ('completed','failed','cancelled') ORDER BY completed_at DESC, seq DESC LIMIT $3))
                 ORDER BY completed_at, seq LIMIT $4",
                &[&pipeline, &before, &keep, &i64::from(limit)],
            )
            .await
            .map_err(backend)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn delete_terminal(&self, ids: &[String]) -> StoreResult<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        tx.execute(
            "DELETE FROM job_logs WHERE job_id IN
             (SELECT id FROM jobs WHERE id = ANY($1) AND status IN ('completed','failed','cancelled'))",
            &[&ids],
        )
        .await
        .map_err(backend)?;
        let n = tx
            .execute("DELETE FROM jobs WHERE id = ANY($1) AND status IN ('completed','failed','cancelled')", &[&ids])
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(n)
    }
}
