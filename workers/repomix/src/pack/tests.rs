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
