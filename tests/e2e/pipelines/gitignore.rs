//! gitignore-manager: discovery under baseDir (nested repositories are not entered, dot and
//! excluded folders skipped), dry run, the append itself, and idempotence.

use std::path::Path;

use serde_json::{Value, json};

use super::{config, p, read, run_ok, snapshot};
use crate::support::{Server, git, write_tree};

fn repo(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "-q", "-b", "main"]);
}

fn by_repo(result: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = result["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["path"].as_str().unwrap().to_string(), r["action"].as_str().unwrap().to_string()))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn gitignore_manager_discovers_adds_once_and_is_idempotent() {
    let server = Server::start(&config(&["gitignore-manager"]));
    let ws = server.dir.join("ws");
    let (alpha, beta, gamma) = (ws.join("alpha"), ws.join("group/beta"), ws.join("gamma"));
    for r in [&alpha, &beta, &gamma] {
        repo(r);
    }
    // Found-but-not-entered, hidden and excluded repositories must all be left alone.
    let (nested, hidden, vendored) = (alpha.join("packages/nested"), ws.join(".hidden/delta"), ws.join("vendor/eps"));
    for r in [&nested, &hidden, &vendored] {
        repo(r);
    }
    write_tree(
        &ws,
        &[
            ("alpha/.gitignore", "node_modules/\n*.log"),
            ("gamma/.gitignore", "dist/\n/repomix-output.xml\n"),
            ("plain/notes.txt", "not a repository\n"),
        ],
    );
    let base = json!({"baseDir": p(&ws), "excludeDirs": ["vendor"]});

    // Dry run: would_add / skipped, nothing written anywhere.
    let before = snapshot(&ws);
    let mut params = base.clone();
    params["dryRun"] = json!(true);
    let job = run_ok(&server, "gitignore-manager", params, "done").await;
    let r = &job["result"];
    assert_eq!(r["totalRepositories"], 3, "{r}");
    assert_eq!(r["dryRun"], true);
    assert_eq!(r["gitignoreEntry"], "repomix-output.xml");
    let want: Vec<(String, String)> = {
        let mut v = vec![
            (p(&alpha), "would_add".to_string()),
            (p(&beta), "would_add".to_string()),
            (p(&gamma), "skipped".to_string()),
        ];
        v.sort();
        v
    };
    assert_eq!(by_repo(r), want, "{r}");
    assert_eq!(r["summary"], json!({"added": 0, "skipped": 1, "would_add": 2, "error": 0}));
    let beta_result = r["results"].as_array().unwrap().iter().find(|x| x["path"] == p(&beta)).unwrap();
    assert_eq!(beta_result["repository"], "beta");
    assert_eq!(snapshot(&ws), before, "a dry run writes nothing");

    // Real run: appended with a separating newline, blank line and comment; gamma untouched.
    let job = run_ok(&server, "gitignore-manager", base.clone(), "done").await;
    let r = &job["result"];
    assert_eq!(r["summary"], json!({"added": 2, "skipped": 1, "would_add": 0, "error": 0}), "{r}");
    assert_eq!(read(alpha.join(".gitignore")), "node_modules/\n*.log\n\n# Repomix output files\nrepomix-output.xml\n");
    assert_eq!(read(beta.join(".gitignore")), "# Repomix output files\nrepomix-output.xml\n");
    assert_eq!(read(gamma.join(".gitignore")), "dist/\n/repomix-output.xml\n");
    for r in [&nested, &hidden, &vendored] {
        assert!(!r.join(".gitignore").exists(), "{} must not be touched", r.display());
    }
    // git itself now ignores the entry.
    write_tree(&alpha, &[("repomix-output.xml", "<x/>")]);
    assert_eq!(git(&alpha, &["check-ignore", "repomix-output.xml"]).trim(), "repomix-output.xml");

    // Third run: all skipped, every file byte for byte the same.
    let settled = snapshot(&ws);
    let job = run_ok(&server, "gitignore-manager", base, "done").await;
    let r = &job["result"];
    assert_eq!(r["summary"], json!({"added": 0, "skipped": 3, "would_add": 0, "error": 0}), "{r}");
    assert!(r["results"].as_array().unwrap().iter().all(|x| x["action"] == "skipped"));
    assert_eq!(snapshot(&ws), settled, "a second real run changes nothing");
}

#[tokio::test]
async fn gitignore_manager_takes_explicit_repositories_a_custom_entry_and_reports_errors_per_repository() {
    let server = Server::start(&config(&["gitignore-manager"]));
    let one = server.dir.join("one");
    let two = server.dir.join("two");
    repo(&one);
    repo(&two);
    write_tree(&server.dir, &[("two/.gitignore", "**/.env\n")]);
    let not_a_dir = server.dir.join("file.txt");
    std::fs::write(&not_a_dir, "x").unwrap();
    let params = json!({"repositories": [p(&one), p(&two), p(&not_a_dir)], "gitignoreEntry": ".env"});
    let job = run_ok(&server, "gitignore-manager", params, "done").await;
    let r = &job["result"];
    assert_eq!(r["totalRepositories"], 3, "{r}");
    assert_eq!(r["gitignoreEntry"], ".env");
    let actions: Vec<&str> = r["results"].as_array().unwrap().iter().map(|x| x["action"].as_str().unwrap()).collect();
    assert_eq!(actions, vec!["added", "skipped", "error"], "{r}");
    assert_eq!(read(one.join(".gitignore")), "# Repomix output files\n.env\n");
    assert_eq!(read(two.join(".gitignore")), "**/.env\n");
    assert_eq!(read(&not_a_dir), "x");
}
