//! Loading source files into token hashes (identifiers and literals folded where the mode
//! asks for it) and finding their function definitions.

use std::fs;
use std::path::Path;

use alephauto_guest::walk::{EntryKind, Walker, looks_binary};
use alephauto_guest::{JobError, Level, Reporter, lang, schemars};
use serde::{Deserialize, Serialize};

use crate::functions::find_functions;
use crate::tokenize::{Kind, Syntax, Token, mix, tokenize};

/// Vendored, generated and build folders never scanned.
pub const SKIP_DIRS: &[&str] = &[
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

/// How tokens are compared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Tokens equal as written (whitespace, comments and imports ignored).
    #[default]
    Exact,
    /// Identifiers, strings and numbers folded too, keywords kept: finds renamed copies.
    Structural,
}

/// A function definition reduced to what grouping needs.
#[derive(Debug, Clone)]
pub struct Function {
    /// Its name.
    pub name: String,
    /// First token index in the file.
    pub start: u32,
    /// One past its last token.
    pub end: u32,
    /// Hash of its tokens with identifiers and literals folded.
    pub shape: u64,
    /// Hash of its tokens as written.
    pub exact: u64,
}

/// A source file reduced to token hashes.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Index of its repository.
    pub repo: usize,
    /// Path relative to the repository.
    pub path: String,
    /// Language name.
    pub language: &'static str,
    /// One hash per token, normalised by the mode.
    pub tokens: Vec<u64>,
    /// The 1-based line of each token.
    pub lines: Vec<u32>,
    /// Function definitions, outer before inner.
    pub functions: Vec<Function>,
}

impl SourceFile {
    /// Tokenises `text` as `language` (a `lang` name); `None` for unsupported languages.
    pub fn parse(repo: usize, path: &str, language: &'static str, text: &str, mode: Mode) -> Option<SourceFile> {
        let syntax = Syntax::for_language(language)?;
        let toks = tokenize(text, syntax);
        let exact: Vec<u64> = toks.iter().map(|t| t.hash).collect();
        let folded: Vec<u64> = toks.iter().zip(&exact).map(|(t, &h)| fold(t, h)).collect();
        let functions = find_functions(&toks, syntax)
            .into_iter()
            .map(|f| Function {
                shape: hash_seq(&folded[f.start..f.end]),
                exact: hash_seq(&exact[f.start..f.end]),
                name: f.name,
                start: f.start as u32,
                end: f.end as u32,
            })
            .collect();
        Some(SourceFile {
            repo,
            path: path.to_owned(),
            language,
            tokens: if mode == Mode::Structural { folded } else { exact },
            lines: toks.iter().map(|t| t.line).collect(),
            functions,
        })
    }

    /// Lines holding at least one token.
    pub fn code_lines(&self) -> usize {
        let mut n = 0;
        let mut last = 0;
        for &l in &self.lines {
            if l != last {
                n += 1;
                last = l;
            }
        }
        n
    }
}

/// A hash of a token sequence.
pub fn hash_seq(tokens: &[u64]) -> u64 {
    tokens.iter().fold(0x9e37_79b9_7f4a_7c15u64, |h, &t| mix(h.rotate_left(5) ^ t))
}

/// The folded hash of a token: identifiers, numbers and strings lose their text.
fn fold(t: &Token, exact: u64) -> u64 {
    match t.kind {
        Kind::Ident => 0x1d1d_1d1d_1d1d_1d1d,
        Kind::Number => 0x4e4e_4e4e_4e4e_4e4e,
        Kind::Str => 0x5353_5353_5353_5353,
        Kind::Keyword | Kind::Punct => exact,
    }
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
        let Some(language) = lang::language_for_extension(&lang::extension(&entry.relative)) else {
            continue;
        };
        if Syntax::for_language(language).is_none()
            || !fs::metadata(&entry.path).is_ok_and(|m| m.len() <= MAX_FILE_BYTES)
        {
            continue;
        }
        let Ok(bytes) = fs::read(&entry.path) else {
            r.log(Level::Warn, &format!("unreadable: {}", entry.relative));
            continue;
        };
        if looks_binary(&bytes) {
            continue;
        }
        let text = String::from_utf8_lossy(&bytes);
        if let Some(file) = SourceFile::parse(repo, &entry.relative, language, &text, mode)
            && !file.tokens.is_empty()
        {
            files.push(file);
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structural_mode_folds_names_and_literals_only() {
        let a = SourceFile::parse(0, "a.ts", "TypeScript", "let total = price * 3; // x", Mode::Structural).unwrap();
        let b = SourceFile::parse(0, "b.ts", "TypeScript", "let sum=cost*7;", Mode::Structural).unwrap();
        assert_eq!(a.tokens, b.tokens);
        let c = SourceFile::parse(0, "c.ts", "TypeScript", "const sum=cost*7;", Mode::Structural).unwrap();
        assert_ne!(a.tokens, c.tokens, "keywords are kept");
        let e1 = SourceFile::parse(0, "a.ts", "TypeScript", "let total = price * 3;", Mode::Exact).unwrap();
        let e2 = SourceFile::parse(0, "b.ts", "TypeScript", "let  total=price*3 ;", Mode::Exact).unwrap();
        let e3 = SourceFile::parse(0, "b.ts", "TypeScript", "let sum = cost * 7;", Mode::Exact).unwrap();
        assert_eq!(e1.tokens, e2.tokens);
        assert_ne!(e1.tokens, e3.tokens);
        assert!(SourceFile::parse(0, "x.md", "Markdown", "# hi", Mode::Exact).is_none());
        assert_eq!(
            SourceFile::parse(0, "x.py", "Python", "a = 1\n\n# c\nb = 2\n", Mode::Exact).unwrap().code_lines(),
            2
        );
    }
}
