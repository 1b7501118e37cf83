//! `RunStore` on PostgreSQL, over the job store's pool: runs are shared by every node, and
//! the unique `dedupe_key` makes a start exactly-once across them (`ON CONFLICT DO NOTHING`).

use anyhow::{Context, anyhow};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde_json::Value;
use tokio_postgres::Row;

use super::postgres::PostgresStore;
use super::runs::{InventoryRecord, RunCounts, RunRecord, RunStore, TargetHistory, TargetRecord};
use super::{StoreError, StoreResult};
use crate::domain::JobStatus;

/// Migration 3 (applied by `postgres::migrate`).
pub(super) const MIGRATION: &str = "CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        seq BIGSERIAL,
        pipeline_id TEXT NOT NULL,
        inventory TEXT NOT NULL,
        parameters JSONB NOT NULL,
        path_parameter TEXT NOT NULL,
        triggered_by TEXT NOT NULL,
        dedupe_key TEXT UNIQUE,
        created_at TIMESTAMPTZ NOT NULL,
        started_at TIMESTAMPTZ,
        cancelled_at TIMESTAMPTZ,
        target_count INTEGER NOT NULL DEFAULT 0,
        truncated BOOLEAN NOT NULL DEFAULT false
    );
    CREATE INDEX runs_by_created ON runs (created_at, seq);
    CREATE TABLE run_targets (
        run_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        path TEXT NOT NULL,
        job_id TEXT,
        refused TEXT,
        PRIMARY KEY (run_id, seq)
    );
    CREATE INDEX run_targets_by_job ON run_targets (job_id);
    CREATE TABLE inventories (
        name TEXT PRIMARY KEY,
        spec JSONB NOT NULL,
        created_at TIMESTAMPTZ NOT NULL
    );";

const RUN_COLUMNS: &str = "id, pipeline_id, inventory, parameters, path_parameter, triggered_by, dedupe_key, \
    created_at, started_at, cancelled_at, target_count, truncated";

fn backend(e: impl Into<anyhow::Error>) -> StoreError {
    StoreError::Backend(e.into())
}

/// PostgreSQL-backed `RunStore`.
#[derive(Clone)]
pub struct PostgresRunStore {
    pool: Pool,
}

impl std::fmt::Debug for PostgresRunStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresRunStore").finish_non_exhaustive()
    }
}

impl PostgresRunStore {
    /// Runs in the database `jobs` is connected to (migrated by it).
    pub fn new(jobs: &PostgresStore) -> Self {
        Self { pool: jobs.pool().clone() }
    }

    async fn client(&self) -> StoreResult<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|e| backend(anyhow!("PostgreSQL pool: {e}")))
    }
}

fn to_run(r: &Row) -> RunRecord {
    RunRecord {
        id: r.get(0),
        pipeline_id: r.get(1),
        inventory: r.get(2),
        parameters: r.get::<_, Value>(3),
        path_parameter: r.get(4),
        triggered_by: r.get(5),
        dedupe_key: r.get(6),
        created_at: r.get(7),
        started_at: r.get(8),
        cancelled_at: r.get(9),
        target_count: u32::try_from(r.get::<_, i32>(10)).unwrap_or(0),
        truncated: r.get(11),
    }
}

fn status_of(s: Option<String>) -> Option<JobStatus> {
    s.as_deref().and_then(JobStatus::parse)
}

