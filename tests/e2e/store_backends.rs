//! The same store suite against both backends: SQLite (embedded) and PostgreSQL
//! (each test in a schema of its own), plus the cluster-only operations.

use std::sync::Arc;
use std::time::Duration;

use alephauto::domain::{Job, JobFailure, JobStatus, LogEntry, LogStream, Progress};
use alephauto::events::{EventKind, JobEvent};
use alephauto::store::postgres::PostgresStore;
use alephauto::store::sqlite::SqliteStore;
use alephauto::store::{ClusterNote, ClusterStore, Cursor, Finish, JobFilter, JobStore, StoreError};
use chrono::Utc;
use serde_json::json;

use crate::support::{eventually, pg_schema_url};

fn job(id: &str, pipeline: &str, ms: i64) -> Job {
    Job::new(id.into(), pipeline.into(), json!({"n": ms}), Utc::now() + chrono::Duration::milliseconds(ms))
}

fn done(status: JobStatus) -> Finish {
    Finish { status, result: Some(json!({"ok": true})), error: None, git: None, at: Utc::now() }
}

async fn backends(tag: &str) -> Vec<(&'static str, Arc<dyn JobStore>, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite: Arc<dyn JobStore> = Arc::new(SqliteStore::open(&dir.path().join("s.db")).unwrap());
    let pg: Arc<dyn JobStore> = Arc::new(
        PostgresStore::connect(&pg_schema_url(tag)).await.expect("PostgreSQL at 127.0.0.1:5432 (see scripts/setup.sh)"),
    );
    vec![("sqlite", sqlite, dir), ("postgres", pg, tempfile::tempdir().unwrap())]
}

#[tokio::test]
async fn both_backends_fence_stale_attempts_and_keep_terminal_states() {
    for (name, store, _dir) in backends("fence").await {
        store.insert(&job("a", "p", 0)).await.unwrap();
        assert!(matches!(store.insert(&job("a", "p", 0)).await, Err(StoreError::Duplicate(_))), "{name}");
        assert!(store.mark_running("a", 1, Utc::now()).await.unwrap(), "{name}");
        assert!(!store.mark_running("a", 1, Utc::now()).await.unwrap(), "{name}: claimed twice");
        let failure = JobFailure { message: "flaky".into(), code: "RETRYABLE".into(), retryable: true };
        assert!(store.requeue("a", 1, &failure, Duration::ZERO).await.unwrap(), "{name}");
        let j = store.get("a").await.unwrap().unwrap();
        assert_eq!((j.status, j.attempt), (JobStatus::Queued, 2), "{name}");
        assert!(store.mark_running("a", 2, Utc::now()).await.unwrap(), "{name}");
        store.save_progress("a", 2, &Progress { percent: 40, message: "half".into() }).await.unwrap();
        store.save_progress("a", 1, &Progress { percent: 99, message: "stale".into() }).await.unwrap();
        store.flush().await.unwrap();
        assert_eq!(store.get("a").await.unwrap().unwrap().progress.message, "half", "{name}: stale progress fenced");
        assert!(!store.finish("a", 1, &done(JobStatus::Completed)).await.unwrap(), "{name}: stale finish fenced");
        assert!(store.finish("a", 2, &done(JobStatus::Failed)).await.unwrap(), "{name}");
        assert!(!store.finish("a", 2, &done(JobStatus::Completed)).await.unwrap(), "{name}: terminal is terminal");
        assert!(store.cancel("a", Utc::now()).await.unwrap().is_none(), "{name}");
        let j = store.get("a").await.unwrap().unwrap();
        assert_eq!((j.status, j.attempt), (JobStatus::Failed, 2), "{name}");
        assert_eq!(j.result, Some(json!({"ok": true})), "{name}");

        store.insert(&job("b", "p", 1)).await.unwrap();
        let before = store.cancel("b", Utc::now()).await.unwrap().expect("cancellable");
        assert_eq!(before.status, JobStatus::Queued, "{name}");
        assert!(!store.mark_running("b", 1, Utc::now()).await.unwrap(), "{name}: a cancelled job never starts");
        assert_eq!(store.get("b").await.unwrap().unwrap().error.unwrap().code, "CANCELLED", "{name}");
    }
}

