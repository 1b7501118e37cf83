//! A base folder: every README under it, skipping dependency, build and tool folders, each
//! enhanced (or skipped, or failed) on its own and reported per file.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use alephauto_guest::{JobError, Level, Reporter};
use serde_json::{Value, json};

use crate::enhance::{derive_context, enhance};
use crate::schema::ProjectContext;

/// Folders never entered: dependencies, build output, caches and tool state.
pub const SKIP_DIRS: &[(&str, &str)] = &[
    ("node_modules", "dependencies"),
    ("bower_components", "dependencies"),
    ("jspm_packages", "dependencies"),
    ("vendor", "dependencies"),
    ("third_party", "dependencies"),
    ("Pods", "dependencies"),
    ("site-packages", "dependencies"),
    ("venv", "virtual environment"),
    (".venv", "virtual environment"),
    ("env", "virtual environment"),
    ("target", "build output"),
    ("dist", "build output"),
    ("build", "build output"),
    ("out", "build output"),
    (".next", "build output"),
    (".nuxt", "build output"),
    (".output", "build output"),
    ("coverage", "build output"),
    ("__pycache__", "cache"),
    (".cache", "cache"),
    (".tox", "cache"),
    (".gradle", "cache"),
    (".git", "version control"),
    (".hg", "version control"),
    (".svn", "version control"),
];

/// What a walk of the base folder found.
#[derive(Debug, Default)]
pub struct Found {
    /// README files, sorted.
    pub readmes: Vec<PathBuf>,
    /// Folders not entered, with why.
    pub skipped: Vec<(PathBuf, &'static str)>,
}

/// Whether a file name is a Markdown README.
pub fn is_readme(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    matches!(lower.as_str(), "readme.md" | "readme.markdown" | "readme.mdown" | "readme.mkd")
}

/// Finds README files under `base`, at most `max_depth` folders down, never following symlinks.
pub fn find_readmes(base: &Path, max_depth: usize, exclude: &[String], r: &dyn Reporter) -> Found {
    let mut found = Found::default();
    let mut stack = vec![(base.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) => {
                r.log(Level::Warn, &format!("{}: {e}", dir.display()));
                continue;
            }
        };
        for e in entries.filter_map(Result::ok) {
            let Ok(kind) = e.file_type() else { continue };
            let name = e.file_name().to_string_lossy().into_owned();
            if kind.is_file() && is_readme(&name) {
                found.readmes.push(e.path());
            } else if kind.is_dir() {
                let why = SKIP_DIRS.iter().find(|(n, _)| *n == name).map(|(_, why)| *why).or_else(|| {
                    if exclude.contains(&name) {
                        Some("excluded")
                    } else if name.starts_with('.') && name != ".github" {
                        Some("hidden")
                    } else if depth >= max_depth {
                        Some("deeper than maxDepth")
                    } else {
                        None
                    }
                });
                match why {
                    Some(why) => found.skipped.push((e.path(), why)),
                    None => stack.push((e.path(), depth + 1)),
                }
            }
        }
    }
    found.readmes.sort();
    found.skipped.sort();
    found
}

/// The nearest ancestor of the README holding `.git`, not above `base`; else `fallback` or the README's folder.
fn repo_root(readme: &Path, base: &Path, fallback: Option<&Path>) -> PathBuf {
    let start = readme.parent().unwrap_or(readme);
    start
        .ancestors()
        .take_while(|d| d.starts_with(base))
        .find(|d| d.join(".git").symlink_metadata().is_ok())
        .map(Path::to_path_buf)
        .or_else(|| fallback.map(Path::to_path_buf))
        .unwrap_or_else(|| start.to_path_buf())
}

/// Options for a folder run.
pub struct FolderRun<'a> {
    /// The base folder.
    pub base: &'a Path,
    /// Folders below `base` to descend.
    pub max_depth: usize,
    /// Extra folder names not to enter.
    pub exclude: &'a [String],
    /// The repository for READMEs outside any repository under `base`.
    pub repository: Option<&'a Path>,
    /// The context to use for every README (derived per repository when absent).
    pub context: Option<&'a ProjectContext>,
    /// Report without writing.
    pub dry_run: bool,
    /// Today, Unix seconds.
    pub now: i64,
}

