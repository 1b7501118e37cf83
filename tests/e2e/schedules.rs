//! Schedules end to end: the real binary built with `test-hooks`, its scheduler reading the
//! time from a file the test moves (`ALEPHAUTO_TEST_CLOCK`), so fires at 2 AM in Berlin, a
//! daylight-saving change or three days of downtime take milliseconds. Failpoints
//! (`FAILPOINTS`) stop a process between deciding a fire and inserting its job, or between
//! inserting it and saving the schedule's state, so a kill there can be tested.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Server, component, eventually, pg_schema_url, pipeline};

const WAIT: Duration = Duration::from_secs(30);

/// A clock file the server reads "now" from.
struct Clock {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Clock {
    fn at(now: &str) -> Clock {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("now");
        std::fs::write(&path, now).unwrap();
        Clock { _dir: dir, path }
    }

    /// Moves time (written whole through a rename, so the server never reads half a time).
    fn set(&self, now: &str) {
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, now).unwrap();
        std::fs::rename(&tmp, &self.path).unwrap();
    }

    fn env(&self) -> (&'static str, String) {
        ("ALEPHAUTO_TEST_CLOCK", self.path.display().to_string())
    }
}

fn start(clock: &Clock, pipelines: &str, extra: &str, more_env: &[(&str, &str)]) -> Server {
    let (k, v) = clock.env();
    let mut env = vec![(k, v.as_str())];
    env.extend_from_slice(more_env);
    Server::start_with_env(pipelines, extra, &env)
}

fn echo(extra: &str) -> String {
    pipeline("echo", "fixture_echo", &format!("roots = [\"ROOT\"]\nmax_concurrent = 4\n{extra}"))
}

/// Jobs a schedule created, oldest first: (id, scheduledFor, status).
async fn jobs_of(server: &Server, schedule: &str) -> Vec<(String, String, String)> {
    let (code, page) = server.get("/api/jobs?limit=500").await;
    assert_eq!(code, 200, "{page}");
    let mut out: Vec<_> = page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["data"]["triggeredBy"] == format!("schedule:{schedule}"))
        .map(|j| {
            let s = |k: &str| j["data"][k].as_str().or(j[k].as_str()).unwrap_or("").to_string();
            (s("id"), s("scheduledFor"), s("status"))
        })
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out
}

async fn wait_jobs(server: &Server, schedule: &str, n: usize) -> Vec<(String, String, String)> {
    eventually(WAIT, &format!("{n} jobs of schedule {schedule}"), || async {
        let jobs = jobs_of(server, schedule).await;
        if jobs.len() >= n {
            return Ok(jobs);
        }
        let log = server.log();
        let tail: Vec<String> = log.lines().rev().take(8).map(String::from).collect();
        Err((jobs, tail))
    })
    .await
}

async fn schedule(server: &Server, id: &str) -> Value {
    let (code, s) = server.get(&format!("/api/schedules/{id}")).await;
    assert_eq!(code, 200, "{s}");
    s
}

async fn create(server: &Server, body: Value) -> Value {
    let (code, s) = server.post("/api/schedules", body).await;
    assert_eq!(code, 201, "{s}");
    s
}

