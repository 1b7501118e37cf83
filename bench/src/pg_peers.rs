//! Section 7's peers: graphile-worker and pg-boss (npm, `bench/peers/pg-node/peer.mjs`) on the
//! same PostgreSQL, in the same run, with the same job count and concurrency as AlephAuto's
//! one-node no-op rounds; each in a fresh schema, dropped afterwards. River is not here: it
//! needs Go ≥ 1.21 and the Debian registry's `golang-go` is 1.19 (BENCHMARKS.md).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use tokio_postgres::NoTls;

use crate::report::{Report, fmt_rate, group, median};

const S: &str = "7. Cluster mode (PostgreSQL store)";
const PEERS: [&str; 2] = ["graphile-worker", "pg-boss"];

/// AlephAuto's one-node figures the peers are compared with (medians, jobs/s).
#[derive(Debug, Clone, Copy)]
pub struct Ours {
    /// Burn-down of no-op jobs.
    pub burn: f64,
    /// Enqueue.
    pub enqueue: f64,
}

/// Runs every peer `reps` times with `n` jobs and `conc` workers; adds their rows.
pub async fn run(report: &mut Report, ours: Ours, n: usize, conc: usize, reps: usize) -> Result<()> {
    let dir = crate::repo_root().join("bench/peers/pg-node");
    if !dir.join("node_modules/graphile-worker").exists() || !dir.join("node_modules/pg-boss").exists() {
        bail!("{} has no node_modules: run scripts/bench.sh (it installs them)", dir.display());
    }
    let base = crate::cluster::base_url();
    let (admin, connection) =
        tokio::time::timeout(Duration::from_secs(5), tokio_postgres::connect(&base, NoTls)).await??;
    tokio::spawn(connection);
    let mut fastest: Option<(&str, f64)> = None;
    for peer in PEERS {
        let (mut burns, mut enqueues) = (Vec::new(), Vec::new());
        for rep in 0..reps {
            let schema = format!("alephauto_bench_peer_{}_{}_{rep}", peer.replace('-', "_"), std::process::id());
            eprintln!("  peer round: {peer}, {n} jobs, {conc} workers, schema {schema}");
            let result = tokio::task::spawn_blocking({
                let (dir, base, schema) = (dir.clone(), base.clone(), schema.clone());
                move || run_peer(&dir, peer, &base, &schema, n, conc)
            })
            .await?;
            admin
                .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                .await
                .with_context(|| format!("dropping schema {schema}"))?;
            let v = result?;
            let secs = |k: &str| v[k].as_f64().filter(|s| *s > 0.0).with_context(|| format!("{peer}: no {k} figure"));
            burns.push(n as f64 / secs("burn")?);
            enqueues.push(n as f64 / secs("enqueue")?);
        }
        let runs = |v: &[f64]| v.iter().map(|r| group(r.round() as u64)).collect::<Vec<_>>().join(", ");
        let burn = median(&burns);
        report.add(
            S,
            format!("peer: {peer}, burn-down, no-op"),
            fmt_rate(burn, "jobs/s"),
            format!(
                "median of {reps} rounds ({}); {} jobs, {conc} workers, one process, {}; its enqueue ({} from {conc} tasks, one by one): {} jobs/s",
                runs(&burns),
                group(n as u64),
                if peer == "graphile-worker" {
                    "localQueue on (size max(conc + 1, 500)), completeJobBatchDelay 0 (batched completions), LISTEN/NOTIFY"
                } else {
                    "batchSize 50 per fetch and completion, burstWhenBatchFull, polling 0.5 s"
                },
                group(n as u64),
                group(median(&enqueues).round() as u64)
            ),
        );
        if fastest.is_none_or(|(_, r)| burn > r) {
            fastest = Some((peer, burn));
        }
    }
    if let Some((peer, rate)) = fastest {
        report.add(
            S,
            "AlephAuto one node ÷ fastest peer (burn-down)",
            format!("{:.2}×", ours.burn / rate),
            format!(
                "{} jobs/s vs {peer}'s {} jobs/s; AlephAuto runs each job in a fresh wasm instance, the peers call a JavaScript no-op; \
                 AlephAuto's enqueue {} jobs/s",
                group(ours.burn.round() as u64),
                group(rate.round() as u64),
                group(ours.enqueue.round() as u64)
            ),
        );
    }
    Ok(())
}

fn run_peer(dir: &Path, peer: &str, url: &str, schema: &str, n: usize, conc: usize) -> Result<Value> {
    let out = Command::new("node")
        .current_dir(dir)
        .arg("peer.mjs")
        .args([peer, url, schema, &n.to_string(), &conc.to_string()])
        .output()
        .with_context(|| format!("running node peer.mjs {peer}"))?;
    if !out.status.success() {
        bail!("{peer} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().rev().find(|l| l.starts_with('{')).with_context(|| format!("{peer} printed no result"))?;
    Ok(serde_json::from_str(line)?)
}
