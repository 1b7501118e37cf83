//! Section 7: cluster mode on PostgreSQL. The enqueue rate through the cluster trigger
//! path, and the burn-down of a durable backlog of wasm no-op jobs by one node, then by
//! two nodes, then the same with jobs that wait 20 ms on the guest's clock under a high cap
//! (each comparison repeated, medians reported) (two `Queue`s, each with its own Sandbox, Registry and `PostgresStore`,
//! sharing one database; the pipeline's `max_concurrent` holds across the cluster).
//! Every round gets a fresh schema, dropped afterwards. When PostgreSQL is unreachable
//! the section prints a skip row.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use alephauto::events::EventKind;
use alephauto::queue::ClusterSettings;
use alephauto::sandbox::Sandbox;
use alephauto::sandbox::capabilities::git::GitSettings;
use alephauto::sandbox::engine::EngineSettings;
use alephauto::store::postgres::PostgresStore;
use anyhow::{Context, Result, bail};
use tokio::sync::broadcast::error::RecvError;
use tokio_postgres::NoTls;

use alephauto::config::PipelineConfig;
use serde_json::{Value, json};

use crate::instantiate::component;
use crate::pg_peers::Ours;
use crate::queue::{build_queue, noop_pipeline, trigger_all_with};
use crate::report::{Report, fmt_rate, group, median};

const S: &str = "7. Cluster mode (PostgreSQL store)";

