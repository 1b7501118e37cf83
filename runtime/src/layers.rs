//! The crate's module layering, checked at test time: every file under `src/` is scanned for
//! paths into other top-level modules (`crate::x`, `crate::{x, y}`, `super::` chains that climb
//! to the crate root), the module graph is built from them, and the tests fail on a cycle
//! (printing it, with a file and line for every edge) or on an edge that points up the layers.
//!
//! The scanner is a small lexer (comments, strings and char literals skipped; inline
//! `mod x { }` blocks tracked), so it sees what rustc sees, not what a comment says.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, bottom first. A module may use modules of its own layer or below, never above
/// (and never in a cycle). A new top-level module must be placed here.
const LAYERS: &[&[&str]] = &[
    &["domain"],
    &["config", "metrics", "telemetry", "gitcli", "failpoints"],
    &["events", "store", "artifacts"],
    &["sandbox", "gitflow", "retention"],
    &["registry"],
    &["queue"],
    &["schedule", "runs", "notify"],
    &["api"],
    &["server", "client", "scaffold", "dev"],
    &["cli", "layers"],
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    /// `::`
    Path,
    Punct(char),
}

/// Tokens of `src` with their 1-based line, without comments and literals.
fn lex(src: &str) -> Vec<(Tok, usize)> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    // Skips a quoted literal starting at the quote `i`; returns the index after it.
    let skip_quoted = |mut i: usize, quote: char, line: &mut usize| -> usize {
        i += 1;
        while i < chars.len() && chars[i] != quote {
            if chars[i] == '\\' {
                i += 1;
            }
            if at(i) == '\n' {
                *line += 1;
            }
            i += 1;
        }
        i + 1
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\n' => {
                line += 1;
                i += 1;
            }
            '/' if at(i + 1) == '/' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if at(i + 1) == '*' => {
                let mut depth = 0;
                while i < chars.len() {
                    if chars[i] == '/' && at(i + 1) == '*' {
                        depth += 1;
                        i += 2;
                    } else if chars[i] == '*' && at(i + 1) == '/' {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        if chars[i] == '\n' {
                            line += 1;
                        }
                        i += 1;
                    }
                }
            }
            '"' => i = skip_quoted(i, '"', &mut line),
            '\'' => {
                // A char literal ('a', '\n', '\u{1F600}'), else a lifetime or label.
                if at(i + 1) == '\\' || (at(i + 2) == '\'' && at(i + 1) != '\'') {
                    i = skip_quoted(i, '\'', &mut line);
                } else {
                    i += 1;
                }
            }
            ':' if at(i + 1) == ':' => {
                out.push((Tok::Path, line));
                i += 2;
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                match (word.as_str(), at(i)) {
                    // Raw strings: r"..", r#".."#, br#".."#.
                    ("r" | "br", '"' | '#') if at(i) == '"' || at(i + 1) == '"' || at(i + 1) == '#' => {
                        let mut hashes = 0;
                        while at(i) == '#' {
                            hashes += 1;
                            i += 1;
                        }
                        i += 1; // the opening quote
                        loop {
                            if i >= chars.len() {
                                break;
                            }
                            if chars[i] == '\n' {
                                line += 1;
                            }
                            if chars[i] == '"' && (1..=hashes).all(|h| at(i + h) == '#') {
                                i += 1 + hashes;
                                break;
                            }
                            i += 1;
                        }
                    }
                    ("r", '#') => {} // a raw identifier: its name follows the '#'
                    ("b", '"') => i = skip_quoted(i, '"', &mut line),
                    ("b", '\'') => i = skip_quoted(i, '\'', &mut line),
                    _ => out.push((Tok::Ident(word), line)),
                }
            }
            c if c.is_ascii_digit() => {
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            }
            c if c.is_whitespace() => i += 1,
            c => {
                out.push((Tok::Punct(c), line));
                i += 1;
            }
        }
    }
    out
}

/// One use of another module: the module named, and the line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reference {
    /// First segment after the crate root.
    target: String,
    line: usize,
}

