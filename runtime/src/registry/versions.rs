//! Worker versions side by side: the content-addressed component store under the data
//! folder, each pipeline's registered versions (one active; earlier ones kept for rollback
//! and pinned jobs), and a circuit breaker per component digest, so a broken upload cools
//! down alone and never holds off the version that serves.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::breaker::{Breaker, BreakerSettings};
use super::worker::Worker;

/// Versions kept per pipeline; beyond this the oldest inactive one is dropped (a job still
/// running on it keeps its own handle).
pub const MAX_VERSIONS: usize = 16;
/// Digests whose breaker state is kept per pipeline (oldest forgotten first).
const MAX_BREAKERS: usize = 64;
/// The breaker key of the configured component (a reload's new file is keyed by digest).
pub(super) const CONFIG_KEY: &str = "config";

/// SHA-256 of `bytes`, lower-case hex.
pub fn digest_of(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// True for a lower-case hex SHA-256 (the only names the component store reads).
pub fn is_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Components by SHA-256 under `<data_dir>/components`: a folder no grant may reach (the
/// data folder is protected, `Config::protected_paths`), written once per digest.
#[derive(Debug, Clone)]
pub struct ComponentStore {
    dir: PathBuf,
}

impl ComponentStore {
    /// The store in `dir` (created on first write).
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn path(&self, digest: &str) -> PathBuf {
        self.dir.join(format!("{digest}.wasm"))
    }

    /// Keeps `bytes` under their digest (write then rename: readers never see half a file).
    pub fn put(&self, digest: &str, bytes: &[u8]) -> anyhow::Result<PathBuf> {
        anyhow::ensure!(is_digest(digest), "not a SHA-256 digest: {digest:?}");
        let path = self.path(digest);
        if path.is_file() {
            return Ok(path);
        }
        std::fs::create_dir_all(&self.dir).with_context(|| format!("creating {}", self.dir.display()))?;
        let tmp = self.dir.join(format!(".{digest}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("renaming {}", tmp.display()))?;
        Ok(path)
    }

    /// The stored component `digest`, checked against its name; None when absent.
    pub fn read(&self, digest: &str) -> anyhow::Result<Option<Vec<u8>>> {
        anyhow::ensure!(is_digest(digest), "not a SHA-256 digest: {digest:?}");
        let path = self.path(digest);
        match std::fs::read(&path) {
            Ok(bytes) if digest_of(&bytes) == digest => Ok(Some(bytes)),
            Ok(_) => anyhow::bail!("{} does not match its digest (modified on disk?)", path.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// The store's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Where a version came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VersionSource {
    /// The configured component file (at start or on a reload).
    Config,
    /// `PUT /api/pipelines/{id}/component` (or `alephauto deploy` / `dev`).
    Upload,
    /// Loaded back from the component store for a job that was triggered on it.
    Store,
}

/// One registered version of a pipeline's worker.
#[derive(Debug, Clone)]
pub struct Registered {
    /// The loaded worker.
    pub worker: Arc<Worker>,
    /// When it was registered.
    pub registered_at: DateTime<Utc>,
    /// Where it came from.
    pub source: VersionSource,
}

/// A pipeline's registered versions, oldest first.
#[derive(Debug, Default)]
pub struct VersionList {
    items: Vec<Registered>,
}

impl VersionList {
    /// Every version, oldest first.
    pub fn items(&self) -> &[Registered] {
        &self.items
    }

    /// The version with component `digest`.
    pub fn by_digest(&self, digest: &str) -> Option<&Registered> {
        self.items.iter().find(|r| r.worker.digest == digest)
    }

    /// The newest version that reports `version`.
    pub fn by_version(&self, version: &str) -> Option<&Registered> {
        self.items.iter().rev().find(|r| r.worker.info.version == version)
    }

    /// The version registered just before the one with `digest`.
    pub fn before(&self, digest: &str) -> Option<&Registered> {
        let at = self.items.iter().position(|r| r.worker.digest == digest)?;
        at.checked_sub(1).and_then(|i| self.items.get(i))
    }

    /// Adds `worker` (a known digest keeps its place); drops the oldest version other than
    /// `active` beyond [`MAX_VERSIONS`]. Returns what was dropped.
    pub fn register(&mut self, worker: Arc<Worker>, source: VersionSource, active: &str) -> Vec<Registered> {
        if self.by_digest(&worker.digest).is_none() {
            self.items.push(Registered { worker, registered_at: Utc::now(), source });
        }
        let mut dropped = Vec::new();
        while self.items.len() > MAX_VERSIONS {
            let Some(i) = self.items.iter().position(|r| r.worker.digest != active) else { break };
            dropped.push(self.items.remove(i));
        }
        dropped
    }

    /// Removes every version (shutdown).
    pub fn take_all(&mut self) -> Vec<Registered> {
        std::mem::take(&mut self.items)
    }
}

/// A breaker per component digest (plus [`CONFIG_KEY`] for the configured file).
#[derive(Debug)]
pub struct Breakers {
    settings: BreakerSettings,
    map: HashMap<String, (Breaker, Instant)>,
}

impl Breakers {
    /// No breaker open.
    pub fn new(settings: BreakerSettings) -> Self {
        Self { settings, map: HashMap::new() }
    }

    /// The breaker of `key`, if it has seen an attempt.
    pub fn get(&self, key: &str) -> Option<&Breaker> {
        self.map.get(key).map(|(b, _)| b)
    }

    /// Ok when `key` may be tried now; otherwise how long until it may, and its last error.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), (std::time::Duration, String)> {
        match self.map.get(key) {
            Some((b, _)) => b.check(now).map_err(|wait| (wait, b.last_error().unwrap_or("unknown error").to_string())),
            None => Ok(()),
        }
    }

    /// Records a failed attempt of `key`.
    pub fn on_failure(&mut self, key: &str, now: Instant, error: String) {
        if !self.map.contains_key(key) && self.map.len() >= MAX_BREAKERS {
            // Forget the digest tried longest ago (never the configured component's).
            let oldest = self
                .map
                .iter()
                .filter(|(k, _)| k.as_str() != CONFIG_KEY)
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.map.remove(&k);
            }
        }
        let settings = self.settings;
        let (breaker, at) = self.map.entry(key.to_string()).or_insert_with(|| (Breaker::new(settings), now));
        *at = now;
        breaker.on_failure(now, error);
    }

    /// Records a success of `key`: its breaker closes.
    pub fn on_success(&mut self, key: &str) {
        if let Some((b, _)) = self.map.get_mut(key) {
            b.on_success();
        }
    }
}

/// A registered version, for listings.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    /// The version the worker's `describe` reports.
    pub version: String,
    /// SHA-256 of the component (hex).
    pub digest: String,
    /// Whether new jobs run on it.
    pub active: bool,
    /// Where it came from.
    pub source: VersionSource,
    /// When it was registered (RFC 3339).
    pub registered_at: String,
}

impl VersionInfo {
    /// The listing row of `r`.
    pub fn of(r: &Registered, active: Option<&str>) -> Self {
        Self {
            version: r.worker.info.version.clone(),
            digest: r.worker.digest.clone(),
            active: active == Some(r.worker.digest.as_str()),
            source: r.source,
            registered_at: crate::domain::format_ts(&r.registered_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_lower_hex_of_64() {
        let d = digest_of(b"abc");
        assert_eq!(d, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(is_digest(&d));
        assert!(!is_digest(&d.to_uppercase()));
        assert!(!is_digest("../../etc/passwd"));
        assert!(!is_digest(&d[..63]));
    }

    #[test]
    fn the_store_keeps_bytes_by_digest_and_refuses_tampered_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = ComponentStore::new(dir.path().join("components"));
        let d = digest_of(b"component");
        assert_eq!(store.read(&d).unwrap(), None);
        let path = store.put(&d, b"component").unwrap();
        assert_eq!(store.read(&d).unwrap().as_deref(), Some(&b"component"[..]));
        std::fs::write(&path, b"other").unwrap();
        assert!(store.read(&d).is_err());
        assert!(store.put("../x", b"x").is_err());
        assert!(store.read("../x").is_err());
    }

    #[test]
    fn a_broken_digest_cools_down_alone() {
        let settings = BreakerSettings {
            threshold: 1,
            base: std::time::Duration::from_secs(60),
            max: std::time::Duration::from_secs(60),
        };
        let mut b = Breakers::new(settings);
        let now = Instant::now();
        b.on_failure("bad", now, "init trapped".into());
        assert!(b.check("bad", now).is_err());
        assert!(b.check("good", now).is_ok());
        assert!(b.check(CONFIG_KEY, now).is_ok());
        b.on_success("bad");
        assert!(b.check("bad", now).is_ok());
    }
}
