//! Unit tests of the SQLite store: WAL and its checkpoints, migrations, fencing, listing, group commit, logs.
use super::*;
use crate::domain::{JobStatus, format_ts};
use serde_json::json;

fn job(id: &str) -> Job {
    Job::new(id.into(), "p".into(), json!({"x": 1}), Utc::now())
}

fn finish(status: JobStatus) -> Finish {
    Finish { status, result: Some(json!({"ok": true})), error: None, git: None, at: Utc::now() }
}

#[tokio::test]
async fn wal_mode_is_on_and_migrations_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.journal_mode().unwrap(), "wal");
    store.insert(&job("j1")).await.unwrap();
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    assert!(store.get("j1").await.unwrap().is_some());
}

#[tokio::test]
async fn duplicate_ids_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("a.db")).unwrap();
    store.insert(&job("j1")).await.unwrap();
    assert!(matches!(store.insert(&job("j1")).await, Err(StoreError::Duplicate(_))));
}

#[tokio::test]
async fn a_stale_attempt_cannot_overwrite_a_newer_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let store = SqliteStore::open(&path).unwrap();
    store.insert(&job("j1")).await.unwrap();
    assert!(store.mark_running("j1", 1, Utc::now()).await.unwrap());
    drop(store);
    // The process died; a new one recovers the job as attempt 2.
    let store = SqliteStore::open(&path).unwrap();
    let queued = store.recover().await.unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].job.attempt, 2);
    assert!(store.mark_running("j1", 2, Utc::now()).await.unwrap());
    // A late write from attempt 1 is fenced out.
    assert!(!store.finish("j1", 1, &finish(JobStatus::Completed)).await.unwrap());
    assert!(store.finish("j1", 2, &finish(JobStatus::Failed)).await.unwrap());
    // Terminal is terminal.
    assert!(!store.finish("j1", 2, &finish(JobStatus::Completed)).await.unwrap());
    assert_eq!(store.get("j1").await.unwrap().unwrap().status, JobStatus::Failed);
    assert!(store.cancel("j1", Utc::now()).await.unwrap().is_none());
}

#[tokio::test]
async fn listing_filters_and_pages_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("a.db")).unwrap();
    for i in 0..5 {
        let mut j = job(&format!("j{i}"));
        j.created_at = Utc::now() + chrono::Duration::milliseconds(i);
        store.insert(&j).await.unwrap();
    }
    store.mark_running("j4", 1, Utc::now()).await.unwrap();
    let page = store
        .list(&JobFilter {
            pipeline_id: Some("p".into()),
            statuses: vec![JobStatus::Queued],
            limit: 2,
            offset: 1,
            after: None,
        })
        .await
        .unwrap();
    assert_eq!(page.total, 4);
    assert_eq!(page.jobs.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), vec!["j2", "j1"]);
    let counts = store.counts().await.unwrap();
    assert_eq!(counts["p"].by_status[&JobStatus::Queued], 4);
    assert_eq!(counts["p"].by_status[&JobStatus::Running], 1);
}

#[tokio::test]
async fn concurrent_writes_are_group_committed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("a.db")).unwrap());
    let mut tasks = Vec::new();
    for i in 0..500 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move { s.insert(&job(&format!("j{i}"))).await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(store.list(&JobFilter { limit: 1, ..Default::default() }).await.unwrap().total, 500);
}

#[tokio::test]
async fn logs_keep_their_order_across_appends() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("a.db")).unwrap();
    let entry = |m: &str| LogEntry {
        timestamp: format_ts(&Utc::now()),
        level: "info".into(),
        stream: crate::domain::LogStream::Log,
        message: m.into(),
        fields: None,
        attempt: 1,
    };
    store.append_logs("j", vec![entry("a"), entry("b")]).await.unwrap();
    store.append_logs("j", vec![entry("c")]).await.unwrap();
    let logs = store.logs("j").await.unwrap();
    assert_eq!(logs.iter().map(|l| l.message.as_str()).collect::<Vec<_>>(), vec!["a", "b", "c"]);
}

fn count(store: &SqliteStore, status: JobStatus) -> u64 {
    store.tally.snapshot().get("p").and_then(|c| c.by_status.get(&status).copied()).unwrap_or(0)
}

