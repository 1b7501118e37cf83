//! Section 7: cluster mode on PostgreSQL. The enqueue rate through the cluster trigger
//! path, and the burn-down of a durable backlog of wasm no-op jobs by one node, then by
//! two nodes (two `Queue`s, each with its own Sandbox, Registry and `PostgresStore`,
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

use crate::queue::{build_queue, noop_pipeline, trigger_all};
use crate::report::{Report, fmt_rate, group};

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

/// Runs section 7 with `n` jobs per round and `conc` cluster-wide slots.
pub async fn run(report: &mut Report, n: usize, conc: usize, dir: &Path) -> Result<()> {
    let base = base_url();
    let shown = base.split('@').next_back().unwrap_or(&base).to_string();
    let admin = match tokio::time::timeout(Duration::from_secs(5), tokio_postgres::connect(&base, NoTls)).await {
        Ok(Ok((client, connection))) => {
            tokio::spawn(connection);
            client
        }
        Ok(Err(e)) => return skip(report, &shown, &e.to_string()),
        Err(_) => return skip(report, &shown, "connect timed out after 5 s"),
    };
    let version: String = admin.query_one("SHOW server_version", &[]).await?.get(0);
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let mut rounds = Vec::new();
    for nodes in [1usize, 2] {
        let schema = format!("alephauto_bench_{}_{}_{nodes}", std::process::id(), stamp % 1_000_000_000);
        eprintln!("  cluster round: {nodes} node(s), {n} jobs, schema {schema}");
        let result = round(&admin, &base, &schema, nodes, n, conc, dir).await;
        let dropped = admin.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).await;
        let r = result.with_context(|| format!("cluster round with {nodes} node(s)"))?;
        dropped.with_context(|| format!("dropping schema {schema}"))?;
        rounds.push(r);
    }
    let [one, two] = &rounds[..] else { bail!("expected two rounds") };
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    report.add(
        S,
        "enqueue only (Queue::trigger, cluster path)",
        fmt_rate(rate(one.enqueue), "jobs/s"),
        format!(
            "{} jobs from {conc} tasks on one node, lane closed (max_concurrent 0): validate → count queued → INSERT → NOTIFY job:created; \
             the second round's enqueue: {}; PostgreSQL {version} at {shown}, fresh schema per round",
            group(n as u64),
            fmt_rate(rate(two.enqueue), "jobs/s")
        ),
    );
    report.add(
        S,
        "burn-down, wasm no-op worker, one node",
        fmt_rate(rate(one.burn), "jobs/s"),
        format!(
            "{} queued jobs, max_concurrent {conc} (max running seen {}); claim (advisory lock + FOR UPDATE SKIP LOCKED) → instantiate + run → finish, events over NOTIFY; lease 30 s, poll 500 ms as `serve` wires it",
            group(n as u64),
            one.max_running
        ),
    );
    let shares = two.per_node.iter().map(|c| group(*c as u64)).collect::<Vec<_>>().join(" / ");
    report.add(
        S,
        "burn-down, wasm no-op worker, two nodes",
        fmt_rate(rate(two.burn), "jobs/s"),
        format!(
            "two Queues in one process (own Sandbox, Registry, PostgresStore pool) sharing the schema; cluster-wide max_concurrent {conc} (max running seen {}); jobs run per node {shares}; same 2 cores",
            two.max_running
        ),
    );
    report.add(
        S,
        "two nodes ÷ one node (burn-down rate)",
        format!("{:.2}×", one.burn.as_secs_f64() / two.burn.as_secs_f64()),
        "the second node brings no extra CPU here (both share the 2 cores and the database); it measures claim contention, not scale-out",
    );
    Ok(())
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

async fn round(
    admin: &tokio_postgres::Client,
    base: &str,
    schema: &str,
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
    let (paused, _) = build_queue(sandbox.clone(), stores[0].clone(), vec![("noop", noop_pipeline(0))], &outputs, 4096);
    paused.enable_cluster(stores[0].clone(), settings("bench-enqueue"));
    paused.registry().get_worker("noop").await?;
    let enqueue = trigger_all(&paused, n, conc).await?;
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
            build_queue(sandbox, store.clone(), vec![("noop", noop_pipeline(conc))], &outputs, n * 2 + 4096);
        queue.registry().get_worker("noop").await?;
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
    anyhow::ensure!(failed == 0, "{failed} no-op jobs failed");
    let completed: i64 =
        admin.query_one(&format!("SELECT count(*) FROM {table} WHERE status = 'completed'"), &[]).await?.get(0);
    anyhow::ensure!(completed as usize == n, "the table holds {completed} completed jobs, expected {n}");
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
