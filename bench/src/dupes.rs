//! Section 5 (continued): the duplicate-detection worker (sandboxed, through the real queue)
//! against `jscpd` 4 (Node) and 5 (native Rust engine) on the same copies of two real code
//! bases (Rust and TypeScript), with the same settings on both sides (jscpd's defaults: clones
//! of 50+ tokens and 5+ lines), and how far the two agree: the share of jscpd 5's clone pairs
//! the worker also reports, and a sample of the worker's pairs jscpd does not report.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use alephauto::config::PipelineConfig;
use alephauto::sandbox::Sandbox;
use alephauto::sandbox::capabilities::git::GitSettings;
use alephauto::sandbox::engine::EngineSettings;
use alephauto::store::JobStore;
use alephauto::store::sqlite::SqliteStore;
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::instantiate::component;
use crate::queue::build_queue;
use crate::report::{Report, fmt_d, fmt_ratio_near, median};
use crate::tools::{run_job, timed};

const S: &str = "5. Real pipelines vs the Node tools (same checkout)";
const RUNS: usize = 3;

/// Clone size on both sides: jscpd's defaults (`--min-tokens 50 --min-lines 5`).
const MIN_TOKENS: u64 = 50;
const MIN_LINES: u64 = 5;
/// Extensions of the files both sides compare (jscpd also reports text and data formats).
const CODE: &[&str] = &["rs", "ts", "tsx", "mts", "cts", "js", "jsx", "mjs", "cjs", "py"];

/// The corpora: (label, source folder, extension counted for its size).
/// The Rust one is the existing lookup (`BENCH_RUST_CORPUS` overrides it); the TypeScript one is
/// `BENCH_TS_CORPUS` (zod 4.6.7's `src/`), skipped with a row saying so when unset.
fn corpora() -> Result<Vec<(&'static str, Option<PathBuf>, &'static str)>> {
    // Both honour BENCH_RUST_CORPUS / BENCH_TS_CORPUS; without zod installed the TypeScript row is skipped.
    let rust = crate::corpus::rust()?;
    let ts = crate::corpus::typescript().ok();
    Ok(vec![("Rust", Some(rust), "rs"), ("TypeScript", ts, "ts")])
}

/// One side's clone pairs: (file, first line, last line) twice.
type Pair = ((String, u64, u64), (String, u64, u64));

/// jscpd's pairs between code files, paths relative to the corpus.
fn jscpd_pairs(report: &Value, corpus: &Path) -> Vec<Pair> {
    let prefix = format!("{}/", corpus.display());
    let side = |f: &Value| {
        let name = f["name"].as_str().unwrap_or_default();
        (
            name.strip_prefix(&prefix).unwrap_or(name).to_string(),
            f["start"].as_u64().unwrap_or(0),
            f["end"].as_u64().unwrap_or(0),
        )
    };
    let is_code = |f: &str| f.rsplit_once('.').is_some_and(|(_, e)| CODE.contains(&e));
    report["duplicates"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| (side(&d["firstFile"]), side(&d["secondFile"])))
        .filter(|(a, b)| is_code(&a.0) && is_code(&b.0))
        .collect()
}

fn overlap(a: (u64, u64), b: (u64, u64)) -> u64 {
    (a.1.min(b.1) + 1).saturating_sub(a.0.max(b.0))
}

/// Every occurrence of every group of the worker's full report: file → (group, occurrence, first, last).
fn our_index(groups: &[Value]) -> HashMap<String, Vec<(usize, usize, u64, u64)>> {
    let mut idx: HashMap<String, Vec<(usize, usize, u64, u64)>> = HashMap::new();
    for (g, d) in groups.iter().enumerate() {
        for (o, occ) in d["occurrences"].as_array().into_iter().flatten().enumerate() {
            idx.entry(occ["file"].as_str().unwrap_or_default().to_string()).or_default().push((
                g,
                o,
                occ["startLine"].as_u64().unwrap_or(0),
                occ["endLine"].as_u64().unwrap_or(0),
            ));
        }
    }
    idx
}

/// How far the worker's groups cover jscpd's pairs: (found, found with at least half of each
/// fragment's lines inside the two occurrences).
fn agreement(pairs: &[Pair], groups: &[Value]) -> (usize, usize) {
    let idx = our_index(groups);
    let (mut found, mut strict) = (0, 0);
    for ((fa, a1, a2), (fb, b1, b2)) in pairs {
        let (mut hit, mut close) = (false, false);
        for &(g, o, s, e) in idx.get(fa).into_iter().flatten() {
            let oa = overlap((s, e), (*a1, *a2));
            if oa == 0 {
                continue;
            }
            for &(g2, o2, s2, e2) in idx.get(fb).into_iter().flatten() {
                let ob = overlap((s2, e2), (*b1, *b2));
                if g2 == g && o2 != o && ob > 0 {
                    hit = true;
                    close |= 2 * oa > a2 - a1 && 2 * ob > b2 - b1;
                }
            }
        }
        found += usize::from(hit);
        strict += usize::from(close);
    }
    (found, strict)
}

