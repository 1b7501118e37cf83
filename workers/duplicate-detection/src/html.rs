//! The HTML report (`duplicate-report.html`): totals, what page the job's result holds, and every
//! group with its locations and consolidation suggestion; the highest-ranked groups also show
//! their copies side by side, read back from the scanned files. File names and contents come from
//! the repositories, so every one is escaped (`alephauto_guest::html`).

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use alephauto_guest::html;
use serde_json::Value;

use crate::ScanType;
use crate::detect::{Duplicate, Occurrence};
use crate::report::{Scan, ScanOptions};
use crate::suggest::suggest;

/// Groups per list whose copies are shown side by side (the rest list their locations): keeps
/// the report a size a browser opens at once, whatever the scan found.
pub const EXCERPT_GROUPS: usize = 100;
/// Copies shown side by side per group.
pub const EXCERPT_COPIES: usize = 4;
/// Lines shown per copy.
pub const EXCERPT_LINES: usize = 40;
/// Characters shown per line (minified code has very long ones).
const LINE_CHARS: usize = 240;
/// Bytes read from a file to find an excerpt (the scan skips larger files).
const READ_LIMIT: u64 = 512 * 1024;

const CSS: &str = "\
.group{border:1px solid #d0d7de;border-radius:6px;padding:4px 12px 10px;margin:12px 0}\
.group h3 .tag{font-weight:normal;color:#59636e;font-size:13px}\
.sides{display:grid;grid-template-columns:repeat(auto-fit,minmax(340px,1fr));gap:8px}\
.side{margin:0;min-width:0}.side figcaption{font:12px ui-monospace,monospace;color:#59636e;margin:2px 0;overflow-wrap:anywhere}\
.side pre{margin:0;background:#f6f8fa;border:1px solid #d0d7de;border-radius:4px;padding:6px;overflow:auto;max-height:560px}\
.ln{display:inline-block;min-width:3.5em;color:#8c959f;user-select:none}\
.cut{color:#8c959f;font-style:italic}ul.locs{margin:4px 0;padding-left:20px;font:12px ui-monospace,monospace}";

/// The report as HTML. `page` is the job result's `page` object (what the result holds).
pub fn render(scan_type: ScanType, repos: &[(String, PathBuf)], s: &Scan, o: &ScanOptions, page: &Value) -> String {
    let st = &s.stats;
    let mut b = String::new();
    let kind = match scan_type {
        ScanType::IntraProject => "intra-project",
        ScanType::InterProject => "inter-project",
    };
    let mode = format!("{:?}", o.mode).to_lowercase();
    let _ = writeln!(
        b,
        "<h1>Duplicate code report</h1>\n<p class=\"meta\">{kind} scan, {mode} mode, clones of {}+ tokens and {}+ \
         lines, of:</p>",
        o.min_tokens, o.min_lines
    );
    b.push_str("<ul>");
    for (name, path) in repos {
        let _ =
            write!(b, "<li><b>{}</b> <code>{}</code></li>", html::escape(name), html::escape(&path.to_string_lossy()));
    }
    b.push_str("</ul>\n");
    let n = |k: &str| st[k].to_string();
    html::cards(
        &mut b,
        &[
            ("files scanned", n("filesScanned")),
            ("tokens", n("tokens")),
            ("lines of code", n("significantLines")),
            ("duplicate groups", n("duplicateGroups")),
            ("duplicated lines", format!("{} ({}%)", n("duplicatedLines"), n("duplicatedPercent"))),
            ("duplicated functions", n("functionGroups")),
            ("groups across repositories", n("crossRepositoryGroups")),
            ("lines removable", n("removableLines")),
        ],
    );
    paging(&mut b, s, page);
    groups(&mut b, "Duplicated blocks", &s.duplicates, repos);
    groups(&mut b, "Duplicated functions", &s.functions, repos);
    html::page("Duplicate code report", CSS, &b)
}

/// What this report holds against what the job's result holds.
fn paging(b: &mut String, s: &Scan, page: &Value) {
    let offset = page["offset"].as_u64().unwrap_or(0);
    let shown = |k: &str| page[k].as_u64().unwrap_or(0);
    let _ = write!(
        b,
        "<p class=\"note\" id=\"paging\">This report holds every group: {} duplicated blocks and {} duplicated \
         functions; the copies of the first {EXCERPT_GROUPS} of each are shown side by side. The job's result holds \
         one page of each list: blocks {}, functions {}",
        s.duplicates.len(),
        s.functions.len(),
        range(offset, shown("duplicates")),
        range(offset, shown("functionDuplicates")),
    );
    if page["shortenedForSize"] == true {
        let _ = write!(b, " (shortened to fit the result's size limit; {} were asked for)", page["requestedLimit"]);
    }
    match page["nextOffset"].as_u64() {
        Some(next) => {
            let _ = writeln!(b, "; the next page is <code>offset</code> {next}.</p>");
        }
        None => b.push_str("; it is the last page.</p>\n"),
    }
}

