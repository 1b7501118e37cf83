//! Compiled components cached on disk so a restart does not recompile. Entries are
//! keyed by the component's SHA-256 and the engine's compatibility hash, so a new
//! wasmtime or different engine settings never load a stale artifact.
//!
//! A cache entry is native code: loading a forged one would run it outside the sandbox.
//! Each entry therefore ends with an HMAC-SHA256 over its name and bytes, keyed by a
//! per-install secret kept next to the cache folder (`<cache_dir>.key`, mode 0600, never
//! inside any pipeline's roots). An entry that does not verify is recompiled, never loaded.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::config::cache_key_path;

/// Bytes of the HMAC-SHA256 tag that ends every cache entry.
const TAG_LEN: usize = 32;
/// Bytes of the per-install key.
const KEY_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

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
#[derive(Clone)]
pub struct ComponentCache {
    dir: PathBuf,
    engine_key: String,
    key: Arc<[u8; KEY_LEN]>,
}

impl std::fmt::Debug for ComponentCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key authenticates native code: it never reaches a log line.
        f.debug_struct("ComponentCache").field("dir", &self.dir).field("engine_key", &self.engine_key).finish()
    }
}

/// Reads the key at `path`, creating it (random, mode 0600) when absent. Creation is a
/// hard link of a finished temporary file, so processes starting together agree on one key.
fn load_or_create_key(path: &Path) -> Result<[u8; KEY_LEN]> {
    match std::fs::read_to_string(path) {
        Ok(text) => return parse_key(&text, path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading the cache key {}", path.display())),
    }
    let mut key = [0u8; KEY_LEN];
    getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no randomness for the cache key: {e}"))?;
    let tmp = path.with_extension(format!("key.tmp{}", std::process::id()));
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("creating the cache key {}", tmp.display()))?;
        file.write_all(hex::encode(key).as_bytes())
            .and_then(|()| file.sync_all())
            .with_context(|| format!("writing the cache key {}", tmp.display()))?;
    }
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            tracing::info!(path = %path.display(), "created the compiled-code cache key");
            Ok(key)
        }
        // Another process made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("reading the cache key {}", path.display()))?;
            parse_key(&text, path)
        }
        Err(e) => Err(e).with_context(|| format!("creating the cache key {}", path.display())),
    }
}

fn parse_key(text: &str, path: &Path) -> Result<[u8; KEY_LEN]> {
    let mut key = [0u8; KEY_LEN];
    hex::decode_to_slice(text.trim(), &mut key).with_context(|| {
        format!("the cache key {} is not {KEY_LEN} hex-encoded bytes (delete it to make a new one)", path.display())
    })?;
    Ok(key)
}

/// Why a cache entry was not loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// Too short to carry a tag (truncated, or written before entries were authenticated).
    #[error("it is too short to carry an authentication tag")]
    NoTag,
    /// The tag does not match: the bytes or the name were changed, or another key wrote it.
    #[error("its authentication tag does not match (changed after this install wrote it, or written by another)")]
    BadTag,
}

impl ComponentCache {
    /// A cache in `dir` for artifacts of `engine`, authenticated with the key in `cache_key_path(dir)`.
    pub fn new(engine: &Engine, dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating cache folder {}", dir.display()))?;
        let key = load_or_create_key(&cache_key_path(dir)?)?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(Self { dir: dir.to_path_buf(), engine_key: format!("{:016x}", hasher.finish()), key: Arc::new(key) })
    }

    /// File name of the artifact for `wasm` bytes.
    fn entry_name(&self, wasm: &[u8]) -> String {
        let digest = hex::encode(Sha256::digest(wasm));
        format!("{digest}-{}.cwasm", self.engine_key)
    }

    /// The tag of an entry: it binds the bytes to the name, so a genuine entry of one
    /// component copied under another's name does not verify either.
    fn tag(&self, name: &str, bytes: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(self.key.as_slice()).expect("HMAC accepts any key length");
        mac.update(name.as_bytes());
        mac.update(&[0]);
        mac.update(bytes);
        mac
    }

