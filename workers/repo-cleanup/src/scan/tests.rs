use super::*;
use alephauto_guest::Silent;
use std::collections::BTreeSet;

fn touch(root: &Path, rel: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().expect("has parent")).expect("mkdir");
    fs::write(p, b"12345").expect("write");
}

const CLUTTER: &[&str] = &[
    "venv/bin/python",
    "pkg/.venv/lib/x.py",
    "a/b/env/pyvenv.cfg",
    "proj.venv/cfg",
    ".DS_Store",
    "src/mod.pyc",
    "src/__pycache__/m.cpython.pyc",
    "src/deep/deeper/.main.rs.swp",
    "notes.txt~",
    "sub/repomix-output.xml",
    "server.log",
    "npm-debug.log.1",
    "dist/app.js",
    "target/debug/x",
    "node_modules/.cache/c",
    "tmp/scratch",
    "old/v1.txt",
];

const KEEP: &[&str] = &[
    "src/main.rs",
    "repomix-output.xml",
    "README.md",
    "a/b/c/d/venv/kept-too-deep.txt",
    "node_modules/lib/venv/kept.js",
    "src/dist/kept.js",
    "docs/tmp/kept.md",
    ".git/HEAD",
    ".git/logs/HEAD.log",
];

fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for rel in CLUTTER.iter().chain(KEEP) {
        touch(dir.path(), rel);
    }
    dir
}

fn top_items(outcome: &Outcome) -> BTreeSet<String> {
    outcome.items.iter().map(|i| i.relative_path.clone()).collect()
}

#[test]
fn dry_run_lists_every_category_and_removes_nothing() {
    let dir = fixture();
    let outcome = cleanup(dir.path(), true, &Silent).expect("cleanup");
    let expected: BTreeSet<String> = [
        "venv",
        "pkg/.venv",
        "a/b/env",
        "proj.venv",
        ".DS_Store",
        "src/mod.pyc",
        "src/__pycache__",
        "src/deep/deeper/.main.rs.swp",
        "notes.txt~",
        "sub/repomix-output.xml",
        "server.log",
        "npm-debug.log.1",
        "dist",
        "target",
        "node_modules/.cache",
        "tmp",
        "old",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(top_items(&outcome), expected);
    assert_eq!(outcome.summary.venvs, 4);
    assert_eq!(outcome.summary.temp_files, 5);
    assert_eq!(outcome.summary.output_files, 3);
    assert_eq!(outcome.summary.build_artifacts, 3);
    assert_eq!(outcome.summary.redundant_dirs, 2);
    assert_eq!(outcome.total_items, 17);
    assert_eq!(outcome.saved_space, 0);
    assert_eq!(outcome.final_size, outcome.initial_size);
    assert!(outcome.reclaimable_space >= 5 * CLUTTER.len() as u64);
    assert!(outcome.items.iter().all(|i| i.action == "would_remove"));
    for rel in CLUTTER.iter().chain(KEEP) {
        assert!(dir.path().join(rel).exists(), "dry run removed {rel}");
    }
}

#[test]
fn real_run_removes_exactly_the_listed_items() {
    let dir = fixture();
    let outcome = cleanup(dir.path(), false, &Silent).expect("cleanup");
    assert!(outcome.items.iter().all(|i| i.action == "removed"));
    for rel in CLUTTER {
        assert!(!dir.path().join(rel).exists(), "{rel} should be gone");
    }
    for rel in KEEP {
        assert!(dir.path().join(rel).exists(), "{rel} should stay");
    }
    assert_eq!(outcome.saved_space, outcome.reclaimable_space);
    assert_eq!(outcome.final_size, outcome.initial_size - outcome.saved_space);
    let again = cleanup(dir.path(), true, &Silent).expect("second scan");
    assert_eq!(again.total_items, 0);
}

#[cfg(unix)]
#[test]
fn symlinks_are_never_followed_or_removed() {
    let outside = tempfile::tempdir().expect("tempdir");
    touch(outside.path(), "venv/bin/python");
    touch(outside.path(), "cache.log");
    let dir = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::symlink(outside.path().join("venv"), dir.path().join("venv")).expect("symlink");
    std::os::unix::fs::symlink(outside.path(), dir.path().join("linked")).expect("symlink");
    let outcome = cleanup(dir.path(), false, &Silent).expect("cleanup");
    assert_eq!(outcome.total_items, 0);
    assert!(outside.path().join("venv/bin/python").exists());
    assert!(outside.path().join("cache.log").exists());
    assert!(dir.path().join("venv").symlink_metadata().is_ok());
}

#[test]
fn classify_respects_depth_rules() {
    assert_eq!(classify("dist", "dist", 1, true, false), Some(Category::BuildArtifact));
    assert_eq!(classify("x/dist", "dist", 2, true, false), None);
    assert_eq!(classify("a/b/c/venv", "venv", 4, true, false), None);
    assert_eq!(classify("node_modules/x/venv", "venv", 3, true, true), None);
    assert_eq!(classify("repomix-output.xml", "repomix-output.xml", 1, false, false), None);
    assert_eq!(classify("a/yarn-error.log.2", "yarn-error.log.2", 2, false, false), Some(Category::OutputFile));
}
