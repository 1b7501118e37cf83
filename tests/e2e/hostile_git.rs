//! A hostile guest plants git metadata (fsmonitor and filter drivers, a `.git` in its
//! output folder, a `.git` file, `core.worktree` or alternates pointing outside its grants,
//! a rewritten config for the host's workflow) and then asks the git queries or lets the
//! workflow run. Nothing it planted runs on the host (the planted command would create a
//! marker file), nothing outside the grants is answered, and the next job succeeds.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::{Server, git, init_repo, pipeline, write_tree};

const SECRET: &str = "secret-commit-subject";
const TOKEN: &str = "0ther-t0ken";

fn config() -> String {
    [
        pipeline("git-plant", "fixture_git_plant", "roots = [\"ROOT/granted\"]"),
        pipeline("git-plant-flow", "fixture_git_plant", "roots = [\"ROOT/wroot\"]\ngit_workflow = true"),
    ]
    .concat()
}

/// A repository outside every grant, whose commits, files and remote URL must never show.
fn outside(root: &Path) -> PathBuf {
    let other = root.join("outside/other");
    write_tree(&other, &[("secret-file.txt", "secret\n")]);
    init_repo(&other);
    git(&other, &["commit", "-q", "--allow-empty", "-m", SECRET]);
    git(&other, &["remote", "add", "origin", &format!("https://u:{TOKEN}@forge.test/o/other.git")]);
    other
}

fn granted_repo(dir: &Path) {
    write_tree(dir, &[("README.md", "# Granted\n"), ("src/lib.rs", "pub fn f() {}\n")]);
    init_repo(dir);
}

/// Every answer of a query job must be the error `kind`.
fn all_errors(job: &Value, kind: &str) {
    let answers = job["result"]["answers"].as_object().unwrap_or_else(|| panic!("answers in {job}"));
    for (query, answer) in answers {
        assert_eq!(answer["error"], kind, "{query}: {job}");
    }
}

#[tokio::test]
async fn planted_git_metadata_neither_runs_programs_nor_reads_outside_the_grants() {
    let server = Server::start(&config());
    let root = server.dir.clone();
    let other = outside(&root);
    let marker = root.join("PWNED");
    let command = format!("touch {}", marker.display());
    let repo = root.join("granted/repo");
    granted_repo(&repo);
    let run = |mode: &str, repo: &Path| {
        let params = json!({"repositoryPath": repo.display().to_string(), "mode": mode, "command": command,
                            "other": other.display().to_string()});
        let server = &server;
        async move { server.run("git-plant", params).await }
    };
    let leaked = |job: &Value| {
        let text = job.to_string();
        assert!(!text.contains(SECRET) && !text.contains("secret-file") && !text.contains(TOKEN), "leaked: {text}");
    };

    // A `.git` with fsmonitor and filters in the job's own output folder: never a repository.
    let job = run("output", &repo).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert!(job["result"]["target"].as_str().unwrap().contains("/data/outputs/"), "{job}");
    all_errors(&job, "denied");

    // A `.git` file naming the outside repository.
    let job = run("gitfile", &repo).await;
    assert_eq!(job["status"], "completed", "{job}");
    all_errors(&job, "denied");
    leaked(&job);

    // core.worktree naming the outside repository's tree: ignored, so its files never show.
    let job = run("worktree", &repo).await;
    assert_eq!(job["status"], "completed", "{job}");
    leaked(&job);
    assert!(!job["result"]["answers"]["toplevel"].to_string().contains("outside"), "{job}");

    // fsmonitor and clean/smudge/process filters in the granted repository's config: the
    // queries answer from the repository and run nothing.
    let job = run("config", &repo).await;
    assert_eq!(job["status"], "completed", "{job}");
    let a = &job["result"]["answers"];
    assert_eq!(a["branch"]["ok"], "main", "{job}");
    assert_eq!(a["tracked"]["ok"], json!(["README.md", "src/lib.rs"]), "{job}");
    assert_eq!(a["log"]["ok"], json!(["initial"]), "{job}");
    let status = a["status"]["ok"].as_array().unwrap_or_else(|| panic!("status in {job}"));
    assert!(status.contains(&json!("??.gitattributes")), "{job}");

    // Alternates borrowing the outside repository's objects.
    let job = run("alternates", &repo).await;
    assert_eq!(job["status"], "completed", "{job}");
    all_errors(&job, "denied");
    leaked(&job);

    assert!(!marker.exists(), "a command planted in git metadata ran on the host");

    // The next job of the pipeline, on a clean repository, gets its answers.
    let clean = root.join("granted/clean");
    granted_repo(&clean);
    git(&clean, &["remote", "add", "origin", "https://forge.test/acme/clean.git"]);
    let job = run("none", &clean).await;
    assert_eq!(job["status"], "completed", "{job}");
    let a = &job["result"]["answers"];
    assert_eq!(a["status"]["ok"], json!([]), "{job}");
    assert_eq!(a["remote"]["ok"], "https://forge.test/acme/clean.git", "{job}");
    assert_eq!(a["toplevel"]["ok"], clean.display().to_string(), "{job}");
    assert!(!marker.exists());
    let (code, _) = server.get("/health").await;
    assert_eq!(code, 200);
}