/// Enhances every README under the base folder; one README's failure does not stop the others.
pub fn enhance_folder(
    run: &FolderRun,
    remote: &dyn Fn(&Path) -> Option<String>,
    r: &dyn Reporter,
) -> Result<Value, JobError> {
    if !run.base.is_dir() {
        return Err(JobError::invalid("baseDir", format!("{} is not a directory", run.base.display())));
    }
    r.progress(5, "finding README files");
    let found = find_readmes(run.base, run.max_depth, run.exclude, r);
    let total = found.readmes.len();
    let mut contexts: HashMap<PathBuf, ProjectContext> = HashMap::new();
    let mut results = Vec::with_capacity(total);
    let mut summary: HashMap<&str, usize> = ["enhanced", "would_enhance", "skipped", "error"].map(|k| (k, 0)).into();
    for (n, readme) in found.readmes.iter().enumerate() {
        r.check_cancelled()?;
        let repo = repo_root(readme, run.base, run.repository);
        let context = match run.context {
            Some(c) => c.clone(),
            None => {
                // Languages and the remote are the repository's (derived once); manifests are
                // looked for beside each README as well as at the root.
                let mut c =
                    contexts.entry(repo.clone()).or_insert_with(|| derive_context(readme, &repo, remote, r)).clone();
                let beside = |name: &str| {
                    [readme.parent(), Some(repo.as_path())].into_iter().flatten().any(|d| d.join(name).is_file())
                };
                c.has_package_json = beside("package.json");
                c.has_pyproject = beside("pyproject.toml");
                c
            }
        };
        let relative = readme.strip_prefix(run.base).unwrap_or(readme).to_string_lossy().into_owned();
        let mut entry = match enhance(readme, &repo, &context, run.dry_run, run.now, &Quiet) {
            Ok(v) => v,
            Err(e) => {
                r.log(Level::Warn, &format!("{relative}: {e}"));
                json!({"status": "error", "reason": e.to_string(), "readmePath": readme.to_string_lossy()})
            }
        };
        let status = match entry["status"].as_str() {
            Some("enhanced") => "enhanced",
            Some("would_enhance") => "would_enhance",
            Some("skipped") => "skipped",
            _ => "error",
        };
        *summary.entry(status).or_default() += 1;
        entry["relativePath"] = json!(relative);
        entry["repositoryPath"] = json!(repo.to_string_lossy());
        results.push(entry);
        r.progress((10 + 85 * (n + 1) / total.max(1)) as u8, &format!("{} / {total} README files", n + 1));
    }
    let count = |k: &str| summary.get(k).copied().unwrap_or(0);
    let message = if run.dry_run {
        format!(
            "{total} README files: {} would be enhanced, {} skipped, {} errors",
            count("would_enhance"),
            count("skipped"),
            count("error")
        )
    } else {
        format!(
            "{total} README files: {} enhanced, {} skipped, {} errors",
            count("enhanced"),
            count("skipped"),
            count("error")
        )
    };
    r.progress(100, &message);
    Ok(json!({
        "status": "completed",
        "baseDir": run.base.to_string_lossy(),
        "dryRun": run.dry_run,
        "totalReadmes": total,
        "results": results,
        "summary": {
            "enhanced": count("enhanced"),
            "would_enhance": count("would_enhance"),
            "skipped": count("skipped"),
            "error": count("error"),
        },
        "skippedDirectories": found
            .skipped
            .iter()
            .map(|(p, why)| json!({"path": p.strip_prefix(run.base).unwrap_or(p).to_string_lossy(), "reason": why}))
            .collect::<Vec<_>>(),
    }))
}

/// Keeps each README's own progress out of the folder's (the folder reports per file).
struct Quiet;

impl Reporter for Quiet {
    fn progress(&self, _: u8, _: &str) {}
    fn log(&self, _: Level, _: &str) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use alephauto_guest::Silent;

    fn put(root: &Path, rel: &str, body: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(p, body).expect("write");
    }

    const DOC: &str = "# Tool\n\nTool does one thing and does it well.\n";

    #[test]
    fn finds_readmes_and_skips_dependency_and_build_folders() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        for rel in [
            "README.md",
            "packages/a/readme.md",
            "packages/b/README.markdown",
            ".github/README.md",
            "node_modules/dep/README.md",
            "target/doc/README.md",
            "dist/README.md",
            ".git/README.md",
            "vendor/x/README.md",
            ".hidden/README.md",
            "docs/deep/er/README.md",
            "docs/notes.md",
        ] {
            put(root, rel, DOC);
        }
        let found = find_readmes(root, 2, &[], &Silent);
        let rel: Vec<String> = found
            .readmes
            .iter()
            .map(|p| p.strip_prefix(root).expect("inside").to_string_lossy().into_owned())
            .collect();
        assert_eq!(rel, [".github/README.md", "README.md", "packages/a/readme.md", "packages/b/README.markdown"]);
        let skipped: Vec<(String, &str)> = found
            .skipped
            .iter()
            .map(|(p, w)| (p.strip_prefix(root).expect("inside").to_string_lossy().into_owned(), *w))
            .collect();
        assert_eq!(
            skipped,
            [
                (".git".to_owned(), "version control"),
                (".hidden".to_owned(), "hidden"),
                ("dist".to_owned(), "build output"),
                ("docs/deep/er".to_owned(), "deeper than maxDepth"),
                ("node_modules".to_owned(), "dependencies"),
                ("target".to_owned(), "build output"),
                ("vendor".to_owned(), "dependencies"),
            ]
        );
    }

    #[test]
    fn enhances_each_readme_and_reports_per_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        put(root, "one/README.md", DOC);
        put(root, "one/package.json", "{}");
        put(root, "two/README.md", "# Two\n\n<script type=\"application/ld+json\">{}</script>\n");
        put(root, "three/README.md", "");
        fs::write(root.join("three/README.md"), [0xff, 0xfe, 0x00]).expect("write");
        let run = FolderRun {
            base: root,
            max_depth: 10,
            exclude: &[],
            repository: None,
            context: None,
            dry_run: false,
            now: 1_735_689_600,
        };
        let v = enhance_folder(&run, &|_| None, &Silent).expect("folder");
        assert_eq!(v["totalReadmes"], 3);
        assert_eq!(v["summary"], json!({"enhanced": 1, "would_enhance": 0, "skipped": 1, "error": 1}));
        let by = |rel: &str| v["results"].as_array().and_then(|a| a.iter().find(|x| x["relativePath"] == rel)).cloned();
        let one = by("one/README.md").expect("one");
        assert_eq!(
            (one["status"].as_str(), one["schemaType"].as_str()),
            (Some("enhanced"), Some("SoftwareApplication"))
        );
        assert!(fs::read_to_string(root.join("one/README.md")).expect("read").contains("application/ld+json"));
        assert_eq!(by("two/README.md").expect("two")["reason"], "Already has schema markup");
        let three = by("three/README.md").expect("three");
        assert_eq!(three["status"], "error");
        assert!(three["reason"].as_str().is_some_and(|r| r.contains("README.md")), "{three}");
    }
}
