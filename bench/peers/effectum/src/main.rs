//! No-op burn-down through effectum 0.7, for `alephauto-bench`.
//!
//! `bench-peer-effectum <db> <n> <concurrency> [wal]` enqueues `n` no-op jobs from
//! `concurrency` tasks (one `add_job` each, like API triggers), then starts one worker
//! with `max_concurrency = concurrency` and times it until every job has run. With
//! `wal`, the file is switched to WAL first: effectum sets `PRAGMA journal = wal`, which
//! SQLite ignores, so as shipped it runs in rollback-journal mode. Prints one JSON line.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use effectum::{Job, JobRunner, Queue, RunningJob};

#[derive(Debug)]
struct Ctx {
    done: AtomicUsize,
    target: usize,
    all_done: tokio::sync::Notify,
}

async fn noop(_job: RunningJob, ctx: Arc<Ctx>) -> Result<(), String> {
    if ctx.done.fetch_add(1, Ordering::Relaxed) + 1 == ctx.target {
        ctx.all_done.notify_one();
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(args.len() >= 4, "usage: bench-peer-effectum <db> <n> <concurrency> [wal]");
    let db = PathBuf::from(&args[1]);
    let n: usize = args[2].parse()?;
    let conc: usize = args[3].parse()?;
    let wal = args.get(4).is_some_and(|a| a == "wal");
    let _ = std::fs::remove_file(&db);
    if wal {
        let conn = rusqlite::Connection::open(&db)?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        anyhow::ensure!(mode == "wal", "could not force WAL: {mode}");
    }
    let queue = Arc::new(Queue::new(&db).await?);

    let started = Instant::now();
    let tasks: Vec<_> = (0..conc)
        .map(|t| {
            let queue = queue.clone();
            let share = n / conc + usize::from(t < n % conc);
            tokio::spawn(async move {
                for i in 0..share {
                    Job::builder("noop").json_payload(&serde_json::json!({ "i": i }))?.add_to(&queue).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    let enqueue_s = started.elapsed().as_secs_f64();

    let ctx = Arc::new(Ctx { done: AtomicUsize::new(0), target: n, all_done: tokio::sync::Notify::new() });
    let started = Instant::now();
    let worker = effectum::Worker::builder(&queue, ctx.clone())
        .jobs([JobRunner::builder("noop", noop).build()])
        .min_concurrency(conc as u16)
        .max_concurrency(conc as u16)
        .build()
        .await?;
    let notified = ctx.all_done.notified();
    if ctx.done.load(Ordering::Relaxed) < n {
        tokio::time::timeout(Duration::from_secs(600), notified).await?;
    }
    let burn_s = started.elapsed().as_secs_f64();
    let journal_mode: String = rusqlite::Connection::open(&db)?.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    println!(
        "{}",
        serde_json::json!({"peer": "effectum 0.7.0", "n": n, "concurrency": conc, "enqueue_s": enqueue_s, "burn_s": burn_s, "journal_mode": journal_mode})
    );
    drop(worker);
    let _ = queue.close(Duration::from_secs(5)).await;
    Ok(())
}
