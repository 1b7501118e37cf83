//! The git capability without a guest: answers against the git CLI's on real
//! repositories, and planted repositories that must neither run a program nor read
//! outside the grants.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::*;
use crate::sandbox::grants::{Access, Grant};

/// Runs the real git CLI (test set-up and the reference answers only).
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=T",
            "-c",
            "user.email=t@x",
            "-c",
            "init.defaultBranch=main",
            "-c",
            "core.fsmonitor=false",
        ])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A canonical temporary root with a repository `repo` holding one commit.
fn repo() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    let repo = root.join("repo");
    write(&repo.join("a.txt"), "one\ntwo\nthree\n");
    write(&repo.join("src/lib.rs"), "fn main() {}\n");
    git(&repo, &["init", "-q"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "first"]);
    (dir, repo)
}

fn grant(dir: &Path, param: &str) -> Grant {
    Grant { param: param.into(), dir: dir.to_path_buf(), access: Access::Write }
}

fn query(grants: &[&Path]) -> Query {
    let grants: Vec<Grant> = grants.iter().map(|g| grant(g, "repo")).collect();
    Query::new(&grants, &GitSettings::default())
}

async fn status_of(q: &Query, path: &Path) -> Result<Vec<(String, String)>, GitError> {
    q.run(&path.display().to_string(), |r, _, ctx| query::status(r, ctx)).await
}

/// `git status --porcelain` pairs, as the old CLI-backed query answered.
fn cli_status(repo: &Path) -> Vec<(String, String)> {
    git(repo, &["status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames"])
        .split('\0')
        .filter(|e| e.len() > 3)
        .map(|e| (e[..2].to_string(), e[3..].to_string()))
        .collect()
}

#[tokio::test]
async fn answers_match_the_git_cli() {
    let (_dir, repo) = repo();
    write(&repo.join("bin.dat"), "x\0y\n");
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "binary\n\nbody"]);
    // Modified in the tree, staged, deleted, untracked (nested), a mode change.
    write(&repo.join("a.txt"), "one\n2\nthree\nfour");
    write(&repo.join("new.txt"), "n\n");
    git(&repo, &["add", "new.txt"]);
    std::fs::remove_file(repo.join("src/lib.rs")).unwrap();
    write(&repo.join("docs/deep/x.md"), "x\n");
    write(&repo.join("z.txt"), "z\n");

    let q = query(&[&repo]);
    let status = status_of(&q, &repo).await.unwrap();
    assert_eq!(status, cli_status(&repo));
    assert!(status.contains(&(" M".into(), "a.txt".into())), "{status:?}");
    assert!(status.contains(&("??".into(), "docs/deep/x.md".into())), "{status:?}");

    let tracked = q.run(&repo.display().to_string(), query::tracked_files).await.unwrap();
    let cli: Vec<String> = git(&repo, &["ls-files"]).lines().map(str::to_string).collect();
    assert_eq!(tracked, cli);
    let sub = q.run(&repo.join("src").display().to_string(), query::tracked_files).await;
    assert_eq!(sub.unwrap(), vec!["lib.rs".to_string()], "paths relative to the folder asked about");

    let log = q.run(&repo.display().to_string(), |r, _, ctx| query::log(r, 0, i64::MAX, ctx)).await.unwrap();
    assert_eq!(log.len(), 2);
    let cli = git(&repo, &["log", "--all", "--numstat", "--no-renames", "--format=%x1e%H%x1f%s"]);
    let shas: Vec<&str> =
        cli.split('\u{1e}').filter_map(|r| r.split('\u{1f}').next()).filter(|s| !s.is_empty()).collect();
    assert_eq!(log.iter().map(|c| c.sha.as_str()).collect::<Vec<_>>(), shas);
    assert_eq!(log[0].subject, "binary");
    assert_eq!(log[0].files.len(), 1);
    assert_eq!((log[0].files[0].added, log[0].files[0].deleted), (None, None), "binary files count as none");
    let first: Vec<(String, Option<u32>)> = log[1].files.iter().map(|f| (f.path.clone(), f.added)).collect();
    assert_eq!(first, vec![("a.txt".into(), Some(3)), ("src/lib.rs".into(), Some(1))]);

    let branch = q.run(&repo.display().to_string(), |r, _, _| query::current_branch(r)).await.unwrap();
    assert_eq!(branch, "main");
    let top = q.run(&repo.join("src").display().to_string(), |r, _, _| query::toplevel(r)).await.unwrap();
    assert_eq!(top, repo.display().to_string());
    git(&repo, &["remote", "add", "origin", "https://example.test/a.git"]);
    let url = q.run(&repo.display().to_string(), |r, _, _| query::remote_url(r, "origin")).await.unwrap();
    assert_eq!(url.as_deref(), Some("https://example.test/a.git"));
    let none = q.run(&repo.display().to_string(), |r, _, _| query::remote_url(r, "upstream")).await.unwrap();
    assert_eq!(none, None);
}

