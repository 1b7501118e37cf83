//! `DeliveryStore` on SQLite. One connection of its own behind a mutex, used on the blocking
//! pool: deliveries are a few writes per finished job at most, each a short `BEGIN IMMEDIATE`
//! transaction, so the job writer thread waits at most that long for the lock (busy timeout).

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context, anyhow};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use super::read::{parse_ts, row_to_job};
use super::schema::{JOB_COLUMNS, open_connection};
use crate::domain::{Job, format_ts};
use crate::store::deliveries::{
    AfterAttempt, Delivery, DeliveryAttempt, DeliveryFilter, DeliveryStatus, DeliveryStore, NewDelivery,
};
use crate::store::{StoreError, StoreResult};

/// Migration 10.
pub(super) const MIGRATION: &str = "
    CREATE INDEX jobs_by_completed ON jobs(completed_at) WHERE completed_at IS NOT NULL;
    CREATE TABLE webhook_deliveries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        hook_id TEXT NOT NULL,
        event TEXT NOT NULL,
        event_key TEXT NOT NULL,
        pipeline_id TEXT NOT NULL,
        job_id TEXT,
        payload TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        round_start INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        next_at INTEGER,
        lease_until INTEGER,
        last_status INTEGER,
        last_error TEXT,
        UNIQUE (hook_id, event_key)
    );
    CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_at) WHERE status = 'pending';
    CREATE INDEX webhook_deliveries_by_job ON webhook_deliveries(job_id);
    CREATE TABLE webhook_attempts (
        delivery_id INTEGER NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
        n INTEGER NOT NULL,
        at TEXT NOT NULL,
        duration_ms INTEGER NOT NULL,
        status_code INTEGER,
        error TEXT,
        response_excerpt TEXT,
        PRIMARY KEY (delivery_id, n)
    );
    CREATE TABLE notify_cursor (one INTEGER PRIMARY KEY CHECK (one = 1), completed_at TEXT NOT NULL);";

const DELIVERY_COLUMNS: &str = "id, hook_id, event, event_key, pipeline_id, job_id, payload, status, attempts, \
    round_start, created_at, next_at, last_status, last_error";

/// Webhook deliveries in the SQLite database (`SqliteStore::deliveries`).
#[derive(Clone)]
pub struct SqliteDeliveries {
    // std Mutex: held for one short statement batch on a blocking thread, never across an await.
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteDeliveries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteDeliveries").finish_non_exhaustive()
    }
}

impl super::SqliteStore {
    /// The webhook deliveries of this database, on a connection of their own.
    pub fn deliveries(&self) -> anyhow::Result<SqliteDeliveries> {
        SqliteDeliveries::open(&self.path)
    }
}

fn micros(t: &DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn from_micros(us: Option<i64>) -> Option<DateTime<Utc>> {
    us.and_then(DateTime::from_timestamp_micros)
}

fn row_to_delivery(r: &rusqlite::Row<'_>) -> rusqlite::Result<anyhow::Result<Delivery>> {
    let status: String = r.get(7)?;
    let created: String = r.get(10)?;
    let last_status: Option<i64> = r.get(12)?;
    let (id, hook_id, event, event_key, pipeline_id, job_id, payload) =
        (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?);
    let (attempts, round_start, next_at, last_error): (u32, u32, Option<i64>, Option<String>) =
        (r.get(8)?, r.get(9)?, r.get(11)?, r.get(13)?);
    Ok((|| {
        Ok(Delivery {
            id,
            hook_id,
            event,
            event_key,
            pipeline_id,
            job_id,
            payload,
            status: DeliveryStatus::parse(&status).ok_or_else(|| anyhow!("bad delivery status {status:?}"))?,
            attempts,
            round_start,
            created_at: parse_ts(Some(created))?.ok_or_else(|| anyhow!("missing created_at"))?,
            next_at: from_micros(next_at),
            last_status: last_status.and_then(|s| u16::try_from(s).ok()),
            last_error,
        })
    })())
}

impl SqliteDeliveries {
    fn open(path: &Path) -> anyhow::Result<Self> {
        let conn = open_connection(path).context("opening the deliveries connection")?;
        Ok(Self { conn: Arc::new(Mutex::new(conn)) })
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> anyhow::Result<T> + Send + 'static,
    ) -> StoreResult<T> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().map_err(|_| anyhow!("deliveries connection poisoned"))?;
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Backend(anyhow!("deliveries task failed: {e}")))?
        .map_err(StoreError::Backend)
    }
}

