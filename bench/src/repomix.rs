//! Section 5, repomix: the repomix worker (sandboxed, through the real queue) against the
//! `repomix` 1.14.1 CLI doing the same work on the same copy of each corpus: file selection,
//! secret check (secretlint, the CLI's default), o200k token counts (the CLI always counts), XML
//! output; then both with `compress` as a row of its own.
//!
//! The file selection must agree exactly (same files, same order); otherwise the section fails,
//! in `--smoke` too (on a small edge-case tree). The CLI's own token-count cache is turned off
//! (`REPOMIX_TOKEN_CACHE=0`): it would let repeated runs skip the counting the worker does.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alephauto::config::PipelineConfig;
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
use crate::tools::run_job;

const S: &str = "5. Real pipelines vs the Node tools (same checkout)";
const RUNS: usize = 3;

/// What one CLI run printed and wrote.
struct CliRun {
    took: Duration,
    files: Vec<String>,
    total_tokens: u64,
    /// Per file: tokens.
    tokens: BTreeMap<String, u64>,
    suspicious: Vec<String>,
    output_bytes: u64,
}

/// Paths of `<file path="...">` elements inside the `<files>` section of an XML pack, in order.
fn xml_files(text: &str) -> Vec<String> {
    let Some(files) = text.split("\n<files>\n").nth(1) else { return Vec::new() };
    files.split("<file path=\"").skip(1).filter_map(|rest| rest.split('"').next()).map(xml_unescape).collect()
}

fn xml_unescape(s: &str) -> String {
    s.replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

fn number(s: &str) -> Option<u64> {
    s.chars().filter(char::is_ascii_digit).collect::<String>().parse().ok()
}

/// Runs the CLI once on `dir`, writing `out`.
fn cli(bin: &Path, dir: &Path, out: &Path, compress: bool) -> Result<CliRun> {
    let mut cmd = Command::new(bin);
    cmd.arg(dir).arg("-o").arg(out).args(["--style", "xml", "--top-files-len", "100000"]);
    if compress {
        cmd.arg("--compress");
    }
    // Run from the corpus folder: the CLI orders files by git change counts when its working
    // directory is in a git repository (this checkout is one), which the corpus copy is not.
    cmd.current_dir(dir).env("REPOMIX_TOKEN_CACHE", "0").env("NO_COLOR", "1");
    let started = Instant::now();
    let output = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("{cmd:?} failed: {stdout}{}", String::from_utf8_lossy(&output.stderr));
    }
    let text = std::fs::read_to_string(out).with_context(|| format!("reading {}", out.display()))?;
    let mut tokens = BTreeMap::new();
    let mut suspicious = Vec::new();
    let mut total_tokens = 0;
    let mut in_security = false;
    for line in stdout.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("Total Tokens:") {
            total_tokens = number(v).unwrap_or(0);
        }
        if t.contains("Security Check") {
            in_security = true;
        }
        // Top files: "12. path/to/file (1,234 tokens, 5,678 chars, 0.1%)".
        if let Some((n, rest)) = t.split_once(". ")
            && n.chars().all(|c| c.is_ascii_digit())
            && !n.is_empty()
        {
            if in_security {
                suspicious.push(rest.trim().to_string());
            } else if let Some((path, stats)) = rest.rsplit_once(" (")
                && let Some(tok) = stats.split(" tokens").next().and_then(number)
            {
                tokens.insert(path.trim().to_string(), tok);
            }
        }
    }
    Ok(CliRun { took, files: xml_files(&text), total_tokens, tokens, suspicious, output_bytes: text.len() as u64 })
}

/// One worker run: (wall time, result, packed paths in order, output bytes).
async fn ours(queue: &Queue, dir: &Path, compress: bool) -> Result<(Duration, Value, Vec<String>, u64)> {
    let params = json!({"sourceDir": dir, "style": "xml", "topFilesLength": 10000, "compress": compress});
    let (took, result) = run_job(queue, "repomix", params).await?;
    let out = result["outputFile"].as_str().context("no outputFile")?;
    let text = std::fs::read_to_string(out).with_context(|| format!("reading {out}"))?;
    Ok((took, result, xml_files(&text), text.len() as u64))
}

