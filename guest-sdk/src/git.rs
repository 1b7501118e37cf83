//! Typed wrappers over the host's read-only `git` interface.

use std::fmt;
use std::path::Path;

use crate::JobError;
use crate::bindings::alephauto::worker::git as wit;

/// Why a git query failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitError {
    /// The path is outside the job's grants.
    Denied(String),
    /// The path is not inside a git work tree.
    NotARepository(String),
    /// git did not answer within the host's timeout.
    Timeout(String),
    /// The output was larger than the host's cap.
    TooLarge(String),
    /// git exited with an error.
    Failed(String),
}

impl fmt::Display for GitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Denied(m) => write!(f, "git access denied: {m}"),
            Self::NotARepository(m) => write!(f, "not a git repository: {m}"),
            Self::Timeout(m) => write!(f, "git timed out: {m}"),
            Self::TooLarge(m) => write!(f, "git output too large: {m}"),
            Self::Failed(m) => write!(f, "git failed: {m}"),
        }
    }
}

impl std::error::Error for GitError {}

impl From<GitError> for JobError {
    fn from(e: GitError) -> Self {
        match e {
            GitError::Timeout(_) => JobError::Retryable(e.to_string()),
            _ => JobError::Failed(e.to_string()),
        }
    }
}

impl From<wit::GitError> for GitError {
    fn from(e: wit::GitError) -> Self {
        match e {
            wit::GitError::Denied(m) => Self::Denied(m),
            wit::GitError::NotARepository(m) => Self::NotARepository(m),
            wit::GitError::Timeout(m) => Self::Timeout(m),
            wit::GitError::TooLarge(m) => Self::TooLarge(m),
            wit::GitError::Failed(m) => Self::Failed(m),
        }
    }
}

/// One path in `git status --porcelain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusEntry {
    /// Two-letter porcelain code, e.g. ` M`, `??`.
    pub code: String,
    /// Path relative to the repository root.
    pub path: String,
}

/// Lines changed in one file by a commit; `None` for binary files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// Path relative to the repository root.
    pub path: String,
    /// Lines added.
    pub added: Option<u32>,
    /// Lines deleted.
    pub deleted: Option<u32>,
}

/// One commit from [`Git::log`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// Full hash.
    pub sha: String,
    /// Author name.
    pub author_name: String,
    /// Author e-mail.
    pub author_email: String,
    /// Author time, seconds since the Unix epoch.
    pub timestamp: i64,
    /// First line of the message.
    pub subject: String,
    /// Files changed, with numstat counts.
    pub files: Vec<FileChange>,
}

/// Handle on the host's git capability (see `Context::git`).
#[derive(Debug, Default, Clone, Copy)]
pub struct Git;

fn s(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

impl Git {
    /// Name of the checked-out branch (`HEAD` when detached).
    pub fn current_branch(&self, repo: &Path) -> Result<String, GitError> {
        wit::current_branch(&s(repo)).map_err(Into::into)
    }

    /// Work-tree status.
    pub fn status(&self, repo: &Path) -> Result<Vec<StatusEntry>, GitError> {
        let entries = wit::status(&s(repo))?;
        Ok(entries.into_iter().map(|e| StatusEntry { code: e.code, path: e.path }).collect())
    }

    /// Commits over all branches with author time in `[since, until)`, with numstat.
    pub fn log(&self, repo: &Path, since: i64, until: i64) -> Result<Vec<Commit>, GitError> {
        let commits = wit::log(&s(repo), since, until)?;
        Ok(commits
            .into_iter()
            .map(|c| Commit {
                sha: c.sha,
                author_name: c.author_name,
                author_email: c.author_email,
                timestamp: c.timestamp,
                subject: c.subject,
                files: c
                    .files
                    .into_iter()
                    .map(|f| FileChange { path: f.path, added: f.added, deleted: f.deleted })
                    .collect(),
            })
            .collect())
    }

    /// Paths tracked in the index.
    pub fn tracked_files(&self, repo: &Path) -> Result<Vec<String>, GitError> {
        wit::tracked_files(&s(repo)).map_err(Into::into)
    }

    /// URL of a remote, `None` when it is not set.
    pub fn remote_url(&self, repo: &Path, remote: &str) -> Result<Option<String>, GitError> {
        wit::remote_url(&s(repo), remote).map_err(Into::into)
    }

    /// Top of the work tree that contains `path`.
    pub fn toplevel(&self, path: &Path) -> Result<String, GitError> {
        wit::toplevel(&s(path)).map_err(Into::into)
    }
}
