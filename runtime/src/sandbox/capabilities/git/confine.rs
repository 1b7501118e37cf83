//! Where a guest's git query may look: finding and opening a repository so that every
//! place git would read from lies inside the job's grants.
//!
//! A guest can write into its grants, so it can plant a `.git` file (`gitdir: /elsewhere`),
//! a `commondir`, `objects/info/alternates`, symbolic links inside the git dir, a config
//! with `core.worktree`, filter drivers, `core.fsmonitor`, includes... The repository is
//! opened in-process with gitoxide, isolated (no system, global or user config, no
//! environment, no includes, no git binary) and with *reduced trust*, so gitoxide reads no
//! repository-local setting that names a program or a path (filter drivers, `core.worktree`,
//! excludes and attributes files); nothing here ever starts a process. Then the git dir,
//! the common dir, the work tree, every alternate object folder and every symbolic link
//! inside the git folders must resolve inside the grants (and outside the job's output
//! folder and the server's data folder), or the query is `denied`.

use std::path::{Path, PathBuf};

use crate::sandbox::bindings::git::GitError;

use super::Ctx;

/// Alternates chains git follows at most (its own limit is 5).
const MAX_ALTERNATE_DEPTH: usize = 5;
/// Bytes of an `objects/info/alternates` file read at most.
const MAX_ALTERNATES_BYTES: u64 = 64 * 1024;

/// The folders a query may read and those it never may.
#[derive(Debug, Clone)]
pub(super) struct Scope {
    /// Canonical granted folders (not the output folder).
    pub allowed: Vec<PathBuf>,
    /// Canonical folders no repository may live in or point into: the job's output folder and
    /// the server's data folder.
    pub forbidden: Vec<PathBuf>,
}

impl Scope {
    /// Whether the canonical `path` is inside an allowed folder and outside every forbidden one.
    pub fn contains(&self, path: &Path) -> bool {
        self.allowed.iter().any(|g| path.starts_with(g)) && !self.forbidden.iter().any(|f| path.starts_with(f))
    }

    /// Canonicalises `path` and checks it; `what` names it in the refusal.
    fn confined(&self, what: &str, path: &Path) -> Result<PathBuf, GitError> {
        let canonical =
            std::fs::canonicalize(path).map_err(|e| GitError::Denied(format!("{what} {}: {e}", path.display())))?;
        if self.contains(&canonical) {
            Ok(canonical)
        } else {
            Err(GitError::Denied(format!(
                "{what} {} is outside the folders granted to this job (or in its output folder)",
                canonical.display()
            )))
        }
    }

    /// The canonical form of a path the guest named, if the job may query it.
    pub fn request(&self, raw: &str) -> Result<PathBuf, GitError> {
        let canonical = std::fs::canonicalize(raw).map_err(|e| GitError::Denied(format!("{raw}: {e}")))?;
        if self.contains(&canonical) {
            Ok(canonical)
        } else {
            Err(GitError::Denied(format!(
                "{raw} is outside the folders granted to this job (a job's output folder is never a repository it may query)"
            )))
        }
    }

    /// Finds the repository containing the canonical `start`, searching upwards no further
    /// than the outermost grant holding it, and opens it confined (see the module docs).
    ///
    /// The git folders are located and checked by hand *before* gitoxide opens anything:
    /// opening reads the config, HEAD and alternates, and a planted FIFO there would block
    /// the reading thread for good.
    pub fn open(&self, start: &Path, ctx: &Ctx) -> Result<gix::Repository, GitError> {
        let root = self.discover(start)?;
        let (git_dir, common_dir) = self.locate(&root)?;
        let mut budget = ctx.walk_budget;
        self.walk(&git_dir, ctx, &mut budget)?;
        if !common_dir.starts_with(&git_dir) {
            self.walk(&common_dir, ctx, &mut budget)?;
        }
        self.alternates(&common_dir.join("objects"), 0)?;
        let options = gix::open::Options::isolated()
            .with_enforced_trust(gix::sec::Trust::Reduced)
            // Spelled out rather than relying on the default: no repository-local section is
            // read for anything gitoxide treats as sensitive (programs, paths).
            .filter_config_section(|meta| meta.source.kind() != gix::config::source::Kind::Repository)
            .open_path_as_is(false);
        let repo =
            gix::open_opts(&root, options).map_err(|e| GitError::NotARepository(format!("{}: {e}", root.display())))?;
        // gitoxide must have settled on the folders checked above.
        if self.confined("git dir", repo.git_dir())? != git_dir
            || self.confined("common dir", repo.common_dir())? != common_dir
        {
            return Err(GitError::Denied(format!(
                "{} resolves to git folders other than the ones checked",
                root.display()
            )));
        }
        if let Some(work) = repo.workdir() {
            self.confined("work tree", work)?;
        }
        Ok(repo)
    }