/// Requeues `later` with `delay` and `soon` with none, from running at attempt 1.
async fn requeue_two(store: &dyn JobStore, name: &str, delay: Duration) {
    let failure = JobFailure { message: "flaky".into(), code: "RETRYABLE".into(), retryable: true };
    for (i, id) in ["later", "soon"].into_iter().enumerate() {
        store.insert(&job(id, "p", i as i64)).await.unwrap();
        assert!(store.mark_running(id, 1, Utc::now()).await.unwrap(), "{name}");
    }
    assert!(store.requeue("later", 1, &failure, delay).await.unwrap(), "{name}");
    assert!(store.requeue("soon", 1, &failure, Duration::ZERO).await.unwrap(), "{name}");
    for id in ["later", "soon"] {
        let j = store.get(id).await.unwrap().unwrap();
        assert_eq!((j.status, j.attempt), (JobStatus::Queued, 2), "{name}: {id}");
    }
}

#[tokio::test]
async fn both_backends_hold_a_requeued_job_until_its_backoff_ends() {
    let delay = Duration::from_millis(1500);
    // SQLite (one node): the backoff is kept with the row, so a restarted process's `recover`
    // hands the job back with the time it may run from.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let requeued_at = Utc::now();
    requeue_two(&SqliteStore::open(&path).unwrap(), "sqlite", delay).await;
    let recovered = SqliteStore::open(&path).unwrap().recover().await.unwrap();
    let run_after = |id: &str| recovered.iter().find(|r| r.job.id == id).expect("recovered").run_after;
    let later = run_after("later").expect("a backoff is kept");
    assert!(later >= requeued_at + chrono::Duration::from_std(delay).unwrap(), "sqlite: {later}");
    assert!(later <= Utc::now() + chrono::Duration::from_std(delay).unwrap(), "sqlite: {later}");
    assert!(run_after("soon").is_none_or(|t| t <= Utc::now()), "sqlite: no delay, runnable now");

    // PostgreSQL (a cluster): claims skip the job until its backoff has passed.
    let pg = PostgresStore::connect(&pg_schema_url("backoff")).await.unwrap();
    let requeued_at = std::time::Instant::now();
    requeue_two(&pg, "postgres", delay).await;
    let lease = Duration::from_secs(30);
    let first: Vec<String> = pg.claim("p", "N", 10, 10, lease).await.unwrap().into_iter().map(|j| j.id).collect();
    assert_eq!(first, vec!["soon"], "postgres: the job in its backoff is not claimed");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let claimed = loop {
        let jobs = pg.claim("p", "N", 10, 10, lease).await.unwrap();
        if let Some(j) = jobs.into_iter().next() {
            break j;
        }
        assert!(std::time::Instant::now() < deadline, "postgres: the job was never claimable");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!((claimed.id.as_str(), claimed.attempt), ("later", 2));
    // The database's clock measured the delay; allow it a little skew from this one.
    assert!(requeued_at.elapsed() >= delay - Duration::from_millis(100), "postgres: claimed early");
}

#[tokio::test]
async fn both_backends_list_count_and_log_alike() {
    for (name, store, _dir) in backends("list").await {
        for i in 0..7 {
            store.insert(&job(&format!("j{i}"), if i % 2 == 0 { "even" } else { "odd" }, i)).await.unwrap();
        }
        store.mark_running("j6", 1, Utc::now()).await.unwrap();
        store.finish("j6", 1, &done(JobStatus::Completed)).await.unwrap();
        let page = store
            .list(&JobFilter {
                pipeline_id: Some("even".into()),
                statuses: vec![JobStatus::Queued],
                limit: 2,
                offset: 1,
                after: None,
            })
            .await
            .unwrap();
        assert_eq!(page.total, 3, "{name}");
        assert_eq!(
            page.jobs.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
            vec!["j2", "j0"],
            "{name}: newest first"
        );
        let all = store.list(&JobFilter { limit: 100, ..Default::default() }).await.unwrap();
        assert_eq!(all.total, 7, "{name}");
        assert_eq!(all.jobs[0].id, "j6", "{name}");
        let counts = store.counts().await.unwrap();
        assert_eq!(counts["even"].by_status[&JobStatus::Completed], 1, "{name}");
        assert_eq!(counts["odd"].by_status[&JobStatus::Queued], 3, "{name}");
        assert!(counts["even"].last_run.is_some(), "{name}");

        let line = |m: &str| LogEntry {
            timestamp: "2026-01-01T00:00:00.000Z".into(),
            level: "info".into(),
            stream: LogStream::Stdout,
            message: m.into(),
            fields: Some(json!({"k": 1})),
            attempt: 1,
        };
        store.append_logs("j1", vec![line("one"), line("two")]).await.unwrap();
        store.append_logs("j1", vec![line("three")]).await.unwrap();
        let logs = store.logs("j1").await.unwrap();
        assert_eq!(logs.iter().map(|l| l.message.as_str()).collect::<Vec<_>>(), vec!["one", "two", "three"], "{name}");
        assert_eq!(logs[0].fields, Some(json!({"k": 1})), "{name}");
    }
}

/// Every id of a walk by cursor, `limit` at a time.
async fn walk(store: &dyn JobStore, mut filter: JobFilter) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..100 {
        let page = store.list(&filter).await.unwrap();
        let json = store.list_json(&filter).await.unwrap();
        assert_eq!(json.next, page.next, "both listings agree on the next page");
        ids.extend(page.jobs.iter().map(|j| j.id.clone()));
        match page.next {
            Some(next) => filter.after = Some(Cursor::decode(&next.encode()).expect("a cursor round-trips")),
            None => return ids,
        }
    }
    panic!("the walk did not end");
}

