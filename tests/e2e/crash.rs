//! The crash-point suite: a git-workflow job is run into each failpoint of
//! `alephauto::failpoints::ALL`, where the process SIGKILLs itself (`return(kill)`), then the
//! server is started again on the same store and the job's aftermath is checked:
//!
//! - the job reaches exactly one terminal state (`completed`), and is the only job;
//! - every outside effect happened once: one job branch on the bare origin, pushed once
//!   (the origin's reflog), holding one commit, the one the job reports; one pull request
//!   on the fake forge, the one the job reports; the user's work tree back on `main`, clean;
//! - no event on the WebSocket feed (collected across the kill) reported a state the store
//!   did not commit: at most one terminal event, matching the stored outcome.
//!
//! - the completion's webhook was delivered once (one delivery id and event, however many
//!   times a crash made the sender repeat it).
//!
//! Table-driven: a new effect is a failpoint name in
//! `alephauto::failpoints::ALL`, a row in `CASES`, and, when it has its own outside effect,
//! a check in `check_effects`. SQLite always; PostgreSQL (cluster mode) when the server at
//! `support::pg_base_url` answers.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{Server, eventually, git, init_repo, pg_schema_url, pipeline, write_tree};

/// One crash point: the failpoint and its `FAILPOINTS` action (`return(kill)`: SIGKILL there).
struct Case {
    point: &'static str,
    action: &'static str,
}

/// Every failpoint once. `event-published` lets the first event (`job:created`) through and
/// kills after the second (`job:started`): a kill at the first is the `enqueued` case again.
const CASES: &[Case] = &[
    Case { point: "enqueued", action: "return(kill)" },
    Case { point: "claimed", action: "return(kill)" },
    Case { point: "branch-created", action: "return(kill)" },
    Case { point: "guest-finished", action: "return(kill)" },
    Case { point: "committed", action: "return(kill)" },
    Case { point: "pushed", action: "return(kill)" },
    Case { point: "pr-opened", action: "return(kill)" },
    Case { point: "outcome-written", action: "return(kill)" },
    Case { point: "event-published", action: "1*off->return(kill)" },
    Case { point: "webhook-sent", action: "return(kill)" },
];

/// Failpoints whose crash cases live with their feature's suite: a schedule's fire needs the
/// test clock (`tests/e2e/schedules.rs` kills a process at each, on SQLite and on two
/// PostgreSQL nodes, and checks one job per fire).
const COVERED_BY_SCHEDULES: &[&str] = &["schedule-fire", "schedule-fired"];

/// Which store the server runs on.
#[derive(Clone, Copy, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

/// Pull requests the fake forge holds: (head branch, html_url).
type Prs = Arc<Mutex<Vec<(String, String)>>>;

/// A forge that keeps the pull requests it opened and answers GitHub's lookup by branch
/// (`GET …/pulls?head=owner:branch&state=all`).
async fn fake_forge() -> (String, Prs) {
    let prs: Prs = Arc::default();
    let app = axum::Router::new()
        .route(
            "/repos/{owner}/{repo}/pulls",
            axum::routing::get(
                |State(prs): State<Prs>, Query(q): Query<std::collections::HashMap<String, String>>| async move {
                    let head =
                        q.get("head").and_then(|h| h.split_once(':')).map(|(_, b)| b.to_string()).unwrap_or_default();
                    let list: Vec<Value> = prs
                        .lock()
                        .unwrap()
                        .iter()
                        .filter(|(h, _)| *h == head)
                        .map(|(h, url)| json!({"html_url": url, "head": {"ref": h}}))
                        .collect();
                    Json(Value::Array(list))
                },
            )
            .post(|State(prs): State<Prs>, Json(body): Json<Value>| async move {
                let mut prs = prs.lock().unwrap();
                let url = format!("https://forge.test/acme/widget/pull/{}", prs.len() + 1);
                prs.push((body["head"].as_str().unwrap_or_default().to_string(), url.clone()));
                (axum::http::StatusCode::CREATED, Json(json!({"number": prs.len(), "html_url": url})))
            }),
        )
        .with_state(prs.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), prs)
}

/// Requests a webhook receiver got: (the `X-AlephAuto-Delivery` id, the payload's `eventKey`).
type Deliveries = Arc<Mutex<Vec<(String, String)>>>;

/// A webhook receiver that accepts everything and keeps what it got.
async fn webhook_receiver() -> (String, Deliveries) {
    let got: Deliveries = Arc::default();
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(
                |State(got): State<Deliveries>, headers: axum::http::HeaderMap, Json(body): Json<Value>| async move {
                    let id = headers.get("x-alephauto-delivery").and_then(|v| v.to_str().ok()).unwrap_or("");
                    got.lock().unwrap().push((id.to_string(), body["eventKey"].as_str().unwrap_or("").to_string()));
                    axum::http::StatusCode::OK
                },
            ),
        )
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), got)
}

