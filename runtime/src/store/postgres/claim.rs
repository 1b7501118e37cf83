//! Claims and the rest of the cluster's side of the PostgreSQL store: leases, rescue, pruning,
//! leadership, queue depth and events.
//!
//! **Invariant:** a pipeline's cap holds across the cluster. The claim statement locks the
//! pipelines' rows of `pipeline_counts` (in pipeline order) before it picks jobs; a claimer that
//! waited for such a row reads its newest version (PostgreSQL re-reads a row it had to wait
//! for), and every change of a job's status updates that row through the `jobs_counts_*`
//! triggers in the same transaction. So the running count a claim reads is exact while it
//! holds the lock, and it takes at most `cap - running` jobs.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::broadcast;

use super::{JOB_COLUMNS, MAX_NOTIFY, PostgresStore, backend, to_job};
use crate::domain::Job;
use crate::events::JobEvent;
use crate::store::{ClaimRequest, ClusterNote, ClusterStore, StoreResult};

/// The claim: one statement, one round trip, whatever the number of pipelines and jobs.
static CLAIM: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let returning = JOB_COLUMNS.split(", ").map(|c| format!("j.{c}")).collect::<Vec<_>>().join(", ");
    format!(
        "WITH req AS (SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS r(pipeline_id, lim, cap)),
         slots AS (
            SELECT c.pipeline_id, GREATEST(0, LEAST(r.lim, r.cap - c.running)) AS take
            FROM pipeline_counts c JOIN req r ON r.pipeline_id = c.pipeline_id
            ORDER BY c.pipeline_id
            FOR UPDATE OF c),
         picked AS (
            SELECT p.id FROM slots s CROSS JOIN LATERAL (
                SELECT q.id FROM jobs q
                WHERE q.pipeline_id = s.pipeline_id AND q.status = 'queued' AND q.run_after <= now()
                ORDER BY q.created_at, q.seq
                LIMIT s.take
                FOR UPDATE OF q SKIP LOCKED) p)
         UPDATE jobs j SET status = 'running', node_id = $4, started_at = clock_timestamp(),
            lease_until = now() + make_interval(secs => $5), progress_percent = 0, progress_message = ''
         FROM picked WHERE j.id = picked.id
         RETURNING {returning}"
    )
});

/// Whether PostgreSQL gave up on a statement it may run again (a deadlock victim).
fn retryable(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    matches!(e.code(), Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE)
}

#[async_trait]
impl ClusterStore for PostgresStore {
    async fn claim(&self, pipeline: &str, node: &str, limit: u32, cap: u32, lease: Duration) -> StoreResult<Vec<Job>> {
        let request = ClaimRequest { pipeline: pipeline.to_string(), limit, cap };
        self.claim_many(std::slice::from_ref(&request), node, lease).await
    }

    async fn claim_many(&self, requests: &[ClaimRequest], node: &str, lease: Duration) -> StoreResult<Vec<Job>> {
        let requests: Vec<&ClaimRequest> = requests.iter().filter(|r| r.limit > 0 && r.cap > 0).collect();
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let pipelines: Vec<&str> = requests.iter().map(|r| r.pipeline.as_str()).collect();
        let limits: Vec<i64> = requests.iter().map(|r| i64::from(r.limit)).collect();
        let caps: Vec<i64> = requests.iter().map(|r| i64::from(r.cap)).collect();
        let client = self.client().await?;
        let stmt = client.prepare_cached(&CLAIM).await.map_err(backend)?;
        let mut tries = 0;
        let rows = loop {
            match client.query(&stmt, &[&pipelines, &limits, &caps, &node, &lease.as_secs_f64()]).await {
                Ok(rows) => break rows,
                Err(e) if retryable(&e) && tries < 3 => tries += 1,
                Err(e) => return Err(backend(e)),
            }
        };
        let mut jobs = rows.iter().map(to_job).collect::<StoreResult<Vec<_>>>()?;
        jobs.sort_by_key(|a| a.created_at);
        Ok(jobs)
    }

