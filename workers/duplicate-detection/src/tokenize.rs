//! A lexer shared by every supported language: source text becomes tokens (identifiers,
//! keywords, numbers, strings, operators, punctuation) with their line, comments and
//! whitespace dropped, import statements skipped.
//!
//! Hand-written rather than tree-sitter: tree-sitter's grammars are C, which needs a C
//! toolchain for wasm32-wasip2 that a fresh machine does not have; clone detection needs
//! only tokens, which a lexer per comment/string syntax gives exactly.

/// Comment and string syntax of a language family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// Rust: `//`, nested `/* */`, raw strings, lifetimes.
    Rust,
    /// JavaScript, TypeScript, Java, Go, C, C++, C#, Kotlin, Swift, Scala, Dart, PHP...: `//`, `/* */`, backticks.
    CLike,
    /// Python: `#`, triple-quoted strings, blocks by indentation.
    Python,
    /// Ruby, shell, Perl, R, Elixir: `#` comments.
    Hash,
    /// Lua, SQL, Haskell: `--` comments.
    DashDash,
}

impl Syntax {
    /// The syntax for a language name (as `alephauto_guest::lang` names them), `None` when unsupported.
    pub fn for_language(language: &str) -> Option<Syntax> {
        Some(match language {
            "Rust" => Syntax::Rust,
            "JavaScript" | "TypeScript" | "Java" | "Go" | "C" | "C++" | "C#" | "Kotlin" | "Swift" | "Scala"
            | "Dart" | "PHP" | "Objective-C" | "Vue" | "Svelte" => Syntax::CLike,
            "Python" => Syntax::Python,
            "Ruby" | "Shell" | "Perl" | "R" | "Elixir" | "PowerShell" => Syntax::Hash,
            "Lua" | "SQL" | "Haskell" => Syntax::DashDash,
            _ => return None,
        })
    }
}

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A name that is not a keyword.
    Ident,
    /// A keyword of some supported language.
    Keyword,
    /// A number literal.
    Number,
    /// A string or character literal.
    Str,
    /// An operator or punctuation.
    Punct,
}

/// One token, borrowing its text from the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'a> {
    /// What it is.
    pub kind: Kind,
    /// Its text.
    pub text: &'a str,
    /// 1-based line of its first character.
    pub line: u32,
    /// Indentation (columns) of the line it starts, counted only for the line's first token.
    pub indent: u32,
    /// [`hash_bytes`] of its text.
    pub hash: u64,
}

/// Keywords of the supported languages, kept as themselves when identifiers are folded.
const KEYWORDS: &[&str] = &[
    "False",
    "None",
    "Self",
    "True",
    "abstract",
    "and",
    "as",
    "async",
    "await",
    "begin",
    "break",
    "case",
    "catch",
    "class",
    "const",
    "continue",
    "crate",
    "def",
    "default",
    "defer",
    "del",
    "delete",
    "do",
    "dyn",
    "elif",
    "else",
    "end",
    "enum",
    "except",
    "export",
    "extends",
    "extern",
    "false",
    "final",
    "finally",
    "fn",
    "for",
    "fun",
    "func",
    "function",
    "go",
    "goto",
    "if",
    "impl",
    "implements",
    "in",
    "instanceof",
    "interface",
    "is",
    "lambda",
    "let",
    "local",
    "loop",
    "match",
    "mod",
    "move",
    "mut",
    "new",
    "nil",
    "not",
    "null",
    "of",
    "or",
    "override",
    "package",
    "pass",
    "private",
    "protected",
    "pub",
    "public",
    "raise",
    "readonly",
    "ref",
    "return",
    "self",
    "sizeof",
    "static",
    "struct",
    "super",
    "switch",
    "then",
    "this",
    "throw",
    "throws",
    "trait",
    "true",
    "try",
    "type",
    "typeof",
    "undefined",
    "union",
    "unsafe",
    "until",
    "var",
    "virtual",
    "void",
    "where",
    "while",
    "with",
    "yield",
];

/// The keywords' hashes, sorted: one lookup per identifier costs a few integer comparisons.
fn keyword_hashes() -> &'static [u64] {
    static HASHES: std::sync::OnceLock<Vec<u64>> = std::sync::OnceLock::new();
    HASHES.get_or_init(|| {
        let mut h: Vec<u64> = KEYWORDS.iter().map(|k| hash_bytes(k.as_bytes())).collect();
        h.sort_unstable();
        h
    })
}

