//! Finding function and method definitions in a token stream, for structural (whole-function)
//! duplicates: `fn`, `function`, `def`, `func`, methods (`name(...) ... {` where a definition
//! can stand) and arrow functions bound to a name.

use crate::tokenize::{Kind, Syntax, Token};

/// A function definition: its name and token span `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSpan {
    /// Its name (`<anonymous>` when it has none).
    pub name: String,
    /// First token (the keyword or the name).
    pub start: usize,
    /// One past its last token.
    pub end: usize,
}

/// Words that look like a call followed by a block but are statements.
const CONTROL: &[&str] =
    &["if", "for", "while", "switch", "catch", "with", "return", "new", "else", "match", "loop", "typeof", "await"];

/// Tokens after which a definition can start.
fn definition_may_follow(t: &Token) -> bool {
    matches!(t.text, "{" | "}" | ";" | ")" | "]" | ">")
        || t.kind == Kind::Ident
        || matches!(
            t.text,
            "fn" | "fun"
                | "func"
                | "function"
                | "async"
                | "static"
                | "public"
                | "private"
                | "protected"
                | "override"
                | "pub"
                | "unsafe"
                | "const"
                | "virtual"
                | "final"
                | "abstract"
                | "extern"
                | "export"
                | "default"
                | "get"
                | "set"
                | "*"
        )
}

/// The index of the bracket closing the one at `open`, if any.
fn matching(toks: &[Token], open: usize) -> Option<usize> {
    let (o, c) = match toks[open].text {
        "(" => ("(", ")"),
        "{" => ("{", "}"),
        "[" => ("[", "]"),
        _ => return None,
    };
    let mut depth = 0usize;
    for (k, t) in toks.iter().enumerate().skip(open) {
        if t.text == o {
            depth += 1;
        } else if t.text == c {
            depth -= 1;
            if depth == 0 {
                return Some(k);
            }
        }
    }
    None
}

/// After a parameter list closing at `close`, the `{` that opens the body: only a return
/// type, `where`/`throws` clauses may come between (no `;`, no statement, no `=>`).
fn body_after(toks: &[Token], close: usize, syntax: Syntax) -> Option<usize> {
    let mut depth = 0i32;
    for (k, t) in toks.iter().enumerate().skip(close + 1).take(64) {
        match t.text {
            "{" if depth <= 0 => return Some(k),
            "(" | "[" | "<" => depth += 1,
            ")" | "]" => depth -= 1,
            closers if closers.bytes().all(|c| c == b'>') => depth -= closers.len() as i32,
            ";" | "}" | "=>" => return None,
            "," if depth <= 0 => return None,
            "=" if syntax != Syntax::Rust => return None,
            _ => {}
        }
        if depth < 0 {
            return None;
        }
    }
    None
}

/// The `(` after a name, past generic parameters `<...>` when there are some.
fn params_open(toks: &[Token], name: usize) -> Option<usize> {
    let next = toks.get(name + 1)?;
    if next.text == "(" {
        return Some(name + 1);
    }
    if next.text != "<" {
        return None;
    }
    let mut depth = 0i32;
    for (k, t) in toks.iter().enumerate().skip(name + 1).take(48) {
        match t.text {
            "<" => depth += 1,
            closers if closers.bytes().all(|c| c == b'>') => depth -= closers.len() as i32,
            ";" | "{" | "}" | "=" => return None,
            _ => {}
        }
        if depth <= 0 {
            return toks.get(k + 1).filter(|t| t.text == "(").map(|_| k + 1);
        }
    }
    None
}

/// Python: `def name(...) ...:` then every following line indented deeper than the `def`.
fn python_functions(toks: &[Token], out: &mut Vec<FunctionSpan>) {
    let first_of_line = |k: usize| k == 0 || toks[k - 1].line != toks[k].line;
    for i in 0..toks.len() {
        if toks[i].text != "def" || toks.get(i + 1).is_none_or(|t| t.kind != Kind::Ident) {
            continue;
        }
        // The `def` may follow `async` on its line; the indentation is the line's.
        let line_start = (0..=i).rev().find(|&k| first_of_line(k)).unwrap_or(i);
        let indent = toks[line_start].indent;
        let Some(open) = toks.iter().skip(i + 2).position(|t| t.text == "(").map(|p| p + i + 2) else {
            continue;
        };
        let Some(close) = matching(toks, open) else {
            continue;
        };
        let Some(colon) = toks.iter().skip(close + 1).position(|t| t.text == ":").map(|p| p + close + 1) else {
            continue;
        };
        let mut end = colon + 1;
        while end < toks.len() && !(first_of_line(end) && toks[end].indent <= indent) {
            end += 1;
        }
        if end > colon + 1 {
            out.push(FunctionSpan { name: toks[i + 1].text.to_owned(), start: line_start, end });
        }
    }
}

