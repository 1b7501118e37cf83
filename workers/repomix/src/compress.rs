//! `compress`: keep the structure of a source file and drop the bodies, like `repomix --compress`
//! (imports, comments, signatures of functions and methods, type definitions, class and impl
//! outlines; chunks that are not adjacent in the file are separated by a `⋮----` line).
//!
//! repomix does this with tree-sitter queries. tree-sitter's parsers are C; building them for
//! wasm32-wasip2 needs clang with a WASI sysroot, and Debian 12's clang 14 and 2022 wasi-libc know
//! only preview 1 (and the TypeScript grammar alone is ~10 MB of C per build on two cores). So this
//! is a lexer-level extractor per language instead: a scanner that knows strings, comments, raw
//! strings, template literals and (for Python) indentation, and line rules for definitions.

/// The chunk separator the CLI uses.
pub const CHUNK_SEPARATOR: &str = "⋮----";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lang {
    Rust,
    Script,
    Python,
}

fn lang_of(rel: &str) -> Option<Lang> {
    let ext = rel.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase())?;
    match ext.as_str() {
        "rs" => Some(Lang::Rust),
        "ts" | "tsx" | "mts" | "cts" | "js" | "jsx" | "mjs" | "cjs" => Some(Lang::Script),
        "py" | "pyi" | "pyw" => Some(Lang::Python),
        _ => None,
    }
}

/// The compressed content, or None for a language it does not handle (packed whole).
pub fn compress(rel: &str, text: &str) -> Option<String> {
    let lang = lang_of(rel)?;
    let lines: Vec<&str> = text.split('\n').collect();
    let keep = match lang {
        Lang::Python => python(&lines),
        _ => braces(lang, &lines, &scan_braces(lang, text, lines.len())),
    };
    Some(render(&keep))
}

/// Joins kept lines: runs of adjacent kept lines form a chunk; chunks are separated.
fn render(keep: &[Option<String>]) -> String {
    let mut out = String::new();
    let mut prev: Option<usize> = None;
    for (i, k) in keep.iter().enumerate() {
        let Some(text) = k else { continue };
        if text.trim().is_empty() && prev.is_none() {
            continue;
        }
        match prev {
            Some(p) if p + 1 == i => out.push('\n'),
            Some(_) => {
                out.push('\n');
                out.push_str(CHUNK_SEPARATOR);
                out.push('\n');
            }
            None => {}
        }
        out.push_str(text.trim_end());
        prev = Some(i);
    }
    out
}

