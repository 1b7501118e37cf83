//! The two real public code bases section 5 measures the pipelines and the Node tools on, both
//! available on a fresh machine without any other download than the project's own build:
//!
//! - Rust: the `wasmtime` 48.0.8 crate's published source (~120k lines of Rust; a dependency of
//!   the runtime, so cargo has unpacked it under `$CARGO_HOME/registry/src`).
//! - TypeScript: `zod` 4.6.7's `src/` (~89k lines of TypeScript in 332 files; the npm package
//!   ships its sources; pinned in bench/package.json and installed by scripts/bench.sh).
//!
//! `BENCH_RUST_CORPUS` / `BENCH_TS_CORPUS` point either at another folder.

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
