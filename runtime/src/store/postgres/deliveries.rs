//! `DeliveryStore` on PostgreSQL. In a cluster every node derives deliveries from the same
//! finished jobs; the unique (hook, event key) makes the insert happen once, and claims take
//! due rows `FOR UPDATE SKIP LOCKED` with a lease, so each attempt is made by one node.

use anyhow::anyhow;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{JOB_COLUMNS, backend, to_job};
use crate::domain::Job;
use crate::store::StoreResult;
use crate::store::deliveries::{
    AfterAttempt, Delivery, DeliveryAttempt, DeliveryFilter, DeliveryStatus, DeliveryStore, NewDelivery,
};

/// Migration 4.
pub(super) const MIGRATION: &str = "
    CREATE INDEX jobs_by_completed ON jobs(completed_at, id) WHERE completed_at IS NOT NULL;
    CREATE TABLE webhook_deliveries (
        id BIGSERIAL PRIMARY KEY,
        hook_id TEXT NOT NULL,
        event TEXT NOT NULL,
        event_key TEXT NOT NULL,
        pipeline_id TEXT NOT NULL,
        job_id TEXT,
        payload TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        round_start INTEGER NOT NULL DEFAULT 0,
        created_at TIMESTAMPTZ NOT NULL,
        next_at TIMESTAMPTZ,
        lease_until TIMESTAMPTZ,
        last_status INTEGER,
        last_error TEXT,
        UNIQUE (hook_id, event_key)
    );
    CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_at) WHERE status = 'pending';
    CREATE INDEX webhook_deliveries_by_job ON webhook_deliveries(job_id);
    CREATE TABLE webhook_attempts (
        delivery_id BIGINT NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
        n INTEGER NOT NULL,
        at TIMESTAMPTZ NOT NULL,
        duration_ms BIGINT NOT NULL,
        status_code INTEGER,
        error TEXT,
        response_excerpt TEXT,
        PRIMARY KEY (delivery_id, n)
    );
    CREATE TABLE notify_cursor (one INTEGER PRIMARY KEY CHECK (one = 1), completed_at TIMESTAMPTZ NOT NULL)";

const DELIVERY_COLUMNS: &str = "id, hook_id, event, event_key, pipeline_id, job_id, payload, status, attempts, \
    round_start, created_at, next_at, last_status, last_error";

/// Webhook deliveries in the PostgreSQL database (`PostgresStore::deliveries`).
#[derive(Clone)]
pub struct PostgresDeliveries {
    pool: Pool,
}

impl std::fmt::Debug for PostgresDeliveries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresDeliveries").finish_non_exhaustive()
    }
}

impl super::PostgresStore {
    /// The webhook deliveries of this database (sharing the store's connection pool).
    pub fn deliveries(&self) -> PostgresDeliveries {
        PostgresDeliveries { pool: self.pool.clone() }
    }
}

impl PostgresDeliveries {
    async fn client(&self) -> StoreResult<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|e| backend(anyhow!("PostgreSQL pool: {e}")))
    }
}

fn to_delivery(r: &Row) -> StoreResult<Delivery> {
    let status: String = r.get(7);
    Ok(Delivery {
        id: r.get(0),
        hook_id: r.get(1),
        event: r.get(2),
        event_key: r.get(3),
        pipeline_id: r.get(4),
        job_id: r.get(5),
        payload: r.get(6),
        status: DeliveryStatus::parse(&status).ok_or_else(|| backend(anyhow!("bad delivery status {status:?}")))?,
        attempts: u32::try_from(r.get::<_, i32>(8)).unwrap_or(0),
        round_start: u32::try_from(r.get::<_, i32>(9)).unwrap_or(0),
        created_at: r.get(10),
        next_at: r.get(11),
        last_status: r.get::<_, Option<i32>>(12).and_then(|s| u16::try_from(s).ok()),
        last_error: r.get(13),
    })
}

