//! The read side of the SQLite store: rows to jobs, listing pages (as jobs or straight to
//! the API's JSON), logs. Runs on reader connections, never on the writer thread.

use anyhow::{Context, anyhow, bail};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;
use serde_json::value::RawValue;

use super::schema::{JOB_COLUMNS, StatusIndex};
use crate::domain::{Job, JobStatus, LogEntry, Progress, format_ts};
use crate::store::{Cursor, JobFilter, JobPage, JsonPage};

pub(super) fn parse_ts(s: Option<String>) -> anyhow::Result<Option<DateTime<Utc>>> {
    s.map(|s| crate::domain::parse_ts(&s).context("bad timestamp in store")).transpose()
}

fn parse_json<T: serde::de::DeserializeOwned>(s: Option<String>) -> anyhow::Result<Option<T>> {
    s.map(|s| serde_json::from_str(&s).context("bad JSON in store")).transpose()
}

/// Maps a row (selected with `JOB_COLUMNS`) to a job; the inner error is a corrupt row.
pub(super) fn row_to_job(r: &rusqlite::Row<'_>) -> rusqlite::Result<anyhow::Result<Job>> {
    let id: String = r.get(0)?;
    let status: String = r.get(2)?;
    let data: String = r.get(3)?;
    let created: String = r.get(4)?;
    let started: Option<String> = r.get(5)?;
    let completed: Option<String> = r.get(6)?;
    let result: Option<String> = r.get(10)?;
    let error: Option<String> = r.get(11)?;
    let git: Option<String> = r.get(12)?;
    let pipeline_id: String = r.get(1)?;
    let attempt: u32 = r.get(7)?;
    let percent: u8 = r.get(8)?;
    let message: String = r.get(9)?;
    let retried_from: Option<String> = r.get(13)?;
    let retry_count: u32 = r.get(14)?;
    let worker_version: Option<String> = r.get(15)?;
    let component_digest: Option<String> = r.get(16)?;
    Ok((|| {
        Ok(Job {
            status: JobStatus::parse(&status).ok_or_else(|| anyhow!("bad status {status:?} for job {id}"))?,
            data: serde_json::from_str(&data).context("bad job data")?,
            created_at: parse_ts(Some(created))?.ok_or_else(|| anyhow!("missing created_at"))?,
            started_at: parse_ts(started)?,
            completed_at: parse_ts(completed)?,
            attempt,
            progress: Progress { percent, message },
            result: parse_json(result)?,
            error: parse_json(error)?,
            git: parse_json(git)?,
            retried_from,
            retry_count,
            worker_version,
            component_digest,
            pipeline_id,
            id,
        })
    })())
}

pub(super) fn get_job(conn: &Connection, id: &str) -> anyhow::Result<Option<Job>> {
    let row = conn.query_row(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"), [id], row_to_job).optional()?;
    row.transpose()
}

/// Column index of the `rowid` a listing selects after `JOB_COLUMNS`.
const ROWID: usize = 17;

/// The query of a listing page: SQL and its arguments (limit and offset last). It asks for one
/// row more than the page, which tells whether another page follows.
pub(super) fn page_query(filter: &JobFilter) -> (String, Vec<rusqlite::types::Value>) {
    let mut clauses = Vec::new();
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    if let Some(p) = &filter.pipeline_id {
        args.push(p.clone().into());
        clauses.push(format!("pipeline_id = ?{}", args.len()));
    }
    if !filter.statuses.is_empty() {
        let mut marks = Vec::new();
        for s in &filter.statuses {
            args.push(s.as_str().to_string().into());
            marks.push(format!("?{}", args.len()));
        }
        clauses.push(format!("status IN ({})", marks.join(", ")));
        if let Some(index) = StatusIndex::covering(&filter.statuses) {
            clauses.push(index.predicate().to_string());
        }
    }
    if let Some(after) = filter.after {
        // Timestamps are stored as `format_ts` text, which sorts as time does. The first
        // condition alone is an index range on `created_at`; the second breaks ties.
        let created = format_ts(&after.created_at());
        args.push(created.into());
        args.push(after.seq.into());
        let (c, q) = (args.len() - 1, args.len());
        clauses.push(format!("created_at <= ?{c} AND (created_at < ?{c} OR rowid < ?{q})"));
    }
    let where_sql = if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
    // Limit and offset are parameters, so one cached statement serves every page.
    let sql = format!(
        "SELECT {JOB_COLUMNS}, rowid FROM jobs {where_sql} ORDER BY created_at DESC, rowid DESC LIMIT ?{} OFFSET ?{}",
        args.len() + 1,
        args.len() + 2
    );
    args.push((i64::from(filter.limit) + 1).into());
    args.push(i64::from(filter.offset).into());
    (sql, args)
}

/// The cursor of a listing row (selected by `page_query`).
fn row_cursor(r: &rusqlite::Row<'_>) -> anyhow::Result<Cursor> {
    let created = parse_ts(Some(r.get::<_, String>(4)?))?.context("missing created_at")?;
    Ok(Cursor::new(&created, r.get(ROWID)?))
}

pub(super) fn list_jobs(conn: &Connection, filter: &JobFilter, total: u64) -> anyhow::Result<JobPage> {
    let (sql, args) = page_query(filter);
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
    let (mut jobs, mut next, mut last) = (Vec::new(), None, None);
    while let Some(r) = rows.next()? {
        if jobs.len() == filter.limit as usize {
            next = last;
            break;
        }
        jobs.push(row_to_job(r)??);
        last = Some(row_cursor(r)?);
    }
    Ok(JobPage { jobs, total, next })
}

/// A job row as the API shows it (the field order and names of `Job`'s serialisation),
/// borrowing the stored text: JSON columns are checked and copied, not parsed into trees,
/// and timestamps are already stored in the API's format.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JobJson<'a> {
    id: &'a str,
    pipeline_id: &'a str,
    status: &'a str,
    data: &'a RawValue,
    created_at: &'a str,
    started_at: Option<&'a str>,
    completed_at: Option<&'a str>,
    attempt: u32,
    progress: ProgressJson<'a>,
    result: Option<&'a RawValue>,
    error: Option<&'a RawValue>,
    git: Option<&'a RawValue>,
    retried_from: Option<&'a str>,
    retry_count: u32,
    worker_version: Option<&'a str>,
    component_digest: Option<&'a str>,
}

