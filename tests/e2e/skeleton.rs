//! The walking skeleton: trigger over HTTP → the job runs in wasm → completed,
//! persisted, events seen; errors; concurrency; crash recovery.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{Server, pipeline};

fn fixtures() -> String {
    [
        pipeline("noop", "fixture_noop", "roots = [\"ROOT\"]"),
        pipeline("echo", "fixture_echo", "roots = [\"ROOT\"]\nmax_concurrent = 2"),
    ]
    .concat()
}

#[tokio::test]
async fn a_triggered_job_runs_in_wasm_and_is_persisted_with_its_events() {
    let server = Server::start(&fixtures());
    let mut ws = server.ws().await;
    let hello: Value = match ws.next().await.expect("hello").expect("hello") {
        Message::Text(t) => serde_json::from_str(&t).expect("json"),
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(hello["type"], "connected");
    ws.send(Message::Text(json!({"type": "subscribe", "channels": ["jobs"]}).to_string().into())).await.unwrap();

    let input = server.dir.join("input");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("a.txt"), "hello").unwrap();
    let (status, body) =
        server.trigger("echo", json!({"steps": 3, "sleepMs": 30, "inputDir": input.display().to_string()})).await;
    assert_eq!(status, 201, "{body}");
    let id = body["jobId"].as_str().unwrap().to_string();
    assert!(id.starts_with("echo-manual-"), "{id}");
    assert_eq!(body["pipelineId"], "echo");
    assert_eq!(body["status"], "queued");

    let job = server.wait_job(&id, Duration::from_secs(60)).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["result"]["files"], json!(["a.txt"]));
    assert_eq!(job["result"]["echo"]["steps"], 3);
    assert_eq!(job["data"]["triggeredBy"], "api");
    assert!(job["data"]["triggeredAt"].is_string());
    assert_eq!(job["attempt"], 1);
    assert_eq!(job["progress"]["percent"], 100);
    assert!(job["startedAt"].is_string() && job["completedAt"].is_string());

    // The worker wrote into its own output folder.
    let written = std::fs::read_to_string(server.data_dir().join("outputs").join(&id).join("echo.txt")).unwrap();
    assert!(written.contains("\"steps\":3"), "{written}");

    // Events arrive in lifecycle order.
    let mut kinds = Vec::new();
    while !kinds.contains(&"job:completed".to_string()) {
        let msg = tokio::time::timeout(Duration::from_secs(30), ws.next()).await.expect("event in time");
        let Some(Ok(Message::Text(t))) = msg else { panic!("ws closed") };
        let v: Value = serde_json::from_str(&t).unwrap();
        if v["jobId"] == id.as_str() {
            kinds.push(v["type"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(kinds.first().map(String::as_str), Some("job:created"));
    assert_eq!(kinds.get(1).map(String::as_str), Some("job:started"));
    assert!(kinds.iter().filter(|k| *k == "job:progress").count() >= 1, "{kinds:?}");
    assert_eq!(kinds.last().map(String::as_str), Some("job:completed"));

    // Logs hold the guest's log call.
    let (code, logs) = server.get(&format!("/api/jobs/{id}/logs")).await;
    assert_eq!(code, 200);
    assert!(logs["logs"].as_array().unwrap().iter().any(|l| l["message"] == "echo starting"), "{logs}");

    // Persisted: the SQLite file has the completed job after a restart.
    let mut server = server;
    server.restart();
    let (code, again) = server.get(&format!("/api/jobs/{id}")).await;
    assert_eq!(code, 200);
    assert_eq!(again["status"], "completed");
    assert_eq!(again["result"], job["result"]);
}

#[tokio::test]
async fn unknown_pipelines_and_bad_parameters_get_400_naming_the_problem() {
    let server = Server::start(&fixtures());
    let (status, body) = server.trigger("nope", json!({})).await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "UNKNOWN_PIPELINE");
    assert_eq!(body["error"], "Unknown pipeline: nope. Supported pipelines: echo, noop");

    let (status, body) = server.trigger("echo", json!({"steps": "many"})).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("steps"), "{body}");

    let (status, body) = server.trigger("echo", json!({"bogus": 1})).await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("bogus"), "{body}");

    let outside = tempfile::tempdir().unwrap();
    let (status, body) = server.trigger("echo", json!({"inputDir": outside.path().display().to_string()})).await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("inputDir"), "{body}");
    assert!(body["error"].as_str().unwrap().contains("outside"), "{body}");

    let (status, body) = server.post_raw("/api/pipelines/echo/trigger", "{not json").await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "INVALID_JSON");
    let (status, _) = server.post("/api/pipelines/echo/trigger", json!({"parameters": 5})).await;
    assert_eq!(status, 400);
    let (status, _) = server.post("/api/pipelines/echo/trigger", json!({"other": {}})).await;
    assert_eq!(status, 400);
    let (status, body) = server.get("/api/jobs/..%2Fetc").await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = server.get("/api/jobs/missing-job").await;
    assert_eq!(status, 404);
    let (status, _) = server.get("/api/pipelines/nope/jobs").await;
    assert_eq!(status, 404);
    let (status, _) = server.get("/api/pipelines/echo/jobs?limit=0").await;
    assert_eq!(status, 400);
    let (status, _) = server.get("/api/pipelines/echo/jobs?status=done").await;
    assert_eq!(status, 400);
    // Nothing was queued by any of the bad requests.
    let (_, jobs) = server.get("/api/jobs").await;
    assert_eq!(jobs["total"], 0);
}

