//! Hot swap: a new component for a running pipeline (an upload, or a reloaded
//! configuration), rollback, the version a trigger pins, and the version a queued job was
//! triggered on. A new component is compiled, described and initialised before it is
//! registered; one that fails changes nothing. Jobs hold their own `Arc<Worker>`, so a
//! swap never touches an attempt under way.

use std::sync::Arc;
use std::time::Instant;

use anyhow::anyhow;

use super::versions::{self, ComponentStore, VersionInfo, VersionSource};
use super::worker::Worker;
use super::{Entry, Registry, RegistryError, check_key};
use crate::config::Config;

/// What a deploy did.
#[derive(Debug, Clone)]
pub struct Deployed {
    /// The version now active.
    pub worker: Arc<Worker>,
    /// False when that component was registered already (it was only re-activated).
    pub new: bool,
}

impl Registry {
    /// The content-addressed store of every component this registry loaded.
    pub fn component_store(&self) -> &ComponentStore {
        &self.store
    }

    /// Keeps `wasm` in the component store under `digest`; a failure is logged (the
    /// version still serves, but a job pinned to it cannot be loaded back after a reload).
    pub(super) async fn keep(&self, id: &str, digest: &str, wasm: Arc<Vec<u8>>) {
        let store = self.store.clone();
        let owned = digest.to_string();
        let put = tokio::task::spawn_blocking(move || store.put(&owned, &wasm)).await;
        match put {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(pipeline = id, digest, error = %format!("{e:#}"), "cannot keep the component"),
            Err(e) => tracing::warn!(pipeline = id, digest, error = %e, "component store task failed"),
        }
    }

    fn entry(&self, id: &str) -> Result<&Entry, RegistryError> {
        self.entries.get(id).ok_or_else(|| self.unknown(id))
    }

    /// Makes `wasm` the active version of pipeline `id`: compiled, linked, described and
    /// initialised first; any failure is [`RegistryError::Refused`] and the version that
    /// served keeps serving. A component registered already is re-activated.
    pub async fn deploy(&self, id: &str, wasm: Vec<u8>, source: VersionSource) -> Result<Deployed, RegistryError> {
        let entry = self.entry(id)?;
        if self.is_closed() {
            return Err(RegistryError::ShuttingDown);
        }
        let digest = versions::digest_of(&wasm);
        // A broken component cools down on its own digest, never the pipeline's.
        check_key(id, entry, &digest)?;
        let _guard = entry.init_lock.lock().await;
        let known = entry.versions.lock().ok().and_then(|v| v.by_digest(&digest).map(|r| r.worker.clone()));
        if let Some(worker) = known {
            entry.register(id, worker.clone(), source, true);
            tracing::info!(pipeline = id, version = %worker.info.version, digest, "re-activated a registered version");
            return Ok(Deployed { worker, new: false });
        }
        check_key(id, entry, &digest)?;
        let started = Instant::now();
        let wasm = Arc::new(wasm);
        let label = format!("upload sha256:{}", &digest[..12]);
        match self.create(id, &entry.config, wasm.clone(), &label).await {
            Ok(mut worker) => {
                worker.init_time = started.elapsed();
                let worker = Arc::new(worker);
                self.keep(id, &digest, wasm).await;
                if let Ok(mut b) = entry.breakers.lock() {
                    b.on_success(&digest);
                }
                entry.register(id, worker.clone(), source, true);
                tracing::info!(pipeline = id, version = %worker.info.version, digest, ms = worker.init_time.as_millis() as u64, "deployed a new version");
                Ok(Deployed { worker, new: true })
            }
            Err(e) => {
                let message = format!("{e:#}");
                tracing::warn!(pipeline = id, digest, error = %message, "refused a component; the active version keeps serving");
                if let Ok(mut b) = entry.breakers.lock() {
                    b.on_failure(&digest, Instant::now(), message.clone());
                }
                Err(RegistryError::Refused { id: id.to_string(), message })
            }
        }
    }

    /// Makes an earlier version active again: the one named `version` (the newest
    /// registration reporting it), or the one registered just before the active one.
    pub async fn rollback(&self, id: &str, version: Option<&str>) -> Result<Arc<Worker>, RegistryError> {
        let entry = self.entry(id)?;
        let active = self.worker_of(id, entry).await?;
        let _guard = entry.init_lock.lock().await;
        let target = {
            let versions = entry.versions.lock().map_err(|_| poisoned(id))?;
            let active = entry.loaded().unwrap_or(active);
            match version {
                Some(v) => {
                    versions.by_version(v).map(|r| r.worker.clone()).ok_or_else(|| RegistryError::UnknownVersion {
                        id: id.to_string(),
                        version: v.to_string(),
                        known: known(&versions),
                    })?
                }
                None => versions.before(&active.digest).map(|r| r.worker.clone()).ok_or_else(|| {
                    RegistryError::NoPreviousVersion { id: id.to_string(), active: active.info.version.clone() }
                })?,
            }
        };
        if let Ok(mut slot) = entry.ready.write() {
            *slot = Some(target.clone());
        }
        tracing::info!(pipeline = id, version = %target.info.version, digest = %target.digest, "rolled back");
        Ok(target)
    }