/// A work tree at `ROOT/work` whose origin is the bare `ROOT/remotes/acme/widget.git`; the
/// origin keeps a reflog of every ref, so a second push of a branch is visible.
fn repo_with_remote(root: &Path) -> (PathBuf, PathBuf) {
    let bare = root.join("remotes/acme/widget.git");
    std::fs::create_dir_all(&bare).unwrap();
    git(&bare, &["init", "-q", "--bare", "-b", "main"]);
    git(&bare, &["config", "core.logAllRefUpdates", "always"]);
    let work = root.join("work");
    write_tree(&work, &[("README.md", "# Widget\n\nWidget turns gadgets into widgets.\n\n## Usage\n\nCall it.\n")]);
    init_repo(&work);
    git(&work, &["remote", "add", "origin", &bare.display().to_string()]);
    git(&work, &["push", "-q", "origin", "main"]);
    (work, bare)
}

/// Collects every message of the `jobs` channel until the connection drops (the kill).
async fn collect_events(server: &Server) -> (Arc<Mutex<Vec<Value>>>, tokio::task::JoinHandle<()>) {
    let mut ws = server.ws().await;
    ws.send(Message::Text(json!({"type": "subscribe", "channels": ["jobs"]}).to_string().into())).await.unwrap();
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("subscribed");
        let Some(Ok(Message::Text(t))) = msg else { panic!("ws closed before subscribing") };
        if serde_json::from_str::<Value>(&t).unwrap()["type"] == "subscribed" {
            break;
        }
    }
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = seen.clone();
    let task = tokio::spawn(async move {
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Text(t) = msg
                && let Ok(v) = serde_json::from_str::<Value>(&t)
                && v["channel"] == "jobs"
            {
                sink.lock().unwrap().push(v);
            }
        }
    });
    (seen, task)
}

/// What one crash case left behind, for `check`.
struct Aftermath {
    /// Every job in the store.
    jobs: Vec<Value>,
    /// The job as stored once terminal.
    job: Value,
    /// Events seen before the kill and after the restart.
    events: Vec<Value>,
    /// Pull requests the forge opened: (head, url).
    prs: Vec<(String, String)>,
    /// Webhook requests received: (delivery id, event key).
    deliveries: Vec<(String, String)>,
    work: PathBuf,
    bare: PathBuf,
    /// Stopped, but holding the folders `work` and `bare` live in.
    _server: Server,
}

