//! Writing the report: JSON, Markdown and SVG bar charts in the output directory.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use alephauto_guest::{JobError, ResultExt, html, schemars, time};
use serde::{Deserialize, Serialize};

use crate::report::Report;

/// Which report files to write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// Markdown only.
    Markdown,
    /// JSON only.
    Json,
    /// Both.
    #[default]
    Both,
}

/// Paths of the files written.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportPaths {
    /// The JSON report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json: Option<String>,
    /// The Markdown report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub markdown: Option<String>,
    /// The HTML report, charts inline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// SVG charts.
    pub charts: Vec<String>,
}

/// The charts of a report: `(file name, SVG)`, in the order the HTML report shows them.
pub fn charts(report: &Report) -> Vec<(&'static str, String)> {
    let monthly: Vec<(String, f64)> =
        report.commits_by_month.iter().map(|m| (m.month.clone(), m.commits as f64)).collect();
    let repos: Vec<(String, f64)> = report
        .repositories
        .iter()
        .filter(|r| r.commits > 0)
        .take(10)
        .map(|r| (r.name.clone(), r.commits as f64))
        .collect();
    let authors: Vec<(String, f64)> =
        report.authors.iter().take(10).map(|a| (a.name.clone(), a.commits as f64)).collect();
    let langs: Vec<(String, f64)> =
        report.languages.iter().take(10).map(|l| (l.language.clone(), l.percentage)).collect();
    vec![
        ("commit-timeline.svg", timeline(report)),
        ("monthly-commits.svg", bar_chart("Commits per month", &monthly, "")),
        ("top-repositories.svg", bar_chart("Top repositories by commits", &repos, "")),
        ("top-authors.svg", bar_chart("Top authors by commits", &authors, "")),
        ("language-distribution.svg", bar_chart("Language distribution (file changes)", &langs, "%")),
    ]
}

/// Windows of at most this many days are charted per day, longer ones per week.
const DAILY_UP_TO: i64 = 31;

/// Commits per day (every day of a short window) or per week (a longer one), as columns.
fn timeline(report: &Report) -> String {
    let p = &report.period;
    if p.days <= DAILY_UP_TO {
        let per_day: std::collections::HashMap<&str, usize> =
            report.commits_by_day.iter().map(|d| (d.date.as_str(), d.commits)).collect();
        let first = p.since.div_euclid(86_400);
        let last = (p.until - 1).div_euclid(86_400).max(first);
        let data: Vec<(String, f64)> = (first..=last)
            .map(|day| {
                let date = time::format_date(day * 86_400);
                let n = per_day.get(date.as_str()).copied().unwrap_or(0);
                (date, n as f64)
            })
            .collect();
        column_chart("Commits per day", &data)
    } else {
        let data: Vec<(String, f64)> =
            report.commits_by_week.iter().map(|w| (w.week.clone(), w.commits as f64)).collect();
        column_chart("Commits per week (weeks start on Monday)", &data)
    }
}

/// Writes the HTML report (always), the chosen formats and the charts into `out`.
pub fn write_outputs(
    report: &Report,
    out: &Path,
    format: OutputFormat,
    charts_on: bool,
) -> Result<ReportPaths, JobError> {
    let mut paths = ReportPaths::default();
    let write = |name: &str, body: &str| -> Result<String, JobError> {
        let p = out.join(name);
        fs::write(&p, body).or_fail_with(|| format!("writing {}", p.display()))?;
        Ok(p.to_string_lossy().into_owned())
    };
    let drawn = if charts_on { charts(report) } else { Vec::new() };
    for (name, svg) in &drawn {
        paths.charts.push(write(name, svg)?);
    }
    let chart_names: Vec<&str> = drawn.iter().map(|c| c.0).collect();
    if matches!(format, OutputFormat::Json | OutputFormat::Both) {
        let body = serde_json::to_string_pretty(report).or_fail("serialising the report")?;
        paths.json = Some(write("git-activity-report.json", &body)?);
    }
    if matches!(format, OutputFormat::Markdown | OutputFormat::Both) {
        paths.markdown = Some(write("git-activity-report.md", &markdown(report, &chart_names))?);
    }
    paths.html = Some(write("git-activity-report.html", &crate::html::render(report, &drawn))?);
    Ok(paths)
}

/// The Markdown report.
pub fn markdown(r: &Report, charts: &[&str]) -> String {
    let t = &r.totals;
    let mut s = String::new();
    let _ = writeln!(s, "# Git activity report\n");
    let _ = writeln!(
        s,
        "Period: {} to {} ({} days, {:?})\n",
        r.period.since_date, r.period.until_date, r.period.days, r.period.report_type
    );
    let _ = writeln!(s, "## Totals\n\n| Metric | Value |\n|---|---:|");
    for (k, v) in [
        ("Commits", t.commits as u64),
        ("Repositories", t.repositories as u64),
        ("Active repositories", t.active_repositories as u64),
        ("Lines added", t.lines_added),
        ("Lines deleted", t.lines_deleted),
        ("Files changed", t.files_changed as u64),
        ("Authors", t.authors as u64),
    ] {
        let _ = writeln!(s, "| {k} | {v} |");
    }
    let _ = writeln!(s, "\n## Commits per month\n\n| Month | Commits |\n|---|---:|");
    for m in &r.commits_by_month {
        let _ = writeln!(s, "| {} | {} |", m.month, m.commits);
    }
    let _ = writeln!(
        s,
        "\n## Repositories\n\n| Repository | Commits | +Lines | -Lines | Files | Last commit |\n|---|---:|---:|---:|---:|---|"
    );
    for x in &r.repositories {
        let last = x.last_commit.as_deref().unwrap_or("-");
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {last} |",
            md_cell(&x.name),
            x.commits,
            x.lines_added,
            x.lines_deleted,
            x.files_changed
        );
    }
    let _ = writeln!(s, "\n## Languages\n\n| Language | File changes | Lines changed | Share |\n|---|---:|---:|---:|");
    for l in &r.languages {
        let _ = writeln!(s, "| {} | {} | {} | {:.1}% |", l.language, l.file_changes, l.lines_changed, l.percentage);
    }
    if !charts.is_empty() {
        let _ = writeln!(s, "\n## Charts\n");
        for c in charts {
            let _ = writeln!(s, "![{c}]({c})\n");
        }
    }
    s
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|")
}

