//! An in-memory `JobStore` for the queue's unit tests: the same fenced transitions as the
//! SQLite and PostgreSQL stores, plus what a test needs to stage races: a log of the calls,
//! a watch that fires on every change, and a gate that holds outcome writes.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::{Semaphore, watch};

use super::{
    Claim, Cursor, Finish, JobFilter, JobPage, JobStore, LogEntry, PipelineCounts, Recovered, StoreError, StoreResult,
};
use crate::domain::{Job, JobFailure, JobStatus, Progress};

/// One stored job.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub job: Job,
    pub seq: i64,
    pub run_after: Option<DateTime<Utc>>,
}

/// Everything the store holds.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub rows: BTreeMap<String, Row>,
    pub logs: HashMap<String, Vec<LogEntry>>,
    /// Every call that changes something, in order: `"mark_running j1@1"`, `"finish j1@1 -> j2"`, ...
    pub calls: Vec<String>,
    next_seq: i64,
}

impl State {
    /// A job's status and attempt.
    pub fn status(&self, id: &str) -> Option<(JobStatus, u32)> {
        self.rows.get(id).map(|r| (r.job.status, r.job.attempt))
    }

    /// How many jobs have `status`.
    pub fn count(&self, status: JobStatus) -> usize {
        self.rows.values().filter(|r| r.job.status == status).count()
    }
}

/// The in-memory store.
#[derive(Debug)]
pub(crate) struct MemoryStore {
    state: Mutex<State>,
    changed: watch::Sender<u64>,
    /// When set, `finish` and `finish_and_claim` wait for a permit before writing.
    finish_gate: Mutex<Option<Arc<Semaphore>>>,
    /// Writes waiting at the gate.
    waiting: watch::Sender<usize>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            changed: watch::Sender::new(0),
            finish_gate: Mutex::default(),
            waiting: watch::Sender::new(0),
        }
    }
}

/// How long a test waits for a condition before it fails.
pub(crate) const DEADLINE: Duration = Duration::from_secs(10);

