//! The SQLite schema: versioned migrations, the partial status indexes and the column list
//! every job query shares, and how each connection is opened.

use std::path::Path;

use anyhow::{Context, bail};
use chrono::Utc;
use rusqlite::config::DbConfig;
use rusqlite::{Connection, params};

use crate::domain::{JobStatus, format_ts};

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
    // A re-queued job's backoff (microseconds since the Unix epoch; NULL: runnable now), so a
    // restart waits out what is left of it, as a cluster's claims do.
    (7, "ALTER TABLE jobs ADD COLUMN run_after INTEGER"),
    // Schedules (store/schedules.rs); times in Unix milliseconds.
    (
        8,
        "CREATE TABLE schedules (
        id TEXT PRIMARY KEY,
        pipeline_id TEXT NOT NULL,
        cron TEXT NOT NULL,
        timezone TEXT NOT NULL,
        parameters TEXT NOT NULL,
        inventory TEXT,
        misfire TEXT NOT NULL,
        overlap TEXT NOT NULL,
        paused INTEGER NOT NULL,
        source TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        last_fire INTEGER,
        next_fire INTEGER,
        last_job_id TEXT,
        pending_fire INTEGER
    )",
    ),
    // Fan-out runs (`store::runs`): a run, one row per target (its job or its refusal), and
    // the inventories created over the API. No foreign key to jobs: retention may prune them.
    (9, super::runs::MIGRATION),
    // Webhook deliveries (`store::deliveries`), their attempts and the cursor over finished
    // jobs they are derived from; the partial index lets that scan seek instead of walking.
    (10, super::deliveries::MIGRATION),
    // The worker version and component digest a job runs on (hot swap keeps several).
    (
        11,
        "ALTER TABLE jobs ADD COLUMN worker_version TEXT;
        ALTER TABLE jobs ADD COLUMN component_digest TEXT;",
    ),
];

/// The predicate of `jobs_active`.
pub(super) const ACTIVE: &str = "status IN ('queued', 'running')";
/// The predicate of `jobs_ended_badly`.
const ENDED_BADLY: &str = "status IN ('failed', 'cancelled')";

/// A partial status index (migration 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StatusIndex {
    /// `jobs_active`: queued and running jobs together, in creation order.
    Active,
    /// `jobs_ended_badly`: by status, then creation order.
    EndedBadly,
}

impl StatusIndex {
    /// The partial index that covers every status of a filter, if one does.
    pub(super) fn covering(statuses: &[JobStatus]) -> Option<Self> {
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
    pub(super) fn predicate(self) -> &'static str {
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
         progress_percent, progress_message, result, error, git, retried_from, retry_count, \
         worker_version, component_digest"
    };
}
pub(super) const JOB_COLUMNS: &str = job_columns!();
/// How many columns `JOB_COLUMNS` lists: the index of the first column a query adds after them.
pub(super) const JOB_COLUMN_COUNT: usize = 17;
pub(super) const INSERT_JOB: &str = concat!(
    "INSERT INTO jobs (",
    job_columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
);

pub(super) fn open_connection(path: &Path) -> anyhow::Result<Connection> {
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

pub(super) fn migrate(conn: &mut Connection) -> anyhow::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
    )?;
    for (version, sql) in MIGRATIONS {
        let tx = conn.transaction()?;
        let done: bool =
            tx.query_row("SELECT EXISTS(SELECT 1 FROM schema_migrations WHERE version = ?1)", [version], |r| r.get(0))?;
        if !done {
            tx.execute_batch(sql).with_context(|| format!("applying migration {version}"))?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                params![version, format_ts(&Utc::now())],
            )?;
        }
        tx.commit()?;
    }
    Ok(())
}