#[async_trait]
impl RunStore for PostgresRunStore {
    async fn create_run(&self, run: &RunRecord) -> StoreResult<(RunRecord, bool)> {
        let client = self.client().await?;
        let inserted = client
            .execute(
                &format!(
                    "INSERT INTO runs ({RUN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL, 0, false) \
                     ON CONFLICT (dedupe_key) DO NOTHING"
                ),
                &[
                    &run.id,
                    &run.pipeline_id,
                    &run.inventory,
                    &run.parameters,
                    &run.path_parameter,
                    &run.triggered_by,
                    &run.dedupe_key,
                    &run.created_at,
                ],
            )
            .await
            .map_err(backend)?;
        if inserted == 1 {
            return Ok((run.clone(), true));
        }
        let row = client
            .query_one(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE dedupe_key = $1"), &[&run.dedupe_key])
            .await
            .context("reading the run holding the dedupe key")?;
        Ok((to_run(&row), false))
    }

    async fn add_target(&self, run_id: &str, t: &TargetRecord) -> StoreResult<()> {
        let seq = i32::try_from(t.seq).map_err(backend)?;
        self.client()
            .await?
            .execute(
                "INSERT INTO run_targets (run_id, seq, path, job_id, refused) VALUES ($1, $2, $3, $4, $5)",
                &[&run_id, &seq, &t.path, &t.job_id, &t.refused],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn mark_started(&self, run_id: &str, targets: u32, truncated: bool, at: DateTime<Utc>) -> StoreResult<()> {
        let targets = i32::try_from(targets).map_err(backend)?;
        self.client()
            .await?
            .execute(
                "UPDATE runs SET started_at = $2, target_count = $3, truncated = $4 WHERE id = $1",
                &[&run_id, &at, &targets, &truncated],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn mark_cancelled(&self, run_id: &str, at: DateTime<Utc>) -> StoreResult<bool> {
        let n = self
            .client()
            .await?
            .execute("UPDATE runs SET cancelled_at = COALESCE(cancelled_at, $2) WHERE id = $1", &[&run_id, &at])
            .await
            .map_err(backend)?;
        Ok(n > 0)
    }

    async fn run(&self, id: &str) -> StoreResult<Option<RunRecord>> {
        let row = self
            .client()
            .await?
            .query_opt(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"), &[&id])
            .await
            .map_err(backend)?;
        Ok(row.as_ref().map(to_run))
    }

    async fn runs(&self, pipeline: Option<&str>, limit: u32, offset: u32) -> StoreResult<(Vec<RunRecord>, u64)> {
        let client = self.client().await?;
        let total: i64 = client
            .query_one("SELECT COUNT(*) FROM runs WHERE $1::TEXT IS NULL OR pipeline_id = $1", &[&pipeline])
            .await
            .map_err(backend)?
            .get(0);
        let rows = client
            .query(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM runs WHERE $1::TEXT IS NULL OR pipeline_id = $1 \
                     ORDER BY created_at DESC, seq DESC LIMIT $2 OFFSET $3"
                ),
                &[&pipeline, &i64::from(limit), &i64::from(offset)],
            )
            .await
            .map_err(backend)?;
        Ok((rows.iter().map(to_run).collect(), u64::try_from(total).unwrap_or(0)))
    }

    async fn targets(&self, run_id: &str) -> StoreResult<Vec<TargetRecord>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT t.seq, t.path, t.job_id, t.refused, j.status, j.completed_at FROM run_targets t \
                 LEFT JOIN jobs j ON j.id = t.job_id WHERE t.run_id = $1 ORDER BY t.seq",
                &[&run_id],
            )
            .await
            .map_err(backend)?;
        Ok(rows
            .iter()
            .map(|r| TargetRecord {
                seq: u32::try_from(r.get::<_, i32>(0)).unwrap_or(0),
                path: r.get(1),
                job_id: r.get(2),
                refused: r.get(3),
                status: status_of(r.get(4)),
                completed_at: r.get(5),
            })
            .collect())
    }

    async fn counts(&self, run_id: &str) -> StoreResult<RunCounts> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT j.status, t.refused IS NOT NULL, COUNT(*) FROM run_targets t \
                 LEFT JOIN jobs j ON j.id = t.job_id WHERE t.run_id = $1 GROUP BY 1, 2",
                &[&run_id],
            )
            .await
            .map_err(backend)?;
        let mut counts = RunCounts::default();
        for r in &rows {
            let n = u32::try_from(r.get::<_, i64>(2)).unwrap_or(u32::MAX);
            counts.add(status_of(r.get(0)), r.get(1), n);
        }
        Ok(counts)
    }

    async fn history(&self, inventory: &str) -> StoreResult<Vec<TargetHistory>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT DISTINCT ON (t.path) t.path, t.run_id, r.created_at, t.job_id, t.refused, j.status, \
                 j.completed_at FROM run_targets t JOIN runs r ON r.id = t.run_id LEFT JOIN jobs j ON j.id = t.job_id \
                 WHERE r.inventory = $1 ORDER BY t.path, r.created_at DESC, r.seq DESC",
                &[&inventory],
            )
            .await
            .map_err(backend)?;
        Ok(rows
            .iter()
            .map(|r| TargetHistory {
                path: r.get(0),
                run_id: r.get(1),
                scanned_at: r.get(2),
                job_id: r.get(3),
                refused: r.get(4),
                status: status_of(r.get(5)),
                completed_at: r.get(6),
            })
            .collect())
    }

    async fn put_inventory(&self, inv: &InventoryRecord) -> StoreResult<bool> {
        let n = self
            .client()
            .await?
            .execute(
                "INSERT INTO inventories (name, spec, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
                &[&inv.name, &inv.spec, &inv.created_at],
            )
            .await
            .map_err(backend)?;
        Ok(n == 1)
    }

    async fn inventory(&self, name: &str) -> StoreResult<Option<InventoryRecord>> {
        let row = self
            .client()
            .await?
            .query_opt("SELECT name, spec, created_at FROM inventories WHERE name = $1", &[&name])
            .await
            .map_err(backend)?;
        Ok(row.map(|r| InventoryRecord { name: r.get(0), spec: r.get(1), created_at: r.get(2) }))
    }

    async fn inventories(&self) -> StoreResult<Vec<InventoryRecord>> {
        let rows = self
            .client()
            .await?
            .query("SELECT name, spec, created_at FROM inventories ORDER BY name", &[])
            .await
            .map_err(backend)?;
        Ok(rows.iter().map(|r| InventoryRecord { name: r.get(0), spec: r.get(1), created_at: r.get(2) }).collect())
    }

    async fn delete_inventory(&self, name: &str) -> StoreResult<bool> {
        let n =
            self.client().await?.execute("DELETE FROM inventories WHERE name = $1", &[&name]).await.map_err(backend)?;
        Ok(n > 0)
    }
}