/// Per line: the code with string contents and comments blanked, and whether the line holds
/// nothing but comment (or is inside a block comment).
struct LineCode {
    code: String,
    comment_only: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum State {
    Code,
    Block(u32),
    Str(char),
    RawStr(usize),
    Template,
}

fn scan_braces(lang: Lang, text: &str, n_lines: usize) -> Vec<LineCode> {
    let mut out = Vec::with_capacity(n_lines);
    let mut state = State::Code;
    for line in text.split('\n') {
        let started_in_comment = matches!(state, State::Block(_));
        let mut code = String::with_capacity(line.len());
        let mut has_comment = started_in_comment;
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let next = chars.get(i + 1).copied();
            match state {
                State::Code => {
                    if c == '/' && next == Some('/') {
                        has_comment = true;
                        break;
                    } else if c == '/' && next == Some('*') {
                        has_comment = true;
                        state = State::Block(1);
                        i += 1;
                    } else if c == '"' || (lang == Lang::Script && c == '\'') {
                        state = State::Str(c);
                        code.push(c);
                    } else if lang == Lang::Script && c == '`' {
                        state = State::Template;
                        code.push(c);
                    } else if lang == Lang::Rust
                        && c == 'r'
                        && (next == Some('#') || next == Some('"'))
                        && !prev_ident(&chars, i)
                    {
                        let hashes = chars[i + 1..].iter().take_while(|&&h| h == '#').count();
                        if chars.get(i + 1 + hashes) == Some(&'"') {
                            state = State::RawStr(hashes);
                            code.push('"');
                            i += 1 + hashes;
                        } else {
                            code.push(c);
                        }
                    } else if lang == Lang::Rust && c == '\'' {
                        // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
                        if next == Some('\\') {
                            let end = chars[i + 2..].iter().position(|&x| x == '\'').map(|p| i + 2 + p);
                            code.push_str("' '");
                            i = end.unwrap_or(chars.len());
                        } else if chars.get(i + 2) == Some(&'\'') {
                            code.push_str("' '");
                            i += 2;
                        } else {
                            code.push(c);
                        }
                    } else {
                        code.push(c);
                    }
                }
                State::Block(depth) => {
                    if c == '*' && next == Some('/') {
                        state = if depth > 1 { State::Block(depth - 1) } else { State::Code };
                        i += 1;
                    } else if lang == Lang::Rust && c == '/' && next == Some('*') {
                        state = State::Block(depth + 1);
                        i += 1;
                    }
                }
                State::Str(q) => {
                    if c == '\\' {
                        i += 1;
                    } else if c == q {
                        state = State::Code;
                        code.push(c);
                    }
                }
                State::RawStr(hashes) => {
                    if c == '"' && chars[i + 1..].iter().take(hashes).filter(|&&h| h == '#').count() == hashes {
                        state = State::Code;
                        code.push('"');
                        i += hashes;
                    }
                }
                State::Template => {
                    if c == '\\' {
                        i += 1;
                    } else if c == '`' {
                        state = State::Code;
                        code.push(c);
                    }
                }
            }
            i += 1;
        }
        // A JavaScript string cannot span lines (unlike a template or a Rust string).
        if lang == Lang::Script && matches!(state, State::Str(_)) {
            state = State::Code;
        }
        let comment_only = has_comment && code.trim().is_empty();
        out.push(LineCode { code, comment_only });
    }
    out
}

fn prev_ident(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

/// What a `{` opened by a kept header leads to.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Body {
    /// Members are examined (impl, trait, mod, class, namespace).
    Outline,
    /// Kept whole (struct, enum, union, interface, type literal).
    Whole,
    /// Dropped (function bodies, initialisers, statements).
    Drop,
}

fn strip_prefixes<'a>(mut s: &'a str, words: &[&str]) -> &'a str {
    loop {
        let before = s;
        for w in words {
            if let Some(rest) = s.strip_prefix(w)
                && (rest.starts_with(char::is_whitespace) || rest.starts_with('('))
            {
                s = rest.trim_start();
                // `pub(crate)`.
                if s.starts_with('(')
                    && *w == "pub"
                    && let Some(end) = s.find(')')
                {
                    s = s[end + 1..].trim_start();
                }
            }
        }
        if s == before {
            return s;
        }
    }
}

fn word_at(s: &str) -> &str {
    let end =
        s.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '!' || c == '$' || c == '*')).unwrap_or(s.len());
    &s[..end]
}

/// Classifies a line of code that starts a statement in an outline scope: Some(body kind of
/// the block it opens) when it is a definition to keep.
fn definition(lang: Lang, code: &str, in_class: bool) -> Option<Body> {
    let t = code.trim_start();
    match lang {
        Lang::Rust => {
            let rest =
                strip_prefixes(t, &["pub", "default", "const", "async", "unsafe", "extern", "\"C\"", "\"Rust\""]);
            match word_at(rest) {
                "fn" | "macro_rules!" => Some(Body::Drop),
                "struct" | "enum" | "union" => Some(Body::Whole),
                "trait" | "impl" | "mod" => Some(Body::Outline),
                "type" | "use" | "static" => Some(Body::Whole),
                "" if rest.starts_with('{') && t.starts_with("extern") => Some(Body::Outline),
                _ if t.starts_with("const ") || t.starts_with("pub const ") || t.starts_with("pub(crate) const ") => {
                    Some(Body::Drop)
                }
                _ => None,
            }
        }
        Lang::Script => {
            let rest = strip_prefixes(t, &["export", "default", "declare", "abstract", "async"]);
            match word_at(rest) {
                "function" | "function*" => return Some(Body::Drop),
                "class" | "namespace" | "module" => return Some(Body::Outline),
                "interface" | "enum" | "type" => return Some(Body::Whole),
                "const" | "let" | "var" if !in_class => {
                    // Arrow functions and function expressions: keep the signature.
                    if rest.contains("=>") || rest.contains("function") || rest.trim_end().ends_with('(') {
                        return Some(Body::Drop);
                    }
                    // Exported values keep their first line.
                    if t.starts_with("export") {
                        return Some(Body::Drop);
                    }
                    return None;
                }
                _ => {}
            }
            if in_class {
                let m = strip_prefixes(
                    t,
                    &[
                        "public",
                        "private",
                        "protected",
                        "static",
                        "readonly",
                        "abstract",
                        "override",
                        "async",
                        "declare",
                        "get",
                        "set",
                        "accessor",
                    ],
                );
                let name = m.trim_start_matches(['#', '*']);
                let ident_end =
                    name.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$')).unwrap_or(name.len());
                if ident_end > 0 || name.starts_with('[') {
                    let after = name[ident_end..].trim_start().trim_start_matches('?').trim_start();
                    if after.starts_with('(') || after.starts_with('<') {
                        return Some(Body::Drop);
                    }
                    // Fields: `name: Type;`, `name = value;` (kept whole).
                    if after.starts_with(':') || after.starts_with('=') || after.starts_with(';') {
                        return Some(Body::Whole);
                    }
                }
            }
            None
        }
        Lang::Python => None,
    }
}

