//! Job counts per pipeline and status, kept in memory beside the database.
//!
//! A page's `total` and `/api/pipelines` need counts; counting rows is a table scan and
//! keeping a counts table by SQL triggers added two statements to every transition on the
//! single writer. The writer thread is the only one that changes rows, so it knows each
//! transition exactly: it applies them here after their commit.
//!
//! At open the counts come from the snapshot the last clean shutdown saved (`job_tally`,
//! valid while `job_tally_valid` holds its row: the first write after opening deletes that
//! row in its own transaction), or else from a scan of the table (a first start, or a crash).

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use rusqlite::Connection;

use crate::domain::JobStatus;
use crate::store::PipelineCounts;

/// One committed change of a job's status.
#[derive(Debug)]
pub(super) enum Delta {
    /// A job of `pipeline` went from `from` (None: it is new) to `to`, ending at `ended`.
    Move { pipeline: String, from: Option<JobStatus>, to: JobStatus, ended: Option<DateTime<Utc>> },
    /// Many rows changed at once (crash recovery): count again from the table.
    Recount,
}

/// The counts, shared by the writer (which updates them) and readers.
#[derive(Debug, Default)]
pub(super) struct Tally {
    // std Mutex: held for a few map operations, never across a query.
    by_pipeline: Mutex<HashMap<String, PipelineCounts>>,
}

impl Tally {
    /// The saved snapshot when it is still valid (true), else a count of the table (false).
    pub(super) fn load(conn: &Connection) -> anyhow::Result<(Self, bool)> {
        let valid: bool = conn.query_row("SELECT EXISTS(SELECT 1 FROM job_tally_valid)", [], |r| r.get(0))?;
        let counts = if valid { read_snapshot(conn)? } else { count_table(conn)? };
        Ok((Self { by_pipeline: Mutex::new(counts) }, valid))
    }

    /// Saves the counts as the snapshot the next open may start from.
    pub(super) fn save(&self, conn: &mut Connection) -> anyhow::Result<()> {
        let counts = self.snapshot();
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM job_tally", [])?;
        {
            let mut insert =
                tx.prepare("INSERT INTO job_tally (pipeline_id, status, n, last_run) VALUES (?1, ?2, ?3, ?4)")?;
            for (pipeline, c) in &counts {
                let last = c.last_run.as_ref().map(crate::domain::format_ts);
                for (status, n) in &c.by_status {
                    insert.execute(rusqlite::params![pipeline, status.as_str(), *n as i64, last])?;
                }
            }
        }
        tx.execute("INSERT OR REPLACE INTO job_tally_valid (one) VALUES (1)", [])?;
        tx.commit()?;
        Ok(())
    }

    /// Applies the deltas of a committed batch.
    pub(super) fn apply(&self, deltas: Vec<Delta>, conn: &Connection) {
        if deltas.is_empty() {
            return;
        }
        let recount = if deltas.iter().any(|d| matches!(d, Delta::Recount)) {
            match count_table(conn) {
                Ok(fresh) => Some(fresh),
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "recounting jobs failed; counts may drift until restart");
                    None
                }
            }
        } else {
            None
        };
        let Ok(mut map) = self.by_pipeline.lock() else { return };
        if let Some(fresh) = recount {
            *map = fresh;
            return;
        }
        for delta in deltas {
            let Delta::Move { pipeline, from, to, ended } = delta else { continue };
            let entry = map.entry(pipeline).or_default();
            if let Some(from) = from
                && let Some(n) = entry.by_status.get_mut(&from)
            {
                *n = n.saturating_sub(1);
            }
            *entry.by_status.entry(to).or_default() += 1;
            if let Some(at) = ended {
                entry.last_run = Some(entry.last_run.map_or(at, |prev| prev.max(at)));
            }
        }
    }

    /// Jobs matching a listing filter (all pipelines when None, all statuses when empty).
    pub(super) fn total(&self, pipeline: Option<&str>, statuses: &[JobStatus]) -> u64 {
        let Ok(map) = self.by_pipeline.lock() else { return 0 };
        map.iter()
            .filter(|(p, _)| pipeline.is_none_or(|want| want == p.as_str()))
            .flat_map(|(_, c)| c.by_status.iter())
            .filter(|(s, _)| statuses.is_empty() || statuses.contains(s))
            .map(|(_, n)| *n)
            .sum()
    }

    /// A copy of every pipeline's counts.
    pub(super) fn snapshot(&self) -> HashMap<String, PipelineCounts> {
        self.by_pipeline.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

fn read_snapshot(conn: &Connection) -> anyhow::Result<HashMap<String, PipelineCounts>> {
    collect(conn, "SELECT pipeline_id, status, n, last_run FROM job_tally")
}

fn count_table(conn: &Connection) -> anyhow::Result<HashMap<String, PipelineCounts>> {
    collect(conn, "SELECT pipeline_id, status, COUNT(*), MAX(completed_at) FROM jobs GROUP BY pipeline_id, status")
}

/// Counts from rows of (pipeline, status, count, last finished time).
fn collect(conn: &Connection, sql: &str) -> anyhow::Result<HashMap<String, PipelineCounts>> {
    let mut out: HashMap<String, PipelineCounts> = HashMap::new();
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let pipeline: String = r.get(0)?;
        let status: String = r.get(1)?;
        let count: i64 = r.get(2)?;
        let last: Option<String> = r.get(3)?;
        let entry = out.entry(pipeline).or_default();
        if let Some(st) = JobStatus::parse(&status) {
            entry.by_status.insert(st, count.max(0) as u64);
        }
        if let Some(last) = super::read::parse_ts(last)? {
            entry.last_run = Some(entry.last_run.map_or(last, |prev| prev.max(last)));
        }
    }
    Ok(out)
}