#[test]
fn line_counts_match_numstat() {
    let (_dir, repo) = repo();
    let cases: [(&str, &str); 4] = [
        ("a\nb\nc\n", "a\nB\nc\nd\n"),
        ("x\n", "x"),
        ("", "1\n2\n3\n"),
        ("same\nsame\nsame\n", "same\nother\nsame\nsame\n"),
    ];
    for (old, new) in cases {
        write(&repo.join("f.txt"), old);
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-q", "--allow-empty", "-m", "old"]);
        write(&repo.join("f.txt"), new);
        let cli = git(&repo, &["diff", "--numstat", "--", "f.txt"]);
        let mut parts = cli.split('\t');
        let added: u32 = parts.next().unwrap().parse().unwrap();
        let deleted: u32 = parts.next().unwrap().parse().unwrap();
        assert_eq!(query::line_counts(old.as_bytes(), new.as_bytes()), (added, deleted), "{old:?} -> {new:?}");
        git(&repo, &["checkout", "-q", "--", "f.txt"]);
    }
}

/// A marker a planted command would create, and the shell snippet that creates it.
fn marker(root: &Path) -> (PathBuf, String) {
    let m = root.join("PWNED");
    (m.clone(), format!("touch {}", m.display()))
}

#[tokio::test]
async fn planted_programs_never_run() {
    let (dir, repo) = repo();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    let (m, cmd) = marker(&root);
    // Every config key that makes the git CLI run something during a read.
    git(&repo, &["config", "core.fsmonitor", &cmd]);
    git(&repo, &["config", "core.hooksPath", "hooks"]);
    git(&repo, &["config", "filter.evil.clean", &cmd]);
    git(&repo, &["config", "filter.evil.smudge", &cmd]);
    git(&repo, &["config", "filter.evil.process", &cmd]);
    git(&repo, &["config", "filter.evil.required", "true"]);
    git(&repo, &["config", "diff.evil.textconv", &cmd]);
    git(&repo, &["config", "diff.external", &cmd]);
    git(&repo, &["config", "core.pager", &cmd]);
    git(&repo, &["config", "log.showSignature", "true"]);
    git(&repo, &["config", "gpg.program", &cmd]);
    git(&repo, &["config", "core.sshCommand", &cmd]);
    git(&repo, &["config", "credential.helper", &format!("!{cmd}")]);
    write(&repo.join(".gitattributes"), "* filter=evil diff=evil\n");
    write(&repo.join("hooks/post-index-change"), &format!("#!/bin/sh\n{cmd}\n"));
    // A tracked file whose stat changed, so status must look at (and would filter) its content:
    // a later mtime set outright, not waited for.
    write(&repo.join("a.txt"), "one\ntwo\nthree\n");
    let later = std::time::SystemTime::now() + Duration::from_secs(10);
    std::fs::File::options().write(true).open(repo.join("a.txt")).unwrap().set_modified(later).unwrap();
    write(&repo.join("b.txt"), "b\n");

    let q = query(&[&root]);
    let status = status_of(&q, &repo).await.unwrap();
    assert!(status.contains(&("??".into(), "b.txt".into())), "{status:?}");
    let repo_s = repo.display().to_string();
    q.run(&repo_s, query::tracked_files).await.unwrap();
    q.run(&repo_s, |r, _, ctx| query::log(r, 0, i64::MAX, ctx)).await.unwrap();
    q.run(&repo_s, |r, _, _| query::current_branch(r)).await.unwrap();
    assert!(!m.exists(), "a planted command ran");
}

