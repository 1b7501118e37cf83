//! Finding and removing clutter.
//!
//! This walks with `std::fs` rather than the SDK's `Walker`: clutter is usually gitignored
//! (so `.gitignore` must not hide it), and a claimed folder must be listed but not entered.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use alephauto_guest::{JobError, Level, Reporter, ResultExt};
use serde::Serialize;

/// What kind of clutter an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Category {
    /// Python virtual environments (to depth 3, never inside node_modules).
    Venv,
    /// Editor, OS and bytecode leftovers, at any depth.
    TempFile,
    /// Logs and stray repomix output.
    OutputFile,
    /// Top-level build output and caches.
    BuildArtifact,
    /// Top-level folders such as `tmp`, `old`, `backup`.
    RedundantDir,
}

/// One path that is (or would be) removed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Item {
    /// Absolute path.
    pub path: String,
    /// Path relative to `targetDir`.
    pub relative_path: String,
    /// Why it is clutter.
    pub category: Category,
    /// `dir` or `file`.
    pub kind: &'static str,
    /// Bytes it holds (recursively; symlinks count their own size).
    pub size: u64,
    /// `removed`, `would_remove` or `error`.
    pub action: &'static str,
    /// Why removal failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Items per category.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Virtual environments.
    pub venvs: usize,
    /// Temporary files.
    pub temp_files: usize,
    /// Output files.
    pub output_files: usize,
    /// Build artifacts.
    pub build_artifacts: usize,
    /// Redundant folders.
    pub redundant_dirs: usize,
}

/// The job result.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// The cleaned folder.
    pub target_dir: String,
    /// Whether nothing was removed on purpose.
    pub dry_run: bool,
    /// Bytes under `targetDir` before.
    pub initial_size: u64,
    /// Bytes under `targetDir` after (equal to `initialSize` in a dry run).
    pub final_size: u64,
    /// Bytes actually freed.
    pub saved_space: u64,
    /// Bytes the listed items hold (what a real run would free).
    pub reclaimable_space: u64,
    /// Number of items found.
    pub total_items: usize,
    /// Items per category.
    pub summary: Summary,
    /// Every item, in walk order.
    pub items: Vec<Item>,
}

const VENV_NAMES: &[&str] = &["venv", ".venv", "env", "virtualenv"];
const TEMP_NAMES: &[&str] = &[".DS_Store", "Thumbs.db", "desktop.ini", "__pycache__"];
const TEMP_SUFFIXES: &[&str] = &[".pyc", ".pyo", ".swp", ".swo", "~"];
const OUTPUT_PREFIXES: &[&str] = &["npm-debug.log", "yarn-debug.log", "yarn-error.log"];
const BUILD_TOP: &[&str] = &[
    ".jekyll-cache",
    ".sass-cache",
    ".bundle",
    "dist",
    "build",
    ".next",
    ".nuxt",
    "out",
    ".output",
    "target",
    ".gradle",
];
const REDUNDANT_TOP: &[&str] = &["drafts", "temp", "tmp", "backup", "backups", "old", "archive", "deprecated"];

/// Classifies one path; `rel` uses `/`, `depth` is 1 for children of the root.
fn classify(rel: &str, name: &str, depth: usize, is_dir: bool, in_node_modules: bool) -> Option<Category> {
    if is_dir {
        if depth == 1 && BUILD_TOP.contains(&name) || rel == "node_modules/.cache" {
            return Some(Category::BuildArtifact);
        }
        if depth == 1 && REDUNDANT_TOP.contains(&name) {
            return Some(Category::RedundantDir);
        }
        if depth <= 3 && !in_node_modules && (VENV_NAMES.contains(&name) || name.ends_with(".venv")) {
            return Some(Category::Venv);
        }
        if name == "__pycache__" {
            return Some(Category::TempFile);
        }
        return None;
    }
    if TEMP_NAMES.contains(&name) || TEMP_SUFFIXES.iter().any(|s| name.ends_with(s)) {
        return Some(Category::TempFile);
    }
    if (name == "repomix-output.xml" && depth >= 2)
        || name.ends_with(".log")
        || OUTPUT_PREFIXES.iter().any(|p| name.starts_with(p))
    {
        return Some(Category::OutputFile);
    }
    None
}