impl MemoryStore {
    /// The state, locked.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn write<T>(&self, call: String, f: impl FnOnce(&mut State) -> T) -> T {
        let out = {
            let mut state = self.state();
            state.calls.push(call);
            f(&mut state)
        };
        self.changed.send_modify(|n| *n += 1);
        out
    }

    /// Puts a row in as it is (for staging what a previous process left).
    pub fn put(&self, job: Job, run_after: Option<DateTime<Utc>>) {
        self.write(format!("put {}", job.id), |s| {
            s.next_seq += 1;
            let seq = s.next_seq;
            s.rows.insert(job.id.clone(), Row { job, seq, run_after });
        });
    }

    /// Waits until `cond` holds of the state; panics naming `what` after `DEADLINE`.
    pub async fn wait_until(&self, what: &str, cond: impl Fn(&State) -> bool) {
        let mut rx = self.changed.subscribe();
        let wait = async {
            loop {
                if cond(&self.state()) {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        };
        if tokio::time::timeout(DEADLINE, wait).await.is_err() {
            panic!("timed out waiting until {what}; calls: {:?}", self.state().calls);
        }
    }

    /// Makes outcome writes wait at a gate from now on; returns it (add permits to let them through).
    pub fn hold_finishes(&self) -> Arc<Semaphore> {
        let gate = Arc::new(Semaphore::new(0));
        *self.finish_gate.lock().unwrap_or_else(|e| e.into_inner()) = Some(gate.clone());
        gate
    }

    /// Waits until `n` outcome writes wait at the gate.
    pub async fn wait_for_held(&self, n: usize) {
        let mut rx = self.waiting.subscribe();
        if tokio::time::timeout(DEADLINE, rx.wait_for(|w| *w >= n)).await.is_err() {
            panic!("timed out waiting for {n} held finishes");
        }
    }

    async fn pass_gate(&self) {
        let gate = self.finish_gate.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(gate) = gate {
            self.waiting.send_modify(|w| *w += 1);
            let permit = gate.acquire().await;
            self.waiting.send_modify(|w| *w -= 1);
            if let Ok(p) = permit {
                p.forget();
            }
        }
    }
}

fn claim(s: &mut State, id: &str, attempt: u32, at: DateTime<Utc>) -> bool {
    match s.rows.get_mut(id) {
        Some(r) if r.job.status == JobStatus::Queued && r.job.attempt == attempt => {
            r.job.status = JobStatus::Running;
            r.job.started_at = Some(at);
            r.job.progress = Progress::default();
            true
        }
        _ => false,
    }
}

fn finish(s: &mut State, id: &str, attempt: u32, f: &Finish) -> bool {
    match s.rows.get_mut(id) {
        Some(r) if r.job.status == JobStatus::Running && r.job.attempt == attempt => {
            r.job.status = f.status;
            r.job.result = f.result.clone();
            r.job.error = f.error.clone();
            r.job.git = f.git.clone();
            r.job.completed_at = Some(f.at);
            if f.status == JobStatus::Completed {
                r.job.progress.percent = 100;
            }
            true
        }
        _ => false,
    }
}

#[async_trait]
impl JobStore for MemoryStore {
    async fn insert(&self, job: &Job) -> StoreResult<()> {
        self.write(format!("insert {}", job.id), |s| {
            if s.rows.contains_key(&job.id) {
                return Err(StoreError::Duplicate(job.id.clone()));
            }
            s.next_seq += 1;
            let seq = s.next_seq;
            s.rows.insert(job.id.clone(), Row { job: job.clone(), seq, run_after: None });
            Ok(())
        })
    }

    async fn mark_running(&self, id: &str, attempt: u32, at: DateTime<Utc>) -> StoreResult<bool> {
        Ok(self.write(format!("mark_running {id}@{attempt}"), |s| claim(s, id, attempt, at)))
    }

    async fn save_progress(&self, id: &str, attempt: u32, progress: &Progress) -> StoreResult<()> {
        self.write(format!("progress {id}@{attempt}"), |s| {
            if let Some(r) =
                s.rows.get_mut(id).filter(|r| r.job.status == JobStatus::Running && r.job.attempt == attempt)
            {
                r.job.progress = progress.clone();
            }
        });
        Ok(())
    }

    async fn finish(&self, id: &str, attempt: u32, f: &Finish) -> StoreResult<bool> {
        self.pass_gate().await;
        Ok(self.write(format!("finish {id}@{attempt}"), |s| finish(s, id, attempt, f)))
    }

    async fn finish_and_claim(
        &self,
        id: &str,
        attempt: u32,
        f: &Finish,
        next: Option<Claim<'_>>,
    ) -> StoreResult<(bool, Option<bool>)> {
        self.pass_gate().await;
        let call = match &next {
            Some(c) => format!("finish {id}@{attempt} -> {}@{}", c.id, c.attempt),
            None => format!("finish {id}@{attempt}"),
        };
        Ok(self.write(call, |s| {
            let done = finish(s, id, attempt, f);
            (done, next.map(|c| claim(s, c.id, c.attempt, c.at)))
        }))
    }

    async fn requeue(&self, id: &str, attempt: u32, error: &JobFailure, delay: Duration) -> StoreResult<bool> {
        let run_after = Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        Ok(self.write(format!("requeue {id}@{attempt}"), |s| match s.rows.get_mut(id) {
            Some(r) if r.job.status == JobStatus::Running && r.job.attempt == attempt => {
                r.job.status = JobStatus::Queued;
                r.job.attempt += 1;
                r.job.error = Some(error.clone());
                r.job.started_at = None;
                r.run_after = Some(run_after);
                true
            }
            _ => false,
        }))
    }

    async fn cancel(&self, id: &str, at: DateTime<Utc>) -> StoreResult<Option<Job>> {
        Ok(self.write(format!("cancel {id}"), |s| {
            let r = s.rows.get_mut(id).filter(|r| !r.job.status.is_terminal())?;
            let before = r.job.clone();
            r.job.status = JobStatus::Cancelled;
            r.job.completed_at = Some(at);
            r.job.error =
                Some(JobFailure { message: "cancelled by request".into(), code: "CANCELLED".into(), retryable: false });
            Some(before)
        }))
    }

    async fn get(&self, id: &str) -> StoreResult<Option<Job>> {
        Ok(self.state().rows.get(id).map(|r| r.job.clone()))
    }

    async fn list(&self, filter: &JobFilter) -> StoreResult<JobPage> {
        let state = self.state();
        let mut rows: Vec<&Row> = state
            .rows
            .values()
            .filter(|r| filter.pipeline_id.as_ref().is_none_or(|p| *p == r.job.pipeline_id))
            .filter(|r| filter.statuses.is_empty() || filter.statuses.contains(&r.job.status))
            .collect();
        let total = rows.len() as u64;
        let key = |r: &Row| (r.job.created_at.timestamp_micros(), r.seq);
        rows.sort_by_key(|r| std::cmp::Reverse(key(r)));
        if let Some(after) = filter.after {
            rows.retain(|r| key(r) < (after.created_us, after.seq));
        }
        let page: Vec<&Row> = rows.into_iter().skip(filter.offset as usize).take(filter.limit as usize + 1).collect();
        let more = page.len() > filter.limit as usize;
        let jobs: Vec<&Row> = page.into_iter().take(filter.limit as usize).collect();
        let next = if more { jobs.last().map(|r| Cursor::new(&r.job.created_at, r.seq)) } else { None };
        Ok(JobPage { jobs: jobs.into_iter().map(|r| r.job.clone()).collect(), total, next })
    }

    async fn counts(&self) -> StoreResult<HashMap<String, PipelineCounts>> {
        let mut out: HashMap<String, PipelineCounts> = HashMap::new();
        for r in self.state().rows.values() {
            let c = out.entry(r.job.pipeline_id.clone()).or_default();
            *c.by_status.entry(r.job.status).or_default() += 1;
            if r.job.status.is_terminal() {
                c.last_run = c.last_run.max(r.job.completed_at);
            }
        }
        Ok(out)
    }

    async fn recover(&self) -> StoreResult<Vec<Recovered>> {
        Ok(self.write("recover".into(), |s| {
            for r in s.rows.values_mut().filter(|r| r.job.status == JobStatus::Running) {
                r.job.status = JobStatus::Queued;
                r.job.attempt += 1;
                r.job.started_at = None;
                r.run_after = None;
            }
            let mut queued: Vec<&Row> = s.rows.values().filter(|r| r.job.status == JobStatus::Queued).collect();
            queued.sort_by_key(|r| (r.job.created_at, r.seq));
            queued.into_iter().map(|r| Recovered { job: r.job.clone(), run_after: r.run_after }).collect()
        }))
    }

    async fn append_logs(&self, id: &str, entries: Vec<LogEntry>) -> StoreResult<()> {
        self.write(format!("logs {id}"), |s| s.logs.entry(id.to_string()).or_default().extend(entries));
        Ok(())
    }

    async fn logs(&self, id: &str) -> StoreResult<Vec<LogEntry>> {
        Ok(self.state().logs.get(id).cloned().unwrap_or_default())
    }

    async fn flush(&self) -> StoreResult<()> {
        Ok(())
    }

    async fn expired(
        &self,
        pipeline: &str,
        before: Option<DateTime<Utc>>,
        keep: Option<u32>,
        limit: u32,
    ) -> StoreResult<Vec<String>> {
        let s = self.state();
        let mut done: Vec<&Row> =
            s.rows.values().filter(|r| r.job.pipeline_id == pipeline && r.job.status.is_terminal()).collect();
        // Newest first, to find the ones `keep` spares.
        done.sort_by_key(|r| std::cmp::Reverse((r.job.completed_at, r.seq)));
        let kept = keep.map_or(usize::MAX, |k| k as usize);
        let mut out: Vec<&Row> = done
            .iter()
            .enumerate()
            .filter(|(i, r)| *i >= kept || before.is_some_and(|b| r.job.completed_at.is_some_and(|c| c < b)))
            .map(|(_, r)| *r)
            .collect();
        out.sort_by_key(|r| (r.job.completed_at, r.seq));
        Ok(out.into_iter().take(limit as usize).map(|r| r.job.id.clone()).collect())
    }

    async fn delete_terminal(&self, ids: &[String]) -> StoreResult<u64> {
        Ok(self.write(format!("delete {}", ids.join(",")), |s| {
            let mut n = 0;
            for id in ids {
                if s.rows.get(id).is_some_and(|r| r.job.status.is_terminal()) {
                    s.rows.remove(id);
                    s.logs.remove(id);
                    n += 1;
                }
            }
            n
        }))
    }
}