    /// Returns the serialised component inside `entry` if its tag verifies.
    pub fn verify<'a>(&self, name: &str, entry: &'a [u8]) -> Result<&'a [u8], Rejected> {
        let Some(split) = entry.len().checked_sub(TAG_LEN) else { return Err(Rejected::NoTag) };
        let (bytes, tag) = entry.split_at(split);
        // Constant-time comparison.
        self.tag(name, bytes).verify_slice(tag).map_err(|_| Rejected::BadTag)?;
        Ok(bytes)
    }

    /// `bytes` followed by their tag, as written to the cache.
    fn seal(&self, name: &str, mut bytes: Vec<u8>) -> Vec<u8> {
        let tag = self.tag(name, &bytes).finalize().into_bytes();
        bytes.extend_from_slice(&tag);
        bytes
    }

    /// Loads `path`, from the cache when possible; compiling is blocking work.
    pub fn load(&self, engine: &Engine, path: &Path) -> Result<Loaded> {
        let wasm = std::fs::read(path).with_context(|| format!("reading component {}", path.display()))?;
        self.load_bytes(engine, &wasm, &path.display().to_string())
    }

    /// Loads the component `wasm` (named `label` in messages), from the cache when possible.
    pub fn load_bytes(&self, engine: &Engine, wasm: &[u8], label: &str) -> Result<Loaded> {
        let start = Instant::now();
        let name = self.entry_name(wasm);
        let entry = self.dir.join(&name);
        // Read into memory, verify, then deserialise those same bytes: mapping the file
        // (`deserialize_file`) would load whatever is on disk after the check.
        match std::fs::read(&entry) {
            Ok(sealed) => match self.verify(&name, &sealed) {
                // SAFETY: the bytes carry a tag only this install's key can make, and this
                // install writes nothing but `Component::serialize` output of an engine with
                // the same compatibility hash (it is in the name, which the tag covers).
                Ok(bytes) => match unsafe { Component::deserialize(engine, bytes) } {
                    Ok(component) => {
                        return Ok(Loaded { component, source: LoadSource::Cached, elapsed: start.elapsed() });
                    }
                    Err(e) => {
                        tracing::warn!(entry = %entry.display(), error = %e, "discarding unreadable cache entry; recompiling")
                    }
                },
                Err(why) => tracing::warn!(
                    entry = %entry.display(),
                    component = %label,
                    "refusing to load cache entry: {why}; recompiling"
                ),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(entry = %entry.display(), error = %e, "cannot read cache entry; recompiling"),
        }
        let component = Component::new(engine, wasm)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("compiling component {label}"))?;
        let bytes = component.serialize().map_err(anyhow::Error::from).context("serialising compiled component")?;
        let sealed = self.seal(&name, bytes);
        // Write then rename, so a concurrent reader never sees half a file.
        let tmp = entry.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, sealed).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &entry).with_context(|| format!("renaming {}", tmp.display()))?;
        Ok(Loaded { component, source: LoadSource::Compiled, elapsed: start.elapsed() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        Engine::default()
    }

    /// The smallest valid component.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

    fn cache_in(dir: &Path) -> ComponentCache {
        ComponentCache::new(&engine(), &dir.join("cache")).unwrap()
    }

    #[test]
    fn the_key_lives_beside_the_cache_folder_with_mode_0600_and_is_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let first = cache_in(dir.path());
        let key_file = dir.path().join("cache.key");
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!dir.path().join("cache").join("cache.key").exists());
        let second = cache_in(dir.path());
        assert_eq!(first.key, second.key, "the key survives a restart");
        assert_eq!(
            cache_key_path(Path::new("/a/b/")).unwrap(),
            PathBuf::from("/a/b.key"),
            "a trailing slash stays outside"
        );
    }

    #[test]
    fn the_verifier_accepts_its_own_entries_only() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache_in(dir.path());
        let sealed = cache.seal("a.cwasm", b"native code".to_vec());
        assert_eq!(cache.verify("a.cwasm", &sealed), Ok(&b"native code"[..]));

        let mut flipped = sealed.clone();
        flipped[3] ^= 1;
        assert_eq!(cache.verify("a.cwasm", &flipped), Err(Rejected::BadTag), "changed bytes");
        assert_eq!(cache.verify("b.cwasm", &sealed), Err(Rejected::BadTag), "a genuine entry under another name");
        assert_eq!(cache.verify("a.cwasm", b"short"), Err(Rejected::NoTag));

        let other = tempfile::tempdir().unwrap();
        let foreign = cache_in(other.path()).seal("a.cwasm", b"native code".to_vec());
        assert_eq!(cache.verify("a.cwasm", &foreign), Err(Rejected::BadTag), "another install's key");
    }

    #[test]
    fn a_tampered_entry_is_recompiled_not_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = dir.path().join("c.wasm");
        std::fs::write(&wasm, EMPTY_COMPONENT).unwrap();
        let engine = engine();
        let cache = cache_in(dir.path());
        assert_eq!(cache.load(&engine, &wasm).unwrap().source, LoadSource::Compiled);
        assert_eq!(cache.load(&engine, &wasm).unwrap().source, LoadSource::Cached);

        let entry = dir.path().join("cache").join(cache.entry_name(EMPTY_COMPONENT));
        let mut bytes = std::fs::read(&entry).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&entry, &bytes).unwrap();
        assert_eq!(cache.load(&engine, &wasm).unwrap().source, LoadSource::Compiled, "tampered: recompiled");
        assert_eq!(cache.load(&engine, &wasm).unwrap().source, LoadSource::Cached, "the rewritten entry verifies");

        // An entry without a tag (as written before entries were authenticated) is not loaded.
        let untagged = std::fs::read(&entry).unwrap();
        std::fs::write(&entry, &untagged[..untagged.len() - TAG_LEN]).unwrap();
        assert_eq!(cache.load(&engine, &wasm).unwrap().source, LoadSource::Compiled);
    }
}