fn is_import(lang: Lang, code: &str) -> bool {
    let t = code.trim_start();
    match lang {
        Lang::Rust => {
            let rest = strip_prefixes(t, &["pub"]);
            rest.starts_with("use ")
                || rest.starts_with("extern crate ")
                || rest.starts_with("mod ") && t.ends_with(';')
        }
        Lang::Script => {
            t.starts_with("import ")
                || t.starts_with("import{")
                || t.starts_with("export * from")
                || (t.starts_with("export {") && t.contains(" from "))
                || t.contains("require(") && (t.starts_with("const ") || t.starts_with("let ") || t.starts_with("var "))
        }
        Lang::Python => false,
    }
}

fn is_attribute(lang: Lang, code: &str) -> bool {
    let t = code.trim_start();
    match lang {
        Lang::Rust => t.starts_with("#[") || t.starts_with("#!["),
        Lang::Script => t.starts_with('@'),
        Lang::Python => false,
    }
}

fn count(code: &str, open: char, close: char) -> i32 {
    code.chars()
        .map(|c| {
            if c == open {
                1
            } else if c == close {
                -1
            } else {
                0
            }
        })
        .sum()
}

/// Brace languages: walks statements of outline scopes, keeping definitions' headers.
fn braces(lang: Lang, lines: &[&str], code: &[LineCode]) -> Vec<Option<String>> {
    let mut keep: Vec<Option<String>> = vec![None; lines.len()];
    // Scopes: (kind, is a class body).
    let mut scopes: Vec<(Body, bool)> = vec![(Body::Outline, false)];
    let mut i = 0;
    while i < lines.len() {
        let (kind, in_class) = *scopes.last().unwrap_or(&(Body::Outline, false));
        let c = &code[i];
        if kind != Body::Outline {
            if kind == Body::Whole {
                keep[i] = Some(lines[i].to_string());
            }
            apply_braces(&c.code, &mut scopes, Body::Drop);
            i += 1;
            continue;
        }
        if c.comment_only {
            keep[i] = Some(lines[i].to_string());
            i += 1;
            continue;
        }
        let trimmed = c.code.trim();
        if trimmed.is_empty() {
            i += 1;
            continue;
        }
        if trimmed.starts_with('}') {
            // Closing the current outline (and whatever follows on the line).
            apply_braces(&c.code, &mut scopes, Body::Drop);
            i += 1;
            continue;
        }
        if is_attribute(lang, &c.code) || is_import(lang, &c.code) {
            // The whole statement, to its end (balanced brackets and a `;` or line end).
            let end = statement_end(code, i, lang);
            for k in i..=end {
                keep[k] = Some(lines[k].to_string());
            }
            i = end + 1;
            continue;
        }
        let def = definition(lang, &c.code, in_class);
        // The header: up to the line where a `{` opens the body, or a `;` / `=>` ends it.
        let end = header_end(code, i);
        let body = def.unwrap_or(Body::Drop);
        if def.is_some() {
            for k in i..end {
                keep[k] = Some(lines[k].to_string());
            }
            keep[end] = Some(cut_body(lines[end], &code[end].code, body));
            if body == Body::Whole && !code[end].code.contains('{') && end > i {
                // Nothing to cut.
                keep[end] = Some(lines[end].to_string());
            }
        }
        let mut opened = false;
        for line in &code[i..=end] {
            let before = scopes.len();
            apply_braces(&line.code, &mut scopes, body);
            opened |= scopes.len() > before;
        }
        if opened && body == Body::Outline {
            let top = scopes.len() - 1;
            let class = lang == Lang::Script
                && word_at(strip_prefixes(trimmed, &["export", "default", "declare", "abstract"])) == "class";
            scopes[top].1 = class;
        }
        i = end + 1;
    }
    keep
}