/// A well-mixed 64-bit hash of bytes (FNV-1a, then a SplitMix64 finaliser).
pub fn hash_bytes(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &c in b {
        h = (h ^ u64::from(c)).wrapping_mul(0x0100_0000_01b3);
    }
    mix(h)
}

/// SplitMix64's finaliser.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b'$' || c >= 0x80
}

fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

fn is_operator(c: u8) -> bool {
    matches!(c, b'=' | b'+' | b'-' | b'*' | b'/' | b'%' | b'<' | b'>' | b'!' | b'&' | b'|' | b'^' | b'~' | b'?' | b':')
}

struct Lexer<'a> {
    src: &'a str,
    b: &'a [u8],
    i: usize,
    line: u32,
    /// Set at a line's start until its first token.
    line_start: bool,
    indent: u32,
    syntax: Syntax,
}

impl<'a> Lexer<'a> {
    fn peek(&self, k: usize) -> u8 {
        self.b.get(self.i + k).copied().unwrap_or(0)
    }

    fn starts(&self, s: &str) -> bool {
        self.b[self.i..].starts_with(s.as_bytes())
    }

    /// Advances over `n` bytes, counting newlines.
    fn bump(&mut self, n: usize) {
        let end = (self.i + n).min(self.b.len());
        for &c in &self.b[self.i..end] {
            if c == b'\n' {
                self.line += 1;
            }
        }
        self.i = end;
    }

    fn skip_to_line_end(&mut self) {
        while self.i < self.b.len() && self.b[self.i] != b'\n' {
            self.i += 1;
        }
    }

    /// Skips a block comment from `open` to `close`, nested when `nested`.
    fn skip_block(&mut self, open: &str, close: &str, nested: bool) {
        self.bump(open.len());
        let mut depth = 1;
        while self.i < self.b.len() {
            if nested && self.starts(open) {
                depth += 1;
                self.bump(open.len());
            } else if self.starts(close) {
                self.bump(close.len());
                depth -= 1;
                if depth == 0 {
                    return;
                }
            } else {
                self.bump(1);
            }
        }
    }

    /// A quoted literal from the current quote to its unescaped end (or the end of the line
    /// for single-line quotes left open).
    fn quoted(&mut self, quote: u8, multiline: bool) {
        self.bump(1);
        while self.i < self.b.len() {
            let c = self.b[self.i];
            if c == b'\\' {
                self.bump(2);
            } else if c == quote {
                self.bump(1);
                return;
            } else if c == b'\n' && !multiline {
                return;
            } else {
                self.bump(1);
            }
        }
    }

    /// A Rust raw string `r#"..."#` starting at `r` (the caller checked the shape).
    fn raw_string(&mut self) {
        self.bump(1);
        let mut hashes = 0;
        while self.peek(0) == b'#' {
            hashes += 1;
            self.bump(1);
        }
        self.bump(1);
        let close: String = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
        while self.i < self.b.len() && !self.starts(&close) {
            self.bump(1);
        }
        self.bump(close.len());
    }

