//! Repository discovery and the idempotent `.gitignore` edit.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use alephauto_guest::{JobError, Level, Reporter, ResultExt};
use serde::Serialize;

const COMMENT: &str = "# Repomix output files";

/// What happened to one repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The entry was appended.
    Added,
    /// The entry was already there.
    Skipped,
    /// Dry run: the entry would be appended.
    WouldAdd,
    /// The repository could not be handled.
    Error,
}

/// One repository's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct RepoResult {
    /// Folder name.
    pub repository: String,
    /// Absolute path.
    pub path: String,
    /// What happened.
    pub action: Action,
    /// Why.
    pub reason: String,
}

/// Counts per action.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Entries appended.
    pub added: usize,
    /// Already present.
    pub skipped: usize,
    /// Would be appended (dry run).
    pub would_add: usize,
    /// Failures.
    pub error: usize,
}

/// The job result.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// Repositories handled.
    pub total_repositories: usize,
    /// One per repository.
    pub results: Vec<RepoResult>,
    /// Counts per action.
    pub summary: Summary,
    /// Whether nothing was written on purpose.
    pub dry_run: bool,
    /// The entry ensured.
    pub gitignore_entry: String,
}

/// Finds git work trees under `base` (itself included), not descending into one once found,
/// skipping dot folders, `exclude` names and symlinks, to `max_depth` levels below `base`.
pub fn discover(base: &Path, max_depth: usize, exclude: &[String], r: &dyn Reporter) -> Result<Vec<PathBuf>, JobError> {
    if !base.is_dir() {
        return Err(JobError::invalid("baseDir", format!("{} is not a directory", base.display())));
    }
    let mut found = Vec::new();
    let mut stack = vec![(base.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        r.check_cancelled()?;
        if dir.join(".git").symlink_metadata().is_ok() {
            found.push(dir);
            continue;
        }
        if depth >= max_depth {
            continue;
        }
        let entries = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if depth == 0 => return Err(e).or_fail(format!("reading {}", dir.display())),
            Err(e) => {
                r.log(Level::Warn, &format!("skipping unreadable {}: {e}", dir.display()));
                continue;
            }
        };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_real_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if is_real_dir && !name.starts_with('.') && !exclude.contains(&name) {
                stack.push((entry.path(), depth + 1));
            }
        }
    }
    found.sort();
    Ok(found)
}

/// True when a line of `content` already ignores `entry` (`entry`, `/entry` or `**/entry`).
fn has_entry(content: &str, entry: &str) -> bool {
    let bare = entry.trim_start_matches('/');
    content
        .lines()
        .map(str::trim)
        .any(|l| l == entry || l == bare || l == format!("/{bare}") || l == format!("**/{bare}"))
}

/// Ensures `entry` in `repo/.gitignore`; never writes through a symlinked `.gitignore`.
pub fn ensure_entry(repo: &Path, entry: &str, dry_run: bool) -> io::Result<(Action, String)> {
    if !repo.is_dir() {
        return Err(io::Error::new(io::ErrorKind::NotFound, "repository folder not found"));
    }
    let path = repo.join(".gitignore");
    let content = match fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(io::Error::other(".gitignore is a symbolic link; not followed"));
        }
        Ok(_) => fs::read_to_string(&path)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    if has_entry(&content, entry) {
        return Ok((Action::Skipped, "Entry already present".into()));
    }
    if dry_run {
        return Ok((Action::WouldAdd, "Would add entry (dry run)".into()));
    }
    let mut addition = String::new();
    if !content.is_empty() {
        if !content.ends_with('\n') {
            addition.push('\n');
        }
        addition.push('\n');
    }
    addition.push_str(COMMENT);
    addition.push('\n');
    addition.push_str(entry);
    addition.push('\n');
    let mut file = fs::OpenOptions::new().create(true).append(true).open(&path)?;
    io::Write::write_all(&mut file, addition.as_bytes())?;
    Ok((Action::Added, if content.is_empty() { "Created .gitignore with entry" } else { "Entry added" }.into()))
}

