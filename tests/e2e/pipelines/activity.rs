//! git-activity: commits placed inside and outside a custom window (author and committer
//! dates set) in repositories discovered under baseDir; totals, months, repositories,
//! languages, and the report files.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use super::{config, p, read, run_ok};
use crate::support::{Server, git, write_tree};

/// Commits everything in `dir` with author and committer date `date` (ISO 8601).
fn commit_at(dir: &Path, date: &str, message: &str, email: &str) {
    git(dir, &["add", "-A"]);
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            &format!("user.email={email}"),
            "-c",
            "user.name=Dev",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            message,
        ])
        .env("GIT_AUTHOR_DATE", date)
        .env("GIT_COMMITTER_DATE", date)
        .output()
        .unwrap();
    assert!(out.status.success(), "commit: {}", String::from_utf8_lossy(&out.stderr));
}

fn lines(n: usize, word: &str) -> String {
    (0..n).map(|i| format!("{word} {i}\n")).collect()
}

/// alpha: 2 commits in the window (+16 -1, files src/lib.rs and README.md), one before, one after.
/// beta: 2 in the window (one on a side branch), one before.
fn fixture(code: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let alpha = code.join("alpha");
    let beta = code.join("team/beta");
    for r in [&alpha, &beta] {
        std::fs::create_dir_all(r).unwrap();
        git(r, &["init", "-q", "-b", "main"]);
    }
    write_tree(&alpha, &[("old.txt", "before the window\n")]);
    commit_at(&alpha, "2024-02-01T12:00:00Z", "before", "a@example.com");
    write_tree(&alpha, &[("src/lib.rs", &lines(10, "line")), ("README.md", "# Alpha\n\nText.\n")]);
    commit_at(&alpha, "2024-03-05T12:00:00Z", "add lib", "a@example.com");
    let mut lib = lines(10, "line");
    lib = lib.replace("line 9\n", "changed 9\n");
    lib.push_str("more 1\nmore 2\n");
    write_tree(&alpha, &[("src/lib.rs", &lib)]);
    commit_at(&alpha, "2024-04-10T12:00:00Z", "change lib", "b@example.com");
    write_tree(&alpha, &[("src/late.rs", &lines(5, "late"))]);
    commit_at(&alpha, "2024-05-15T12:00:00Z", "after", "a@example.com");

    write_tree(&beta, &[("base.txt", "x\n")]);
    commit_at(&beta, "2024-02-10T12:00:00Z", "before", "c@example.com");
    write_tree(&beta, &[("app.py", &lines(4, "print"))]);
    commit_at(&beta, "2024-03-20T12:00:00Z", "app", "c@example.com");
    git(&beta, &["checkout", "-q", "-b", "feature"]);
    write_tree(&beta, &[("feature.py", &lines(2, "feature"))]);
    commit_at(&beta, "2024-04-30T23:00:00Z", "feature", "a@example.com");
    git(&beta, &["checkout", "-q", "main"]);
    (alpha, beta)
}

