//! `RunStore` on SQLite: its own connection to the store's file (WAL; the job writer thread
//! keeps the jobs table), each call on the blocking pool. Run writes are a few per run, not
//! per transition, so they need no group commit.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, anyhow};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::read::parse_ts;
use super::schema::open_connection;
use crate::domain::{JobStatus, format_ts};
use crate::store::runs::{InventoryRecord, RunCounts, RunRecord, RunStore, TargetHistory, TargetRecord};
use crate::store::{StoreError, StoreResult};

/// Migration 9 (applied by `schema::migrate`).
pub(super) const MIGRATION: &str = "CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        pipeline_id TEXT NOT NULL,
        inventory TEXT NOT NULL,
        parameters TEXT NOT NULL,
        path_parameter TEXT NOT NULL,
        triggered_by TEXT NOT NULL,
        dedupe_key TEXT UNIQUE,
        created_at TEXT NOT NULL,
        started_at TEXT,
        cancelled_at TEXT,
        target_count INTEGER NOT NULL DEFAULT 0,
        truncated INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX runs_by_created ON runs(created_at);
    CREATE TABLE run_targets (
        run_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        path TEXT NOT NULL,
        job_id TEXT,
        refused TEXT,
        PRIMARY KEY (run_id, seq)
    );
    CREATE INDEX run_targets_by_job ON run_targets(job_id);
    CREATE TABLE inventories (
        name TEXT PRIMARY KEY,
        spec TEXT NOT NULL,
        created_at TEXT NOT NULL
    );";

const RUN_COLUMNS: &str = "id, pipeline_id, inventory, parameters, path_parameter, triggered_by, dedupe_key, \
    created_at, started_at, cancelled_at, target_count, truncated";

/// SQLite-backed `RunStore` over the job store's database file.
#[derive(Debug, Clone)]
pub struct SqliteRunStore {
    path: PathBuf,
    // std Mutex: held for one short statement batch on a blocking thread, never across an await.
    conn: Arc<Mutex<Connection>>,
}

impl SqliteRunStore {
    /// Opens the database at `path`, which `SqliteStore::open` has created and migrated.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let conn = open_connection(path)?;
        Ok(Self { path: path.to_path_buf(), conn: Arc::new(Mutex::new(conn)) })
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> anyhow::Result<T> + Send + 'static,
    ) -> StoreResult<T> {
        let conn = self.conn.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|_| anyhow!("run store connection poisoned"))?;
            f(&mut guard).with_context(|| format!("run store {}", path.display()))
        })
        .await
        .map_err(|e| StoreError::Backend(anyhow!("run store task failed: {e}")))?
        .map_err(StoreError::Backend)
    }
}

fn row_to_run(r: &rusqlite::Row<'_>) -> rusqlite::Result<anyhow::Result<RunRecord>> {
    let parameters: String = r.get(3)?;
    let created: String = r.get(7)?;
    let started: Option<String> = r.get(8)?;
    let cancelled: Option<String> = r.get(9)?;
    let id: String = r.get(0)?;
    let pipeline_id: String = r.get(1)?;
    let inventory: String = r.get(2)?;
    let path_parameter: String = r.get(4)?;
    let triggered_by: String = r.get(5)?;
    let dedupe_key: Option<String> = r.get(6)?;
    let target_count: u32 = r.get(10)?;
    let truncated: bool = r.get(11)?;
    Ok((|| {
        Ok(RunRecord {
            parameters: serde_json::from_str(&parameters).context("bad run parameters")?,
            created_at: parse_ts(Some(created))?.context("run without created_at")?,
            started_at: parse_ts(started)?,
            cancelled_at: parse_ts(cancelled)?,
            id,
            pipeline_id,
            inventory,
            path_parameter,
            triggered_by,
            dedupe_key,
            target_count,
            truncated,
        })
    })())
}

