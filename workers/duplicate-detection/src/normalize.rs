//! Loading source files and normalising their lines into hashes.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::Path;

use alephauto_guest::walk::{EntryKind, Walker, looks_binary};
use alephauto_guest::{JobError, Level, Reporter, lang, schemars};
use serde::{Deserialize, Serialize};

/// Vendored, generated and build folders never scanned.
const SKIP_DIRS: &[&str] = &[
    "node_modules",
    "vendor",
    "third_party",
    "dist",
    "build",
    "target",
    "out",
    ".next",
    ".nuxt",
    "coverage",
    "__pycache__",
    "venv",
    ".venv",
    "generated",
    "__generated__",
];

/// Files larger than this are generated or data, not code worth comparing.
const MAX_FILE_BYTES: u64 = 512 * 1024;

/// How lines are compared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Lines equal once whitespace is folded.
    #[default]
    Exact,
    /// Identifiers, strings and numbers folded too (finds renamed copies).
    Structural,
}

/// One significant (non-blank, non-comment, non-import) line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    /// Hash of the normalised text.
    pub hash: u64,
    /// 1-based line number in the file.
    pub number: u32,
    /// Tokens on the line.
    pub tokens: u32,
}

/// A source file reduced to its significant lines.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Index of its repository.
    pub repo: usize,
    /// Path relative to the repository.
    pub path: String,
    /// Significant lines, in order.
    pub lines: Vec<Line>,
}

const KEYWORDS: &[&str] = &[
    "if", "else", "for", "while", "return", "function", "fn", "def", "class", "struct", "let", "const", "var", "new",
    "match", "switch", "case", "break", "continue", "try", "catch", "throw", "async", "await", "pub", "impl", "self",
    "this", "true", "false", "null", "None", "in", "of", "import", "export", "from", "static", "public", "private",
];

/// Normalises one line; `None` for lines that carry no code (blank, comment, import, lone punctuation).
pub fn normalize_line(line: &str, mode: Mode) -> Option<(String, u32)> {
    let t = line.trim();
    let comment = ["//", "/*", "*", "<!--", "-->", "# ", "#!"].iter().any(|p| t.starts_with(p)) || t == "#";
    let import = ["import ", "use ", "from ", "#include", "require("].iter().any(|p| t.starts_with(p));
    if t.is_empty() || comment || import || t.chars().filter(|c| c.is_alphanumeric()).count() < 2 {
        return None;
    }
    let mut out = String::with_capacity(t.len());
    let mut tokens = 0u32;
    let mut chars = t.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_whitespace() {
            continue;
        }
        tokens += 1;
        if c.is_alphanumeric() || c == '_' || c == '$' {
            let mut word = String::from(c);
            while let Some(&n) = chars.peek().filter(|n| n.is_alphanumeric() || **n == '_' || **n == '$') {
                word.push(n);
                chars.next();
            }
            let folded = match mode {
                Mode::Exact => word.as_str(),
                Mode::Structural if word.starts_with(|c: char| c.is_ascii_digit()) => "N",
                Mode::Structural if KEYWORDS.contains(&word.as_str()) => word.as_str(),
                Mode::Structural => "I",
            };
            out.push_str(folded);
            out.push(' ');
        } else if (c == '"' || c == '\'' || c == '`') && mode == Mode::Structural {
            // Skip to the closing quote (escapes honoured); the literal becomes `S`.
            let mut escaped = false;
            for n in chars.by_ref() {
                if escaped {
                    escaped = false
                } else if n == '\\' {
                    escaped = true
                } else if n == c {
                    break;
                }
            }
            out.push_str("S ");
        } else {
            out.push(c);
        }
    }
    Some((out, tokens))
}

fn hash_of(s: &str) -> u64 {
    let mut h = DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

/// Reduces file text to its significant lines.
pub fn significant_lines(text: &str, mode: Mode) -> Vec<Line> {
    text.lines()
        .enumerate()
        .filter_map(|(i, l)| {
            normalize_line(l, mode).map(|(n, tokens)| Line { hash: hash_of(&n), number: i as u32 + 1, tokens })
        })
        .collect()
}

/// Loads the code files of one repository (honouring `.gitignore`, skipping binaries and vendored folders).
pub fn load_repository(repo: usize, root: &Path, mode: Mode, r: &dyn Reporter) -> Result<Vec<SourceFile>, JobError> {
    let walk = Walker::new(root)
        .skip_dir_names(SKIP_DIRS.iter().copied())
        .ignore_patterns(["*.min.js", "*.min.css", "*.bundle.js", "*.generated.*", "*.pb.go", "*_pb2.py"])
        .walk()
        .map_err(|e| JobError::failed(e.to_string()))?;
    let mut files = Vec::new();
    for (n, entry) in walk.enumerate() {
        if n % 256 == 0 {
            r.check_cancelled()?;
        }
        let entry = match entry {
            Ok(e) if e.kind == EntryKind::File => e,
            Ok(_) => continue,
            Err(e) => {
                r.log(Level::Warn, &format!("walk: {e}"));
                continue;
            }
        };
        let is_code = lang::language_for_extension(&lang::extension(&entry.relative)).is_some_and(lang::is_code);
        let small = fs::metadata(&entry.path).is_ok_and(|m| m.len() <= MAX_FILE_BYTES);
        if !is_code || !small {
            continue;
        }
        let Ok(bytes) = fs::read(&entry.path) else {
            continue;
        };
        if looks_binary(&bytes) {
            continue;
        }
        let lines = significant_lines(&String::from_utf8_lossy(&bytes), mode);
        if !lines.is_empty() {
            files.push(SourceFile { repo, path: entry.relative, lines });
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_whitespace_and_structure() {
        let a = normalize_line("  let total = price  * 3;", Mode::Exact).map(|x| x.0);
        let b = normalize_line("let total=price*3;", Mode::Exact).map(|x| x.0);
        assert_eq!(a, b);
        let c = normalize_line("let sum = cost * 7; // \"x\"", Mode::Structural).map(|x| x.0);
        let d = normalize_line("let total = price * 3; // \"y\"", Mode::Structural).map(|x| x.0);
        assert_eq!(c, d);
        assert_ne!(
            normalize_line("let sum = cost * 7;", Mode::Exact),
            normalize_line("let total = price * 3;", Mode::Exact)
        );
        for skip in ["", "   }", "// note", "import x from 'y'", "});", "# comment"] {
            assert_eq!(normalize_line(skip, Mode::Exact), None, "{skip:?}");
        }
        assert_eq!(
            significant_lines("a = 1\n\n}\nbb = 2\n", Mode::Exact).iter().map(|l| l.number).collect::<Vec<_>>(),
            vec![1, 4]
        );
    }
}
