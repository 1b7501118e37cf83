//! Hostile guests fail only their own job, with a clear code, and the server and
//! the next job of the same pipeline carry on.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{Server, pipeline};

fn hostile() -> String {
    [
        pipeline("noop", "fixture_noop", "roots = [\"ROOT\"]"),
        pipeline("trap", "fixture_trap", ""),
        pipeline("spin", "fixture_spin", "timeout_secs = 1"),
        pipeline("hog", "fixture_hog", "memory_mb = 32"),
        pipeline("escape", "fixture_escape", "roots = [\"ROOT/granted\"]"),
    ]
    .concat()
}

#[tokio::test]
async fn hostile_guests_fail_only_their_own_job() {
    let server = Server::start(&hostile());

    let job = server.run("trap", json!({})).await;
    assert_eq!(job["status"], "failed");
    assert_eq!(job["error"]["code"], "TRAP", "{job}");
    let (_, logs) = server.get(&format!("/api/jobs/{}/logs", job["id"].as_str().unwrap())).await;
    assert!(logs.to_string().contains("panicking in run"), "the panic message reaches the job log: {logs}");

    let started = Instant::now();
    let job = server.run("spin", json!({})).await;
    assert_eq!(job["status"], "failed");
    assert_eq!(job["error"]["code"], "TIMEOUT", "{job}");
    assert!(started.elapsed() < Duration::from_secs(15), "the loop was interrupted promptly");

    let job = server.run("spin", json!({"recurse": true})).await;
    assert_eq!(job["status"], "failed");
    assert_eq!(job["error"]["code"], "TRAP");
    assert!(job["error"]["message"].as_str().unwrap().contains("stack overflow"), "{job}");

    let job = server.run("hog", json!({})).await;
    assert_eq!(job["status"], "failed");
    assert_eq!(job["error"]["code"], "MEMORY_LIMIT", "{job}");
    assert!(job["error"]["message"].as_str().unwrap().contains("32 MiB"), "{job}");

    // The server keeps serving, and each pipeline's next job still gets a fresh instance.
    assert_eq!(server.run("noop", json!({})).await["status"], "completed");
    assert_eq!(server.run("trap", json!({})).await["error"]["code"], "TRAP");
    let (code, _) = server.get("/health").await;
    assert_eq!(code, 200);
}

#[tokio::test]
async fn a_guest_cannot_read_or_write_outside_its_grant() {
    let server = Server::start(&hostile());
    let granted = server.dir.join("granted");
    let inside = granted.join("repo");
    std::fs::create_dir_all(&inside).unwrap();
    std::fs::write(granted.join("secret.txt"), "TOP SECRET").unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "OUTSIDE SECRET").unwrap();
    std::os::unix::fs::symlink(outside.path(), inside.join("link")).unwrap();

    let job = server
        .run("escape", json!({"dir": inside.display().to_string(), "target": outside.path().join("secret.txt").display().to_string()}))
        .await;
    assert_eq!(job["status"], "failed", "nothing may leak: {job}");
    let message = job["error"]["message"].as_str().unwrap();
    assert!(message.contains("permission denied for every escape attempt"), "{message}");
    assert!(!granted.join("repo/planted.txt").exists(), "read-only grant was written");

    // A path parameter that resolves outside the roots is refused before queueing.
    let (code, body) = server.trigger("escape", json!({"dir": inside.join("link").display().to_string()})).await;
    assert_eq!(code, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("dir"));
}
