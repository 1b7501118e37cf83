use super::*;
use alephauto_guest::Silent;
use alephauto_guest::testing::put;

fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = dir.path();
    put(r, ".gitignore", b"*.log\nsecret/\n");
    put(r, "README.md", b"# Demo\n");
    put(r, "src/main.rs", b"fn main() {}\n");
    put(r, "src/util/mod.rs", b"pub fn util() {}\n// ```tricky```\n");
    put(r, ".github/ci.yml", b"on: push\n");
    put(r, "debug.log", b"IGNORED-LOG\n");
    put(r, "secret/key.txt", b"IGNORED-SECRET\n");
    put(r, "node_modules/pkg/index.js", b"IGNORED-NM\n");
    put(r, "package-lock.json", b"IGNORED-LOCK\n");
    put(r, "logo.png", b"\x89PNG\x00\x00");
    put(r, "data.bin", b"ab\x00cd");
    put(r, "notes.tmp", b"EXTRA-IGNORED\n");
    put(r, ".git/config", b"IGNORED-GIT\n");
    dir
}

const KEPT: &[&str] = &[".gitignore", "README.md", "src/main.rs", "src/util/mod.rs", ".github/ci.yml"];

fn opts(style: Style) -> Options {
    Options {
        selection: Selection {
            ignore: vec!["*.tmp".into()],
            use_gitignore: true,
            use_dot_ignore: true,
            use_default_patterns: true,
            max_file_size: 50 * 1024 * 1024,
        },
        style,
        security_check: true,
        compress: false,
        top_files: 5,
    }
}

#[test]
fn xml_pack_holds_every_kept_file_and_no_ignored_one() {
    let src = fixture();
    let out = tempfile::tempdir().expect("tempdir");
    let outcome = pack(src.path(), out.path(), &opts(Style::Xml), &Silent).expect("pack");
    let text = fs::read_to_string(&outcome.output_file).expect("read output");
    for rel in KEPT {
        assert!(text.contains(&format!("<file path=\"{rel}\">")), "missing {rel}");
    }
    assert!(text.contains("fn main() {}"));
    for marker in ["IGNORED-", "EXTRA-IGNORED", "logo.png", "key.txt"] {
        assert!(!text.contains(marker), "{marker} leaked into the pack");
    }
    assert!(text.contains("<directory_structure>\n.github/\n  ci.yml\n"));
    assert_eq!(outcome.files, KEPT.len());
    assert_eq!(outcome.total_lines, 7);
    assert_eq!(outcome.largest_files[0].path, "src/util/mod.rs");
    let mut skipped = outcome.skipped_files.clone();
    skipped.sort();
    assert_eq!(skipped, vec!["data.bin", "logo.png"]);
    assert!(outcome.output_file.ends_with("repomix-output.xml"));
}

#[test]
fn gitignore_can_be_turned_off_and_styles_differ() {
    let src = fixture();
    let out = tempfile::tempdir().expect("tempdir");
    let mut o = opts(Style::Markdown);
    o.selection.use_gitignore = false;
    let outcome = pack(src.path(), out.path(), &o, &Silent).expect("pack");
    let text = fs::read_to_string(&outcome.output_file).expect("read");
    // `*.log` stays out: it is a default pattern, not a .gitignore rule.
    assert!(!text.contains("## File: debug.log") && text.contains("IGNORED-SECRET"));
    assert!(!text.contains("IGNORED-NM") && !text.contains("IGNORED-GIT") && !text.contains("IGNORED-LOCK"));
    assert!(text.contains("````rs\npub fn util()"), "fence must outgrow inner backticks");

    let plain = pack(src.path(), out.path(), &opts(Style::Plain), &Silent).expect("pack");
    let text = fs::read_to_string(&plain.output_file).expect("read");
    assert!(text.contains("File: src/main.rs") && plain.output_file.ends_with(".txt"));
}

#[test]
fn tree_nests_directories() {
    let t = tree(&["a.txt", "src/lib.rs", "src/x/y.rs", "z/q.rs"]);
    assert_eq!(t, "a.txt\nsrc/\n  lib.rs\n  x/\n    y.rs\nz/\n  q.rs\n");
}

#[test]
fn the_html_report_summarises_the_pack_and_escapes_hostile_names() {
    let src = fixture();
    put(src.path(), "<script>alert(1)<!--.js", b"console.log('<script>alert(2)</script>');\n");
    put(
        src.path(),
        "<img src=x onerror=alert(3)>.py",
        b"aws_secret_access_key = \"abcdefghijABCDEFGHIJ0123456789abcdefghij\"\n",
    );
    let out = tempfile::tempdir().expect("tempdir");
    let outcome = pack(src.path(), out.path(), &opts(Style::Xml), &Silent).expect("pack");
    assert!(outcome.report_file.ends_with("repomix-report.html"), "{}", outcome.report_file);
    let html = fs::read_to_string(&outcome.report_file).expect("read report");
    assert!(html.starts_with("<!doctype html>"));
    // Structure: the summary cards and every table, with the figures of the result.
    assert!(html.contains(&format!("<b>{}</b><span>files packed</span>", outcome.files)), "{html}");
    assert!(html.contains(&format!("<b>{}</b><span>tokens (o200k, whole output)</span>", outcome.total_tokens)));
    assert!(html.contains("<b>1</b><span>left out: secrets</span>"), "{html}");
    for heading in ["Largest files", "Most tokens", "Left out: secrets", "Left out: binary, too large or not UTF-8"] {
        assert!(html.contains(&format!("<h2>{heading}</h2>")), "{heading}");
    }
    let biggest = &outcome.largest_files[0];
    let cell = alephauto_guest::html::escape(&biggest.path);
    assert!(html.contains(&format!("<td>{cell}</td><td class=\"num\">{}</td>", biggest.bytes)), "{html}");
    assert!(html.contains("<td>logo.png</td><td>binary-extension</td>"), "{html}");
    // Hostile names are text, never markup; nothing can run or load.
    assert!(html.contains("<td>&lt;script&gt;alert(1)&lt;!--.js</td>"), "{html}");
    assert!(html.contains("<td>&lt;img src=x onerror=alert(3)&gt;.py</td><td>line 1: "), "{html}");
    for forbidden in ["<script", "<img", "<!--", "alert(2)"] {
        assert!(!html.contains(forbidden), "{forbidden} in the report");
    }
}
