//! Job control over HTTP and the CLI: cancel, retry, logs, listing, status,
//! metrics, the OpenAPI document, and graceful shutdown on SIGTERM.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{Server, pipeline};

fn config() -> String {
    [pipeline("noop", "fixture_noop", ""), pipeline("echo", "fixture_echo", "roots = [\"ROOT\"]\nmax_concurrent = 1")]
        .concat()
}

#[tokio::test]
async fn cancel_interrupts_running_and_queued_jobs_and_retry_reruns_them() {
    let server = Server::start(&config());
    let long = server.trigger_ok("echo", json!({"sleepMs": 60000, "steps": 100})).await;
    // Keys the server sets cannot be forged: they are dropped from the parameters.
    let queued =
        server.trigger_ok("echo", json!({"sleepMs": 10, "triggeredBy": "forged", "triggeredAt": "never"})).await;
    server.wait_status(&long, &["running"], Duration::from_secs(30)).await;

    // A queued job is cancelled at once and never runs.
    let (code, job) = server.post(&format!("/api/jobs/{queued}/cancel"), json!({})).await;
    assert_eq!(code, 200, "{job}");
    assert_eq!(job["status"], "cancelled");
    assert!(job["startedAt"].is_null());
    assert_eq!(job["data"]["triggeredBy"], "api", "{job}");
    assert_ne!(job["data"]["triggeredAt"], "never", "{job}");

    // A running job's guest is interrupted promptly.
    let started = Instant::now();
    let (code, job) = server.post(&format!("/api/jobs/{long}/cancel"), json!({})).await;
    assert_eq!(code, 200, "{job}");
    assert_eq!(job["status"], "cancelled");
    assert_eq!(job["error"]["code"], "CANCELLED");
    // The slot frees up: the next job of the pipeline (max_concurrent = 1) runs soon.
    let next = server.run("echo", json!({})).await;
    assert_eq!(next["status"], "completed");
    assert!(started.elapsed() < Duration::from_secs(10), "the cancelled guest held its slot");
    let (_, job) = server.get(&format!("/api/jobs/{long}")).await;
    assert_eq!(job["status"], "cancelled", "terminal states never change");
    assert!(job["progress"]["percent"].as_u64().unwrap() < 100);

    // Cancelling a terminal job, or an unknown one.
    let (code, body) = server.post(&format!("/api/jobs/{long}/cancel"), json!({})).await;
    assert_eq!(code, 409, "{body}");
    let (code, _) = server.post("/api/jobs/nope-123/cancel", json!({})).await;
    assert_eq!(code, 404);

    // Retry: only failed or cancelled jobs.
    let (code, retry) = server.post(&format!("/api/jobs/{queued}/retry"), json!({})).await;
    assert_eq!(code, 201, "{retry}");
    let retry_id = retry["jobId"].as_str().unwrap();
    assert!(retry_id.starts_with("echo-retry-"), "{retry_id}");
    assert_eq!(retry["retriedFrom"], queued.as_str());
    let done = server.wait_job(retry_id, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["retryCount"], 1);
    assert_eq!(done["data"]["sleepMs"], 10, "same parameters");
    assert_eq!(done["data"]["triggeredBy"], "retry", "{done}");
    let (code, _) = server.post(&format!("/api/jobs/{retry_id}/retry"), json!({})).await;
    assert_eq!(code, 409, "a completed job cannot be retried");
}

