//! Discovery: the targets of an inventory's `discover` walk. Within budgets (depth, entries
//! visited, targets kept); a symbolic link is never followed nor taken as a target, so the
//! walk cannot leave its base; `.git` folders are never entered.

use std::path::{Path, PathBuf};

use anyhow::Context;
use walkdir::WalkDir;

use crate::config::{DiscoverConfig, TargetKind};

/// What a walk found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovered {
    /// Targets in walk order (sorted by name at each level).
    pub targets: Vec<PathBuf>,
    /// The walk stopped at `max_entries` or at the target cap.
    pub truncated: bool,
    /// Symbolic links met (and not followed).
    pub links_skipped: usize,
}

/// README file names a `readme` discovery takes (compared without case).
const README_NAMES: [&str; 3] = ["readme.md", "readme.markdown", "readme"];

fn is_readme(name: &str) -> bool {
    README_NAMES.iter().any(|n| name.eq_ignore_ascii_case(n))
}

/// True when `glob` (git wildmatch) matches the path relative to the base or the entry's name.
fn excluded(globs: &[String], rel: &Path, name: &str) -> bool {
    let rel = rel.to_string_lossy();
    globs.iter().any(|g| {
        let mode = gix_glob::wildmatch::Mode::empty();
        gix_glob::wildmatch(g.as_bytes().into(), rel.as_bytes().into(), mode)
            || gix_glob::wildmatch(g.as_bytes().into(), name.as_bytes().into(), mode)
    })
}

/// Walks `d.base` (blocking: call on a blocking thread) keeping at most `max_targets`.
pub fn discover(d: &DiscoverConfig, max_targets: usize) -> anyhow::Result<Discovered> {
    let base = std::fs::canonicalize(&d.base).with_context(|| format!("discovery base {}", d.base.display()))?;
    anyhow::ensure!(base.is_dir(), "discovery base {} is not a folder", base.display());
    let mut out = Discovered::default();
    let mut visited = 0usize;
    let mut walk =
        WalkDir::new(&base).follow_links(false).min_depth(1).max_depth(d.depth).sort_by_file_name().into_iter();
    while let Some(entry) = walk.next() {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                tracing::debug!(error = %e, "discovery skipped an unreadable entry");
                continue;
            }
        };
        visited += 1;
        if visited > d.max_entries {
            out.truncated = true;
            break;
        }
        let kind = entry.file_type();
        if kind.is_symlink() {
            out.links_skipped += 1;
            continue;
        }
        let name = entry.file_name().to_string_lossy();
        let rel = entry.path().strip_prefix(&base).unwrap_or(entry.path());
        if kind.is_dir() {
            if name == ".git" || excluded(&d.exclude, rel, &name) {
                walk.skip_current_dir();
                continue;
            }
            if d.targets == TargetKind::Folders {
                // `.git` as a folder (a work tree) or a file (a linked worktree / submodule).
                let is_repo = entry.path().join(".git").symlink_metadata().is_ok();
                if is_repo || !d.git_only {
                    out.targets.push(entry.path().to_path_buf());
                }
                if is_repo && d.git_only {
                    // A repository is one target: its nested folders are its own business.
                    walk.skip_current_dir();
                }
            }
        } else if kind.is_file()
            && d.targets == TargetKind::Readme
            && is_readme(&name)
            && !excluded(&d.exclude, rel, &name)
        {
            out.targets.push(entry.path().to_path_buf());
        }
        if out.targets.len() >= max_targets {
            out.truncated = walk.next().is_some();
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(root: &Path, dirs: &[&str], files: &[&str]) {
        for d in dirs {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        for f in files {
            std::fs::write(root.join(f), "x").unwrap();
        }
    }

    fn config(base: &Path) -> DiscoverConfig {
        DiscoverConfig { base: base.to_path_buf(), ..DiscoverConfig::default() }
    }

    #[test]
    fn finds_git_repositories_within_depth_and_skips_exclusions_and_links() {
        let t = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(t.path()).unwrap();
        tree(
            &root,
            &["a/.git", "b/.git", "b/inner/.git", "group/c/.git", "deep/x/y/.git", "plain", "skip-me/.git", "d"],
            &["d/.git"],
        );
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(outside.path().join("evil/.git")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("link")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("evil"), root.join("evil-repo")).unwrap();
        let mut d = config(&root);
        d.exclude = vec!["skip-*".into()];
        let found = discover(&d, 100).unwrap();
        let names: Vec<_> =
            found.targets.iter().map(|p| p.strip_prefix(&root).unwrap().display().to_string()).collect();
        assert_eq!(names, ["a", "b", "d", "group/c"]);
        assert_eq!(found.links_skipped, 2);
        assert!(!found.truncated);
        d.depth = 3;
        d.exclude.clear();
        let deeper = discover(&d, 100).unwrap().targets;
        assert!(deeper.contains(&root.join("deep/x/y")) && deeper.contains(&root.join("skip-me")), "{deeper:?}");
    }

    #[test]
    fn budgets_stop_the_walk_and_say_so() {
        let t = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(t.path()).unwrap();
        let dirs: Vec<String> = (0..20).map(|i| format!("r{i:02}/.git")).collect();
        tree(&root, &dirs.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
        let mut d = config(&root);
        let capped = discover(&d, 5).unwrap();
        assert_eq!(capped.targets.len(), 5);
        assert!(capped.truncated);
        d.max_entries = 3;
        let walked = discover(&d, 100).unwrap();
        assert!(walked.truncated);
        assert!(walked.targets.len() <= 3);
    }

    #[test]
    fn readme_targets_are_files_not_folders() {
        let t = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(t.path()).unwrap();
        tree(
            &root,
            &["p/docs", "node_modules/x", "q"],
            &["README.md", "p/readme.md", "p/docs/README.markdown", "node_modules/x/README.md", "q/notes.md"],
        );
        std::fs::create_dir_all(root.join("q/README.md")).unwrap();
        let mut d = config(&root);
        d.targets = TargetKind::Readme;
        d.depth = 4;
        d.exclude = vec!["node_modules".into()];
        let found: Vec<_> = discover(&d, 100)
            .unwrap()
            .targets
            .iter()
            .map(|p| p.strip_prefix(&root).unwrap().display().to_string())
            .collect();
        assert_eq!(found, ["README.md", "p/docs/README.markdown", "p/readme.md"]);
    }

    #[test]
    fn a_missing_base_is_an_error_naming_it() {
        let d = config(Path::new("/nonexistent/alephauto-base"));
        let err = discover(&d, 10).unwrap_err();
        assert!(format!("{err:#}").contains("/nonexistent/alephauto-base"), "{err:#}");
    }
}
