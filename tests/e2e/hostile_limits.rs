//! Per-job caps on what a guest can take from the host: descriptors, host memory, disk
//! in its output folder, and a slot held by a call parked in the host. Each attack ends
//! only its own job with a clear answer; `/health` stays quick during it, the server's
//! memory stays bounded, and the next job of the same pipeline succeeds.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Server, eventually, pipeline};

/// Fails unless `/health` answers within 100 ms; retries a slow probe (a loaded
/// 2-core CI box stalls now and then) and fails only when three in a row are slow.
async fn health_is_quick(server: &Server) {
    let mut slowest = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let (code, _) = server.get("/health").await;
        let took = started.elapsed();
        assert_eq!(code, 200);
        if took <= Duration::from_millis(100) {
            return;
        }
        slowest.push(took);
    }
    panic!("/health took {slowest:?} during the attack");
}

/// Waits for the job while probing `/health`; returns the job and the server's peak RSS (KiB).
async fn watch(server: &Server, id: &str, limit: Duration) -> (Value, u64) {
    let start = Instant::now();
    let mut peak = server.rss_kib();
    loop {
        health_is_quick(server).await;
        peak = peak.max(server.rss_kib());
        let (_, job) = server.get(&format!("/api/jobs/{id}")).await;
        if ["completed", "failed", "cancelled"].contains(&job["status"].as_str().unwrap_or("")) {
            return (job, peak);
        }
        assert!(start.elapsed() < limit, "job {id} stuck at {job}\nlog:\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn logs(server: &Server, id: &str) -> String {
    server.get(&format!("/api/jobs/{id}/logs")).await.1.to_string()
}

/// The next job of the pipeline still runs: `exec` with no paths completes.
async fn next_job_succeeds(server: &Server, pipeline: &str) {
    let job = server.run(pipeline, json!({"mode": "exec", "paths": ""})).await;
    assert_eq!(job["status"], "completed", "{job}");
}

fn open_fds(server: &Server) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", server.pid())).map(|d| d.count()).unwrap_or(0)
}

#[tokio::test]
async fn twenty_thousand_opens_stop_at_the_descriptor_cap() {
    let server = Server::start(&pipeline("fds", "fixture_limits", "max_open_files = 256"));
    let before = open_fds(&server);
    let id = server.trigger_ok("fds", json!({"mode": "fds"})).await;
    let (job, _) = watch(&server, &id, Duration::from_secs(60)).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["code"], "FAILED", "the guest saw an error, not a trap: {job}");
    let message = job["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("opened 256 files, then:"), "the cap is exactly 256 open files: {message}");
    assert!(logs(&server, &id).await.contains("descriptor limit reached"), "the job log says why");
    // Every descriptor of the job went with its store.
    assert!(open_fds(&server) < before + 16, "descriptors leaked: {} before, {} after", before, open_fds(&server));
    next_job_succeeds(&server, "fds").await;
}

#[tokio::test]
async fn guests_together_never_take_the_descriptors_the_server_needs() {
    // A process limit of 1,024 and a per-job cap far above it: what stops the guest is the
    // budget all guests share, which leaves the server its reserve (256 here) for
    // connections, SQLite and logs, instead of EMFILE in the accept loop.
    let server = Server::start_with_nofile_limit(&pipeline("fds", "fixture_limits", "max_open_files = 100000"), 1024);
    let limit = std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).unwrap_or_default();
    assert!(limit.lines().any(|l| l.starts_with("Max open files") && l.contains(" 1024 ")), "{limit}");
    let (first, second) = (
        server.trigger_ok("fds", json!({"mode": "fds"})).await,
        server.trigger_ok("fds", json!({"mode": "fds"})).await,
    );
    for id in [&first, &second] {
        let (job, _) = watch(&server, id, Duration::from_secs(60)).await;
        assert_eq!(job["status"], "failed", "{job}");
        let message = job["error"]["message"].as_str().unwrap_or_default();
        let opened: usize = message
            .strip_prefix("opened ")
            .and_then(|m| m.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("an open failed in the guest: {job}"));
        assert!(opened <= 1024 - 256, "the guests' budget leaves the reserve: {opened} opened");
    }
    // New connections are still accepted (each needs a descriptor of the reserve).
    for _ in 0..20 {
        let fresh = reqwest::Client::new();
        let res = fresh.get(format!("{}/health", server.url)).send().await.expect("a new connection is accepted");
        assert_eq!(res.status(), 200);
    }
    health_is_quick(&server).await;
    assert!(!server.log().contains("Too many open files"), "{}", server.log());
    next_job_succeeds(&server, "fds").await;
}