#[tokio::test]
async fn concurrent_triggers_get_distinct_persisted_ids_and_respect_concurrency() {
    let server = Server::start(&fixtures());
    let triggers = (0..100).map(|_| server.trigger("noop", json!({})));
    let results = futures::future::join_all(triggers).await;
    let mut ids: Vec<String> = results
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, 201, "{body}");
            body["jobId"].as_str().unwrap().to_string()
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 100, "job ids must be unique");
    for id in &ids {
        let job = server.wait_job(id, Duration::from_secs(60)).await;
        assert_eq!(job["status"], "completed", "{job}");
    }
    let (_, page) = server.get("/api/pipelines/noop/jobs?limit=100").await;
    assert_eq!(page["total"], 100);
    // noop declares "x-alephauto-output": false, so its jobs get no output folder at all.
    assert!(!server.data_dir().join("outputs").join(&ids[0]).exists());
    assert_eq!(page["jobs"].as_array().unwrap().len(), 100);
    assert_eq!(page["hasMore"], false);

    // max_concurrent = 2 for echo: never more than two running at once.
    let ids: Vec<String> =
        futures::future::join_all((0..6).map(|_| server.trigger_ok("echo", json!({"sleepMs": 150})))).await;
    let mut max_running = 0;
    let start = std::time::Instant::now();
    loop {
        let (_, running) = server.get("/api/pipelines/echo/jobs?status=running&limit=100").await;
        max_running = max_running.max(running["total"].as_u64().unwrap());
        let (_, done) = server.get("/api/pipelines/echo/jobs?status=completed&limit=100").await;
        if done["total"] == 6 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "six echo jobs never completed: {done}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(max_running <= 2, "saw {max_running} running");
    assert!(max_running >= 1);
    let _ = ids;
}

#[tokio::test]
async fn retryable_failures_are_retried_and_failures_are_recorded() {
    let server = Server::start(&fixtures());
    let job = server.run("echo", json!({"failWith": "retryable-once"})).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["attempt"], 2);

    let job = server.run("echo", json!({"failWith": "retryable"})).await;
    assert_eq!(job["status"], "failed");
    assert_eq!(job["attempt"], 3, "max_attempts defaults to 3");
    assert_eq!(job["error"]["code"], "RETRYABLE");

    let job = server.run("echo", json!({"failWith": "failed", "message": "disk on fire"})).await;
    assert_eq!(job["status"], "failed");
    assert_eq!(job["attempt"], 1);
    assert_eq!(job["error"]["message"], "disk on fire");
    assert_eq!(job["error"]["retryable"], false);

    let job = server.run("echo", json!({"failWith": "invalid"})).await;
    assert_eq!(job["error"]["code"], "INVALID_INPUT");
    assert!(job["error"]["message"].as_str().unwrap().contains("message"));
}

#[tokio::test]
async fn a_server_killed_mid_job_finishes_the_job_after_restart() {
    let mut server = Server::start(&fixtures());
    let id = server.trigger_ok("echo", json!({"sleepMs": 1500, "steps": 5})).await;
    let queued: Vec<String> = futures::future::join_all((0..3).map(|_| server.trigger_ok("noop", json!({})))).await;
    server.wait_status(&id, &["running"], Duration::from_secs(30)).await;
    server.kill();
    server.restart();
    let job = server.wait_job(&id, Duration::from_secs(60)).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["attempt"], 2, "the interrupted attempt is re-run with a higher attempt number");
    for q in queued {
        assert_eq!(server.wait_job(&q, Duration::from_secs(30)).await["status"], "completed");
    }
}

#[tokio::test]
async fn health_and_pipelines_describe_the_service() {
    let server = Server::start(&fixtures());
    let (code, health) = server.get("/health").await;
    assert_eq!(code, 200);
    assert_eq!(health["status"], "healthy");
    assert!(health["uptimeSeconds"].is_u64());
    let (code, list) = server.get("/api/pipelines").await;
    assert_eq!(code, 200);
    let pipelines = list["pipelines"].as_array().unwrap();
    assert_eq!(pipelines.len(), 2);
    let echo = pipelines.iter().find(|p| p["id"] == "echo").unwrap();
    assert_eq!(echo["workerLoaded"], true);
    assert_eq!(echo["status"], "idle");
    assert_eq!(echo["paramsSchema"]["properties"]["inputDir"]["x-alephauto-path"], "read");
}
