//! Walking, filtering and writing the packed file (streamed: one source file in memory at a time).

use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use alephauto_guest::walk::{EntryKind, Walker, looks_binary};
use alephauto_guest::{JobError, Level, Reporter, ResultExt, schemars};
use serde::{Deserialize, Serialize};

/// Files larger than this are listed as skipped rather than packed.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Always ignored, on top of `.gitignore` (lock files, dependencies, packed outputs).
const DEFAULT_IGNORES: &[&str] = &[
    "node_modules/",
    "package-lock.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "bun.lockb",
    "Cargo.lock",
    "poetry.lock",
    "Pipfile.lock",
    "Gemfile.lock",
    "composer.lock",
    "go.sum",
    "repomix-output.*",
    ".DS_Store",
];

/// Extensions treated as binary without reading them.
const BINARY_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "bmp", "ico", "webp", "pdf", "zip", "gz", "tgz", "xz", "bz2", "7z", "rar", "jar",
    "exe", "dll", "so", "dylib", "a", "o", "wasm", "class", "pyc", "woff", "woff2", "ttf", "otf", "eot", "mp3", "mp4",
    "mov", "avi", "sqlite", "db",
];

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
    /// Extra ignore patterns (gitignore syntax).
    pub extra_ignore: Vec<String>,
    /// Honour `.gitignore`.
    pub use_gitignore: bool,
    /// Output style.
    pub style: Style,
}

/// A packed file's size.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileStat {
    /// Path relative to `sourceDir`.
    pub path: String,
    /// Bytes.
    pub bytes: u64,
    /// Lines.
    pub lines: u64,
}

/// The job result.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// The packed folder.
    pub source_dir: String,
    /// The file written.
    pub output_file: String,
    /// Output style.
    pub style: Style,
    /// Files packed.
    pub files: usize,
    /// Bytes of file contents packed.
    pub total_bytes: u64,
    /// Lines of file contents packed.
    pub total_lines: u64,
    /// The five largest files packed.
    pub largest_files: Vec<FileStat>,
    /// Files left out as binary or too large.
    pub skipped_files: Vec<String>,
}

/// Files to pack as (relative path, full path), sorted.
type FileList = Vec<(String, PathBuf)>;

/// Lists the files to pack and the ones skipped as binary or too large.
fn collect(source: &Path, opts: &Options, r: &dyn Reporter) -> Result<(FileList, Vec<String>), JobError> {
    let walker = Walker::new(source)
        .gitignore(opts.use_gitignore)
        .ignore_patterns(DEFAULT_IGNORES.iter().copied())
        .ignore_patterns(opts.extra_ignore.iter().cloned())
        .walk()
        .map_err(|e| JobError::invalid("ignore", e.to_string()))?;
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    for entry in walker {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                r.log(Level::Warn, &format!("walk: {e}"));
                continue;
            }
        };
        if entry.kind != EntryKind::File {
            continue;
        }
        let ext = entry.path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
        let too_big = fs::metadata(&entry.path).map(|m| m.len() > MAX_FILE_BYTES).unwrap_or(true);
        if too_big || BINARY_EXTENSIONS.contains(&ext.as_str()) || sniff_binary(&entry.path) {
            skipped.push(entry.relative);
        } else {
            files.push((entry.relative, entry.path));
        }
    }
    files.sort();
    Ok((files, skipped))
}