#[tokio::test]
async fn config_schedules_fire_at_their_instants_in_two_zones_and_once_across_spring_forward() {
    let clock = Clock::at("2026-03-28T12:00:00Z");
    let schedules = "[[pipelines.echo.schedules]]\nid = \"berlin\"\ncron = \"30 2 * * *\"\ntimezone = \"Europe/Berlin\"\n\
        parameters = { steps = 1 }\n\
        [[pipelines.echo.schedules]]\nid = \"newyork\"\ncron = \"0 2 * * *\"\ntimezone = \"America/New_York\"\n";
    let server = start(&clock, &echo(schedules), "", &[]);

    // Berlin springs forward on 29 March: 02:30 does not exist and fires once, at 03:00 CEST.
    let (code, list) = server.get("/api/schedules").await;
    assert_eq!(code, 200, "{list}");
    let by_id = |id: &str| list["schedules"].as_array().unwrap().iter().find(|s| s["id"] == id).cloned().unwrap();
    assert_eq!(by_id("berlin")["nextFire"], "2026-03-29T01:00:00.000Z", "{list}");
    assert_eq!(by_id("berlin")["upcoming"][0], "2026-03-30T00:30:00.000Z", "{list}");
    assert_eq!(by_id("berlin")["source"], "config");
    assert_eq!(by_id("newyork")["nextFire"], "2026-03-29T06:00:00.000Z", "{list}");

    clock.set("2026-03-29T01:00:00Z");
    let jobs = wait_jobs(&server, "berlin", 1).await;
    assert_eq!(jobs[0].1, "2026-03-29T01:00:00.000Z");
    let job = server.wait_job(&jobs[0].0, WAIT).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["data"]["steps"], 1, "the schedule's parameters: {job}");
    assert!(jobs_of(&server, "newyork").await.is_empty(), "New York's 2 AM is five hours later");

    clock.set("2026-03-29T06:00:00Z");
    let ny = wait_jobs(&server, "newyork", 1).await;
    assert_eq!(ny[0].1, "2026-03-29T06:00:00.000Z");
    clock.set("2026-03-30T00:30:00Z");
    let jobs = wait_jobs(&server, "berlin", 2).await;
    assert_eq!(jobs.len(), 2, "the spring-forward day fired once: {jobs:?}");
    assert_eq!(jobs[1].1, "2026-03-30T00:30:00.000Z");
    let s = eventually(WAIT, "last job and outcome shown", || async {
        let s = schedule(&server, "berlin").await;
        if s["lastOutcome"] == "completed" && s["lastJobId"] == jobs[1].0.as_str() { Ok(s) } else { Err(s) }
    })
    .await;
    assert_eq!(s["lastFire"], "2026-03-30T00:30:00.000Z");
    assert_eq!(s["nextFire"], "2026-03-31T00:30:00.000Z");
}

#[tokio::test]
async fn after_downtime_skip_reports_and_run_once_runs_the_latest_fire_once() {
    let clock = Clock::at("2026-05-01T01:00:00Z");
    let mut server = start(&clock, &echo(""), "", &[]);
    create(&server, json!({"id": "skip", "pipelineId": "echo", "cron": "0 2 * * *"})).await;
    create(&server, json!({"id": "once", "pipelineId": "echo", "cron": "0 2 * * *", "misfire": "run_once"})).await;
    clock.set("2026-05-01T02:00:00Z");
    // They end before the downtime (a job still going at a fire is the overlap policy's case).
    for id in ["skip", "once"] {
        let job = wait_jobs(&server, id, 1).await.remove(0).0;
        server.wait_job(&job, WAIT).await;
    }

    // Down for three days and a bit.
    server.kill();
    clock.set("2026-05-04T09:00:00Z");
    server.restart();
    let once = wait_jobs(&server, "once", 2).await;
    assert_eq!(once[1].1, "2026-05-04T02:00:00.000Z", "the latest missed fire runs: {once:?}");
    let skip = eventually(WAIT, "the skip schedule passes its misses", || async {
        let s = schedule(&server, "skip").await;
        if s["lastFire"] == "2026-05-04T02:00:00.000Z" { Ok(s) } else { Err(s) }
    })
    .await;
    assert_eq!(skip["nextFire"], "2026-05-05T02:00:00.000Z");
    assert_eq!(jobs_of(&server, "skip").await.len(), 1, "missed fires are not run under skip");
    assert_eq!(jobs_of(&server, "once").await.len(), 2, "run_once runs one, not three");
    assert!(server.log().contains("schedule missed"), "{}", server.log());
}

