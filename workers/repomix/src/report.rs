//! The HTML summary of a pack (`repomix-report.html`): totals, the largest files, the files with
//! the most tokens, and what was left out and why. Paths come from the repository, so every one
//! is escaped (`alephauto_guest::html`).

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use alephauto_guest::html::{self, Align};
use alephauto_guest::{JobError, ResultExt};

use crate::pack::{FileStat, Outcome};

/// The report's file name in the output folder.
pub const REPORT_FILE: &str = "repomix-report.html";

/// Rows listed per table at most (the JSON result has them all); the rest is counted.
const MAX_ROWS: usize = 500;

/// Writes `out_dir/repomix-report.html`; returns its path.
pub fn write_html(o: &Outcome, out_dir: &Path) -> Result<String, JobError> {
    let path = out_dir.join(REPORT_FILE);
    fs::write(&path, render(o)).or_fail_with(|| format!("writing {}", path.display()))?;
    Ok(path.to_string_lossy().into_owned())
}

/// The report as HTML.
pub fn render(o: &Outcome) -> String {
    let mut b = String::new();
    let output_name = Path::new(&o.output_file).file_name().map(|n| n.to_string_lossy().into_owned());
    let _ = write!(
        b,
        "<h1>Repomix pack report</h1>\n<p class=\"meta\">Source <code>{}</code> packed into <code>{}</code> \
         ({} style{}).</p>\n",
        html::escape(&o.source_dir),
        html::escape(output_name.as_deref().unwrap_or(&o.output_file)),
        html::escape(&format!("{:?}", o.style).to_lowercase()),
        if o.compressed { ", compressed to signatures and structure" } else { "" }
    );
    let other_skipped = o.skipped.len();
    html::cards(
        &mut b,
        &[
            ("files packed", o.files.to_string()),
            ("tokens (o200k, whole output)", o.total_tokens.to_string()),
            ("tokens of file contents", o.file_tokens.to_string()),
            ("characters", o.total_chars.to_string()),
            ("lines", o.total_lines.to_string()),
            ("bytes on disk", o.total_bytes.to_string()),
            ("left out: secrets", o.suspicious_files.len().to_string()),
            ("left out: binary, size, encoding", other_skipped.to_string()),
        ],
    );
    b.push_str("<h2>Largest files</h2>\n");
    file_table(&mut b, &o.largest_files, o.file_tokens);
    b.push_str("<h2>Most tokens</h2>\n");
    file_table(&mut b, &o.top_files, o.file_tokens);

    b.push_str("<h2>Left out: secrets</h2>\n");
    if o.suspicious_files.is_empty() {
        b.push_str("<p>No file was flagged by the secret check.</p>\n");
    } else {
        b.push_str(
            "<p class=\"note\">These files were not packed: the secret check (secretlint's recommended rules) \
             flagged them. The findings name the rule and line, never the secret.</p>\n",
        );
        let rows = o.suspicious_files.iter().take(MAX_ROWS).map(|s| {
            let found: Vec<String> = s.findings.iter().map(|f| format!("line {}: {}", f.line, f.rule)).collect();
            vec![s.path.clone(), found.join("; ")]
        });
        html::table(&mut b, &[("File", Align::Left), ("Findings", Align::Left)], rows);
        more(&mut b, o.suspicious_files.len());
    }

    b.push_str("<h2>Left out: binary, too large or not UTF-8</h2>\n");
    if o.skipped.is_empty() {
        b.push_str("<p>None.</p>\n");
    } else {
        let rows = o.skipped.iter().take(MAX_ROWS).map(|s| {
            let reason = serde_json::to_value(s.reason).ok().and_then(|v| v.as_str().map(str::to_owned));
            vec![s.path.clone(), reason.unwrap_or_default()]
        });
        html::table(&mut b, &[("File", Align::Left), ("Reason", Align::Left)], rows);
        more(&mut b, o.skipped.len());
    }
    html::page("Repomix pack report", "", &b)
}

fn file_table(b: &mut String, files: &[FileStat], all_tokens: u64) {
    if files.is_empty() {
        b.push_str("<p>No file was packed.</p>\n");
        return;
    }
    let rows = files.iter().take(MAX_ROWS).map(|f| {
        let share = if all_tokens == 0 { 0.0 } else { 100.0 * f.tokens as f64 / all_tokens as f64 };
        vec![
            f.path.clone(),
            f.bytes.to_string(),
            f.lines.to_string(),
            f.chars.to_string(),
            f.tokens.to_string(),
            format!("{share:.1}%"),
        ]
    });
    html::table(
        b,
        &[
            ("File", Align::Left),
            ("Bytes", Align::Right),
            ("Lines", Align::Right),
            ("Characters", Align::Right),
            ("Tokens", Align::Right),
            ("Share of tokens", Align::Right),
        ],
        rows,
    );
    more(b, files.len());
}

fn more(b: &mut String, total: usize) {
    if total > MAX_ROWS {
        let _ =
            writeln!(b, "<p class=\"meta\">… and {} more (all of them are in the job's result).</p>", total - MAX_ROWS);
    }
}