#[tokio::test]
async fn a_hundred_megabytes_of_log_fields_are_never_parsed() {
    // The guest needs room for its own 100 MB string; that memory is its own (memory_mb).
    let server = Server::start(&pipeline("logbomb", "fixture_limits", "memory_mb = 512"));
    // Warm: the component is loaded and one instance has run, so `before` holds the worker.
    next_job_succeeds(&server, "logbomb").await;
    let before = server.rss_kib();
    let id = server.trigger_ok("logbomb", json!({"mode": "log"})).await;
    let (job, peak) = watch(&server, &id, Duration::from_secs(120)).await;
    assert_eq!(job["status"], "completed", "{job}");
    // Guest memory (~110 MB touched) plus one lifted copy of each string (110 MB) is what
    // the attack may cost; parsing the fields cost gigabytes before.
    let grew_mib = peak.saturating_sub(before) / 1024;
    eprintln!("log bomb: server RSS {} MiB before, peak {} MiB", before / 1024, peak / 1024);
    assert!(grew_mib < 300, "server RSS grew by {grew_mib} MiB");
    let (_, entries) = server.get(&format!("/api/jobs/{id}/logs")).await;
    let entries = entries["logs"].as_array().or(entries.as_array()).cloned().unwrap_or_default();
    let big: Vec<&Value> = entries.iter().filter(|e| e["message"] == "big fields").collect();
    assert_eq!(big.len(), 1, "{entries:?}");
    for e in big {
        let kept = e["fields"].as_str().expect("oversized fields are kept as a string");
        assert!(kept.contains("truncated") && kept.len() < 2000, "{}", kept.len());
    }
    let long =
        entries.iter().find(|e| e["message"].as_str().is_some_and(|m| m.starts_with("mmm"))).expect("long message");
    assert!(long["message"].as_str().unwrap().len() < 9000, "a message is cut before it is kept");
    next_job_succeeds(&server, "logbomb").await;
}

fn output_of(server: &Server, id: &str) -> std::path::PathBuf {
    server.state.join("data").join("outputs").join(id)
}

#[tokio::test]
async fn a_disk_flood_fails_with_disk_quota_and_its_output_is_removed() {
    let server = Server::start(
        &[
            pipeline("bytes", "fixture_limits", "output_quota_mb = 64\ntimeout_secs = 120"),
            pipeline("files", "fixture_limits", "output_quota_files = 2000\ntimeout_secs = 120"),
        ]
        .concat(),
    );
    for (pipeline, mode) in [("bytes", "disk-bytes"), ("files", "disk-files")] {
        let started = Instant::now();
        let id = server.trigger_ok(pipeline, json!({"mode": mode})).await;
        let (job, _) = watch(&server, &id, Duration::from_secs(60)).await;
        assert_eq!(job["status"], "failed", "{job}");
        assert_eq!(job["error"]["code"], "DISK_QUOTA", "{job}");
        assert!(started.elapsed() < Duration::from_secs(30), "stopped promptly, not at the timeout");
        assert!(!output_of(&server, &id).exists(), "the over-quota output folder is removed");
        next_job_succeeds(&server, pipeline).await;
    }
}