#[tokio::test]
async fn both_backends_page_by_cursor_stably_with_filters() {
    for (name, store, _dir) in backends("cursor").await {
        // Ten jobs share one creation time: the insertion sequence orders them.
        for i in 0..25 {
            let ms = if i < 10 { 0 } else { i };
            let mut j = job(&format!("j{i:02}"), if i % 2 == 0 { "even" } else { "odd" }, ms);
            if i < 10 {
                j.created_at = store.get("j00").await.unwrap().map_or(j.created_at, |first| first.created_at);
            }
            store.insert(&j).await.unwrap();
        }
        for i in (0..25).step_by(3) {
            let id = format!("j{i:02}");
            store.mark_running(&id, 1, Utc::now()).await.unwrap();
            store.finish(&id, 1, &done(JobStatus::Failed)).await.unwrap();
        }
        let newest_first = |keep: &dyn Fn(usize) -> bool| {
            (0..25).rev().filter(|i| keep(*i)).map(|i| format!("j{i:02}")).collect::<Vec<_>>()
        };
        let all = walk(&*store, JobFilter { limit: 4, ..Default::default() }).await;
        assert_eq!(all, newest_first(&|_| true), "{name}");
        let even = walk(&*store, JobFilter { pipeline_id: Some("even".into()), limit: 3, ..Default::default() }).await;
        assert_eq!(even, newest_first(&|i| i % 2 == 0), "{name}");
        let failed = JobFilter { statuses: vec![JobStatus::Failed], limit: 2, ..Default::default() };
        assert_eq!(walk(&*store, failed).await, newest_first(&|i| i % 3 == 0), "{name}");
        let queued_odd = JobFilter {
            pipeline_id: Some("odd".into()),
            statuses: vec![JobStatus::Queued],
            limit: 5,
            ..Default::default()
        };
        assert_eq!(walk(&*store, queued_odd).await, newest_first(&|i| i % 2 == 1 && i % 3 != 0), "{name}");

        // Stable under inserts: a page taken after new jobs arrive continues where the last one ended.
        let first = store.list(&JobFilter { limit: 7, ..Default::default() }).await.unwrap();
        for i in 0..5 {
            store.insert(&job(&format!("new{i}"), "even", 1000 + i)).await.unwrap();
        }
        let rest = walk(&*store, JobFilter { limit: 7, after: first.next, ..Default::default() }).await;
        let ids: Vec<String> = first.jobs.iter().map(|j| j.id.clone()).chain(rest).collect();
        assert_eq!(ids, newest_first(&|_| true), "{name}");
        // The last page says so; an exact multiple of the page size too.
        let last = store.list(&JobFilter { limit: 30, ..Default::default() }).await.unwrap();
        assert_eq!((last.jobs.len(), last.next), (30, None), "{name}");
    }
    assert!(Cursor::decode("nonsense").is_none());
    assert!(Cursor::decode(&"f".repeat(32)).is_none(), "negative sequence");
}