fn xml(s: &str) -> String {
    html::escape(s)
}

/// A horizontal bar chart, one bar per `(label, value)`; an empty data set says so.
pub fn bar_chart(title: &str, data: &[(String, f64)], unit: &str) -> String {
    const W: usize = 640;
    const LABEL: usize = 170;
    const BAR_H: usize = 22;
    let height = 50 + data.len().max(1) * (BAR_H + 6) + 10;
    let max = data.iter().map(|d| d.1).fold(0.0_f64, f64::max);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{height}\" viewBox=\"0 0 {W} {height}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n\
         <text x=\"10\" y=\"24\" font-size=\"16\" font-weight=\"bold\">{}</text>\n",
        xml(title)
    );
    if data.is_empty() {
        s.push_str("<text x=\"10\" y=\"60\" fill=\"#666666\">No activity in this period</text>\n");
    }
    for (i, (label, value)) in data.iter().enumerate() {
        let y = 40 + i * (BAR_H + 6);
        let len = if max > 0.0 { ((W - LABEL - 70) as f64 * value / max).round() as usize } else { 0 };
        let shown = if unit.is_empty() { format!("{value}") } else { format!("{value:.1}{unit}") };
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n<rect class=\"bar\" x=\"{LABEL}\" y=\"{y}\" \
             width=\"{len}\" height=\"{BAR_H}\" fill=\"#4e79a7\"/>\n<text x=\"{}\" y=\"{}\">{}</text>\n",
            LABEL - 8,
            y + 15,
            xml(label),
            LABEL + len + 6,
            y + 15,
            shown
        );
    }
    s.push_str("</svg>\n");
    s
}

/// A column chart over time, one column per `(label, value)`; a few labels under the axis.
pub fn column_chart(title: &str, data: &[(String, f64)]) -> String {
    const W: f64 = 640.0;
    const H: f64 = 260.0;
    const LEFT: f64 = 40.0;
    const TOP: f64 = 40.0;
    const BOTTOM: f64 = 220.0;
    let max = data.iter().map(|d| d.1).fold(0.0_f64, f64::max);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" \
         font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n\
         <text x=\"10\" y=\"24\" font-size=\"16\" font-weight=\"bold\">{}</text>\n\
         <line x1=\"{LEFT}\" y1=\"{BOTTOM}\" x2=\"{}\" y2=\"{BOTTOM}\" stroke=\"#999999\"/>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{max}</text>\n",
        xml(title),
        W - 10.0,
        LEFT - 4.0,
        TOP + 4.0
    );
    if max == 0.0 {
        s.push_str("<text x=\"50\" y=\"130\" fill=\"#666666\">No activity in this period</text>\n");
    }
    let n = data.len().max(1);
    let slot = (W - 10.0 - LEFT) / n as f64;
    // About eight labels, whatever the number of columns.
    let every = n.div_ceil(8);
    for (i, (label, value)) in data.iter().enumerate() {
        let x = LEFT + slot * i as f64;
        let h = if max > 0.0 { (BOTTOM - TOP) * value / max } else { 0.0 };
        if h > 0.0 {
            let _ = writeln!(
                s,
                "<rect class=\"bar\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"#4e79a7\">\
                 <title>{}: {value}</title></rect>",
                x + slot * 0.1,
                BOTTOM - h,
                slot * 0.8,
                xml(label)
            );
        }
        if i % every == 0 {
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                x + slot / 2.0,
                BOTTOM + 16.0,
                xml(label.get(5..).filter(|_| n <= 31).unwrap_or(label))
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample;

    #[test]
    fn writes_reports_and_charts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = write_outputs(&sample(), dir.path(), OutputFormat::Both, true).expect("write");
        assert_eq!(paths.charts.len(), 5);
        let md = fs::read_to_string(paths.markdown.expect("markdown")).expect("read");
        assert!(md.contains("| alpha | 2 | 14 | 3 | 3 | 2024-02-02 |"));
        assert!(md.contains("| 2024-02 | 2 |"));
        assert!(md.contains("![monthly-commits.svg](monthly-commits.svg)"));
        let json: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(paths.json.expect("json")).expect("read")).expect("valid JSON");
        assert_eq!(json["totals"]["commits"], 3);
        assert_eq!(json["commitsByMonth"][0]["month"], "2024-01");
        let svg = fs::read_to_string(dir.path().join("top-repositories.svg")).expect("read");
        assert_eq!(svg.matches("class=\"bar\"").count(), 2, "idle repository has no bar");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
    }

    #[test]
    fn json_only_without_charts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = write_outputs(&sample(), dir.path(), OutputFormat::Json, false).expect("write");
        assert!(paths.markdown.is_none() && paths.charts.is_empty());
        assert!(paths.html.is_some(), "the HTML report is always written");
        assert_eq!(fs::read_dir(dir.path()).expect("list").count(), 2);
        assert!(bar_chart("Empty <x>", &[], "").contains("No activity"));
    }
}
