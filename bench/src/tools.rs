//! Section 5: the repomix worker (sandboxed, through the real queue) against the `repomix`
//! CLI on the same checkout of a real code base (duplicate-detection vs jscpd: `dupes`).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alephauto::config::PipelineConfig;
use alephauto::domain::JobStatus;
use alephauto::events::EventKind;
use alephauto::queue::Queue;
use alephauto::sandbox::Sandbox;
use alephauto::sandbox::capabilities::git::GitSettings;
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
async fn run_job(queue: &Queue, pipeline: &str, params: Value) -> Result<(Duration, Value)> {
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
    let mut p = PipelineConfig::new(component("repomix"));
    p.roots = vec![corpus.parent().unwrap_or(&corpus).to_path_buf()];
    let (queue, _) = build_queue(sandbox, store, vec![("repomix", p)], &dir.path().join("outputs"), 4096);
    let bin = node_modules.join(".bin");

    // repomix.
    queue.registry().get_worker("repomix").await?;
    let mut ours = Vec::new();
    let mut result = Value::Null;
    for _ in 0..RUNS {
        let (t, r) = run_job(&queue, "repomix", json!({"sourceDir": corpus, "style": "xml"})).await?;
        ours.push(t);
        result = r;
    }
    let ours = median(&ours);
    let our_out = result["outputFile"].as_str().unwrap_or_default().to_string();
    let our_files = std::fs::read_to_string(&our_out).map(|t| t.matches("<file path=").count()).unwrap_or(0);
    let mut theirs = Vec::new();
    let cli_out = dir.path().join("repomix-cli.xml");
    for _ in 0..RUNS {
        let mut cmd = Command::new(bin.join("repomix"));
        cmd.arg(&corpus).arg("-o").arg(&cli_out).args(["--style", "xml", "--quiet"]);
        theirs.push(timed(cmd)?);
    }
    let theirs = median(&theirs);
    let cli_text = std::fs::read_to_string(&cli_out).unwrap_or_default();
    let cli_files = cli_text.matches("<file path=").count();
    let speedup = theirs.as_secs_f64() / ours.as_secs_f64();
    report.target(
        S,
        "repomix worker vs `repomix` 1.14.1 CLI (wall time)",
        format!("{} faster ({} vs {})", fmt_ratio_near(speedup, 5.0, 1), fmt_d(ours), fmt_d(theirs)),
        "≥ 5×",
        speedup >= 5.0,
        format!(
            "median of {RUNS}; worker = trigger → job:completed through the queue (warm worker, sandboxed, durable); CLI = process wall time, defaults (token count + secretlint check on)"
        ),
    );
    report.add(
        S,
        "repomix output: files packed worker / CLI",
        format!("{our_files} / {cli_files}"),
        format!(
            "output {} KiB / {} KiB (xml)",
            std::fs::metadata(&our_out).map(|m| m.len() / 1024).unwrap_or(0),
            cli_text.len() / 1024
        ),
    );

    queue.shutdown(Duration::from_secs(10)).await;
    Ok(())
}
