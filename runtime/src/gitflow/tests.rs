//! End-to-end tests against real repositories: a bare `origin`, a work tree pushed to
//! it, and a tiny HTTP server standing in for the forge.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use tempfile::TempDir;

use super::*;

const TOKEN: &str = "t0ken-abc-123";

/// Runs git synchronously for test setup and checks; panics on failure.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git").arg("-C").arg(dir).args(args).env("GIT_TERMINAL_PROMPT", "0").output().unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Whether a git command succeeds.
fn git_ok(dir: &Path, args: &[&str]) -> bool {
    Command::new("git").arg("-C").arg(dir).args(args).output().unwrap().status.success()
}

struct Fixture {
    _tmp: TempDir,
    work: PathBuf,
    bare: PathBuf,
}

impl Fixture {
    /// A work tree on `main` with one commit, pushed to a bare `origin` at `…/acme/project.git`.
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let bare = tmp.path().join("remotes/acme/project.git");
        std::fs::create_dir_all(&bare).unwrap();
        git(&bare, &["init", "--quiet", "--bare", "-b", "main"]);
        let work = tmp.path().join("project");
        std::fs::create_dir_all(&work).unwrap();
        git(&work, &["init", "--quiet", "-b", "main"]);
        git(&work, &["config", "user.name", "Test User"]);
        git(&work, &["config", "user.email", "test@example.com"]);
        git(&work, &["config", "commit.gpgsign", "false"]);
        std::fs::write(work.join("README.md"), "# Project\n").unwrap();
        std::fs::write(work.join(".gitignore"), "*.log\n").unwrap();
        std::fs::write(work.join("keep.log"), "ignored, must survive\n").unwrap();
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "--quiet", "-m", "Initial"]);
        git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
        git(&work, &["push", "--quiet", "origin", "main"]);
        let work = std::fs::canonicalize(work).unwrap();
        Self { _tmp: tmp, work, bare }
    }

    fn current_branch(&self) -> String {
        git(&self.work, &["rev-parse", "--abbrev-ref", "HEAD"]).trim().to_string()
    }

    fn local_branches(&self) -> Vec<String> {
        git(&self.work, &["for-each-ref", "--format=%(refname:short)", "refs/heads"])
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn remote_has(&self, branch: &str) -> bool {
        git_ok(&self.bare, &["show-ref", "--verify", "--quiet", &format!("refs/heads/{branch}")])
    }

    fn status(&self) -> String {
        git(&self.work, &["status", "--porcelain", "--ignored"])
    }
}

/// One request the fake forge received.
#[derive(Debug, Clone)]
struct Recorded {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Value,
}

#[derive(Clone)]
struct ForgeState {
    requests: Arc<Mutex<Vec<Recorded>>>,
    status: StatusCode,
}

async fn forge_handler(
    State(state): State<ForgeState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    if method == Method::GET {
        // The lookup by branch before a PR is opened: this forge has none open.
        return (StatusCode::OK, axum::Json(json!([])));
    }
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    state.requests.lock().unwrap().push(Recorded { method, path: uri.path().to_string(), headers, body });
    (state.status, axum::Json(json!({"html_url": "http://127.0.0.1/pr/1", "number": 1})))
}

/// Starts a fake forge answering `status`; returns its API base URL and the request log.
async fn fake_forge(status: StatusCode) -> (String, Arc<Mutex<Vec<Recorded>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new().fallback(forge_handler).with_state(ForgeState { requests: requests.clone(), status });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/api/v3/"), requests)
}

fn config(forge: Option<&str>) -> GitConfig {
    GitConfig {
        remote: "origin".into(),
        forge_api_url: forge.map(str::to_string),
        forge_token: Some(TOKEN.into()),
        command_timeout_secs: 30,
        max_output_bytes: 1 << 20,
    }
}

fn request<'a>(repo: &'a Path, description: Option<&'a str>) -> BeginRequest<'a> {
    BeginRequest {
        pipeline_id: "duplicate-detection",
        job_id: "job-1",
        repo,
        branch_prefix: "consolidate",
        commit_title: "Consolidate duplicates",
        description,
    }
}