/// jscpd's fragments joined into clone classes: two fragments of one pair, or two fragments
/// overlapping in one file, are one class. Returns file → (first, last, class) per fragment.
fn jscpd_classes(pairs: &[Pair]) -> HashMap<&str, Vec<(u64, u64, usize)>> {
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let frags: Vec<&(String, u64, u64)> = pairs.iter().flat_map(|(a, b)| [a, b]).collect();
    let mut parent: Vec<usize> = (0..frags.len()).collect();
    let union = |parent: &mut Vec<usize>, a: usize, b: usize| {
        let (ra, rb) = (root(parent, a), root(parent, b));
        parent[ra] = rb;
    };
    for k in 0..pairs.len() {
        union(&mut parent, 2 * k, 2 * k + 1);
    }
    let mut order: Vec<usize> = (0..frags.len()).collect();
    order.sort_by(|&x, &y| (&frags[x].0, frags[x].1).cmp(&(&frags[y].0, frags[y].1)));
    for w in order.windows(2) {
        let (a, b) = (frags[w[0]], frags[w[1]]);
        if a.0 == b.0 && overlap((a.1, a.2), (b.1, b.2)) > 0 {
            union(&mut parent, w[0], w[1]);
        }
    }
    let mut by_file: HashMap<&str, Vec<(u64, u64, usize)>> = HashMap::new();
    for (i, f) in frags.iter().enumerate() {
        let class = root(&mut parent, i);
        by_file.entry(f.0.as_str()).or_default().push((f.1, f.2, class));
    }
    by_file
}