/// Brace languages: keyword functions, methods and named arrow functions.
fn brace_functions(toks: &[Token], syntax: Syntax, out: &mut Vec<FunctionSpan>) {
    let mut i = 0;
    while i < toks.len() {
        let t = &toks[i];
        let next = toks.get(i + 1).map(|t| t.text);
        // `name(params) ... {`: a definition when a definition can stand before `name`.
        let after_keyword = i > 0 && matches!(toks[i - 1].text, "fn" | "function" | "func" | "fun");
        if (t.kind == Kind::Ident || (after_keyword && t.kind == Kind::Keyword))
            && (after_keyword || !CONTROL.contains(&t.text))
            && (i == 0 || definition_may_follow(&toks[i - 1]))
            && let Some(params) = params_open(toks, i)
            && let Some(close) = matching(toks, params)
            && let Some(open) = body_after(toks, close, syntax)
            && let Some(end) = matching(toks, open)
        {
            let start = keyword_start(toks, i);
            out.push(FunctionSpan { name: t.text.to_owned(), start, end: end + 1 });
            i += 1;
            continue;
        }
        // `name = (params) => {` / `name: async (x) => {` / `name = x => {`.
        if t.kind == Kind::Ident
            && matches!(next, Some("=") | Some(":"))
            && let Some(arrow) = toks.iter().skip(i + 2).take(48).position(|t| t.text == "=>").map(|p| p + i + 2)
            && toks.get(arrow + 1).is_some_and(|t| t.text == "{")
            && arrow_params(&toks[i + 2..arrow])
            && let Some(end) = matching(toks, arrow + 1)
        {
            out.push(FunctionSpan { name: t.text.to_owned(), start: i, end: end + 1 });
        }
        i += 1;
    }
}

/// Tokens between `=` and `=>` that form only `async`, a parameter list and a return type.
fn arrow_params(between: &[Token]) -> bool {
    let rest = match between.first() {
        Some(t) if t.text == "async" => &between[1..],
        _ => between,
    };
    match rest.first() {
        Some(t) if t.kind == Kind::Ident => rest.len() == 1,
        Some(t) if t.text == "(" || t.text == "<" => !rest.iter().any(|t| matches!(t.text, ";" | "{" | "}" | "=")),
        _ => false,
    }
}

/// Moves a definition's start back over its keyword (`fn`, `function`, `def`, `func`, `fun`).
fn keyword_start(toks: &[Token], name: usize) -> usize {
    match name.checked_sub(1).map(|k| toks[k].text) {
        Some("fn" | "function" | "func" | "fun") => name - 1,
        Some("*") if name >= 2 && toks[name - 2].text == "function" => name - 2,
        _ => name,
    }
}

/// Every function definition in `toks`, outer ones before the ones they contain.
pub fn find_functions(toks: &[Token], syntax: Syntax) -> Vec<FunctionSpan> {
    let mut out = Vec::new();
    match syntax {
        Syntax::Python => python_functions(toks, &mut out),
        Syntax::Rust | Syntax::CLike => brace_functions(toks, syntax, &mut out),
        Syntax::Hash | Syntax::DashDash => {}
    }
    out.sort_by_key(|f| (f.start, std::cmp::Reverse(f.end)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenize::tokenize;

    fn names(src: &str, syntax: Syntax) -> Vec<(String, u32, u32)> {
        let toks = tokenize(src, syntax);
        find_functions(&toks, syntax).into_iter().map(|f| (f.name, toks[f.start].line, toks[f.end - 1].line)).collect()
    }

    #[test]
    fn finds_definitions_not_calls() {
        let rs = "impl A {\n    pub fn new(x: u8) -> Self where Self: Sized {\n        call(x);\n        if (x) { }\n    }\n    fn decl(&self);\n    fn g<T: Into<Vec<u8>>>(t: T) -> Result<(), E> {\n        Ok(())\n    }\n}\n";
        assert_eq!(names(rs, Syntax::Rust), [("new".to_owned(), 2, 5), ("g".to_owned(), 7, 9)]);
        let go = "func (r *T) Name(a int) (int, error) {\n\treturn 1, nil\n}\n";
        assert_eq!(names(go, Syntax::CLike), [("Name".to_owned(), 1, 3)]);
        let ts = "export function a(x: number): number {\n  return b(x);\n}\nclass C {\n  async m(y) {\n    return y;\n  }\n}\nconst f = async (z) => {\n  return z;\n};\ncall(() => {\n  x();\n});\n";
        assert_eq!(names(ts, Syntax::CLike), [("a".to_owned(), 1, 3), ("m".to_owned(), 5, 7), ("f".to_owned(), 9, 11)]);
        let py = "class K:\n    def one(self, a):\n        x = a\n\n        return x\n    def two(self):\n        pass\nrest = 1\n";
        assert_eq!(names(py, Syntax::Python), [("one".to_owned(), 2, 5), ("two".to_owned(), 6, 7)]);
    }
}