#[tokio::test]
async fn changes_are_committed_pushed_and_proposed() {
    let fx = Fixture::new();
    let (base, requests) = fake_forge(StatusCode::CREATED).await;
    let flow = GitWorkflow::new(&config(Some(&base)));

    let session = flow.begin(request(&fx.work, Some("Merge the dupes!"))).await.unwrap().unwrap();
    let branch = fx.current_branch();
    assert!(branch.starts_with("consolidate/duplicate-detection-merge-the-dupes-"), "{branch}");
    std::fs::write(fx.work.join("README.md"), "# Project\nchanged\n").unwrap();
    std::fs::write(fx.work.join("new.txt"), "new\n").unwrap();

    let info = flow.complete(session, "job-1", false).await.unwrap();
    assert_eq!(info.branch_name.as_deref(), Some(branch.as_str()));
    assert_eq!(info.original_branch.as_deref(), Some("main"));
    assert_eq!(info.pr_url.as_deref(), Some("http://127.0.0.1/pr/1"));
    let mut files = info.changed_files.clone();
    files.sort();
    assert_eq!(files, ["README.md", "new.txt"]);

    // One commit on the pushed branch, with the title and body.
    let bare = fx.bare.to_str().unwrap();
    let subjects = git(&fx.work, &["--git-dir", bare, "log", &branch, "--format=%s"]);
    assert_eq!(subjects.lines().collect::<Vec<_>>(), ["Consolidate duplicates", "Initial"]);
    let sha = git(&fx.work, &["--git-dir", bare, "rev-parse", &branch]);
    assert_eq!(info.commit_sha.as_deref(), Some(sha.trim()));
    let body = git(&fx.work, &["--git-dir", bare, "log", "-1", &branch, "--format=%b"]);
    assert!(body.contains("Job ID: job-1") && body.contains("Files changed: 2"), "{body}");
    let shown = git(&fx.work, &["--git-dir", bare, "show", &branch, "--format=", "--", "README.md"]);
    assert!(shown.contains("+changed"), "{shown}");

    // The work tree is back as before the job.
    assert_eq!(fx.current_branch(), "main");
    assert_eq!(std::fs::read_to_string(fx.work.join("README.md")).unwrap(), "# Project\n");
    assert!(!fx.work.join("new.txt").exists());
    assert_eq!(fx.status(), "!! keep.log\n");

    let requests = requests.lock().unwrap();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.method, Method::POST);
    assert_eq!(r.path, "/api/v3/repos/acme/project/pulls");
    assert_eq!(r.headers["authorization"], format!("Bearer {TOKEN}").as_str());
    assert_eq!(r.headers["accept"], "application/vnd.github+json");
    assert_eq!(r.body["title"], "Consolidate duplicates");
    assert_eq!(r.body["head"], branch.as_str());
    assert_eq!(r.body["base"], "main");
    let pr_body = r.body["body"].as_str().unwrap();
    assert!(pr_body.contains("Merge the dupes!") && pr_body.contains("Job ID: job-1"), "{pr_body}");
}

#[tokio::test]
async fn no_changes_leave_no_branch() {
    let fx = Fixture::new();
    let (base, requests) = fake_forge(StatusCode::CREATED).await;
    let flow = GitWorkflow::new(&config(Some(&base)));
    let session = flow.begin(request(&fx.work, None)).await.unwrap().unwrap();
    // Without a description the slug is the repository folder's name.
    assert!(fx.current_branch().starts_with("consolidate/duplicate-detection-project-"));
    let info = flow.complete(session, "job-1", false).await.unwrap();
    assert_eq!(info, GitInfo { original_branch: Some("main".into()), ..GitInfo::default() });
    assert_eq!(fx.current_branch(), "main");
    assert_eq!(fx.local_branches(), ["main"]);
    assert!(requests.lock().unwrap().is_empty());
}

