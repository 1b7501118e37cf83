//! The workers' HTML reports, end to end: duplicate-detection, git-activity and repomix run
//! through the server over a git repository whose folder name, file names, file contents and
//! commit subjects are hostile markup; each report is downloaded through the artifacts API with
//! its media type and sandbox policy, holds what the result says, and carries no markup from the
//! repository (escaped text only, no script, nothing loaded from elsewhere).

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::pipelines::{config, p};
use crate::support::{Server, git, write_tree};

/// A duplicated block whose string holds a planted script.
const BLOCK: &str = "function render(rows) {\n  const head = \"<script>document.title='PWNED'</script>\";\n  let out = head;\n  for (const r of rows) {\n    out += '<td>' + r.name + '</td>';\n  }\n  return out;\n}\n";

/// A hostile repository folder name (no slash: one folder).
const REPO_NAME: &str = "<svg onload=alert(7)>shop";

/// A hostile file name (no slash, so a real file).
const EVIL_NAME: &str = "<img src=x onerror=alert(1)>.js";

/// A repository named with markup, two copies of [`BLOCK`] (one under [`EVIL_NAME`]), committed
/// on 2024-03-05 by one author.
fn hostile_repo(root: &Path) -> std::path::PathBuf {
    let repo = root.join("code").join(REPO_NAME);
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    write_tree(&repo, &[("a.js", BLOCK), (EVIL_NAME, BLOCK), ("README.md", "# Shop\n")]);
    git(&repo, &["add", "-A"]);
    let out = Command::new("git")
        .arg("-C")
        .arg(&repo)
        .args(["-c", "user.email=dev@example.com", "-c", "user.name=Dev", "commit", "-q", "-m", "<script>x</script>"])
        .env("GIT_AUTHOR_DATE", "2024-03-05T12:00:00Z")
        .env("GIT_COMMITTER_DATE", "2024-03-05T12:00:00Z")
        .output()
        .unwrap();
    assert!(out.status.success(), "commit: {}", String::from_utf8_lossy(&out.stderr));
    repo
}

/// Runs `pipeline`, then downloads `report` from its artifacts: checks the listing, the media
/// type and the sandbox policy, and returns the HTML.
async fn report_of(server: &Server, pipeline: &str, params: Value, report: &str) -> (Value, String) {
    let job = server.run(pipeline, params).await;
    assert_eq!(job["status"], "completed", "{pipeline}: {job}\n{}", server.log());
    let id = job["id"].as_str().unwrap();
    let (status, list) = server.get(&format!("/api/jobs/{id}/artifacts")).await;
    assert_eq!(status, 200, "{list}");
    let entry = list["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["path"] == report)
        .unwrap_or_else(|| panic!("{pipeline}: {report} is not listed: {list}"))
        .clone();
    assert_eq!(entry["mediaType"], "text/html; charset=utf-8", "{entry}");
    let res = server.http.get(format!("{}/api/jobs/{id}/artifacts/{report}", server.url)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let header = |name: &str| res.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    assert_eq!(header("content-type"), "text/html; charset=utf-8");
    assert!(header("content-security-policy").starts_with("sandbox"), "{pipeline}");
    assert_eq!(header("x-content-type-options"), "nosniff");
    let html = res.text().await.unwrap();
    assert_eq!(Some(html.len() as u64), entry["size"].as_u64(), "{pipeline}: the listed size");
    assert!(html.starts_with("<!doctype html>"), "{pipeline}: {html}");
    // Self-contained and inert: no markup from the repository, nothing loaded, nothing run.
    for forbidden in ["<script", "<img", "<svg onload", "<link", "src=\"http", "href=\"http", "@import", "url("] {
        assert!(!html.contains(forbidden), "{pipeline}: {forbidden} in its report:\n{html}");
    }
    // The report is listed among the reports across jobs too.
    let (_, reports) = server.get(&format!("/api/reports?pipelineId={pipeline}")).await;
    assert!(
        reports["reports"][0]["reports"].as_array().unwrap().iter().any(|a| a["path"] == report),
        "{pipeline}: {reports}"
    );
    (job, html)
}

#[tokio::test]
async fn each_worker_writes_an_escaped_self_contained_html_report_served_as_html() {
    let server = Server::start(&config(&["duplicate-detection", "git-activity", "repomix"]));
    let repo = hostile_repo(&server.dir);

    let (job, html) = report_of(
        &server,
        "duplicate-detection",
        json!({"repositoryPath": p(&repo), "minTokens": 20, "minLines": 4, "limit": 1}),
        "duplicate-report.html",
    )
    .await;
    let r = &job["result"];
    assert!(r["reportPaths"]["html"].as_str().unwrap().ends_with("/duplicate-report.html"), "{r}");
    assert!(html.contains("<h1>Duplicate code report</h1>"));
    assert!(html.contains(&format!("<b>{}</b><span>duplicate groups</span>", r["stats"]["duplicateGroups"])), "{html}");
    assert!(html.contains("one page of each list: blocks 1–1"), "the paging is stated: {html}");
    // The copies side by side, planted script and hostile name as text.
    assert!(html.matches("<figure class=\"side\">").count() >= 2, "{html}");
    assert!(html.contains("const head = &quot;&lt;script&gt;document.title=&#39;PWNED&#39;&lt;/script&gt;&quot;;"));
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;.js:1-"), "{html}");
    assert!(html.contains("&lt;svg onload=alert(7)&gt;shop"), "{html}");

    let (job, html) = report_of(
        &server,
        "git-activity",
        json!({"repositories": [p(&repo)], "reportType": "custom", "sinceDate": "2024-03-01", "untilDate": "2024-03-10"}),
        "git-activity-report.html",
    )
    .await;
    let r = &job["result"];
    assert_eq!(r["totals"]["commits"], 1, "{r}");
    assert!(html.contains("<h1>Git activity report</h1>") && html.contains("2024-03-01 to 2024-03-10"), "{html}");
    for chart in ["commit-timeline", "monthly-commits", "top-repositories", "top-authors", "language-distribution"] {
        assert!(html.contains(&format!("<figure data-chart=\"{chart}.svg\">\n<svg xmlns=")), "{chart} inline");
    }
    assert!(html.contains("<title>2024-03-05: 1</title>"), "the daily timeline: {html}");
    assert!(html.contains("<td>&lt;svg onload=alert(7)&gt;shop</td><td class=\"num\">1</td>"), "{html}");
    assert!(html.contains("<td>Dev</td><td>dev@example.com</td><td class=\"num\">1</td>"), "{html}");

    let (job, html) = report_of(&server, "repomix", json!({"sourceDir": p(&repo)}), "repomix-report.html").await;
    let r = &job["result"];
    assert!(r["reportFile"].as_str().unwrap().ends_with("/repomix-report.html"), "{r}");
    assert!(html.contains(&format!("<b>{}</b><span>files packed</span>", r["files"])), "{html}");
    assert!(html.contains(&format!("<b>{}</b><span>tokens (o200k, whole output)</span>", r["totalTokens"])));
    assert!(html.contains("<td>&lt;img src=x onerror=alert(1)&gt;.js</td>"), "the largest files: {html}");
    assert!(html.contains("<h2>Most tokens</h2>") && html.contains("<h2>Left out: secrets</h2>"));
}