/// The server the section uses: `ALEPHAUTO_BENCH_PG`, else the tests' `ALEPHAUTO_TEST_PG`,
/// else the local default.
pub fn base_url() -> String {
    std::env::var("ALEPHAUTO_BENCH_PG")
        .or_else(|_| std::env::var("ALEPHAUTO_TEST_PG"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// What one round measured.
struct Round {
    enqueue: Duration,
    burn: Duration,
    max_running: u64,
    /// Jobs run per node, in node order.
    per_node: Vec<i64>,
}

/// The work a round burns down: a pipeline (its id is the component's) and the jobs' parameters.
#[derive(Clone, Copy)]
struct Work {
    /// Pipeline id and component stem.
    pipeline: &'static str,
    /// How long each job waits on the guest's WASI clock (0: the no-op worker).
    wait_ms: u64,
}

impl Work {
    fn config(&self, max_concurrent: usize) -> PipelineConfig {
        if self.wait_ms == 0 {
            return noop_pipeline(max_concurrent);
        }
        let mut p = PipelineConfig::new(component("fixture_echo"));
        p.max_concurrent = max_concurrent;
        p.max_queued = usize::MAX / 2;
        p
    }

    fn params(&self) -> Value {
        if self.wait_ms == 0 { json!({}) } else { json!({"sleepMs": self.wait_ms}) }
    }
}

const NOOP: Work = Work { pipeline: "noop", wait_ms: 0 };
const WAIT: Work = Work { pipeline: "echo", wait_ms: 20 };

/// Section 7's sizes.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// No-op jobs per round.
    pub n: usize,
    /// Cluster-wide slots for the no-op rounds, and enqueueing tasks.
    pub conc: usize,
    /// Waiting jobs per round.
    pub n_wait: usize,
    /// Cluster-wide slots for the waiting rounds.
    pub wait_cap: usize,
    /// Repetitions of each comparison (medians reported).
    pub reps: usize,
}

/// Runs section 7; returns the one-node no-op figures (None when PostgreSQL is unreachable).
pub async fn run(report: &mut Report, sizes: Sizes, dir: &Path) -> Result<Option<Ours>> {
    let Sizes { n, conc, n_wait, wait_cap, reps } = sizes;
    let base = base_url();
    let shown = base.split('@').next_back().unwrap_or(&base).to_string();
    let admin = match tokio::time::timeout(Duration::from_secs(5), tokio_postgres::connect(&base, NoTls)).await {
        Ok(Ok((client, connection))) => {
            tokio::spawn(connection);
            client
        }
        Ok(Err(e)) => return skip(report, &shown, &e.to_string()).map(|()| None),
        Err(_) => return skip(report, &shown, "connect timed out after 5 s").map(|()| None),
    };
    let version: String = admin.query_one("SHOW server_version", &[]).await?.get(0);
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    // Rounds alternate one node / two nodes, `reps` times, so drift in the machine's load
    // hits both alike.
    let mut noop: [Vec<Round>; 2] = [Vec::new(), Vec::new()];
    let mut wait: [Vec<Round>; 2] = [Vec::new(), Vec::new()];
    let mut k = 0;
    for (work, jobs, cap, out) in [(NOOP, n, conc, &mut noop), (WAIT, n_wait, wait_cap, &mut wait)] {
        for _ in 0..reps {
            for nodes in [1usize, 2] {
                k += 1;
                let schema = format!("alephauto_bench_{}_{}_{k}", std::process::id(), stamp % 1_000_000_000);
                eprintln!("  cluster round: {} ×{jobs}, {nodes} node(s), cap {cap}, schema {schema}", work.pipeline);
                let result = round(&admin, &base, &schema, work, nodes, jobs, cap, dir).await;
                let dropped = admin.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).await;
                let r = result.with_context(|| format!("cluster round with {nodes} node(s)"))?;
                dropped.with_context(|| format!("dropping schema {schema}"))?;
                out[nodes - 1].push(r);
            }
        }
    }
    let rates = |rounds: &[Round], jobs: usize, f: fn(&Round) -> Duration| -> Vec<f64> {
        rounds.iter().map(|r| jobs as f64 / f(r).as_secs_f64()).collect()
    };
    let runs = |v: &[f64]| v.iter().map(|r| group(r.round() as u64)).collect::<Vec<_>>().join(", ");
    let max_seen = |rounds: &[Round]| rounds.iter().map(|r| r.max_running).max().unwrap_or(0);
    let enq = rates(&noop[0], n, |r| r.enqueue);
    report.add(
        S,
        "enqueue only (Queue::trigger, cluster path)",
        fmt_rate(median(&enq), "jobs/s"),
        format!(
            "median of {reps} rounds ({}); {} jobs from {conc} tasks on one node, lane closed (max_concurrent 0): validate → \
             queued count (trigger-kept row) → group-committed multi-row INSERT + NOTIFY wake → NOTIFY job:created; \
             PostgreSQL {version} at {shown}, fresh schema per round",
            runs(&enq),
            group(n as u64)
        ),
    );
    let one = rates(&noop[0], n, |r| r.burn);
    let two = rates(&noop[1], n, |r| r.burn);
    report.add(
        S,
        "burn-down, wasm no-op worker, one node",
        fmt_rate(median(&one), "jobs/s"),
        format!(
            "median of {reps} rounds ({}); {} queued jobs, max_concurrent {conc} (max running seen {}); one-statement claim \
             (cap counted from the locked count row, FOR UPDATE SKIP LOCKED) → instantiate + run → group-committed \
             outcome + events (NOTIFY); lease 30 s, poll 500 ms as `serve` wires it",
            runs(&one),
            group(n as u64),
            max_seen(&noop[0])
        ),
    );
    let shares = |rounds: &[Round]| {
        rounds
            .last()
            .map(|r| r.per_node.iter().map(|c| group(*c as u64)).collect::<Vec<_>>().join(" / "))
            .unwrap_or_default()
    };
    report.add(
        S,
        "burn-down, wasm no-op worker, two nodes",
        fmt_rate(median(&two), "jobs/s"),
        format!(
            "median of {reps} rounds ({}); two Queues in one process (own Sandbox, Registry, PostgresStore pool) sharing the \
             schema; cluster-wide max_concurrent {conc} (max running seen {}); jobs per node in the last round {}; same 2 cores",
            runs(&two),
            max_seen(&noop[1]),
            shares(&noop[1])
        ),
    );
    report.add(
        S,
        "two nodes ÷ one node, no-op (burn-down rate)",
        format!("{:.2}×", median(&two) / median(&one)),
        "the second node brings no extra CPU here (both share the 2 cores and the database); it measures claim contention, not scale-out",
    );
    let wone = rates(&wait[0], n_wait, |r| r.burn);
    let wtwo = rates(&wait[1], n_wait, |r| r.burn);
    report.add(
        S,
        format!("burn-down, {} ms waiting worker, one node", WAIT.wait_ms),
        fmt_rate(median(&wone), "jobs/s"),
        format!(
            "median of {reps} rounds ({}); {} jobs of the echo fixture sleeping {} ms on its WASI clock, cluster-wide cap {wait_cap} \
             (max running seen {}; ceiling cap ÷ wait = {} jobs/s)",
            runs(&wone),
            group(n_wait as u64),
            WAIT.wait_ms,
            max_seen(&wait[0]),
            group((wait_cap as u64 * 1000) / WAIT.wait_ms)
        ),
    );
    report.add(
        S,
        format!("burn-down, {} ms waiting worker, two nodes", WAIT.wait_ms),
        fmt_rate(median(&wtwo), "jobs/s"),
        format!(
            "median of {reps} rounds ({}); max running seen {} (cap {wait_cap}); jobs per node in the last round {}; each job \
             completed exactly once (checked per round)",
            runs(&wtwo),
            max_seen(&wait[1]),
            shares(&wait[1])
        ),
    );
    report.add(
        S,
        format!("two nodes ÷ one node, {} ms waiting worker", WAIT.wait_ms),
        format!("{:.2}×", median(&wtwo) / median(&wone)),
        "both nodes run in this process on the same 2 cores, and the cap is cluster-wide: a node that keeps the cap \
         full alone leaves the second nothing to add",
    );
    Ok(Some(Ours { burn: median(&one), enqueue: median(&enq) }))
}

fn skip(report: &mut Report, shown: &str, why: &str) -> Result<()> {
    let why = why.lines().next().unwrap_or(why).to_string();
    eprintln!("  (skipped: PostgreSQL at {shown} unreachable: {why})");
    report.add(
        S,
        "cluster mode on PostgreSQL",
        "skipped",
        format!("PostgreSQL at {shown} unreachable ({why}); set ALEPHAUTO_BENCH_PG"),
    );
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn round(
    admin: &tokio_postgres::Client,
    base: &str,
    schema: &str,
    work: Work,
    nodes: usize,
    n: usize,
    conc: usize,
    dir: &Path,
) -> Result<Round> {
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-csearch_path%3D{schema}");
    let settings = |node: &str| ClusterSettings {
        node_id: node.to_string(),
        lease: Duration::from_secs(30),
        poll: Duration::from_millis(500),
        retention: None,
    };
    let outputs = dir.join("outputs-cluster");
    let cache = dir.join("cache");
    let mut stores = Vec::with_capacity(nodes);
    for _ in 0..nodes {
        stores.push(Arc::new(PostgresStore::connect(&url).await.context("PostgresStore::connect")?));
    }

    // Enqueue: the cluster trigger path on a lane with no slots, so nothing is claimed yet.
    let sandbox = Arc::new(Sandbox::new(&EngineSettings::default(), &cache, GitSettings::default())?);
    let (paused, _) =
        build_queue(sandbox.clone(), stores[0].clone(), vec![(work.pipeline, work.config(0))], &outputs, 4096);
    paused.enable_cluster(stores[0].clone(), settings("bench-enqueue"));
    paused.registry().get_worker(work.pipeline).await?;
    let enqueue = trigger_all_with(&paused, work.pipeline, &work.params(), n, conc.min(64)).await?;
    paused.shutdown(Duration::from_secs(5)).await;

    // The nodes: each its own Sandbox and Registry (and PostgresStore pool), workers loaded.
    let mut queues = Vec::with_capacity(nodes);
    for (i, store) in stores.iter().enumerate() {
        let sandbox = if i == 0 {
            sandbox.clone()
        } else {
            Arc::new(Sandbox::new(&EngineSettings::default(), &cache, GitSettings::default())?)
        };
        let (queue, _) =
            build_queue(sandbox, store.clone(), vec![(work.pipeline, work.config(conc))], &outputs, n * 2 + 4096);
        queue.registry().get_worker(work.pipeline).await?;
        queues.push(queue);
    }
    // Node 1's bus receives every node's events (they travel over NOTIFY).
    let mut rx = queues[0].events().subscribe();
    let table = format!("\"{schema}\".jobs");
    let max_running = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (max_running, table) = (max_running.clone(), table.clone());
        let (sampler_client, connection) = tokio_postgres::connect(base, NoTls).await?;
        tokio::spawn(connection);
        tokio::spawn(async move {
            loop {
                if let Ok(row) = sampler_client
                    .query_one(&format!("SELECT count(*) FROM {table} WHERE status = 'running'"), &[])
                    .await
                {
                    max_running.fetch_max(row.get::<_, i64>(0) as u64, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    let started = Instant::now();
    for (i, (queue, store)) in queues.iter().zip(&stores).enumerate() {
        queue.enable_cluster(store.clone(), settings(&format!("bench-node-{}", i + 1)));
        queue.recover().await?;
    }
    let mut finished = std::collections::HashSet::with_capacity(n);
    let mut failed = 0usize;
    let deadline = started + Duration::from_secs(600);
    while finished.len() < n {
        anyhow::ensure!(Instant::now() < deadline, "cluster burn-down stalled at {} of {n}", finished.len());
        match tokio::time::timeout(Duration::from_secs(1), rx.recv()).await {
            Ok(Ok(e)) if matches!(e.kind, EventKind::Completed | EventKind::Failed) => {
                if e.kind == EventKind::Failed {
                    failed += 1;
                }
                finished.insert(e.job_id);
            }
            Ok(Ok(_)) => {}
            Ok(Err(RecvError::Closed)) => bail!("event bus closed"),
            // Events are hints in a cluster: when some were missed (or none came for a
            // second), ask the table.
            Ok(Err(RecvError::Lagged(_))) | Err(_) => {
                let done: i64 = admin
                    .query_one(&format!("SELECT count(*) FROM {table} WHERE status IN ('completed', 'failed')"), &[])
                    .await?
                    .get(0);
                if done as usize >= n {
                    break;
                }
            }
        }
    }
    let burn = started.elapsed();
    sampler.abort();
    for queue in &queues {
        queue.shutdown(Duration::from_secs(10)).await;
    }
    anyhow::ensure!(failed == 0, "{failed} {} jobs failed", work.pipeline);
    let completed: i64 =
        admin.query_one(&format!("SELECT count(*) FROM {table} WHERE status = 'completed'"), &[]).await?.get(0);
    anyhow::ensure!(completed as usize == n, "the table holds {completed} completed jobs, expected {n}");
    // Each job ran once: no attempt beyond the first (a second run would be a rescue or a retry).
    let rerun: i64 = admin.query_one(&format!("SELECT count(*) FROM {table} WHERE attempt <> 1"), &[]).await?.get(0);
    anyhow::ensure!(rerun == 0, "{rerun} jobs ran more than once");
    let mut per_node = Vec::with_capacity(nodes);
    for i in 0..nodes {
        let c: i64 = admin
            .query_one(&format!("SELECT count(*) FROM {table} WHERE node_id = $1"), &[&format!("bench-node-{}", i + 1)])
            .await?
            .get(0);
        per_node.push(c);
    }
    let max_running = max_running.load(Ordering::Relaxed);
    anyhow::ensure!(
        max_running as usize <= conc,
        "{max_running} jobs ran at once, above the cluster-wide max_concurrent {conc}"
    );
    Ok(Round { enqueue, burn, max_running, per_node })
}
