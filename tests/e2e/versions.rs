//! Worker versions and hot swap, against the real server: 1,000 jobs across a deploy with
//! none lost and each recording the version it ran on; a running job finishes on its own
//! version through a rollback; a pinned version; broken components refused under load while
//! the old version keeps serving (and cooling down on their own breaker); the upload's
//! attacks; a SIGHUP reload; `alephauto dev` picking up an edit.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Server, component, eventually, pipeline};

fn wasm(stem: &str) -> Vec<u8> {
    std::fs::read(component(stem)).expect("fixture component")
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Every job of `pipeline`, paged through the API.
async fn all_jobs(server: &Server, pipeline: &str) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let (status, page) =
            server.get(&format!("/api/pipelines/{pipeline}/jobs?limit=100&offset={}", out.len())).await;
        assert_eq!(status, 200, "{page}");
        let jobs = page["jobs"].as_array().cloned().unwrap_or_default();
        let more = page["hasMore"] == true;
        out.extend(jobs);
        if !more {
            return out;
        }
    }
}

async fn count(server: &Server, pipeline: &str, status: &str) -> u64 {
    let (_, page) = server.get(&format!("/api/pipelines/{pipeline}/jobs?limit=1&status={status}")).await;
    page["total"].as_u64().unwrap_or(0)
}

