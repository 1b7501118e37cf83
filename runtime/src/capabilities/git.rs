//! The `git` interface: read-only queries on repositories inside the job's grants.
//! git runs as a child process with an argument vector (never a shell string), a
//! per-call timeout and a cap on output size; a hung `git log` fails the call only.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

use crate::sandbox::HostState;
use crate::sandbox::bindings::git::{self as wit, Commit, FileChange, GitError, StatusEntry};

/// Limits on git commands run for guests.
#[derive(Debug, Clone)]
pub struct GitSettings {
    /// How long one git command may take.
    pub timeout: Duration,
    /// Bytes of stdout kept before the call fails as too large.
    pub max_output: usize,
}

impl Default for GitSettings {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(30), max_output: 16 << 20 }
    }
}

/// Runs `git -C dir args...` and returns stdout.
pub async fn run_git(dir: &Path, args: &[&str], settings: &GitSettings) -> Result<String, GitError> {
    let mut child = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_OPTIONAL_LOCKS", "0")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| GitError::Failed(format!("cannot start git: {e}")))?;
    let mut stdout = child.stdout.take().ok_or_else(|| GitError::Failed("git stdout missing".into()))?;
    let mut stderr = child.stderr.take().ok_or_else(|| GitError::Failed("git stderr missing".into()))?;
    let cap = settings.max_output;
    let work = async {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = stdout.read(&mut buf).await.map_err(|e| GitError::Failed(format!("reading git output: {e}")))?;
            if n == 0 {
                break;
            }
            if out.len() + n > cap {
                return Err(GitError::TooLarge(format!("git output exceeds {cap} bytes")));
            }
            out.extend_from_slice(&buf[..n]);
        }
        let mut err = String::new();
        let _ = (&mut stderr).take(64 * 1024).read_to_string(&mut err).await;
        let status = child.wait().await.map_err(|e| GitError::Failed(format!("waiting for git: {e}")))?;
        Ok::<_, GitError>((status, out, err))
    };
    let (status, out, err) = match tokio::time::timeout(settings.timeout, work).await {
        Ok(res) => res?,
        // Dropping `work` drops the child, which kill_on_drop terminates.
        Err(_) => return Err(GitError::Timeout(format!("git {} took longer than {:?}", args.join(" "), settings.timeout))),
    };
    if !status.success() {
        let err = err.trim();
        if err.contains("not a git repository") {
            return Err(GitError::NotARepository(format!("{} is not inside a git work tree", dir.display())));
        }
        return Err(GitError::Failed(format!("git {} failed: {err}", args.first().unwrap_or(&""))));
    }
    String::from_utf8(out).map_err(|_| GitError::Failed("git output is not UTF-8".into()))
}

/// What a git query needs from the store, copied out so no `&HostState` is held
/// across an await (the WASI context is not `Sync`).
struct Query {
    grants: Vec<PathBuf>,
    settings: GitSettings,
}

impl Query {
    fn of(state: &HostState) -> Self {
        Self { grants: state.grants.iter().map(|g| g.dir.clone()).collect(), settings: state.git.clone() }
    }

    /// Checks that `path` lies inside one of the job's granted folders.
    fn granted(&self, path: &str) -> Result<PathBuf, GitError> {
        let canonical = std::fs::canonicalize(path).map_err(|e| GitError::Denied(format!("{path}: {e}")))?;
        if self.grants.iter().any(|g| canonical.starts_with(g)) {
            Ok(canonical)
        } else {
            Err(GitError::Denied(format!("{path} is outside the folders granted to this job")))
        }
    }

    async fn git(&self, path: &str, args: &[&str]) -> Result<String, GitError> {
        let dir = self.granted(path)?;
        run_git(&dir, args, &self.settings).await
    }
}

/// Parses `git log --numstat` output produced with `LOG_FORMAT`.
pub fn parse_log(text: &str, since: i64, until: i64) -> Vec<Commit> {
    let mut commits = Vec::new();
    for record in text.split('\u{1e}').filter(|r| !r.trim().is_empty()) {
        let mut lines = record.lines();
        let Some(header) = lines.next() else { continue };
        let fields: Vec<&str> = header.split('\u{1f}').collect();
        if fields.len() < 5 {
            continue;
        }
        let timestamp: i64 = fields[3].parse().unwrap_or(0);
        if timestamp < since || timestamp >= until {
            continue;
        }
        let files = lines
            .filter_map(|l| {
                let mut parts = l.splitn(3, '\t');
                let (a, d, p) = (parts.next()?, parts.next()?, parts.next()?);
                Some(FileChange { path: p.to_string(), added: a.parse().ok(), deleted: d.parse().ok() })
            })
            .collect();
        commits.push(Commit {
            sha: fields[0].to_string(),
            author_name: fields[1].to_string(),
            author_email: fields[2].to_string(),
            timestamp,
            subject: fields[4..].join("\u{1f}"),
            files,
        });
    }
    commits
}