#[tokio::test]
async fn postgres_claims_respect_the_cluster_cap_leases_and_leadership() {
    let url = pg_schema_url("claim");
    let a = PostgresStore::connect(&url).await.unwrap();
    let b = PostgresStore::connect(&url).await.unwrap();
    for i in 0..10 {
        a.insert(&job(&format!("c{i}"), "p", i)).await.unwrap();
        a.insert(&job(&format!("q{i}"), "q", i)).await.unwrap();
    }
    // Two nodes claiming at once never exceed the cap of 3 together.
    let lease = Duration::from_secs(1);
    let (q1, q2) = tokio::join!(
        a.claim("q", "A", 3, 3, Duration::from_secs(30)),
        b.claim("q", "B", 3, 3, Duration::from_secs(30))
    );
    assert_eq!(q1.unwrap().len() + q2.unwrap().len(), 3);
    // A takes two, B gets only the one slot left.
    let x = a.claim("p", "A", 2, 3, lease).await.unwrap();
    let y = b.claim("p", "B", 3, 3, lease).await.unwrap();
    assert_eq!((x.len(), y.len()), (2, 1));
    assert!(x.iter().chain(&y).all(|j| j.status == JobStatus::Running));
    assert!(a.claim("p", "A", 5, 3, lease).await.unwrap().is_empty(), "cap reached");
    // FIFO: the oldest three were taken.
    let mut ids: Vec<_> = x.iter().chain(&y).map(|j| j.id.clone()).collect();
    ids.sort();
    assert_eq!(ids, vec!["c0", "c1", "c2"]);

    // Only one node leads.
    assert_ne!(a.try_lead().await.unwrap(), b.try_lead().await.unwrap());

    // A's leases expire without heartbeats; B's are renewed. The rescue re-queues A's with attempt 2.
    let mut notes = b.notes();
    let b_ids: Vec<String> = y.iter().map(|j| j.id.clone()).collect();
    // Time passing is the behaviour here: B renews before the 1-s leases run out.
    tokio::time::sleep(Duration::from_millis(600)).await;
    b.heartbeat("B", &b_ids, Duration::from_secs(30)).await.unwrap();
    let rescued = std::cell::Cell::new(0u64);
    eventually(Duration::from_secs(10), "A's leases expire and are rescued", || async {
        rescued.set(rescued.get() + a.rescue_expired().await.unwrap());
        if rescued.get() as usize >= x.len() { Ok(()) } else { Err(rescued.get()) }
    })
    .await;
    assert_eq!(rescued.get() as usize, x.len(), "only A's expired leases, not B's renewed one");
    for j in &x {
        let now = a.get(&j.id).await.unwrap().unwrap();
        assert_eq!((now.status, now.attempt), (JobStatus::Queued, 2));
        // The dead node's late write is fenced out.
        assert!(!a.finish(&j.id, 1, &done(JobStatus::Completed)).await.unwrap());
    }
    // Wake-ups reach other nodes.
    let note = tokio::time::timeout(Duration::from_secs(5), notes.recv()).await.unwrap().unwrap();
    assert!(matches!(note, ClusterNote::Wake(ref p) if p == "p"), "{note:?}");

    // A cancel reaches the node running the job, and heartbeats report it too.
    let target = &y.first().expect("B claimed something").id;
    b.cancel(target, Utc::now()).await.unwrap().unwrap();
    let cancelled = b.heartbeat("B", &b_ids, Duration::from_secs(30)).await.unwrap();
    assert!(cancelled.contains(target));

    // Events cross nodes; pruning removes old finished jobs.
    let event = JobEvent::of(EventKind::Completed, &a.get("c0").await.unwrap().unwrap());
    a.broadcast(&event).await.unwrap();
    let got = loop {
        match tokio::time::timeout(Duration::from_secs(5), notes.recv()).await.unwrap().unwrap() {
            ClusterNote::Event(e) => break e,
            _ => continue,
        }
    };
    assert_eq!(got.job_id, "c0");
    let pruned = a.prune(Utc::now() + chrono::Duration::seconds(1)).await.unwrap();
    assert!(pruned <= 10);
    assert!(a.get(target).await.unwrap().is_none(), "cancelled job pruned");
}

