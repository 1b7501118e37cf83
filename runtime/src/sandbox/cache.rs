//! Compiled components cached on disk so a restart does not recompile. Entries are
//! keyed by the component's SHA-256 and the engine's compatibility hash, so a new
//! wasmtime or different engine settings never load a stale artifact.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where a component came from when it was loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadSource {
    /// Compiled from the `.wasm` now (and written to the cache).
    Compiled,
    /// Deserialised from the cache.
    Cached,
}

/// A loaded component and how long it took.
#[derive(Debug)]
pub struct Loaded {
    /// The component.
    pub component: Component,
    /// Cache hit or fresh compile.
    pub source: LoadSource,
    /// Time to compile or deserialise.
    pub elapsed: std::time::Duration,
}

/// The on-disk cache of precompiled components.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: PathBuf,
    engine_key: String,
}

impl ComponentCache {
    /// A cache in `dir` for artifacts of `engine`.
    pub fn new(engine: &Engine, dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating cache folder {}", dir.display()))?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(Self { dir: dir.to_path_buf(), engine_key: format!("{:016x}", hasher.finish()) })
    }

    /// Path of the artifact for `wasm` bytes.
    fn entry_path(&self, wasm: &[u8]) -> PathBuf {
        let digest = hex::encode(Sha256::digest(wasm));
        self.dir.join(format!("{digest}-{}.cwasm", self.engine_key))
    }

    /// Loads `path`, from the cache when possible; compiling is blocking work.
    pub fn load(&self, engine: &Engine, path: &Path) -> Result<Loaded> {
        let start = Instant::now();
        let wasm = std::fs::read(path).with_context(|| format!("reading component {}", path.display()))?;
        let entry = self.entry_path(&wasm);
        if entry.exists() {
            // SAFETY: the file was written by `Component::serialize` of an engine with the
            // same compatibility hash (it is in the name), in a folder only we write.
            match unsafe { Component::deserialize_file(engine, &entry) } {
                Ok(component) => {
                    return Ok(Loaded { component, source: LoadSource::Cached, elapsed: start.elapsed() });
                }
                Err(e) => tracing::warn!(entry = %entry.display(), error = %e, "discarding unreadable cache entry"),
            }
        }
        let component = Component::new(engine, &wasm)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("compiling component {}", path.display()))?;
        let bytes = component.serialize().map_err(anyhow::Error::from).context("serialising compiled component")?;
        // Write then rename, so a concurrent reader never sees half a file.
        let tmp = entry.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &entry).with_context(|| format!("renaming {}", tmp.display()))?;
        Ok(Loaded { component, source: LoadSource::Compiled, elapsed: start.elapsed() })
    }
}
