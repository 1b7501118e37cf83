//! Finding test files and counting repeated patterns in them.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use alephauto_guest::walk::{EntryKind, Walker};
use serde::Serialize;

/// A repeated string or expression and how often it occurs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Repeated {
    /// The text.
    pub text: String,
    /// Occurrences.
    pub count: usize,
}

/// Pattern counts over the test files.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Analysis {
    /// `render(` followed by `waitFor(` in the same file (pairs).
    pub render_wait_for: usize,
    /// `toHaveAttribute('href', ...)` assertions.
    pub link_assertions: usize,
    /// Heading queries (`ByRole('heading'`).
    pub heading_checks: usize,
    /// Form interactions (change, type, fill, submit, selectOptions).
    pub form_interactions: usize,
    /// `getByText` strings over 5 characters used 3+ times.
    pub repeated_strings: Vec<Repeated>,
    /// Identical `expect(...)` lines used 3+ times.
    pub repeated_expects: Vec<Repeated>,
}

/// True for `*.test|spec.{ts,tsx,js,jsx}`.
pub fn is_test_file(name: &str) -> bool {
    ["ts", "tsx", "js", "jsx"]
        .iter()
        .any(|ext| name.ends_with(&format!(".test.{ext}")) || name.ends_with(&format!(".spec.{ext}")))
}

/// Test files under the given folders of `repo` (missing folders are skipped), sorted and deduplicated.
pub fn find_test_files(repo: &Path, dirs: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in dirs {
        let root = repo.join(dir);
        if !root.is_dir() {
            continue;
        }
        let Ok(walk) = Walker::new(&root).skip_dir_names(["node_modules", "dist", "build", "coverage"]).walk() else {
            continue;
        };
        out.extend(
            walk.filter_map(Result::ok)
                .filter(|e| e.kind == EntryKind::File && is_test_file(e.relative.rsplit('/').next().unwrap_or("")))
                .map(|e| e.path),
        );
    }
    out.sort();
    out.dedup();
    out
}

/// The first quoted argument after each `needle` (e.g. `getByText(`), when it is a plain literal.
fn quoted_args<'a>(text: &'a str, needle: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(needle) {
        rest = &rest[at + needle.len()..];
        let trimmed = rest.trim_start();
        let Some(q) = trimmed.chars().next().filter(|c| matches!(c, '\'' | '"' | '`')) else {
            continue;
        };
        if let Some(end) = trimmed[1..].find(q) {
            out.push(&trimmed[1..1 + end]);
        }
    }
    out
}

fn count_any(text: &str, needles: &[&str]) -> usize {
    needles.iter().map(|n| text.matches(n).count()).sum()
}

/// Counts patterns over the contents of the test files.
pub fn analyze_files(texts: &[String]) -> Analysis {
    let mut a = Analysis::default();
    let mut strings: BTreeMap<&str, usize> = BTreeMap::new();
    let mut expects: BTreeMap<&str, usize> = BTreeMap::new();
    for t in texts {
        let renders = t.matches("render(").count();
        let waits = t.matches("waitFor(").count();
        a.render_wait_for += renders.min(waits);
        a.link_assertions +=
            count_any(t, &["toHaveAttribute('href'", "toHaveAttribute(\"href\"", "toHaveAttribute(`href`"]);
        a.heading_checks += count_any(t, &["ByRole('heading'", "ByRole(\"heading\""]);
        a.form_interactions += count_any(
            t,
            &["fireEvent.change(", "fireEvent.submit(", "userEvent.type(", "user.type(", ".fill(", "selectOptions("],
        );
        for s in quoted_args(t, "getByText(").into_iter().filter(|s| s.chars().count() > 5) {
            *strings.entry(s).or_default() += 1;
        }
        for line in t.lines().map(str::trim).filter(|l| l.starts_with("expect(")) {
            *expects.entry(line).or_default() += 1;
        }
    }
    let repeated = |m: BTreeMap<&str, usize>| {
        let mut v: Vec<Repeated> =
            m.into_iter().filter(|(_, c)| *c >= 3).map(|(t, count)| Repeated { text: t.to_owned(), count }).collect();
        v.sort_by(|x, y| y.count.cmp(&x.count).then_with(|| x.text.cmp(&y.text)));
        v
    };
    a.repeated_strings = repeated(strings);
    a.repeated_expects = repeated(expects);
    a
}

/// Reads the files, skipping unreadable ones.
pub fn read_all(files: &[PathBuf]) -> Vec<String> {
    files.iter().filter_map(|f| fs::read(f).ok()).map(|b| String::from_utf8_lossy(&b).into_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_patterns() {
        let t = r#"
render(<App />); await waitFor(() => x);
render(<App />);
expect(screen.getByText('Welcome home')).toBeInTheDocument();
expect(screen.getByText('Welcome home')).toBeInTheDocument();
expect(screen.getByText("Welcome home")).toBeInTheDocument();
expect(link).toHaveAttribute('href', '/a');
screen.getByRole('heading', { name: 'Hi' });
fireEvent.change(input, {}); await user.type(box, 'x'); getByText('short')
"#;
        let a = analyze_files(&[t.to_owned()]);
        assert_eq!(a.render_wait_for, 1);
        assert_eq!(a.link_assertions, 1);
        assert_eq!(a.heading_checks, 1);
        assert_eq!(a.form_interactions, 2);
        assert_eq!(a.repeated_strings, vec![Repeated { text: "Welcome home".into(), count: 3 }]);
        assert_eq!(a.repeated_expects.len(), 0, "the third line quotes differently");
        assert!(is_test_file("a.spec.tsx") && is_test_file("b.test.js") && !is_test_file("c.ts"));
    }
}