    fn next(&mut self) -> Option<Token<'a>> {
        loop {
            let c = self.peek(0);
            if self.i >= self.b.len() {
                return None;
            }
            match c {
                b'\n' => {
                    self.bump(1);
                    self.line_start = true;
                    self.indent = 0;
                }
                b' ' | b'\t' | b'\r' | 0x0c => {
                    if self.line_start {
                        self.indent += if c == b'\t' { 4 } else { 1 };
                    }
                    self.i += 1;
                }
                b'/' if matches!(self.syntax, Syntax::Rust | Syntax::CLike) && self.peek(1) == b'/' => {
                    self.skip_to_line_end()
                }
                b'/' if matches!(self.syntax, Syntax::Rust | Syntax::CLike) && self.peek(1) == b'*' => {
                    self.skip_block("/*", "*/", self.syntax == Syntax::Rust)
                }
                b'#' if matches!(self.syntax, Syntax::Python | Syntax::Hash) => self.skip_to_line_end(),
                b'-' if self.syntax == Syntax::DashDash && self.peek(1) == b'-' => self.skip_to_line_end(),
                _ => return Some(self.token()),
            }
        }
    }

    fn token(&mut self) -> Token<'a> {
        let start = self.i;
        let line = self.line;
        let indent = if self.line_start { self.indent } else { 0 };
        self.line_start = false;
        let c = self.peek(0);
        let kind = match c {
            b'r' if self.syntax == Syntax::Rust
                && (self.peek(1) == b'"' || (self.peek(1) == b'#' && self.raw_ahead(1))) =>
            {
                self.raw_string();
                Kind::Str
            }
            b'b' if self.syntax == Syntax::Rust
                && self.peek(1) == b'r'
                && (self.peek(2) == b'"' || self.peek(2) == b'#') =>
            {
                self.bump(1);
                self.raw_string();
                Kind::Str
            }
            b'b' if self.syntax == Syntax::Rust && (self.peek(1) == b'"' || self.peek(1) == b'\'') => {
                self.bump(1);
                self.quoted(self.peek(0), self.peek(0) == b'"');
                Kind::Str
            }
            b'\'' if self.syntax == Syntax::Rust && self.is_lifetime() => {
                self.bump(1);
                while is_ident_char(self.peek(0)) {
                    self.i += 1;
                }
                Kind::Ident
            }
            b'"' | b'\'' if self.syntax == Syntax::Python && self.peek(1) == c && self.peek(2) == c => {
                let close = [c, c, c];
                self.bump(3);
                while self.i < self.b.len() && !self.b[self.i..].starts_with(&close) {
                    self.bump(if self.peek(0) == b'\\' { 2 } else { 1 });
                }
                self.bump(3);
                Kind::Str
            }
            b'"' => {
                self.quoted(b'"', self.syntax == Syntax::Rust);
                Kind::Str
            }
            b'\'' => {
                self.quoted(b'\'', false);
                Kind::Str
            }
            b'`' if self.syntax != Syntax::Rust => {
                self.quoted(b'`', true);
                Kind::Str
            }
            c if c.is_ascii_digit() || (c == b'.' && self.peek(1).is_ascii_digit()) => {
                self.i += 1;
                while self.i < self.b.len() {
                    let n = self.b[self.i];
                    let exponent_sign = (n == b'+' || n == b'-') && matches!(self.b[self.i - 1], b'e' | b'E');
                    if n.is_ascii_alphanumeric()
                        || n == b'_'
                        || (n == b'.' && self.peek(1).is_ascii_digit())
                        || exponent_sign
                    {
                        self.i += 1;
                    } else {
                        break;
                    }
                }
                Kind::Number
            }
            c if is_ident_start(c) => {
                while is_ident_char(self.peek(0)) {
                    self.i += 1;
                }
                // Keep multi-byte identifiers whole without splitting a character.
                while !self.src.is_char_boundary(self.i) {
                    self.i += 1;
                }
                Kind::Ident
            }
            c if is_operator(c) => {
                self.i += 1;
                let comments = matches!(self.syntax, Syntax::Rust | Syntax::CLike);
                while is_operator(self.peek(0))
                    && !(comments && self.peek(0) == b'/' && matches!(self.peek(1), b'/' | b'*'))
                {
                    self.i += 1;
                }
                Kind::Punct
            }
            _ => {
                self.i += 1;
                while !self.src.is_char_boundary(self.i) {
                    self.i += 1;
                }
                Kind::Punct
            }
        };
        let text = &self.src[start..self.i];
        let hash = hash_bytes(text.as_bytes());
        let kind =
            if kind == Kind::Ident && keyword_hashes().binary_search(&hash).is_ok() { Kind::Keyword } else { kind };
        Token { kind, text, line, indent, hash }
    }

    /// `r#...#"`: a raw string, not the raw identifier `r#name`.
    fn raw_ahead(&self, from: usize) -> bool {
        let mut k = from;
        while self.peek(k) == b'#' {
            k += 1;
        }
        self.peek(k) == b'"'
    }

    /// `'a` not followed by a closing quote (`'a'` is a char).
    fn is_lifetime(&self) -> bool {
        if !is_ident_start(self.peek(1)) {
            return false;
        }
        let mut k = 2;
        while is_ident_char(self.peek(k)) {
            k += 1;
        }
        self.peek(k) != b'\''
    }
}

/// Whether an `export` statement (starting after the keyword) re-exports from another module.
fn reexport(rest: &[Token]) -> bool {
    if !rest.first().is_some_and(|t| t.text == "{" || t.text == "*") {
        return false;
    }
    let mut depth = 0i32;
    for t in rest.iter().take(256) {
        match t.text {
            "{" => depth += 1,
            "}" => depth -= 1,
            "from" if depth == 0 => return true,
            ";" => return false,
            _ => {}
        }
    }
    false
}