#[tokio::test]
async fn logs_listing_status_metrics_and_openapi() {
    let server = Server::start(&config());
    let job = server.run("echo", json!({"print": 3})).await;
    let id = job["id"].as_str().unwrap();
    let (code, logs) = server.get(&format!("/api/jobs/{id}/logs")).await;
    assert_eq!(code, 200);
    let lines = logs["logs"].as_array().unwrap();
    let streams: Vec<(&str, &str)> =
        lines.iter().map(|l| (l["stream"].as_str().unwrap(), l["message"].as_str().unwrap())).collect();
    assert_eq!(streams[0], ("log", "echo starting"));
    assert!(streams.contains(&("stdout", "stdout line 2")), "{streams:?}");
    assert!(streams.contains(&("stderr", "stderr line")), "{streams:?}");
    assert_eq!(lines[0]["fields"]["attempt"], 1);
    assert_eq!(logs["truncated"], false);

    for _ in 0..3 {
        server.run("noop", json!({})).await;
    }
    server.run("echo", json!({"failWith": "failed"})).await;
    let (_, page) = server.get("/api/jobs?pipelineId=noop&limit=2").await;
    assert_eq!(page["total"], 3);
    assert_eq!(page["jobs"].as_array().unwrap().len(), 2);
    assert_eq!(page["hasMore"], true);
    let (_, page) = server.get("/api/jobs?status=failed").await;
    assert_eq!(page["total"], 1);
    let (_, page) = server.get("/api/jobs?status=completed,failed&offset=4").await;
    assert_eq!(page["jobs"].as_array().unwrap().len(), 1);
    for bad in [
        "/api/jobs?limit=1001",
        "/api/jobs?limit=x",
        "/api/jobs?status=nope",
        "/api/jobs?pipelineId=ghost",
        "/api/jobs?sort=asc",
    ] {
        let (code, body) = server.get(bad).await;
        assert_eq!(code, 400, "{bad}: {body}");
        assert!(body["error"].is_string());
    }

    let (code, status) = server.get("/api/status").await;
    assert_eq!(code, 200);
    assert_eq!(status["queue"]["capacity"], 6);
    assert!(status["recentActivity"].as_array().unwrap().len() >= 5);

    let res = server.http.get(format!("{}/metrics", server.url)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(text.contains(r#"alephauto_jobs{pipeline="noop",status="completed"} 3"#), "{text}");
    assert!(text.contains(r#"alephauto_jobs_finished_total{pipeline="echo",status="failed"} 1"#), "{text}");
    assert!(text.contains("alephauto_job_duration_seconds_bucket"));
    assert!(text.contains("alephauto_instantiate_seconds_count"));
    assert!(text.contains(r#"alephauto_circuit_breaker_open{pipeline="echo"} 0"#));
    assert!(text.contains(r#"alephauto_queue_depth{pipeline="echo"} 0"#));
    assert!(text.contains("alephauto_worker_init_seconds"));

    let (code, doc) = server.get("/api/openapi.json").await;
    assert_eq!(code, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/pipelines/{id}/trigger",
        "/api/jobs/{id}/cancel",
        "/api/jobs/{id}/retry",
        "/api/jobs/{id}/logs",
        "/metrics",
    ] {
        assert!(doc["paths"][path].is_object(), "missing {path}");
    }
    assert!(doc["paths"]["/api/pipelines/{id}/trigger"]["post"]["responses"]["429"].is_object());
    assert!(doc["components"]["schemas"]["Job"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_triggers_waits_with_progress_and_controls_jobs() {
    let server = Server::start(&config());
    let s = &server;
    let out =
        tokio::task::block_in_place(|| s.cli(&["trigger", "echo", "-p", "steps=4", "-p", "sleepMs=400", "--wait"]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let id = stdout.lines().next().unwrap().to_string();
    assert!(id.starts_with("echo-manual-"));
    assert!(stderr.contains("step 2 of 4"), "progress is shown live: {stderr}");
    assert!(stderr.contains("100% completed"), "{stderr}");
    assert!(stdout.contains("\"steps\": 4"), "the result is printed: {stdout}");

    let out = tokio::task::block_in_place(|| {
        s.cli(&["trigger", "echo", "--params-json", r#"{"failWith":"failed","message":"nope"}"#, "--wait"])
    });
    assert_eq!(out.status.code(), Some(4), "a failed job exits with its own code");
    assert!(String::from_utf8_lossy(&out.stderr).contains("failed: nope"));

    // The same in a real terminal (a pseudo-terminal from util-linux `script`): the bar redraws in place.
    let with_pty = std::path::Path::new("/usr/bin/script").exists();
    if with_pty {
        let command = format!("{} trigger echo -p steps=3 -p sleepMs=300 --wait", env!("CARGO_BIN_EXE_alephauto"));
        let out = tokio::task::block_in_place(|| {
            Command::new("/usr/bin/script")
                .args(["-qec", &command, "/dev/null"])
                .env("ALEPHAUTO_URL", &s.url)
                .env("ALEPHAUTO_API_KEY", s.api_key.clone().unwrap_or_default())
                .output()
                .unwrap()
        });
        let screen = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{screen}");
        assert!(screen.contains("\r[") && screen.contains("100% completed"), "{screen:?}");
        assert!(screen.contains("\"steps\": 3"), "{screen:?}");
    }

    let out = tokio::task::block_in_place(|| s.cli(&["trigger", "ghost"]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Unknown pipeline: ghost"));

    let out = tokio::task::block_in_place(|| s.cli(&["jobs", "--pipeline", "echo"]));
    let listing = String::from_utf8_lossy(&out.stdout);
    let expected = if with_pty { "3 of 3 jobs" } else { "2 of 2 jobs" };
    assert!(listing.contains(&id) && listing.contains(expected), "{listing}");
    let out = tokio::task::block_in_place(|| s.cli(&["job", &id]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"status\": \"completed\""));
    let out = tokio::task::block_in_place(|| s.cli(&["logs", &id]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("echo starting"));

    let long = server.trigger_ok("echo", json!({"sleepMs": 60000, "steps": 100})).await;
    server.wait_status(&long, &["running"], Duration::from_secs(30)).await;
    let follower = {
        let url = server.url.clone();
        let long = long.clone();
        std::thread::spawn(move || {
            Command::new(env!("CARGO_BIN_EXE_alephauto"))
                .args(["logs", &long, "--follow"])
                .env("ALEPHAUTO_URL", url)
                .output()
                .expect("logs --follow")
        })
    };
    let out = tokio::task::block_in_place(|| s.cli(&["cancel", &long]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("cancelled"), "{out:?}");
    let followed = tokio::task::block_in_place(|| follower.join().unwrap());
    assert!(followed.status.success(), "--follow ends when the job ends");
    let out = tokio::task::block_in_place(|| s.cli(&["retry", &long]));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("echo-retry-"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_running_jobs_without_reruns() {
    let mut server = Server::start(&config());
    let ids: Vec<String> =
        futures::future::join_all((0..3).map(|_| server.trigger_ok("echo", json!({"sleepMs": 700})))).await;
    server.wait_status(&ids[0], &["running"], Duration::from_secs(30)).await;
    let status = tokio::task::block_in_place(|| server.terminate());
    assert!(status.success(), "clean exit: {status:?}\n{}", server.log());
    let log = server.log();
    assert!(log.contains("shutdown complete"), "{log}");
    server.restart();
    for id in &ids {
        let job = server.wait_job(id, Duration::from_secs(30)).await;
        assert_eq!(job["status"], "completed", "{job}");
        assert_eq!(job["attempt"], 1, "graceful shutdown re-runs nothing: {job}");
    }
}

#[test]
fn binding_a_public_address_without_an_api_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alephauto.toml");
    // Without the opt-out a key would be generated; the opt-out is for loopback only.
    let text = format!(
        "[server]\nrequire_key = false\n[runtime]\ndata_dir = {:?}\n",
        dir.path().join("data").display().to_string()
    );
    std::fs::write(&config, text).unwrap();
    // Refused before anything binds, so no socket is opened on a public address.
    let out = Command::new(env!("CARGO_BIN_EXE_alephauto"))
        .args(["serve", "--bind", "0.0.0.0:0", "--config"])
        .arg(&config)
        .env_remove("ALEPHAUTO_API_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refusing to listen on non-loopback address"), "{stderr}");
    assert!(stderr.contains("require_key = false is accepted only on a loopback bind"), "{stderr}");
}

#[tokio::test]
async fn cancels_racing_the_slot_hand_off_leave_no_job_behind() {
    // Two slots and a backlog: each finishing job hands its slot to the next queued one in the
    // same write, while every third job is cancelled right after its trigger.
    let server = Server::start(&pipeline("echo", "fixture_echo", "roots = [\"ROOT\"]\nmax_concurrent = 2"));
    let mut ids = Vec::new();
    for i in 0..90 {
        let id = server.trigger_ok("echo", json!({"sleepMs": 3})).await;
        if i % 3 == 0 {
            let (code, job) = server.post(&format!("/api/jobs/{id}/cancel"), json!({})).await;
            // Queued or running: cancelled now; already finished: 409.
            assert!(code == 200 || code == 409, "{code}: {job}");
        }
        ids.push(id);
    }
    let (mut completed, mut cancelled) = (0, 0);
    for (i, id) in ids.iter().enumerate() {
        let job = server.wait_job(id, Duration::from_secs(60)).await;
        match job["status"].as_str() {
            Some("completed") => completed += 1,
            Some("cancelled") => {
                assert_eq!(i % 3, 0, "only the jobs we cancelled end cancelled: {job}");
                cancelled += 1;
            }
            other => panic!("{id} ended {other:?}: {job}"),
        }
    }
    assert!(cancelled > 0, "no cancel reached a queued or running job");
    let (_, page) = server.get("/api/jobs?status=queued,running").await;
    assert_eq!(page["total"], 0, "nothing is left queued or running: {page}");
    let (_, page) = server.get("/api/jobs?status=completed").await;
    assert_eq!(page["total"], completed);
    let (_, page) = server.get("/api/jobs?status=cancelled").await;
    assert_eq!(page["total"], cancelled);
    let (_, page) = server.get("/api/jobs").await;
    assert_eq!(page["total"], 90);
}