#[tokio::test]
async fn a_process_killed_after_inserting_a_fire_does_not_fire_it_again() {
    let clock = Clock::at("2026-05-01T01:59:00Z");
    let mut server = start(&clock, &echo(""), "", &[("FAILPOINTS", "schedule-fired=sleep(60000)")]);
    create(&server, json!({"id": "nightly", "pipelineId": "echo", "cron": "0 2 * * *", "misfire": "run_once"})).await;
    clock.set("2026-05-01T02:00:00Z");
    let jobs = wait_jobs(&server, "nightly", 1).await;
    // The job is in; the schedule's state is not (the process sleeps in the failpoint).
    assert_eq!(schedule(&server, "nightly").await["lastFire"], Value::Null);
    server.kill();
    server.env.retain(|(k, _)| k != "FAILPOINTS");
    server.restart();
    eventually(WAIT, "the restarted process records the fire", || async {
        let s = schedule(&server, "nightly").await;
        if s["lastFire"] == "2026-05-01T02:00:00.000Z" { Ok(()) } else { Err(s) }
    })
    .await;
    let after = jobs_of(&server, "nightly").await;
    assert_eq!(after.len(), 1, "one fire, one job: {after:?}");
    assert_eq!(after[0].0, jobs[0].0);
    assert_eq!(schedule(&server, "nightly").await["lastJobId"], jobs[0].0.as_str());
}

#[tokio::test]
async fn overlap_skip_queue_and_allow_while_the_previous_job_runs() {
    let clock = Clock::at("2026-05-01T00:00:30Z");
    let server = start(&clock, &echo(""), "", &[]);
    for (id, overlap) in [("s", "skip"), ("q", "queue"), ("a", "allow")] {
        let body = json!({"id": id, "pipelineId": "echo", "cron": "* * * * *", "overlap": overlap,
            "parameters": {"sleepMs": 60000, "steps": 100}});
        create(&server, body).await;
    }
    clock.set("2026-05-01T00:01:00Z");
    let mut firsts = Vec::new();
    for id in ["s", "q", "a"] {
        let jobs = wait_jobs(&server, id, 1).await;
        server.wait_status(&jobs[0].0, &["running"], WAIT).await;
        firsts.push(jobs[0].0.clone());
    }
    let mut ws = server.ws().await;
    {
        use futures::SinkExt;
        let sub = json!({"type": "subscribe", "channels": ["jobs"]}).to_string();
        ws.send(tokio_tungstenite::tungstenite::Message::Text(sub.into())).await.unwrap();
    }
    next_event(&mut ws, |e| e["type"] == "subscribed").await;
    clock.set("2026-05-01T00:02:00Z");
    // allow: a second job alongside; skip: a miss on the feed; queue: a fire waits.
    let a = wait_jobs(&server, "a", 2).await;
    assert_eq!(a[1].1, "2026-05-01T00:02:00.000Z");
    let missed = next_event(&mut ws, |e| e["type"] == "schedule:missed" && e["scheduleId"] == "s").await;
    assert!(missed["reason"].as_str().unwrap().contains("still going"), "{missed}");
    let q = eventually(WAIT, "the queued fire waits", || async {
        let s = schedule(&server, "q").await;
        if s["pendingFire"] == "2026-05-01T00:02:00.000Z" { Ok(s) } else { Err(s) }
    })
    .await;
    assert_eq!(q["lastOutcome"], "running");
    assert_eq!(jobs_of(&server, "q").await.len(), 1);
    // The previous job ends: the waiting fire goes, with its own fire time.
    let (code, body) = server.post(&format!("/api/jobs/{}/cancel", firsts[1]), json!({})).await;
    assert_eq!(code, 200, "{body}");
    let q = wait_jobs(&server, "q", 2).await;
    assert_eq!(q[1].1, "2026-05-01T00:02:00.000Z");
    let fired = next_event(&mut ws, |e| e["type"] == "schedule:fired" && e["scheduleId"] == "q").await;
    assert_eq!(fired["jobId"], q[1].0.as_str());
    assert_eq!(jobs_of(&server, "s").await.len(), 1, "skip never ran the overlapping fire");
    for id in firsts.iter().chain([&a[1].0, &q[1].0]) {
        server.post(&format!("/api/jobs/{id}/cancel"), json!({})).await;
    }
}