#[tokio::test]
async fn a_guest_that_rewrites_the_git_config_fails_with_security_and_nothing_is_pushed() {
    let server = Server::start(&config());
    let root = server.dir.clone();
    let marker = root.join("PWNED");
    let command = format!("touch {}", marker.display());
    let origin = root.join("remotes/origin.git");
    let evil = root.join("remotes/evil.git");
    for bare in [&origin, &evil] {
        std::fs::create_dir_all(bare).unwrap();
        git(bare, &["init", "-q", "--bare", "-b", "main"]);
    }
    let work = root.join("wroot/work");
    granted_repo(&work);
    git(&work, &["remote", "add", "origin", &origin.display().to_string()]);
    git(&work, &["push", "-q", "origin", "main"]);
    let config_before = std::fs::read(work.join(".git/config")).unwrap();
    let head = git(&work, &["rev-parse", "HEAD"]);

    let params = |mode: &str| {
        json!({"repositoryPath": work.display().to_string(), "mode": mode, "command": command,
               "other": evil.display().to_string()})
    };
    let job = server.run("git-plant-flow", params("workflow")).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["code"], "SECURITY", "{job}");
    let message = job["error"]["message"].as_str().unwrap();
    assert!(message.contains("config") && message.contains("nothing was pushed"), "{message}");

    assert!(!marker.exists(), "a planted command ran on the host");
    // Restored: config byte for byte, no planted hooks or files, on main at the same commit.
    assert_eq!(std::fs::read(work.join(".git/config")).unwrap(), config_before);
    assert!(!work.join(".git/hooks/pre-commit").exists());
    assert!(!work.join(".git/evil-hooks").exists());
    assert!(!work.join("planted.txt").exists() && !work.join(".gitattributes").exists());
    assert_eq!(git(&work, &["rev-parse", "--abbrev-ref", "HEAD"]).trim(), "main");
    assert_eq!(git(&work, &["rev-parse", "HEAD"]), head);
    assert_eq!(git(&work, &["branch", "--format=%(refname:short)"]).trim(), "main");
    assert_eq!(git(&work, &["status", "--porcelain"]), "");
    // Pushed nowhere.
    assert_eq!(git(&evil, &["for-each-ref"]), "");
    assert_eq!(git(&origin, &["for-each-ref", "--format=%(refname)"]).trim(), "refs/heads/main");

    // The pipeline's next job runs normally (nothing to change: no branch left behind).
    let job = server.run("git-plant-flow", params("none")).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["result"]["answers"]["branch"]["ok"].as_str().map(|b| b.starts_with("plant/")), Some(true), "{job}");
    assert_eq!(git(&work, &["rev-parse", "--abbrev-ref", "HEAD"]).trim(), "main");
    assert!(!marker.exists());
}
