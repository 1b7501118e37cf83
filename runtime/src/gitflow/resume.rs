//! Re-running a job whose earlier attempt died between its git steps (a crash, a SIGKILL).
//!
//! The job branch is named from the job id, so every attempt of one job works on the same
//! branch and can find what an earlier one left: the branch still checked out (the process
//! died before switching back), a job commit on it (died before or after the push), the
//! branch on the remote, a pull request for it. Each effect is looked up before it is made
//! again, so a job pushes one branch with one commit and opens one pull request however often
//! it is re-run (`tests/e2e/crash.rs` kills the process at every step and checks that).

use std::path::Path;

use anyhow::Context;

use crate::gitcli::Git;

/// Puts back a work tree an earlier attempt of this job left on `branch`: discards what that
/// attempt changed and switches to the branch it started from (HEAD's reflog, `@{-1}`).
/// Returns the commit `branch` holds afterwards, if it exists: an earlier attempt's job
/// commit that the re-run may reuse ([`reusable`]).
pub(super) async fn clear_interrupted(
    git: &Git,
    repo: &Path,
    job_id: &str,
    branch: &str,
) -> anyhow::Result<Option<String>> {
    let head = git.run(repo, &["rev-parse", "--abbrev-ref", "HEAD"]).await.context("reading the current branch")?;
    if head.trim() == branch {
        tracing::warn!(job = job_id, repo = %repo.display(), branch, "an earlier attempt of this job was interrupted on its branch; discarding its changes");
        git.run(repo, &["reset", "--hard", "--quiet"]).await.context("discarding an interrupted attempt's changes")?;
        git.run(repo, &["clean", "-fd", "--quiet"]).await.context("removing an interrupted attempt's files")?;
        // Where `switch -c` came from; a branch name, else the detached commit.
        let from = git
            .run(repo, &["rev-parse", "--symbolic-full-name", "@{-1}"])
            .await
            .context("finding the branch an interrupted attempt started from")?;
        let from = from.trim();
        let args: Vec<&str> = match from.strip_prefix("refs/heads/") {
            Some(name) if name != branch => vec!["switch", "--quiet", "--no-guess", name],
            _ => {
                let sha = git.run(repo, &["rev-parse", "--verify", "--quiet", "@{-1}^{commit}"]).await;
                let sha = sha.context("finding the commit an interrupted attempt started from")?;
                return switch_detached(git, repo, branch, sha.trim()).await;
            }
        };
        git.run(repo, &args).await.with_context(|| format!("switching back to {from}"))?;
    }
    commit_of(git, repo, branch).await
}

/// Detaches HEAD at `sha` and returns `branch`'s commit.
async fn switch_detached(git: &Git, repo: &Path, branch: &str, sha: &str) -> anyhow::Result<Option<String>> {
    git.run(repo, &["switch", "--quiet", "--detach", sha]).await.with_context(|| format!("switching back to {sha}"))?;
    commit_of(git, repo, branch).await
}

/// The commit `refs/heads/<branch>` points at, if the branch exists.
async fn commit_of(git: &Git, repo: &Path, branch: &str) -> anyhow::Result<Option<String>> {
    let full = format!("refs/heads/{branch}^{{commit}}");
    let out = git.output(repo, &["rev-parse", "--verify", "--quiet", &full]).await?;
    Ok(out.status.success().then(|| out.stdout.trim().to_string()).filter(|s| !s.is_empty()))
}

/// True when `previous` (an earlier attempt's job commit) holds exactly the staged tree on
/// top of the current HEAD: committing again would make the same change under another sha.
pub(super) async fn reusable(git: &Git, repo: &Path, previous: &str) -> anyhow::Result<bool> {
    let tree = git.run(repo, &["write-tree"]).await.context("writing the staged tree")?;
    let head = git.run(repo, &["rev-parse", "HEAD"]).await.context("reading HEAD")?;
    let old_tree = git.output(repo, &["rev-parse", "--verify", "--quiet", &format!("{previous}^{{tree}}")]).await?;
    let old_parent = git.output(repo, &["rev-parse", "--verify", "--quiet", &format!("{previous}^")]).await?;
    Ok(old_tree.status.success()
        && old_parent.status.success()
        && old_tree.stdout.trim() == tree.trim()
        && old_parent.stdout.trim() == head.trim())
}

/// The commit the remote at `url` has for `branch`, if any.
pub(super) async fn remote_commit(git: &Git, repo: &Path, url: &str, branch: &str) -> anyhow::Result<Option<String>> {
    let refname = format!("refs/heads/{branch}");
    let out = git
        .run(repo, &["ls-remote", "--heads", url, &refname])
        .await
        .with_context(|| format!("asking the remote for {branch}"))?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .find(|(_, name)| *name == refname)
        .map(|(sha, _)| sha.to_string()))
}
