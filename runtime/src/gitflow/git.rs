//! A git CLI runner for the workflow: argument vectors only (never a shell string),
//! no terminal prompts, a per-command timeout and a cap on captured output. It uses
//! the user's global git config, so credential helpers and SSH setup keep working for
//! push, but runs with a cleared environment (the server's API key and forge token never
//! reach git or anything it starts) and with every repository setting that would run a
//! program during the workflow's commands overridden on the command line (`HARDENING`).

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

/// Bytes of stderr kept for error messages; the rest is drained and dropped.
const STDERR_KEEP: usize = 16 * 1024;

/// Given before every command: `-c` beats the repository's config, so hooks, fsmonitor,
/// pagers, editors, signing, askpass, the `ext::` transport, submodule recursion and
/// automatic gc/maintenance never run whatever a config names. (Filter drivers, diff
/// drivers and the SSH command cannot be switched off by name; `guard` refuses a repository
/// whose own config sets them, and catches a job that adds them.)
#[rustfmt::skip]
const HARDENING: &[&str] = &[
    "-c", "core.hooksPath=/dev/null",
    "-c", "core.fsmonitor=false",
    "-c", "core.pager=cat",
    "-c", "core.editor=:",
    "-c", "core.askPass=",
    "-c", "commit.gpgSign=false",
    "-c", "tag.gpgSign=false",
    "-c", "push.gpgSign=false",
    "-c", "protocol.ext.allow=never",
    "-c", "push.recurseSubmodules=no",
    "-c", "submodule.recurse=false",
    "-c", "diff.ignoreSubmodules=all",
    "-c", "gc.auto=0",
    "-c", "maintenance.auto=false",
    "-c", "core.untrackedCache=false",
];

/// Variables of the server's environment git may see: where programs are, the user's
/// global config (identity, credential helpers) and the SSH agent, proxies. Nothing else
/// (the API key and forge token live in the server's environment).
const PASSED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "XDG_CONFIG_HOME",
    "SSH_AUTH_SOCK",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// What a finished git command printed and how it exited.
#[derive(Debug)]
pub(crate) struct Output {
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output (lossy UTF-8).
    pub stdout: String,
    /// Standard error, truncated to `STDERR_KEEP` bytes.
    pub stderr: String,
}

/// Runs git commands with limits.
#[derive(Debug, Clone)]
pub(crate) struct Git {
    timeout: Duration,
    max_output: usize,
}

impl Git {
    /// A runner whose commands may take `timeout` and print `max_output` bytes.
    pub fn new(timeout: Duration, max_output: usize) -> Self {
        Self { timeout, max_output }
    }

    /// Runs `git -C dir args...`; errors only when git cannot run to the end.
    pub async fn output(&self, dir: &Path, args: &[&str]) -> anyhow::Result<Output> {
        let what = describe(args);
        let mut command = Command::new("git");
        command.env_clear();
        for key in PASSED_ENV {
            if let Some(value) = std::env::var_os(key) {
                command.env(key, value);
            }
        }
        let mut child = command
            .arg("-C")
            .arg(dir)
            .args(HARDENING)
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_PAGER", "cat")
            .env("GIT_EDITOR", ":")
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {what}"))?;
        let stdout = child.stdout.take().context("git stdout missing")?;
        let stderr = child.stderr.take().context("git stderr missing")?;
        let cap = self.max_output;
        let work = async {
            // Read both pipes together: a chatty stderr (push progress, hooks) must not
            // block git while we wait on stdout.
            let (out, err) = tokio::join!(read_capped(stdout, cap), read_capped(stderr, STDERR_KEEP));
            let (out, out_truncated) = out.context("reading git output")?;
            let (err, _) = err.context("reading git errors")?;
            if out_truncated {
                bail!("output exceeds {cap} bytes");
            }
            let status = child.wait().await.context("waiting for git")?;
            Ok((status, out, err))
        };
        let (status, out, err) = match tokio::time::timeout(self.timeout, work).await {
            Ok(res) => res.with_context(|| what.clone())?,
            // Dropping `work` drops the child, which kill_on_drop terminates.
            Err(_) => bail!("{what} took longer than {:?}", self.timeout),
        };
        Ok(Output {
            status,
            stdout: String::from_utf8_lossy(&out).into_owned(),
            stderr: String::from_utf8_lossy(&err).trim().to_string(),
        })
    }

    /// Runs `git -C dir args...` and returns stdout; a non-zero exit is an error.
    pub async fn run(&self, dir: &Path, args: &[&str]) -> anyhow::Result<String> {
        let out = self.output(dir, args).await?;
        if !out.status.success() {
            bail!("{} failed ({}): {}", describe(args), out.status, out.stderr);
        }
        Ok(out.stdout)
    }
}

/// Reads `pipe` to the end, keeping at most `cap` bytes; true when more came.
async fn read_capped(mut pipe: impl AsyncRead + Unpin, cap: usize) -> std::io::Result<(Vec<u8>, bool)> {
    let mut kept = Vec::new();
    let mut truncated = false;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = pipe.read(&mut buf).await?;
        if n == 0 {
            return Ok((kept, truncated));
        }
        let room = cap.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
        truncated |= n > room;
    }
}

/// `git <subcommand>` for messages; further arguments may hold paths or URLs.
fn describe(args: &[&str]) -> String {
    let sub = args.iter().find(|a| !a.starts_with('-') && !a.contains('=')).unwrap_or(&"");
    format!("git {sub}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hung_command_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let git = Git::new(Duration::from_millis(300), 1024);
        let start = std::time::Instant::now();
        let res = git.output(dir.path(), &["-c", "alias.hang=!sleep 5", "hang"]).await;
        let err = format!("{:#}", res.unwrap_err());
        assert!(err.contains("took longer"), "{err}");
        assert!(start.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn output_over_the_cap_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let git = Git::new(Duration::from_secs(10), 4);
        let err = format!("{:#}", git.run(dir.path(), &["--version"]).await.unwrap_err());
        assert!(err.contains("exceeds 4 bytes"), "{err}");
    }

    #[tokio::test]
    async fn a_failing_command_reports_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let git = Git::new(Duration::from_secs(10), 1024);
        let err = format!("{:#}", git.run(dir.path(), &["rev-parse", "--show-toplevel"]).await.unwrap_err());
        assert!(err.contains("git rev-parse failed") && err.contains("not a git repository"), "{err}");
    }
}