    async fn heartbeat(&self, node: &str, running: &[String], lease: Duration) -> StoreResult<Vec<String>> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE jobs SET lease_until = now() + make_interval(secs => $2) WHERE node_id = $1 AND status = 'running'",
                &[&node, &lease.as_secs_f64()],
            )
            .await
            .map_err(backend)?;
        if running.is_empty() {
            return Ok(Vec::new());
        }
        let rows = client
            .query("SELECT id FROM jobs WHERE id = ANY($1) AND status = 'cancelled'", &[&running])
            .await
            .map_err(backend)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn rescue_expired(&self) -> StoreResult<u64> {
        let client = self.client().await?;
        // One statement: the re-queue and one wake-up per pipeline, delivered at its commit.
        let rows = client
            .query(
                "WITH rescued AS (
                    UPDATE jobs SET status = 'queued', attempt = attempt + 1, node_id = NULL, lease_until = NULL,
                        started_at = NULL, run_after = now()
                    WHERE status = 'running' AND lease_until < now() RETURNING pipeline_id)
                 SELECT r.n FROM (SELECT pipeline_id, count(*) AS n FROM rescued GROUP BY pipeline_id) r
                 CROSS JOIN LATERAL pg_notify($1, r.pipeline_id) AS w",
                &[&self.scope.wake],
            )
            .await
            .map_err(backend)?;
        let n: i64 = rows.iter().map(|r| r.get::<_, i64>(0)).sum();
        if n > 0 {
            tracing::warn!(jobs = n, "rescued jobs whose node stopped renewing its lease");
        }
        Ok(n as u64)
    }

    async fn prune(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let client = self.client().await?;
        let n = client
            .execute(
                "WITH gone AS (DELETE FROM jobs WHERE status IN ('completed','failed','cancelled') AND completed_at < $1 RETURNING id)
                 DELETE FROM job_logs WHERE job_id IN (SELECT id FROM gone)",
                &[&before],
            )
            .await
            .map_err(backend)?;
        Ok(n)
    }

    async fn try_lead(&self) -> StoreResult<bool> {
        if self.leader.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(true);
        }
        // A session-level lock on the long-lived LISTEN session: it is released when that
        // session ends, so a dead node's leadership passes on by itself.
        let session = self.session.lock().await;
        let got: bool = session
            .query_one("SELECT pg_try_advisory_lock($1)", &[&self.scope.leader_lock])
            .await
            .map_err(backend)?
            .get(0);
        self.leader.store(got, std::sync::atomic::Ordering::Release);
        Ok(got)
    }

    async fn queued_count(&self, pipeline: &str) -> StoreResult<u64> {
        // The trigger-kept count: a primary-key read, where counting rows would walk the backlog.
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT queued FROM pipeline_counts WHERE pipeline_id = $1")
            .await
            .map_err(backend)?;
        let n: Option<i64> = client.query_opt(&stmt, &[&pipeline]).await.map_err(backend)?.map(|r| r.get(0));
        Ok(n.unwrap_or(0).max(0) as u64)
    }

    async fn broadcast(&self, event: &JobEvent) -> StoreResult<()> {
        let payload = notify_payload(event)?;
        // Group-committed, not waited for: the writer sends it after what this node wrote before.
        self.writer.event(payload, event).await
    }

    fn notifies_created(&self) -> bool {
        true
    }

    fn notes(&self) -> broadcast::Receiver<ClusterNote> {
        self.notes.subscribe()
    }
}

/// An event as a NOTIFY payload; one too big for NOTIFY goes without its large fields
/// (clients fetch the job).
pub(super) fn notify_payload(event: &JobEvent) -> StoreResult<String> {
    let payload = serde_json::to_string(event).map_err(backend)?;
    if payload.len() <= MAX_NOTIFY {
        return Ok(payload);
    }
    let mut slim = event.clone();
    if let Value::Object(map) = &mut slim.payload {
        map.retain(|k, _| matches!(k.as_str(), "status" | "attempt" | "progress" | "completedAt" | "startedAt"));
        map.insert("truncated".into(), Value::Bool(true));
    }
    serde_json::to_string(&slim).map_err(backend)
}