/// Ensures the entry in every repository; one failure does not stop the rest.
pub fn manage(repos: &[PathBuf], entry: &str, dry_run: bool, r: &dyn Reporter) -> Outcome {
    let mut results = Vec::with_capacity(repos.len());
    let mut summary = Summary::default();
    for (n, repo) in repos.iter().enumerate() {
        let (action, reason) = match ensure_entry(repo, entry, dry_run) {
            Ok(done) => done,
            Err(e) => {
                r.log(Level::Warn, &format!("{}: {e}", repo.display()));
                (Action::Error, e.to_string())
            }
        };
        *match action {
            Action::Added => &mut summary.added,
            Action::Skipped => &mut summary.skipped,
            Action::WouldAdd => &mut summary.would_add,
            Action::Error => &mut summary.error,
        } += 1;
        let name = repo.file_name().map_or_else(|| repo.to_string_lossy(), |n| n.to_string_lossy()).into_owned();
        results.push(RepoResult { repository: name, path: repo.to_string_lossy().into_owned(), action, reason });
        let pct = 10 + (89 * (n + 1) / repos.len().max(1)) as u8;
        r.progress(pct, &format!("{} / {} repositories", n + 1, repos.len()));
    }
    r.progress(100, "done");
    Outcome { total_repositories: repos.len(), results, summary, dry_run, gitignore_entry: entry.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alephauto_guest::Silent;

    fn repo(root: &Path, rel: &str) -> PathBuf {
        let p = root.join(rel);
        fs::create_dir_all(p.join(".git")).expect("mkdir");
        p
    }

    #[test]
    fn discovery_stops_at_repos_and_skips_excluded_dot_and_deep_folders() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let a = repo(root, "a");
        repo(root, "a/nested");
        let b = repo(root, "group/b");
        repo(root, "vendor/c");
        repo(root, ".hidden/d");
        repo(root, "x/y/z/deep");
        let found = discover(root, 2, &["vendor".to_owned()], &Silent).expect("discover");
        assert_eq!(found, vec![a, b]);
        assert_eq!(discover(root, 10, &[], &Silent).expect("discover").len(), 4);
    }

    #[test]
    fn adds_once_and_is_idempotent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r1 = repo(dir.path(), "r1");
        fs::write(r1.join(".gitignore"), "node_modules/").expect("write");
        let r2 = repo(dir.path(), "r2");
        let repos = vec![r1.clone(), r2.clone()];

        let first = manage(&repos, "repomix-output.xml", false, &Silent);
        assert_eq!(first.summary.added, 2);
        assert_eq!(
            fs::read_to_string(r1.join(".gitignore")).expect("read"),
            "node_modules/\n\n# Repomix output files\nrepomix-output.xml\n"
        );
        assert_eq!(
            fs::read_to_string(r2.join(".gitignore")).expect("read"),
            "# Repomix output files\nrepomix-output.xml\n"
        );

        let before = fs::read_to_string(r1.join(".gitignore")).expect("read");
        let second = manage(&repos, "repomix-output.xml", false, &Silent);
        assert_eq!(second.summary.skipped, 2);
        assert_eq!(second.summary.added, 0);
        assert_eq!(fs::read_to_string(r1.join(".gitignore")).expect("read"), before);
    }

    #[test]
    fn dry_run_and_pattern_variants() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plain = repo(dir.path(), "plain");
        let anchored = repo(dir.path(), "anchored");
        fs::write(anchored.join(".gitignore"), "/repomix-output.xml\n").expect("write");
        let globbed = repo(dir.path(), "globbed");
        fs::write(globbed.join(".gitignore"), "x\n**/repomix-output.xml\n").expect("write");
        let missing = dir.path().join("gone");
        let out = manage(&[plain.clone(), anchored, globbed, missing], "repomix-output.xml", true, &Silent);
        let actions: Vec<Action> = out.results.iter().map(|r| r.action).collect();
        assert_eq!(actions, vec![Action::WouldAdd, Action::Skipped, Action::Skipped, Action::Error]);
        assert!(!plain.join(".gitignore").exists());
        assert_eq!(out.summary.error, 1);
    }
}
