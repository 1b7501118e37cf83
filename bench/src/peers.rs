//! Section 3: the same no-op burn-down through effectum 0.7 (as shipped and with WAL
//! forced) and apalis-sqlite 1.0, each in its own binary (`bench/peers/*`). apalis is a
//! workspace member (sqlx 0.9 accepts the runtime's libsqlite3-sys 0.35); effectum pins
//! rusqlite 0.31, whose libsqlite3-sys cannot link into that graph, so it has its own.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::queue::QueueFigures;
use crate::report::{Report, fmt_rate, fmt_ratio_near, group, median};

const S: &str = "3. Peer queues (same machine, same run)";

/// Where `scripts/bench.sh` builds the peer binaries (effectum in its own target folder).
pub fn peer_bin(name: &str) -> PathBuf {
    let var = format!("BENCH_PEER_{}", name.to_uppercase());
    let dir = if name == "effectum" { "target/bench-peers/release" } else { "target/release" };
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::repo_root().join(dir).join(format!("bench-peer-{name}")))
}

fn run_peer(bin: &Path, dir: &Path, n: usize, conc: usize, extra: &[&str]) -> Result<Value> {
    let db = dir.join(format!("{}-{}.db", bin.file_name().unwrap_or_default().to_string_lossy(), extra.join("-")));
    let out = Command::new(bin)
        .arg(&db)
        .arg(n.to_string())
        .arg(conc.to_string())
        .args(extra)
        .env("RUST_LOG", "warn")
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    if !out.status.success() {
        bail!("{} failed: {}", bin.display(), String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().rev().find(|l| l.starts_with('{')).context("peer printed no result")?;
    Ok(serde_json::from_str(line)?)
}

fn rate(v: &Value, key: &str) -> f64 {
    v["n"].as_f64().unwrap_or(0.0) / v[key].as_f64().unwrap_or(f64::INFINITY)
}

/// Runs section 3.
pub fn run(report: &mut Report, ours: QueueFigures, n_effectum: usize, n_apalis: usize, conc: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let effectum = peer_bin("effectum");
    let apalis = peer_bin("apalis");
    for bin in [&effectum, &apalis] {
        if !bin.exists() {
            bail!("{} is missing: build it with scripts/bench.sh (it builds bench/peers/*)", bin.display());
        }
    }
    let mut peers: Vec<(String, f64)> = Vec::new();
    let mut peer_enqueue: Vec<(String, f64)> = Vec::new();
    // The fastest peer (WAL forced) is what the 2x target compares against, so it gets the
    // same treatment as our burn-down: the median of 3 rounds. As shipped it is ~5x slower,
    // so it runs half the jobs (still seconds of steady burn-down).
    for (label, extra, rounds, n) in [
        ("effectum 0.7, as shipped", &[][..], 1, n_effectum / 2),
        ("effectum 0.7, WAL forced", &["wal"][..], 3, n_effectum),
    ] {
        let mut burns = Vec::new();
        let mut enqueues = Vec::new();
        let mut mode = String::new();
        for _ in 0..rounds {
            let v = run_peer(&effectum, dir.path(), n, conc, extra)?;
            burns.push(rate(&v, "burn_s"));
            enqueues.push(rate(&v, "enqueue_s"));
            mode = v["journal_mode"].as_str().unwrap_or("?").to_string();
        }
        let (burn, enq) = (median(&burns), median(&enqueues));
        let spread = if rounds > 1 {
            let each: Vec<String> = burns.iter().map(|r| group(*r as u64)).collect();
            format!("; median of {rounds} rounds (burn-down {} jobs/s)", each.join(", "))
        } else {
            String::new()
        };
        report.add(
            S,
            format!("{label}: burn-down / enqueue"),
            format!("{} / {}", fmt_rate(burn, "jobs/s"), fmt_rate(enq, "jobs/s")),
            format!("{} jobs, max_concurrency {conc}, journal_mode={mode}{spread}", group(n as u64)),
        );
        peers.push((label.to_string(), burn));
        peer_enqueue.push((label.to_string(), enq));
    }
    let v = run_peer(&apalis, dir.path(), n_apalis, conc, &[])?;
    let (burn, enq) = (rate(&v, "burn_s"), rate(&v, "enqueue_s"));
    report.add(
        S,
        "apalis-sqlite 1.0: burn-down / enqueue",
        format!("{} / {}", fmt_rate(burn, "jobs/s"), fmt_rate(enq, "jobs/s")),
        format!(
            "{} jobs only (it runs ~250 jobs/s), .concurrency({conc}), default polling, WAL",
            group(n_apalis as u64)
        ),
    );
    peers.push(("apalis-sqlite 1.0".into(), burn));
    peer_enqueue.push(("apalis-sqlite 1.0".into(), enq));

    let (best_name, best) = peers.iter().cloned().fold((String::new(), 0.0), |a, b| if b.1 > a.1 { b } else { a });
    for (name, r) in &peers {
        report.add(S, format!("AlephAuto burn-down ÷ {name}"), format!("{:.2}×", ours.burn_rate / r), "");
    }
    for (name, r) in &peer_enqueue {
        report.add(S, format!("AlephAuto enqueue ÷ {name} enqueue"), format!("{:.2}×", ours.enqueue_rate / r), "");
    }
    let ratio = ours.burn_rate / best;
    report.target(
        S,
        format!("AlephAuto vs fastest peer ({best_name})"),
        fmt_ratio_near(ratio, 2.0, 2),
        "≥ 2×",
        ratio >= 2.0,
        format!("AlephAuto {} through the wasm worker", fmt_rate(ours.burn_rate, "jobs/s")),
    );
    Ok(())
}
