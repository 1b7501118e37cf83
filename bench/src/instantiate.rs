//! Section 1: per-job instantiation from the cached `InstancePre`, and cold worker
//! initialisation from source versus from the precompiled cache; the same for the
//! JavaScript and Python components of `scripts/build-polyglot.sh`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alephauto::config::{BUILT_WORKERS_DIR, Config, PipelineConfig};
use alephauto::registry::Registry;
use alephauto::registry::breaker::BreakerSettings;
use alephauto::sandbox::cache::LoadSource;
use alephauto::sandbox::capabilities::git::GitSettings;
use alephauto::sandbox::engine::EngineSettings;
use alephauto::sandbox::journal::Journal;
use alephauto::sandbox::{Sandbox, StoreSpec, WorkerPre};
use anyhow::{Context, Result, anyhow};

use crate::report::{Report, fmt_d, p50_p99};

const S: &str = "1. Instantiation";

/// A built component of this checkout.
pub fn component(stem: &str) -> PathBuf {
    Path::new(BUILT_WORKERS_DIR).join(format!("{stem}.wasm"))
}

/// The store a job without grants gets (the same limits `execute` uses for a 256 MiB pipeline).
pub fn spec() -> StoreSpec {
    StoreSpec {
        memory_bytes: 256 << 20,
        timeout: Duration::from_secs(300),
        cancelled: Arc::default(),
        job: None,
        grants: Vec::new(),
        journal: Journal::new(256 * 1024, 1),
        progress: None,
    }
}

/// Runs section 1.
pub async fn run(report: &mut Report, iters: usize) -> Result<()> {
    let noop = component("fixture_noop");
    let mut medians = Vec::new();
    for pooling in [true, false] {
        let dir = tempfile::tempdir()?;
        let settings = EngineSettings { pooling, pool_memories: EngineSettings::default().pool_memories };
        let started = Instant::now();
        let sandbox = Sandbox::new(&settings, &dir.path().join("cache"), GitSettings::default())?;
        let engine_time = started.elapsed();
        let (pre, _) = sandbox.load(&noop).await?;
        let warm = (iters / 10).max(100);
        let ((p50, p99), (w50, w99)) = time_instances(&sandbox, &pre, warm, iters).await?;
        let label = if pooling { "pooling on" } else { "pooling off" };
        let how = format!("noop component, {iters} instantiations after {warm} warm-up, one task");
        if pooling {
            report.target(
                S,
                format!("instantiate, {label}: median"),
                fmt_d(p50),
                "≤ 20 µs",
                p50 <= Duration::from_micros(20),
                &how,
            );
        } else {
            report.add(S, format!("instantiate, {label}: median"), fmt_d(p50), &how);
        }
        report.add(S, format!("instantiate, {label}: p99"), fmt_d(p99), "");
        report.add(
            S,
            format!("new_store + instantiate + drop, {label}: median / p99"),
            format!("{} / {}", fmt_d(w50), fmt_d(w99)),
            "the whole per-job sandbox set-up and tear-down (no preopens)",
        );
        report.add(S, format!("Sandbox::new (engine + linker), {label}"), fmt_d(engine_time), "once per process");
        medians.push(p50);
    }
    if let [on, off] = medians[..] {
        report.add(
            S,
            "pooling speed-up (median, off / on)",
            format!("{:.2}×", off.as_secs_f64() / on.as_secs_f64().max(1e-12)),
            "",
        );
    }

    // Cold worker init: compile from the .wasm, then a fresh process-equivalent loading the cache.
    for (id, stem) in [("noop", "fixture_noop"), ("repomix", "repomix"), ("duplicate-detection", "duplicate_detection")]
    {
        let cache = tempfile::tempdir()?;
        let (source, src_time) = cold_init(cache.path(), id, &component(stem)).await?;
        anyhow::ensure!(source == LoadSource::Compiled, "expected a compile for {id}");
        let mut cached = Vec::new();
        for _ in 0..3 {
            let (source, t) = cold_init(cache.path(), id, &component(stem)).await?;
            anyhow::ensure!(source == LoadSource::Cached, "expected a cache hit for {id}");
            cached.push(t);
        }
        cached.sort();
        let size = std::fs::metadata(component(stem)).map(|m| m.len()).unwrap_or(0);
        report.add(
            S,
            format!("cold worker init `{id}` ({} KiB): from source / from cache", size / 1024),
            format!("{} / {}", fmt_d(src_time), fmt_d(cached[1])),
            "Registry::get_worker on a fresh Sandbox: compile or deserialise, link, describe + init; cache figure is the median of 3",
        );
    }
    Ok(())
}