/// Applies the braces of a line to the scope stack: `{` pushes `kind`, `}` pops.
fn apply_braces(code: &str, scopes: &mut Vec<(Body, bool)>, kind: Body) {
    for ch in code.chars() {
        if ch == '{' {
            // Inside a kept-whole or dropped body every nested block is the same kind.
            let inner = match scopes.last() {
                Some((Body::Outline, _)) | None => kind,
                Some((k, _)) => *k,
            };
            scopes.push((inner, false));
        } else if ch == '}' && scopes.len() > 1 {
            scopes.pop();
        }
    }
}

/// The last line of a header that starts at `start`: the first line (with parentheses and angle
/// brackets balanced) that opens a `{`, or ends with `;`, `=>`, `,` or nothing more to come.
fn header_end(code: &[LineCode], start: usize) -> usize {
    let mut parens = 0;
    for (k, line) in code.iter().enumerate().skip(start) {
        parens += count(&line.code, '(', ')') + count(&line.code, '[', ']');
        let t = line.code.trim_end();
        if parens <= 0 && (t.contains('{') || t.ends_with(';') || t.ends_with("=>") || t.ends_with(',')) {
            return k;
        }
        if parens <= 0 && k > start && !t.ends_with(['=', '|', '&', ':', '<', '+', '-', '(']) && !t.is_empty() {
            // A statement that simply ends at a line break (no `;` style).
            let next = code.get(k + 1).map(|l| l.code.trim_start()).unwrap_or("");
            if !next.starts_with(['{', '.', '?', ':', '=', '|', '&', ')', '>', 'w']) {
                return k;
            }
        }
        if k - start > 40 {
            return start;
        }
    }
    code.len().saturating_sub(1).max(start)
}

fn statement_end(code: &[LineCode], start: usize, lang: Lang) -> usize {
    let mut depth = 0;
    for (k, line) in code.iter().enumerate().skip(start) {
        depth += count(&line.code, '{', '}') + count(&line.code, '(', ')') + count(&line.code, '[', ']');
        let t = line.code.trim_end();
        let attr = is_attribute(lang, &code[start].code);
        if depth <= 0 && (t.ends_with(';') || attr || lang == Lang::Script) {
            return k;
        }
        if k - start > 200 {
            return start;
        }
    }
    code.len().saturating_sub(1).max(start)
}

/// The header line with the body cut off: text before the body's `{` for dropped bodies (and
/// before `=>` / ` = ` for arrow functions and initialisers); kept whole otherwise.
fn cut_body(line: &str, code: &str, body: Body) -> String {
    if body != Body::Drop {
        if body == Body::Outline
            && let Some(p) = code.find('{')
        {
            return line[..byte_pos(line, code, p)].trim_end().to_string();
        }
        return line.to_string();
    }
    let cut =
        [code.find('{'), code.find("=>"), code.find(" = ").filter(|_| !code.contains('('))].into_iter().flatten().min();
    match cut {
        Some(p) => line[..byte_pos(line, code, p)].trim_end().to_string(),
        None => line.to_string(),
    }
}