    /// The worker a trigger runs on: the active version, or the registered one reporting
    /// `version` ([`RegistryError::UnknownVersion`] if none does).
    pub async fn resolve(&self, id: &str, version: Option<&str>) -> Result<Arc<Worker>, RegistryError> {
        let entry = self.entry(id)?;
        let active = self.worker_of(id, entry).await?;
        let Some(version) = version else { return Ok(active) };
        let versions = entry.versions.lock().map_err(|_| poisoned(id))?;
        versions.by_version(version).map(|r| r.worker.clone()).ok_or_else(|| RegistryError::UnknownVersion {
            id: id.to_string(),
            version: version.to_string(),
            known: known(&versions),
        })
    }

    /// The worker with component `digest` (what a job was triggered on): registered, or
    /// loaded back from the component store (after a rollback dropped it, or a reload).
    pub async fn worker_for(&self, id: &str, digest: &str) -> Result<Arc<Worker>, RegistryError> {
        let entry = self.entry(id)?;
        let find = || {
            if let Some(w) = entry.loaded().filter(|w| w.digest == digest) {
                return Some(w);
            }
            entry.versions.lock().ok().and_then(|v| v.by_digest(digest).map(|r| r.worker.clone()))
        };
        if let Some(w) = find() {
            return Ok(w);
        }
        if self.is_closed() {
            return Err(RegistryError::ShuttingDown);
        }
        // A job recorded on the configured component, run by a process that has not loaded
        // it yet (another cluster node, or this one after a restart): load it the usual way.
        if entry.loaded().is_none() {
            let active = self.worker_of(id, entry).await?;
            if active.digest == digest {
                return Ok(active);
            }
        }
        check_key(id, entry, digest)?;
        let _guard = entry.init_lock.lock().await;
        if let Some(w) = find() {
            return Ok(w);
        }
        let unavailable = |message: String| RegistryError::InitFailed { id: id.to_string(), message };
        let store = self.store.clone();
        let owned = digest.to_string();
        let wasm = tokio::task::spawn_blocking(move || store.read(&owned))
            .await
            .map_err(|e| unavailable(format!("component store task failed: {e}")))?
            .map_err(|e| unavailable(format!("{e:#}")))?
            .ok_or_else(|| unavailable(format!("component sha256:{digest} is neither registered nor stored")))?;
        let label = format!("stored sha256:{}", &digest[..digest.len().min(12)]);
        match self.create(id, &entry.config, Arc::new(wasm), &label).await {
            Ok(worker) => {
                let worker = Arc::new(worker);
                entry.register(id, worker.clone(), VersionSource::Store, false);
                Ok(worker)
            }
            Err(e) => {
                let message = format!("{e:#}");
                if let Ok(mut b) = entry.breakers.lock() {
                    b.on_failure(digest, Instant::now(), message.clone());
                }
                Err(unavailable(message))
            }
        }
    }

    /// The registered versions of `id` (oldest first) and the active digest.
    pub fn versions(&self, id: &str) -> Result<(Option<String>, Vec<VersionInfo>), RegistryError> {
        let entry = self.entry(id)?;
        let active = entry.loaded().map(|w| w.digest.clone());
        let versions = entry.versions.lock().map_err(|_| poisoned(id))?;
        let list = versions.items().iter().map(|r| VersionInfo::of(r, active.as_deref())).collect();
        Ok((active, list))
    }

    /// Applies a re-read configuration: each pipeline whose component file now holds other
    /// bytes than its active version is deployed from it (a failure is logged and the old
    /// version kept). Other changes need a restart and are logged as such.
    pub async fn reload(&self, config: &Config) {
        for (id, new) in &config.pipelines {
            let Some(entry) = self.entries.get(id) else {
                tracing::warn!(pipeline = %id, "reload: a new pipeline needs a restart");
                continue;
            };
            if let Ok(mut component) = entry.component.write() {
                *component = new.component.clone();
            }
            let Some(active) = entry.loaded() else {
                // Not loaded yet: its first use loads the new file.
                continue;
            };
            let wasm = match tokio::fs::read(&new.component).await {
                Ok(w) => w,
                Err(e) => {
                    tracing::error!(pipeline = %id, component = %new.component.display(), error = %e, "reload: cannot read the component; the active version keeps serving");
                    continue;
                }
            };
            if versions::digest_of(&wasm) == active.digest {
                continue;
            }
            match self.deploy(id, wasm, VersionSource::Config).await {
                Ok(d) => tracing::info!(pipeline = %id, version = %d.worker.info.version, "reload: component swapped"),
                Err(e) => {
                    tracing::error!(pipeline = %id, error = %e, "reload: component refused; the active version keeps serving")
                }
            }
        }
        for id in self.entries.keys().filter(|id| !config.pipelines.contains_key(*id)) {
            tracing::warn!(pipeline = %id, "reload: removing a pipeline needs a restart; it keeps running");
        }
    }

    fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::Acquire)
    }
}

fn poisoned(id: &str) -> RegistryError {
    RegistryError::InitFailed { id: id.to_string(), message: anyhow!("version list lock poisoned").to_string() }
}

fn known(versions: &versions::VersionList) -> Vec<String> {
    versions.items().iter().map(|r| r.worker.info.version.clone()).collect()
}
