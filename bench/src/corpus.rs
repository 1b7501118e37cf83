//! The two real public code bases section 5 measures the pipelines and the Node tools on, both
//! available on a fresh machine without any other download than the project's own build:
//!
//! - Rust: the `wasmtime` 48.0.8 crate's published source (~120k lines of Rust; a dependency of
//!   the runtime, so cargo has unpacked it under `$CARGO_HOME/registry/src`).
//! - TypeScript: `zod` 4.6.7's `src/` (~89k lines of TypeScript in 332 files; the npm package
//!   ships its sources; pinned in bench/package.json and installed by scripts/bench.sh).
//!
//! `BENCH_RUST_CORPUS` / `BENCH_TS_CORPUS` point either at another folder. `--smoke` packs a small
//! edge-case tree instead ([`smoke`]).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The Rust crate (name-version) used as the Rust corpus.
pub const RUST_CRATE: &str = "wasmtime-48.0.8";
/// The npm package and version used as the TypeScript corpus (its `src/` folder).
pub const TS_PACKAGE: (&str, &str) = ("zod", "4.6.7");

/// The Rust corpus: `wasmtime` 48.0.8's source in the cargo registry, or `BENCH_RUST_CORPUS`.
pub fn rust() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("BENCH_RUST_CORPUS") {
        return existing_dir(PathBuf::from(p));
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .context("no CARGO_HOME or HOME")?;
    let registry = home.join("registry/src");
    let entries = std::fs::read_dir(&registry).with_context(|| format!("reading {}", registry.display()))?;
    for entry in entries {
        let candidate = entry?.path().join(RUST_CRATE);
        if candidate.is_dir() {
            return Ok(candidate);
        }
    }
    bail!("{RUST_CRATE} source not found under {}; build the runtime once or set BENCH_RUST_CORPUS", registry.display())
}

/// The TypeScript corpus: `zod` 4.6.7's `src/` under bench/node_modules, or `BENCH_TS_CORPUS`.
pub fn typescript() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("BENCH_TS_CORPUS") {
        return existing_dir(PathBuf::from(p));
    }
    typescript_in(&crate::repo_root().join("bench/node_modules"))
}

/// The TypeScript corpus inside a given `node_modules` folder (checks the pinned version).
pub fn typescript_in(node_modules: &Path) -> Result<PathBuf> {
    let (name, version) = TS_PACKAGE;
    let package = node_modules.join(name);
    let manifest = package.join("package.json");
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("reading {} (run scripts/bench.sh, which installs it)", manifest.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", manifest.display()))?;
    if json["version"] != version {
        bail!("{} is {name} {} but the corpus is {name} {version}", manifest.display(), json["version"]);
    }
    existing_dir(package.join("src"))
}

fn existing_dir(p: PathBuf) -> Result<PathBuf> {
    if !p.is_dir() {
        bail!("corpus folder {} does not exist", p.display());
    }
    Ok(p)
}

/// Copies a corpus into `dir` (so jobs run on a folder inside the pipeline's allowed root and
/// both sides read the same files); returns the copy's canonical path.
pub fn copy_into(source: &Path, dir: &Path) -> Result<PathBuf> {
    let name = source.file_name().context("corpus path has no file name")?;
    let target = dir.join(name);
    copy_tree(source, &target).with_context(|| format!("copying {} to {}", source.display(), target.display()))?;
    Ok(std::fs::canonicalize(&target)?)
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Files with extension `ext` under `dir` and their lines: (files, lines).
pub fn count_lines(dir: &Path, ext: &str) -> Result<(u64, u64)> {
    let (mut files, mut lines) = (0, 0);
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let p = entry.path();
        if entry.file_type()?.is_dir() {
            let (f, l) = count_lines(&p, ext)?;
            files += f;
            lines += l;
        } else if p.extension().is_some_and(|e| e == ext) {
            files += 1;
            lines += std::fs::read_to_string(&p).map(|t| t.lines().count() as u64).unwrap_or(0);
        }
    }
    Ok((files, lines))
}

/// An edge-case tree for the repomix file-selection check in `--smoke`: default patterns that
/// apply only at the top level or everywhere, `.gitignore` (anchored, negated, nested), `.ignore`,
/// `.repomixignore`, hidden files, binaries by extension and content, a symlink, names that sort
/// differently by byte and by ICU collation. The worker's unit test holds the same tree.
const SMOKE_TREE: &[(&str, &[u8])] = &[
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

/// Writes the edge-case tree into `dir` (created); returns its canonical path.
pub fn smoke(dir: &Path) -> Result<PathBuf> {
    for (rel, data) in SMOKE_TREE {
        let p = dir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&p, data).with_context(|| format!("writing {}", p.display()))?;
    }
    #[cfg(unix)]
    std::os::unix::fs::symlink("README.md", dir.join("link.txt"))?;
    Ok(std::fs::canonicalize(dir)?)
}
