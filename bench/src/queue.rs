//! Section 2: the real queue (SqliteStore + Registry + EventBus + the wasm no-op
//! worker): enqueue-only rate, burn-down of a durable backlog, the same burn-down with a
//! native no-op handler (the sandbox's cost), the store-only floor (the same store
//! operations per job without queue or sandbox), and trigger-to-completion latency at a
//! steady offered load.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alephauto::config::{Config, GitConfig, PipelineConfig};
use alephauto::domain::{Job, JobStatus};
use alephauto::events::{EventBus, EventKind};
use alephauto::gitflow::GitWorkflow;
use alephauto::queue::{Queue, QueueSettings};
use alephauto::registry::Registry;
use alephauto::registry::breaker::BreakerSettings;
use alephauto::sandbox::Sandbox;
use alephauto::sandbox::capabilities::git::GitSettings;
use alephauto::sandbox::engine::EngineSettings;
use alephauto::store::sqlite::SqliteStore;
use alephauto::store::{Claim, Finish, JobStore};
use anyhow::{Context, Result, bail};
use chrono::Utc;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::instantiate::component;
use crate::report::{Report, fmt_d, fmt_rate, fmt_ratio_near, group, median, p50_p99};

const S: &str = "2. Queue throughput (durable SQLite store)";

/// What later sections compare against.
#[derive(Debug, Clone, Copy)]
pub struct QueueFigures {
    /// Burn-down through the wasm worker, jobs/s.
    pub burn_rate: f64,
    /// Enqueue-only rate, jobs/s.
    pub enqueue_rate: f64,
}

/// A queue wired as `server::start` wires it, for `pipelines` (id → config).
pub fn build_queue(
    sandbox: Arc<Sandbox>,
    store: Arc<dyn JobStore>,
    pipelines: Vec<(&str, PipelineConfig)>,
    outputs: &Path,
    event_capacity: usize,
) -> (Queue, EventBus) {
    let mut config = Config::default();
    config.pipelines.clear();
    for (id, p) in pipelines {
        config.pipelines.insert(id.to_string(), p);
    }
    let registry = Arc::new(Registry::new(sandbox, &config, BreakerSettings::default()));
    let events = EventBus::new(event_capacity);
    let settings = QueueSettings {
        max_attempts: config.runtime.max_attempts,
        retry_base: Duration::from_millis(config.runtime.retry_base_ms),
        max_log_bytes: config.runtime.max_log_bytes,
        max_result_bytes: config.runtime.max_result_bytes,
        outputs_dir: outputs.to_path_buf(),
        execution_enabled: true,
    };
    let queue = Queue::new(store, registry, events.clone(), settings, GitWorkflow::new(&GitConfig::default()));
    (queue, events)
}

/// The no-op pipeline with `max_concurrent` slots and room for every job.
pub fn noop_pipeline(max_concurrent: usize) -> PipelineConfig {
    let mut p = PipelineConfig::new(component("fixture_noop"));
    p.max_concurrent = max_concurrent;
    p.max_queued = usize::MAX / 2;
    p
}

/// Triggers `n` no-op jobs from `conc` tasks; returns the elapsed time.
pub async fn trigger_all(queue: &Queue, n: usize, conc: usize) -> Result<Duration> {
    trigger_all_with(queue, "noop", &json!({}), n, conc).await
}