async fn versions(server: &Server, pipeline: &str) -> Value {
    let (status, body) = server.get(&format!("/api/pipelines/{pipeline}/versions")).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Triggers `n` jobs, 16 at a time; returns their ids in trigger order.
async fn trigger_many(server: &Server, pipeline: &str, n: usize) -> Vec<String> {
    use futures::StreamExt;
    futures::stream::iter(0..n).map(|_| server.trigger_ok(pipeline, json!({}))).buffered(16).collect().await
}

#[tokio::test]
async fn a_thousand_jobs_cross_a_swap_each_recording_its_version_then_rollback_and_pins() {
    let server = Server::start(&pipeline("noop", "fixture_noop", "max_concurrent = 4"));
    let (v1, v2) = (wasm("fixture_noop"), wasm("fixture_noop_v2"));
    let (d1, d2) = (sha256(&v1), sha256(&v2));

    let before = trigger_many(&server, "noop", 500).await;
    // Deployed while the first half is still queued and running.
    let (status, body) = server.put_component("noop", v2.clone(), "application/wasm").await;
    assert_eq!(status, 201, "{body}\n{}", server.log());
    assert_eq!(
        (body["version"].as_str(), body["digest"].as_str(), body["new"].as_bool()),
        (Some("0.2.0"), Some(d2.as_str()), Some(true))
    );
    let after = trigger_many(&server, "noop", 500).await;

    eventually(Duration::from_secs(180), "1,000 jobs completed", || async {
        let done = count(&server, "noop", "completed").await;
        if done == 1000 { Ok(()) } else { Err(done) }
    })
    .await;
    assert_eq!(count(&server, "noop", "failed").await, 0, "{}", server.log());
    let jobs = all_jobs(&server, "noop").await;
    assert_eq!(jobs.len(), 1000);
    let by_id: std::collections::HashMap<&str, &Value> = jobs.iter().map(|j| (j["id"].as_str().unwrap(), j)).collect();
    for (ids, version, digest) in [(&before, "0.1.0", &d1), (&after, "0.2.0", &d2)] {
        for id in ids {
            let job = by_id[id.as_str()];
            assert_eq!(job["status"], "completed", "{job}");
            assert_eq!(job["workerVersion"], version, "{job}");
            assert_eq!(job["componentDigest"].as_str(), Some(digest.as_str()), "{job}");
            // The result comes from the component the job says it ran on.
            let said = job["result"]["version"].as_str().unwrap_or("0.1.0");
            assert_eq!(said, version, "{job}");
        }
    }
    let list = versions(&server, "noop").await;
    assert_eq!(list["active"].as_str(), Some(d2.as_str()), "{list}");
    let rows = list["versions"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{list}");
    assert_eq!((rows[0]["version"].as_str(), rows[0]["source"].as_str()), (Some("0.1.0"), Some("config")));
    assert_eq!((rows[1]["version"].as_str(), rows[1]["source"].as_str()), (Some("0.2.0"), Some("upload")));
    // Kept by digest under the data folder.
    assert!(server.data_dir().join("components").join(format!("{d2}.wasm")).is_file());

    // A job running on 0.2.0 finishes on it although a rollback happens meanwhile.
    let slow = server.trigger_ok("noop", json!({"sleepMs": 1500})).await;
    server.wait_status(&slow, &["running"], Duration::from_secs(30)).await;
    let (status, body) = server.post("/api/pipelines/noop/rollback", json!({})).await;
    assert_eq!((status, body["version"].as_str()), (200, Some("0.1.0")), "{body}");
    let quick = server.trigger_ok("noop", json!({})).await;
    let slow = server.wait_job(&slow, Duration::from_secs(30)).await;
    assert_eq!((slow["status"].as_str(), slow["workerVersion"].as_str()), (Some("completed"), Some("0.2.0")), "{slow}");
    assert_eq!(slow["result"]["version"], "0.2.0", "{slow}");
    let quick = server.wait_job(&quick, Duration::from_secs(30)).await;
    assert_eq!(quick["workerVersion"], "0.1.0", "{quick}");
    assert_eq!(versions(&server, "noop").await["active"].as_str(), Some(d1.as_str()));

    // Nothing was registered before 0.1.0.
    let (status, body) = server.post("/api/pipelines/noop/rollback", json!({})).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("NO_PREVIOUS_VERSION")), "{body}");

    // A trigger may pin a registered version; an unknown one is a 404 naming what exists.
    let (status, body) =
        server.post("/api/pipelines/noop/trigger", json!({"parameters": {}, "version": "0.2.0"})).await;
    assert_eq!(status, 201, "{body}");
    let pinned = server.wait_job(body["jobId"].as_str().unwrap(), Duration::from_secs(30)).await;
    assert_eq!(
        (pinned["workerVersion"].as_str(), pinned["result"]["version"].as_str()),
        (Some("0.2.0"), Some("0.2.0"))
    );
    let (status, body) = server.post("/api/pipelines/noop/trigger", json!({"version": "9.9.9"})).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("UNKNOWN_VERSION")), "{body}");
    assert!(body["error"].as_str().unwrap().contains("0.2.0"), "{body}");
    let (status, body) = server.post("/api/pipelines/noop/trigger", json!({"version": 2})).await;
    assert_eq!(status, 400, "{body}");

    // Rollback to a named version; an unknown one is a 404.
    let (status, body) = server.post("/api/pipelines/noop/rollback", json!({"version": "0.2.0"})).await;
    assert_eq!((status, body["digest"].as_str()), (200, Some(d2.as_str())), "{body}");
    let (status, body) = server.post("/api/pipelines/noop/rollback", json!({"version": "7"})).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("UNKNOWN_VERSION")), "{body}");
    // Re-deploying a registered component re-activates it (200, not new).
    let (status, body) = server.put_component("noop", v1, "application/wasm").await;
    assert_eq!((status, body["new"].as_bool(), body["version"].as_str()), (200, Some(false), Some("0.1.0")), "{body}");
}

