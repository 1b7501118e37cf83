//! The `git` capability: read-only queries on repositories inside the job's grants.
//!
//! Queries run in-process with gitoxide (`gix`) on a blocking thread, never through the git
//! CLI: a guest can write a repository's config, and no setting it writes (fsmonitor, hooks,
//! filter drivers, textconv, external diff, includes, pagers...) may start a program on the
//! host. `confine` finds and opens the repository and checks that everything it would read
//! lies inside the grants; `query` computes the answers. Each call is bounded by a timeout
//! (the blocking work is told to stop and abandoned) and by a cap on the answer's size.

mod confine;
mod query;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::sandbox::HostState;
use crate::sandbox::bindings::git::{self as wit, Commit, GitError, StatusEntry};
use crate::sandbox::grants::Grant;

use self::confine::Scope;

/// The git capability's configuration (the same for every job).
#[derive(Debug, Clone)]
pub struct GitSettings {
    /// How long one query may take.
    pub timeout: Duration,
    /// Bytes an answer may hold before the call fails as too large.
    pub max_output: usize,
    /// Folders no queried repository may live in or point into (the server's data folder,
    /// which holds every job's output folder); canonicalised when a query starts.
    pub forbidden: Vec<PathBuf>,
}

impl Default for GitSettings {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(30), max_output: 16 << 20, forbidden: Vec::new() }
    }
}

/// Entries of a repository's git folders checked at most before a query is refused.
const WALK_BUDGET: usize = 1_000_000;

/// What the blocking side of one query needs: its interrupt flag and limits.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    /// Set when the caller stopped waiting; the work ends at its next check.
    pub(crate) interrupt: Arc<AtomicBool>,
    /// Bytes an answer may hold.
    pub(crate) max_output: usize,
    /// Git-folder entries `confine` may still check.
    pub(crate) walk_budget: usize,
}

impl Ctx {
    /// A fresh context for one query.
    pub(crate) fn new(max_output: usize) -> Self {
        Self { interrupt: Arc::new(AtomicBool::new(false)), max_output, walk_budget: WALK_BUDGET }
    }

    /// `timeout` once the caller gave up.
    pub(crate) fn check(&self) -> Result<(), GitError> {
        if self.interrupt.load(Ordering::Relaxed) {
            Err(GitError::Timeout("the git query was abandoned after the timeout".into()))
        } else {
            Ok(())
        }
    }

    /// A running count of an answer's bytes.
    pub(crate) fn output(&self) -> OutputSize {
        OutputSize { used: 0, cap: self.max_output }
    }
}

/// Bytes of an answer so far, against the cap.
pub(crate) struct OutputSize {
    used: usize,
    cap: usize,
}

impl OutputSize {
    /// Counts `n` more bytes; `too-large` past the cap.
    pub(crate) fn add(&mut self, n: usize) -> Result<(), GitError> {
        self.used = self.used.saturating_add(n);
        if self.used > self.cap {
            Err(GitError::TooLarge(format!("the answer exceeds {} bytes", self.cap)))
        } else {
            Ok(())
        }
    }
}

/// One job's view of the capability, copied out of the store so no `&HostState` is held
/// across an await (the WASI context is not `Sync`).
#[derive(Debug, Clone)]
pub(crate) struct Query {
    scope: Scope,
    timeout: Duration,
    max_output: usize,
}

impl Query {
    /// The query context for a job with `grants` under `settings`.
    pub(crate) fn new(grants: &[Grant], settings: &GitSettings) -> Self {
        // The output folder is writable by the guest and never a repository to query.
        let (output, granted): (Vec<&Grant>, Vec<&Grant>) = grants.iter().partition(|g| g.param == "output");
        let canonical = |p: &PathBuf| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
        let mut forbidden: Vec<PathBuf> = output.iter().map(|g| canonical(&g.dir)).collect();
        forbidden.extend(settings.forbidden.iter().map(canonical));
        Self {
            scope: Scope { allowed: granted.iter().map(|g| g.dir.clone()).collect(), forbidden },
            timeout: settings.timeout,
            max_output: settings.max_output,
        }
    }

    fn of(state: &HostState) -> Self {
        Self::new(&state.grants, &state.git)
    }

    /// Opens the repository at `path` confined and runs `f` on a blocking thread, bounded by
    /// the timeout; on timeout the work is told to stop and abandoned.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        path: &str,
        f: impl FnOnce(&gix::Repository, &std::path::Path, &Ctx) -> Result<T, GitError> + Send + 'static,
    ) -> Result<T, GitError> {
        let start = self.scope.request(path)?;
        let scope = self.scope.clone();
        let ctx = Ctx::new(self.max_output);
        let interrupt = ctx.interrupt.clone();
        let task = tokio::task::spawn_blocking(move || {
            let repo = scope.open(&start, &ctx)?;
            f(&repo, &start, &ctx)
        });
        match tokio::time::timeout(self.timeout, task).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "git query task failed");
                Err(GitError::Failed("the git query failed unexpectedly".into()))
            }
            Err(_) => {
                interrupt.store(true, Ordering::Relaxed);
                Err(GitError::Timeout(format!("the git query took longer than {:?}", self.timeout)))
            }
        }
    }
}

impl wit::Host for HostState {
    async fn current_branch(&mut self, repo: String) -> wasmtime::Result<Result<String, GitError>> {
        Ok(Query::of(self).run(&repo, |r, _, _| query::current_branch(r)).await)
    }

    async fn status(&mut self, repo: String) -> wasmtime::Result<Result<Vec<StatusEntry>, GitError>> {
        let out = Query::of(self).run(&repo, |r, _, ctx| query::status(r, ctx)).await;
        Ok(out.map(|entries| entries.into_iter().map(|(code, path)| StatusEntry { code, path }).collect()))
    }

    async fn log(&mut self, repo: String, since: i64, until: i64) -> wasmtime::Result<Result<Vec<Commit>, GitError>> {
        Ok(Query::of(self).run(&repo, move |r, _, ctx| query::log(r, since, until, ctx)).await)
    }

    async fn tracked_files(&mut self, repo: String) -> wasmtime::Result<Result<Vec<String>, GitError>> {
        Ok(Query::of(self).run(&repo, query::tracked_files).await)
    }

    async fn remote_url(&mut self, repo: String, remote: String) -> wasmtime::Result<Result<Option<String>, GitError>> {
        if remote.is_empty() || remote.starts_with('-') {
            return Ok(Err(GitError::Failed(format!("invalid remote name {remote:?}"))));
        }
        Ok(Query::of(self).run(&repo, move |r, _, _| query::remote_url(r, &remote)).await)
    }

    async fn toplevel(&mut self, path: String) -> wasmtime::Result<Result<String, GitError>> {
        Ok(Query::of(self).run(&path, |r, _, _| query::toplevel(r)).await)
    }
}