fn immediate<T>(
    conn: &mut Connection,
    f: impl FnOnce(&rusqlite::Transaction<'_>) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let out = f(&tx)?;
    tx.commit()?;
    Ok(out)
}

#[async_trait]
impl DeliveryStore for SqliteDeliveries {
    async fn finished_after(
        &self,
        pipelines: &[String],
        after: &(DateTime<Utc>, String),
        limit: u32,
    ) -> StoreResult<Vec<Job>> {
        let pipelines = pipelines.to_vec();
        let (ts, id) = (format_ts(&after.0), after.1.clone());
        self.run(move |c| {
            let only = if pipelines.is_empty() {
                String::new()
            } else {
                format!(" AND pipeline_id IN ({})", vec!["?"; pipelines.len()].join(", "))
            };
            let sql = format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE completed_at IS NOT NULL AND completed_at >= ?1 \
                 AND (completed_at > ?1 OR id > ?2) AND status IN ('completed', 'failed'){only} \
                 ORDER BY completed_at, id LIMIT {limit}"
            );
            let mut stmt = c.prepare(&sql)?;
            let mut args: Vec<String> = vec![ts, id];
            args.extend(pipelines);
            let rows = stmt.query_map(params_from_iter(args.iter()), row_to_job)?;
            let mut jobs = Vec::new();
            for r in rows {
                jobs.push(r??);
            }
            Ok(jobs)
        })
        .await
    }

    async fn cursor(&self) -> StoreResult<Option<DateTime<Utc>>> {
        self.run(|c| {
            let at: Option<String> =
                c.query_row("SELECT completed_at FROM notify_cursor WHERE one = 1", [], |r| r.get(0)).optional()?;
            parse_ts(at)
        })
        .await
    }

    async fn set_cursor(&self, at: DateTime<Utc>) -> StoreResult<()> {
        self.run(move |c| {
            c.execute(
                "INSERT INTO notify_cursor (one, completed_at) VALUES (1, ?1) \
                 ON CONFLICT (one) DO UPDATE SET completed_at = excluded.completed_at",
                [format_ts(&at)],
            )?;
            Ok(())
        })
        .await
    }

    async fn enqueue(&self, deliveries: &[NewDelivery]) -> StoreResult<u64> {
        if deliveries.is_empty() {
            return Ok(0);
        }
        let deliveries = deliveries.to_vec();
        self.run(move |c| {
            immediate(c, |tx| {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO webhook_deliveries (hook_id, event, event_key, pipeline_id, job_id, payload, status, \
                     created_at, next_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?8) \
                     ON CONFLICT (hook_id, event_key) DO NOTHING",
                )?;
                let mut added = 0;
                for d in &deliveries {
                    added += stmt.execute(params![
                        d.hook_id,
                        d.event,
                        d.event_key,
                        d.pipeline_id,
                        d.job_id,
                        d.payload,
                        format_ts(&d.at),
                        micros(&d.at)
                    ])? as u64;
                }
                Ok(added)
            })
        })
        .await
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<Delivery>> {
        self.run(move |c| {
            immediate(c, |tx| {
                let sql = format!(
                    "UPDATE webhook_deliveries SET lease_until = ?2 WHERE id IN (SELECT id FROM webhook_deliveries \
                     WHERE status = 'pending' AND next_at <= ?1 AND (lease_until IS NULL OR lease_until <= ?1) \
                     ORDER BY next_at LIMIT {limit}) RETURNING {DELIVERY_COLUMNS}"
                );
                let mut stmt = tx.prepare(&sql)?;
                let rows = stmt.query_map(params![micros(&now), micros(&lease_until)], row_to_delivery)?;
                let mut out = Vec::new();
                for r in rows {
                    out.push(r??);
                }
                Ok(out)
            })
        })
        .await
    }

    async fn record_attempt(&self, id: i64, attempt: &DeliveryAttempt, next: AfterAttempt) -> StoreResult<bool> {
        let a = attempt.clone();
        self.run(move |c| {
            immediate(c, |tx| {
                let (status, next_at) = match next {
                    AfterAttempt::Delivered => (DeliveryStatus::Delivered, None),
                    AfterAttempt::Retry(at) => (DeliveryStatus::Pending, Some(micros(&at))),
                    AfterAttempt::Failed => (DeliveryStatus::Failed, None),
                };
                let changed = tx.execute(
                    "UPDATE webhook_deliveries SET attempts = ?2, status = ?3, next_at = ?4, lease_until = NULL, \
                     last_status = ?5, last_error = ?6 WHERE id = ?1 AND status = 'pending' AND attempts = ?2 - 1",
                    params![id, a.n, status.as_str(), next_at, a.status_code, a.error],
                )?;
                if changed == 0 {
                    return Ok(false);
                }
                tx.execute(
                    "INSERT INTO webhook_attempts (delivery_id, n, at, duration_ms, status_code, error, \
                     response_excerpt) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        id,
                        a.n,
                        format_ts(&a.at),
                        i64::try_from(a.duration_ms).unwrap_or(i64::MAX),
                        a.status_code,
                        a.error,
                        a.response_excerpt
                    ],
                )?;
                Ok(true)
            })
        })
        .await
    }

    async fn list_deliveries(&self, filter: &DeliveryFilter) -> StoreResult<Vec<Delivery>> {
        let f = filter.clone();
        self.run(move |c| {
            let mut sql = format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE 1 = 1");
            let mut args: Vec<rusqlite::types::Value> = Vec::new();
            if let Some(h) = f.hook_id {
                args.push(h.into());
                sql.push_str(&format!(" AND hook_id = ?{}", args.len()));
            }
            if let Some(s) = f.status {
                args.push(s.as_str().to_string().into());
                sql.push_str(&format!(" AND status = ?{}", args.len()));
            }
            if let Some(j) = f.job_id {
                args.push(j.into());
                sql.push_str(&format!(" AND job_id = ?{}", args.len()));
            }
            if let Some(b) = f.before {
                args.push(b.into());
                sql.push_str(&format!(" AND id < ?{}", args.len()));
            }
            sql.push_str(&format!(" ORDER BY id DESC LIMIT {}", f.limit));
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map(params_from_iter(args.iter()), row_to_delivery)?;
            let mut out = Vec::new();
            for r in rows {
                out.push(r??);
            }
            Ok(out)
        })
        .await
    }

    async fn delivery(&self, id: i64) -> StoreResult<Option<(Delivery, Vec<DeliveryAttempt>)>> {
        self.run(move |c| {
            let sql = format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = ?1");
            let Some(d) = c.query_row(&sql, [id], row_to_delivery).optional()? else { return Ok(None) };
            let d = d?;
            let mut stmt = c.prepare(
                "SELECT n, at, duration_ms, status_code, error, response_excerpt FROM webhook_attempts \
                 WHERE delivery_id = ?1 ORDER BY n",
            )?;
            let rows = stmt.query_map([id], |r| {
                let at: String = r.get(1)?;
                let code: Option<i64> = r.get(3)?;
                let ms: i64 = r.get(2)?;
                Ok((r.get::<_, u32>(0)?, at, ms, code, r.get::<_, Option<String>>(4)?, r.get::<_, Option<String>>(5)?))
            })?;
            let mut attempts = Vec::new();
            for r in rows {
                let (n, at, ms, code, error, excerpt) = r?;
                attempts.push(DeliveryAttempt {
                    n,
                    at: parse_ts(Some(at))?.ok_or_else(|| anyhow!("missing attempt time"))?,
                    duration_ms: u64::try_from(ms).unwrap_or(0),
                    status_code: code.and_then(|s| u16::try_from(s).ok()),
                    error,
                    response_excerpt: excerpt,
                });
            }
            Ok(Some((d, attempts)))
        })
        .await
    }

    async fn redeliver(&self, id: i64, now: DateTime<Utc>) -> StoreResult<bool> {
        self.run(move |c| {
            let changed = c.execute(
                "UPDATE webhook_deliveries SET status = 'pending', round_start = attempts, next_at = ?2, \
                 lease_until = NULL WHERE id = ?1 AND status <> 'pending'",
                params![id, micros(&now)],
            )?;
            Ok(changed == 1)
        })
        .await
    }

    async fn prune(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let before = format_ts(&before);
        self.run(move |c| {
            immediate(c, |tx| {
                let old = "SELECT id FROM webhook_deliveries WHERE status <> 'pending' AND created_at < ?1";
                tx.execute(&format!("DELETE FROM webhook_attempts WHERE delivery_id IN ({old})"), params![before])?;
                let deleted = tx.execute(
                    "DELETE FROM webhook_deliveries WHERE status <> 'pending' AND created_at < ?1",
                    params![before],
                )?;
                Ok(deleted as u64)
            })
        })
        .await
    }
}