#[derive(Serialize)]
struct ProgressJson<'a> {
    percent: u8,
    message: &'a str,
}

fn text<'a>(r: &'a rusqlite::Row<'_>, i: usize) -> anyhow::Result<Option<&'a str>> {
    Ok(r.get_ref(i)?.as_str_or_null()?)
}

fn raw<'a>(r: &'a rusqlite::Row<'_>, i: usize) -> anyhow::Result<Option<&'a RawValue>> {
    text(r, i)?.map(|t| serde_json::from_str::<&RawValue>(t).context("bad JSON in store")).transpose()
}

/// A listing page written straight to a JSON array.
pub(super) fn list_json(conn: &Connection, filter: &JobFilter, total: u64) -> anyhow::Result<JsonPage> {
    let (sql, args) = page_query(filter);
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
    let mut out = Vec::with_capacity(512 * filter.limit.min(100) as usize);
    let mut last_cursor = None;
    out.push(b'[');
    let (mut count, mut next) = (0, None);
    while let Some(r) = rows.next()? {
        if count == filter.limit {
            next = last_cursor;
            break;
        }
        if count > 0 {
            out.push(b',');
        }
        let status = text(r, 2)?.unwrap_or_default();
        if JobStatus::parse(status).is_none() {
            bail!("bad status {status:?} in store");
        }
        let job = JobJson {
            id: text(r, 0)?.unwrap_or_default(),
            pipeline_id: text(r, 1)?.unwrap_or_default(),
            status,
            data: raw(r, 3)?.context("missing job data")?,
            created_at: text(r, 4)?.unwrap_or_default(),
            started_at: text(r, 5)?,
            completed_at: text(r, 6)?,
            attempt: r.get(7)?,
            progress: ProgressJson { percent: r.get(8)?, message: text(r, 9)?.unwrap_or_default() },
            result: raw(r, 10)?,
            error: raw(r, 11)?,
            git: raw(r, 12)?,
            retried_from: text(r, 13)?,
            retry_count: r.get(14)?,
            worker_version: text(r, 15)?,
            component_digest: text(r, 16)?,
        };
        serde_json::to_writer(&mut out, &job)?;
        count += 1;
        if count == filter.limit {
            // Only the page's last row needs its key: whether it is the last one the next row tells.
            last_cursor = Some(row_cursor(r)?);
        }
    }
    out.push(b']');
    // serde_json wrote it from checked pieces: valid UTF-8.
    Ok(JsonPage { jobs: String::from_utf8(out).context("listing JSON")?, count: count as usize, total, next })
}

pub(super) fn read_logs(conn: &Connection, id: &str) -> anyhow::Result<Vec<LogEntry>> {
    let mut stmt = conn.prepare_cached(
        "SELECT ts, level, stream, message, fields, attempt FROM job_logs WHERE job_id = ?1 ORDER BY seq",
    )?;
    let rows = stmt.query_map([id], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, Option<String>>(4)?,
            r.get::<_, u32>(5)?,
        ))
    })?;
    rows.map(|row| {
        let (timestamp, level, stream, message, fields, attempt) = row?;
        Ok(LogEntry {
            timestamp,
            level,
            stream: serde_json::from_value(serde_json::Value::String(stream)).context("bad log stream")?,
            message,
            fields: parse_json(fields)?,
            attempt,
        })
    })
    .collect()
}
