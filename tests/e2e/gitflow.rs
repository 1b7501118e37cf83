//! The git capability and the host-side git workflow against real repositories: a
//! work tree whose `origin` is a local bare repository, and a small HTTP server
//! standing in for the forge's pull-request API.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::{Value, json};

use crate::support::{Server, git, init_repo, pipeline, write_tree};

/// Requests the fake forge received: (path, authorization header, JSON body).
type Recorded = Arc<Mutex<Vec<(String, String, Value)>>>;

async fn fake_forge() -> (String, Recorded) {
    let recorded: Recorded = Arc::default();
    let app = axum::Router::new()
        .route(
            "/repos/{owner}/{repo}/pulls",
            axum::routing::post(
                |State(rec): State<Recorded>,
                 axum::extract::Path((owner, repo)): axum::extract::Path<(String, String)>,
                 headers: HeaderMap,
                 Json(body): Json<Value>| async move {
                    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                    rec.lock().unwrap().push((format!("/repos/{owner}/{repo}/pulls"), auth, body));
                    (
                        axum::http::StatusCode::CREATED,
                        Json(json!({"number": 7, "html_url": "https://forge.test/acme/widget/pull/7"})),
                    )
                },
            )
            // The lookup by branch before a PR is opened: none open here.
            .get(|| async { Json(json!([])) }),
        )
        .with_state(recorded.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), recorded)
}

/// A work tree at `ROOT/work` whose origin is the bare `ROOT/remotes/acme/widget.git`.
fn repo_with_remote(root: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let bare = root.join("remotes/acme/widget.git");
    std::fs::create_dir_all(&bare).unwrap();
    git(&bare, &["init", "-q", "--bare", "-b", "main"]);
    let work = root.join("work");
    write_tree(
        &work,
        &[
            (
                "README.md",
                "# Widget\n\nWidget is a small library for turning gadgets into widgets.\n\n## Usage\n\nCall it.\n",
            ),
            ("src/lib.rs", "pub fn widget() {}\n"),
        ],
    );
    init_repo(&work);
    git(&work, &["remote", "add", "origin", &bare.display().to_string()]);
    git(&work, &["push", "-q", "origin", "main"]);
    (work, bare)
}

fn config(forge: &str) -> (String, String) {
    let pipelines = [
        pipeline("schema-enhancement", "schema_enhancement", "roots = [\"ROOT\"]\ngit_workflow = true"),
        pipeline("git-probe", "fixture_git_probe", "roots = [\"ROOT/work\"]"),
    ]
    .concat();
    let extra = format!("[git]\nforge_api_url = {forge:?}\nforge_token = \"s3cret-token\"\ncommand_timeout_secs = 2\n");
    (pipelines, extra)
}

fn branches(work: &Path) -> Vec<String> {
    git(work, &["branch", "--format=%(refname:short)"]).lines().map(str::to_string).collect()
}