fn range(offset: u64, count: u64) -> String {
    if count == 0 { "none".into() } else { format!("{}–{}", offset + 1, offset + count) }
}

fn groups(b: &mut String, title: &str, list: &[Duplicate], repos: &[(String, PathBuf)]) {
    let _ = writeln!(b, "<h2>{} ({})</h2>", html::escape(title), list.len());
    if list.is_empty() {
        b.push_str("<p>None.</p>\n");
        return;
    }
    for (rank, d) in list.iter().enumerate() {
        group(b, d, repos, rank < EXCERPT_GROUPS);
    }
}

fn group(b: &mut String, d: &Duplicate, repos: &[(String, PathBuf)], excerpts: bool) {
    let mut tags =
        format!("{} lines · {} tokens · {} copies · impact {}", d.lines, d.tokens, d.occurrences.len(), d.impact_score);
    if let Some(sim) = d.similarity {
        let _ = write!(tags, " · {sim}");
    }
    if d.cross_repository {
        tags.push_str(" · across repositories");
    }
    let id = html::escape(&d.id);
    let _ = writeln!(
        b,
        "<section class=\"group\" id=\"{id}\">\n<h3>{id} <span class=\"tag\">{}</span></h3>",
        html::escape(&tags)
    );
    let sug = suggest(d);
    let _ = writeln!(
        b,
        "<p><b>{}</b> ({} priority, {} complexity, {} risk): {}. Target: <code>{}</code>.</p>",
        html::escape(sug.strategy),
        html::escape(sug.priority),
        html::escape(sug.complexity),
        html::escape(sug.migration_risk),
        html::escape(sug.message.trim_end_matches('.')),
        html::escape(&sug.target_location)
    );
    let shown = if excerpts { EXCERPT_COPIES.min(d.occurrences.len()) } else { 0 };
    if shown > 0 {
        b.push_str("<div class=\"sides\">\n");
        for occ in &d.occurrences[..shown] {
            side(b, occ, repos);
        }
        b.push_str("</div>\n");
    }
    if d.occurrences.len() > shown {
        b.push_str("<ul class=\"locs\">");
        for occ in &d.occurrences[shown..] {
            let _ = write!(b, "<li>{}</li>", html::escape(&location(occ)));
        }
        b.push_str("</ul>\n");
    }
    b.push_str("</section>\n");
}

fn location(o: &Occurrence) -> String {
    let func = o.function.as_deref().map(|f| format!(" {f}()")).unwrap_or_default();
    format!("{}:{}:{}-{}{func}", o.repository, o.file, o.start_line, o.end_line)
}

/// One copy: its location and its lines (numbered), read back from the file.
fn side(b: &mut String, o: &Occurrence, repos: &[(String, PathBuf)]) {
    let _ = write!(b, "<figure class=\"side\"><figcaption>{}</figcaption><pre><code>", html::escape(&location(o)));
    let root = repos.iter().find(|(name, _)| *name == o.repository).map(|(_, p)| p.as_path());
    match root.map(|r| excerpt(&r.join(&o.file), o.start_line, o.end_line)) {
        Some(Ok((lines, cut))) => {
            for (i, line) in lines.iter().enumerate() {
                let _ = writeln!(b, "<span class=\"ln\">{}</span>{}", o.start_line as usize + i, html::escape(line));
            }
            if cut > 0 {
                let _ = writeln!(b, "<span class=\"cut\">… {cut} more lines</span>");
            }
        }
        Some(Err(e)) => {
            let _ = writeln!(b, "<span class=\"cut\">could not read the file again: {}</span>", html::escape(&e));
        }
        None => b.push_str("<span class=\"cut\">unknown repository</span>\n"),
    }
    b.push_str("</code></pre></figure>\n");
}

/// Lines `start..=end` (1-based) of `path`, at most [`EXCERPT_LINES`] of them (each cut to
/// [`LINE_CHARS`]), and how many more the span holds.
fn excerpt(path: &Path, start: u32, end: u32) -> Result<(Vec<String>, usize), String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let reader = BufReader::new(file.take(READ_LIMIT));
    let (start, end) = (start.max(1) as usize, end.max(start) as usize);
    let mut lines = Vec::new();
    for line in reader.split(b'\n').skip(start - 1).take((end - start + 1).min(EXCERPT_LINES)) {
        let line = line.map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&line);
        let text = text.strip_suffix('\r').unwrap_or(&text);
        let mut cut: String = text.chars().take(LINE_CHARS).collect();
        if cut.len() < text.len() {
            cut.push('…');
        }
        lines.push(cut);
    }
    Ok((lines, (end - start + 1).saturating_sub(EXCERPT_LINES)))
}