/// Runs one job into `case`'s failpoint, restarts, and returns what is left to check.
/// `env` is set in both processes (e.g. a switch that breaks an idempotency check).
async fn run_case(case: &Case, backend: Backend, env: &[(&str, &str)]) -> Aftermath {
    let (forge, prs) = fake_forge().await;
    let (hook, deliveries) = webhook_receiver().await;
    let pipelines = pipeline("schema-enhancement", "schema_enhancement", "roots = [\"ROOT\"]\ngit_workflow = true");
    let mut extra = String::new();
    if let Backend::Postgres = backend {
        let url = pg_schema_url(&format!("crash_{}", case.point.replace('-', "_")));
        // No node_id: the default (host name and pid) differs after the restart, so the dead
        // process's lease expires and the cluster's maintenance re-queues its job.
        extra.push_str(&format!("database_url = {url:?}\nlease_secs = 1\n"));
    }
    extra.push_str(&format!("[git]\nforge_api_url = {forge:?}\ncommand_timeout_secs = 10\n"));
    extra.push_str(&format!(
        "[notify]\npoll_ms = 100\n[[notify.webhooks]]\nid = \"ops\"\nurl = {hook:?}\nevents = [\"completed\"]\n\
         format = \"generic\"\nsecret = \"crash-suite-secret\"\n"
    ));
    let failpoints = format!("{}={}", case.point, case.action);
    let mut first_env = env.to_vec();
    first_env.push(("FAILPOINTS", &failpoints));
    let mut server = Server::start_with_env(&pipelines, &extra, &first_env);
    let (work, bare) = repo_with_remote(&server.dir);
    let readme = work.join("README.md");
    let params = json!({"readmePath": readme.display().to_string(), "repositoryPath": work.display().to_string()});

    let (before, feed) = collect_events(&server).await;
    // The process may die while it answers (enqueued): the job id is read from the store later.
    let trigger = server
        .http
        .post(format!("{}/api/pipelines/schema-enhancement/trigger", server.url))
        .json(&json!({"parameters": params}))
        .send()
        .await;
    if let Ok(res) = trigger {
        let _ = res.bytes().await;
    }
    let status = tokio::task::spawn_blocking(move || {
        let status = server.wait_exit(Duration::from_secs(120));
        (server, status)
    })
    .await
    .unwrap();
    let (mut server, exit) = status;
    let log = server.log();
    assert!(
        log.contains(&format!("failpoint {} reached: SIGKILL", case.point)),
        "{}: the server ended ({exit:?}) without reaching the failpoint; log:\n{log}",
        case.point
    );
    let _ = tokio::time::timeout(Duration::from_secs(5), feed).await;
    let mut events = before.lock().unwrap().clone();

    // Same config and store, no failpoint.
    server.set_env(env);
    server.restart();
    let (after, feed) = collect_events(&server).await;
    let id = eventually(Duration::from_secs(30), "the job in the store", || async {
        let (_, page) = server.get("/api/jobs?limit=10").await;
        match page["jobs"].as_array().and_then(|j| j.first()) {
            Some(job) => Ok(job["id"].as_str().unwrap().to_string()),
            None => Err(page),
        }
    })
    .await;
    let job = server.wait_job(&id, Duration::from_secs(120)).await;
    // A terminal event follows its commit: give it a moment to arrive (none comes when the
    // outcome was committed before the kill).
    for _ in 0..100 {
        if after.lock().unwrap().iter().any(|e| e["type"] == "job:completed") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The completion's webhook (sent by the first process when it died at `webhook-sent`).
    eventually(Duration::from_secs(30), "the completion's webhook", || async {
        let n = deliveries.lock().unwrap().len();
        if n > 0 { Ok(()) } else { Err(n) }
    })
    .await;
    let (_, page) = server.get("/api/jobs?limit=10").await;
    let jobs = page["jobs"].as_array().cloned().unwrap_or_default();
    server.kill();
    let _ = tokio::time::timeout(Duration::from_secs(5), feed).await;
    events.extend(after.lock().unwrap().iter().cloned());
    let prs = prs.lock().unwrap().clone();
    let deliveries = deliveries.lock().unwrap().clone();
    Aftermath { jobs, job, events, prs, deliveries, work, bare, _server: server }
}

/// Every broken invariant in `a`, as readable lines (empty when all hold).
fn check(a: &Aftermath) -> Vec<String> {
    let mut broken = Vec::new();
    let job = &a.job;
    let id = job["id"].as_str().unwrap_or_default();
    if a.jobs.len() != 1 {
        broken.push(format!("{} jobs in the store, expected 1", a.jobs.len()));
    }
    if job["status"] != "completed" {
        broken.push(format!("job ended {} (expected completed): {}", job["status"], job["error"]));
        return broken;
    }
    check_events(a, id, &mut broken);
    check_effects(a, &mut broken);
    broken
}

/// No event reported a state the store did not commit.
fn check_events(a: &Aftermath, id: &str, broken: &mut Vec<String>) {
    let mine: Vec<&Value> = a.events.iter().filter(|e| e["jobId"] == id).collect();
    let terminal: Vec<&&Value> = mine
        .iter()
        .filter(|e| matches!(e["type"].as_str(), Some("job:completed" | "job:failed" | "job:cancelled")))
        .collect();
    if terminal.len() > 1 {
        broken.push(format!("{} terminal events for one job: {terminal:?}", terminal.len()));
    }
    for e in &terminal {
        if e["status"] != a.job["status"] || e["git"] != a.job["git"] || e["result"] != a.job["result"] {
            broken.push(format!("terminal event {e} does not match the stored job {}", a.job));
        }
    }
    let stored_attempt = a.job["attempt"].as_u64().unwrap_or(0);
    for e in mine.iter().filter(|e| e["type"] == "job:started") {
        if e["attempt"].as_u64().unwrap_or(u64::MAX) > stored_attempt {
            broken.push(format!("job:started for attempt {} beyond the stored attempt {stored_attempt}", e["attempt"]));
        }
    }
    let unknown = a.events.iter().filter(|e| e["jobId"] != id).count();
    if unknown > 0 {
        broken.push(format!("{unknown} events for jobs the store does not have"));
    }
}

/// Each outside effect happened exactly once.
fn check_effects(a: &Aftermath, broken: &mut Vec<String>) {
    // One delivery per event: a re-send after a crash carries the same delivery id (what a
    // receiver dedupes by), never a second delivery of the same event.
    let mut ids: Vec<&str> = a.deliveries.iter().map(|(id, _)| id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut keys: Vec<&str> = a.deliveries.iter().map(|(_, key)| key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    if ids.len() != 1 || keys.len() != 1 {
        broken.push(format!("webhook deliveries for one completion: {:?}", a.deliveries));
    }
    let g = &a.job["git"];
    let Some(branch) = g["branchName"].as_str() else {
        broken.push(format!("the completed job reports no branch: {}", a.job));
        return;
    };
    let remote: Vec<String> = git(&a.bare, &["for-each-ref", "--format=%(refname:short)", "refs/heads"])
        .lines()
        .filter(|b| *b != "main")
        .map(str::to_string)
        .collect();
    if remote != [branch] {
        broken.push(format!("branches on the origin besides main: {remote:?}, expected [{branch:?}]"));
    }
    if remote.iter().any(|b| b == branch) {
        let commits = git(&a.bare, &["rev-list", &format!("main..{branch}")]);
        if commits.lines().count() != 1 {
            broken.push(format!("{} commits pushed on {branch}, expected 1", commits.lines().count()));
        }
        let head = git(&a.bare, &["rev-parse", branch]);
        if g["commitSha"].as_str() != Some(head.trim()) {
            broken.push(format!("the origin's {branch} is {} but the job reports {}", head.trim(), g["commitSha"]));
        }
        let pushes = git(&a.bare, &["reflog", "show", "--format=%H", &format!("refs/heads/{branch}")]);
        if pushes.lines().count() != 1 {
            broken.push(format!("{branch} was pushed {} times", pushes.lines().count()));
        }
    }
    let for_branch: Vec<&(String, String)> = a.prs.iter().filter(|(h, _)| h == branch).collect();
    if a.prs.len() != 1 || for_branch.len() != 1 {
        broken.push(format!("{} pull requests opened ({:?}), expected one for {branch}", a.prs.len(), a.prs));
    } else if g["prUrl"].as_str() != Some(for_branch[0].1.as_str()) {
        broken.push(format!("the job reports pull request {} but the forge opened {}", g["prUrl"], for_branch[0].1));
    }
    let head = git(&a.work, &["rev-parse", "--abbrev-ref", "HEAD"]);
    let dirty = git(&a.work, &["status", "--porcelain"]);
    if head.trim() != "main" || !dirty.is_empty() {
        broken.push(format!("the work tree is on {} with changes {dirty:?}", head.trim()));
    }
}

/// Runs every case on `backend`; fails listing each case's broken invariants.
async fn every_point(backend: Backend) {
    let mut report = Vec::new();
    for case in CASES {
        let aftermath = run_case(case, backend, &[]).await;
        for line in check(&aftermath) {
            report.push(format!("{backend:?} {}: {line}", case.point));
        }
    }
    assert!(report.is_empty(), "crash-point invariants broken:\n{}", report.join("\n"));
}

#[test]
fn the_table_covers_every_failpoint_once() {
    let mut points: Vec<&str> = CASES.iter().map(|c| c.point).chain(COVERED_BY_SCHEDULES.iter().copied()).collect();
    points.sort_unstable();
    let mut all = alephauto::failpoints::ALL.to_vec();
    all.sort_unstable();
    assert_eq!(points, all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_crash_point_on_sqlite_leaves_one_outcome_and_each_effect_once() {
    every_point(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_crash_point_on_postgres_leaves_one_outcome_and_each_effect_once() {
    if !postgres_answers().await {
        eprintln!(
            "PostgreSQL at {} does not answer: the PostgreSQL crash points are skipped",
            crate::support::pg_base_url()
        );
        return;
    }
    every_point(Backend::Postgres).await;
}

/// The suite notices a broken idempotency check: with the pull-request lookup switched off
/// (a test-hooks-only switch), a crash after the PR was opened makes a second one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_pull_request_lookup_is_caught_as_a_duplicate() {
    let case = CASES.iter().find(|c| c.point == "pr-opened").unwrap();
    let aftermath = run_case(case, Backend::Sqlite, &[("ALEPHAUTO_TEST_BREAK_PR_LOOKUP", "1")]).await;
    let broken = check(&aftermath);
    assert!(
        broken.iter().any(|l| l.starts_with("2 pull requests opened")),
        "the checker missed the duplicate pull request: {broken:?}"
    );
}

/// True when the test PostgreSQL server accepts a connection.
async fn postgres_answers() -> bool {
    let Ok(config) = crate::support::pg_base_url().parse::<tokio_postgres::Config>() else { return false };
    matches!(tokio::time::timeout(Duration::from_secs(3), config.connect(tokio_postgres::NoTls)).await, Ok(Ok(_)))
}
