//! Hardening: floods, oversized results, failing initialisation and the circuit
//! breaker over HTTP, crash recovery of a thousand jobs (SIGKILL and SIGTERM),
//! malformed input (property-based), and a bounded load test.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Server, component, eventually, pipeline};

fn config() -> String {
    [
        pipeline("noop", "fixture_noop", "max_concurrent = 8"),
        pipeline("echo", "fixture_echo", "roots = [\"ROOT\"]\nmax_concurrent = 8"),
        pipeline("flood", "fixture_flood", ""),
        pipeline("big-result", "fixture_big_result", "memory_mb = 512"),
        pipeline("trap-init", "fixture_trap", "settings = { trapInInit = true }"),
        "[pipelines.phoenix]\ncomponent = \"ROOT/phoenix.wasm\"\n".to_string(),
    ]
    .concat()
}

#[tokio::test]
async fn floods_and_huge_results_are_bounded_and_fail_only_their_job() {
    let server = Server::start(&config());
    server.run("noop", json!({})).await;
    let baseline = server.rss_kib();

    let job = server.run("flood", json!({})).await;
    assert_eq!(job["status"], "completed", "a chatty guest is not killed by its own output: {job}");
    let (_, logs) = server.get(&format!("/api/jobs/{}/logs", job["id"].as_str().unwrap())).await;
    assert_eq!(logs["truncated"], true);
    let bytes: usize = logs["logs"].as_array().unwrap().iter().map(|l| l["message"].as_str().unwrap().len()).sum();
    assert!(bytes <= 300 * 1024, "log kept bounded: {bytes} bytes");

    let job = server.run("big-result", json!({})).await;
    assert_eq!(job["status"], "failed");
    assert_eq!(job["error"]["code"], "RESULT_TOO_LARGE", "{job}");

    for _ in 0..3 {
        server.run("flood", json!({})).await;
        server.run("big-result", json!({})).await;
    }
    let after = server.rss_kib();
    eprintln!("server RSS: {baseline} KiB before, {after} KiB after floods and huge results");
    assert!(after < baseline + 200 * 1024, "host memory stays bounded ({baseline} → {after} KiB)");
    assert_eq!(server.run("noop", json!({})).await["status"], "completed");
}

#[tokio::test]
async fn failing_initialisation_trips_the_breaker_which_recovers_after_the_cooldown() {
    let server = Server::start(&config());
    // A trap in init: the trigger is refused with 503 naming the failure.
    let (code, body) = server.trigger("trap-init", json!({})).await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["code"], "WORKER_INIT_FAILED");
    assert!(body["error"].as_str().unwrap().contains("trap"), "{body}");

    // A component that does not compile, three times: then the breaker refuses with Retry-After.
    std::fs::write(server.dir.join("phoenix.wasm"), b"not wasm at all").unwrap();
    for _ in 0..3 {
        let (code, body) = server.trigger("phoenix", json!({})).await;
        assert_eq!((code, body["code"].as_str()), (503, Some("WORKER_INIT_FAILED")), "{body}");
    }
    let res = server
        .http
        .post(format!("{}/api/pipelines/phoenix/trigger", server.url))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert!(res.headers().get("retry-after").is_some());
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "WORKER_COOLDOWN");
    let (_, list) = server.get("/api/pipelines").await;
    let phoenix = list["pipelines"].as_array().unwrap().iter().find(|p| p["id"] == "phoenix").unwrap().clone();
    assert_eq!(phoenix["status"], "cooldown");

    // The operator deploys a working component; after the cooldown one attempt goes through.
    // Until the cooldown ends triggers are refused without an attempt; the first accepted
    // one is the attempt that goes through.
    std::fs::copy(component("fixture_noop"), server.dir.join("phoenix.wasm")).unwrap();
    let id = eventually(Duration::from_secs(10), "the cooldown ends", || async {
        match server.trigger("phoenix", json!({})).await {
            (201, body) => Ok(body["jobId"].as_str().unwrap().to_string()),
            (503, body) if body["code"] == "WORKER_COOLDOWN" => Err(body),
            (code, body) => panic!("unexpected {code}: {body}"),
        }
    })
    .await;
    let job = server.wait_job(&id, Duration::from_secs(60)).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(server.run("noop", json!({})).await["status"], "completed", "other pipelines were never affected");
}

/// Triggers `n` echo jobs that journal each run into `ROOT/journal`.
async fn trigger_many(server: &Server, n: usize) -> Vec<String> {
    let journal = server.dir.join("journal");
    std::fs::create_dir_all(&journal).unwrap();
    let params = json!({"sleepMs": 3, "journalDir": journal.display().to_string()});
    let mut ids = Vec::with_capacity(n);
    for chunk in 0..n.div_ceil(50) {
        let batch = (0..50.min(n - chunk * 50)).map(|_| server.trigger_ok("echo", params.clone()));
        ids.extend(futures::future::join_all(batch).await);
    }
    ids
}