#[tokio::test]
async fn git_activity_reports_commits_in_the_window_and_writes_reports_and_charts() {
    let server = Server::start(&config(&["git-activity"]));
    let code = server.dir.join("code");
    let (alpha, beta) = fixture(&code);
    write_tree(&code, &[("notes/todo.txt", "not a repository\n")]);
    // A repository inside alpha is not entered; a hidden one is not found.
    let nested = alpha.join("vendor/inner");
    std::fs::create_dir_all(&nested).unwrap();
    git(&nested, &["init", "-q"]);

    let job = run_ok(
        &server,
        "git-activity",
        json!({"reportType": "custom", "sinceDate": "2024-03-01", "untilDate": "2024-04-30", "baseDir": p(&code)}),
        "4 commits in 2 repositories",
    )
    .await;
    let r = &job["result"];
    assert_eq!(r["period"]["sinceDate"], "2024-03-01");
    assert_eq!(r["period"]["untilDate"], "2024-04-30");
    assert_eq!(r["period"]["days"], 61);
    assert_eq!(
        r["totals"],
        json!({"commits": 4, "repositories": 2, "activeRepositories": 2, "linesAdded": 22, "linesDeleted": 1,
               "filesChanged": 4, "authors": 3}),
        "{r}"
    );
    assert_eq!(r["commitsByMonth"], json!([{"month": "2024-03", "commits": 2}, {"month": "2024-04", "commits": 2}]));
    let repos = r["repositories"].as_array().unwrap();
    let find = |name: &str| repos.iter().find(|x| x["name"] == name).unwrap_or_else(|| panic!("{name} in {r}"));
    let (a, b) = (find("alpha"), find("beta"));
    assert_eq!(a["path"], p(&alpha));
    assert_eq!(
        (a["commits"].as_u64(), a["linesAdded"].as_u64(), a["linesDeleted"].as_u64()),
        (Some(2), Some(16), Some(1))
    );
    assert_eq!(a["lastCommit"], "2024-04-10");
    assert_eq!(b["path"], p(&beta));
    assert_eq!((b["commits"].as_u64(), b["linesAdded"].as_u64()), (Some(2), Some(6)));
    assert_eq!(b["lastCommit"], "2024-04-30", "commits on other branches count");
    let langs: Vec<(String, u64)> = r["languages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["language"].as_str().unwrap().to_string(), l["fileChanges"].as_u64().unwrap()))
        .collect();
    assert_eq!(langs, vec![("Python".into(), 2), ("Rust".into(), 2), ("Markdown".into(), 1)], "{r}");
    assert_eq!(r["errors"], json!([]));

    // Reports in the job's output folder: HTML, JSON, Markdown and five SVG charts.
    let out = server.data_dir().join("outputs").join(job["id"].as_str().unwrap());
    let paths = &r["reportPaths"];
    let report: Value = serde_json::from_str(&read(paths["json"].as_str().unwrap())).unwrap();
    assert_eq!(report["totals"], r["totals"]);
    let md = read(paths["markdown"].as_str().unwrap());
    assert!(md.contains("2024-03-01 to 2024-04-30"), "{md}");
    assert!(md.contains("alpha") && md.contains("beta"), "{md}");
    let charts: Vec<&str> = paths["charts"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(charts.len(), 5, "{paths}");
    for chart in &charts {
        assert!(Path::new(chart).starts_with(&out), "{chart}");
        let svg = read(chart);
        assert!(svg.trim_start().starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{chart}: {svg}");
    }
    let monthly = read(charts.iter().find(|c| c.ends_with("monthly-commits.svg")).unwrap());
    assert!(monthly.contains("2024-03") && monthly.contains("2024-04"), "{monthly}");
    let top = read(charts.iter().find(|c| c.ends_with("top-repositories.svg")).unwrap());
    assert!(top.contains("alpha") && top.contains("beta"), "{top}");
    // Per author and per week: a@example.com made two of the four, b and c one each.
    let authors: Vec<(&str, u64)> = r["authors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["email"].as_str().unwrap(), a["commits"].as_u64().unwrap()))
        .collect();
    assert_eq!(authors, vec![("a@example.com", 2), ("b@example.com", 1), ("c@example.com", 1)], "{r}");
    assert_eq!(r["commitsByWeek"].as_array().unwrap().iter().map(|w| w["commits"].as_u64().unwrap()).sum::<u64>(), 4);
    assert_eq!(r["commitsByDay"][0], json!({"date": "2024-03-05", "commits": 1}));
    let timeline = read(charts.iter().find(|c| c.ends_with("commit-timeline.svg")).unwrap());
    assert!(timeline.contains("Commits per week"), "a 61-day window is charted per week: {timeline}");
    let html = read(paths["html"].as_str().unwrap());
    assert!(html.contains("<figure data-chart=\"top-authors.svg\">\n<svg"), "charts inline: {html}");
}

#[tokio::test]
async fn git_activity_json_only_without_charts_for_listed_repositories() {
    let server = Server::start(&config(&["git-activity"]));
    let (alpha, _beta) = fixture(&server.dir.join("code"));
    let job = run_ok(
        &server,
        "git-activity",
        json!({"repositories": [p(&alpha)], "reportType": "custom", "sinceDate": "2024-04-01", "untilDate": "2024-05-31",
               "outputFormat": "json", "generateVisualizations": false}),
        "2 commits in 1 repositories",
    )
    .await;
    let r = &job["result"];
    assert_eq!(r["totals"]["commits"], 2, "{r}");
    assert_eq!(r["totals"]["linesAdded"], 8);
    assert_eq!(r["commitsByMonth"], json!([{"month": "2024-04", "commits": 1}, {"month": "2024-05", "commits": 1}]));
    assert!(r["reportPaths"].get("markdown").is_none(), "{r}");
    assert_eq!(r["reportPaths"]["charts"], json!([]));
    let out = server.data_dir().join("outputs").join(job["id"].as_str().unwrap());
    let mut written: Vec<String> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    written.sort();
    assert_eq!(written, vec!["git-activity-report.html", "git-activity-report.json"]);

    // A window of N days ending now sees none of these 2024 commits.
    let recent = run_ok(&server, "git-activity", json!({"repositories": [p(&alpha)], "days": 30}), "0 commits").await;
    assert_eq!(recent["result"]["totals"]["commits"], 0);
    assert_eq!(recent["result"]["period"]["days"], 30);
}

/// Waits (with a deadline) until the wall clock is early in a second, so that a commit and
/// the trigger right after it fall in the same second.
async fn start_of_a_second() {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
        if now.subsec_millis() < 50 {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "the clock never reached the start of a second");
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn git_activity_counts_a_commit_made_in_the_same_second_as_the_trigger() {
    let server = Server::start(&config(&["git-activity"]));
    let repo = server.dir.join("code/now");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    write_tree(&repo, &[("old.txt", "x\n")]);
    commit_at(&repo, "2024-02-01T12:00:00Z", "old", "a@example.com");
    // Warm the worker so a job starts as soon as it is triggered.
    run_ok(&server, "git-activity", json!({"repositories": [p(&repo)], "days": 1}), "0 commits").await;

    // Each attempt commits with the current time and triggers at once; it proves the point
    // when the job's window ends in the commit's own second (the job ran within that second).
    let mut same_second = 0;
    for n in 1..=5u64 {
        start_of_a_second().await;
        write_tree(&repo, &[("now.txt", &format!("{n}\n"))]);
        git(&repo, &["add", "-A"]);
        git(&repo, &["-c", "user.email=n@example.com", "-c", "user.name=Now", "commit", "-q", "-m", "now"]);
        let committed: i64 = git(&repo, &["log", "-1", "--format=%at"]).trim().parse().unwrap();
        let job = run_ok(&server, "git-activity", json!({"repositories": [p(&repo)], "days": 1}), "commits").await;
        let r = &job["result"];
        assert_eq!(r["totals"]["commits"], n, "every commit made before the trigger counts: {r}");
        if r["period"]["until"].as_i64() == Some(committed + 1) {
            same_second += 1;
            if same_second >= 2 {
                break;
            }
        }
    }
    assert!(same_second >= 1, "no attempt ran its job in the commit's second; the case was not exercised");
}
