//! Inventories and fan-out runs against the real server: a run over discovered git
//! repositories with one failing, cancel, `max_concurrent` during a run, targets outside the
//! roots refused, API-made inventories, dedupe keys, the CLI, schema-enhancement over every
//! README under a folder, and the same run on PostgreSQL.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Server, eventually, init_repo, pg_schema_url, pipeline, write_tree};

/// The echo fixture (writes `<journalDir>/runs.log`, lists `inputDir`) plus inventories.
fn config(extra: &str) -> String {
    format!(
        "{}\n[inventories.repos]\ndiscover = {{ base = \"ROOT/repos\", depth = 2 }}\n\
         [inventories.mixed]\npaths = [\"ROOT/repos/alpha\", \"/etc\"]\n{extra}",
        pipeline("echo", "fixture_echo", "roots = [\"ROOT\"]\nmax_concurrent = 2")
    )
}

/// Four git repositories under ROOT/repos (one nested in a group folder, one whose
/// `runs.log` is a folder so the echo worker fails there) and a plain folder.
fn make_repos(root: &Path) {
    for name in ["alpha", "beta", "group/gamma", "broken"] {
        let repo = root.join("repos").join(name);
        write_tree(&repo, &[("README.md", "# x\n")]);
        init_repo(&repo);
    }
    std::fs::create_dir_all(root.join("repos/broken/runs.log")).unwrap();
    std::fs::create_dir_all(root.join("repos/not-a-repo")).unwrap();
}

async fn start_run(server: &Server, pipeline: &str, body: Value) -> Value {
    let (status, run) = server.post(&format!("/api/pipelines/{pipeline}/runs"), body).await;
    assert_eq!(status, 201, "start run: {run}\nlog:\n{}", server.log());
    run
}

/// Waits until the run has no queued or running job and every target is recorded.
async fn wait_run(server: &Server, id: &str, secs: u64) -> Value {
    eventually(Duration::from_secs(secs), "the run to finish", || async {
        let (_, v) = server.get(&format!("/api/runs/{id}")).await;
        let c = &v["run"]["counts"];
        let active = c["queued"].as_u64().unwrap_or(1) + c["running"].as_u64().unwrap_or(1);
        if v["run"]["startedAt"].is_string() && active == 0 { Ok(v) } else { Err(v) }
    })
    .await
}

fn run_lines(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("runs.log")).map(|s| s.lines().count()).unwrap_or(0)
}

async fn a_failing_repository_does_not_stop_the_others(server: &Server) {
    make_repos(&server.dir);
    let started = start_run(
        server,
        "echo",
        json!({"inventory": "repos", "pathParameter": "journalDir", "parameters": {"steps": 2}}),
    )
    .await;
    let id = started["run"]["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("run-echo-"), "{id}");
    assert_eq!(started["run"]["total"], 4, "{started}");
    let done = wait_run(server, &id, 90).await;
    let run = &done["run"];
    assert_eq!(run["status"], "partial", "{done}");
    assert_eq!(run["percent"], 100);
    assert_eq!(run["counts"]["completed"], 3, "{done}");
    assert_eq!(run["counts"]["failed"], 1, "{done}");
    let targets = done["targets"].as_array().unwrap();
    let paths: Vec<&str> = targets.iter().map(|t| t["path"].as_str().unwrap()).collect();
    let root = server.dir.join("repos");
    let expect: Vec<String> =
        ["alpha", "beta", "broken", "group/gamma"].iter().map(|n| root.join(n).display().to_string()).collect();
    assert_eq!(paths, expect, "discovered git repositories only, in order");
    for t in targets {
        let broken = t["path"].as_str().unwrap().ends_with("broken");
        assert_eq!(t["status"], if broken { "failed" } else { "completed" }, "{t}");
        let job_id = t["jobId"].as_str().unwrap();
        assert!(job_id.starts_with("echo-run-"), "{job_id}");
        let (_, job) = server.get(&format!("/api/jobs/{job_id}")).await;
        assert_eq!(job["data"]["runId"], id.as_str(), "{job}");
        assert_eq!(job["data"]["triggeredBy"], "api", "{job}");
        assert_eq!(job["data"]["journalDir"], t["path"], "{job}");
        if !broken {
            assert_eq!(run_lines(Path::new(t["path"].as_str().unwrap())), 1, "each repository ran once");
        }
    }
    // Per-repository metadata: last scanned, outcome, job and where its files are.
    let (status, inv) = server.get("/api/inventories/repos").await;
    assert_eq!(status, 200, "{inv}");
    assert_eq!(inv["inventory"]["source"], "config");
    for t in inv["targets"].as_array().unwrap() {
        let broken = t["path"].as_str().unwrap().ends_with("broken");
        assert_eq!(t["lastOutcome"], if broken { "failed" } else { "completed" }, "{t}");
        assert_eq!(t["lastRunId"], id.as_str());
        assert!(t["lastScanned"].is_string() && t["lastCompletedAt"].is_string(), "{t}");
        assert_eq!(t["lastArtifacts"], format!("/api/jobs/{}/artifacts", t["lastJobId"].as_str().unwrap()));
    }
    let (_, list) = server.get("/api/runs?pipelineId=echo").await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["runs"][0]["id"], id.as_str());
}

