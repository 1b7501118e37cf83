use super::*;

/// An edge-case tree (the same one bench/src/corpus.rs writes for the smoke comparison).
const TREE: &[(&str, &[u8])] = &[
    ("README.md", b"# Fixture\n"),
    ("src/main.rs", b"fn main() {}\n"),
    ("src/lib.rs", b"pub fn f() {}\n"),
    (".env", b"A=1\n"),
    ("sub/.env", b"B=2\n"),
    ("app.log", b"log\n"),
    ("sub/deep/x.log", b"log\n"),
    ("x.pid", b"1\n"),
    ("sub/y.pid", b"2\n"),
    ("dist/bundle.js", b"x\n"),
    ("sub/dist/keep.js", b"k\n"),
    ("build/out.txt", b"o\n"),
    ("target/debug/a.rs", b"a\n"),
    ("sub/target/b.rs", b"b\n"),
    ("vendor/lib.go", b"package v\n"),
    ("sub/vendor/lib.go", b"package v\n"),
    ("node_modules/p/index.js", b"1\n"),
    ("sub/node_modules/q.js", b"2\n"),
    ("Cargo.lock", b"#\n"),
    ("sub/Cargo.lock", b"#\n"),
    ("Cargo.toml.orig", b"#\n"),
    ("package-lock.json", b"{}\n"),
    ("yarn.lock", b"#\n"),
    (".gitignore", b"*.tmp\n/only-root.txt\nignored-dir/\n!keep.tmp\n"),
    ("a.tmp", b"t\n"),
    ("keep.tmp", b"t\n"),
    ("sub/b.tmp", b"t\n"),
    ("only-root.txt", b"r\n"),
    ("sub/only-root.txt", b"r\n"),
    ("ignored-dir/f.txt", b"f\n"),
    ("sub/ignored-dir/g.txt", b"g\n"),
    ("sub/.gitignore", b"local.txt\n"),
    ("sub/local.txt", b"l\n"),
    ("local.txt", b"l\n"),
    (".ignore", b"dot-ignored.txt\n"),
    ("dot-ignored.txt", b"d\n"),
    (".repomixignore", b"docs/internal/\n"),
    ("docs/internal/secret.md", b"s\n"),
    ("docs/guide.md", b"g\n"),
    (".github/workflows/ci.yml", b"on: push\n"),
    (".hidden/config.json", b"{}\n"),
    ("image.PNG", b"png"),
    ("data.bin", b"bin"),
    ("blob.dat", b"dat"),
    ("nul.txt", b"a\x00b\n"),
    ("latin1.txt", b"caf\xe9 cr\xe8me\n"),
    ("bom.txt", b"\xef\xbb\xbfbom text\n"),
    ("repomix-output.xml", b"<x/>\n"),
    ("sub/repomix-output.md", b"x\n"),
    ("__pycache__/m.cpython.pyc", b"c"),
    ("mod.pyc", b"c"),
    ("tool.py", b"print(1)\n"),
    ("_private.rs", b"x\n"),
    ("-dash.rs", b"x\n"),
    ("Zeta.md", b"x\n"),
    ("alpha.md", b"x\n"),
    ("B.md", b"x\n"),
    ("b.md", b"y\n"),
    ("10.txt", b"x\n"),
    ("9.txt", b"x\n"),
    ("a-b.txt", b"x\n"),
    ("a_b.txt", b"x\n"),
    ("a.b.txt", b"x\n"),
    ("ab.txt", b"x\n"),
    ("empty.txt", b""),
    ("sub/a/z.txt", b"z\n"),
    ("sub/a.txt", b"a\n"),
    ("sub/A/y.txt", b"y\n"),
    ("coverage/lcov.info", b"x\n"),
    ("sub/coverage/keep.txt", b"k\n"),
    ("logs/a.txt", b"x\n"),
    ("tmp/a.txt", b"x\n"),
    ("data.cache", b"x\n"),
    ("sub/data.cache", b"x\n"),
    ("notes.bak", b"x\n"),
];