/// Whether the statement starting at `toks[i]` (its line's first token) imports names.
fn import_at(toks: &[Token], i: usize, syntax: Syntax) -> bool {
    let t = toks[i].text;
    let next = toks.get(i + 1).map(|t| t.text);
    match syntax {
        Syntax::Rust => t == "use" || (t == "pub" && next == Some("use")) || (t == "extern" && next == Some("crate")),
        Syntax::CLike => {
            matches!(t, "import" | "package" | "using")
                || (t == "#" && next == Some("include"))
                || (t == "export" && reexport(&toks[i + 1..]))
        }
        Syntax::Python => t == "import" || (t == "from" && toks[i + 1..].iter().take(8).any(|n| n.text == "import")),
        Syntax::Hash => matches!(t, "require" | "require_relative" | "source" | "library" | "alias" | "import"),
        Syntax::DashDash => t == "import",
    }
}

/// Tokenises `src`, dropping comments, whitespace and import statements.
pub fn tokenize(src: &str, syntax: Syntax) -> Vec<Token<'_>> {
    let mut lx = Lexer { src, b: src.as_bytes(), i: 0, line: 1, line_start: true, indent: 0, syntax };
    let mut all = Vec::new();
    let mut first_of_line = Vec::new();
    let mut last_line = 0;
    while let Some(t) = lx.next() {
        first_of_line.push(t.line != last_line);
        last_line = t.line;
        all.push(t);
    }
    // Import statements run to `;` or the end of the line, outside brackets.
    let mut out = Vec::with_capacity(all.len());
    let mut i = 0;
    while i < all.len() {
        if first_of_line[i] && import_at(&all, i, syntax) {
            let mut depth = 0i32;
            let line = all[i].line;
            let mut cur_line = line;
            while i < all.len() {
                let t = all[i];
                if depth == 0 && t.line != cur_line && syntax != Syntax::Rust && t.text != "from" {
                    break;
                }
                cur_line = t.line;
                i += 1;
                match t.text {
                    "(" | "{" | "[" => depth += 1,
                    ")" | "}" | "]" => depth -= 1,
                    ";" if depth <= 0 => break,
                    _ => {}
                }
            }
            continue;
        }
        out.push(all[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(src: &str, syntax: Syntax) -> Vec<&str> {
        tokenize(src, syntax).iter().map(|t| t.text).collect()
    }

    #[test]
    fn drops_comments_and_keeps_literals_whole() {
        let src = "let s = \"a // not a comment\"; // gone\n/* gone /* nested */ still gone */ let c = 'x';\n";
        assert_eq!(
            texts(src, Syntax::Rust),
            ["let", "s", "=", "\"a // not a comment\"", ";", "let", "c", "=", "'x'", ";"]
        );
        let lifetimes = tokenize("fn f<'a>(x: &'a str) -> r#\"raw \" str\"# {}", Syntax::Rust);
        assert!(lifetimes.iter().any(|t| t.text == "'a" && t.kind == Kind::Ident));
        assert!(lifetimes.iter().any(|t| t.text == "r#\"raw \" str\"#" && t.kind == Kind::Str));
        let py = tokenize("def f(x):  # note\n    \"\"\"Doc\n    string\"\"\"\n    return x ** 2\n", Syntax::Python);
        assert_eq!(
            py.iter().map(|t| t.text).collect::<Vec<_>>(),
            ["def", "f", "(", "x", ")", ":", "\"\"\"Doc\n    string\"\"\"", "return", "x", "**", "2"]
        );
        assert_eq!((py[6].line, py[7].line, py[7].indent), (2, 4, 4));
        let js = texts("const t = `a ${b} c`; x >>>= 1.5e-3;", Syntax::CLike);
        assert_eq!(js, ["const", "t", "=", "`a ${b} c`", ";", "x", ">>>=", "1.5e-3", ";"]);
    }

    #[test]
    fn keywords_are_told_from_identifiers() {
        let kinds: Vec<Kind> = tokenize("fn total None nonempty", Syntax::Rust).iter().map(|t| t.kind).collect();
        assert_eq!(kinds, [Kind::Keyword, Kind::Ident, Kind::Keyword, Kind::Ident]);
    }

    #[test]
    fn skips_imports() {
        let rs = "use std::{\n  fs,\n  io,\n};\npub use a::b;\nfn main() {}\n";
        assert_eq!(texts(rs, Syntax::Rust), ["fn", "main", "(", ")", "{", "}"]);
        let ts = "import {\n  a,\n  b,\n} from './x';\nimport y from 'y'\nexport { z } from './z';\nconst q = 1;\n";
        assert_eq!(texts(ts, Syntax::CLike), ["const", "q", "=", "1", ";"]);
        let py = "from os import (\n  path,\n)\nimport sys\nx = 1\n";
        assert_eq!(texts(py, Syntax::Python), ["x", "=", "1"]);
    }
}