#[cfg(test)]
mod tests {
    use alephauto_guest::Silent;
    use alephauto_guest::testing::put;
    use serde_json::json;

    use super::EXCERPT_LINES;
    use crate::ScanType;
    use crate::report::{ScanOptions, result, scan, write_reports};
    use crate::source::Mode;

    /// A block of code with a hostile string literal in it.
    const BLOCK: &str = "function render(rows) {\n  const head = '<script>alert(1)</script>';\n  let out = head;\n  for (const r of rows) {\n    out += '<td>' + r.name + '</td>';\n  }\n  return out + '</table>';\n}\n";

    #[test]
    fn the_html_report_shows_copies_side_by_side_escaped_with_totals_and_paging() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hostile = "<img src=x onerror=alert(2)>.js";
        put(dir.path(), "a.js", format!("let x = 1;\n{BLOCK}"));
        put(dir.path(), hostile, BLOCK);
        put(dir.path(), "c.js", format!("{BLOCK}{BLOCK}"));
        let repos = vec![("<b>repo</b>".to_owned(), dir.path().to_path_buf())];
        let o = ScanOptions { mode: Mode::Exact, min_tokens: 20, min_lines: 4, offset: 0, limit: 1 };
        let s = scan(ScanType::IntraProject, &repos, &o, &Silent).expect("scan");
        assert!(!s.duplicates.is_empty());
        let v = result(ScanType::IntraProject, &repos, &s, &o);
        let out = tempfile::tempdir().expect("tempdir");
        let paths = write_reports(ScanType::IntraProject, &repos, &s, &o, &v["page"], out.path()).expect("reports");
        let html = std::fs::read_to_string(paths["html"].as_str().expect("path")).expect("read");
        assert!(html.starts_with("<!doctype html>"));
        // Totals and paging.
        assert!(html.contains(&format!("<b>{}</b><span>duplicate groups</span>", s.duplicates.len())), "{html}");
        assert!(html.contains(&format!("<b>{}</b><span>files scanned</span>", v["stats"]["filesScanned"])));
        assert!(html.contains("The job&#39;s result holds") || html.contains("The job's result holds"), "{html}");
        assert!(html.contains("one page of each list: blocks 1–1"), "{html}");
        if v["page"]["nextOffset"] == json!(1) {
            assert!(html.contains("the next page is <code>offset</code> 1."), "{html}");
        }
        // Every group has a section; the first shows its copies side by side with line numbers.
        for d in &s.duplicates {
            assert!(html.contains(&format!("<section class=\"group\" id=\"{}\">", d.id)), "{}", d.id);
        }
        let first = &s.duplicates[0];
        let sides = html.split("<section").nth(1).expect("first group").matches("<figure class=\"side\">").count();
        assert_eq!(sides, first.occurrences.len().min(4), "{html}");
        assert!(
            html.contains("<span class=\"ln\">3</span>  const head = &#39;&lt;script&gt;alert(1)&lt;/script&gt;&#39;;"),
            "{html}"
        );
        // Hostile names and contents are text.
        assert!(html.contains("&lt;img src=x onerror=alert(2)&gt;.js:1-"), "{html}");
        assert!(html.contains("<li><b>&lt;b&gt;repo&lt;/b&gt;</b>"), "{html}");
        for forbidden in ["<script", "<img", "<td>'", "</table>'"] {
            assert!(!html.contains(forbidden), "{forbidden} in the report");
        }
    }

    #[test]
    fn an_excerpt_is_bounded_in_lines_and_characters() {
        let dir = tempfile::tempdir().expect("tempdir");
        let long: String =
            (1..=100).map(|n| format!("line {n} {}\n", "x".repeat(if n == 2 { 1000 } else { 3 }))).collect();
        put(dir.path(), "f.txt", long);
        let (lines, more) = super::excerpt(&dir.path().join("f.txt"), 2, 61).expect("excerpt");
        assert_eq!(lines.len(), EXCERPT_LINES);
        assert_eq!(more, 60 - EXCERPT_LINES);
        assert!(lines[0].starts_with("line 2 ") && lines[0].ends_with('…') && lines[0].chars().count() == 241);
        assert_eq!(lines[1], "line 3 xxx");
        assert!(super::excerpt(&dir.path().join("missing"), 1, 2).is_err());
    }
}