#[tokio::test]
async fn broken_components_are_refused_under_load_and_cool_down_alone() {
    let server = Server::start_with(
        &pipeline("noop", "fixture_noop", "max_concurrent = 2"),
        "[server]\nmax_component_bytes = 2097152\n",
    );
    let d1 = sha256(&wasm("fixture_noop"));
    assert_eq!(server.run("noop", json!({})).await["workerVersion"], "0.1.0");

    // Load: a steady stream of triggers while components are refused.
    let load = async {
        let mut ids = Vec::new();
        for _ in 0..150 {
            ids.push(server.trigger_ok("noop", json!({})).await);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        ids
    };
    let bad_init = wasm("fixture_bad_init");
    let attempts = async {
        let mut answers = Vec::new();
        for body in [
            bad_init.clone(),
            b"this is not a component".to_vec(),
            // A core module, not a component.
            b"\0asm\x01\0\0\0".to_vec(),
        ] {
            answers.push(server.put_component("noop", body, "application/wasm").await);
        }
        answers
    };
    let (ids, answers) = tokio::join!(load, attempts);
    let (status, body) = &answers[0];
    assert_eq!((*status, body["code"].as_str()), (422, Some("COMPONENT_REFUSED")), "{body}");
    assert!(body["error"].as_str().unwrap().contains("init"), "names the failing step: {body}");
    for (status, body) in &answers[1..] {
        assert_eq!((*status, body["code"].as_str()), (422, Some("COMPONENT_REFUSED")), "{body}");
        assert!(body["error"].as_str().unwrap().contains("compiling"), "{body}");
    }
    for id in &ids {
        let job = server.wait_job(id, Duration::from_secs(60)).await;
        assert_eq!(
            (job["status"].as_str(), job["workerVersion"].as_str()),
            (Some("completed"), Some("0.1.0")),
            "{job}"
        );
    }
    // The breaker of the broken digest opens (threshold 3) without touching the pipeline's.
    for _ in 0..2 {
        let (status, body) = server.put_component("noop", bad_init.clone(), "application/wasm").await;
        assert_eq!(status, 422, "{body}");
    }
    let (status, body) = server.put_component("noop", bad_init.clone(), "application/wasm").await;
    assert_eq!((status, body["code"].as_str()), (429, Some("COMPONENT_COOLDOWN")), "{body}");
    assert_eq!(server.run("noop", json!({})).await["status"], "completed");
    let list = versions(&server, "noop").await;
    assert_eq!(
        (list["active"].as_str(), list["versions"].as_array().map(Vec::len)),
        (Some(d1.as_str()), Some(1)),
        "{list}"
    );
    let (_, pipelines) = server.get("/api/pipelines").await;
    assert_ne!(pipelines["pipelines"][0]["status"], "cooldown", "{pipelines}");
    // Refused components are not kept.
    assert!(!server.data_dir().join("components").join(format!("{}.wasm", sha256(&bad_init))).exists());

    // Attacks on the upload.
    let v2 = wasm("fixture_noop_v2");
    let (status, body) = server.put_component("noop", vec![0u8; 2 * 1024 * 1024 + 1], "application/wasm").await;
    assert_eq!((status, body["code"].as_str()), (413, Some("PAYLOAD_TOO_LARGE")), "{body}");
    let (status, body) = server.put_component("noop", v2.clone(), "application/json").await;
    assert_eq!(status, 415, "{body}");
    let (status, body) = server.put_component("noop", v2.clone(), "application/octet-stream").await;
    assert_eq!(status, 415, "{body}");
    // application/wasm is accepted on the upload only.
    let res = server
        .http
        .post(format!("{}/api/pipelines/noop/trigger", server.url))
        .header("content-type", "application/wasm")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 415);
    let (status, body) = server.put_component("nope", v2.clone(), "application/wasm").await;
    assert_eq!((status, body["code"].as_str()), (400, Some("UNKNOWN_PIPELINE")), "{body}");
    let anonymous = reqwest::Client::new()
        .put(format!("{}/api/pipelines/noop/component", server.url))
        .header("content-type", "application/wasm")
        .body(v2.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let wrong = reqwest::Client::new()
        .put(format!("{}/api/pipelines/noop/component", server.url))
        .header("content-type", "application/wasm")
        .header("x-api-key", "not-the-key")
        .body(v2.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 403);
    // A page on another origin (the browser adds Origin): the edge refuses before auth.
    let cross = server
        .http
        .put(format!("{}/api/pipelines/noop/component", server.url))
        .header("content-type", "application/wasm")
        .header("origin", "http://evil.example")
        .body(v2.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status().as_u16(), 403);
    let res = server
        .http
        .post(format!("{}/api/pipelines/noop/component", server.url))
        .header("content-type", "application/wasm")
        .body(v2.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 405);
    // None of that changed what serves.
    assert_eq!(versions(&server, "noop").await["active"].as_str(), Some(d1.as_str()));
}

#[tokio::test]
async fn sighup_swaps_a_changed_component_and_keeps_the_old_on_a_bad_one() {
    let server = Server::start(&pipeline("noop", "fixture_noop", ""));
    assert_eq!(server.run("noop", json!({})).await["workerVersion"], "0.1.0");
    let config = std::fs::read_to_string(server.config_path()).unwrap();
    let hup = || {
        let ok = Command::new("kill").args(["-HUP", &server.pid().to_string()]).status().unwrap();
        assert!(ok.success());
    };
    std::fs::write(server.config_path(), config.replace("fixture_noop.wasm", "fixture_noop_v2.wasm")).unwrap();
    hup();
    eventually(Duration::from_secs(60), "0.2.0 active after SIGHUP", || async {
        let list = versions(&server, "noop").await;
        let active = list["versions"].as_array().unwrap().iter().find(|v| v["active"] == true).cloned();
        match active {
            Some(v) if v["version"] == "0.2.0" => Ok(()),
            other => Err(other),
        }
    })
    .await;
    assert_eq!(server.run("noop", json!({})).await["workerVersion"], "0.2.0");

    std::fs::write(server.config_path(), config.replace("fixture_noop.wasm", "fixture_bad_init.wasm")).unwrap();
    hup();
    eventually(Duration::from_secs(60), "the refused reload logged", || async {
        if server.log().contains("reload: component refused") { Ok(()) } else { Err(()) }
    })
    .await;
    assert_eq!(server.run("noop", json!({})).await["workerVersion"], "0.2.0");
}

fn repo_root() -> PathBuf {
    std::fs::canonicalize(Path::new(env!("CARGO_MANIFEST_DIR")).join("..")).expect("repository root")
}

#[tokio::test]
async fn dev_rebuilds_and_deploys_an_edited_worker() {
    let temp = tempfile::tempdir().unwrap();
    let dir = std::fs::canonicalize(temp.path()).unwrap().join("hello-rs");
    let out = Command::new(env!("CARGO_BIN_EXE_alephauto"))
        .args(["new-worker", "hello-rs", "--lang", "rust", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A pipeline named like the crate, configured with another component to start from.
    let server = Server::start(&pipeline("hello-rs", "fixture_noop", "roots = [\"ROOT\"]"));
    // The configured version registers first (so the deploy below is a second version).
    assert_eq!(server.run("hello-rs", json!({})).await["status"], "completed");
    let key = server.api_key.clone().unwrap_or_default();
    // A debug build (no LTO) keeps the loop quick; its own target folder, kept between runs.
    let target = repo_root().join("target").join("dev-loop");
    let log = std::fs::File::create(server.state.join("dev.log")).unwrap();
    let mut dev = Command::new(env!("CARGO_BIN_EXE_alephauto"))
        .args(["--server", &server.url, "dev"])
        .arg(&dir)
        .env("ALEPHAUTO_API_KEY", &key)
        .env("CARGO_TARGET_DIR", &target)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _dev = Kill(&mut dev);
    let dev_log = || std::fs::read_to_string(server.state.join("dev.log")).unwrap_or_default();
    let greeting = |job: &Value| job["result"]["greeting"].as_str().map(str::to_string);
    eventually(Duration::from_secs(400), "the first build deployed", || async {
        let list = versions(&server, "hello-rs").await;
        if list["versions"].as_array().map(Vec::len) == Some(2) { Ok(()) } else { Err((list, dev_log())) }
    })
    .await;
    let job = server.run("hello-rs", json!({"name": "Ada"})).await;
    assert_eq!(greeting(&job).as_deref(), Some("Hello, Ada!"), "{job}");

    // Edit: a new greeting and version; `dev` rebuilds and swaps it in.
    let lib = dir.join("src/lib.rs");
    let source = std::fs::read_to_string(&lib).unwrap();
    assert!(source.contains("Hello, "), "the scaffold greets");
    std::fs::write(&lib, source.replace("Hello, ", "Howdy, ")).unwrap();
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    std::fs::write(dir.join("Cargo.toml"), manifest.replacen("version = \"0.1.0\"", "version = \"0.2.0\"", 1)).unwrap();
    eventually(Duration::from_secs(400), "the edit deployed", || async {
        let list = versions(&server, "hello-rs").await;
        let active = list["versions"].as_array().unwrap().iter().find(|v| v["active"] == true).cloned();
        match active {
            Some(v) if v["version"] == "0.2.0" => Ok(()),
            other => Err((other, dev_log())),
        }
    })
    .await;
    let job = server.run("hello-rs", json!({"name": "Ada"})).await;
    assert_eq!(greeting(&job).as_deref(), Some("Howdy, Ada!"), "{job}");
    assert_eq!(job["workerVersion"], "0.2.0");
}