#[tokio::test]
async fn dry_run_commits_locally_and_pushes_nothing() {
    let fx = Fixture::new();
    let (base, requests) = fake_forge(StatusCode::CREATED).await;
    let flow = GitWorkflow::new(&config(Some(&base)));
    let session = flow.begin(request(&fx.work, Some("dry"))).await.unwrap().unwrap();
    std::fs::write(fx.work.join("new.txt"), "new\n").unwrap();
    let info = flow.complete(session, "job-1", true).await.unwrap();

    let branch = info.branch_name.clone().unwrap();
    assert_eq!(info.pr_url, None);
    assert_eq!(info.changed_files, ["new.txt"]);
    assert_eq!(git(&fx.work, &["rev-list", "--count", &format!("main..{branch}")]).trim(), "1");
    assert!(!fx.remote_has(&branch));
    assert!(requests.lock().unwrap().is_empty());
    assert_eq!(fx.current_branch(), "main");
    assert!(!fx.work.join("new.txt").exists());
}

#[tokio::test]
async fn abort_leaves_the_repository_exactly_as_before() {
    let fx = Fixture::new();
    let flow = GitWorkflow::new(&config(None));
    let head = git(&fx.work, &["rev-parse", "HEAD"]);
    let status = fx.status();

    let session = flow.begin(request(&fx.work, None)).await.unwrap().unwrap();
    std::fs::write(fx.work.join("README.md"), "clobbered\n").unwrap();
    std::fs::remove_file(fx.work.join(".gitignore")).unwrap();
    std::fs::create_dir_all(fx.work.join("out/deep")).unwrap();
    std::fs::write(fx.work.join("out/deep/x.txt"), "x\n").unwrap();
    flow.abort(session).await.unwrap();

    assert_eq!(fx.current_branch(), "main");
    assert_eq!(git(&fx.work, &["rev-parse", "HEAD"]), head);
    assert_eq!(fx.status(), status, "same tracked, untracked and ignored files");
    assert_eq!(fx.local_branches(), ["main"]);
    assert_eq!(std::fs::read_to_string(fx.work.join("README.md")).unwrap(), "# Project\n");
    assert!(fx.work.join("keep.log").exists(), "ignored files stay");
    assert!(!fx.work.join("out").exists());
}

#[tokio::test]
async fn a_forge_failure_rolls_everything_back() {
    let fx = Fixture::new();
    let (base, requests) = fake_forge(StatusCode::UNPROCESSABLE_ENTITY).await;
    let flow = GitWorkflow::new(&config(Some(&base)));
    let session = flow.begin(request(&fx.work, None)).await.unwrap().unwrap();
    let branch = fx.current_branch();
    std::fs::write(fx.work.join("new.txt"), "new\n").unwrap();

    let err = format!("{:#}", flow.complete(session, "job-1", false).await.unwrap_err());
    assert!(err.contains("422"), "{err}");
    assert!(!err.contains(TOKEN), "{err}");
    assert_eq!(requests.lock().unwrap().len(), 1);
    assert_eq!(fx.current_branch(), "main");
    assert_eq!(fx.local_branches(), ["main"]);
    assert!(!fx.remote_has(&branch), "the pushed branch is deleted again");
    assert_eq!(fx.status(), "!! keep.log\n");
}

#[tokio::test]
async fn a_dirty_work_tree_is_refused() {
    let fx = Fixture::new();
    let flow = GitWorkflow::new(&config(None));
    std::fs::write(fx.work.join("README.md"), "user edit\n").unwrap();
    let err = format!("{:#}", flow.begin(request(&fx.work, None)).await.unwrap_err());
    assert!(err.contains("uncommitted changes") && err.contains("README.md"), "{err}");
    assert_eq!(fx.local_branches(), ["main"]);
    assert_eq!(std::fs::read_to_string(fx.work.join("README.md")).unwrap(), "user edit\n");

    git(&fx.work, &["checkout", "--quiet", "--", "README.md"]);
    std::fs::write(fx.work.join("stray.txt"), "untracked\n").unwrap();
    let err = format!("{:#}", flow.begin(request(&fx.work, None)).await.unwrap_err());
    assert!(err.contains("stray.txt"), "{err}");
}