/// `code` is `line` with comments cut and some literals shortened; map a position in `code` back
/// to `line` by matching the prefix of code characters (both keep the same leading text when the
/// cut happens before any literal, the common case).
fn byte_pos(line: &str, code: &str, p: usize) -> usize {
    let prefix = &code[..p];
    if line.starts_with(prefix) {
        return p;
    }
    // Fall back to the same character in the line itself.
    let target = code[p..].chars().next().unwrap_or('{');
    line.find(target).unwrap_or(line.len())
}

/// Python: imports, comments, decorators, class and def signatures (with docstrings), module and
/// class level assignments; function bodies are dropped.
fn python(lines: &[&str]) -> Vec<Option<String>> {
    let mut keep: Vec<Option<String>> = vec![None; lines.len()];
    let in_string = python_string_lines(lines);
    // Indentation of the def whose body is being skipped.
    let mut skip_deeper_than: Option<usize> = None;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let t = line.trim_start();
        let indent = line.len() - t.len();
        if let Some(d) = skip_deeper_than {
            if t.is_empty() || in_string[i] || indent > d {
                i += 1;
                continue;
            }
            skip_deeper_than = None;
        }
        if t.is_empty() || in_string[i] {
            i += 1;
            continue;
        }
        if t.starts_with('#') || t.starts_with('@') {
            keep[i] = Some(line.to_string());
            i += 1;
            continue;
        }
        let word = word_at(t);
        let is_def = word == "def" || word == "class" || (word == "async" && t[5..].trim_start().starts_with("def"));
        if is_def || word == "import" || word == "from" {
            // To the end of the bracketed statement (a signature ends with `:`).
            let mut depth = 0;
            let mut end = i;
            for (k, l) in lines.iter().enumerate().skip(i) {
                depth += count(l, '(', ')') + count(l, '[', ']');
                end = k;
                if depth <= 0 && (!is_def || l.trim_end().ends_with(':')) && !l.trim_end().ends_with('\\') {
                    break;
                }
            }
            for k in i..=end {
                keep[k] = Some(lines[k].to_string());
            }
            i = end + 1;
            if is_def {
                // The docstring, when the body opens with one.
                if let Some(first) = (i..lines.len()).find(|&k| !lines[k].trim().is_empty()) {
                    let f = lines[first].trim_start();
                    if f.starts_with("\"\"\"") || f.starts_with("'''") || f.starts_with("r\"\"\"") {
                        let mut k = first;
                        while k + 1 < lines.len() && in_string.get(k + 1).copied().unwrap_or(false) {
                            k += 1;
                        }
                        for (j, slot) in keep.iter_mut().enumerate().take(k + 1).skip(first) {
                            *slot = Some(lines[j].to_string());
                        }
                        i = k + 1;
                    }
                }
                if word != "class" {
                    skip_deeper_than = Some(indent);
                }
            }
            continue;
        }
        // Module and class level assignments (constants, fields): the first line.
        if t.contains('=') && !t.starts_with(['(', '[']) && word != "if" && word != "for" && word != "while" {
            keep[i] = Some(line.to_string());
        }
        i += 1;
    }
    keep
}

/// Lines that start inside a triple-quoted string (continuation lines of one).
fn python_string_lines(lines: &[&str]) -> Vec<bool> {
    let mut out = Vec::with_capacity(lines.len());
    let mut open: Option<&str> = None;
    for line in lines {
        out.push(open.is_some());
        let mut rest = *line;
        loop {
            match open {
                Some(q) => match rest.find(q) {
                    Some(p) => {
                        rest = &rest[p + 3..];
                        open = None;
                    }
                    None => break,
                },
                None => {
                    let code = rest.split('#').next().unwrap_or("");
                    let a = code.find("\"\"\"");
                    let b = code.find("'''");
                    let (p, q) = match (a, b) {
                        (Some(x), Some(y)) if y < x => (y, "'''"),
                        (Some(x), _) => (x, "\"\"\""),
                        (None, Some(y)) => (y, "'''"),
                        (None, None) => break,
                    };
                    rest = &rest[p + 3..];
                    open = Some(q);
                }
            }
        }
    }
    out
}

#[cfg(test)]
#[path = "compress/tests.rs"]
mod tests;