#[async_trait]
impl DeliveryStore for PostgresDeliveries {
    async fn finished_after(
        &self,
        pipelines: &[String],
        after: &(DateTime<Utc>, String),
        limit: u32,
    ) -> StoreResult<Vec<Job>> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE completed_at IS NOT NULL AND (completed_at, id) > ($1, $2) \
             AND status IN ('completed', 'failed') AND (cardinality($3::text[]) = 0 OR pipeline_id = ANY($3)) \
             ORDER BY completed_at, id LIMIT {limit}"
        );
        let rows = client.query(&sql, &[&after.0, &after.1, &pipelines]).await.map_err(backend)?;
        rows.iter().map(to_job).collect()
    }

    async fn cursor(&self) -> StoreResult<Option<DateTime<Utc>>> {
        let client = self.client().await?;
        let row =
            client.query_opt("SELECT completed_at FROM notify_cursor WHERE one = 1", &[]).await.map_err(backend)?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn set_cursor(&self, at: DateTime<Utc>) -> StoreResult<()> {
        let client = self.client().await?;
        // Nodes move it forward only.
        client
            .execute(
                "INSERT INTO notify_cursor (one, completed_at) VALUES (1, $1) ON CONFLICT (one) DO UPDATE \
                 SET completed_at = GREATEST(notify_cursor.completed_at, excluded.completed_at)",
                &[&at],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn enqueue(&self, deliveries: &[NewDelivery]) -> StoreResult<u64> {
        if deliveries.is_empty() {
            return Ok(0);
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let stmt = tx
            .prepare_cached(
                "INSERT INTO webhook_deliveries (hook_id, event, event_key, pipeline_id, job_id, payload, status, \
                 created_at, next_at) VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $7) \
                 ON CONFLICT (hook_id, event_key) DO NOTHING",
            )
            .await
            .map_err(backend)?;
        let mut added = 0;
        for d in deliveries {
            added += tx
                .execute(&stmt, &[&d.hook_id, &d.event, &d.event_key, &d.pipeline_id, &d.job_id, &d.payload, &d.at])
                .await
                .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(added)
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<Delivery>> {
        let client = self.client().await?;
        let sql = format!(
            "UPDATE webhook_deliveries SET lease_until = $2 WHERE id IN (SELECT id FROM webhook_deliveries \
             WHERE status = 'pending' AND next_at <= $1 AND (lease_until IS NULL OR lease_until <= $1) \
             ORDER BY next_at LIMIT {limit} FOR UPDATE SKIP LOCKED) RETURNING {DELIVERY_COLUMNS}"
        );
        let rows = client.query(&sql, &[&now, &lease_until]).await.map_err(backend)?;
        rows.iter().map(to_delivery).collect()
    }

    async fn record_attempt(&self, id: i64, a: &DeliveryAttempt, next: AfterAttempt) -> StoreResult<bool> {
        let (status, next_at) = match next {
            AfterAttempt::Delivered => (DeliveryStatus::Delivered, None),
            AfterAttempt::Retry(at) => (DeliveryStatus::Pending, Some(at)),
            AfterAttempt::Failed => (DeliveryStatus::Failed, None),
        };
        let n = i32::try_from(a.n).unwrap_or(i32::MAX);
        let code = a.status_code.map(i32::from);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let changed = tx
            .execute(
                "UPDATE webhook_deliveries SET attempts = $2, status = $3, next_at = $4, lease_until = NULL, \
                 last_status = $5, last_error = $6 WHERE id = $1 AND status = 'pending' AND attempts = $2 - 1",
                &[&id, &n, &status.as_str(), &next_at, &code, &a.error],
            )
            .await
            .map_err(backend)?;
        if changed == 0 {
            return Ok(false);
        }
        let ms = i64::try_from(a.duration_ms).unwrap_or(i64::MAX);
        tx.execute(
            "INSERT INTO webhook_attempts (delivery_id, n, at, duration_ms, status_code, error, response_excerpt) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[&id, &n, &a.at, &ms, &code, &a.error, &a.response_excerpt],
        )
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn list_deliveries(&self, f: &DeliveryFilter) -> StoreResult<Vec<Delivery>> {
        let client = self.client().await?;
        let mut sql = format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE TRUE");
        let status = f.status.map(|s| s.as_str().to_string());
        let mut args: Vec<&(dyn ToSql + Sync)> = Vec::new();
        for (column, value) in [("hook_id", &f.hook_id), ("status", &status), ("job_id", &f.job_id)] {
            if let Some(v) = value {
                args.push(v);
                sql.push_str(&format!(" AND {column} = ${}", args.len()));
            }
        }
        if let Some(b) = &f.before {
            args.push(b);
            sql.push_str(&format!(" AND id < ${}", args.len()));
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT {}", f.limit));
        let rows = client.query(&sql, &args).await.map_err(backend)?;
        rows.iter().map(to_delivery).collect()
    }

    async fn delivery(&self, id: i64) -> StoreResult<Option<(Delivery, Vec<DeliveryAttempt>)>> {
        let client = self.client().await?;
        let sql = format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1");
        let Some(row) = client.query_opt(&sql, &[&id]).await.map_err(backend)? else { return Ok(None) };
        let d = to_delivery(&row)?;
        let rows = client
            .query(
                "SELECT n, at, duration_ms, status_code, error, response_excerpt FROM webhook_attempts \
                 WHERE delivery_id = $1 ORDER BY n",
                &[&id],
            )
            .await
            .map_err(backend)?;
        let attempts = rows
            .iter()
            .map(|r| DeliveryAttempt {
                n: u32::try_from(r.get::<_, i32>(0)).unwrap_or(0),
                at: r.get(1),
                duration_ms: u64::try_from(r.get::<_, i64>(2)).unwrap_or(0),
                status_code: r.get::<_, Option<i32>>(3).and_then(|s| u16::try_from(s).ok()),
                error: r.get(4),
                response_excerpt: r.get(5),
            })
            .collect();
        Ok(Some((d, attempts)))
    }

    async fn redeliver(&self, id: i64, now: DateTime<Utc>) -> StoreResult<bool> {
        let client = self.client().await?;
        let changed = client
            .execute(
                "UPDATE webhook_deliveries SET status = 'pending', round_start = attempts, next_at = $2, \
                 lease_until = NULL WHERE id = $1 AND status <> 'pending'",
                &[&id, &now],
            )
            .await
            .map_err(backend)?;
        Ok(changed == 1)
    }

    async fn prune(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        // Attempts go with their delivery (ON DELETE CASCADE).
        let client = self.client().await?;
        client
            .execute("DELETE FROM webhook_deliveries WHERE status <> 'pending' AND created_at < $1", &[&before])
            .await
            .map_err(backend)
    }
}
