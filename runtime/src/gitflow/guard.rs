//! What a guest must not change in a repository the git workflow runs in, and putting it
//! back when it did.
//!
//! A guest with a write grant on the work tree can write its `.git` folder: a config that
//! runs programs (fsmonitor, filters, hooks, an SSH command), hooks, alternates, a `.git`
//! file pointing at another repository, moved refs. Before the guest runs, `Snapshot::take`
//! records the git metadata (every file of the git folders except objects, refs, logs and
//! the index, with contents; alternates included) and every ref; after it ran, and before
//! any git command, `Snapshot::verify` compares. A difference fails the job with `SECURITY`
//! (`Tampered`), and `Snapshot::restore` puts the metadata and refs back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::gitcli::Git;

/// Bytes of metadata a snapshot keeps at most (hooks, config, info/...); a repository with
/// more is refused rather than left unguarded.
const MAX_SNAPSHOT_BYTES: u64 = 16 << 20;
/// Folder names under a git folder that hold data, not settings (at any depth).
const DATA_DIRS: &[&str] = &["objects", "refs", "logs", "rr-cache", "lfs"];
/// Files under a git folder that git itself rewrites as data during the workflow.
const DATA_FILES: &[&str] =
    &["index", "packed-refs", "COMMIT_EDITMSG", "ORIG_HEAD", "FETCH_HEAD", "AUTO_MERGE", "gitk.cache", "shallow.lock"];

/// The job changed the repository's git metadata: the job fails with `SECURITY`.
#[derive(Debug, thiserror::Error)]
#[error("the job changed the repository's git metadata ({0}); the repository was restored and nothing was pushed")]
pub struct Tampered(pub String);

/// A repository setting that could run a program or redirect git, found before the job ran.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unsafe(pub String);

/// One entry of the git metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    /// A file and its contents.
    File(Vec<u8>),
    /// A symbolic link and its target.
    Link(PathBuf),
    /// A folder.
    Dir,
}

/// The git metadata and refs of a repository at one moment.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    /// The work tree's `.git` entry: `None` for a folder, the text for a `.git` file.
    dot_git: Option<Vec<u8>>,
    /// Work tree root.
    top: PathBuf,
    /// The git folders (git dir, and the common dir when it differs) and what is in them.
    folders: Vec<(PathBuf, BTreeMap<PathBuf, Entry>)>,
    /// Every ref (`refs/...`) and the object it names.
    refs: BTreeMap<String, String>,
}

impl Snapshot {
    /// Records `top`'s metadata; `git_dirs` are its canonical git dir and common dir.
    pub async fn take(git: &Git, top: &Path, git_dirs: &[PathBuf]) -> anyhow::Result<Self> {
        let dot_git = dot_git(top)?;
        let mut folders = Vec::new();
        let mut budget = MAX_SNAPSHOT_BYTES;
        for dir in git_dirs {
            if folders.iter().any(|(d, _): &(PathBuf, _)| dir.starts_with(d)) {
                continue;
            }
            let mut entries = BTreeMap::new();
            scan(dir, Path::new(""), &mut entries, &mut budget)?;
            folders.push((dir.clone(), entries));
        }
        let refs = refs(git, top).await?;
        Ok(Self { dot_git, top: top.to_path_buf(), folders, refs })
    }

    /// Compares the metadata now with the snapshot, without running git.
    pub fn verify_metadata(&self) -> Result<(), Tampered> {
        let now = dot_git(&self.top).map_err(|e| Tampered(format!("{e:#}")))?;
        if now != self.dot_git {
            return Err(Tampered(format!("{} was replaced", self.top.join(".git").display())));
        }
        for (dir, before) in &self.folders {
            let mut after = BTreeMap::new();
            let mut budget = MAX_SNAPSHOT_BYTES * 2;
            scan(dir, Path::new(""), &mut after, &mut budget).map_err(|e| Tampered(format!("{e:#}")))?;
            if let Some(path) = first_difference(before, &after) {
                return Err(Tampered(format!("{} changed", dir.join(path).display())));
            }
        }
        Ok(())
    }