fn get_run(c: &Connection, id: &str) -> anyhow::Result<Option<RunRecord>> {
    c.query_row(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"), [id], row_to_run).optional()?.transpose()
}

fn status_of(s: Option<String>) -> Option<JobStatus> {
    s.as_deref().and_then(JobStatus::parse)
}

#[async_trait]
impl RunStore for SqliteRunStore {
    async fn create_run(&self, run: &RunRecord) -> StoreResult<(RunRecord, bool)> {
        let run = run.clone();
        self.with(move |c| {
            let tx = c.transaction()?;
            if let Some(key) = &run.dedupe_key {
                let existing: Option<String> =
                    tx.query_row("SELECT id FROM runs WHERE dedupe_key = ?1", [key], |r| r.get(0)).optional()?;
                if let Some(id) = existing {
                    let found = get_run(&tx, &id)?.context("deduplicated run vanished")?;
                    return Ok((found, false));
                }
            }
            tx.execute(
                &format!("INSERT INTO runs ({RUN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, NULL, 0, 0)"),
                params![
                    run.id,
                    run.pipeline_id,
                    run.inventory,
                    run.parameters.to_string(),
                    run.path_parameter,
                    run.triggered_by,
                    run.dedupe_key,
                    format_ts(&run.created_at),
                ],
            )?;
            tx.commit()?;
            Ok((run, true))
        })
        .await
    }

    async fn add_target(&self, run_id: &str, t: &TargetRecord) -> StoreResult<()> {
        let (run_id, t) = (run_id.to_string(), t.clone());
        self.with(move |c| {
            c.execute(
                "INSERT INTO run_targets (run_id, seq, path, job_id, refused) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![run_id, t.seq, t.path, t.job_id, t.refused],
            )?;
            Ok(())
        })
        .await
    }

    async fn mark_started(&self, run_id: &str, targets: u32, truncated: bool, at: DateTime<Utc>) -> StoreResult<()> {
        let run_id = run_id.to_string();
        self.with(move |c| {
            c.execute(
                "UPDATE runs SET started_at = ?2, target_count = ?3, truncated = ?4 WHERE id = ?1",
                params![run_id, format_ts(&at), targets, truncated],
            )?;
            Ok(())
        })
        .await
    }

    async fn mark_cancelled(&self, run_id: &str, at: DateTime<Utc>) -> StoreResult<bool> {
        let run_id = run_id.to_string();
        self.with(move |c| {
            c.execute(
                "UPDATE runs SET cancelled_at = COALESCE(cancelled_at, ?2) WHERE id = ?1",
                params![run_id, format_ts(&at)],
            )
            .map(|n| n > 0)
            .map_err(Into::into)
        })
        .await
    }

    async fn run(&self, id: &str) -> StoreResult<Option<RunRecord>> {
        let id = id.to_string();
        self.with(move |c| get_run(c, &id)).await
    }

    async fn runs(&self, pipeline: Option<&str>, limit: u32, offset: u32) -> StoreResult<(Vec<RunRecord>, u64)> {
        let pipeline = pipeline.map(str::to_string);
        self.with(move |c| {
            let total: u64 =
                c.query_row("SELECT COUNT(*) FROM runs WHERE ?1 IS NULL OR pipeline_id = ?1", [&pipeline], |r| {
                    r.get(0)
                })?;
            let mut stmt = c.prepare(&format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE ?1 IS NULL OR pipeline_id = ?1 \
                 ORDER BY created_at DESC, rowid DESC LIMIT ?2 OFFSET ?3"
            ))?;
            let rows = stmt.query_map(params![pipeline, limit, offset], row_to_run)?;
            let mut out = Vec::new();
            for r in rows {
                out.push(r??);
            }
            Ok((out, total))
        })
        .await
    }

    async fn targets(&self, run_id: &str) -> StoreResult<Vec<TargetRecord>> {
        let run_id = run_id.to_string();
        self.with(move |c| {
            let mut stmt = c.prepare(
                "SELECT t.seq, t.path, t.job_id, t.refused, j.status, j.completed_at FROM run_targets t \
                 LEFT JOIN jobs j ON j.id = t.job_id WHERE t.run_id = ?1 ORDER BY t.seq",
            )?;
            let rows = stmt.query_map([run_id], |r| {
                Ok((
                    r.get::<_, u32>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, Option<String>>(5)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (seq, path, job_id, refused, status, completed) = row?;
                out.push(TargetRecord {
                    seq,
                    path,
                    job_id,
                    refused,
                    status: status_of(status),
                    completed_at: parse_ts(completed)?,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn counts(&self, run_id: &str) -> StoreResult<RunCounts> {
        let run_id = run_id.to_string();
        self.with(move |c| {
            let mut stmt = c.prepare(
                "SELECT j.status, t.refused IS NOT NULL, COUNT(*) FROM run_targets t \
                 LEFT JOIN jobs j ON j.id = t.job_id WHERE t.run_id = ?1 GROUP BY 1, 2",
            )?;
            let mut counts = RunCounts::default();
            let rows = stmt.query_map([run_id], |r| {
                Ok((r.get::<_, Option<String>>(0)?, r.get::<_, bool>(1)?, r.get::<_, u32>(2)?))
            })?;
            for row in rows {
                let (status, refused, n) = row?;
                counts.add(status_of(status), refused, n);
            }
            Ok(counts)
        })
        .await
    }

    async fn history(&self, inventory: &str) -> StoreResult<Vec<TargetHistory>> {
        let inventory = inventory.to_string();
        self.with(move |c| {
            let mut stmt = c.prepare(
                "SELECT path, run_id, created_at, job_id, refused, status, completed_at FROM (
                    SELECT t.path, t.run_id, r.created_at, t.job_id, t.refused, j.status, j.completed_at,
                        ROW_NUMBER() OVER (PARTITION BY t.path ORDER BY r.created_at DESC, r.rowid DESC) AS n
                    FROM run_targets t JOIN runs r ON r.id = t.run_id LEFT JOIN jobs j ON j.id = t.job_id
                    WHERE r.inventory = ?1)
                 WHERE n = 1 ORDER BY path",
            )?;
            let rows = stmt.query_map([inventory], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, Option<String>>(6)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (path, run_id, scanned, job_id, refused, status, completed) = row?;
                out.push(TargetHistory {
                    path,
                    run_id,
                    scanned_at: parse_ts(Some(scanned))?.context("run without created_at")?,
                    job_id,
                    status: status_of(status),
                    refused,
                    completed_at: parse_ts(completed)?,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn put_inventory(&self, inv: &InventoryRecord) -> StoreResult<bool> {
        let inv = inv.clone();
        self.with(move |c| {
            let n = c.execute(
                "INSERT INTO inventories (name, spec, created_at) VALUES (?1, ?2, ?3) ON CONFLICT (name) DO NOTHING",
                params![inv.name, inv.spec.to_string(), format_ts(&inv.created_at)],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn inventory(&self, name: &str) -> StoreResult<Option<InventoryRecord>> {
        let name = name.to_string();
        self.with(move |c| {
            let row: Option<(String, String, String)> = c
                .query_row("SELECT name, spec, created_at FROM inventories WHERE name = ?1", [name], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()?;
            row.map(to_inventory).transpose()
        })
        .await
    }

    async fn inventories(&self) -> StoreResult<Vec<InventoryRecord>> {
        self.with(|c| {
            let mut stmt = c.prepare("SELECT name, spec, created_at FROM inventories ORDER BY name")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            let mut out = Vec::new();
            for row in rows {
                out.push(to_inventory(row?)?);
            }
            Ok(out)
        })
        .await
    }

    async fn delete_inventory(&self, name: &str) -> StoreResult<bool> {
        let name = name.to_string();
        self.with(move |c| Ok(c.execute("DELETE FROM inventories WHERE name = ?1", [name])? > 0)).await
    }
}

fn to_inventory((name, spec, created): (String, String, String)) -> anyhow::Result<InventoryRecord> {
    Ok(InventoryRecord {
        name,
        spec: serde_json::from_str(&spec).context("bad inventory spec")?,
        created_at: parse_ts(Some(created))?.context("inventory without created_at")?,
    })
}
