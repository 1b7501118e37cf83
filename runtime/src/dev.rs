//! `alephauto dev WORKER_DIR`: the authoring loop (like `spin watch`). Builds a Rust worker
//! crate for wasm32-wasip2, deploys it into a running server
//! (`PUT /api/pipelines/{id}/component`), then rebuilds and redeploys after every edit.
//!
//! Changes are found by polling the crate's sources (mtime and size, a few hundred files at
//! most, every `poll`), with a debounce: no watcher crate, because polling a small tree is
//! cheap and behaves the same on every filesystem (inotify misses edits on network and some
//! overlay mounts, where editors and containers often keep sources).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::client::Client;

/// Files looked at per scan, at most (a tree beyond this is not a worker crate).
const MAX_FILES: usize = 5_000;

/// How `dev` runs.
#[derive(Debug, Clone)]
pub struct DevOptions {
    /// The worker crate's folder (holds `Cargo.toml`).
    pub dir: PathBuf,
    /// The pipeline to deploy to (default: the crate's package name).
    pub pipeline: Option<String>,
    /// Build with `--release`.
    pub release: bool,
    /// How often the sources are scanned.
    pub poll: Duration,
    /// How long the sources must stay unchanged before a rebuild.
    pub debounce: Duration,
    /// Deploy once and return (scripts, tests).
    pub once: bool,
}

/// A file's modification time and size.
type Stamp = (Option<SystemTime>, u64);

/// The sources that make up the crate: `Cargo.toml`, `Cargo.lock`, `build.rs`, and every
/// `.rs` / `.wit` file under it, skipping `target` and hidden folders.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Stamp> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else { continue };
        for entry in entries.flatten() {
            if out.len() >= MAX_FILES {
                return out;
            }
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let Ok(kind) = entry.file_type() else { continue };
            let path = entry.path();
            if kind.is_dir() {
                if !name.starts_with('.') && name != "target" {
                    stack.push(path);
                }
            } else if kind.is_file()
                && (name.ends_with(".rs") || name.ends_with(".wit") || name == "Cargo.toml" || name == "Cargo.lock")
                && let Ok(meta) = entry.metadata()
            {
                out.insert(path, (meta.modified().ok(), meta.len()));
            }
        }
    }
    out
}

/// The crate's package name, from its `Cargo.toml`.
pub fn package_name(dir: &Path) -> Result<String> {
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).with_context(|| format!("reading {}", manifest.display()))?;
    let doc: toml::Table = toml::from_str(&text).with_context(|| format!("parsing {}", manifest.display()))?;
    doc.get("package")
        .and_then(|p| p.get("name"))
        .and_then(toml::Value::as_str)
        .map(str::to_string)
        .with_context(|| format!("{} has no [package] name", manifest.display()))
}

/// Builds the crate for wasm32-wasip2; returns the component cargo reports.
pub async fn build(dir: &Path, release: bool) -> Result<PathBuf> {
    let mut cmd = tokio::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.arg("build").arg("--manifest-path").arg(dir.join("Cargo.toml")).args([
        "--target",
        "wasm32-wasip2",
        "--message-format=json-render-diagnostics",
    ]);
    if release {
        cmd.arg("--release");
    }
    // Diagnostics go to the terminal as cargo renders them; artifacts come as JSON.
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).kill_on_drop(true);
    let out = cmd.output().await.context("running cargo build")?;
    if !out.status.success() {
        bail!("cargo build failed ({})", out.status);
    }
    let mut component = None;
    for line in out.stdout.split(|b| *b == b'\n') {
        let Ok(msg) = serde_json::from_slice::<Value>(line) else { continue };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let is_cdylib = msg["target"]["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "cdylib"));
        let wasm =
            msg["filenames"].as_array().into_iter().flatten().filter_map(Value::as_str).find(|f| f.ends_with(".wasm"));
        if let (true, Some(wasm)) = (is_cdylib, wasm) {
            component = Some(PathBuf::from(wasm));
        }
    }
    component.context("cargo built no .wasm component (is the crate a cdylib?)")
}

/// Builds and deploys once; prints what the server says.
async fn build_and_deploy(client: &Client, dir: &Path, pipeline: &str, release: bool) -> Result<Value> {
    let wasm = build(dir, release).await?;
    let bytes = tokio::fs::read(&wasm).await.with_context(|| format!("reading {}", wasm.display()))?;
    let answer = client.put_wasm(&["api", "pipelines", pipeline, "component"], bytes).await?;
    println!(
        "{pipeline}: version {} active (sha256 {}){}",
        answer["version"].as_str().unwrap_or("?"),
        answer["digest"].as_str().unwrap_or("?").chars().take(12).collect::<String>(),
        if answer["new"] == Value::Bool(false) { ", registered already" } else { "" }
    );
    Ok(answer)
}

/// Runs the loop until interrupted (or once, with `once`).
pub async fn run(client: &Client, opts: DevOptions) -> Result<()> {
    let dir = std::fs::canonicalize(&opts.dir).with_context(|| format!("opening {}", opts.dir.display()))?;
    let pipeline = match opts.pipeline.clone() {
        Some(p) => p,
        None => package_name(&dir)?,
    };
    let mut seen = snapshot(&dir);
    let first = build_and_deploy(client, &dir, &pipeline, opts.release).await;
    if opts.once {
        return first.map(|_| ());
    }
    if let Err(e) = first {
        eprintln!("{pipeline}: {e:#}; waiting for an edit");
    }
    println!("watching {} (Ctrl-C to stop)", dir.display());
    loop {
        tokio::time::sleep(opts.poll).await;
        let now = snapshot(&dir);
        if now == seen {
            continue;
        }
        // Debounce: an editor saving several files, or writing one in parts.
        let mut settled = now;
        loop {
            tokio::time::sleep(opts.debounce).await;
            let again = snapshot(&dir);
            if again == settled {
                break;
            }
            settled = again;
        }
        seen = settled;
        println!("{pipeline}: change seen; rebuilding");
        if let Err(e) = build_and_deploy(client, &dir, &pipeline, opts.release).await {
            eprintln!("{pipeline}: {e:#}; the server keeps the version it had");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_sees_sources_and_skips_target() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Cargo.toml"), "[package]\nname = \"w\"\n").unwrap();
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        std::fs::create_dir_all(dir.path().join("target/debug")).unwrap();
        std::fs::write(dir.path().join("src/lib.rs"), "fn a() {}").unwrap();
        std::fs::write(dir.path().join("target/debug/x.rs"), "").unwrap();
        std::fs::write(dir.path().join("README.md"), "").unwrap();
        let first = snapshot(dir.path());
        assert_eq!(first.len(), 2, "{first:?}");
        std::fs::write(dir.path().join("src/lib.rs"), "fn a() { let _ = 1; }").unwrap();
        assert_ne!(snapshot(dir.path()), first);
        assert_eq!(package_name(dir.path()).unwrap(), "w");
    }
}