    /// Compares the refs now with the snapshot; run only once the metadata verified.
    pub async fn verify_refs(&self, git: &Git, allowed: &str) -> anyhow::Result<()> {
        let now = refs(git, &self.top).await?;
        // The job branch is the one ref the workflow itself moves (after this check).
        let changed =
            self.refs.keys().chain(now.keys()).find(|r| r.as_str() != allowed && self.refs.get(*r) != now.get(*r));
        if let Some(r) = changed {
            bail!(Tampered(format!("ref {r} was moved, created or deleted")));
        }
        if self.refs.get(allowed) != now.get(allowed) {
            bail!(Tampered(format!("the job branch {allowed} was moved")));
        }
        Ok(())
    }

    /// Puts the metadata back (files rewritten, added entries removed), then the refs.
    /// Errors are returned after every step was tried.
    pub async fn restore(&self, git: &Git) -> anyhow::Result<()> {
        let mut problems = Vec::new();
        let dot = self.top.join(".git");
        match (&self.dot_git, dot_git(&self.top)) {
            (Some(text), _) => {
                if let Err(e) = remove_any(&dot).and_then(|_| std::fs::write(&dot, text)) {
                    problems.push(format!("{}: {e}", dot.display()));
                }
            }
            (None, Ok(None)) => {}
            (None, _) => {
                problems.push(format!("{} is no longer the repository's folder and cannot be restored", dot.display()))
            }
        }
        for (dir, before) in &self.folders {
            if let Err(e) = restore_folder(dir, before) {
                problems.push(format!("{}: {e:#}", dir.display()));
            }
        }
        if problems.is_empty() {
            // The config is the recorded one again, so git runs as before the job.
            if let Err(e) = self.restore_refs(git).await {
                problems.push(format!("{e:#}"));
            }
        }
        if problems.is_empty() { Ok(()) } else { bail!("restoring the repository: {}", problems.join("; ")) }
    }

    async fn restore_refs(&self, git: &Git) -> anyhow::Result<()> {
        let now = refs(git, &self.top).await?;
        for (name, sha) in &self.refs {
            if now.get(name) != Some(sha) {
                git.run(&self.top, &["update-ref", "--no-deref", name, sha])
                    .await
                    .with_context(|| format!("restoring {name}"))?;
            }
        }
        for name in now.keys().filter(|n| !self.refs.contains_key(*n)) {
            git.run(&self.top, &["update-ref", "--no-deref", "-d", name])
                .await
                .with_context(|| format!("removing {name}"))?;
        }
        Ok(())
    }
}

/// The work tree's `.git`: `None` for a folder, the contents of a `.git` file.
fn dot_git(top: &Path) -> anyhow::Result<Option<Vec<u8>>> {
    let dot = top.join(".git");
    let meta = std::fs::symlink_metadata(&dot).with_context(|| format!("reading {}", dot.display()))?;
    if meta.is_dir() {
        Ok(None)
    } else if meta.is_file() {
        Ok(Some(std::fs::read(&dot).with_context(|| format!("reading {}", dot.display()))?))
    } else {
        bail!("{} is neither a folder nor a file", dot.display())
    }
}