#[tokio::test]
async fn sessions_on_one_repository_serialize() {
    let fx = Fixture::new();
    let flow = GitWorkflow::new(&config(None));
    let first = flow.begin(request(&fx.work, Some("first"))).await.unwrap().unwrap();
    // The first job's changes are in the tree while the second job waits.
    std::fs::write(fx.work.join("first.txt"), "1\n").unwrap();

    let (flow2, work) = (flow.clone(), fx.work.join("."));
    let second = tokio::spawn(async move { flow2.begin(request(&work, Some("second"))).await });
    // Not a synchronisation: the window in which a second begin that did not wait would end.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!second.is_finished(), "second begin must wait for the first job");
    assert!(fx.current_branch().contains("-first-"));

    let info = flow.complete(first, "job-1", true).await.unwrap();
    let second = tokio::time::timeout(Duration::from_secs(10), second).await.unwrap().unwrap().unwrap().unwrap();
    assert!(fx.current_branch().contains("-second-"));
    assert!(!fx.work.join("first.txt").exists(), "second job starts from main");
    flow.abort(second).await.unwrap();

    assert_eq!(fx.current_branch(), "main");
    assert_eq!(fx.local_branches(), [info.branch_name.unwrap(), "main".to_string()]);
}

#[tokio::test]
async fn a_detached_head_is_restored() {
    let fx = Fixture::new();
    let flow = GitWorkflow::new(&config(None));
    git(&fx.work, &["checkout", "--quiet", "--detach"]);
    let sha = git(&fx.work, &["rev-parse", "HEAD"]).trim().to_string();
    let session = flow.begin(request(&fx.work, None)).await.unwrap().unwrap();
    std::fs::write(fx.work.join("new.txt"), "new\n").unwrap();
    let info = flow.complete(session, "job-1", true).await.unwrap();
    assert_eq!(info.original_branch.as_deref(), Some(sha.as_str()));
    assert_eq!(fx.current_branch(), "HEAD");
    assert_eq!(git(&fx.work, &["rev-parse", "HEAD"]).trim(), sha);
}

#[tokio::test]
async fn a_subdirectory_uses_its_work_tree() {
    let fx = Fixture::new();
    std::fs::create_dir_all(fx.work.join("sub")).unwrap();
    let flow = GitWorkflow::new(&config(None));
    let session = flow.begin(request(&fx.work.join("sub"), None)).await.unwrap().unwrap();
    assert!(fx.current_branch().starts_with("consolidate/duplicate-detection-project-"));
    flow.abort(session).await.unwrap();
    assert_eq!(fx.local_branches(), ["main"]);
}

#[tokio::test]
async fn a_folder_outside_git_runs_without_the_workflow() {
    let dir = tempfile::tempdir().unwrap();
    let flow = GitWorkflow::new(&config(None));
    assert!(flow.begin(request(dir.path(), None)).await.unwrap().is_none());
    assert!(flow.begin(request(&dir.path().join("missing"), None)).await.unwrap().is_none());
}

#[test]
fn debug_output_never_shows_the_token() {
    let flow = GitWorkflow::new(&config(Some("https://api.example")));
    let shown = format!("{flow:?} {flow:#?}");
    assert!(!shown.contains(TOKEN), "{shown}");
    assert!(shown.contains("<redacted>"), "{shown}");
}

#[test]
fn pr_bodies_list_files_with_a_limit() {
    let files: Vec<String> = (0..60).map(|i| format!("f{i}")).collect();
    let body = pr_body(Some("  Why  "), "Job ID: j\nFiles changed: 60", &files);
    assert!(body.starts_with("Why\n\nJob ID: j\nFiles changed: 60\n\n- `f0`\n"), "{body}");
    assert!(body.ends_with("- … and 10 more\n"), "{body}");
}

/// A second bare repository a tampering job would like the host to push to.
fn elsewhere(fx: &Fixture) -> PathBuf {
    let other = fx.work.parent().unwrap().join("remotes/evil/loot.git");
    std::fs::create_dir_all(&other).unwrap();
    git(&other, &["init", "--quiet", "--bare", "-b", "main"]);
    other
}