/// Triggers `n` jobs of `pipeline` with `params` from `conc` tasks; returns the elapsed time.
pub async fn trigger_all_with(
    queue: &Queue,
    pipeline: &str,
    params: &serde_json::Value,
    n: usize,
    conc: usize,
) -> Result<Duration> {
    let started = Instant::now();
    let tasks: Vec<_> = (0..conc)
        .map(|t| {
            let queue = queue.clone();
            let (pipeline, params) = (pipeline.to_string(), params.clone());
            let share = n / conc + usize::from(t < n % conc);
            tokio::spawn(async move {
                for _ in 0..share {
                    queue.trigger(&pipeline, params.clone()).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    Ok(started.elapsed())
}

/// Runs section 2.
///
/// Returns the folder holding the stores and the jobs' output folders: one folder per job,
/// whose removal is slow on disks mounted with `discard`, so the caller removes it last.
pub async fn run(
    report: &mut Report,
    n: usize,
    rounds: usize,
    conc: usize,
    latency_rate: u32,
    latency_secs: u64,
) -> Result<(QueueFigures, tempfile::TempDir)> {
    let dir = tempfile::Builder::new().prefix("alephauto-bench-queue-").tempdir()?;
    let sandbox =
        Arc::new(Sandbox::new(&EngineSettings::default(), &dir.path().join("cache"), GitSettings::default())?);
    let outputs = dir.path().join("outputs");

    // Rounds alternate wasm and native so drift on this shared machine hits both alike; each
    // figure is the median of its rounds. Per round: enqueue only (the trigger path:
    // validation, insert + group commit, job:created, lane push, on a lane with no slots, so
    // nothing runs yet), then two page-for-page copies of that backlog, each recovered and
    // run by a fresh store and queue: one through the wasm worker, one through the native
    // handler. Both burn-downs start from the same file, as after a restart.
    let mut enqueues = Vec::new();
    let mut wasm_burns = Vec::new();
    let mut native_burns = Vec::new();
    for round in 0..rounds {
        let backlog = dir.path().join(format!("backlog-{round}.db"));
        let store: Arc<dyn JobStore> = Arc::new(SqliteStore::open(&backlog)?);
        let (paused, _) = build_queue(sandbox.clone(), store.clone(), vec![("noop", noop_pipeline(0))], &outputs, 1024);
        paused.registry().get_worker("noop").await?;
        enqueues.push(trigger_all(&paused, n, conc).await?);
        drop(paused);
        // Every store of the round stays open (idle) until the round ends: closing one
        // checkpoints its WAL, which would overlap the next burn-down.
        let mut round_stores = vec![store];
        for native in [false, true] {
            let copy = dir.path().join(format!("{}-{round}.db", if native { "native-queue" } else { "queue" }));
            copy_database(&backlog, &copy)?;
            let store: Arc<dyn JobStore> = Arc::new(SqliteStore::open(&copy)?);
            let (queue, events) =
                build_queue(sandbox.clone(), store.clone(), vec![("noop", noop_pipeline(conc))], &outputs, n + 4096);
            queue.registry().get_worker("noop").await?;
            if native {
                // `Queue::set_native_handler`: claim, events and the durable finish, no sandbox.
                queue.set_native_handler("noop", Arc::new(|job: &Job| Ok(json!({"ok": true, "attempt": job.attempt}))));
            }
            let burn = burn_down(&queue, &events, &*store, n).await?;
            if native { &mut native_burns } else { &mut wasm_burns }.push(burn);
            round_stores.push(store);
        }
    }
    let (enqueue, burn, native_q_burn) = (median(&enqueues), median(&wasm_burns), median(&native_burns));
    let spread = |burns: &[Duration]| {
        burns.iter().map(|b| group((n as f64 / b.as_secs_f64()) as u64)).collect::<Vec<_>>().join(", ")
    };
    let enqueue_rate = n as f64 / enqueue.as_secs_f64();
    report.add(
        S,
        "AlephAuto enqueue only (Queue::trigger)",
        fmt_rate(enqueue_rate, "jobs/s"),
        format!(
            "{} jobs from {conc} tasks; validate → insert (group commit) → job:created; median of {rounds}",
            group(n as u64)
        ),
    );
    let burn_rate = n as f64 / burn.as_secs_f64();
    report.target(
        S,
        "AlephAuto burn-down, wasm no-op worker",
        fmt_rate(burn_rate, "jobs/s"),
        "≥ 2× fastest peer (~40,000 jobs/s)",
        burn_rate >= 40_000.0,
        format!(
            "{} queued jobs (a copy of the round's backlog) recovered by a fresh store and Queue, max_concurrent {conc}; fresh Store + instantiate + run → one durable write that finishes the job and claims the next queued one (noop declares no output folder; its empty log is not written); median of {rounds} rounds ({} jobs/s)",
            group(n as u64),
            spread(&wasm_burns)
        ),
    );
    let native_q_rate = n as f64 / native_q_burn.as_secs_f64();
    report.add(
        S,
        "AlephAuto burn-down, native no-op handler",
        fmt_rate(native_q_rate, "jobs/s"),
        format!(
            "the same {} jobs (the other copy of each round's backlog), Queue and store kind, max_concurrent {conc}, run by Queue::set_native_handler: handler → the same finish-and-claim write; no sandbox; median of {rounds} rounds alternating with the wasm ones ({} jobs/s)",
            group(n as u64),
            spread(&native_burns)
        ),
    );
    let ratio = native_q_rate / burn_rate;
    report.target(
        S,
        "wasm vs native no-op (burn-down time ratio)",
        fmt_ratio_near(ratio, 1.3, 2),
        "≤ 1.3×",
        ratio <= 1.3,
        "median wasm burn-down time ÷ median native-handler burn-down time, both through the real Queue: the sandbox's cost per job",
    );

    // Store-only floor: the same store operations per job, the same concurrency, no queue.
    let native: Arc<dyn JobStore> = Arc::new(SqliteStore::open(&dir.path().join("native.db"))?);
    let started = Instant::now();
    let ids = per_task(native.clone(), n, conc, |store, t, i| async move {
        let job = Job::new(format!("noop-native-{t}-{i}"), "noop".into(), json!({"triggeredBy": "api"}), Utc::now());
        store.insert(&job).await?;
        Ok(job.id)
    })
    .await?;
    let native_enqueue = started.elapsed();
    let started = Instant::now();
    let ids = Arc::new(ids);
    let tasks: Vec<_> = (0..conc)
        .map(|t| {
            let store = native.clone();
            let ids = ids.clone();
            tokio::spawn(async move {
                // As a busy lane does it: claim the first, then each outcome claims the next.
                let mine = &ids[t];
                let Some(first) = mine.first() else { return anyhow::Ok(()) };
                anyhow::ensure!(store.mark_running(first, 1, Utc::now()).await?, "mark_running refused {first}");
                for (i, id) in mine.iter().enumerate() {
                    let finish = Finish {
                        status: JobStatus::Completed,
                        result: Some(json!({"ok": true, "attempt": 1})),
                        error: None,
                        git: None,
                        at: Utc::now(),
                    };
                    let next = mine.get(i + 1).map(|next| Claim { id: next, attempt: 1, at: finish.at });
                    let (finished, claimed) = store.finish_and_claim(id, 1, &finish, next).await?;
                    anyhow::ensure!(finished && claimed != Some(false), "finish_and_claim refused {id}");
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    let native_burn = started.elapsed();
    let native_enqueue_rate = n as f64 / native_enqueue.as_secs_f64();
    let native_burn_rate = n as f64 / native_burn.as_secs_f64();
    report.add(
        S,
        "store-only floor: enqueue (SqliteStore::insert)",
        fmt_rate(native_enqueue_rate, "jobs/s"),
        format!("{} inserts from {conc} tasks, no queue", group(n as u64)),
    );
    report.add(
        S,
        "store-only floor: burn-down (finish_and_claim)",
        fmt_rate(native_burn_rate, "jobs/s"),
        format!(
            "{conc} tasks; the store operations a no-op job needs (each outcome claims the next job in the same write), without queue or sandbox; the native-handler queue takes {:.2}× this time",
            native_burn_rate / native_q_rate
        ),
    );
    let e2e_wasm = n as f64 / (enqueue + burn).as_secs_f64();
    let e2e_native = n as f64 / (enqueue + native_q_burn).as_secs_f64();
    report.add(
        S,
        "end to end (enqueue + burn-down): wasm / native handler",
        format!("{} / {}", fmt_rate(e2e_wasm, "jobs/s"), fmt_rate(e2e_native, "jobs/s")),
        format!(
            "the round's Queue::trigger time plus a fresh Queue's recover() and run; ratio {:.2}×",
            e2e_native / e2e_wasm
        ),
    );

    latency(report, sandbox, dir.path(), conc, latency_rate, latency_secs).await?;
    Ok((QueueFigures { burn_rate, enqueue_rate }, dir))
}

/// Recovers the `n`-job durable backlog of `store` into `queue` and waits until every job
/// has published its terminal event; returns the elapsed time.
async fn burn_down(queue: &Queue, events: &EventBus, store: &dyn JobStore, n: usize) -> Result<Duration> {
    let mut rx = events.subscribe();
    // The watcher is a task on the runtime, as a WebSocket feed would be, rather than the
    // thread blocked in `block_on`, whose every wake-up would be an extra thread switch.
    let watcher = tokio::spawn(async move {
        let (mut done, mut failed) = (0, 0);
        while done < n {
            match tokio::time::timeout(Duration::from_secs(120), rx.recv()).await.context("burn-down stalled")? {
                Ok(e) if e.kind == EventKind::Completed => done += 1,
                Ok(e) if e.kind == EventKind::Failed => {
                    done += 1;
                    failed += 1;
                }
                Ok(_) => {}
                Err(RecvError::Lagged(k)) => bail!("event subscriber lagged by {k}"),
                Err(RecvError::Closed) => bail!("event bus closed"),
            }
        }
        anyhow::Ok((Instant::now(), failed))
    });
    let started = Instant::now();
    let recovered = queue.recover().await?;
    if recovered != n {
        bail!("expected {n} queued jobs, recovered {recovered}");
    }
    let (finished, failed) = watcher.await.context("the event watcher panicked")??;
    let took = finished - started;
    if failed > 0 {
        bail!("{failed} no-op jobs failed");
    }
    let completed = count(store, JobStatus::Completed).await?;
    anyhow::ensure!(completed == n as u64, "store holds {completed} completed jobs, expected {n}");
    queue.shutdown(Duration::from_secs(10)).await;
    Ok(took)
}

/// Copies the SQLite database at `from` to `to` page for page (SQLite's online backup API):
/// a consistent snapshot while `from` is open, with the same layout.
fn copy_database(from: &Path, to: &Path) -> Result<()> {
    let source = rusqlite::Connection::open(from).with_context(|| format!("opening {}", from.display()))?;
    source
        .backup(rusqlite::MAIN_DB, to, None)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))
}

async fn count(store: &dyn JobStore, status: JobStatus) -> Result<u64> {
    let counts = store.counts().await?;
    Ok(counts.values().map(|c| c.by_status.get(&status).copied().unwrap_or(0)).sum())
}

/// Runs `f(store, task, i)` for `n` items over `conc` tasks; returns each task's outputs.
async fn per_task<F, Fut>(store: Arc<dyn JobStore>, n: usize, conc: usize, f: F) -> Result<Vec<Vec<String>>>
where
    F: Fn(Arc<dyn JobStore>, usize, usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Result<String>> + Send,
{
    let tasks: Vec<_> = (0..conc)
        .map(|t| {
            let store = store.clone();
            let f = f.clone();
            let share = n / conc + usize::from(t < n % conc);
            tokio::spawn(async move {
                let mut out = Vec::with_capacity(share);
                for i in 0..share {
                    out.push(f(store.clone(), t, i).await?);
                }
                anyhow::Ok(out)
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.push(t.await??);
    }
    Ok(all)
}

/// Trigger-to-completion latency under an open-loop offered load of `rate` jobs/s.
async fn latency(
    report: &mut Report,
    sandbox: Arc<Sandbox>,
    dir: &Path,
    conc: usize,
    rate: u32,
    secs: u64,
) -> Result<()> {
    let store: Arc<dyn JobStore> = Arc::new(SqliteStore::open(&dir.join("latency.db"))?);
    let total = rate as usize * secs as usize;
    let (queue, events) =
        build_queue(sandbox, store, vec![("noop", noop_pipeline(conc))], &dir.join("outputs-latency"), total + 4096);
    queue.registry().get_worker("noop").await?;
    let mut rx = events.subscribe();
    let collector = tokio::spawn(async move {
        let mut finished = HashMap::with_capacity(total);
        while finished.len() < total {
            match tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
                Ok(Ok(e)) if matches!(e.kind, EventKind::Completed | EventKind::Failed) => {
                    finished.insert(e.job_id, Instant::now());
                }
                Ok(Ok(_)) => {}
                Ok(Err(RecvError::Lagged(k))) => bail!("latency subscriber lagged by {k}"),
                Ok(Err(RecvError::Closed)) | Err(_) => bail!("latency run stalled at {} of {total}", finished.len()),
            }
        }
        Ok(finished)
    });
    let period = Duration::from_secs_f64(1.0 / f64::from(rate));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut triggers = Vec::with_capacity(total);
    let began = Instant::now();
    for _ in 0..total {
        ticker.tick().await;
        let queue = queue.clone();
        triggers.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let job = queue.trigger("noop", json!({})).await?;
            anyhow::Ok((job.id, t0, t0.elapsed()))
        }));
    }
    let offered_for = began.elapsed();
    let mut started = Vec::with_capacity(total);
    for t in triggers {
        started.push(t.await??);
    }
    let finished = collector.await??;
    let mut e2e = Vec::with_capacity(total);
    let mut trig = Vec::with_capacity(total);
    for (id, t0, took) in started {
        let end = finished.get(&id).with_context(|| format!("no terminal event for {id}"))?;
        e2e.push(end.duration_since(t0));
        trig.push(took);
    }
    queue.shutdown(Duration::from_secs(10)).await;
    let (p50, p99) = p50_p99(&mut e2e);
    let (t50, t99) = p50_p99(&mut trig);
    let achieved = total as f64 / offered_for.as_secs_f64();
    report.add(
        S,
        format!("trigger → completed latency at {} jobs/s offered: p50 / p99", group(u64::from(rate))),
        format!("{} / {}", fmt_d(p50), fmt_d(p99)),
        format!(
            "open loop for {secs} s ({} jobs, {achieved:.0}/s achieved), in process, max_concurrent {conc}; until job:completed is published",
            group(total as u64)
        ),
    );
    report.add(
        S,
        "Queue::trigger call latency at that load: p50 / p99",
        format!("{} / {}", fmt_d(t50), fmt_d(t99)),
        "until the job is durable and queued",
    );
    Ok(())
}
