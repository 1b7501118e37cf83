//! The host-side git workflow around a job (branch → run → commit → push → PR).
//!
//! `begin` takes a per-repository lock and checks out a fresh job branch; `complete`
//! commits what the guest changed, pushes it and opens a pull request (or drops the
//! branch when nothing changed); `abort`, and any failure inside `complete`, put the
//! work tree back on the original branch and delete the job branch. The lock is held
//! from `begin` until `complete`/`abort`, so two jobs on one repository never
//! interleave their git steps. git runs through the CLI (argument vectors only) so the
//! user's git config and credential helpers apply to push.
//!
//! The guest may have written the repository, `.git` included, so nothing it writes may
//! steer the host: `begin` refuses a repository whose own config names a program
//! (`guard::check_config`), records the push URL, the forge URL and the commit identity,
//! and snapshots the git metadata and refs; `complete` and `abort` compare before running
//! any git command, and on a difference restore the repository, push nothing and fail the
//! job with `SECURITY` (`guard::Tampered`). Every git command runs hardened (`crate::gitcli`).

mod forge;
mod guard;
mod resume;
mod slug;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::sync::OwnedMutexGuard;

use self::forge::{ForgeClient, PullRequest};
use self::guard::{Snapshot, Tampered, Unsafe};
use crate::config::GitConfig;
use crate::domain::{FailureCode, GitInfo};
use crate::failpoints;
use crate::gitcli::Git;

/// Identity used for job commits when the repository has none configured.
const FALLBACK_NAME: &str = "AlephAuto";
const FALLBACK_EMAIL: &str = "alephauto@localhost";
/// Changed files listed in a pull request body.
const PR_FILES_LISTED: usize = 50;

/// What `begin` needs to know about the job.
#[derive(Debug, Clone, Copy)]
pub struct BeginRequest<'a> {
    /// Pipeline id.
    pub pipeline_id: &'a str,
    /// Job id.
    pub job_id: &'a str,
    /// The job's `repositoryPath` (canonical).
    pub repo: &'a Path,
    /// Branch prefix the worker asked for.
    pub branch_prefix: &'a str,
    /// Commit title the worker asked for.
    pub commit_title: &'a str,
    /// Optional description used for the branch slug.
    pub description: Option<&'a str>,
}

/// Where HEAD was before the job, so it can be put back.
#[derive(Debug, Clone)]
enum Original {
    /// A branch name.
    Branch(String),
    /// A detached HEAD at this commit.
    Detached(String),
}

impl Original {
    /// The branch name, or the commit sha when detached.
    fn name(&self) -> &str {
        match self {
            Original::Branch(b) | Original::Detached(b) => b,
        }
    }
}

/// A job's git session: the repository lock and the branches involved.
pub struct GitSession {
    /// Held until the session is completed or aborted.
    _lock: OwnedMutexGuard<()>,
    /// Canonical work tree root.
    repo: PathBuf,
    original: Original,
    branch: String,
    pipeline_id: String,
    job_id: String,
    commit_title: String,
    description: Option<String>,
    /// The git metadata and refs right after the job branch was created.
    snapshot: Snapshot,
    /// The configured remote's push URL and fetch URL before the job ran (none when the
    /// remote is not configured); the job never decides where the host pushes.
    push_url: Option<String>,
    fetch_url: Option<String>,
    /// The commit identity before the job ran.
    identity: (String, String),
    /// The job commit an earlier, interrupted attempt of this job left on the branch.
    previous: Option<String>,
}

impl fmt::Debug for GitSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitSession")
            .field("repo", &self.repo)
            .field("original", &self.original)
            .field("branch", &self.branch)
            .field("pipeline_id", &self.pipeline_id)
            .field("job_id", &self.job_id)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// The git workflow service.
#[derive(Clone)]
pub struct GitWorkflow {
    shared: Arc<Shared>,
}

/// State shared by all clones of a `GitWorkflow`.
struct Shared {
    remote: String,
    git: Git,
    forge: Option<ForgeClient>,
    /// One lock per canonical work tree root.
    locks: Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
}