/// Records `base/rel` recursively, skipping data folders and files.
fn scan(base: &Path, rel: &Path, out: &mut BTreeMap<PathBuf, Entry>, budget: &mut u64) -> anyhow::Result<()> {
    let dir = base.join(rel);
    let read = std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?;
    for entry in read {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let name = entry.file_name();
        let name_s = name.to_string_lossy();
        let path = rel.join(&name);
        let kind = entry.file_type().with_context(|| format!("reading {}", path.display()))?;
        if kind.is_dir() && DATA_DIRS.contains(&name_s.as_ref()) {
            // Alternates live among the objects and decide where objects are read from.
            if name_s == "objects" {
                for alt in ["info/alternates", "info/http-alternates"] {
                    let file = path.join(alt);
                    if let Some(e) = record(&base.join(&file), budget)? {
                        out.insert(file, e);
                    }
                }
            }
            continue;
        }
        if kind.is_file() && (DATA_FILES.contains(&name_s.as_ref()) || name_s.ends_with(".lock")) {
            continue;
        }
        if let Some(e) = record(&base.join(&path), budget)? {
            let is_dir = e == Entry::Dir;
            out.insert(path.clone(), e);
            if is_dir {
                scan(base, &path, out, budget)?;
            }
        }
    }
    Ok(())
}

/// One entry's kind and contents; None when it does not exist.
fn record(path: &Path, budget: &mut u64) -> anyhow::Result<Option<Entry>> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(None);
    };
    if meta.is_symlink() {
        return Ok(Some(Entry::Link(std::fs::read_link(path).with_context(|| format!("reading {}", path.display()))?)));
    }
    if meta.is_dir() {
        return Ok(Some(Entry::Dir));
    }
    if !meta.is_file() {
        bail!("{} is not a regular file, folder or link", path.display());
    }
    *budget = budget
        .checked_sub(meta.len())
        .with_context(|| format!("the git metadata is larger than {MAX_SNAPSHOT_BYTES} bytes"))?;
    Ok(Some(Entry::File(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?)))
}

/// The first path present in one map and not the other, or different.
fn first_difference<'a>(a: &'a BTreeMap<PathBuf, Entry>, b: &'a BTreeMap<PathBuf, Entry>) -> Option<&'a Path> {
    a.iter()
        .find(|(p, e)| b.get(*p) != Some(*e))
        .map(|(p, _)| p.as_path())
        .or_else(|| b.keys().find(|p| !a.contains_key(*p)).map(PathBuf::as_path))
}

/// Writes `before` back under `dir` and removes what was added.
fn restore_folder(dir: &Path, before: &BTreeMap<PathBuf, Entry>) -> anyhow::Result<()> {
    let mut now = BTreeMap::new();
    let mut budget = u64::MAX;
    scan(dir, Path::new(""), &mut now, &mut budget).or_else(|_| {
        // A planted FIFO or device: remove what is not recorded, entry by entry, below.
        now.clear();
        anyhow::Ok(())
    })?;
    // Deepest first, so a planted folder's contents go before it.
    for path in now.keys().rev().filter(|p| !before.contains_key(*p)) {
        remove_any(&dir.join(path)).with_context(|| format!("removing {}", path.display()))?;
    }
    for (path, entry) in before {
        let full = dir.join(path);
        let mut unlimited = u64::MAX;
        let current = record(&full, &mut unlimited).ok().flatten();
        if current.as_ref() == Some(entry) {
            continue;
        }
        match entry {
            Entry::Dir => {
                if current.is_some() {
                    remove_any(&full)?;
                }
                std::fs::create_dir_all(&full).with_context(|| format!("creating {}", full.display()))?;
            }
            Entry::File(data) => {
                remove_any(&full)?;
                if let Some(parent) = full.parent() {
                    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
                }
                std::fs::write(&full, data).with_context(|| format!("writing {}", full.display()))?;
            }
            Entry::Link(target) => {
                remove_any(&full)?;
                std::os::unix::fs::symlink(target, &full).with_context(|| format!("linking {}", full.display()))?;
            }
        }
    }
    Ok(())
}

/// Removes a file, link or folder (recursively); nothing when it is absent.
fn remove_any(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
    }
}

/// Every ref under `refs/` and the object it names.
async fn refs(git: &Git, top: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let out = git
        .run(top, &["for-each-ref", "--format=%(refname)%00%(objectname)"])
        .await
        .context("listing the repository's refs")?;
    Ok(out.lines().filter_map(|l| l.split_once('\0')).map(|(name, sha)| (name.to_string(), sha.to_string())).collect())
}

