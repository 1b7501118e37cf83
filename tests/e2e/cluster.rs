//! Several `alephauto serve` processes on one PostgreSQL database acting as one
//! service: exactly-once execution under a cluster-wide cap, rescue of a killed
//! node's jobs with fencing, cross-node events and cancels.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use alephauto::domain::JobStatus;
use alephauto::store::postgres::PostgresStore;
use alephauto::store::{Finish, JobStore};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{Server, component, pg_schema_url};

/// A node's config: shared database, its own id, the echo pipeline granted `shared`.
fn node(url: &str, id: &str, shared: &std::path::Path, pipelines: &[&str]) -> Server {
    let mut tables = String::new();
    for p in pipelines {
        tables.push_str(&format!(
            "[pipelines.{p}]\ncomponent = {:?}\nroots = [{:?}]\nmax_concurrent = 4\n",
            component("fixture_echo"),
            shared.display().to_string()
        ));
    }
    Server::start_with(&tables, &format!("database_url = {url:?}\nnode_id = {id:?}\nlease_secs = 2\n"))
}

async fn rows(
    url: &str,
) -> Vec<(
    String,
    String,
    u32,
    Option<String>,
    Option<chrono::DateTime<chrono::Utc>>,
    Option<chrono::DateTime<chrono::Utc>>,
)> {
    let config: tokio_postgres::Config = url.parse().unwrap();
    let (client, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client
        .query("SELECT id, status, attempt, node_id, started_at, completed_at FROM jobs", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get::<_, i32>(2) as u32, r.get(3), r.get(4), r.get(5)))
        .collect()
}