fn sniff_binary(path: &Path) -> bool {
    let mut head = [0u8; 8192];
    match File::open(path).and_then(|mut f| f.read(&mut head)) {
        Ok(n) => looks_binary(&head[..n]),
        Err(_) => true,
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
    r.progress(5, "listing files");
    let (files, skipped) = collect(source, opts, r)?;
    r.progress(20, &format!("packing {} files", files.len()));
    let out_path = out_dir.join(opts.style.file_name());
    let file = File::create(&out_path).or_fail_with(|| format!("creating {}", out_path.display()))?;
    let mut w = BufWriter::new(file);
    let rels: Vec<&str> = files.iter().map(|(rel, _)| rel.as_str()).collect();
    let write_err = |e: std::io::Error| JobError::failed(format!("writing {}: {e}", out_path.display()));
    write_header(&mut w, opts.style, source, &tree(&rels)).map_err(write_err)?;

    let mut stats = Vec::with_capacity(files.len());
    for (n, (rel, path)) in files.iter().enumerate() {
        if n % 64 == 0 {
            r.check_cancelled()?;
        }
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                r.log(Level::Warn, &format!("skipping unreadable {rel}: {e}"));
                continue;
            }
        };
        let text = String::from_utf8_lossy(&bytes);
        let lines = text.lines().count() as u64;
        write_file(&mut w, opts.style, rel, &text).map_err(write_err)?;
        stats.push(FileStat { path: rel.clone(), bytes: bytes.len() as u64, lines });
        if n % 50 == 0 {
            let pct = 20 + (75 * (n + 1) / files.len().max(1)) as u8;
            r.progress(pct, &format!("packed {} / {} files", n + 1, files.len()));
        }
    }
    if opts.style == Style::Xml {
        w.write_all(b"</files>\n").map_err(write_err)?;
    }
    w.flush().map_err(write_err)?;

    let total_bytes = stats.iter().map(|s| s.bytes).sum();
    let total_lines = stats.iter().map(|s| s.lines).sum();
    let count = stats.len();
    stats.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.path.cmp(&b.path)));
    stats.truncate(5);
    r.progress(100, &format!("packed {count} files"));
    Ok(Outcome {
        source_dir: source.to_string_lossy().into_owned(),
        output_file: out_path.to_string_lossy().into_owned(),
        style: opts.style,
        files: count,
        total_bytes,
        total_lines,
        largest_files: stats,
        skipped_files: skipped,
    })
}

const PURPOSE: &str = "This file is a merged representation of the repository's text files, packed into a single \
                       document for AI systems. Binary files, dependencies, lock files and files matched by \
                       .gitignore or the extra ignore patterns are left out.";

fn write_header(w: &mut impl Write, style: Style, source: &Path, tree: &str) -> std::io::Result<()> {
    let src = source.display();
    match style {
        Style::Xml => write!(
            w,
            "{PURPOSE}\n\n<file_summary>\n<source>{}</source>\n<format>Each file is a <file path=\"...\"> element \
             holding its contents verbatim.</format>\n</file_summary>\n\n<directory_structure>\n{tree}\
             </directory_structure>\n\n<files>\n",
            xml_escape(&src.to_string())
        ),
        Style::Markdown => write!(
            w,
            "# Repository pack\n\n{PURPOSE}\n\nSource: `{src}`\n\n# Directory Structure\n\n```\n{tree}```\n\n# Files\n\n"
        ),
        Style::Plain => {
            let bar = "=".repeat(64);
            write!(
                w,
                "{PURPOSE}\n\nSource: {src}\n\n{bar}\nDirectory Structure\n{bar}\n{tree}\n{bar}\nFiles\n{bar}\n\n"
            )
        }
    }
}

fn write_file(w: &mut impl Write, style: Style, rel: &str, text: &str) -> std::io::Result<()> {
    let nl = if text.ends_with('\n') || text.is_empty() { "" } else { "\n" };
    match style {
        Style::Xml => write!(w, "<file path=\"{}\">\n{text}{nl}</file>\n\n", xml_escape(rel)),
        Style::Markdown => {
            let lang = rel.rsplit_once('.').map_or("", |(_, ext)| ext);
            // A fence longer than any backtick run inside the file keeps it intact.
            let fence = "`".repeat(longest_backtick_run(text).max(2) + 1);
            write!(w, "## File: {rel}\n\n{fence}{lang}\n{text}{nl}{fence}\n\n")
        }
        Style::Plain => write!(w, "{}\nFile: {rel}\n{}\n{text}{nl}\n", "-".repeat(16), "-".repeat(16)),
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