/// Repository-local config keys (lower case, `*` for any subsection) that make git run a
/// program, read another file, or work on another tree. The workflow refuses a repository
/// whose own config sets one: a guest of another pipeline with a write grant may have put it
/// there. Put such settings in the user's global config instead.
const UNSAFE_KEYS: &[&str] = &[
    "core.fsmonitor",
    "core.hookspath",
    "core.sshcommand",
    "core.askpass",
    "core.editor",
    "core.pager",
    "core.gitproxy",
    "core.worktree",
    "core.alternaterefscommand",
    "core.attributesfile",
    "core.excludesfile",
    "filter.*.clean",
    "filter.*.smudge",
    "filter.*.process",
    "diff.external",
    "diff.*.textconv",
    "diff.*.command",
    "merge.*.driver",
    "credential.helper",
    "credential.*.helper",
    "gpg.program",
    "gpg.*.program",
    "sequence.editor",
    "remote.*.receivepack",
    "remote.*.uploadpack",
    "remote.*.vcs",
    "include.path",
    "includeif.*.path",
];

/// Whether a `git config --list` key (section and name lower case) is in `UNSAFE_KEYS`.
pub(crate) fn unsafe_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    let (section, rest) = key.split_once('.').unwrap_or((&key, ""));
    let (sub, name) = match rest.rsplit_once('.') {
        Some((sub, name)) => (Some(sub), name),
        None => (None, rest),
    };
    if section == "pager" {
        return true;
    }
    UNSAFE_KEYS.iter().any(|pattern| {
        let mut parts = pattern.splitn(3, '.');
        let (ps, p2, p3) = (parts.next(), parts.next(), parts.next());
        match (ps, p2, p3, sub) {
            (Some(s), Some(n), None, None) => s == section && n == name,
            (Some(s), Some("*"), Some(n), Some(_)) => s == section && n == name,
            _ => false,
        }
    })
}

/// Refuses a repository whose own config files set a key in `UNSAFE_KEYS` (except
/// `core.fsmonitor=false`). Parses the files with `git config --file`, which runs nothing.
pub(crate) async fn check_config(git: &Git, top: &Path, common_dir: &Path, git_dir: &Path) -> anyhow::Result<()> {
    let mut files =
        vec![common_dir.join("config"), git_dir.join("config.worktree"), common_dir.join("config.worktree")];
    files.dedup();
    for file in files.iter().filter(|f| f.is_file()) {
        let path = file.to_string_lossy();
        let out = git
            .run(top, &["config", "--no-includes", "--file", &path, "--null", "--list"])
            .await
            .with_context(|| format!("reading {path}"))?;
        for item in out.split('\0').filter(|i| !i.is_empty()) {
            let (key, value) = item.split_once('\n').unwrap_or((item, ""));
            if key.eq_ignore_ascii_case("core.fsmonitor")
                && matches!(value.to_ascii_lowercase().as_str(), "false" | "no" | "off" | "0")
            {
                continue;
            }
            if unsafe_key(key) {
                bail!(Unsafe(format!(
                    "{path} sets {key}, which makes git run a program or read elsewhere; the git workflow refuses such a \
                     repository (a job may have planted it). Remove it, or set it in your global git config instead"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_keys_are_recognised() {
        for key in [
            "core.fsmonitor",
            "core.hooksPath",
            "filter.lfs.process",
            "diff.x.textconv",
            "pager.log",
            "includeIf.gitdir:/x/.path",
            "credential.https://h.helper",
        ] {
            assert!(unsafe_key(key), "{key}");
        }
        for key in ["user.name", "remote.origin.url", "filter.lfs.required", "core.bare", "branch.main.remote"] {
            assert!(!unsafe_key(key), "{key}");
        }
    }
}