/// The worker's pairs (each group's first occurrence with each other one) that jscpd does not
/// relate: no jscpd clone class has fragments overlapping both.
fn ours_not_in_jscpd(groups: &[Value], pairs: &[Pair]) -> (usize, Vec<String>) {
    let classes = jscpd_classes(pairs);
    let classes_at = |f: &str, span: (u64, u64)| -> Vec<usize> {
        classes.get(f).into_iter().flatten().filter(|(s, e, _)| overlap(span, (*s, *e)) > 0).map(|x| x.2).collect()
    };
    let (mut total, mut out) = (0, Vec::new());
    for d in groups {
        let occ: Vec<(&str, u64, u64)> = d["occurrences"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|o| {
                (
                    o["file"].as_str().unwrap_or(""),
                    o["startLine"].as_u64().unwrap_or(0),
                    o["endLine"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        let Some(&a) = occ.first() else { continue };
        let in_a = classes_at(a.0, (a.1, a.2));
        for b in occ.iter().skip(1) {
            total += 1;
            if !classes_at(b.0, (b.1, b.2)).iter().any(|c| in_a.contains(c)) {
                out.push(format!("{}:{}-{} ~ {}:{}-{} ({} tokens)", a.0, a.1, a.2, b.0, b.1, b.2, d["tokens"]));
            }
        }
    }
    (total, out)
}

/// Runs the duplicate-detection rows of section 5 on each corpus.
pub async fn run(report: &mut Report, node_modules: &Path) -> Result<()> {
    for (label, source, ext) in corpora()? {
        match source {
            Some(source) => run_corpus(report, node_modules, label, &source, ext).await?,
            None => report.add(
                S,
                format!("duplicate-detection on the {label} corpus"),
                "skipped",
                "set BENCH_TS_CORPUS to zod 4.6.7's src/ (npm install zod@4.6.7)",
            ),
        }
    }
    Ok(())
}

async fn run_corpus(report: &mut Report, node_modules: &Path, label: &str, source: &Path, ext: &str) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let corpus = crate::corpus::copy_into(source, &dir.path().join("corpus"))?;
    let (files, lines) = crate::corpus::count_lines(&corpus, ext)?;

    let sandbox =
        Arc::new(Sandbox::new(&EngineSettings::default(), &dir.path().join("cache"), GitSettings::default())?);
    let store: Arc<dyn JobStore> = Arc::new(SqliteStore::open(&dir.path().join("dupes.db"))?);
    let mut p = PipelineConfig::new(component("duplicate_detection"));
    p.roots = vec![corpus.parent().unwrap_or(&corpus).to_path_buf()];
    let (queue, _) = build_queue(sandbox, store, vec![("duplicate-detection", p)], &dir.path().join("outputs"), 4096);
    queue.registry().get_worker("duplicate-detection").await?;

    let params = |mode: &str| json!({"repositoryPath": corpus, "mode": mode, "minTokens": MIN_TOKENS, "minLines": MIN_LINES, "limit": 1});
    let mut times = Vec::new();
    let mut result = Value::Null;
    for _ in 0..RUNS {
        let (t, r) = run_job(&queue, "duplicate-detection", params("exact")).await?;
        times.push(t);
        result = r;
    }
    let ours = median(&times);
    let full: Value = serde_json::from_str(&std::fs::read_to_string(
        result["reportPaths"]["json"].as_str().context("no JSON report path")?,
    )?)?;
    let groups = full["duplicates"].as_array().cloned().unwrap_or_default();
    let stats = &result["stats"];
    if groups.len() as u64 != stats["duplicateGroups"].as_u64().unwrap_or(u64::MAX) {
        bail!("the full report holds {} groups but stats say {}", groups.len(), stats["duplicateGroups"]);
    }
    report.add(
        S,
        format!("duplicate-detection on the {label} corpus: output"),
        format!(
            "{} clone groups, {} duplicated lines ({}%); {} duplicated-function groups",
            stats["duplicateGroups"], stats["duplicatedLines"], stats["duplicatedPercent"], stats["functionGroups"]
        ),
        format!(
            "{} ({files} .{ext} files, {lines} lines, copied to a temp folder); {} files, {} tokens scanned; exact mode, {MIN_TOKENS}+ tokens, {MIN_LINES}+ lines; wall time {} (median of {RUNS}, trigger → job:completed, sandboxed)",
            source.display(),
            stats["filesScanned"],
            stats["tokens"],
            fmt_d(ours)
        ),
    );
    let (t_struct, r_struct) = run_job(&queue, "duplicate-detection", params("structural")).await?;
    report.add(
        S,
        format!("duplicate-detection on the {label} corpus: structural mode"),
        format!(
            "{} clone groups, {} duplicated lines ({}%)",
            r_struct["stats"]["duplicateGroups"],
            r_struct["stats"]["duplicatedLines"],
            r_struct["stats"]["duplicatedPercent"]
        ),
        format!("identifiers and literals folded (renamed copies found); one run, {}", fmt_d(t_struct)),
    );

    let engines = [
        ("jscpd 4.3.0 (Node)", node_modules.join("jscpd/bin/jscpd"), true),
        ("jscpd 5.3.3 (native Rust engine)", node_modules.join("jscpd-linux-x64-gnu/bin/jscpd"), false),
    ];
    for (engine, exe, via_node) in engines {
        if !exe.exists() {
            report.add(
                S,
                format!("{engine} on the {label} corpus"),
                "not installed",
                format!("{} missing", exe.display()),
            );
            continue;
        }
        let out = dir.path().join(format!("jscpd-{}", if via_node { 4 } else { 5 }));
        let mut times = Vec::new();
        for _ in 0..RUNS {
            let _ = std::fs::remove_dir_all(&out);
            let mut cmd = if via_node {
                let mut c = Command::new("node");
                c.arg(&exe);
                c
            } else {
                Command::new(&exe)
            };
            cmd.args(["--min-tokens", &MIN_TOKENS.to_string(), "--min-lines", &MIN_LINES.to_string()])
                .args(["--reporters", "json", "--silent", "--output"])
                .arg(&out)
                .arg(&corpus);
            times.push(timed(cmd)?);
        }
        let theirs = median(&times);
        let rep: Value = serde_json::from_str(&std::fs::read_to_string(out.join("jscpd-report.json"))?)?;
        let total = &rep["statistics"]["total"];
        let speedup = theirs.as_secs_f64() / ours.as_secs_f64();
        let metric = format!("duplicate-detection vs {engine} on the {label} corpus: speed-up");
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
            report.add(S, metric, line, note);
            continue;
        }
        report.target(S, metric, line, "> 1× (faster, while sandboxed)", speedup > 1.0, note);
        let pairs = jscpd_pairs(&rep, &corpus);
        let (found, strict) = agreement(&pairs, &groups);
        let (our_pairs, extra) = ours_not_in_jscpd(&groups, &pairs);
        let pct = |n: usize| 100.0 * n as f64 / pairs.len().max(1) as f64;
        report.add(
            S,
            format!("agreement with jscpd 5 on the {label} corpus"),
            format!("{:.1}% of jscpd's {} clone pairs found ({:.1}% with ≥ half of each fragment)", pct(found), pairs.len(), pct(strict)),
            format!(
                "a pair is found when one group has an occurrence overlapping each fragment; {} of our {our_pairs} pairs (first occurrence with each other one) jscpd does not relate, e.g. {}",
                extra.len(),
                extra.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
            ),
        );
    }
    queue.shutdown(Duration::from_secs(10)).await;
    Ok(())
}