/// The first difference between two ordered file lists, for the error message.
fn first_difference(ours: &[String], theirs: &[String]) -> String {
    let only_ours: Vec<&String> = ours.iter().filter(|p| !theirs.contains(p)).take(5).collect();
    let only_theirs: Vec<&String> = theirs.iter().filter(|p| !ours.contains(p)).take(5).collect();
    if only_ours.is_empty() && only_theirs.is_empty() {
        let at = ours.iter().zip(theirs).position(|(a, b)| a != b).unwrap_or(0);
        return format!("same files, order differs at #{at}: ours {:?}, CLI {:?}", ours.get(at), theirs.get(at));
    }
    format!("only ours: {only_ours:?}; only the CLI's: {only_theirs:?}")
}

fn queue_for(dir: &Path, root: &Path) -> Result<Queue> {
    let sandbox = Arc::new(Sandbox::new(&EngineSettings::default(), &dir.join("cache"), GitSettings::default())?);
    let store: Arc<dyn JobStore> = Arc::new(SqliteStore::open(&dir.join("repomix.db"))?);
    let mut p = PipelineConfig::new(component("repomix"));
    p.roots = vec![root.to_path_buf()];
    let (queue, _) = build_queue(sandbox, store, vec![("repomix", p)], &dir.join("outputs"), 4096);
    Ok(queue)
}

/// The TypeScript corpus: `BENCH_TS_CORPUS`, else zod's sources in the given `node_modules`.
fn ts_corpus(node_modules: &Path) -> Result<std::path::PathBuf> {
    if std::env::var_os("BENCH_TS_CORPUS").is_some() {
        corpus::typescript()
    } else {
        corpus::typescript_in(node_modules)
    }
}

