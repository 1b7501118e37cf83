//! Selecting, checking, compressing, counting and writing the packed file.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

use alephauto_guest::{JobError, Level, Reporter, ResultExt, schemars};
use serde::{Deserialize, Serialize};

use crate::compress;
use crate::report;
use crate::secrets::{Finding, Scanner};
use crate::select::{self, Selection, SkipReason};
use crate::tokens::Counter;

/// File contents kept in memory between the checking pass and the writing pass; past this the
/// writing pass reads files again.
const KEEP_IN_MEMORY_BYTES: usize = 64 * 1024 * 1024;

/// Output style.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Style {
    /// Repomix's XML-like layout.
    #[default]
    Xml,
    /// Markdown with fenced code blocks.
    Markdown,
    /// Plain text with separators.
    Plain,
}

impl Style {
    fn file_name(self) -> &'static str {
        match self {
            Style::Xml => "repomix-output.xml",
            Style::Markdown => "repomix-output.md",
            Style::Plain => "repomix-output.txt",
        }
    }
}

/// How to pack.
#[derive(Debug, Clone)]
pub struct Options {
    /// Which files.
    pub selection: Selection,
    /// Output style.
    pub style: Style,
    /// Run the secret check and leave flagged files out.
    pub security_check: bool,
    /// Keep only signatures and structure of supported languages.
    pub compress: bool,
    /// How many files `topFiles` lists.
    pub top_files: usize,
}

/// A packed file's size.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileStat {
    /// Path relative to `sourceDir`.
    pub path: String,
    /// Bytes of the file on disk.
    pub bytes: u64,
    /// Lines of the packed content.
    pub lines: u64,
    /// Characters of the packed content (UTF-16 code units, as the repomix CLI counts them).
    pub chars: u64,
    /// o200k tokens of the packed content.
    pub tokens: u64,
}

/// A file left out of the pack and why.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Skipped {
    /// Path relative to `sourceDir`.
    pub path: String,
    /// Why it was left out.
    pub reason: SkipReason,
}

/// A file the secret check flagged (left out of the pack).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Suspicious {
    /// Path relative to `sourceDir`.
    pub path: String,
    /// What was found (rule and line, never the secret).
    pub findings: Vec<Finding>,
}

/// The job result.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// The packed folder.
    pub source_dir: String,
    /// The file written.
    pub output_file: String,
    /// The HTML summary written beside it (`repomix-report.html`).
    pub report_file: String,
    /// Output style.
    pub style: Style,
    /// Whether contents were compressed to signatures and structure.
    pub compressed: bool,
    /// Files packed.
    pub files: usize,
    /// Bytes of the packed files on disk.
    pub total_bytes: u64,
    /// Lines of packed content.
    pub total_lines: u64,
    /// Characters of packed content (UTF-16 code units, as the CLI counts).
    pub total_chars: u64,
    /// o200k tokens of the whole output file (the wrapper once, plus every file's content),
    /// counted as the CLI counts its total.
    pub total_tokens: u64,
    /// o200k tokens of the packed file contents alone.
    pub file_tokens: u64,
    /// The five largest files packed (bytes on disk).
    pub largest_files: Vec<FileStat>,
    /// The `topFilesLength` files with the most tokens.
    pub top_files: Vec<FileStat>,
    /// Paths left out as binary, too large or undecodable.
    pub skipped_files: Vec<String>,
    /// The same, with the reason for each.
    pub skipped: Vec<Skipped>,
    /// Files the secret check flagged and left out (empty when `securityCheck` is off).
    pub suspicious_files: Vec<Suspicious>,
}

/// A file that passed every check, with its packed content when kept in memory.
struct Candidate {
    rel: String,
    path: std::path::PathBuf,
    content: Option<String>,
    stat: FileStat,
}

/// The packed form of a file's text: compressed when asked (and the language is handled), and
/// trimmed, as the CLI packs and counts it.
fn process(rel: &str, text: String, compress: bool) -> String {
    let text = if compress { compress::compress(rel, &text).unwrap_or(text) } else { text };
    let trimmed = text.trim();
    if trimmed.len() == text.len() { text } else { trimmed.to_string() }
}

/// Reads and decodes one listed file, or says why it is skipped (None: unreadable, logged).
fn load(path: &Path, rel: &str, max: u64, r: &dyn Reporter) -> Option<Result<(u64, String), SkipReason>> {
    if select::binary_extension(rel) {
        return Some(Err(SkipReason::BinaryExtension));
    }
    match fs::read(path) {
        Ok(bytes) => Some(select::decode(&bytes, max).map(|t| (bytes.len() as u64, t))),
        Err(e) => {
            r.log(Level::Warn, &format!("skipping unreadable {rel}: {e}"));
            None
        }
    }
}