/// Header of one commit in `git log`: record separator, then unit-separated fields.
const LOG_FORMAT: &str = "--format=%x1e%H%x1f%an%x1f%ae%x1f%at%x1f%s";

impl wit::Host for HostState {
    async fn current_branch(&mut self, repo: String) -> wasmtime::Result<Result<String, GitError>> {
        let q = Query::of(self);
        Ok(q.git(&repo, &["rev-parse", "--abbrev-ref", "HEAD"]).await.map(|o| o.trim().to_string()))
    }

    async fn status(&mut self, repo: String) -> wasmtime::Result<Result<Vec<StatusEntry>, GitError>> {
        let q = Query::of(self);
        let out = q.git(&repo, &["status", "--porcelain=v1", "-z", "--untracked-files=all"]).await;
        Ok(out.map(|out| {
            out.split('\0')
                .filter(|e| e.len() > 3)
                .map(|e| StatusEntry { code: e[..2].to_string(), path: e[3..].to_string() })
                .collect()
        }))
    }

    async fn log(&mut self, repo: String, since: i64, until: i64) -> wasmtime::Result<Result<Vec<Commit>, GitError>> {
        let q = Query::of(self);
        // --since filters on committer time, which is never before author time, so
        // nothing in the window is lost; the exact author-time window is applied after.
        // `--since=@<unix>` is not understood by every git; an explicit UTC date is.
        let mut args = vec!["log", "--all", "--numstat", "--no-renames", LOG_FORMAT];
        let since_arg = chrono::DateTime::from_timestamp(since, 0)
            .filter(|_| since > 0)
            .map(|t| format!("--since={}", t.format("%Y-%m-%d %H:%M:%S +0000")));
        if let Some(arg) = &since_arg {
            args.push(arg);
        }
        let out = q.git(&repo, &args).await;
        Ok(out.map(|out| parse_log(&out, since, until)))
    }

    async fn tracked_files(&mut self, repo: String) -> wasmtime::Result<Result<Vec<String>, GitError>> {
        let q = Query::of(self);
        let out = q.git(&repo, &["ls-files", "-z"]).await;
        Ok(out.map(|out| out.split('\0').filter(|p| !p.is_empty()).map(str::to_string).collect()))
    }

    async fn remote_url(&mut self, repo: String, remote: String) -> wasmtime::Result<Result<Option<String>, GitError>> {
        let q = Query::of(self);
        if remote.is_empty() || remote.starts_with('-') {
            return Ok(Err(GitError::Failed(format!("invalid remote name {remote:?}"))));
        }
        let key = format!("remote.{remote}.url");
        Ok(match q.git(&repo, &["config", "--get", &key]).await {
            Ok(out) => Ok(Some(out.trim().to_string())),
            // `git config --get` exits 1 when the key is unset; tell that apart from "no repository".
            Err(GitError::Failed(_)) => q.git(&repo, &["rev-parse", "--git-dir"]).await.map(|_| None),
            Err(e) => Err(e),
        })
    }

    async fn toplevel(&mut self, path: String) -> wasmtime::Result<Result<String, GitError>> {
        let q = Query::of(self);
        Ok(q.git(&path, &["rev-parse", "--show-toplevel"]).await.map(|o| o.trim().to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_records_are_parsed_and_windowed_by_author_time() {
        let text = "\u{1e}abc\u{1f}Ann\u{1f}a@x\u{1f}100\u{1f}first\n\n3\t1\tsrc/a.rs\n-\t-\timg.png\n\
                    \u{1e}def\u{1f}Bob\u{1f}b@x\u{1f}50\u{1f}old\n\n1\t0\tb.rs\n";
        let commits = parse_log(text, 60, 200);
        assert_eq!(commits.len(), 1);
        assert_eq!(commits[0].sha, "abc");
        assert_eq!(commits[0].files.len(), 2);
        assert_eq!(commits[0].files[0].added, Some(3));
        assert_eq!(commits[0].files[1].added, None);
    }

    #[tokio::test]
    async fn a_slow_git_command_times_out() {
        let dir = tempfile::tempdir().unwrap();
        // `git -c core.pager=...` is not a hang; a blocking credential helper is hard to
        // stage, so use an alias that sleeps (git runs `!` aliases through sh).
        let settings = GitSettings { timeout: Duration::from_millis(300), max_output: 1024 };
        let start = std::time::Instant::now();
        let res = run_git(dir.path(), &["-c", "alias.hang=!sleep 5", "hang"], &settings).await;
        assert!(matches!(res, Err(GitError::Timeout(_))), "{res:?}");
        assert!(start.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn output_over_the_cap_fails_the_call() {
        let dir = tempfile::tempdir().unwrap();
        let settings = GitSettings { timeout: Duration::from_secs(10), max_output: 10 };
        let res = run_git(dir.path(), &["--version"], &settings).await;
        assert!(matches!(res, Err(GitError::TooLarge(_))), "{res:?}");
    }
}
