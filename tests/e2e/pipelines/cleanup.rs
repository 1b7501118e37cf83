//! repo-cleanup: a dry run by default that lists and removes nothing; `dryRun: false`
//! removes exactly the listed categories; symlinks out of the tree are never followed.

use std::collections::BTreeSet;

use serde_json::json;

use super::{config, p, read, run_ok, snapshot};
use crate::support::{Server, git, init_repo, write_tree};

/// Clutter the worker must find, as (path under the tree, what it reports as the item).
const CLUTTER: &[(&str, &str)] = &[
    ("venv/bin/python", "venv"),
    (".venv/pyvenv.cfg", ".venv"),
    ("pkg/sub/env/lib/site.py", "pkg/sub/env"),
    ("tools/cli.venv/cfg", "tools/cli.venv"),
    (".DS_Store", ".DS_Store"),
    ("src/__pycache__/mod.cpython-312.pyc", "src/__pycache__"),
    ("src/legacy.pyc", "src/legacy.pyc"),
    ("src/deep/deeper/.main.py.swp", "src/deep/deeper/.main.py.swp"),
    ("notes.txt~", "notes.txt~"),
    ("docs/Thumbs.db", "docs/Thumbs.db"),
    ("server.log", "server.log"),
    ("src/deep/trace.log", "src/deep/trace.log"),
    ("npm-debug.log.3", "npm-debug.log.3"),
    ("pkg/repomix-output.xml", "pkg/repomix-output.xml"),
    ("dist/app.min.js", "dist"),
    ("build/out/app.o", "build"),
    ("target/debug/app", "target"),
    ("node_modules/.cache/babel/x.json", "node_modules/.cache"),
    ("tmp/scratch.txt", "tmp"),
    ("old/v1/main.py", "old"),
    ("archive/2019.tar", "archive"),
];

/// Everything else: sources, nested folders that only share a name with clutter, `.git`.
const KEEP: &[&str] = &[
    "README.md",
    "repomix-output.xml",
    "src/main.py",
    "src/build/generated.py",
    "src/dist/index.js",
    "docs/tmp/draft-notes.md",
    "docs/old/changelog.md",
    "a/b/c/venv/too-deep.txt",
    "node_modules/left-pad/index.js",
    "node_modules/left-pad/venv/kept.js",
    "environment.yml",
];

fn fixture(server: &Server) -> (std::path::PathBuf, std::path::PathBuf) {
    let tree = server.dir.join("project");
    let files: Vec<(&str, &str)> = CLUTTER
        .iter()
        .map(|(f, _)| (*f, "clutter clutter clutter\n"))
        .chain(KEEP.iter().map(|f| (*f, "keep me\n")))
        .collect();
    write_tree(&tree, &files);
    write_tree(&tree, &[(".gitignore", "*.log\nvenv/\n")]);
    init_repo(&tree);
    // Outside the cleaned tree: a venv and a log reachable only through symlinks.
    let outside = server.dir.join("outside");
    write_tree(&outside, &[("venv/bin/python", "outside"), ("cache.log", "outside"), ("tmp/keep.txt", "outside")]);
    std::os::unix::fs::symlink(&outside, tree.join("linked")).unwrap();
    std::os::unix::fs::symlink(outside.join("venv"), tree.join("pkg/venv")).unwrap();
    std::os::unix::fs::symlink(outside.join("cache.log"), tree.join("src/cache.log")).unwrap();
    (tree, outside)
}

fn expected_items() -> BTreeSet<String> {
    CLUTTER.iter().map(|(_, item)| item.to_string()).collect()
}

