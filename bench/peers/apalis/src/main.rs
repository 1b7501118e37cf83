//! No-op burn-down through apalis-sqlite 1.0, for `alephauto-bench`.
//!
//! `bench-peer-apalis <db> <n> <concurrency>` pushes `n` no-op jobs from `concurrency`
//! tasks, then runs one worker with `.concurrency(concurrency)` (default polling
//! strategy and batch size, as shipped) and times it until every job has run.
//! Prints one JSON line.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use apalis::prelude::*;
use apalis_sqlite::SqliteStorage;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

static DONE: AtomicUsize = AtomicUsize::new(0);
static TARGET: AtomicUsize = AtomicUsize::new(usize::MAX);

async fn noop(_job: u64, worker: WorkerContext) -> Result<(), BoxDynError> {
    if DONE.fetch_add(1, Ordering::Relaxed) + 1 >= TARGET.load(Ordering::Relaxed) {
        worker.stop()?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(args.len() >= 4, "usage: bench-peer-apalis <db> <n> <concurrency>");
    let db = &args[1];
    let n: usize = args[2].parse()?;
    let conc: usize = args[3].parse()?;
    let _ = std::fs::remove_file(db);
    let options = SqliteConnectOptions::new().filename(db).create_if_missing(true).journal_mode(SqliteJournalMode::Wal);
    let pool = SqlitePoolOptions::new().connect_with(options).await?;
    SqliteStorage::<()>::setup(&pool).await?;
    TARGET.store(n, Ordering::Relaxed);

    let started = Instant::now();
    let tasks: Vec<_> = (0..conc)
        .map(|t| {
            let mut backend = SqliteStorage::<u64>::new(&pool);
            let share = n / conc + usize::from(t < n % conc);
            tokio::spawn(async move {
                for i in 0..share {
                    backend.push(i as u64).await.map_err(|e| anyhow::anyhow!("{e}"))?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    let enqueue_s = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let backend = SqliteStorage::<u64>::new(&pool);
    let worker = WorkerBuilder::new("bench").backend(backend).concurrency(conc).build(noop);
    worker.run().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let burn_s = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"peer": "apalis-sqlite 1.0.0", "n": n, "concurrency": conc, "enqueue_s": enqueue_s, "burn_s": burn_s, "journal_mode": "wal", "done": DONE.load(Ordering::Relaxed)})
    );
    Ok(())
}