#[tokio::test]
async fn finish_and_claim_hands_the_slot_on_in_one_write_and_counts_follow() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let store = SqliteStore::open(&path).unwrap();
    for id in ["j1", "j2", "j3", "j4"] {
        store.insert(&job(id)).await.unwrap();
    }
    assert!(store.mark_running("j1", 1, Utc::now()).await.unwrap());
    let next = Claim { id: "j2", attempt: 1, at: Utc::now() };
    let done = finish(JobStatus::Completed);
    assert_eq!(store.finish_and_claim("j1", 1, &done, Some(next)).await.unwrap(), (true, Some(true)));
    assert_eq!(store.get("j2").await.unwrap().unwrap().status, JobStatus::Running);
    assert_eq!((count(&store, JobStatus::Queued), count(&store, JobStatus::Running)), (2, 1));
    assert_eq!(count(&store, JobStatus::Completed), 1);

    // A successor cancelled while it waited is not claimed; the outcome still lands.
    store.cancel("j3", Utc::now()).await.unwrap().unwrap();
    let next = Claim { id: "j3", attempt: 1, at: Utc::now() };
    assert_eq!(
        store.finish_and_claim("j2", 1, &finish(JobStatus::Failed), Some(next)).await.unwrap(),
        (true, Some(false))
    );
    assert_eq!(store.get("j3").await.unwrap().unwrap().status, JobStatus::Cancelled);
    // A stale outcome is fenced out, and the claim is still its own.
    let next = Claim { id: "j4", attempt: 1, at: Utc::now() };
    assert_eq!(store.finish_and_claim("j2", 1, &done, Some(next)).await.unwrap(), (false, Some(true)));

    let expected = [
        (JobStatus::Queued, 0),
        (JobStatus::Running, 1),
        (JobStatus::Completed, 1),
        (JobStatus::Failed, 1),
        (JobStatus::Cancelled, 1),
    ];
    for (status, n) in expected {
        assert_eq!(count(&store, status), n, "{status:?} in memory");
    }
    let total = |statuses: Vec<JobStatus>| {
        let store = &store;
        async move { store.list(&JobFilter { statuses, limit: 10, ..Default::default() }).await.unwrap().total }
    };
    assert_eq!(total(vec![]).await, 4);
    assert_eq!(total(vec![JobStatus::Failed, JobStatus::Cancelled]).await, 2);
    assert!(store.counts().await.unwrap()["p"].last_run.is_some());
    drop(store);

    // Reopened: counted from the table; recovery moves the running job back to queued.
    let store = SqliteStore::open(&path).unwrap();
    for (status, n) in expected {
        assert_eq!(count(&store, status), n, "{status:?} after reopening");
    }
    assert_eq!(store.recover().await.unwrap().len(), 1);
    assert_eq!((count(&store, JobStatus::Queued), count(&store, JobStatus::Running)), (1, 0));
}

#[tokio::test]
async fn the_json_listing_is_exactly_the_serialised_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("a.db")).unwrap();
    let mut full = job("full");
    full.data = json!({"path": "/tmp/a \"quoted\" \u{e9}", "n": [1, 2.5, null], "nested": {"b": true}});
    full.retried_from = Some("older".into());
    full.retry_count = 2;
    full.worker_version = Some("1.2.0".into());
    full.component_digest = Some("ab".repeat(32));
    full.created_at = Utc::now() - chrono::Duration::seconds(5);
    store.insert(&full).await.unwrap();
    store.insert(&job("plain")).await.unwrap();
    store.insert(&job("cancelled")).await.unwrap();
    assert!(store.mark_running("full", 1, Utc::now()).await.unwrap());
    store.save_progress("full", 1, &Progress { percent: 40, message: "line\nbreak \\ tab\t".into() }).await.unwrap();
    let git = crate::domain::GitInfo {
        branch_name: Some("b".into()),
        changed_files: vec!["x.rs".into()],
        ..Default::default()
    };
    let done = Finish { git: Some(git), ..finish(JobStatus::Completed) };
    assert!(store.finish("full", 1, &done).await.unwrap());
    store.cancel("cancelled", Utc::now()).await.unwrap().unwrap();

    let filters = [
        JobFilter { limit: 50, ..Default::default() },
        JobFilter { limit: 1, offset: 1, ..Default::default() },
        JobFilter { statuses: vec![JobStatus::Completed, JobStatus::Cancelled], limit: 10, ..Default::default() },
        JobFilter {
            pipeline_id: Some("p".into()),
            statuses: vec![JobStatus::Queued],
            limit: 10,
            offset: 0,
            after: None,
        },
        JobFilter { pipeline_id: Some("nope".into()), limit: 10, ..Default::default() },
    ];
    for filter in filters {
        let page = store.list(&filter).await.unwrap();
        let text = store.list_json(&filter).await.unwrap();
        assert_eq!(text.jobs, serde_json::to_string(&page.jobs).unwrap(), "{filter:?}");
        assert_eq!((text.count, text.total), (page.jobs.len(), page.total));
    }
}