#[tokio::test]
async fn repo_cleanup_dry_run_by_default_lists_everything_and_removes_nothing() {
    let server = Server::start(&config(&["repo-cleanup"]));
    let (tree, outside) = fixture(&server);
    let before = snapshot(&tree);
    let outside_before = snapshot(&outside);

    let job = run_ok(&server, "repo-cleanup", json!({"targetDir": p(&tree)}), "dry run complete").await;
    let r = &job["result"];
    assert_eq!(r["dryRun"], true, "{r}");
    let items: BTreeSet<String> =
        r["items"].as_array().unwrap().iter().map(|i| i["relativePath"].as_str().unwrap().to_string()).collect();
    assert_eq!(items, expected_items(), "{r}");
    assert_eq!(r["totalItems"], CLUTTER.len());
    assert_eq!(
        r["summary"],
        json!({"venvs": 4, "tempFiles": 6, "outputFiles": 4, "buildArtifacts": 4, "redundantDirs": 3}),
        "{r}"
    );
    for item in r["items"].as_array().unwrap() {
        assert_eq!(item["action"], "would_remove", "{item}");
        let rel = item["relativePath"].as_str().unwrap();
        assert_eq!(item["path"], p(&tree.join(rel)), "{item}");
        assert!(item["size"].as_u64().unwrap() > 0, "{item}");
    }
    assert_eq!(r["savedSpace"], 0);
    assert_eq!(r["initialSize"], r["finalSize"]);
    assert!(r["initialSize"].as_u64().unwrap() > r["reclaimableSpace"].as_u64().unwrap(), "{r}");

    // Byte for byte, nothing changed in the tree or through its symlinks.
    assert_eq!(snapshot(&tree), before, "a dry run must not change anything");
    assert_eq!(snapshot(&outside), outside_before);
}

#[tokio::test]
async fn repo_cleanup_removes_exactly_the_listed_categories_and_never_follows_symlinks() {
    let server = Server::start(&config(&["repo-cleanup"]));
    let (tree, outside) = fixture(&server);
    let outside_before = snapshot(&outside);

    let job =
        run_ok(&server, "repo-cleanup", json!({"targetDir": p(&tree), "dryRun": false}), "cleanup complete").await;
    let r = &job["result"];
    assert_eq!(r["dryRun"], false);
    let items: BTreeSet<String> =
        r["items"].as_array().unwrap().iter().map(|i| i["relativePath"].as_str().unwrap().to_string()).collect();
    assert_eq!(items, expected_items(), "{r}");
    assert!(r["items"].as_array().unwrap().iter().all(|i| i["action"] == "removed"), "{r}");
    for (file, item) in CLUTTER {
        assert!(tree.join(file).symlink_metadata().is_err(), "{file} should be gone");
        assert!(tree.join(item).symlink_metadata().is_err(), "{item} should be gone");
    }
    for file in KEEP {
        assert_eq!(read(tree.join(file)), "keep me\n", "{file} must survive");
    }
    assert_eq!(read(tree.join(".gitignore")), "*.log\nvenv/\n");
    assert_eq!(r["savedSpace"], r["reclaimableSpace"]);
    assert!(r["savedSpace"].as_u64().unwrap() > 0);
    assert_eq!(
        r["finalSize"].as_u64().unwrap(),
        r["initialSize"].as_u64().unwrap() - r["savedSpace"].as_u64().unwrap()
    );

    // .git is intact: git still sees the repository and its history.
    assert_eq!(git(&tree, &["rev-list", "--count", "HEAD"]).trim(), "1");
    assert!(git(&tree, &["log", "--format=%s"]).contains("initial"));
    // Symlinks out of the tree were neither followed nor removed; their targets survive.
    assert_eq!(snapshot(&outside), outside_before, "nothing outside the tree may change");
    for link in ["linked", "pkg/venv", "src/cache.log"] {
        assert!(tree.join(link).symlink_metadata().unwrap().file_type().is_symlink(), "{link}");
    }

    // A second (dry) run finds nothing left.
    let again = run_ok(&server, "repo-cleanup", json!({"targetDir": p(&tree)}), "dry run complete").await;
    assert_eq!(again["result"]["totalItems"], 0, "{}", again["result"]);
}
