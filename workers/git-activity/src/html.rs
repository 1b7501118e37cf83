//! The HTML report (`git-activity-report.html`): totals, the SVG charts inline, and the tables of
//! the Markdown report plus authors. Repository and author names come from the repositories, so
//! every one is escaped (`alephauto_guest::html`); the charts escape their labels themselves.

use std::fmt::Write as _;

use alephauto_guest::html::{self, Align};

use crate::report::Report;

/// Rows listed per table at most (the JSON report has them all); the rest is counted.
const MAX_ROWS: usize = 500;

const CSS: &str =
    ".charts{display:flex;flex-wrap:wrap;gap:16px}.charts figure{margin:0}svg{max-width:100%;height:auto}";

/// The report as HTML, with `charts` (`(file name, SVG)`, ours) inline.
pub fn render(r: &Report, charts: &[(&str, String)]) -> String {
    let t = &r.totals;
    let p = &r.period;
    let mut b = String::new();
    let _ = writeln!(
        b,
        "<h1>Git activity report</h1>\n<p class=\"meta\">{} to {} ({} days, {} report)</p>",
        html::escape(&p.since_date),
        html::escape(&p.until_date),
        p.days,
        html::escape(&format!("{:?}", p.report_type).to_lowercase())
    );
    html::cards(
        &mut b,
        &[
            ("commits", t.commits.to_string()),
            ("repositories scanned", t.repositories.to_string()),
            ("active repositories", t.active_repositories.to_string()),
            ("authors", t.authors.to_string()),
            ("lines added", t.lines_added.to_string()),
            ("lines deleted", t.lines_deleted.to_string()),
            ("files changed", t.files_changed.to_string()),
        ],
    );
    if !charts.is_empty() {
        b.push_str("<h2>Charts</h2>\n<div class=\"charts\">\n");
        for (name, svg) in charts {
            // The SVG is ours: labels inside it were escaped when it was drawn.
            let _ = writeln!(b, "<figure data-chart=\"{}\">\n{svg}</figure>", html::escape(name));
        }
        b.push_str("</div>\n");
    }

    b.push_str("<h2>Repositories</h2>\n");
    let repos = r.repositories.iter().take(MAX_ROWS).map(|x| {
        vec![
            x.name.clone(),
            x.commits.to_string(),
            x.lines_added.to_string(),
            x.lines_deleted.to_string(),
            x.files_changed.to_string(),
            x.authors.to_string(),
            x.last_commit.clone().unwrap_or_else(|| "-".into()),
        ]
    });
    html::table(
        &mut b,
        &[
            ("Repository", Align::Left),
            ("Commits", Align::Right),
            ("+Lines", Align::Right),
            ("-Lines", Align::Right),
            ("Files", Align::Right),
            ("Authors", Align::Right),
            ("Last commit", Align::Left),
        ],
        repos,
    );
    more(&mut b, r.repositories.len());

    b.push_str("<h2>Authors</h2>\n");
    let authors = r.authors.iter().take(MAX_ROWS).map(|a| {
        vec![
            a.name.clone(),
            a.email.clone(),
            a.commits.to_string(),
            a.lines_added.to_string(),
            a.lines_deleted.to_string(),
            a.repositories.to_string(),
        ]
    });
    html::table(
        &mut b,
        &[
            ("Author", Align::Left),
            ("E-mail", Align::Left),
            ("Commits", Align::Right),
            ("+Lines", Align::Right),
            ("-Lines", Align::Right),
            ("Repositories", Align::Right),
        ],
        authors,
    );
    more(&mut b, r.authors.len());

    b.push_str("<h2>Commits per month</h2>\n");
    let months = r.commits_by_month.iter().map(|m| vec![m.month.clone(), m.commits.to_string()]);
    html::table(&mut b, &[("Month", Align::Left), ("Commits", Align::Right)], months);

    b.push_str("<h2>Languages</h2>\n");
    let langs = r.languages.iter().map(|l| {
        vec![
            l.language.clone(),
            l.file_changes.to_string(),
            l.lines_changed.to_string(),
            format!("{:.1}%", l.percentage),
        ]
    });
    html::table(
        &mut b,
        &[
            ("Language", Align::Left),
            ("File changes", Align::Right),
            ("Lines changed", Align::Right),
            ("Share", Align::Right),
        ],
        langs,
    );
    html::page("Git activity report", CSS, &b)
}

fn more(b: &mut String, total: usize) {
    if total > MAX_ROWS {
        let _ =
            writeln!(b, "<p class=\"meta\">… and {} more (all of them are in the JSON report).</p>", total - MAX_ROWS);
    }
}

#[cfg(test)]
mod tests {
    use crate::render::{OutputFormat, write_outputs};
    use crate::report::tests::commit;
    use crate::report::{RepoCommits, build_report};
    use crate::window::{ReportType, resolve_window};

    #[test]
    fn the_html_report_holds_every_chart_inline_and_escapes_hostile_names() {
        let day = 1_704_067_200 + 3 * 86_400; // 2024-01-04
        let window =
            resolve_window(ReportType::Custom, None, Some("2024-01-01"), Some("2024-01-07"), 0).expect("window");
        let evil = RepoCommits {
            name: "<script>alert(1)</script>".into(),
            path: "/r/evil".into(),
            commits: vec![
                commit("e1", "<img src=x onerror=alert(2)>@e", day, &[("<svg onload=alert(3)>.rs", Some(4), Some(1))]),
                commit("e2", "plain@e", day + 60, &[("src/lib.rs", Some(1), Some(0))]),
            ],
        };
        let report = build_report(&window, &[evil]);
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = write_outputs(&report, dir.path(), OutputFormat::Json, true).expect("write");
        let html = std::fs::read_to_string(paths.html.expect("html")).expect("read");
        assert!(html.starts_with("<!doctype html>"));
        // Every chart is inline (no file is loaded), the daily timeline for a week-long window.
        for chart in ["commit-timeline", "monthly-commits", "top-repositories", "top-authors", "language-distribution"]
        {
            assert!(html.contains(&format!("<figure data-chart=\"{chart}.svg\">\n<svg xmlns=")), "{chart}");
        }
        assert!(html.contains("Commits per day"), "{html}");
        assert_eq!(html.matches("<title>2024-01-04: 2</title>").count(), 1, "one column for the active day: {html}");
        assert!(html.contains("<b>2</b><span>commits</span>"));
        assert!(html.contains("<td>&lt;script&gt;alert(1)&lt;/script&gt;</td><td class=\"num\">2</td>"), "{html}");
        assert!(html.contains("<td>&lt;img src=x onerror=alert(2)&gt;</td>"), "the author name is text: {html}");
        assert!(html.contains(">&lt;script&gt;alert(1)&lt;/script&gt;</text>"), "the chart label is text: {html}");
        for forbidden in ["<script", "<img", "<svg onload", "src=\"http", "<link", "url("] {
            assert!(!html.contains(forbidden), "{forbidden} in the report");
        }
        // Without visualizations the report is still written, without charts.
        let bare = tempfile::tempdir().expect("tempdir");
        let paths = write_outputs(&report, bare.path(), OutputFormat::Markdown, false).expect("write");
        let html = std::fs::read_to_string(paths.html.expect("html")).expect("read");
        assert!(!html.contains("<svg") && html.contains("<h2>Authors</h2>"));
    }
}
