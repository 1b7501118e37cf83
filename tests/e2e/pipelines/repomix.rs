//! repomix: the packed file holds every non-ignored file (path and contents) and no ignored
//! one (.gitignore'd, node_modules, lock files, binaries, .git).

use std::collections::BTreeSet;

use serde_json::json;

use super::{config, p, read, run_ok, snapshot};
use crate::support::{Server, init_repo, write_tree};

const FILES: &[(&str, &str)] = &[
    ("README.md", "# Packme\n\nA repository to pack.\n"),
    ("src/main.rs", "fn main() {\n    println!(\"<hello & bye>\");\n}\n"),
    ("src/util/helpers.rs", "pub fn helper() -> u8 {\n    7\n}\n"),
    ("docs/guide.md", "# Guide\n\nRead me second.\n"),
    (".github/workflows/ci.yml", "on: push\njobs: {}\n"),
    (".gitignore", "secret.env\nlogs/\n*.tmp\n"),
    ("sub/.gitignore", "local.txt\n"),
    ("sub/kept.txt", "kept in sub"),
    // Ignored by .gitignore files:
    ("secret.env", "TOKEN=hunter2\n"),
    ("logs/app.txt", "log line\n"),
    ("scratch.tmp", "scratch\n"),
    ("sub/local.txt", "local only\n"),
    // Ignored by default:
    ("node_modules/dep/index.js", "module.exports = 1;\n"),
    ("package-lock.json", "{\"lockfileVersion\": 3}\n"),
    ("Cargo.lock", "# lock\n"),
    // Packed: the CLI's default `**/repomix-output.*` becomes `**/repomix-output.*/**`, which
    // (picomatch) matches only inside a folder of that name; the worker follows the CLI.
    ("repomix-output.xml", "<old-output/>\n"),
    ("image.png", "not really a png"),
];

const PACKED: &[&str] = &[
    ".github/workflows/ci.yml",
    ".gitignore",
    "README.md",
    "docs/guide.md",
    "repomix-output.xml",
    "src/main.rs",
    "src/util/helpers.rs",
    "sub/.gitignore",
    "sub/kept.txt",
];

/// Paths of the `<file path="...">` elements inside `<files>` of an XML pack.
fn xml_paths(text: &str) -> BTreeSet<String> {
    let files = text.split("\n<files>\n").nth(1).expect("a <files> section");
    files.split("<file path=\"").skip(1).map(|rest| rest.split('"').next().unwrap().to_string()).collect()
}