#[tokio::test]
async fn schema_enhancement_opens_a_pull_request_from_a_pushed_branch() {
    let (forge, recorded) = fake_forge().await;
    let (pipelines, extra) = config(&forge);
    let server = Server::start_with(&pipelines, &extra);
    let (work, bare) = repo_with_remote(&server.dir);
    let readme = work.join("README.md");
    let job = server
        .run(
            "schema-enhancement",
            json!({"readmePath": readme.display().to_string(), "repositoryPath": work.display().to_string()}),
        )
        .await;
    assert_eq!(job["status"], "completed", "{job}\n{}", server.log());
    let g = &job["git"];
    let branch = g["branchName"].as_str().expect("branch name").to_string();
    assert!(branch.starts_with("docs/schema-enhancement-"), "{branch}");
    assert_eq!(g["originalBranch"], "main");
    assert_eq!(g["changedFiles"], json!(["README.md"]));
    assert_eq!(g["prUrl"], "https://forge.test/acme/widget/pull/7");
    let sha = g["commitSha"].as_str().unwrap();

    // Pushed: the bare remote has the branch with exactly one new commit holding the README change.
    let log = git(&bare, &["log", "--format=%H %s", &format!("main..{branch}")]);
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert_eq!(lines[0], format!("{sha} docs: add Schema.org structured data to README.md"));
    let body = git(&bare, &["log", "-1", "--format=%b", &branch]);
    assert!(body.contains(&format!("Job ID: {}", job["id"].as_str().unwrap())), "{body}");
    assert!(body.contains("Files changed: 1"), "{body}");
    let changed = git(&bare, &["show", "--name-only", "--format=", &branch]);
    assert_eq!(changed.trim(), "README.md");
    let pushed_readme = git(&bare, &["show", &format!("{branch}:README.md")]);
    assert!(pushed_readme.contains("application/ld+json"));

    // The PR request.
    let requests = recorded.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    let (path, auth, pr) = &requests[0];
    assert_eq!(path, "/repos/acme/widget/pulls");
    assert_eq!(auth, "Bearer s3cret-token");
    assert_eq!(pr["head"], branch.as_str());
    assert_eq!(pr["base"], "main");
    assert_eq!(pr["title"], "docs: add Schema.org structured data to README.md");

    // The user's work tree is back on main, clean, without the change.
    assert_eq!(git(&work, &["rev-parse", "--abbrev-ref", "HEAD"]).trim(), "main");
    assert_eq!(git(&work, &["status", "--porcelain"]), "");
    assert!(!std::fs::read_to_string(&readme).unwrap().contains("ld+json"));
    assert!(!server.log().contains("s3cret-token"), "the token must never be logged");

    // A second run on a README that already has markup changes nothing: no branch is left.
    git(&work, &["merge", "-q", "--ff-only", &branch]);
    let before = branches(&work);
    let job = server
        .run(
            "schema-enhancement",
            json!({"readmePath": readme.display().to_string(), "repositoryPath": work.display().to_string()}),
        )
        .await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["result"]["status"], "skipped");
    assert!(job["git"]["branchName"].is_null(), "{job}");
    assert_eq!(branches(&work), before);
    assert_eq!(recorded.lock().unwrap().len(), 1, "no PR for a no-change run");
}

#[tokio::test]
async fn a_failing_job_leaves_the_repository_as_it_was() {
    let (forge, recorded) = fake_forge().await;
    let (pipelines, extra) = config(&forge);
    let server = Server::start_with(&pipelines, &extra);
    let (work, _bare) = repo_with_remote(&server.dir);
    // A README that is a folder makes the worker fail after the branch was created.
    std::fs::create_dir_all(work.join("docs/README.md")).unwrap();
    std::fs::write(work.join("docs/README.md/.keep"), "").unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "docs folder"]);
    let head = git(&work, &["rev-parse", "HEAD"]);
    let before = branches(&work);
    let job = server
        .run(
            "schema-enhancement",
            json!({"readmePath": work.join("docs/README.md").display().to_string(), "repositoryPath": work.display().to_string()}),
        )
        .await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(git(&work, &["rev-parse", "--abbrev-ref", "HEAD"]).trim(), "main");
    assert_eq!(git(&work, &["rev-parse", "HEAD"]), head);
    assert_eq!(git(&work, &["status", "--porcelain"]), "");
    assert_eq!(branches(&work), before, "the job branch was removed");
    assert!(recorded.lock().unwrap().is_empty());
}

#[tokio::test]
async fn guest_git_queries_are_confined_to_the_grant_and_time_out() {
    let (forge, _recorded) = fake_forge().await;
    let (pipelines, extra) = config(&forge);
    let server = Server::start_with(&pipelines, &extra);
    let (work, _bare) = repo_with_remote(&server.dir);
    let elsewhere = tempfile::tempdir().unwrap();
    init_repo(elsewhere.path());

    let job = server
        .run("git-probe", json!({"repo": work.display().to_string(), "other": elsewhere.path().display().to_string()}))
        .await;
    assert_eq!(job["status"], "completed", "{job}");
    let r = &job["result"];
    assert_eq!(r["branch"]["ok"], "main");
    assert_eq!(r["tracked"]["ok"], 2);
    assert_eq!(r["log"]["ok"], 1);
    assert_eq!(r["other"]["error"], "denied", "{r}");

    // A FIFO where git reads its alternates (which would block a reader forever) is refused
    // before anything reads it; the job and the server carry on. (A history too long for the
    // timeout is covered by the capability's unit tests.)
    let fifo = work.join(".git/objects/info/alternates");
    std::fs::create_dir_all(fifo.parent().unwrap()).unwrap();
    let status = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    let started = Instant::now();
    let job = server.run("git-probe", json!({"repo": work.display().to_string()})).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["result"]["log"]["error"], "denied", "{job}");
    assert!(started.elapsed() < Duration::from_secs(30));
    std::fs::remove_file(&fifo).unwrap();
    let (code, _) = server.get("/health").await;
    assert_eq!(code, 200);
}