/// The crate-root segments that the paths in `src` (a file whose module path is `module`)
/// lead into.
fn references(src: &str, module: &[String]) -> Vec<Reference> {
    let toks = lex(src);
    let ident = |i: usize| match toks.get(i) {
        Some((Tok::Ident(s), _)) => Some(s.as_str()),
        _ => None,
    };
    let is = |i: usize, t: &Tok| toks.get(i).is_some_and(|(x, _)| x == t);
    let mut out = Vec::new();
    // Inline `mod name {` blocks open at brace depth n: (name, n).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < toks.len() {
        let line = toks[i].1;
        match &toks[i].0 {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            Tok::Ident(w) if w == "mod" && ident(i + 1).is_some() && is(i + 2, &Tok::Punct('{')) => {
                inline.push((ident(i + 1).unwrap_or_default().to_string(), depth + 1));
            }
            Tok::Ident(w)
                if (w == "crate" || w == "super") && is(i + 1, &Tok::Path) && !(i > 0 && is(i - 1, &Tok::Path)) =>
            {
                // How many segments the path climbs; `crate` climbs to the root.
                let here: Vec<&str> =
                    module.iter().map(String::as_str).chain(inline.iter().map(|(n, _)| n.as_str())).collect();
                let mut j = i;
                let mut base: Option<Vec<&str>> = Some(Vec::new());
                if w == "super" {
                    let mut up = 0;
                    while ident(j) == Some("super") && is(j + 1, &Tok::Path) {
                        up += 1;
                        j += 2;
                    }
                    base = here.len().checked_sub(up).map(|n| here[..n].to_vec());
                } else {
                    j += 2;
                }
                let Some(base) = base else {
                    i = j;
                    continue;
                };
                if !base.is_empty() {
                    out.push(Reference { target: base[0].to_string(), line });
                } else if let Some(name) = ident(j) {
                    out.push(Reference { target: name.to_string(), line });
                } else if is(j, &Tok::Punct('{')) {
                    // `crate::{a::x, b}`: the first segment of each item at the group's top level.
                    let mut k = j + 1;
                    let mut nest = 0;
                    let mut expect_item = true;
                    while k < toks.len() {
                        match &toks[k].0 {
                            Tok::Punct('{') => nest += 1,
                            Tok::Punct('}') if nest == 0 => break,
                            Tok::Punct('}') => nest -= 1,
                            Tok::Punct(',') if nest == 0 => expect_item = true,
                            Tok::Ident(name) if expect_item && nest == 0 => {
                                out.push(Reference { target: name.clone(), line: toks[k].1 });
                                expect_item = false;
                            }
                            _ => {}
                        }
                        k += 1;
                    }
                }
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// The module path of a source file, from its path below `src/`.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs");
        if stem != "mod" && stem != "lib" {
            parts.push(stem.to_string());
        }
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// Edges between top-level modules, each with the places that make it.
type Graph = BTreeMap<String, BTreeMap<String, Vec<String>>>;

/// The graph of `files` (path below `src/`, source); `lib.rs` names the top-level modules.
fn graph(files: &[(PathBuf, String)]) -> Graph {
    let lib = files.iter().find(|(p, _)| p == Path::new("lib.rs")).map(|(_, s)| s.as_str()).unwrap_or("");
    let toks = lex(lib);
    let top: BTreeSet<String> = toks
        .windows(3)
        .filter_map(|w| match (&w[0].0, &w[1].0, &w[2].0) {
            (Tok::Ident(m), Tok::Ident(name), Tok::Punct(';')) if m == "mod" => Some(name.clone()),
            _ => None,
        })
        .collect();
    let mut g: Graph = top.iter().map(|m| (m.clone(), BTreeMap::new())).collect();
    for (rel, src) in files {
        let module = module_path(rel);
        // main.rs is the binary's root (it reaches the library as `alephauto::`).
        let Some(from) = module.first().filter(|m| top.contains(*m)) else { continue };
        for r in references(src, &module) {
            if &r.target != from && top.contains(&r.target) {
                let places = g.entry(from.clone()).or_default().entry(r.target).or_default();
                places.push(format!("{}:{}", rel.display(), r.line));
            }
        }
    }
    g
}

/// Every cycle a depth-first search meets (one per back edge), as module lists.
fn cycles(g: &Graph) -> Vec<Vec<String>> {
    fn visit<'a>(
        g: &'a Graph,
        node: &'a str,
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
        out: &mut Vec<Vec<String>>,
    ) {
        stack.push(node);
        for next in g.get(node).into_iter().flat_map(|e| e.keys()) {
            if let Some(pos) = stack.iter().position(|n| n == next) {
                let mut cycle: Vec<String> = stack[pos..].iter().map(|s| s.to_string()).collect();
                cycle.push(next.clone());
                out.push(cycle);
            } else if !done.contains(next.as_str()) {
                visit(g, next, stack, done, out);
            }
        }
        stack.pop();
        done.insert(node);
    }
    let mut out = Vec::new();
    let mut done = BTreeSet::new();
    for node in g.keys() {
        if !done.contains(node.as_str()) {
            visit(g, node, &mut Vec::new(), &mut done, &mut out);
        }
    }
    out
}

/// A cycle with the first place of each of its edges.
fn describe(g: &Graph, cycle: &[String]) -> String {
    let edges: Vec<String> = cycle
        .windows(2)
        .map(|w| {
            let place = g.get(&w[0]).and_then(|e| e.get(&w[1])).and_then(|p| p.first()).cloned().unwrap_or_default();
            format!("  {} -> {}   ({place})", w[0], w[1])
        })
        .collect();
    format!("{}\n{}", cycle.join(" -> "), edges.join("\n"))
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// The crate's own sources: (path below `src/`, text).
fn crate_files() -> Vec<(PathBuf, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    rust_files(&src, &mut paths);
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
            (p.strip_prefix(&src).expect("a path below src").to_path_buf(), text)
        })
        .collect()
}

fn crate_graph() -> Graph {
    graph(&crate_files())
}

/// Places in `src` where the method `name` is called with no arguments (`.name()`).
fn calls(src: &str, name: &str) -> Vec<usize> {
    let toks = lex(src);
    toks.windows(4)
        .filter(|w| {
            w[0].0 == Tok::Punct('.')
                && w[1].0 == Tok::Ident(name.to_string())
                && w[2].0 == Tok::Punct('(')
                && w[3].0 == Tok::Punct(')')
        })
        .map(|w| w[1].1)
        .collect()
}

/// Files outside `sandbox` that still name the `bindgen!` types. The sandbox's single entry
/// for running a job (issue #27) empties this list; it may only shrink.
const BINDINGS_OUTSIDE_SANDBOX: &[&str] = &[];

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(&str, &str)]) -> Vec<(PathBuf, String)> {
        list.iter().map(|(p, s)| (PathBuf::from(p), s.to_string())).collect()
    }

    #[test]
    fn the_module_graph_of_runtime_src_has_no_cycle() {
        let g = crate_graph();
        assert!(g.len() >= 10, "the scan found too few modules: {:?}", g.keys().collect::<Vec<_>>());
        let found = cycles(&g);
        let text: Vec<String> = found.iter().map(|c| describe(&g, c)).collect();
        assert!(found.is_empty(), "import cycles between top-level modules:\n{}", text.join("\n\n"));
    }

    #[test]
    fn every_module_uses_only_its_layer_and_those_below() {
        let g = crate_graph();
        let mut problems = Vec::new();
        for (from, edges) in &g {
            let Some(own) = layer_of(from) else {
                problems.push(format!("module `{from}` is in no layer: add it to layers::LAYERS"));
                continue;
            };
            for (to, places) in edges {
                if layer_of(to).is_none_or(|l| l > own) {
                    problems.push(format!(
                        "`{from}` (layer {own}) uses `{to}`, a layer above it, at {}",
                        places.join(", ")
                    ));
                }
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
        assert!(
            g.get("domain").is_some_and(BTreeMap::is_empty),
            "domain must import nothing from the crate: {:?}",
            g.get("domain")
        );
    }

    #[test]
    fn the_api_reaches_jobs_and_pipelines_only_through_the_queue() {
        let mut problems = Vec::new();
        for (path, src) in crate_files().iter().filter(|(p, _)| p.starts_with("api")) {
            for method in ["store", "registry"] {
                for line in calls(src, method) {
                    problems.push(format!(
                        "{}:{line} calls .{method}(): add a method to the queue instead",
                        path.display()
                    ));
                }
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn the_bindgen_types_stay_inside_the_sandbox() {
        let mut outside = Vec::new();
        for (path, src) in crate_files() {
            let module = module_path(&path);
            let in_sandbox = module.first().is_some_and(|m| m == "sandbox");
            let toks = lex(&src);
            let names_bindings = toks.windows(3).any(|w| {
                w[0].0 == Tok::Ident("sandbox".into()) && w[1].0 == Tok::Path && w[2].0 == Tok::Ident("bindings".into())
            });
            if names_bindings && !in_sandbox {
                outside.push(path.display().to_string());
            }
        }
        let new: Vec<_> = outside.iter().filter(|p| !BINDINGS_OUTSIDE_SANDBOX.contains(&p.as_str())).collect();
        assert!(new.is_empty(), "bindgen types used outside the sandbox in {new:?}: use the sandbox's typed API");
        let gone: Vec<_> = BINDINGS_OUTSIDE_SANDBOX.iter().filter(|p| !outside.iter().any(|o| o == *p)).collect();
        assert!(gone.is_empty(), "{gone:?} no longer use the bindgen types: remove them from BINDINGS_OUTSIDE_SANDBOX");
    }

    #[test]
    fn a_back_edge_is_reported_as_a_cycle_with_its_places() {
        let g = graph(&files(&[
            ("lib.rs", "pub mod a;\npub mod b;\nmod c;\n#[cfg(test)]\nmod d { }"),
            ("a/mod.rs", "use crate::b::X;\n"),
            ("b.rs", "// crate::a in a comment\nconst S: &str = \"crate::a\";\nfn f() { crate::c::g() }\n"),
            ("c.rs", "use crate::{a::{b, Y}, c};\n"),
        ]));
        let found = cycles(&g);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].first(), found[0].last());
        let text = describe(&g, &found[0]);
        for edge in ["a -> b   (a/mod.rs:1)", "b -> c   (b.rs:3)", "c -> a   (c.rs:1)"] {
            assert!(text.contains(edge), "{text}");
        }
        let acyclic = graph(&files(&[("lib.rs", "mod a; mod b;"), ("a.rs", "use crate::b::X;"), ("b.rs", "")]));
        assert!(cycles(&acyclic).is_empty());
    }

    #[test]
    fn super_paths_that_climb_to_the_root_count_and_inline_modules_are_followed() {
        let module = vec!["a".to_string(), "inner".to_string()];
        let src = "use super::super::b::X;\nuse super::Y;\nmod t {\n    use super::super::super::c::Z;\n}\nuse super::super::{d, e::F};\n";
        let targets: Vec<_> = references(src, &module).into_iter().map(|r| (r.target, r.line)).collect();
        assert_eq!(
            targets,
            [("b".into(), 1), ("a".into(), 2), ("c".into(), 4), ("d".into(), 6), ("e".into(), 6)],
            "{targets:?}"
        );
    }

    #[test]
    fn literals_and_lifetimes_do_not_confuse_the_lexer() {
        let src = "fn f<'a>(x: &'a str) -> char { let _ = r#\"crate::x \"quoted\"\"#; let _ = b\"crate::y\"; '\"' }\nuse crate::z;";
        let targets: Vec<_> = references(src, &["m".to_string()]).into_iter().map(|r| (r.target, r.line)).collect();
        assert_eq!(targets, [("z".to_string(), 2)]);
    }
}