#[tokio::test]
async fn both_backends_find_and_delete_jobs_past_retention_alike() {
    for (name, store, _dir) in backends("retention").await {
        // Five finished jobs of p (oldest first), one running, one of another pipeline.
        for (i, id) in ["r1", "r2", "r3", "r4", "r5"].iter().enumerate() {
            store.insert(&job(id, "p", i as i64)).await.unwrap();
            assert!(store.mark_running(id, 1, Utc::now()).await.unwrap(), "{name}");
            let mut finish = done(JobStatus::Completed);
            finish.at = Utc::now() - chrono::Duration::hours(10 - 2 * i as i64);
            assert!(store.finish(id, 1, &finish).await.unwrap(), "{name}");
            store
                .append_logs(
                    id,
                    vec![LogEntry {
                        timestamp: alephauto::domain::format_ts(&Utc::now()),
                        level: "info".into(),
                        stream: LogStream::Log,
                        message: "m".into(),
                        fields: None,
                        attempt: 1,
                    }],
                )
                .await
                .unwrap();
        }
        store.insert(&job("live", "p", 9)).await.unwrap();
        assert!(store.mark_running("live", 1, Utc::now()).await.unwrap());
        store.insert(&job("other", "q", 9)).await.unwrap();
        store.flush().await.unwrap();

        let keep_two = store.expired("p", None, Some(2), 100).await.unwrap();
        assert_eq!(keep_two, ["r1", "r2", "r3"], "{name}: oldest first, the newest two kept");
        let by_age = store.expired("p", Some(Utc::now() - chrono::Duration::hours(5)), None, 100).await.unwrap();
        assert_eq!(by_age, ["r1", "r2", "r3"], "{name}: finished more than 5 hours ago");
        assert_eq!(store.expired("p", None, Some(2), 1).await.unwrap(), ["r1"], "{name}: limit");
        assert!(store.expired("p", None, None, 100).await.unwrap().is_empty(), "{name}: no policy, nothing");

        // Only terminal jobs go, with their logs; the running one and unknown ids are ignored.
        let ids: Vec<String> = ["r1", "r2", "live", "nope"].iter().map(|s| s.to_string()).collect();
        assert_eq!(store.delete_terminal(&ids).await.unwrap(), 2, "{name}");
        store.flush().await.unwrap();
        assert!(store.get("r1").await.unwrap().is_none(), "{name}");
        assert!(store.logs("r1").await.unwrap().is_empty(), "{name}: logs go with the job");
        assert_eq!(store.logs("r3").await.unwrap().len(), 1, "{name}");
        assert_eq!(store.get("live").await.unwrap().unwrap().status, JobStatus::Running, "{name}");
        let page = store
            .list(&JobFilter { pipeline_id: Some("p".into()), statuses: vec![], limit: 10, offset: 0, after: None })
            .await
            .unwrap();
        assert_eq!(page.total, 4, "{name}: counts follow the deletion");
    }
}