/// Runs per job id, from the journal: (job id → attempts that reached the end).
fn journal(server: &Server) -> HashMap<String, Vec<u32>> {
    let text = std::fs::read_to_string(server.dir.join("journal/runs.log")).unwrap_or_default();
    let mut runs: HashMap<String, Vec<u32>> = HashMap::new();
    for line in text.lines() {
        let (id, attempt) = line.split_once(' ').expect("journal line");
        runs.entry(id.to_string()).or_default().push(attempt.parse().unwrap());
    }
    runs
}

/// Every job's status and attempt, read from the SQLite file itself.
fn stored(server: &Server) -> HashMap<String, (String, u32)> {
    let conn = rusqlite::Connection::open(server.db_path()).unwrap();
    let mut stmt = conn.prepare("SELECT id, status, attempt FROM jobs").unwrap();
    stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, (r.get::<_, String>(1)?, r.get::<_, u32>(2)?))))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Waits until at least `n` jobs have completed.
async fn wait_completed(server: &Server, n: u64) {
    let start = Instant::now();
    while server.count("completed").await < n {
        assert!(start.elapsed() < Duration::from_secs(300), "jobs stuck below {n} completed\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_jobs_survive_sigkill_and_each_completes_once() {
    let mut server = Server::start(&config());
    let ids = trigger_many(&server, 1000).await;
    wait_completed(&server, 200).await;
    assert!(server.count("running").await > 0, "the kill must land while jobs run");
    server.kill();
    let at_kill = stored(&server);
    let running_at_kill: Vec<&String> = at_kill.iter().filter(|(_, (s, _))| s == "running").map(|(id, _)| id).collect();
    assert!(!running_at_kill.is_empty());
    server.restart();
    wait_completed(&server, 1000).await;

    let after = stored(&server);
    assert_eq!(after.len(), 1000, "no job lost, none duplicated");
    let runs = journal(&server);
    for id in &ids {
        let (status, attempt) = &after[id];
        assert_eq!(status, "completed", "{id}");
        let runs = &runs[id];
        // The stored attempt ran to the end exactly once; earlier attempts at most once each.
        assert_eq!(runs.iter().filter(|a| *a == attempt).count(), 1, "{id}: {runs:?}");
        assert!(runs.iter().all(|a| a <= attempt), "{id}: {runs:?}");
        if running_at_kill.contains(&id) {
            assert_eq!(*attempt, 2, "{id} was running at the kill, so it was re-run");
        } else {
            assert_eq!(*attempt, 1, "{id} was not running at the kill");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_full_queue_reruns_nothing() {
    let mut server = Server::start(&config());
    let ids = trigger_many(&server, 300).await;
    wait_completed(&server, 50).await;
    let status = tokio::task::block_in_place(|| server.terminate());
    assert!(status.success());
    server.restart();
    wait_completed(&server, 300).await;
    let after = stored(&server);
    let runs = journal(&server);
    for id in &ids {
        assert_eq!(after[id], ("completed".to_string(), 1), "{id}");
        assert_eq!(runs[id], vec![1], "{id} ran exactly once");
    }
}

mod bad_input {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use crate::support::{Server, pipeline};

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
            ".{0,40}".prop_map(Value::String),
            Just(json!("../../../../etc/passwd")),
            Just(json!("/etc")),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::hash_map("[a-zA-Z]{1,10}", inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn body() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..200),
            json_value().prop_map(|v| v.to_string().into_bytes()),
            json_value().prop_map(|v| json!({"parameters": v}).to_string().into_bytes()),
            (
                prop::sample::select(vec![
                    "sleepMs",
                    "steps",
                    "failWith",
                    "inputDir",
                    "print",
                    "journalDir",
                    "triggeredBy"
                ]),
                json_value()
            )
                .prop_map(|(k, v)| json!({"parameters": {k: v}}).to_string().into_bytes()),
        ]
    }

    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z0-9_-]{1,30}",
            ".{0,20}"
                .prop_map(|s| s.chars().filter(|c| !c.is_control() && *c != '/' && *c != '?' && *c != '#').collect()),
            Just("..%2F..%2Fetc".to_string()),
            Just("a".repeat(150)),
            Just("echo".to_string()),
        ]
    }

    #[test]
    fn malformed_requests_always_get_a_4xx_naming_the_problem() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let _context = rt.enter();
        let server = Server::start(&pipeline("echo", "fixture_echo", "roots = [\"ROOT\"]"));
        let mut runner =
            proptest::test_runner::TestRunner::new(ProptestConfig { cases: 300, ..ProptestConfig::default() });
        let http = server.http.clone();
        let url = server.url.clone();
        let strategy = (0..6u8, segment(), body(), "[a-z]{1,8}", ".{0,12}");
        runner
            .run(&strategy, |(route, seg, body, qk, qv)| {
                let seg = urlencode(&seg);
                let (method, path) = match route {
                    0 => ("POST", format!("/api/pipelines/{seg}/trigger")),
                    1 => ("POST", "/api/pipelines/echo/trigger".to_string()),
                    2 => ("GET", format!("/api/jobs/{seg}")),
                    3 => ("POST", format!("/api/jobs/{seg}/cancel")),
                    4 => ("GET", format!("/api/jobs?{qk}={}", urlencode(&qv))),
                    _ => ("GET", format!("/api/pipelines/{seg}/jobs?limit={}", urlencode(&qv))),
                };
                let (status, text) = rt.block_on(async {
                    let req = if method == "POST" {
                        http.post(format!("{url}{path}")).header("content-type", "application/json").body(body.clone())
                    } else {
                        http.get(format!("{url}{path}"))
                    };
                    let res = req.send().await.expect("server answers");
                    let status = res.status().as_u16();
                    (status, res.text().await.unwrap_or_default())
                });
                prop_assert!(status < 500, "{method} {path} → {status}: {text}");
                if status >= 400 {
                    let v: Value = serde_json::from_str(&text)
                        .map_err(|e| TestCaseError::fail(format!("{path}: non-JSON error {text}: {e}")))?;
                    prop_assert!(v["error"].as_str().is_some_and(|m| !m.is_empty()), "{path}: {text}");
                    prop_assert!(v["code"].is_string());
                }
                Ok(())
            })
            .unwrap();
        // Oversized bodies get 413.
        let big = vec![b' '; 2 * 1024 * 1024];
        // The server answers 413 before reading the body and closes that connection: use one
        // that is not pooled, so the later requests do not pick up the closed socket.
        let once = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
        let req = once
            .post(format!("{url}/api/pipelines/echo/trigger"))
            .header("content-type", "application/json")
            .header("x-api-key", server.api_key.clone().expect("generated key"))
            .body(big);
        let res = rt.block_on(req.send()).unwrap();
        assert_eq!(res.status(), 413);
        let v: Value = rt.block_on(res.json()).unwrap();
        assert_eq!(v["code"], "PAYLOAD_TOO_LARGE");
        // Whatever was accepted ran to a terminal state; the server is healthy.
        let (code, _) = rt.block_on(server.get("/health"));
        assert_eq!(code, 200);
    }

    fn urlencode(s: &str) -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_two_hundred_clients_every_accepted_job_completes() {
    let secs: u64 = std::env::var("ALEPHAUTO_LOAD_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
    let server = Server::start(&config());
    server.run("noop", json!({})).await;
    let baseline = server.rss_kib();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let clients = (0..200).map(|_| {
        let http = server.http.clone();
        let url = server.url.clone();
        tokio::spawn(async move {
            let mut accepted = Vec::new();
            while Instant::now() < deadline {
                let res = http
                    .post(format!("{url}/api/pipelines/noop/trigger"))
                    .header("content-type", "application/json")
                    .body("{}")
                    .send()
                    .await
                    .expect("trigger");
                let status = res.status().as_u16();
                let body: Value = res.json().await.expect("json");
                match status {
                    201 => {
                        let id = body["jobId"].as_str().unwrap().to_string();
                        // Poll our job until it ends.
                        loop {
                            let job: Value =
                                http.get(format!("{url}/api/jobs/{id}")).send().await.unwrap().json().await.unwrap();
                            if job["status"] == "completed" {
                                break;
                            }
                            assert!(job["status"] != "failed", "{job}");
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        accepted.push(id);
                    }
                    429 => tokio::time::sleep(Duration::from_millis(50)).await,
                    other => panic!("unexpected {other}: {body}"),
                }
            }
            accepted
        })
    });
    let accepted: Vec<String> = futures::future::join_all(clients).await.into_iter().flat_map(Result::unwrap).collect();
    let during = server.rss_kib();
    assert_eq!(
        server.count("completed").await,
        accepted.len() as u64 + 1,
        "every accepted job is persisted and completed"
    );
    // Freed memory goes back to the system over a moment: wait for it, then report.
    let drained = baseline + 150 * 1024;
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.rss_kib() >= drained && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = server.rss_kib();
    eprintln!(
        "load: {} jobs in {secs}s by 200 clients ({:.0} jobs/s); RSS {baseline} KiB idle, {during} KiB at the end of load, {after} KiB drained",
        accepted.len(),
        accepted.len() as f64 / secs as f64
    );
    assert!(accepted.len() > 200, "throughput collapsed: {}", accepted.len());
    assert!(after < baseline + 150 * 1024, "memory returns near its baseline ({baseline} → {after} KiB)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_whose_clients_hang_up_still_run_every_stored_job() {
    let server = Server::start(&config());
    server.run("noop", json!({})).await;
    // Clients that give up after 0.1-5 ms: many handlers are dropped somewhere mid-request.
    for i in 0..200u64 {
        let _ = server
            .http
            .post(format!("{}/api/pipelines/noop/trigger", server.url))
            .timeout(Duration::from_micros(100 + 25 * i))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await;
    }
    // Whatever was stored must run: nothing may stay queued once the queue drains.
    let start = Instant::now();
    loop {
        let (queued, running) = (server.count("queued").await, server.count("running").await);
        if queued == 0 && running == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{queued} queued / {running} running stuck\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let completed = server.count("completed").await;
    eprintln!("{completed} jobs stored and completed out of 200 abandoned triggers");
    assert_eq!(server.count("failed").await, 0);
}