#[tokio::test]
async fn a_job_that_rewrites_the_git_config_fails_with_security_and_nothing_runs_or_is_pushed() {
    let fx = Fixture::new();
    let other = elsewhere(&fx);
    let marker = fx.work.parent().unwrap().join("PWNED");
    let config_before = std::fs::read(fx.work.join(".git/config")).unwrap();
    let head = git(&fx.work, &["rev-parse", "HEAD"]);
    let (base, requests) = fake_forge(StatusCode::CREATED).await;
    let flow = GitWorkflow::new(&config(Some(&base)));
    let session = flow.begin(request(&fx.work, Some("evil"))).await.unwrap().unwrap();
    let branch = fx.current_branch();

    // What a guest with a write grant on the work tree does during its run.
    std::fs::write(fx.work.join("new.txt"), "payload\n").unwrap();
    let cmd = format!("touch {}", marker.display());
    git(&fx.work, &["config", "remote.origin.url", other.to_str().unwrap()]);
    git(&fx.work, &["config", "remote.origin.pushurl", other.to_str().unwrap()]);
    git(&fx.work, &["config", "core.fsmonitor", &cmd]);
    git(&fx.work, &["config", "filter.evil.clean", &cmd]);
    git(&fx.work, &["config", "user.name", "Mallory"]);
    std::fs::write(fx.work.join(".gitattributes"), "* filter=evil\n").unwrap();
    let hook = fx.work.join(".git/hooks/pre-commit");
    std::fs::write(&hook, format!("#!/bin/sh\n{cmd}\n")).unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(&mut std::fs::metadata(&hook).unwrap().permissions(), 0o755);
    Command::new("chmod").arg("+x").arg(&hook).status().unwrap();

    let err = flow.complete(session, "job-1", false).await.unwrap_err();
    assert_eq!(failure_code(&err), "SECURITY", "{err:#}");
    let msg = format!("{err:#}");
    assert!(msg.contains("config") && msg.contains("nothing was pushed"), "{msg}");
    assert!(!marker.exists(), "a planted command ran");
    // Restored: the config byte for byte, no hook, main checked out, no job branch, clean tree.
    assert_eq!(std::fs::read(fx.work.join(".git/config")).unwrap(), config_before);
    assert!(!hook.exists());
    assert_eq!(fx.current_branch(), "main");
    assert_eq!(git(&fx.work, &["rev-parse", "HEAD"]), head);
    assert_eq!(fx.local_branches(), ["main"]);
    assert_eq!(fx.status(), "!! keep.log\n");
    // Nothing pushed anywhere, no pull request.
    assert!(!fx.remote_has(&branch));
    assert_eq!(git(&other, &["for-each-ref"]), "", "nothing reaches the planted remote");
    assert!(requests.lock().unwrap().is_empty());

    // The next job on the repository runs normally and pushes to the real origin.
    let session = flow.begin(request(&fx.work, Some("next"))).await.unwrap().unwrap();
    std::fs::write(fx.work.join("next.txt"), "next\n").unwrap();
    let info = flow.complete(session, "job-2", false).await.unwrap();
    assert!(fx.remote_has(info.branch_name.as_deref().unwrap()));
    assert!(!marker.exists());
}

#[tokio::test]
async fn moved_refs_and_a_failed_job_that_tampered_are_caught_too() {
    let fx = Fixture::new();
    let flow = GitWorkflow::new(&config(None));
    let main = git(&fx.work, &["rev-parse", "main"]);

    // A job that moves `main` (and creates a tag) and then fails.
    let session = flow.begin(request(&fx.work, None)).await.unwrap().unwrap();
    std::fs::write(fx.work.join("x.txt"), "x\n").unwrap();
    git(&fx.work, &["add", "-A"]);
    git(&fx.work, &["commit", "--quiet", "-m", "sneaky"]);
    git(&fx.work, &["update-ref", "refs/heads/main", "HEAD"]);
    git(&fx.work, &["tag", "planted"]);
    let err = flow.abort(session).await.unwrap_err();
    assert_eq!(failure_code(&err), "SECURITY", "{err:#}");
    assert_eq!(git(&fx.work, &["rev-parse", "main"]), main);
    assert_eq!(git(&fx.work, &["tag"]), "");
    assert_eq!(fx.current_branch(), "main");
    assert_eq!(fx.local_branches(), ["main"]);

    // A `.git` folder swapped for a `.git` file pointing at another repository.
    let session = flow.begin(request(&fx.work, None)).await.unwrap().unwrap();
    let moved = fx.work.parent().unwrap().join("moved.git");
    std::fs::rename(fx.work.join(".git"), &moved).unwrap();
    std::fs::write(fx.work.join(".git"), format!("gitdir: {}\n", fx.bare.display())).unwrap();
    let err = flow.complete(session, "job-1", false).await.unwrap_err();
    assert_eq!(failure_code(&err), "SECURITY", "{err:#}");
    assert!(format!("{err:#}").contains(".git"), "{err:#}");
    assert!(!fx.remote_has("main") || git(&fx.bare, &["for-each-ref", "refs/heads"]).lines().count() == 1);
}