#[tokio::test]
async fn cancel_frees_the_slot_of_a_guest_parked_in_a_long_sleep() {
    let server = Server::start(
        &[
            pipeline("sleeper", "fixture_limits", "max_concurrent = 1\ntimeout_secs = 120"),
            pipeline("deadline", "fixture_limits", "timeout_secs = 2"),
        ]
        .concat(),
    );
    let sleeping = server.trigger_ok("sleeper", json!({"mode": "sleep"})).await;
    // The guest reports `parked` just before its 60-s clock wait.
    eventually(Duration::from_secs(30), "the sleeper parks", || async {
        let (_, job) = server.get(&format!("/api/jobs/{sleeping}")).await;
        if job["progress"]["message"] == "parked" { Ok(()) } else { Err(job) }
    })
    .await;
    let next = server.trigger_ok("sleeper", json!({"mode": "exec", "paths": ""})).await;
    // Not a synchronisation: the window in which a wrongly freed slot would start `next`.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.get(&format!("/api/jobs/{next}")).await.1["status"], "queued", "one slot, held by the sleeper");

    let cancelled_at = Instant::now();
    let (code, body) = server.post(&format!("/api/jobs/{sleeping}/cancel"), json!({})).await;
    assert_eq!(code, 200, "{body}");
    let job = server.wait_status(&next, &["running", "completed"], Duration::from_secs(10)).await;
    let took = cancelled_at.elapsed();
    eprintln!("cancel of a parked call: the next job ran {took:?} after the cancel answered");
    assert!(took < Duration::from_secs(1), "the slot was free {took:?} after the cancel ({job})");
    assert_eq!(server.wait_job(&next, Duration::from_secs(30)).await["status"], "completed");
    assert_eq!(server.get(&format!("/api/jobs/{sleeping}")).await.1["status"], "cancelled");

    // The deadline ends a parked call too, at the deadline and not 5 s after it.
    let started = Instant::now();
    let job = server.run("deadline", json!({"mode": "sleep"})).await;
    assert_eq!(job["error"]["code"], "TIMEOUT", "{job}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}

fn answer_for(answer: &Value, path: &str) -> String {
    answer.as_str().unwrap_or_default().replace(path, "<path>")
}

#[tokio::test]
async fn file_executable_answers_the_same_for_any_path_outside_the_grants() {
    let server = Server::start(&pipeline("exec", "fixture_limits", "roots = [\"ROOT\"]"));
    let granted = server.dir.join("granted");
    std::fs::create_dir_all(&granted).unwrap();
    let tool = granted.join("tool");
    std::fs::write(&tool, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&tool, <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755))
        .unwrap();
    let secret = tempfile::tempdir().unwrap();
    let real = secret.path().join("real");
    std::fs::write(&real, "x").unwrap();
    let missing = secret.path().join("missing");
    std::os::unix::fs::symlink(&real, granted.join("to-real")).unwrap();
    std::os::unix::fs::symlink(&missing, granted.join("to-missing")).unwrap();

    let show = |p: &Path| p.display().to_string();
    let paths = [
        show(&real),
        show(&missing),
        show(&granted.join("to-real")),
        show(&granted.join("to-missing")),
        format!("{}/../{}", show(&granted), real.strip_prefix("/").unwrap().display()),
        show(&tool),
    ];
    let job = server.run("exec", json!({"mode": "exec", "dir": show(&granted), "paths": paths.join(",")})).await;
    assert_eq!(job["status"], "completed", "{job}");
    let answers = job["result"]["answers"].as_array().unwrap().clone();
    assert_eq!(answers.len(), paths.len(), "{job}");
    assert_eq!(
        answer_for(&answers[0], &paths[0]),
        answer_for(&answers[1], &paths[1]),
        "existing vs missing outside file"
    );
    assert_eq!(
        answer_for(&answers[2], &paths[2]),
        answer_for(&answers[3], &paths[3]),
        "links to existing vs missing outside files"
    );
    assert!(answer_for(&answers[0], &paths[0]).contains("outside the folders granted"), "{answers:?}");
    assert!(answer_for(&answers[4], &paths[4]).contains("outside the folders granted"), "{answers:?}");
    assert_eq!(answers[5], json!(true), "a granted executable still answers: {answers:?}");
}