#[tokio::test]
async fn repomix_packs_every_non_ignored_file_and_no_ignored_one() {
    let server = Server::start(&config(&["repomix"]));
    let src = server.dir.join("packme");
    write_tree(&src, FILES);
    std::fs::write(src.join("data.bin"), b"\x00\x01\x02binary\x00").unwrap();
    init_repo(&src);
    let before = snapshot(&src);

    let job = run_ok(&server, "repomix", json!({"sourceDir": p(&src)}), "packed 9 files").await;
    let r = &job["result"];
    assert_eq!(r["sourceDir"], p(&src));
    assert_eq!(r["style"], "xml");
    assert_eq!(r["files"], PACKED.len(), "{r}");
    let out_file = r["outputFile"].as_str().unwrap();
    let out_dir = server.data_dir().join("outputs").join(job["id"].as_str().unwrap());
    assert_eq!(out_file, p(&out_dir.join("repomix-output.xml")));
    let text = read(out_file);

    let expected: BTreeSet<String> = PACKED.iter().map(|s| s.to_string()).collect();
    assert_eq!(xml_paths(&text), expected, "packed paths:\n{text}");
    for rel in PACKED {
        let body = FILES.iter().find(|(f, _)| f == rel).unwrap().1;
        let with_nl = if body.ends_with('\n') { body.to_string() } else { format!("{body}\n") };
        assert!(text.contains(&format!("<file path=\"{rel}\">\n{with_nl}</file>")), "{rel} verbatim:\n{text}");
    }
    for secret in [
        "hunter2",
        "log line",
        "scratch\n",
        "local only",
        "module.exports",
        "lockfileVersion",
        "not really a png",
        "\u{0}",
        "[core]",
        "ref: refs/heads",
    ] {
        assert!(!text.contains(secret), "ignored content {secret:?} leaked into the pack:\n{text}");
    }
    // Header and directory tree.
    assert!(text.contains(&format!("<source>{}</source>", p(&src))), "{text}");
    let tree = text.split("<directory_structure>\n").nth(1).unwrap().split("</directory_structure>").next().unwrap();
    // Folders before files at each level, as the CLI orders them.
    assert!(tree.contains("src/\n  util/\n    helpers.rs\n  main.rs\n"), "{tree}");
    assert!(!tree.contains("node_modules") && !tree.contains(".git/") && !tree.contains("secret"), "{tree}");
    assert!(text.trim_end().ends_with("</files>"));

    let total_bytes: usize = PACKED.iter().map(|rel| FILES.iter().find(|(f, _)| f == rel).unwrap().1.len()).sum();
    assert_eq!(r["totalBytes"], total_bytes);
    let total_lines: usize =
        PACKED.iter().map(|rel| FILES.iter().find(|(f, _)| f == rel).unwrap().1.lines().count()).sum();
    assert_eq!(r["totalLines"], total_lines);
    assert_eq!(r["largestFiles"][0]["path"], "src/main.rs", "{r}");
    assert_eq!(r["largestFiles"].as_array().unwrap().len(), 5);
    let skipped: BTreeSet<&str> = r["skippedFiles"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert_eq!(skipped, BTreeSet::from(["data.bin", "image.png"]), "{r}");
    assert_eq!(snapshot(&src), before, "the source is only read");
}

#[tokio::test]
async fn repomix_honours_extra_ignores_style_and_use_gitignore_false() {
    let server = Server::start(&config(&["repomix"]));
    let src = server.dir.join("packme");
    write_tree(&src, FILES);
    init_repo(&src);

    let job = run_ok(
        &server,
        "repomix",
        json!({"sourceDir": p(&src), "style": "markdown", "ignore": ["docs/", "**/*.yml"], "useGitignore": false}),
        "packed",
    )
    .await;
    let r = &job["result"];
    let out_file = r["outputFile"].as_str().unwrap();
    assert!(out_file.ends_with("/repomix-output.md"), "{out_file}");
    let text = read(out_file);
    let packed: BTreeSet<String> =
        text.lines().filter_map(|l| l.strip_prefix("## File: ")).map(str::to_string).collect();
    let expected: BTreeSet<String> = [
        ".gitignore",
        "README.md",
        "repomix-output.xml",
        "scratch.tmp",
        "secret.env",
        "src/main.rs",
        "src/util/helpers.rs",
        "sub/.gitignore",
        "sub/kept.txt",
        "sub/local.txt",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(packed, expected, "{text}");
    assert_eq!(r["files"], expected.len());
    assert!(text.contains("```rs\nfn main() {\n    println!(\"<hello & bye>\");\n}\n```"), "{text}");
    assert!(!text.contains("module.exports") && !text.contains("lockfileVersion"), "defaults still apply: {text}");
    assert!(!text.contains("log line"), "`logs/` is a default pattern, not only a .gitignore rule: {text}");

    let (status, body) = server.trigger("repomix", json!({"sourceDir": p(&src), "style": "html"})).await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("style"), "{body}");
}

/// A token a secret rule catches (GitHub classic format, not a real token).
const FAKE_GITHUB_TOKEN: &str = "ghp_abcdefghijABCDEFGHIJ0123456789abcdef";

#[tokio::test]
async fn repomix_leaves_out_secrets_counts_tokens_and_compresses() {
    let server = Server::start(&config(&["repomix"]));
    let src = server.dir.join("packme");
    write_tree(&src, FILES);
    std::fs::write(src.join("src/config.rs"), format!("pub const TOKEN: &str = \"{FAKE_GITHUB_TOKEN}\";\n")).unwrap();
    std::fs::write(
        src.join("src/lib.rs"),
        "use std::fmt;\n\n/// Adds.\npub fn add(a: u32, b: u32) -> u32 {\n    let body_only = a + b;\n    body_only\n}\n",
    )
    .unwrap();
    init_repo(&src);

    let job = run_ok(&server, "repomix", json!({"sourceDir": p(&src), "topFilesLength": 2}), "packed").await;
    let r = &job["result"];
    let text = read(r["outputFile"].as_str().unwrap());
    assert!(!text.contains(FAKE_GITHUB_TOKEN), "a flagged file is left out: {text}");
    assert_eq!(r["suspiciousFiles"][0]["path"], "src/config.rs", "{r}");
    assert_eq!(r["suspiciousFiles"][0]["findings"][0]["rule"], "@secretlint/secretlint-rule-github", "{r}");
    assert_eq!(r["suspiciousFiles"][0]["findings"][0]["line"], 1, "{r}");
    assert!(!r.to_string().contains(FAKE_GITHUB_TOKEN), "the result never repeats the secret: {r}");
    // Token counts: per file (o200k) and in total (the wrapper counted once on top).
    let top = r["topFiles"].as_array().unwrap();
    assert_eq!(top.len(), 2, "{r}");
    assert!(top[0]["tokens"].as_u64().unwrap() >= top[1]["tokens"].as_u64().unwrap(), "{r}");
    let file_tokens = r["fileTokens"].as_u64().unwrap();
    assert!(r["totalTokens"].as_u64().unwrap() > file_tokens && file_tokens > 0, "{r}");
    assert!(text.contains("body_only"), "not compressed by default");

    let job = run_ok(&server, "repomix", json!({"sourceDir": p(&src), "compress": true}), "packed").await;
    let r = &job["result"];
    assert_eq!(r["compressed"], true);
    let text = read(r["outputFile"].as_str().unwrap());
    assert!(text.contains("pub fn add(a: u32, b: u32) -> u32"), "{text}");
    assert!(!text.contains("body_only"), "bodies are dropped: {text}");
    assert!(text.contains("# Packme"), "other files are packed whole: {text}");
}