#[tokio::test]
async fn repositories_pointing_outside_the_grants_are_denied() {
    let (dir, repo) = repo();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    let outside = tempfile::tempdir().unwrap();
    let other = std::fs::canonicalize(outside.path()).unwrap().join("other");
    write(&other.join("secret.txt"), "secret\n");
    git(&other, &["init", "-q"]);
    git(&other, &["add", "-A"]);
    git(&other, &["commit", "-q", "-m", "secret commit"]);
    let q = query(&[&root]);

    // A `.git` file naming another repository's git dir.
    let gitfile = root.join("gitfile");
    write(&gitfile.join(".git"), &format!("gitdir: {}\n", other.join(".git").display()));
    let res = status_of(&q, &gitfile).await;
    assert!(matches!(res, Err(GitError::Denied(_))), "gitfile: {res:?}");

    // A symbolic link inside the git dir (objects, refs or config) into another repository.
    let linked = root.join("linked");
    git(&root, &["init", "-q", "linked"]);
    std::fs::remove_dir_all(linked.join(".git/refs")).unwrap();
    std::os::unix::fs::symlink(other.join(".git/refs"), linked.join(".git/refs")).unwrap();
    let res = status_of(&q, &linked).await;
    assert!(matches!(res, Err(GitError::Denied(_))), "linked: {res:?}");

    // Alternates into another repository's objects.
    let alt = root.join("alt");
    git(&root, &["init", "-q", "alt"]);
    write(&alt.join(".git/objects/info/alternates"), &format!("{}\n", other.join(".git/objects").display()));
    let res = status_of(&q, &alt).await;
    assert!(matches!(res, Err(GitError::Denied(_))), "alt: {res:?}");

    // A linked work tree whose commondir is elsewhere.
    let common = root.join("common");
    git(&root, &["init", "-q", "common"]);
    write(&common.join(".git/commondir"), &format!("{}\n", other.join(".git").display()));
    let res = status_of(&q, &common).await;
    assert!(res.is_err(), "{res:?}");

    // core.worktree naming an ungranted folder: ignored or refused, never listed.
    let wt = root.join("wt");
    git(&root, &["init", "-q", "wt"]);
    git(&wt, &["config", "core.worktree", &other.display().to_string()]);
    let res = status_of(&q, &wt).await;
    let listed = format!("{res:?}");
    assert!(!listed.contains("secret"), "{listed}");
    let files = q.run(&wt.display().to_string(), query::tracked_files).await;
    assert!(!format!("{files:?}").contains("secret"), "{files:?}");

    // A FIFO where git reads its config would block the reader for good: refused first.
    let fifo = root.join("fifo");
    git(&root, &["init", "-q", "fifo"]);
    std::fs::remove_file(fifo.join(".git/config")).unwrap();
    assert!(Command::new("mkfifo").arg(fifo.join(".git/config")).status().unwrap().success());
    let res = status_of(&q, &fifo).await;
    assert!(matches!(res, Err(GitError::Denied(_))), "{res:?}");

    // A repository above the grant is not discovered from inside it.
    let inner = query(&[&repo.join("src")]);
    let res = inner.run(&repo.join("src").display().to_string(), |r, _, _| query::current_branch(r)).await;
    assert!(matches!(res, Err(GitError::NotARepository(_))), "{res:?}");
}

#[tokio::test]
async fn the_output_folder_is_never_a_repository() {
    let (dir, repo) = repo();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    let out = root.join("data/outputs/job1");
    git(&root, &["init", "-q", "data/outputs/job1"]);
    let grants = vec![grant(&root, "repo"), grant(&out, "output")];
    let q = Query::new(&grants, &GitSettings::default());
    let res = status_of(&q, &out).await;
    assert!(matches!(res, Err(GitError::Denied(_))), "{res:?}");
    // The data folder as a whole, as the server configures it.
    let settings = GitSettings { forbidden: vec![root.join("data")], ..GitSettings::default() };
    let q = Query::new(&[grant(&root, "repo")], &settings);
    let res = status_of(&q, &out).await;
    assert!(matches!(res, Err(GitError::Denied(_))), "{res:?}");
    assert!(status_of(&q, &repo).await.is_ok());
    // A work tree whose `.git` file points into the output folder.
    let sneaky = root.join("sneaky");
    write(&sneaky.join(".git"), &format!("gitdir: {}\n", out.join(".git").display()));
    let res = status_of(&q, &sneaky).await;
    assert!(matches!(res, Err(GitError::Denied(_))), "{res:?}");
}

#[tokio::test]
async fn a_long_history_times_out_and_a_big_answer_is_refused() {
    let (_dir, repo) = repo();
    // 3000 commits through fast-import, each touching a file.
    let mut stream = String::new();
    for i in 0..3000 {
        let data = format!("line {i}\n");
        stream.push_str(&format!(
            "commit refs/heads/main\ncommitter T <t@x> {} +0000\ndata 2\nc\n{}M 100644 inline f.txt\ndata {}\n{data}\n",
            1_600_000_000 + i,
            if i == 0 { "from refs/heads/main^0\n" } else { "" },
            data.len()
        ));
    }
    let mut child = Command::new("git")
        .arg("-C")
        .arg(&repo)
        .args(["fast-import", "--quiet"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(stream.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());

    let settings = GitSettings { timeout: Duration::from_millis(1), ..GitSettings::default() };
    let q = Query::new(&[grant(&repo, "repo")], &settings);
    let started = std::time::Instant::now();
    let res = q.run(&repo.display().to_string(), |r, _, ctx| query::log(r, 0, i64::MAX, ctx)).await;
    assert!(matches!(res, Err(GitError::Timeout(_))), "{res:?}");
    assert!(started.elapsed() < Duration::from_secs(5));

    let settings = GitSettings { max_output: 10_000, ..GitSettings::default() };
    let q = Query::new(&[grant(&repo, "repo")], &settings);
    let res = q.run(&repo.display().to_string(), |r, _, ctx| query::log(r, 0, i64::MAX, ctx)).await;
    assert!(matches!(res, Err(GitError::TooLarge(_))), "{res:?}");
}