/// Walks `root` without following symlinks; returns the clutter found and the tree's total size.
pub fn scan(root: &Path, reporter: &dyn Reporter) -> Result<(Vec<Item>, u64), JobError> {
    let mut items = Vec::new();
    let mut total = 0;
    let mut stack: Vec<(PathBuf, String, usize, bool)> = vec![(root.to_path_buf(), String::new(), 0, false)];
    let mut dirs_seen = 0usize;
    while let Some((dir, rel_dir, depth, in_nm)) = stack.pop() {
        dirs_seen += 1;
        if dirs_seen.is_multiple_of(256) {
            reporter.check_cancelled()?;
        }
        let mut entries: Vec<fs::DirEntry> = match fs::read_dir(&dir) {
            Ok(rd) => rd.filter_map(Result::ok).collect(),
            Err(e) if depth == 0 => return Err(e).or_fail(format!("reading {}", dir.display())),
            Err(e) => {
                reporter.log(Level::Warn, &format!("skipping unreadable {}: {e}", dir.display()));
                continue;
            }
        };
        entries.sort_by_key(fs::DirEntry::file_name);
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let rel = if rel_dir.is_empty() { name.clone() } else { format!("{rel_dir}/{name}") };
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            let child_depth = depth + 1;
            if meta.file_type().is_symlink() || !(meta.is_dir() || meta.is_file()) {
                total += meta.len();
                continue;
            }
            if name == ".git" {
                total += tree_size(&path);
                continue;
            }
            match classify(&rel, &name, child_depth, meta.is_dir(), in_nm) {
                Some(category) => {
                    let size = if meta.is_dir() { tree_size(&path) } else { meta.len() };
                    total += size;
                    items.push(Item {
                        path: path.to_string_lossy().into_owned(),
                        relative_path: rel,
                        category,
                        kind: if meta.is_dir() { "dir" } else { "file" },
                        size,
                        action: "would_remove",
                        error: None,
                    });
                }
                None if meta.is_dir() => {
                    total += meta.len();
                    let nm = in_nm || name == "node_modules";
                    stack.push((path, rel, child_depth, nm));
                }
                None => total += meta.len(),
            }
        }
    }
    items.sort_by(|a, b| a.relative_path.cmp(&b.relative_path));
    Ok((items, total))
}

/// Bytes under `path`, never following symlinks; unreadable parts count as 0.
fn tree_size(path: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(meta) = fs::symlink_metadata(&p) else {
            continue;
        };
        total += meta.len();
        if meta.is_dir()
            && let Ok(rd) = fs::read_dir(&p)
        {
            stack.extend(rd.filter_map(Result::ok).map(|e| e.path()));
        }
    }
    total
}

/// Removes a file, or a folder and everything in it, unlinking symlinks instead of following them.
fn remove_tree(path: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if !meta.is_dir() {
        return fs::remove_file(path);
    }
    for entry in fs::read_dir(path)? {
        remove_tree(&entry?.path())?;
    }
    fs::remove_dir(path)
}

/// Scans `root` and, unless `dry_run`, removes every item found.
pub fn cleanup(root: &Path, dry_run: bool, reporter: &dyn Reporter) -> Result<Outcome, JobError> {
    reporter.progress(5, "scanning for clutter");
    let (mut items, initial_size) = scan(root, reporter)?;
    reporter.progress(40, &format!("found {} items", items.len()));
    let mut summary = Summary::default();
    for item in &items {
        *match item.category {
            Category::Venv => &mut summary.venvs,
            Category::TempFile => &mut summary.temp_files,
            Category::OutputFile => &mut summary.output_files,
            Category::BuildArtifact => &mut summary.build_artifacts,
            Category::RedundantDir => &mut summary.redundant_dirs,
        } += 1;
    }
    let reclaimable: u64 = items.iter().map(|i| i.size).sum();
    let mut saved = 0;
    if !dry_run {
        let count = items.len().max(1);
        for (n, item) in items.iter_mut().enumerate() {
            reporter.check_cancelled()?;
            match remove_tree(Path::new(&item.path)) {
                Ok(()) => {
                    item.action = "removed";
                    saved += item.size;
                }
                Err(e) => {
                    reporter.log(Level::Warn, &format!("could not remove {}: {e}", item.path));
                    item.action = "error";
                    item.error = Some(e.to_string());
                }
            }
            let pct = 40 + (55 * (n + 1) / count) as u8;
            reporter.progress(pct, &format!("removed {}", item.relative_path));
        }
    }
    reporter.progress(100, if dry_run { "dry run complete" } else { "cleanup complete" });
    Ok(Outcome {
        target_dir: root.to_string_lossy().into_owned(),
        dry_run,
        initial_size,
        final_size: initial_size - saved,
        saved_space: saved,
        reclaimable_space: reclaimable,
        total_items: items.len(),
        summary,
        items,
    })
}

#[cfg(test)]
mod tests;