/// Renders the sorted relative paths as an indented tree (`dir/` lines then their children).
pub fn tree(paths: &[&str]) -> String {
    let mut out = String::new();
    let mut prev: Vec<&str> = Vec::new();
    for path in paths {
        let parts: Vec<&str> = path.split('/').collect();
        let (dirs, name) = parts.split_at(parts.len() - 1);
        let common = prev.iter().zip(dirs).take_while(|(a, b)| a == b).count();
        for (depth, dir) in dirs.iter().enumerate().skip(common) {
            out.push_str(&format!("{}{dir}/\n", "  ".repeat(depth)));
        }
        out.push_str(&format!("{}{}\n", "  ".repeat(dirs.len()), name[0]));
        prev = dirs.to_vec();
    }
    out
}

/// Packs `source` into `out_dir/repomix-output.<ext>`.
pub fn pack(source: &Path, out_dir: &Path, opts: &Options, r: &dyn Reporter) -> Result<Outcome, JobError> {
    r.progress(2, "listing files");
    let listed = select::list(source, &opts.selection, None).map_err(|e| JobError::invalid("ignore", e))?;
    r.progress(10, &format!("checking {} files", listed.len()));
    let scanner = opts.security_check.then(Scanner::new);
    let mut counter = Counter::new();
    let mut skipped = Vec::new();
    let mut suspicious = Vec::new();
    let mut kept = Vec::with_capacity(listed.len());
    let mut in_memory = 0usize;
    let total = listed.len();
    for (n, f) in listed.into_iter().enumerate() {
        if n % 64 == 0 {
            r.check_cancelled()?;
        }
        let (bytes, text) = match load(&f.path, &f.rel, opts.selection.max_file_size, r) {
            None => continue,
            Some(Err(reason)) => {
                skipped.push(Skipped { path: f.rel, reason });
                continue;
            }
            Some(Ok(v)) => v,
        };
        if let Some(scanner) = &scanner {
            let findings = scanner.scan(&f.rel, &text);
            if !findings.is_empty() {
                suspicious.push(Suspicious { path: f.rel, findings });
                continue;
            }
        }
        let content = process(&f.rel, text, opts.compress);
        let stat = FileStat {
            path: f.rel.clone(),
            bytes,
            lines: content.lines().count() as u64,
            chars: content.encode_utf16().count() as u64,
            tokens: counter.count(&content),
        };
        let keep = in_memory + content.len() <= KEEP_IN_MEMORY_BYTES;
        if keep {
            in_memory += content.len();
        }
        kept.push(Candidate { rel: f.rel, path: f.path, content: keep.then_some(content), stat });
        if n % 50 == 0 {
            r.progress(10 + (60 * (n + 1) / total) as u8, &format!("checked {} / {total} files", n + 1));
        }
    }

    r.progress(70, &format!("writing {} files", kept.len()));
    let out_path = out_dir.join(opts.style.file_name());
    let file = File::create(&out_path).or_fail_with(|| format!("creating {}", out_path.display()))?;
    let mut w = BufWriter::new(file);
    let write_err = |e: std::io::Error| JobError::failed(format!("writing {}: {e}", out_path.display()));
    let rels: Vec<&str> = kept.iter().map(|c| c.rel.as_str()).collect();
    // Everything but the file contents, counted once at the end (the CLI's total: wrapper + files).
    let mut wrapper = Vec::new();
    write_header(&mut wrapper, opts.style, source, &tree(&rels), opts.compress).map_err(write_err)?;
    w.write_all(&wrapper).map_err(write_err)?;
    for (n, c) in kept.iter_mut().enumerate() {
        if n % 64 == 0 {
            r.check_cancelled()?;
        }
        let content = match c.content.take() {
            Some(t) => t,
            None => {
                let bytes = fs::read(&c.path).or_fail_with(|| format!("reading {} again", c.rel))?;
                let text = select::decode(&bytes, u64::MAX).unwrap_or_default();
                process(&c.rel, text, opts.compress)
            }
        };
        let (before, after) = file_wrapper(opts.style, &c.rel, &content);
        w.write_all(before.as_bytes()).map_err(write_err)?;
        w.write_all(content.as_bytes()).map_err(write_err)?;
        w.write_all(after.as_bytes()).map_err(write_err)?;
        wrapper.extend_from_slice(before.as_bytes());
        wrapper.extend_from_slice(after.as_bytes());
    }
    if opts.style == Style::Xml {
        w.write_all(b"</files>\n").map_err(write_err)?;
        wrapper.extend_from_slice(b"</files>\n");
    }
    w.flush().map_err(write_err)?;

    let stats: Vec<FileStat> = kept.into_iter().map(|c| c.stat).collect();
    let file_tokens: u64 = stats.iter().map(|s| s.tokens).sum();
    let total_tokens = file_tokens + counter.count(&String::from_utf8_lossy(&wrapper));
    let mut largest = stats.clone();
    largest.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.path.cmp(&b.path)));
    largest.truncate(5);
    let mut top = stats.clone();
    top.sort_by(|a, b| b.tokens.cmp(&a.tokens).then_with(|| b.chars.cmp(&a.chars)).then_with(|| a.path.cmp(&b.path)));
    top.truncate(opts.top_files);
    let mut outcome = Outcome {
        source_dir: source.to_string_lossy().into_owned(),
        output_file: out_path.to_string_lossy().into_owned(),
        report_file: String::new(),
        style: opts.style,
        compressed: opts.compress,
        files: stats.len(),
        total_bytes: stats.iter().map(|s| s.bytes).sum(),
        total_lines: stats.iter().map(|s| s.lines).sum(),
        total_chars: stats.iter().map(|s| s.chars).sum(),
        total_tokens,
        file_tokens,
        largest_files: largest,
        top_files: top,
        skipped_files: skipped.iter().map(|s| s.path.clone()).collect(),
        skipped,
        suspicious_files: suspicious,
    };
    outcome.report_file = report::write_html(&outcome, out_dir)?;
    r.progress(100, &format!("packed {} files", outcome.files));
    Ok(outcome)
}