#[tokio::test]
async fn a_cached_listing_is_not_compiled_again_for_each_page() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("a.db")).unwrap();
    for i in 0..3 {
        store.insert(&job(&format!("j{i}"))).await.unwrap();
    }
    let conn = open_connection(&store.path).unwrap();
    for statuses in [vec![], vec![JobStatus::Queued]] {
        for (limit, offset) in [(50, 0), (2, 1), (50, 0)] {
            let filter = JobFilter { statuses: statuses.clone(), limit, offset, ..Default::default() };
            assert!(read::list_json(&conn, &filter, 3).unwrap().count > 0);
        }
        // Without QPSG, SQLite's planner reads the bound LIMIT and every step re-prepares.
        let (sql, _) = read::page_query(&JobFilter { statuses, ..Default::default() });
        let stmt = conn.prepare_cached(&sql).unwrap();
        assert_eq!(stmt.get_status(rusqlite::StatementStatus::RePrepare), 0, "{sql}");
        assert_eq!(stmt.get_status(rusqlite::StatementStatus::Run), 3, "{sql}");
    }
}

#[tokio::test]
async fn counts_reopen_from_the_shutdown_snapshot_until_the_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let store = SqliteStore::open(&path).unwrap();
    for id in ["j1", "j2", "j3"] {
        store.insert(&job(id)).await.unwrap();
    }
    assert!(store.mark_running("j1", 1, Utc::now()).await.unwrap());
    assert!(store.finish("j1", 1, &finish(JobStatus::Completed)).await.unwrap());
    store.flush().await.unwrap();
    drop(store);

    // Proof that a clean reopen reads the snapshot, not the table: doctor the snapshot.
    let doctor = |n: i64| {
        let conn = Connection::open(&path).unwrap();
        conn.execute("UPDATE job_tally SET n = ?1 WHERE status = 'completed'", [n]).unwrap();
    };
    doctor(7);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(count(&store, JobStatus::Completed), 7, "read from the snapshot");
    assert_eq!(count(&store, JobStatus::Queued), 2);
    assert!(store.counts().await.unwrap()["p"].last_run.is_some());
    // A write invalidates the snapshot; a crash (no flush) then means a count at the next open.
    store.insert(&job("j4")).await.unwrap();
    drop(store);
    doctor(9);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(count(&store, JobStatus::Completed), 1, "counted from the table");
    assert_eq!(count(&store, JobStatus::Queued), 3);
}

#[tokio::test]
async fn status_listings_use_the_partial_indexes_and_completed_ones_still_list() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("a.db")).unwrap();
    for (i, status) in [JobStatus::Completed, JobStatus::Failed, JobStatus::Completed].into_iter().enumerate() {
        let mut j = job(&format!("j{i}"));
        j.created_at = Utc::now() + chrono::Duration::milliseconds(i as i64);
        store.insert(&j).await.unwrap();
        store.mark_running(&j.id, 1, Utc::now()).await.unwrap();
        store.finish(&j.id, 1, &finish(status)).await.unwrap();
    }
    let ids = |statuses: Vec<JobStatus>| {
        let store = &store;
        async move {
            let page = store.list(&JobFilter { statuses, limit: 10, ..Default::default() }).await.unwrap();
            (page.total, page.jobs.into_iter().map(|j| j.id).collect::<Vec<_>>())
        }
    };
    assert_eq!(ids(vec![JobStatus::Completed]).await, (2, vec!["j2".to_string(), "j0".to_string()]));
    assert_eq!(ids(vec![JobStatus::Failed]).await, (1, vec!["j1".to_string()]));
    assert_eq!(ids(vec![JobStatus::Failed, JobStatus::Completed]).await.0, 3);

    // Without the repeated predicate SQLite would not use the partial index.
    let conn = open_connection(&store.path).unwrap();
    let uses = |statuses: Vec<JobStatus>, index: &str| {
        let (sql, args) = read::page_query(&JobFilter { statuses, limit: 10, ..Default::default() });
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), |r| r.get::<_, String>(3)).unwrap();
        let plan = rows.map(Result::unwrap).collect::<Vec<_>>().join("; ");
        assert!(plan.contains(index), "{plan}");
    };
    uses(vec![JobStatus::Failed], "jobs_ended_badly");
    uses(vec![JobStatus::Cancelled, JobStatus::Failed], "jobs_ended_badly");
    uses(vec![JobStatus::Queued], "jobs_active");
    uses(vec![JobStatus::Running, JobStatus::Queued], "jobs_active");
    uses(vec![JobStatus::Completed], "jobs_by_created");
}