/// `iters` rounds of new_store → instantiate → drop after `warm` untimed ones; returns
/// (median, p99) of instantiate alone and of the whole round.
async fn time_instances(
    sandbox: &Sandbox,
    pre: &WorkerPre,
    warm: usize,
    iters: usize,
) -> Result<((Duration, Duration), (Duration, Duration))> {
    let mut inst = Vec::with_capacity(iters);
    let mut whole = Vec::with_capacity(iters);
    for i in 0..warm + iters {
        let t0 = Instant::now();
        let mut store = sandbox.new_store(spec())?;
        let t1 = Instant::now();
        let _worker = sandbox.instantiate(pre, &mut store).await.map_err(|e| anyhow!("{e}"))?;
        let t2 = Instant::now();
        drop(store);
        let t3 = Instant::now();
        if i >= warm {
            inst.push(t2 - t1);
            whole.push(t3 - t0);
        }
    }
    Ok((p50_p99(&mut inst), p50_p99(&mut whole)))
}

async fn cold_init(cache: &Path, id: &str, wasm: &Path) -> Result<(LoadSource, Duration)> {
    let mut config = Config::default();
    config.pipelines.clear();
    config.pipelines.insert(id.to_string(), PipelineConfig::new(wasm.to_path_buf()));
    let sandbox = Arc::new(Sandbox::new(&EngineSettings::default(), cache, GitSettings::default())?);
    let registry = Registry::new(sandbox, &config, BreakerSettings::default());
    let worker = registry.get_worker(id).await.with_context(|| format!("initialising {id}"))?;
    let source = if worker.from_cache { LoadSource::Cached } else { LoadSource::Compiled };
    let t = worker.init_time;
    drop(worker);
    registry.shutdown().await;
    Ok((source, t))
}

/// The JavaScript and Python workers (`target/polyglot/`, built by `scripts/build-polyglot.sh`):
/// cold init from source and from the cache, then `iters` warm instantiations (pooling on),
/// as `run` does for the Rust components. `iters == 0` skips them (smoke).
pub async fn polyglot(report: &mut Report, iters: usize) -> Result<()> {
    let dir = crate::repo_root().join("target/polyglot");
    for (id, stem, lang) in [("changelog", "changelog", "JavaScript"), ("markdown-links", "markdown_links", "Python")] {
        let wasm = dir.join(format!("{stem}.wasm"));
        if iters == 0 {
            eprintln!("  (skipped polyglot `{id}` in smoke mode)");
            continue;
        }
        if !wasm.is_file() {
            eprintln!("  (skipped: {} is absent)", wasm.display());
            report.add(
                S,
                format!("`{id}` ({lang}) instantiation"),
                "skipped",
                format!("target/polyglot/{stem}.wasm is absent; build it with scripts/build-polyglot.sh"),
            );
            continue;
        }
        let size = std::fs::metadata(&wasm).map(|m| m.len()).unwrap_or(0);
        let cache = tempfile::tempdir()?;
        let (source, src_time) = cold_init(cache.path(), id, &wasm).await?;
        anyhow::ensure!(source == LoadSource::Compiled, "expected a compile for {id}");
        let mut cached = Vec::new();
        for _ in 0..3 {
            let (source, t) = cold_init(cache.path(), id, &wasm).await?;
            anyhow::ensure!(source == LoadSource::Cached, "expected a cache hit for {id}");
            cached.push(t);
        }
        cached.sort();
        report.add(
            S,
            format!("cold worker init `{id}` ({lang}, {} KiB): from source / from cache", size / 1024),
            format!("{} / {}", fmt_d(src_time), fmt_d(cached[1])),
            "Registry::get_worker on a fresh Sandbox: compile or deserialise, link, describe + init; cache figure is the median of 3",
        );

        let sandbox = Sandbox::new(&EngineSettings::default(), cache.path(), GitSettings::default())?;
        let (pre, _) = sandbox.load(&wasm).await?;
        let warm = (iters / 10).max(20);
        let ((p50, p99), (w50, w99)) = time_instances(&sandbox, &pre, warm, iters).await?;
        report.add(
            S,
            format!("instantiate `{id}` ({lang}), pooling on: median / p99"),
            format!("{} / {}", fmt_d(p50), fmt_d(p99)),
            format!(
                "{iters} instantiations after {warm} warm-up, one task; new_store + instantiate + drop: {} / {}",
                fmt_d(w50),
                fmt_d(w99)
            ),
        );
    }
    Ok(())
}