/// Runs the comparison: both corpora (full), or the edge-case tree once (`smoke`).
pub async fn run(report: &mut Report, node_modules: &Path, smoke: bool) -> Result<()> {
    let bin = node_modules.join(".bin/repomix");
    // Absolute: the CLI runs from the corpus folder.
    let bin = std::fs::canonicalize(&bin).with_context(|| {
        format!("{} is missing: scripts/bench.sh installs it (npm install in bench/)", bin.display())
    })?;
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("corpus");
    std::fs::create_dir_all(&root)?;
    let queue = queue_for(dir.path(), &root)?;
    queue.registry().get_worker("repomix").await?;

    if smoke {
        let tree = corpus::smoke(&root.join("edge-cases"))?;
        let (_, result, files, _) = ours(&queue, &tree, false).await?;
        let theirs = cli(&bin, &tree, &dir.path().join("cli-smoke.xml"), false)?;
        report.add(
            S,
            "repomix files packed (edge-case tree): ours / CLI",
            format!("{} / {}", files.len(), theirs.files.len()),
            "ignore files, default patterns, binaries, hidden files, sort order",
        );
        if files != theirs.files {
            bail!(
                "repomix file selection differs from the CLI on the edge-case tree: {}",
                first_difference(&files, &theirs.files)
            );
        }
        if result["files"].as_u64() != Some(files.len() as u64) {
            bail!("result.files {} but {} files in the output", result["files"], files.len());
        }
        queue.shutdown(Duration::from_secs(10)).await;
        return Ok(());
    }

    let corpora = [
        ("Rust", corpus::RUST_CRATE.to_string(), corpus::rust()?, "rs"),
        (
            "TypeScript",
            format!("{} {} src/", corpus::TS_PACKAGE.0, corpus::TS_PACKAGE.1),
            ts_corpus(node_modules)?,
            "ts",
        ),
    ];
    for (lang, name, source, ext) in corpora {
        let copy = corpus::copy_into(&source, &root.join(lang.to_lowercase()))?;
        let (n_files, n_lines) = corpus::count_lines(&copy, ext)?;
        report.add(
            S,
            format!("{lang} corpus"),
            format!("{} .{ext} files, {} lines", n_files, group(n_lines)),
            format!("{name} ({}), copied to a temp folder", source.display()),
        );
        for compress in [false, true] {
            let mut our_times = Vec::new();
            let mut last = None;
            for _ in 0..RUNS {
                let run = ours(&queue, &copy, compress).await?;
                our_times.push(run.0);
                last = Some(run);
            }
            let (_, result, files, our_bytes) = last.context("no run")?;
            let out = dir.path().join(format!("cli-{}-{compress}.xml", lang.to_lowercase()));
            let mut cli_times = Vec::new();
            let mut cli_last = None;
            for _ in 0..RUNS {
                let run = cli(&bin, &copy, &out, compress)?;
                cli_times.push(run.took);
                cli_last = Some(run);
            }
            let theirs = cli_last.context("no CLI run")?;
            let (ours_t, theirs_t) = (median(&our_times), median(&cli_times));
            let speedup = theirs_t.as_secs_f64() / ours_t.as_secs_f64();
            if files != theirs.files {
                bail!(
                    "repomix file selection differs from the CLI on the {lang} corpus (compress {compress}): {}",
                    first_difference(&files, &theirs.files)
                );
            }
            if !compress {
                report.target(
                    S,
                    format!("repomix vs `repomix` 1.14.1 CLI, {lang} (wall time)"),
                    format!("{} faster ({} vs {})", fmt_ratio_near(speedup, 5.0, 1), fmt_d(ours_t), fmt_d(theirs_t)),
                    "≥ 5×",
                    speedup >= 5.0,
                    format!(
                        "median of {RUNS}; both: selection, secret check, o200k tokens, XML; worker = trigger → \
                         job:completed through the queue (warm worker, sandboxed, durable); CLI = process wall time, \
                         REPOMIX_TOKEN_CACHE=0"
                    ),
                );
                let our_tokens: BTreeMap<String, u64> = result["topFiles"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|f| Some((f["path"].as_str()?.to_string(), f["tokens"].as_u64()?)))
                    .collect();
                let equal = theirs.tokens.iter().filter(|(p, t)| our_tokens.get(*p) == Some(t)).count();
                let our_suspicious: Vec<String> = result["suspiciousFiles"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s["path"].as_str().map(str::to_string))
                    .collect();
                report.add(
                    S,
                    format!("repomix {lang}: files packed ours / CLI (same order)"),
                    format!("{} / {}", files.len(), theirs.files.len()),
                    format!(
                        "secret check left out ours {our_suspicious:?} / CLI {:?}; output {} KiB / {} KiB",
                        theirs.suspicious,
                        our_bytes / 1024,
                        theirs.output_bytes / 1024
                    ),
                );
                report.add(
                    S,
                    format!("repomix {lang}: o200k tokens ours / CLI"),
                    format!(
                        "files {} / {}; total {} / {}",
                        group(result["fileTokens"].as_u64().unwrap_or(0)),
                        group(theirs.tokens.values().sum()),
                        group(result["totalTokens"].as_u64().unwrap_or(0)),
                        group(theirs.total_tokens)
                    ),
                    format!(
                        "per-file counts equal on {equal} of {} files; totals add each side's own wrapper (header, tree, tags)",
                        theirs.tokens.len()
                    ),
                );
            } else {
                report.add(
                    S,
                    format!("repomix --compress vs CLI, {lang} (wall time)"),
                    format!("{} faster ({} vs {})", fmt_ratio_near(speedup, 5.0, 1), fmt_d(ours_t), fmt_d(theirs_t)),
                    format!(
                        "median of {RUNS}, same work plus compress; output {} KiB / {} KiB, tokens {} / {} (the worker's \
                         lexer-level extractor keeps different lines than the CLI's tree-sitter queries)",
                        our_bytes / 1024,
                        theirs.output_bytes / 1024,
                        group(result["totalTokens"].as_u64().unwrap_or(0)),
                        group(theirs.total_tokens)
                    ),
                );
            }
        }
    }
    queue.shutdown(Duration::from_secs(10)).await;
    Ok(())
}