    /// The canonical git dir and common dir of the repository at `root`, as git resolves
    /// them (a `.git` folder or `gitdir:` file, a `commondir` file; `root` itself when bare),
    /// each checked to lie inside the scope.
    fn locate(&self, root: &Path) -> Result<(PathBuf, PathBuf), GitError> {
        let dot = root.join(".git");
        let git_dir = match std::fs::symlink_metadata(&dot) {
            Ok(meta) if meta.is_file() => {
                let text = read_capped(&dot, 4096)?;
                let target = text
                    .trim_end()
                    .strip_prefix("gitdir:")
                    .map(str::trim)
                    .ok_or_else(|| GitError::NotARepository(format!("{} is not a gitdir file", dot.display())))?;
                self.confined("git dir", &root.join(target))?
            }
            Ok(_) => self.confined("git dir", &dot)?,
            Err(_) => self.confined("git dir", root)?,
        };
        let file = git_dir.join("commondir");
        let common_dir = match std::fs::symlink_metadata(&file) {
            Ok(meta) if meta.is_file() => {
                let text = read_capped(&file, 4096)?;
                self.confined("common dir", &git_dir.join(text.trim_end()))?
            }
            Ok(_) => {
                return Err(GitError::Denied(format!("{} is not a regular file", file.display())));
            }
            Err(_) => git_dir.clone(),
        };
        Ok((git_dir, common_dir))
    }

    /// The nearest folder at or above `start` holding `.git`, or being a bare repository.
    fn discover(&self, start: &Path) -> Result<PathBuf, GitError> {
        let top =
            self.allowed.iter().filter(|g| start.starts_with(g)).min_by_key(|g| g.components().count()).ok_or_else(
                || GitError::Denied(format!("{} is outside the folders granted to this job", start.display())),
            )?;
        let mut dir = if start.is_dir() { start } else { start.parent().unwrap_or(start) };
        loop {
            if std::fs::symlink_metadata(dir.join(".git")).is_ok() || looks_bare(dir) {
                return Ok(dir.to_path_buf());
            }
            if dir == top.as_path() {
                return Err(GitError::NotARepository(format!(
                    "{} is not inside a git work tree within the job's grants",
                    start.display()
                )));
            }
            dir = dir.parent().unwrap_or(top);
        }
    }

    /// Checks the alternate object folders listed under `objects`, recursively.
    fn alternates(&self, objects: &Path, depth: usize) -> Result<(), GitError> {
        let file = objects.join("info/alternates");
        let Ok(meta) = std::fs::symlink_metadata(&file) else {
            return Ok(());
        };
        if !meta.is_file() {
            // A FIFO would block the reader forever; a link is checked by the walk, but
            // reading through it here is not needed to answer anything.
            return Err(GitError::Denied(format!("{} is not a regular file", file.display())));
        }
        if depth >= MAX_ALTERNATE_DEPTH {
            return Err(GitError::Denied(format!(
                "alternates nested deeper than {MAX_ALTERNATE_DEPTH} at {}",
                file.display()
            )));
        }
        let text = read_capped(&file, MAX_ALTERNATES_BYTES)?;
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            // git resolves a relative alternate against the objects folder that lists it.
            let alt = self.confined("alternate object folder", &objects.join(line))?;
            self.alternates(&alt, depth + 1)?;
        }
        Ok(())
    }

    /// Walks a git folder: every symbolic link must resolve inside the scope, and nothing may
    /// be a FIFO, socket or device (a read would block or reach a device).
    fn walk(&self, dir: &Path, ctx: &Ctx, budget: &mut usize) -> Result<(), GitError> {
        let entries =
            std::fs::read_dir(dir).map_err(|e| GitError::Failed(format!("reading {}: {e}", dir.display())))?;
        for entry in entries {
            ctx.check()?;
            let entry = entry.map_err(|e| GitError::Failed(format!("reading {}: {e}", dir.display())))?;
            *budget = budget.checked_sub(1).ok_or_else(|| {
                GitError::TooLarge(format!("the git folder {} holds too many entries to check", dir.display()))
            })?;
            let path = entry.path();
            let kind = entry.file_type().map_err(|e| GitError::Failed(format!("{}: {e}", path.display())))?;
            if kind.is_symlink() {
                self.confined("symbolic link target of", &path)?;
            } else if kind.is_dir() {
                self.walk(&path, ctx, budget)?;
            } else if !kind.is_file() {
                return Err(GitError::Denied(format!("{} is not a regular file, folder or link", path.display())));
            }
        }
        Ok(())
    }
}

/// Whether `dir` is itself a git dir (a bare repository), as git decides it.
fn looks_bare(dir: &Path) -> bool {
    dir.join("HEAD").is_file() && dir.join("objects").is_dir() && dir.join("refs").is_dir()
}

/// Reads at most `cap` bytes of a small text file.
fn read_capped(path: &Path, cap: u64) -> Result<String, GitError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| GitError::Failed(format!("reading {}: {e}", path.display())))?;
    let mut text = String::new();
    file.take(cap)
        .read_to_string(&mut text)
        .map_err(|e| GitError::Failed(format!("reading {}: {e}", path.display())))?;
    Ok(text)
}