#[tokio::test]
async fn a_repository_whose_own_config_runs_programs_is_refused() {
    let fx = Fixture::new();
    let marker = fx.work.parent().unwrap().join("PWNED");
    let cmd = format!("touch {}", marker.display());
    let flow = GitWorkflow::new(&config(None));
    // Planted earlier, e.g. by a job of another pipeline with a write grant.
    std::fs::write(fx.work.join(".gitattributes"), "* filter=evil\n").unwrap();
    git(&fx.work, &["add", ".gitattributes"]);
    git(&fx.work, &["commit", "--quiet", "-m", "attrs"]);
    for (key, value) in [("core.fsmonitor", cmd.as_str()), ("filter.evil.clean", cmd.as_str()), ("core.worktree", "/")]
    {
        git(&fx.work, &["config", key, value]);
        // A stat-dirty tracked file: `git status` would run the filter and fsmonitor on it.
        std::fs::write(fx.work.join("README.md"), "# Project\n").unwrap();
        let err = flow.begin(request(&fx.work, None)).await.unwrap_err();
        assert_eq!(failure_code(&err), "SECURITY", "{err:#}");
        assert!(format!("{err:#}").contains(key), "{err:#}");
        assert!(!marker.exists(), "{key}: a planted command ran");
        assert_eq!(fx.local_branches(), ["main"]);
        git(&fx.work, &["config", "--unset", key]);
    }
    // fsmonitor switched off is fine.
    git(&fx.work, &["config", "core.fsmonitor", "false"]);
    let session = flow.begin(request(&fx.work, None)).await.unwrap().unwrap();
    flow.abort(session).await.unwrap();
}

#[tokio::test]
async fn a_rerun_after_an_interrupted_attempt_reuses_its_branch_commit_and_push() {
    let fx = Fixture::new();
    let (base, _requests) = fake_forge(StatusCode::CREATED).await;
    let flow = GitWorkflow::new(&config(Some(&base)));
    // Attempt 1 dies with the job branch checked out and the guest's change in the tree.
    let session = flow.begin(request(&fx.work, Some("again"))).await.unwrap().unwrap();
    let branch = fx.current_branch();
    std::fs::write(fx.work.join("new.txt"), "new\n").unwrap();
    drop(session);

    // Attempt 2 puts the tree back and works on the same branch.
    let session = flow.begin(request(&fx.work, Some("again"))).await.unwrap().unwrap();
    assert_eq!(fx.current_branch(), branch);
    assert!(!fx.work.join("new.txt").exists(), "the interrupted attempt's file was discarded");
    std::fs::write(fx.work.join("new.txt"), "new\n").unwrap();
    let first = flow.complete(session, "job-1", false).await.unwrap();
    assert!(fx.remote_has(&branch));

    // Attempt 3, as if the outcome had never been written: the same change reuses the commit
    // and the remote is not pushed to again.
    let session = flow.begin(request(&fx.work, Some("again"))).await.unwrap().unwrap();
    std::fs::write(fx.work.join("new.txt"), "new\n").unwrap();
    let second = flow.complete(session, "job-1", false).await.unwrap();
    assert_eq!(second.branch_name, first.branch_name);
    assert_eq!(second.commit_sha, first.commit_sha);
    let bare = fx.bare.to_str().unwrap();
    let on_remote = git(&fx.work, &["--git-dir", bare, "rev-parse", &branch]);
    assert_eq!(first.commit_sha.as_deref(), Some(on_remote.trim()));
    assert_eq!(git(&fx.work, &["rev-list", "--count", &format!("main..{branch}")]).trim(), "1");
    assert_eq!(fx.current_branch(), "main");
    assert!(!fx.work.join("new.txt").exists());
}
