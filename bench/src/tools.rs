//! Section 5: the duplicate-detection worker (sandboxed, through the real queue) against
//! `jscpd` 4 (Node) / 5 (native Rust engine) on the same checkout of a real code base (the
//! repomix rows are in repomix.rs).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alephauto::capabilities::git::GitSettings;
use alephauto::config::PipelineConfig;
use alephauto::events::EventKind;
use alephauto::queue::Queue;
use alephauto::queue::job::JobStatus;
use alephauto::sandbox::Sandbox;
use alephauto::sandbox::engine::EngineSettings;
use alephauto::store::JobStore;
use alephauto::store::sqlite::SqliteStore;
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::corpus;
use crate::instantiate::component;
use crate::queue::build_queue;
use crate::report::{Report, fmt_d, fmt_ratio_near, group, median};

const S: &str = "5. Real pipelines vs the Node tools (same checkout)";
const RUNS: usize = 3;

/// Runs one job to its end; returns (wall time trigger → completed, result).
pub(crate) async fn run_job(queue: &Queue, pipeline: &str, params: Value) -> Result<(Duration, Value)> {
    let mut rx = queue.events().subscribe();
    let started = Instant::now();
    let job = queue.trigger(pipeline, params).await?;
    loop {
        let e = tokio::time::timeout(Duration::from_secs(600), rx.recv()).await??;
        if e.job_id == job.id && matches!(e.kind, EventKind::Completed | EventKind::Failed | EventKind::Cancelled) {
            break;
        }
    }
    let took = started.elapsed();
    let done = queue.store().get(&job.id).await?.context("job vanished")?;
    if done.status != JobStatus::Completed {
        bail!("{pipeline} job failed: {:?}", done.error);
    }
    Ok((took, done.result.unwrap_or(Value::Null)))
}

fn timed(mut cmd: Command) -> Result<Duration> {
    let started = Instant::now();
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    let took = started.elapsed();
    if !out.status.success() {
        bail!("{cmd:?} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    Ok(took)
}

/// Lines covered by at least one occurrence, and the groups: (groups, duplicated lines).
fn union_lines<'a>(ranges: impl Iterator<Item = (&'a str, u64, u64)>) -> u64 {
    let mut per_file: BTreeMap<&str, HashSet<u64>> = BTreeMap::new();
    for (file, a, b) in ranges {
        per_file.entry(file).or_default().extend(a..=b);
    }
    per_file.values().map(|s| s.len() as u64).sum()
}

/// Runs section 5.
pub async fn run(report: &mut Report, node_modules: &Path) -> Result<()> {
    let source = corpus::rust()?;
    let dir = tempfile::tempdir()?;
    let corpus = corpus::copy_into(&source, &dir.path().join("corpus"))?;
    let (rs_files, rs_lines) = corpus::count_lines(&corpus, "rs")?;
    report.add(
        S,
        "corpus",
        format!("{} .rs files, {} lines", rs_files, group(rs_lines)),
        format!("{} (published crate source, copied to a temp folder)", source.display()),
    );

    let sandbox =
        Arc::new(Sandbox::new(&EngineSettings::default(), &dir.path().join("cache"), GitSettings::default())?);
    let store: Arc<dyn JobStore> = Arc::new(SqliteStore::open(&dir.path().join("tools.db"))?);
    let mut pipelines = Vec::new();
    for (id, stem) in [("duplicate-detection", "duplicate_detection")] {
        let mut p = PipelineConfig::new(component(stem));
        p.roots = vec![corpus.parent().unwrap_or(&corpus).to_path_buf()];
        pipelines.push((id, p));
    }
    let (queue, _) = build_queue(sandbox, store, pipelines, &dir.path().join("outputs"), 4096);

    // duplicate-detection vs jscpd.
    queue.registry().get_worker("duplicate-detection").await?;
    let mut ours = Vec::new();
    let mut result = Value::Null;
    for _ in 0..RUNS {
        let (t, r) = run_job(
            &queue,
            "duplicate-detection",
            json!({"repositoryPath": corpus, "minLines": 6, "maxResults": 1000}),
        )
        .await?;
        ours.push(t);
        result = r;
    }
    let ours = median(&ours);
    let stats = &result["stats"];
    let dup_lines = union_lines(result["duplicates"].as_array().into_iter().flatten().flat_map(|d| {
        d["occurrences"].as_array().into_iter().flatten().map(|o| {
            (o["file"].as_str().unwrap_or(""), o["startLine"].as_u64().unwrap_or(0), o["endLine"].as_u64().unwrap_or(0))
        })
    }));
    let significant = stats["significantLines"].as_u64().unwrap_or(0);
    report.add(
        S,
        "duplicate-detection worker output",
        format!(
            "{} groups, {} duplicated lines ({:.2}%)",
            stats["duplicateGroups"],
            group(dup_lines),
            100.0 * dup_lines as f64 / rs_lines.max(1) as f64
        ),
        format!(
            "{} files, {} significant lines scanned; minLines 6; duplicated = lines inside any reported occurrence, % of the corpus's .rs lines{}",
            stats["filesScanned"],
            group(significant),
            if stats["truncated"].as_bool() == Some(true) { " (report truncated at 1000 groups)" } else { "" }
        ),
    );
    report.add(
        S,
        "duplicate-detection worker wall time",
        fmt_d(ours),
        format!("median of {RUNS}, trigger → job:completed, sandboxed"),
    );

    let engines = [
        ("jscpd 4.3.0 (Node)", vec![node_modules.join("jscpd/bin/jscpd")], true),
        ("jscpd 5.3.3 (native Rust engine)", vec![node_modules.join("jscpd-linux-x64-gnu/bin/jscpd")], false),
    ];
    for (label, argv, via_node) in engines {
        let exe = &argv[0];
        if !exe.exists() {
            report.add(S, label.to_string(), "not installed", format!("{} missing", exe.display()));
            continue;
        }
        let out = dir.path().join(format!("jscpd-{}", if via_node { 4 } else { 5 }));
        let mut times = Vec::new();
        for _ in 0..RUNS {
            let _ = std::fs::remove_dir_all(&out);
            let mut cmd = if via_node {
                let mut c = Command::new("node");
                c.arg(exe);
                c
            } else {
                Command::new(exe)
            };
            cmd.args(["--min-lines", "6", "--reporters", "json", "--silent", "--output"]).arg(&out).arg(&corpus);
            times.push(timed(cmd)?);
        }
        let theirs = median(&times);
        let rep: Value = serde_json::from_str(&std::fs::read_to_string(out.join("jscpd-report.json"))?)?;
        let total = &rep["statistics"]["total"];
        let speedup = theirs.as_secs_f64() / ours.as_secs_f64();
        let line = format!("{} ({} vs {})", fmt_ratio_near(speedup, 1.0, 2), fmt_d(ours), fmt_d(theirs));
        let note = format!(
            "median of {RUNS}, process wall time; jscpd found {} clones, {} duplicated lines ({:.2}%) in {} files / {} lines",
            total["clones"],
            total["duplicatedLines"],
            total["percentage"].as_f64().unwrap_or(0.0),
            total["sources"],
            total["lines"]
        );
        if via_node {
            report.add(S, format!("duplicate-detection vs {label}: speed-up"), line, note);
        } else {
            report.target(
                S,
                format!("duplicate-detection vs {label}: speed-up"),
                line,
                "> 1× (faster, while sandboxed)",
                speedup > 1.0,
                note,
            );
        }
    }
    queue.shutdown(Duration::from_secs(10)).await;
    Ok(())
}
