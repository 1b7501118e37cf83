//! Builds the guest components (the pipelines in `workers/` and the test fixtures in
//! `tests/fixtures/`) for wasm32-wasip2, so `cargo run` and `cargo test` on a fresh
//! clone have every component they need. The nested cargo uses its own target
//! folder (`target/wasm`) so it never waits on the outer build's lock.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest.parent().expect("runtime/ sits in the repository root").to_path_buf();
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    let target = if target.is_absolute() { target } else { root.join(target) };
    let wasm_target = target.join("wasm");
    let out = wasm_target.join("wasm32-wasip2").join("release");
    println!("cargo:rustc-env=ALEPHAUTO_BUILT_WORKERS_DIR={}", out.display());
    println!("cargo:rerun-if-env-changed=ALEPHAUTO_SKIP_GUEST_BUILD");
    // The guests are built into the target folder: a build script output shared between
    // checkouts (cargo's build-dir) must re-run when the target folder changes.
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");
    for dir in ["wit", "guest-sdk", "workers", "tests/fixtures"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    if std::env::var_os("ALEPHAUTO_SKIP_GUEST_BUILD").is_some() {
        println!(
            "cargo:warning=ALEPHAUTO_SKIP_GUEST_BUILD is set: the guest components are left to the caller (scripts/bench.sh builds them beside this build)"
        );
        return;
    }
    for workspace in ["workers", "tests/fixtures"] {
        let manifest = root.join(workspace).join("Cargo.toml");
        if manifest.exists() {
            build_guests(&manifest, &wasm_target);
        }
    }
}

fn build_guests(manifest: &Path, target_dir: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
        .arg(manifest)
        .arg("--target-dir")
        .arg(target_dir);
    // Flags meant for the host build must not leak into the guest build, nor a build folder
    // shared between checkouts (CARGO_BUILD_BUILD_DIR): the outer cargo holds its lock while
    // this script runs, so a nested cargo waiting for it would deadlock.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_BUILD_BUILD_DIR",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().unwrap_or_else(|e| panic!("cannot run cargo to build {}: {e}", manifest.display()));
    if !status.success() {
        panic!(
            "building the guest components in {} failed (is the wasm32-wasip2 target installed? \
             `rustup target add wasm32-wasip2`)",
            manifest.display()
        );
    }
}