const PURPOSE: &str = "This file is a merged representation of the repository's text files, packed into a single \
                       document for AI systems. Binary files, dependencies, lock files and files matched by \
                       .gitignore or the extra ignore patterns are left out.";

fn write_header(w: &mut impl Write, style: Style, source: &Path, tree: &str, compressed: bool) -> std::io::Result<()> {
    let src = source.display();
    let note = if compressed { COMPRESSED_NOTE } else { "" };
    match style {
        Style::Xml => write!(
            w,
            "{PURPOSE}{note}\n\n<file_summary>\n<source>{}</source>\n<format>Each file is a <file path=\"...\"> element \
             holding its contents verbatim.</format>\n</file_summary>\n\n<directory_structure>\n{tree}\
             </directory_structure>\n\n<files>\n",
            xml_escape(&src.to_string())
        ),
        Style::Markdown => write!(
            w,
            "# Repository pack\n\n{PURPOSE}{note}\n\nSource: `{src}`\n\n# Directory Structure\n\n```\n{tree}```\n\n# Files\n\n"
        ),
        Style::Plain => {
            let bar = "=".repeat(64);
            write!(
                w,
                "{PURPOSE}{note}\n\nSource: {src}\n\n{bar}\nDirectory Structure\n{bar}\n{tree}\n{bar}\nFiles\n{bar}\n\n"
            )
        }
    }
}

const COMPRESSED_NOTE: &str = " Contents are compressed: only imports, comments, signatures and type structure are \
                               kept; separate chunks are divided by a line holding `\u{22ee}----`.";

/// The text written before and after a file's content.
fn file_wrapper(style: Style, rel: &str, text: &str) -> (String, String) {
    let nl = if text.ends_with('\n') || text.is_empty() { "" } else { "\n" };
    match style {
        Style::Xml => (format!("<file path=\"{}\">\n", xml_escape(rel)), format!("{nl}</file>\n\n")),
        Style::Markdown => {
            let lang = rel.rsplit_once('.').map_or("", |(_, ext)| ext);
            // A fence longer than any backtick run inside the file keeps it intact.
            let fence = "`".repeat(longest_backtick_run(text).max(2) + 1);
            (format!("## File: {rel}\n\n{fence}{lang}\n"), format!("{nl}{fence}\n\n"))
        }
        Style::Plain => (format!("{}\nFile: {rel}\n{}\n", "-".repeat(16), "-".repeat(16)), format!("{nl}\n")),
    }
}

fn longest_backtick_run(text: &str) -> usize {
    text.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests;