impl fmt::Debug for GitWorkflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // ForgeClient's Debug redacts the token.
        f.debug_struct("GitWorkflow")
            .field("remote", &self.shared.remote)
            .field("git", &self.shared.git)
            .field("forge", &self.shared.forge)
            .finish_non_exhaustive()
    }
}

impl GitWorkflow {
    /// A workflow with `config`'s remote, forge and timeouts.
    pub fn new(config: &GitConfig) -> Self {
        let timeout = Duration::from_secs(config.command_timeout_secs.max(1));
        let forge = config
            .forge_api_url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
            .map(|url| ForgeClient::new(url, config.forge_token.as_deref(), timeout));
        Self {
            shared: Arc::new(Shared {
                remote: config.remote.clone(),
                git: Git::new(timeout, config.max_output_bytes),
                forge,
                locks: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Prepares the job branch; None when `repo` is not a git work tree.
    ///
    /// Refuses a work tree with uncommitted changes or untracked (non-ignored) files:
    /// the job commits everything it finds (`git add -A`) and a failed job is cleaned
    /// with `git clean`, so pre-existing edits would be committed or lost. Stashing
    /// them instead would hide the user's work behind an automatic step, so we refuse.
    pub async fn begin(&self, request: BeginRequest<'_>) -> anyhow::Result<Option<GitSession>> {
        let git = &self.shared.git;
        // Nothing below may run a program a repository config names, nor follow a planted
        // `core.worktree`: refuse such a config before the first command that could (status
        // runs filters and fsmonitor; the top level follows core.worktree).
        let dirs = git
            .output(request.repo, &["rev-parse", "--path-format=absolute", "--git-dir", "--git-common-dir"])
            .await
            .with_context(|| format!("checking whether {} is a git work tree", request.repo.display()))?;
        if !dirs.status.success() {
            tracing::debug!(job = request.job_id, repo = %request.repo.display(), "not a git work tree; no git workflow");
            return Ok(None);
        }
        let mut git_dirs = Vec::new();
        for dir in dirs.stdout.lines().filter(|l| !l.is_empty()) {
            git_dirs.push(tokio::fs::canonicalize(dir).await.with_context(|| format!("resolving git folder {dir}"))?);
        }
        let (Some(git_dir), Some(common_dir)) = (git_dirs.first().cloned(), git_dirs.last().cloned()) else {
            bail!("git did not name the git folders of {}", request.repo.display());
        };
        guard::check_config(git, request.repo, &common_dir, &git_dir).await?;

        let top = git
            .output(request.repo, &["rev-parse", "--show-toplevel"])
            .await
            .with_context(|| format!("checking whether {} is a git work tree", request.repo.display()))?;
        if !top.status.success() {
            tracing::debug!(job = request.job_id, repo = %request.repo.display(), "not a git work tree; no git workflow");
            return Ok(None);
        }
        let top = top.stdout.trim_end_matches(['\n', '\r']);
        let repo = tokio::fs::canonicalize(top).await.with_context(|| format!("resolving work tree {top}"))?;
        let lock = self.lock(&repo).await;
        // Again under the lock: a job that held it may have changed (and restored) the config.
        guard::check_config(git, &repo, &common_dir, &git_dir).await?;

        // Named from the job id, not the clock: a re-run of the job finds what an earlier
        // attempt left (`resume`) instead of making a second branch, commit and pull request.
        let folder = repo.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tag = slug::job_tag(request.job_id);
        let branch = slug::branch_name(request.branch_prefix, request.pipeline_id, request.description, &folder, &tag);
        git.run(&repo, &["check-ref-format", "--branch", &branch])
            .await
            .with_context(|| format!("{branch:?} is not a valid branch name"))?;
        let previous = resume::clear_interrupted(git, &repo, request.job_id, &branch).await?;

        // Checked under the lock: a job still running on this repository has a dirty tree.
        let status = git
            .run(&repo, &["status", "--porcelain=v1", "-z"])
            .await
            .with_context(|| format!("reading the status of {}", repo.display()))?;
        let dirty: Vec<&str> = status.split('\0').filter_map(|e| e.get(3..)).filter(|p| !p.is_empty()).collect();
        if !dirty.is_empty() {
            let shown: Vec<&str> = dirty.iter().take(5).copied().collect();
            bail!(
                "{} has uncommitted changes or untracked files ({}{}); commit, stash or ignore them before running a job \
                 with the git workflow",
                repo.display(),
                shown.join(", "),
                if dirty.len() > shown.len() { ", …" } else { "" }
            );
        }

        let head = git
            .run(&repo, &["rev-parse", "--abbrev-ref", "HEAD"])
            .await
            .with_context(|| format!("reading the current branch of {} (does it have a commit?)", repo.display()))?;
        let original = match head.trim() {
            "HEAD" => {
                let sha = git.run(&repo, &["rev-parse", "HEAD"]).await.context("reading the detached HEAD")?;
                Original::Detached(sha.trim().to_string())
            }
            branch => Original::Branch(branch.to_string()),
        };

        // Where to push, the forge's repository and who commits: decided now, before the job.
        let remote = self.shared.remote.as_str();
        let (push_url, fetch_url) = if remote.is_empty() || remote.starts_with('-') {
            (None, None)
        } else {
            (
                self.remote_url(&repo, &["remote", "get-url", "--push", remote]).await,
                self.remote_url(&repo, &["remote", "get-url", remote]).await,
            )
        };
        let identity = (
            self.configured(&repo, "user.name").await.unwrap_or_else(|| FALLBACK_NAME.to_string()),
            self.configured(&repo, "user.email").await.unwrap_or_else(|| FALLBACK_EMAIL.to_string()),
        );

        // An earlier attempt's branch is reset to here; its commit stays known as `previous`.
        let create = if previous.is_some() { "-C" } else { "-c" };
        git.run(&repo, &["switch", "--quiet", "--no-track", create, &branch])
            .await
            .with_context(|| format!("creating job branch {branch}"))?;
        tracing::info!(job = request.job_id, repo = %repo.display(), branch = %branch, original = original.name(), "job branch checked out");
        let snapshot = match Snapshot::take(git, &repo, &[git_dir, common_dir]).await {
            Ok(s) => s,
            Err(e) => {
                let _ = git.run(&repo, &["switch", "--quiet", "--no-guess", original.name()]).await;
                let _ = git.run(&repo, &["branch", "-D", &branch]).await;
                return Err(e.context(format!("recording the git metadata of {}", repo.display())));
            }
        };
        failpoints::hit(failpoints::BRANCH_CREATED);

        Ok(Some(GitSession {
            _lock: lock,
            repo,
            original,
            branch,
            pipeline_id: request.pipeline_id.to_string(),
            job_id: request.job_id.to_string(),
            commit_title: request.commit_title.to_string(),
            description: request.description.map(str::to_string),
            snapshot,
            push_url,
            fetch_url,
            identity,
            previous,
        }))
    }

    /// Commits, pushes and opens the PR (or cleans up when nothing changed).
    ///
    /// On any error the job branch is deleted (locally and, if pushed, on the remote)
    /// and the original branch is restored before the error is returned.
    pub async fn complete(&self, session: GitSession, job_id: &str, dry_run: bool) -> anyhow::Result<GitInfo> {
        self.check_untouched(&session).await?;
        let mut pushed = false;
        match self.finish(&session, job_id, dry_run, &mut pushed).await {
            Ok(info) => Ok(info),
            Err(e) => {
                tracing::warn!(job = job_id, branch = %session.branch, error = format!("{e:#}"), "git workflow failed; rolling back");
                if pushed {
                    self.delete_remote_branch(&session).await;
                }
                self.roll_back(&session).await;
                Err(e)
            }
        }
    }

    /// Restores the original branch and removes the job branch.
    ///
    /// Discards the job's changes (tracked and untracked, not ignored files); `begin`
    /// refused a dirty tree, so nothing of the user's is lost. Errors are logged; the
    /// error returned is `Tampered`: the job changed the git metadata (restored as well).
    pub async fn abort(&self, session: GitSession) -> anyhow::Result<()> {
        self.check_untouched(&session).await?;
        self.roll_back(&session).await;
        tracing::info!(job = %session.job_id, branch = %session.branch, "git workflow aborted; job branch removed");
        Ok(())
    }

    /// Compares the git metadata and refs with the snapshot taken before the job, before
    /// any git command runs; on a difference restores them, rolls back and fails.
    async fn check_untouched(&self, s: &GitSession) -> anyhow::Result<()> {
        let git = &self.shared.git;
        let allowed = format!("refs/heads/{}", s.branch);
        let tampered = match s.snapshot.verify_metadata() {
            Err(t) => Some(anyhow::Error::from(t)),
            // The config is as recorded, so git may run to compare the refs.
            Ok(()) => s.snapshot.verify_refs(git, &allowed).await.err(),
        };
        let Some(err) = tampered else { return Ok(()) };
        tracing::error!(job = %s.job_id, repo = %s.repo.display(), error = format!("{err:#}"), "the job changed the repository's git metadata; restoring it");
        if let Err(e) = s.snapshot.restore(git).await {
            tracing::error!(job = %s.job_id, repo = %s.repo.display(), error = format!("{e:#}"), "restoring the git metadata failed");
            self.roll_back(s).await;
            return Err(err.context(format!("{e:#}")));
        }
        self.roll_back(s).await;
        Err(err)
    }

    /// The success path of `complete`; sets `pushed` once the branch is on the remote.
    async fn finish(&self, s: &GitSession, job_id: &str, dry_run: bool, pushed: &mut bool) -> anyhow::Result<GitInfo> {
        let git = &self.shared.git;
        let repo = s.repo.as_path();
        git.run(repo, &["add", "-A"]).await.context("staging the job's changes")?;
        let diff = git
            .output(repo, &["diff", "--cached", "--quiet", "--no-ext-diff", "--no-textconv"])
            .await
            .context("checking for staged changes")?;
        let changed = match diff.status.code() {
            Some(0) => false,
            Some(1) => true,
            _ => bail!("git diff --cached failed ({}): {}", diff.status, diff.stderr),
        };
        let original_name = s.original.name().to_string();
        if !changed {
            self.restore(s).await?;
            git.run(repo, &["branch", "-D", &s.branch])
                .await
                .with_context(|| format!("deleting job branch {}", s.branch))?;
            tracing::info!(job = job_id, "job changed nothing; job branch removed");
            return Ok(GitInfo { original_branch: Some(original_name), ..GitInfo::default() });
        }

        // --no-renames: a rename lists both the removed and the added path.
        let names = git
            .run(repo, &["diff", "--cached", "--name-only", "--no-renames", "--no-ext-diff", "-z"])
            .await
            .context("listing changed files")?;
        let files: Vec<String> = names.split('\0').filter(|n| !n.is_empty()).map(str::to_string).collect();
        let title = match s.commit_title.trim() {
            "" => format!("{}: automated changes", s.pipeline_id),
            t => t.to_string(),
        };
        let body = format!("Job ID: {job_id}\nFiles changed: {}", files.len());
        // The identity recorded before the job ran, whatever the config says now.
        let name = format!("user.name={}", s.identity.0);
        let email = format!("user.email={}", s.identity.1);
        let args =
            ["-c", &name, "-c", &email, "commit", "--quiet", "--no-verify", "--no-gpg-sign", "-m", &title, "-m", &body];
        let reuse = match &s.previous {
            Some(previous) => resume::reusable(git, repo, previous).await?.then_some(previous),
            None => None,
        };
        if let Some(previous) = reuse {
            // The same change an interrupted attempt already committed (and maybe pushed).
            git.run(repo, &["reset", "--soft", "--quiet", previous]).await.context("reusing the earlier job commit")?;
            tracing::info!(job = job_id, branch = %s.branch, commit = %previous, "reusing the job commit of an interrupted attempt");
        } else {
            git.run(repo, &args).await.context("committing the job's changes")?;
        }
        let sha = git.run(repo, &["rev-parse", "HEAD"]).await.context("reading the job commit")?.trim().to_string();

        // Back to the user's branch before touching the remote; the job branch keeps the commit.
        self.restore(s).await?;
        failpoints::hit(failpoints::COMMITTED);
        let mut info = GitInfo {
            branch_name: Some(s.branch.clone()),
            original_branch: Some(original_name),
            commit_sha: Some(sha.clone()),
            pr_url: None,
            changed_files: files,
        };
        if dry_run {
            tracing::info!(job = job_id, branch = %s.branch, "dry run: committed locally, nothing pushed");
            return Ok(info);
        }

        let remote = self.shared.remote.as_str();
        if remote.is_empty() || remote.starts_with('-') {
            bail!("invalid git remote name {remote:?}");
        }
        // The URL recorded before the job: neither a changed remote nor a push refspec
        // written since decides where this goes. (The URL is not quoted: it may hold a token.)
        let Some(url) = s.push_url.as_deref() else {
            bail!("the repository had no remote {remote:?} before the job; nothing pushed");
        };
        let refspec = format!("refs/heads/{0}:refs/heads/{0}", s.branch);
        match resume::remote_commit(git, repo, url, &s.branch).await? {
            // An interrupted attempt pushed this very commit: pushing again would change nothing.
            Some(there) if there == sha => {
                tracing::info!(job = job_id, branch = %s.branch, "the remote already has the job commit; not pushed again");
            }
            // An interrupted attempt pushed another commit to the job's own branch: replace it,
            // but only if it is still what we saw.
            Some(there) => {
                let lease = format!("--force-with-lease=refs/heads/{}:{there}", s.branch);
                git.run(repo, &["push", "--quiet", "--no-verify", &lease, url, &refspec]).await.with_context(|| {
                    format!("pushing {} to {remote} over an interrupted attempt's commit", s.branch)
                })?;
            }
            None => {
                git.run(repo, &["push", "--quiet", "--no-verify", url, &refspec])
                    .await
                    .with_context(|| format!("pushing {} to {remote}", s.branch))?;
            }
        }
        *pushed = true;
        failpoints::hit(failpoints::PUSHED);

        if let Some(forge) = &self.shared.forge {
            let Original::Branch(base) = &s.original else {
                // A pull request needs a base branch; the pushed branch is still reported.
                tracing::warn!(job = job_id, branch = %s.branch, "job started on a detached HEAD; no pull request opened");
                return Ok(info);
            };
            let url = s.fetch_url.as_deref().unwrap_or(url);
            // The URL is not quoted in the error: it may carry credentials.
            let (owner, name) = forge::owner_and_repo(url)
                .with_context(|| format!("cannot tell owner/repository from the URL of remote {remote}"))?;
            let pr_body = pr_body(s.description.as_deref(), &body, &info.changed_files);
            let pr = PullRequest { title: &title, head: &s.branch, base, body: &pr_body };
            // An interrupted attempt may have opened it already: look it up by branch first.
            // (The crash-point suite switches the lookup off to prove it would see a duplicate.)
            let existing = if failpoints::broken("ALEPHAUTO_TEST_BREAK_PR_LOOKUP") {
                None
            } else {
                forge.find_pull_request(&owner, &name, &s.branch).await?
            };
            let pr_url = match existing {
                Some(url) => {
                    tracing::info!(job = job_id, branch = %s.branch, pr = %url, "pull request already open for the job branch");
                    url
                }
                None => {
                    let url = forge.open_pull_request(&owner, &name, &pr).await?;
                    tracing::info!(job = job_id, branch = %s.branch, pr = %url, "pull request opened");
                    url
                }
            };
            failpoints::hit(failpoints::PR_OPENED);
            info.pr_url = Some(pr_url);
        }
        Ok(info)
    }

    /// Puts the work tree back as it was before the job; logs what fails.
    async fn roll_back(&self, s: &GitSession) {
        let git = &self.shared.git;
        let repo = s.repo.as_path();
        let head = git.run(repo, &["rev-parse", "--abbrev-ref", "HEAD"]).await;
        // Unless HEAD is known to be elsewhere, discard what the job left in the tree.
        let on_job_branch = head.as_ref().map_or(true, |h| h.trim() == s.branch);
        if on_job_branch {
            log_failure(s, "discarding changes", git.run(repo, &["reset", "--hard", "--quiet"]).await);
            // No -x: ignored files (build output, local config) stay.
            log_failure(s, "removing untracked files", git.run(repo, &["clean", "-fd", "--quiet"]).await);
        }
        log_failure(s, "restoring the original branch", self.restore(s).await);
        let branch_ref = format!("refs/heads/{}", s.branch);
        let exists = git.output(repo, &["show-ref", "--verify", "--quiet", &branch_ref]).await;
        if exists.map_or(true, |o| o.status.success()) {
            log_failure(s, "deleting the job branch", git.run(repo, &["branch", "-D", &s.branch]).await);
        }
    }

    /// Checks out the branch (or detached commit) the job started from.
    async fn restore(&self, s: &GitSession) -> anyhow::Result<()> {
        let args: Vec<&str> = match &s.original {
            Original::Branch(b) => vec!["switch", "--quiet", "--no-guess", b],
            Original::Detached(sha) => vec!["switch", "--quiet", "--detach", sha],
        };
        self.shared
            .git
            .run(&s.repo, &args)
            .await
            .with_context(|| format!("switching back to {}", s.original.name()))?;
        Ok(())
    }

    /// Removes a pushed job branch from the remote; logs what fails.
    async fn delete_remote_branch(&self, s: &GitSession) {
        let Some(url) = s.push_url.as_deref() else { return };
        let res = self.shared.git.run(&s.repo, &["push", "--quiet", "--no-verify", url, "--delete", &s.branch]).await;
        log_failure(s, "deleting the pushed job branch", res);
    }

    /// The URL `git remote get-url` prints with `args`; none when the remote is not set.
    async fn remote_url(&self, repo: &Path, args: &[&str]) -> Option<String> {
        let out = self.shared.git.output(repo, args).await.ok()?;
        out.status.success().then(|| out.stdout.trim().to_string())
    }

    /// `key`'s non-empty value in the repository's effective git config.
    async fn configured(&self, repo: &Path, key: &str) -> Option<String> {
        let out = self.shared.git.output(repo, &["config", "--get", key]).await.ok()?;
        let value = out.stdout.trim();
        (out.status.success() && !value.is_empty()).then(|| value.to_string())
    }

    /// The lock for `repo`, waiting while another job holds it.
    async fn lock(&self, repo: &Path) -> OwnedMutexGuard<()> {
        let mutex = {
            let mut locks = self.shared.locks.lock().unwrap_or_else(PoisonError::into_inner);
            // Entries nobody holds or waits for are only the map's; drop them.
            locks.retain(|_, m| Arc::strong_count(m) > 1);
            locks.entry(repo.to_path_buf()).or_default().clone()
        };
        mutex.lock_owned().await
    }
}

/// The job failure code for a workflow error: `SECURITY` when the job changed the git
/// metadata or the repository's own config names a program, else `GIT_WORKFLOW_FAILED`.
pub fn failure_code(err: &anyhow::Error) -> FailureCode {
    if err.downcast_ref::<Tampered>().is_some() || err.downcast_ref::<Unsafe>().is_some() {
        FailureCode::Security
    } else {
        FailureCode::GitWorkflowFailed
    }
}

/// Logs a failed cleanup step; cleanup carries on.
fn log_failure<T>(s: &GitSession, step: &str, res: anyhow::Result<T>) {
    if let Err(e) = res {
        tracing::error!(job = %s.job_id, repo = %s.repo.display(), branch = %s.branch, error = format!("{e:#}"), "{step} failed");
    }
}

/// The pull request description: the job's description, the commit body, the files.
fn pr_body(description: Option<&str>, commit_body: &str, files: &[String]) -> String {
    let mut body = String::new();
    if let Some(d) = description.map(str::trim).filter(|d| !d.is_empty()) {
        body.push_str(d);
        body.push_str("\n\n");
    }
    body.push_str(commit_body);
    body.push_str("\n\n");
    for f in files.iter().take(PR_FILES_LISTED) {
        body.push_str(&format!("- `{f}`\n"));
    }
    if files.len() > PR_FILES_LISTED {
        body.push_str(&format!("- … and {} more\n", files.len() - PR_FILES_LISTED));
    }
    body
}