fn journal(dir: &std::path::Path) -> HashMap<String, Vec<u32>> {
    let mut runs: HashMap<String, Vec<u32>> = HashMap::new();
    for line in std::fs::read_to_string(dir.join("runs.log")).unwrap_or_default().lines() {
        let (id, a) = line.split_once(' ').unwrap();
        runs.entry(id.into()).or_default().push(a.parse().unwrap());
    }
    runs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_jobs_through_two_nodes_run_exactly_once_under_the_cluster_cap() {
    let url = pg_schema_url("exactly_once");
    let shared = tempfile::tempdir().unwrap();
    let shared = std::fs::canonicalize(shared.path()).unwrap();
    let a = node(&url, "node-a", &shared, &["echo"]);
    let b = node(&url, "node-b", &shared, &["echo"]);
    let params = json!({"sleepMs": 2, "journalDir": shared.display().to_string()});
    let mut ids = Vec::new();
    for round in 0..40 {
        let server = if round % 2 == 0 { &a } else { &b };
        let batch = (0..50).map(|_| server.trigger_ok("echo", params.clone()));
        ids.extend(futures::future::join_all(batch).await);
    }
    let start = Instant::now();
    while a.count("completed").await < 2000 {
        assert!(start.elapsed() < Duration::from_secs(300), "stuck at {}", a.count("completed").await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rows = rows(&url).await;
    assert_eq!(rows.len(), 2000);
    let runs = journal(&shared);
    let mut by_node: HashMap<String, usize> = HashMap::new();
    for (id, status, attempt, node, _, _) in &rows {
        assert_eq!((status.as_str(), *attempt), ("completed", 1), "{id}");
        assert_eq!(runs.get(id).map(Vec::len), Some(1), "{id} ran exactly once");
        *by_node.entry(node.clone().unwrap_or_default()).or_default() += 1;
    }
    assert_eq!(runs.len(), 2000);
    assert!(
        by_node.get("node-a").copied().unwrap_or(0) > 0 && by_node.get("node-b").copied().unwrap_or(0) > 0,
        "{by_node:?}"
    );
    // The cap (4) holds across the cluster: never more than 4 intervals overlap.
    let mut edges: Vec<(chrono::DateTime<chrono::Utc>, i32)> = Vec::new();
    for (_, _, _, _, started, completed) in &rows {
        edges.push((started.unwrap(), 1));
        edges.push((completed.unwrap(), -1));
    }
    edges.sort_by(|x, y| x.0.cmp(&y.0).then(x.1.cmp(&y.1)));
    let (mut now, mut peak) = (0, 0);
    for (_, d) in edges {
        now += d;
        peak = peak.max(now);
    }
    eprintln!("cluster: {by_node:?}, peak concurrency {peak}");
    assert!(peak <= 4, "cluster-wide cap exceeded: {peak}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_jobs_are_rescued_and_its_late_writes_fenced() {
    let url = pg_schema_url("rescue");
    let shared = tempfile::tempdir().unwrap();
    let shared = std::fs::canonicalize(shared.path()).unwrap();
    let mut a = node(&url, "node-a", &shared, &["echo"]);
    let ids: Vec<String> =
        futures::future::join_all((0..4).map(|_| a.trigger_ok("echo", json!({"sleepMs": 3000})))).await;
    for id in &ids {
        a.wait_status(id, &["running"], Duration::from_secs(30)).await;
    }
    a.kill();
    let b = node(&url, "node-b", &shared, &["echo"]);
    for id in &ids {
        let job = b.wait_job(id, Duration::from_secs(60)).await;
        assert_eq!(job["status"], "completed", "{job}");
        assert_eq!(job["attempt"], 2, "re-run by the surviving node: {job}");
    }
    let nodes: Vec<Option<String>> = rows(&url).await.into_iter().map(|r| r.3).collect();
    assert!(nodes.iter().all(|n| n.as_deref() == Some("node-b")), "{nodes:?}");
    // A late write of the killed attempt is rejected.
    let store = PostgresStore::connect(&url).await.unwrap();
    let late = Finish { status: JobStatus::Failed, result: None, error: None, git: None, at: chrono::Utc::now() };
    assert!(!store.finish(&ids[0], 1, &late).await.unwrap());
    assert_eq!(store.get(&ids[0]).await.unwrap().unwrap().status, JobStatus::Completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_and_cancels_cross_nodes() {
    let url = pg_schema_url("events");
    let shared = tempfile::tempdir().unwrap();
    let shared = std::fs::canonicalize(shared.path()).unwrap();
    // Only node B runs `echo-b`; node A serves the API and the feed.
    let a = node(&url, "node-a", &shared, &["echo"]);
    let b = node(&url, "node-b", &shared, &["echo", "echo-b"]);
    let mut ws = a.ws().await;
    ws.send(Message::Text(json!({"type": "subscribe", "channels": ["jobs"]}).to_string().into())).await.unwrap();
    loop {
        let Some(Ok(Message::Text(t))) = ws.next().await else { panic!("ws closed") };
        if serde_json::from_str::<Value>(&t).unwrap()["type"] == "subscribed" {
            break;
        }
    }
    let id = b.trigger_ok("echo-b", json!({"steps": 2, "sleepMs": 100})).await;
    let mut kinds = Vec::new();
    while kinds.last().map(String::as_str) != Some("job:completed") {
        let msg = tokio::time::timeout(Duration::from_secs(30), ws.next()).await.expect("event on node A");
        let Some(Ok(Message::Text(t))) = msg else { panic!("ws closed") };
        let v: Value = serde_json::from_str(&t).unwrap();
        if v["jobId"] == id.as_str() {
            kinds.push(v["type"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(kinds.first().map(String::as_str), Some("job:created"), "{kinds:?}");
    assert!(kinds.contains(&"job:started".to_string()) && kinds.contains(&"job:progress".to_string()), "{kinds:?}");

    // Cancel through node A a job that node B is running.
    let long = b.trigger_ok("echo-b", json!({"sleepMs": 60000, "steps": 100})).await;
    b.wait_status(&long, &["running"], Duration::from_secs(30)).await;
    let (code, job) = a.post(&format!("/api/jobs/{long}/cancel"), json!({})).await;
    assert_eq!(code, 200, "{job}");
    let started = Instant::now();
    // B's slot frees: a new echo-b job completes promptly.
    let next = b.run("echo-b", json!({})).await;
    assert_eq!(next["status"], "completed");
    assert!(started.elapsed() < Duration::from_secs(15));
    let (_, job) = b.get(&format!("/api/jobs/{long}")).await;
    assert_eq!(job["status"], "cancelled");
}