#[tokio::test]
async fn the_wal_is_checkpointed_off_the_commit_path_and_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let wal = dir.path().join("a.db-wal");
    let mut largest_wal = 0;
    // ~40k WAL frames in all without checkpoints (small batches, several pages each).
    for round in 0..20 {
        let mut tasks = Vec::new();
        for i in 0..1000 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move { s.insert(&job(&format!("r{round}-j{i}"))).await }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        largest_wal = largest_wal.max(std::fs::metadata(&wal).unwrap().len());
    }
    // 4,096 frames before the writer checkpoints itself, plus a batch and a busy retry or two.
    let bound = 8192 * (4096 + 24);
    assert!(largest_wal <= bound, "WAL grew to {largest_wal} bytes");
    // The rows reached the database file itself (checkpointed), not only the WAL.
    assert!(std::fs::metadata(&path).unwrap().len() > 2_000_000, "database file not checkpointed");
    assert_eq!(store.list(&JobFilter { limit: 1, ..Default::default() }).await.unwrap().total, 20_000);
}

#[tokio::test]
async fn a_cursor_page_seeks_its_index_instead_of_walking_the_rows_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("a.db")).unwrap();
    for i in 0..2000 {
        let mut j = job(&format!("j{i}"));
        j.created_at = Utc::now() + chrono::Duration::milliseconds(i / 3);
        store.insert(&j).await.unwrap();
    }
    let conn = open_connection(&store.path).unwrap();
    let deep = store.list(&JobFilter { limit: 10, offset: 1500, ..Default::default() }).await.unwrap();
    let after = deep.next.expect("more pages");
    for (statuses, pipeline_id) in [(vec![], None), (vec![JobStatus::Completed], None), (vec![], Some("p".to_string()))]
    {
        let filter = JobFilter { statuses, pipeline_id, limit: 10, after: Some(after), ..Default::default() };
        let (sql, args) = read::page_query(&filter);
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), |r| r.get::<_, String>(3)).unwrap();
        let plan = rows.map(Result::unwrap).collect::<Vec<_>>().join("; ");
        assert!(plan.contains("USING INDEX") && plan.contains("created_at<?"), "a range seek: {plan}");
        assert!(!plan.contains("TEMP B-TREE"), "no sort: {plan}");
        // The SQLite VM steps over the page's rows, not over the 1,500 before it.
        let steps = |f: &JobFilter| {
            let (sql, args) = read::page_query(f);
            let mut stmt = conn.prepare(&sql).unwrap();
            assert!(stmt.query_map(rusqlite::params_from_iter(args.iter()), |_| Ok(())).unwrap().count() <= 11);
            stmt.get_status(rusqlite::StatementStatus::VmStep)
        };
        let by_offset = JobFilter { after: None, offset: 1510, ..filter.clone() };
        if filter.statuses.is_empty() {
            assert!(steps(&filter) * 10 < steps(&by_offset), "{} against {}", steps(&filter), steps(&by_offset));
        }
        let page = store.list(&filter).await.unwrap();
        let by_offset = store.list(&JobFilter { after: None, offset: 1510, ..filter.clone() }).await.unwrap();
        if filter.statuses.is_empty() {
            assert_eq!(
                page.jobs.iter().map(|j| &j.id).collect::<Vec<_>>(),
                by_offset.jobs.iter().map(|j| &j.id).collect::<Vec<_>>(),
                "the cursor page is the offset page"
            );
        }
    }
}