#[tokio::test]
async fn a_run_over_discovered_repositories_survives_one_failing_repository() {
    let server = Server::start(&config(""));
    a_failing_repository_does_not_stop_the_others(&server).await;
}

#[tokio::test]
async fn a_run_on_postgresql_keeps_its_jobs_and_aggregate_in_the_shared_store() {
    let url = pg_schema_url("runs");
    let mut server = Server::start_with(&config(""), &format!("database_url = {url:?}\n"));
    a_failing_repository_does_not_stop_the_others(&server).await;
    // Dedupe keys are unique in the shared table: a replayed start returns the first run.
    let body = json!({"inventory": "mixed", "pathParameter": "inputDir", "dedupeKey": "nightly-2026-12-03"});
    let first = start_run(&server, "echo", body.clone()).await;
    server.restart();
    let (status, again) = server.post("/api/pipelines/echo/runs", body).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["run"]["id"], first["run"]["id"]);
    let (_, list) = server.get("/api/runs").await;
    assert_eq!(list["total"], 2, "{list}");
}

#[tokio::test]
async fn cancelling_a_run_cancels_its_jobs_and_max_concurrent_holds_during_it() {
    let server = Server::start(&config(""));
    let repos = server.dir.join("repos");
    let mut paths = Vec::new();
    for i in 0..6 {
        let dir = repos.join(format!("r{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        paths.push(dir.display().to_string());
    }
    let (status, _) = server.post("/api/inventories", json!({"name": "six", "paths": paths})).await;
    assert_eq!(status, 201);
    let started = start_run(
        &server,
        "echo",
        json!({"inventory": "six", "pathParameter": "inputDir", "parameters": {"sleepMs": 30000, "steps": 30}}),
    )
    .await;
    let id = started["run"]["id"].as_str().unwrap().to_string();
    assert_eq!(started["run"]["total"], 6);
    // echo has max_concurrent = 2: two run, four wait, and never more than two at once.
    eventually(Duration::from_secs(60), "two jobs running", || async {
        let (_, v) = server.get(&format!("/api/runs/{id}")).await;
        if v["run"]["counts"]["running"] == 2 { Ok(()) } else { Err(v["run"]["counts"].clone()) }
    })
    .await;
    for _ in 0..10 {
        let (_, v) = server.get(&format!("/api/runs/{id}")).await;
        assert_eq!(v["run"]["counts"]["running"], 2, "{v}");
        assert_eq!(v["run"]["counts"]["queued"], 4, "{v}");
        assert_eq!(v["run"]["status"], "running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, cancelled) = server.post(&format!("/api/runs/{id}/cancel"), json!({})).await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["run"]["status"], "cancelled");
    let done = wait_run(&server, &id, 30).await;
    assert_eq!(done["run"]["counts"]["cancelled"], 6, "{done}");
    assert_eq!(done["run"]["counts"]["completed"], 0, "{done}");
    for t in done["targets"].as_array().unwrap() {
        let (_, job) = server.get(&format!("/api/jobs/{}", t["jobId"].as_str().unwrap())).await;
        assert_eq!(job["status"], "cancelled", "{job}");
    }
    // Cancelling again changes nothing; an unknown run is a 404; a malformed id a 400.
    let (status, again) = server.post(&format!("/api/runs/{id}/cancel"), json!({})).await;
    assert_eq!((status, again["run"]["cancelledAt"].clone()), (200, cancelled["run"]["cancelledAt"].clone()));
    assert_eq!(server.post("/api/runs/run-echo-1-00000000/cancel", json!({})).await.0, 404);
    assert_eq!(server.get("/api/runs/bad%20id").await.0, 400);
}

#[tokio::test]
async fn targets_outside_the_roots_are_refused_and_never_run() {
    let server = Server::start(&config(""));
    make_repos(&server.dir);
    // Configured inventory: /etc lies outside echo's roots; the trigger's grant check refuses it.
    let started = start_run(&server, "echo", json!({"inventory": "mixed", "pathParameter": "journalDir"})).await;
    let id = started["run"]["id"].as_str().unwrap();
    let done = wait_run(&server, id, 60).await;
    let targets = done["targets"].as_array().unwrap();
    assert_eq!(targets[0]["status"], "completed", "{done}");
    assert_eq!(targets[1]["path"], "/etc");
    assert!(targets[1]["jobId"].is_null(), "{done}");
    let why = targets[1]["refused"].as_str().unwrap();
    assert!(why.contains("journalDir") && why.contains("outside the folders"), "the refusal names the field: {why}");
    assert_eq!(done["run"]["status"], "partial");
    assert_eq!(done["run"]["counts"]["refused"], 1);
    assert!(!Path::new("/etc/runs.log").exists());

    // Over the API an inventory may not even name a place outside every root.
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(outside.path().join("r/.git")).unwrap();
    for body in [
        json!({"name": "out", "paths": [outside.path().join("r")]}),
        json!({"name": "out", "discover": {"base": outside.path()}}),
        json!({"name": "out", "discover": {"base": server.dir.join("..")}}),
    ] {
        let (status, err) = server.post("/api/inventories", body.clone()).await;
        assert_eq!(status, 400, "{body} → {err}");
        assert!(err["error"].as_str().unwrap().contains("outside every pipeline's granted roots"), "{err}");
    }
    // A symbolic link inside the roots pointing out is resolved before the check.
    std::os::unix::fs::symlink(outside.path(), server.dir.join("escape")).unwrap();
    let (status, err) =
        server.post("/api/inventories", json!({"name": "out", "discover": {"base": server.dir.join("escape")}})).await;
    assert_eq!(status, 400, "{err}");
    // A discovery inside the roots does not follow a link out either.
    std::os::unix::fs::symlink(outside.path().join("r"), server.dir.join("repos/linked")).unwrap();
    let (_, inv) = server.get("/api/inventories/repos").await;
    assert!(inv["targets"].as_array().unwrap().iter().all(|t| !t["path"].as_str().unwrap().contains("linked")));
    assert_eq!(inv["linksSkipped"], 1, "{inv}");
}

#[tokio::test]
async fn inventories_are_created_listed_shown_and_deleted_over_the_api() {
    let server = Server::start(&config(""));
    make_repos(&server.dir);
    let base = server.dir.join("repos");
    let (status, made) = server
        .post("/api/inventories", json!({"name": "mine", "discover": {"base": base, "depth": 1, "exclude": ["b*"]}}))
        .await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["source"], "api");
    assert_eq!(made["discover"]["depth"], 1);
    let (_, list) = server.get("/api/inventories").await;
    let names: Vec<&str> =
        list["inventories"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["mixed", "repos", "mine"], "configured first, then made over the API");
    let (_, shown) = server.get("/api/inventories/mine").await;
    let targets: Vec<&str> = shown["targets"].as_array().unwrap().iter().map(|t| t["path"].as_str().unwrap()).collect();
    assert_eq!(targets, [base.join("alpha").display().to_string()], "depth 1, beta and broken excluded");
    assert!(shown["targets"][0]["lastOutcome"].is_null());

    // Refusals name the problem.
    for (body, code, needle) in [
        (json!({"name": "mine", "paths": [base.join("alpha")]}), 409, "exists already"),
        (json!({"name": "repos", "paths": [base.join("alpha")]}), 409, "configuration"),
        (json!({"name": "Bad Name", "paths": [base.join("alpha")]}), 400, "Inventory names"),
        (json!({"name": "both", "paths": [base.join("alpha")], "discover": {"base": base}}), 400, "not both"),
        (json!({"name": "none"}), 400, "give `paths` or `discover`"),
        (json!({"name": "rel", "paths": ["repos/alpha"]}), 400, "absolute"),
        (json!({"name": "deep", "discover": {"base": base, "depth": 99}}), 400, "depth"),
        (json!({"name": "x", "paths": [base], "extra": 1}), 400, "unknown field"),
        (json!({"name": "gone", "paths": [base.join("missing")]}), 400, "cannot be resolved"),
    ] {
        let (status, err) = server.post("/api/inventories", body.clone()).await;
        assert_eq!(status, code, "{body} → {err}");
        assert!(err["error"].as_str().unwrap().contains(needle), "{body} → {err}");
    }
    // Runs refuse what they cannot do, naming the field.
    for (body, needle) in [
        (json!({"inventory": "nope"}), "inventory"),
        (json!({"inventory": "mine"}), "pathParameter"),
        (json!({"inventory": "mine", "pathParameter": "steps"}), "not a path parameter"),
        (
            json!({"inventory": "mine", "pathParameter": "inputDir", "parameters": {"inputDir": "/x"}}),
            "parameters.inputDir",
        ),
        (json!({"inventory": "mine", "parameters": []}), "parameters"),
    ] {
        let (status, err) = server.post("/api/pipelines/echo/runs", body.clone()).await;
        assert_eq!(status, 400, "{body} → {err}");
        assert!(err["error"].as_str().unwrap().contains(needle), "{body} → {err}");
    }
    // Deleting: configured ones are read-only; a second delete is a 404.
    let del = |name: &str| {
        let req = server.http.delete(format!("{}/api/inventories/{name}", server.url));
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(del("repos").await, 409);
    assert_eq!(del("mine").await, 204);
    assert_eq!(del("mine").await, 404);
    assert_eq!(server.get("/api/inventories/mine").await.0, 404);
}

#[tokio::test]
async fn a_repeated_dedupe_key_returns_the_first_run() {
    let server = Server::start(&config(""));
    make_repos(&server.dir);
    let body = json!({"inventory": "repos", "pathParameter": "journalDir", "dedupeKey": "fire-1"});
    let first = start_run(&server, "echo", body.clone()).await;
    let (status, again) = server.post("/api/pipelines/echo/runs", body).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["run"]["id"], first["run"]["id"]);
    let done = wait_run(&server, first["run"]["id"].as_str().unwrap(), 60).await;
    assert_eq!(done["targets"].as_array().unwrap().len(), 4);
    assert_eq!(run_lines(&server.dir.join("repos/alpha")), 1, "one run, one job per repository");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_lists_inventories_and_starts_shows_lists_and_cancels_runs() {
    let server = Server::start(&config(""));
    make_repos(&server.dir);
    let s = &server;
    let (ok, out, err) = tokio::task::block_in_place(|| s.cli_text(&["inventories", "list"]));
    assert!(ok, "{out}{err}");
    assert!(out.contains("repos") && out.contains("config") && out.contains("discover"), "{out}");
    let (ok, out, err) = tokio::task::block_in_place(|| s.cli_text(&["inventories", "show", "repos"]));
    assert!(ok && out.contains("4 targets") && out.contains("never"), "{out}{err}");

    // --wait exits 4 because one repository fails; the run id is the first line.
    let out = tokio::task::block_in_place(|| {
        Command::new(env!("CARGO_BIN_EXE_alephauto"))
            .args(["runs", "start", "echo", "-i", "repos", "--path-param", "journalDir", "-p", "steps=1", "--wait"])
            .env("ALEPHAUTO_URL", &s.url)
            .env("ALEPHAUTO_API_KEY", s.api_key.clone().unwrap_or_default())
            .output()
            .unwrap()
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let id = stdout.lines().next().unwrap().to_string();
    assert!(id.starts_with("run-echo-"), "{stdout}");
    assert!(stdout.contains("partial") && stdout.contains("broken"), "{stdout}");
    let (ok, out, _) = tokio::task::block_in_place(|| s.cli_text(&["runs", "list"]));
    assert!(ok && out.contains(&id) && out.contains("1 of 1 runs"), "{out}");
    let (ok, out, _) = tokio::task::block_in_place(|| s.cli_text(&["runs", "show", &id]));
    assert!(ok && out.contains("alpha") && out.contains("completed") && out.contains("failed"), "{out}");
    let (ok, out, _) = tokio::task::block_in_place(|| s.cli_text(&["inventories", "show", "repos"]));
    assert!(ok && out.contains("completed") && out.contains("failed"), "{out}");

    let (ok, out, err) = tokio::task::block_in_place(|| {
        s.cli_text(&["runs", "start", "echo", "-i", "repos", "--path-param", "inputDir", "-p", "sleepMs=30000"])
    });
    assert!(ok, "{out}{err}");
    let slow = out.trim().to_string();
    let (ok, out, err) = tokio::task::block_in_place(|| s.cli_text(&["runs", "cancel", &slow]));
    assert!(ok && out.contains("cancelled"), "{out}{err}");
    let (ok, _, err) = tokio::task::block_in_place(|| s.cli_text(&["runs", "show", "run-echo-0-00000000"]));
    assert!(!ok && err.contains("Run not found"), "{err}");
}

#[tokio::test]
async fn schema_enhancement_over_every_readme_under_a_folder_is_a_run() {
    let tables = format!(
        "{}\n[inventories.readmes]\ndiscover = {{ base = \"ROOT/docs\", depth = 4, targets = \"readme\", \
         exclude = [\"node_modules\"] }}\n",
        pipeline("schema-enhancement", "schema_enhancement", "roots = [\"ROOT\"]")
    );
    let server = Server::start(&tables);
    let docs = server.dir.join("docs");
    let readme = "# Widget Factory\n\nWidget Factory turns sprockets into gears.\n";
    write_tree(
        &docs,
        &[
            ("widget/README.md", readme),
            ("widget/package.json", "{\"name\": \"widget\"}\n"),
            ("tools/gear/readme.md", "# Gear\n\nA gear tool.\n"),
            ("widget/node_modules/dep/README.md", "# dep\n"),
        ],
    );
    init_repo(&docs.join("widget"));
    let started =
        start_run(&server, "schema-enhancement", json!({"inventory": "readmes", "pathParameter": "readmePath"})).await;
    let done = wait_run(&server, started["run"]["id"].as_str().unwrap(), 120).await;
    assert_eq!(done["run"]["status"], "completed", "{done}\n{}", server.log());
    let paths: Vec<&str> = done["targets"].as_array().unwrap().iter().map(|t| t["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        [docs.join("tools/gear/readme.md").display().to_string(), docs.join("widget/README.md").display().to_string()]
    );
    for p in ["widget/README.md", "tools/gear/readme.md"] {
        let text = std::fs::read_to_string(docs.join(p)).unwrap();
        assert!(text.contains("<script type=\"application/ld+json\">"), "{p}: {text}");
    }
    let untouched = std::fs::read_to_string(docs.join("widget/node_modules/dep/README.md")).unwrap();
    assert_eq!(untouched, "# dep\n");
}