#[tokio::test]
async fn both_backends_keep_the_worker_version_a_job_runs_on() {
    for (name, store, _dir) in backends("versions").await {
        let mut pinned = job("v", "p", 0);
        pinned.worker_version = Some("1.2.0".into());
        pinned.component_digest = Some("0f".repeat(32));
        store.insert(&pinned).await.unwrap();
        store.insert(&job("old", "p", 1)).await.unwrap();
        assert!(store.mark_running("v", 1, Utc::now()).await.unwrap(), "{name}");
        assert!(store.finish("v", 1, &done(JobStatus::Completed)).await.unwrap(), "{name}");
        let got = store.get("v").await.unwrap().unwrap();
        assert_eq!(got.worker_version.as_deref(), Some("1.2.0"), "{name}");
        assert_eq!(got.component_digest, pinned.component_digest, "{name}");
        // Jobs from before versions were recorded read back without them.
        let old = store.get("old").await.unwrap().unwrap();
        assert_eq!((old.worker_version, old.component_digest), (None, None), "{name}");
        // Listings and recovery carry them too.
        let page = store
            .list(&JobFilter { pipeline_id: Some("p".into()), statuses: vec![], limit: 10, offset: 0, after: None })
            .await
            .unwrap();
        let listed = page.jobs.iter().find(|j| j.id == "v").expect("listed");
        assert_eq!(listed.worker_version.as_deref(), Some("1.2.0"), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_claims_across_pipelines_hold_every_cap_under_concurrent_claimers() {
    let url = pg_schema_url("claim_many");
    let mut nodes: Vec<Arc<PostgresStore>> = Vec::new();
    for _ in 0..4 {
        nodes.push(Arc::new(PostgresStore::connect(&url).await.unwrap()));
    }
    // 300 jobs inserted at once (one group-committed batch or a few); a repeated id in a
    // batch is a duplicate, not a second row.
    let ids: Vec<(String, &str)> = (0..300).map(|i| (format!("m{i:03}"), if i % 3 == 0 { "b" } else { "a" })).collect();
    let jobs: Vec<Job> = ids.iter().map(|(id, p)| job(id, p, 0)).collect();
    let inserted = futures::future::join_all(jobs.iter().map(|j| nodes[0].insert(j))).await;
    assert!(inserted.iter().all(Result::is_ok), "{inserted:?}");
    let (dup1, dup2) = (job("dup", "a", 0), job("dup", "a", 0));
    let (first, again) = tokio::join!(nodes[1].insert(&dup1), nodes[1].insert(&dup2));
    assert!(
        matches!((&first, &again), (Ok(()), Err(StoreError::Duplicate(_))) | (Err(StoreError::Duplicate(_)), Ok(()))),
        "{first:?} {again:?}"
    );
    assert_eq!(nodes[2].queued_count("a").await.unwrap(), 201, "the trigger-kept count");
    assert_eq!(nodes[2].queued_count("b").await.unwrap(), 100);

    // A sampler watches the running counts while four nodes claim both pipelines in one call each
    // and finish what they claim; caps: a = 5, b = 2.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (store, stop) = (nodes[3].clone(), stop.clone());
        tokio::spawn(async move {
            let (mut max_a, mut max_b) = (0u64, 0u64);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let counts = store.counts().await.unwrap();
                let running =
                    |p: &str| counts.get(p).and_then(|c| c.by_status.get(&JobStatus::Running)).copied().unwrap_or(0);
                max_a = max_a.max(running("a"));
                max_b = max_b.max(running("b"));
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (max_a, max_b)
        })
    };
    let requests = [
        alephauto::store::ClaimRequest { pipeline: "a".into(), limit: 5, cap: 5 },
        alephauto::store::ClaimRequest { pipeline: "b".into(), limit: 5, cap: 2 },
    ];
    let workers = nodes.iter().take(3).enumerate().map(|(n, store)| {
        let (store, requests) = (store.clone(), requests.clone());
        tokio::spawn(async move {
            let mut mine = Vec::new();
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            loop {
                assert!(std::time::Instant::now() < deadline, "claiming stalled");
                let claimed = store.claim_many(&requests, &format!("N{n}"), Duration::from_secs(30)).await.unwrap();
                if claimed.is_empty() {
                    if store.queued_count("a").await.unwrap() + store.queued_count("b").await.unwrap() == 0 {
                        return mine;
                    }
                    tokio::task::yield_now().await;
                    continue;
                }
                let outcome = done(JobStatus::Completed);
                let finished =
                    futures::future::join_all(claimed.iter().map(|j| store.finish(&j.id, j.attempt, &outcome))).await;
                for (j, f) in claimed.iter().zip(finished) {
                    assert!(f.unwrap(), "{} finished once", j.id);
                    mine.push(j.id.clone());
                }
            }
        })
    });
    let mut ran: Vec<String> = Vec::new();
    for w in futures::future::join_all(workers).await {
        ran.extend(w.unwrap());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (max_a, max_b) = sampler.await.unwrap();
    assert!(max_a <= 5 && max_b <= 2, "caps exceeded: a {max_a} of 5, b {max_b} of 2");
    ran.sort();
    let before = ran.len();
    ran.dedup();
    assert_eq!((before, ran.len()), (301, 301), "every job claimed and finished exactly once");
    let counts = nodes[3].counts().await.unwrap();
    let completed: u64 = counts.values().filter_map(|c| c.by_status.get(&JobStatus::Completed)).sum();
    assert_eq!(completed, 301);
    assert_eq!(nodes[3].queued_count("a").await.unwrap(), 0);
}