/// What the repomix 1.14.1 CLI packs of TREE, in its order (`repomix DIR`, defaults).
const CLI_PACKED: &[&str] = &[
    ".github/workflows/ci.yml",
    ".hidden/config.json",
    "docs/guide.md",
    "src/lib.rs",
    "src/main.rs",
    "sub/a/z.txt",
    "sub/A/y.txt",
    "sub/coverage/keep.txt",
    "sub/dist/keep.js",
    "sub/vendor/lib.go",
    "sub/.env",
    "sub/.gitignore",
    "sub/a.txt",
    "sub/data.cache",
    "sub/only-root.txt",
    "sub/repomix-output.md",
    "sub/y.pid",
    "_private.rs",
    "-dash.rs",
    ".gitignore",
    ".ignore",
    ".repomixignore",
    "10.txt",
    "9.txt",
    "a_b.txt",
    "a-b.txt",
    "a.b.txt",
    "ab.txt",
    "alpha.md",
    "b.md",
    "B.md",
    "bom.txt",
    "empty.txt",
    "keep.tmp",
    "local.txt",
    "README.md",
    "repomix-output.xml",
    "tool.py",
    "Zeta.md",
];

fn write_tree(root: &Path) {
    for (rel, data) in TREE {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, data).expect("write");
    }
    #[cfg(unix)]
    std::os::unix::fs::symlink("README.md", root.join("link.txt")).expect("symlink");
}

fn defaults() -> Selection {
    Selection {
        ignore: Vec::new(),
        use_gitignore: true,
        use_dot_ignore: true,
        use_default_patterns: true,
        max_file_size: 50 * 1024 * 1024,
    }
}

fn packed(root: &Path, sel: &Selection) -> Vec<String> {
    list(root, sel, None)
        .expect("list")
        .into_iter()
        .filter(|f| !binary_extension(&f.rel))
        .filter(|f| decode(&std::fs::read(&f.path).expect("read"), sel.max_file_size).is_ok())
        .map(|f| f.rel)
        .collect()
}

#[test]
fn selects_and_orders_exactly_like_the_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_tree(dir.path());
    assert_eq!(packed(dir.path(), &defaults()), CLI_PACKED);
}

#[test]
fn switches_and_custom_patterns() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_tree(dir.path());
    let mut sel = defaults();
    sel.use_gitignore = false;
    let got = packed(dir.path(), &sel);
    assert!(got.contains(&"a.tmp".to_string()) && got.contains(&"sub/local.txt".to_string()));
    assert!(!got.contains(&"dot-ignored.txt".to_string()), ".ignore still applies");
    assert!(!got.contains(&"docs/internal/secret.md".to_string()), ".repomixignore always applies");

    let mut sel = defaults();
    sel.use_dot_ignore = false;
    assert!(packed(dir.path(), &sel).contains(&"dot-ignored.txt".to_string()));

    let mut sel = defaults();
    sel.use_default_patterns = false;
    let got = packed(dir.path(), &sel);
    assert!(got.contains(&"Cargo.lock".to_string()) && got.contains(&"node_modules/p/index.js".to_string()));

    // `*.md` is anchored at the top level; `**/*.txt` goes everywhere; `sub/` drops the folder.
    let mut sel = defaults();
    sel.ignore = vec!["*.md".into(), "**/*.txt".into(), "sub/".into()];
    let got = packed(dir.path(), &sel);
    assert!(!got.iter().any(|p| p.ends_with(".txt") || p.starts_with("sub/")), "{got:?}");
    assert!(!got.contains(&"README.md".to_string()) && got.contains(&"docs/guide.md".to_string()), "{got:?}");
}

#[test]
fn decode_reasons_and_limits() {
    assert_eq!(decode(b"a\x00b", 100), Err(SkipReason::BinaryContent));
    assert_eq!(decode(b"\xef\xbb\xbfhi", 100), Ok("hi".to_string()));
    assert_eq!(
        decode(b"caf\xe9 cr\xe8me br\xfbl\xe9e, then a longer line of plain text", 100),
        Err(SkipReason::EncodingError)
    );
    assert_eq!(decode(b"\x01\x02\x03\x04\xff\xfe\x05\x06\x07", 100), Err(SkipReason::BinaryContent));
    assert_eq!(decode(b"0123456789", 9), Err(SkipReason::SizeLimit));
    assert!(binary_extension("a/b.PNG") && binary_extension("x.wasm") && !binary_extension(".png"));
    assert!(!binary_extension("Makefile") && !binary_extension("a.rs"));
}

#[test]
fn normalizes_patterns_like_the_cli() {
    assert_eq!(normalize_glob_pattern("docs/"), "docs");
    assert_eq!(normalize_glob_pattern("**/foo"), "**/foo/**");
    assert_eq!(normalize_glob_pattern("**/foo/**"), "**/foo/**");
    assert_eq!(normalize_glob_pattern("a/**/"), "a/**/");
}

#[test]
fn a_bad_pattern_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sel = defaults();
    sel.ignore = vec!["src/[".into()];
    let err = list(dir.path(), &sel, None).expect_err("bad glob");
    assert!(err.contains("src/["), "{err}");
}