/// The next WebSocket event matching `pred` (jobs channel; schedule events ride on it).
async fn next_event(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    use futures::StreamExt;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next()).await.expect("event in time").unwrap().unwrap();
        if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).unwrap();
            if pred(&v) {
                return v;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_and_cli_create_pause_resume_run_and_delete_and_refuse_bad_input() {
    let clock = Clock::at("2026-05-01T00:00:30Z");
    let config_schedule = "[[pipelines.echo.schedules]]\nid = \"from-file\"\ncron = \"@daily\"\n";
    let server = start(&clock, &echo(config_schedule), "", &[]);

    // Bad input: 400 naming the field.
    for (body, field) in [
        (json!({"id": "x", "pipelineId": "echo", "cron": "61 * * * *"}), "cron:"),
        (json!({"id": "x", "pipelineId": "echo", "cron": "* * *"}), "cron:"),
        (json!({"id": "x", "pipelineId": "echo", "cron": "@daily", "timezone": "Mars/Base"}), "timezone:"),
        (json!({"id": "x y", "pipelineId": "echo", "cron": "@daily"}), "id:"),
        (json!({"id": "x", "pipelineId": "nope", "cron": "@daily"}), "pipelineId:"),
        (json!({"id": "x", "pipelineId": "echo", "cron": "@daily", "parameters": {"sleepMs": "soon"}}), "parameters:"),
        (json!({"id": "x", "pipelineId": "echo", "cron": "@daily", "inventory": "repos"}), "inventory:"),
        (json!({"pipelineId": "echo", "cron": "@daily"}), "id:"),
        (json!({"id": "x", "pipelineId": "echo", "cron": "@daily", "misfire": "later"}), "misfire:"),
        (json!({"id": "x", "pipelineId": "echo", "cron": "@daily", "overlap": "sometimes"}), "overlap:"),
        (json!({"id": "x", "pipelineId": "echo", "cron": "@daily", "extra": 1}), "extra"),
    ] {
        let (code, err) = server.post("/api/schedules", body.clone()).await;
        assert_eq!(code, 400, "{body} → {err}");
        assert_eq!(err["code"], "INVALID_SCHEDULE", "{err}");
        assert!(err["error"].as_str().unwrap().contains(field), "{body} → {err}");
    }
    let (code, _) = server.get("/api/schedules/nope").await;
    assert_eq!(code, 404);
    let (code, _) = server.get("/api/schedules/bad%20id").await;
    assert_eq!(code, 400);
    // The configuration's schedule is paused and run over the API, never deleted there.
    let res = server.http.delete(format!("{}/api/schedules/from-file", server.url)).send().await.unwrap();
    assert_eq!(res.status(), 409);
    // Without the key, nothing changes.
    let res = reqwest::Client::new()
        .post(format!("{}/api/schedules/from-file/pause", server.url))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    let s = &server;
    let (ok, out, err) = tokio::task::block_in_place(|| {
        s.cli_text(&[
            "schedules",
            "create",
            "hourly",
            "echo",
            "--cron",
            "0 * * * *",
            "--timezone",
            "Asia/Tokyo",
            "-p",
            "steps=2",
            "--overlap",
            "allow",
        ])
    });
    assert!(ok, "{out}{err}");
    assert!(out.contains("created hourly (next fire 2026-05-01T01:00:00.000Z)"), "{out}");
    let (ok, out, err) =
        tokio::task::block_in_place(|| s.cli_text(&["schedules", "create", "bad", "echo", "--cron", "99 * * * *"]));
    assert!(!ok && err.contains("cron:"), "{out}{err}");
    let (ok, out, _) = tokio::task::block_in_place(|| s.cli_text(&["schedules", "pause", "hourly"]));
    assert!(ok && out.contains("paused hourly"), "{out}");
    let (ok, out, _) = tokio::task::block_in_place(|| s.cli_text(&["schedules", "list"]));
    assert!(ok, "{out}");
    let row = out.lines().find(|l| l.starts_with("hourly")).unwrap_or_else(|| panic!("{out}"));
    assert!(row.contains("paused"), "{row}");
    assert!(out.lines().any(|l| l.starts_with("from-file") && l.contains("2026-05-02T00:00:00.000Z")), "{out}");

    // Paused: the fire time passes without a job; resumed: no catch-up, next hour.
    clock.set("2026-05-01T01:00:00Z");
    let s1 = schedule(&server, "hourly").await;
    assert_eq!((s1["paused"].as_bool(), &s1["nextFire"]), (Some(true), &Value::Null), "{s1}");
    let (ok, out, _) = tokio::task::block_in_place(|| s.cli_text(&["schedules", "resume", "hourly"]));
    assert!(ok && out.contains("next fire 2026-05-01T02:00:00.000Z"), "{out}");

    // Run now: a job at once, outside the timing, shown as the last job.
    let (ok, out, _) = tokio::task::block_in_place(|| s.cli_text(&["schedules", "run", "hourly"]));
    assert!(ok, "{out}");
    let job_id = out.trim().to_string();
    let job = server.wait_job(&job_id, WAIT).await;
    assert_eq!(job["data"]["triggeredBy"], "schedule:hourly", "{job}");
    assert_eq!(job["data"]["steps"], 2);
    assert!(job["data"]["scheduledFor"].is_null());
    let (ok, out, _) = tokio::task::block_in_place(|| s.cli_text(&["schedules", "show", "hourly"]));
    assert!(ok, "{out}");
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["lastJobId"], job_id.as_str());
    assert_eq!(shown["lastOutcome"], "completed");
    assert_eq!(shown["timezone"], "Asia/Tokyo");
    let (code, body) = server.post("/api/schedules/from-file/run", json!({})).await;
    assert_eq!(code, 200, "{body}");

    // Replace over HTTP, then delete with the CLI.
    let res = server
        .http
        .put(format!("{}/api/schedules/hourly", server.url))
        .header("content-type", "application/json")
        .body(json!({"pipelineId": "echo", "cron": "*/15 * * * *"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let replaced: Value = res.json().await.unwrap();
    assert_eq!(replaced["nextFire"], "2026-05-01T01:15:00.000Z", "{replaced}");
    assert_eq!(replaced["lastJobId"], job_id.as_str(), "history stays");
    let (ok, out, _) = tokio::task::block_in_place(|| s.cli_text(&["schedules", "delete", "hourly"]));
    assert!(ok && out.contains("deleted hourly"), "{out}");
    let (ok, _, err) = tokio::task::block_in_place(|| s.cli_text(&["schedules", "show", "hourly"]));
    assert!(!ok && err.contains("SCHEDULE_NOT_FOUND"), "{err}");
}

#[tokio::test]
async fn a_bad_configured_schedule_stops_the_start_naming_its_key() {
    let clock = Clock::at("2026-05-01T00:00:00Z");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alephauto.toml");
    let root = dir.path().join("work");
    std::fs::create_dir_all(&root).unwrap();
    let table = echo("[[pipelines.echo.schedules]]\nid = \"n\"\ncron = \"0 2 * *\"\n")
        .replace("ROOT", &root.display().to_string());
    std::fs::write(
        &config,
        format!("[runtime]\ndata_dir = {:?}\n{table}", dir.path().join("data").display().to_string()),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_alephauto"))
        .args(["serve", "--bind", "127.0.0.1:0", "--config"])
        .arg(&config)
        .env(clock.env().0, clock.env().1)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pipelines.echo.schedules[0].cron"), "{err}");
}

/// A cluster node with the shared clock and, optionally, failpoints.
fn node(url: &str, id: &str, clock: &Clock, shared: &Path, failpoints: Option<&str>) -> Server {
    let table = format!(
        "[pipelines.echo]\ncomponent = {:?}\nroots = [{:?}]\nmax_concurrent = 4\n",
        component("fixture_echo"),
        shared.display().to_string()
    );
    let env: Vec<(&str, &str)> = failpoints.map(|f| vec![("FAILPOINTS", f)]).unwrap_or_default();
    start(clock, &table, &format!("database_url = {url:?}\nnode_id = {id:?}\nlease_secs = 2\n"), &env)
}

#[tokio::test]
async fn two_postgres_nodes_fire_once_even_when_one_is_killed_between_deciding_and_inserting() {
    let url = pg_schema_url("sched");
    let shared = tempfile::tempdir().unwrap();
    let clock = Clock::at("2026-05-01T01:59:00Z");
    // Node A decides the fire, then stops in the failpoint before inserting; it is killed there.
    let mut a = node(&url, "a", &clock, shared.path(), Some("schedule-fire=sleep(60000)"));
    create(&a, json!({"id": "nightly", "pipelineId": "echo", "cron": "0 2 * * *"})).await;
    clock.set("2026-05-01T02:00:00Z");
    eventually(WAIT, "node a decides to fire", || async {
        if a.log().contains("schedule firing") { Ok(()) } else { Err(a.log()) }
    })
    .await;
    a.kill();
    assert!(jobs_in(&url).await.is_empty(), "a died before inserting");

    // Node B (and A again, restarted) share the database: the fire happens exactly once.
    let b = node(&url, "b", &clock, shared.path(), None);
    a.env.retain(|(k, _)| k != "FAILPOINTS");
    a.restart();
    let jobs = wait_jobs(&b, "nightly", 1).await;
    assert_eq!(jobs[0].1, "2026-05-01T02:00:00.000Z");
    // The next night both nodes are up and both decide: still one job per fire.
    clock.set("2026-05-02T02:00:00Z");
    let jobs = wait_jobs(&a, "nightly", 2).await;
    eventually(WAIT, "both nodes saw the second fire", || async {
        let (sa, sb) = (schedule(&a, "nightly").await, schedule(&b, "nightly").await);
        let want = "2026-05-03T02:00:00.000Z";
        if sa["nextFire"] == want && sb["nextFire"] == want { Ok(()) } else { Err((sa, sb)) }
    })
    .await;
    let rows = jobs_in(&url).await;
    assert_eq!(rows.len(), 2, "{rows:?} / {jobs:?}");
}

async fn jobs_in(url: &str) -> Vec<String> {
    let config: tokio_postgres::Config = url.parse().unwrap();
    let (client, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    match client.query("SELECT id FROM jobs", &[]).await {
        Ok(rows) => rows.iter().map(|r| r.get(0)).collect(),
        Err(_) => Vec::new(),
    }
}

/// Runs a schedule started, from `/api/runs`.
async fn runs_of(server: &Server, schedule: &str) -> Vec<Value> {
    let (code, page) = server.get("/api/runs?limit=100").await;
    assert_eq!(code, 200, "{page}");
    page["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["triggeredBy"] == format!("schedule:{schedule}"))
        .cloned()
        .collect()
}

/// A schedule over an inventory: its fire starts one run (one repomix job per folder of the
/// inventory, through the runs module), and a process killed right after it and restarted at
/// the same instant does not start a second run for the same fire (the fire's dedupe key).
#[tokio::test]
async fn an_inventory_schedule_starts_one_run_per_fire_across_a_restart() {
    let clock = Clock::at("2026-05-04T02:00:00Z");
    let config = format!(
        "{}[[pipelines.repomix.schedules]]\nid = \"nightly-pack\"\ncron = \"0 3 * * *\"\ninventory = \"two\"\n\
         [inventories.two]\npaths = [\"ROOT/code/a\", \"ROOT/code/b\"]\n",
        pipeline("repomix", "repomix", "roots = [\"ROOT\"]")
    );
    let mut server = start(&clock, &config, "", &[]);
    for (dir, text) in [("code/a", "fn a() {}\n"), ("code/b", "fn b() {}\n")] {
        crate::support::write_tree(&server.dir.join(dir), &[("main.rs", text)]);
    }
    let (code, created) = server
        .post(
            "/api/schedules",
            json!({"id": "bad-inv", "pipelineId": "repomix", "cron": "0 4 * * *", "inventory": "nope"}),
        )
        .await;
    assert_eq!(code, 400, "an unknown inventory is refused naming it: {created}");
    assert!(created.to_string().contains("inventory"), "{created}");
    assert!(runs_of(&server, "nightly-pack").await.is_empty());

    clock.set("2026-05-04T03:00:00Z");
    // The fire's run, once every target has its job (a process killed while a run is still
    // creating its jobs leaves it "starting": a known limit, not what this test is about).
    let runs = eventually(WAIT, "the fire's run, started", || async {
        let runs = runs_of(&server, "nightly-pack").await;
        if runs.len() == 1 && runs[0]["startedAt"].is_string() { Ok(runs) } else { Err((runs, server.log())) }
    })
    .await;
    let id = runs[0]["id"].as_str().unwrap().to_string();
    assert_eq!(runs[0]["inventory"], "two", "{runs:?}");
    assert_eq!(runs[0]["pathParameter"], "sourceDir", "{runs:?}");

    // Killed and restarted at the same instant: the fire is not started again.
    server.kill();
    server.restart();
    let done = eventually(WAIT, "the run to finish", || async {
        let (_, v) = server.get(&format!("/api/runs/{id}")).await;
        if v["run"]["counts"]["completed"] == 2 { Ok(v) } else { Err(v) }
    })
    .await;
    assert_eq!(done["run"]["status"], "completed", "{done}");
    // The restarted scheduler has settled this fire (recorded it, moved to the next one).
    eventually(WAIT, "the fire recorded", || async {
        let s = schedule(&server, "nightly-pack").await;
        let settled = s["lastFire"] == "2026-05-04T03:00:00.000Z" && s["nextFire"] == "2026-05-05T03:00:00.000Z";
        if settled { Ok(()) } else { Err(s) }
    })
    .await;
    assert_eq!(runs_of(&server, "nightly-pack").await.len(), 1, "one run for one fire, across the restart");
}

/// A missed fire reaches the webhooks that want `schedule_missed`: stored as a delivery
/// (visible over the API) and sent to the receiver, once.
#[tokio::test]
async fn a_missed_fire_is_sent_to_the_schedule_missed_webhook() {
    use std::sync::{Arc, Mutex};
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(body);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let clock = Clock::at("2026-06-01T12:00:00Z");
    let schedules = "[[pipelines.echo.schedules]]\nid = \"nightly\"\ncron = \"0 2 * * *\"\n";
    let extra = format!(
        "[notify]\npoll_ms = 100\n[[notify.webhooks]]\nid = \"ops\"\nurl = {hook:?}\nevents = [\"schedule_missed\"]\n\
         format = \"generic\"\nsecret = \"missed-secret\"\n"
    );
    let server = start(&clock, &echo(schedules), &extra, &[]);
    // Two nights pass unseen (the clock jumps far beyond the grace): one miss, no job.
    clock.set("2026-06-03T12:00:00Z");
    let bodies = eventually(WAIT, "the schedule_missed webhook", || async {
        let bodies = got.lock().unwrap().clone();
        if bodies.is_empty() { Err(server.log()) } else { Ok(bodies) }
    })
    .await;
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert_eq!(bodies[0]["event"], "schedule_missed", "{bodies:?}");
    assert_eq!(bodies[0]["pipelineId"], "echo", "{bodies:?}");
    assert!(bodies[0]["eventKey"].as_str().unwrap().contains("nightly"), "{bodies:?}");
    assert!(jobs_of(&server, "nightly").await.is_empty(), "a skipped miss runs nothing");
    let (code, list) = server.get("/api/webhooks/deliveries?hook=ops").await;
    assert_eq!(code, 200, "{list}");
    assert_eq!(list["deliveries"].as_array().map(Vec::len), Some(1), "{list}");
}

/// `run_on_startup`: each start of the service runs the pipeline once with its defaults,
/// marked `triggeredBy: "startup"`; a pipeline without it gets nothing.
#[tokio::test]
async fn run_on_startup_runs_the_pipeline_once_per_start() {
    let clock = Clock::at("2026-07-01T12:00:00Z");
    let config = echo("run_on_startup = true\n");
    let mut server = start(&clock, &config, "", &[]);
    let startups = |page: &Value| -> Vec<Value> {
        page["jobs"].as_array().unwrap().iter().filter(|j| j["data"]["triggeredBy"] == "startup").cloned().collect()
    };
    let first = eventually(WAIT, "the startup job", || async {
        let (_, page) = server.get("/api/jobs?limit=50").await;
        let jobs = startups(&page);
        if jobs.len() == 1 { Ok(jobs) } else { Err(page) }
    })
    .await;
    let job = server.wait_job(first[0]["id"].as_str().unwrap(), WAIT).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["pipelineId"], "echo");

    server.terminate();
    server.restart();
    let after = eventually(WAIT, "a second startup job after the restart", || async {
        let (_, page) = server.get("/api/jobs?limit=50").await;
        let jobs = startups(&page);
        if jobs.len() == 2 { Ok(jobs) } else { Err(page) }
    })
    .await;
    assert_eq!(after.len(), 2, "one per start: {after:?}");
}
