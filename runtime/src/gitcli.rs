//! The host's one git process runner. Only the workflow (`gitflow`) runs the git CLI
//! (guest queries use gitoxide in-process, `capabilities::git`); nothing else in the host
//! spawns git, which `only_this_module_spawns_git` checks.
//!
//! Confinement: argument vectors only (never a shell string), no terminal prompts, a
//! per-command timeout, and caps on both captured streams, read concurrently so a chatty
//! stderr never blocks git while stdout is read (or the reverse). It uses the user's global
//! git config, so credential helpers and SSH setup keep working for push, but runs with a
//! cleared environment (the server's API key and forge token never reach git or anything it
//! starts) and with every repository setting that would run a program during the workflow's
//! commands overridden on the command line (`HARDENING`).

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
            // Both pipes at once: a pipe nobody reads fills up (64 KiB) and stalls git.
            // stdout stops at its cap (the error drops the child, which kill_on_drop ends);
            // stderr is drained to the end, keeping only its first `STDERR_KEEP` bytes.
            let (out, err) = tokio::join!(read_capped(stdout, cap, true), read_capped(stderr, STDERR_KEEP, false));
            let (out, out_truncated) = out.context("reading git output")?;
            if out_truncated {
                bail!("output exceeds {cap} bytes");
            }
            let (err, _) = err.context("reading git errors")?;
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

/// Reads `pipe` keeping at most `cap` bytes; true when more came. With `stop`, returns as
/// soon as the cap is passed; otherwise drains the pipe to its end.
async fn read_capped(mut pipe: impl AsyncRead + Unpin, cap: usize, stop: bool) -> std::io::Result<(Vec<u8>, bool)> {
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
        if truncated && stop {
            return Ok((kept, truncated));
        }
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

    /// git with a one-off alias: `!` aliases run through the shell, so the output is whatever
    /// the test needs, printed by a real git child.
    async fn alias(git: &Git, script: &str) -> anyhow::Result<Output> {
        let dir = tempfile::tempdir()?;
        let def = format!("alias.t=!{script}");
        git.output(dir.path(), &["-c", &def, "t"]).await
    }

    #[tokio::test]
    async fn a_hung_command_times_out() {
        let git = Git::new(Duration::from_millis(300), 1024);
        let start = std::time::Instant::now();
        let err = format!("{:#}", alias(&git, "sleep 5").await.unwrap_err());
        assert!(err.contains("git t took longer"), "{err}");
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
    async fn endless_output_stops_at_the_cap_not_at_the_timeout() {
        let git = Git::new(Duration::from_secs(60), 1 << 20);
        let start = std::time::Instant::now();
        let err = format!("{:#}", alias(&git, "yes").await.unwrap_err());
        assert!(err.contains(&format!("exceeds {} bytes", 1 << 20)), "{err}");
        assert!(start.elapsed() < Duration::from_secs(20), "took {:?}", start.elapsed());
    }

    #[tokio::test]
    async fn megabytes_of_stderr_before_stdout_do_not_block_the_runner() {
        // 2 MiB of stderr, then stdout: read one pipe after the other, this stalls on a full
        // stderr pipe until the timeout.
        let git = Git::new(Duration::from_secs(30), 1024);
        let out = alias(&git, "yes chatty | head -c 2097152 >&2; echo done").await.unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(out.stdout, "done\n");
        assert!(out.stderr.len() <= STDERR_KEEP && out.stderr.starts_with("chatty\nchatty"), "{}", out.stderr.len());
    }

    #[tokio::test]
    async fn megabytes_of_stdout_and_stderr_interleaved_are_read_together() {
        let git = Git::new(Duration::from_secs(30), 4 << 20);
        let script = "for i in 1 2 3 4; do yes err | head -c 524288 >&2; yes out | head -c 524288; done";
        let out = alias(&git, script).await.unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(out.stdout.len(), 4 * 524_288);
        assert_eq!(out.stderr.len(), STDERR_KEEP - 1, "trimmed of its cut-off last line break");
    }

    #[tokio::test]
    async fn git_sees_a_cleared_environment() {
        // Variables of this process that git must not inherit (cargo's own, at least).
        let ours: Vec<String> = std::env::vars_os()
            .filter_map(|(k, _)| k.into_string().ok())
            .filter(|k| !PASSED_ENV.contains(&k.as_str()) && !k.starts_with("GIT_"))
            .filter(|k| !["LC_ALL", "PWD", "OLDPWD", "SHLVL", "_"].contains(&k.as_str()))
            .collect();
        assert!(!ours.is_empty(), "the test process has variables of its own");
        let git = Git::new(Duration::from_secs(10), 1 << 20);
        let out = alias(&git, "env").await.unwrap();
        assert!(out.status.success(), "{out:?}");
        let seen: Vec<&str> = out.stdout.lines().filter_map(|l| l.split_once('=')).map(|(k, _)| k).collect();
        let leaked: Vec<&String> = ours.iter().filter(|k| seen.contains(&k.as_str())).collect();
        assert!(leaked.is_empty(), "git inherited {leaked:?}");
        assert!(seen.contains(&"GIT_TERMINAL_PROMPT"), "{}", out.stdout);
    }

    #[tokio::test]
    async fn a_failing_command_reports_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let git = Git::new(Duration::from_secs(10), 1024);
        let err = format!("{:#}", git.run(dir.path(), &["rev-parse", "--show-toplevel"]).await.unwrap_err());
        assert!(err.contains("git rev-parse failed") && err.contains("not a git repository"), "{err}");
    }

    /// The host's other code never starts git itself: a second runner would not carry these
    /// rules. Test modules (fixture set-up) are exempt.
    #[test]
    fn only_this_module_spawns_git() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut offenders = Vec::new();
        let mut dirs = vec![src.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if !name.ends_with(".rs") || name == "tests.rs" || path.ends_with("gitcli.rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                let code = text.split("#[cfg(test)]").next().unwrap_or("");
                if code.contains("Command::new(\"git\")") {
                    offenders.push(path.strip_prefix(&src).unwrap().display().to_string());
                }
            }
        }
        assert!(offenders.is_empty(), "git spawned outside gitcli.rs: {offenders:?}");
    }
}
