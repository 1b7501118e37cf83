//! The worker registry: one lazily created, cached `Worker` per pipeline id.
//! Concurrent first callers share ONE initialisation (a per-pipeline async lock
//! with a re-check); repeated initialisation failures open a circuit breaker;
//! `shutdown` calls every loaded guest's `shutdown` and drops the workers.

pub mod breaker;
mod deploy;
mod params;
pub mod versions;
pub mod worker;

pub use self::deploy::Deployed;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use serde_json::Value;

use self::breaker::BreakerSettings;
use self::params::ParamSchema;
use self::versions::{Breakers, CONFIG_KEY, ComponentStore, VersionList, VersionSource};
use self::worker::{GitWorkflowInfo, Worker, WorkerInfo};
use crate::config::{Config, PipelineConfig};
use crate::sandbox::Sandbox;
use crate::sandbox::cache::LoadSource;
use crate::sandbox::grants::{PathPlan, shorten};
use crate::sandbox::journal::Journal;

/// The schema-root keyword by which a worker declines an output folder.
pub const OUTPUT_KEYWORD: &str = "x-alephauto-output";

/// How long `describe` + `init` may take.
const INIT_TIMEOUT: Duration = Duration::from_secs(60);
/// Whole worker creation (compile, describe, init): also ends an `init` waiting in a host
/// call (a sleep), which epoch interruption cannot reach.
const CREATE_TIMEOUT: Duration = Duration::from_secs(90);
/// Largest parameter schema a worker may declare, serialised.
pub const MAX_SCHEMA_BYTES: usize = 256 * 1024;
/// Longest id, name or version a worker may declare.
const MAX_LABEL_BYTES: usize = 200;
/// Longest description a worker may declare.
const MAX_DESCRIPTION_BYTES: usize = 4 * 1024;
/// How long a listing waits for an initialisation it started itself; it never waits for
/// one already under way (`GET /api/pipelines` shows that as `initialising`).
pub const LIST_GRACE: Duration = Duration::from_secs(1);

/// Why `get_worker` could not return a worker.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryError {
    /// No such pipeline in the configuration.
    #[error("Unknown pipeline: {id}. Supported pipelines: {}", supported.join(", "))]
    Unknown {
        /// The id asked for.
        id: String,
        /// Every configured id.
        supported: Vec<String>,
    },
    /// The breaker is open after repeated initialisation failures.
    #[error("Pipeline {id} is cooling down after repeated initialisation failures ({last_error}); retry in {}s", retry_after.as_secs().max(1))]
    Cooldown {
        /// Pipeline id.
        id: String,
        /// Time until an attempt is allowed.
        retry_after: Duration,
        /// The latest failure.
        last_error: String,
    },
    /// Initialisation failed.
    #[error("Failed to initialize {id} worker: {message}")]
    InitFailed {
        /// Pipeline id.
        id: String,
        /// Why.
        message: String,
    },
    /// The registry is shutting down.
    #[error("the runtime is shutting down")]
    ShuttingDown,
    /// A deployed component failed to compile, link, describe or initialise; nothing changed.
    #[error("Component refused for pipeline {id}: {message}")]
    Refused {
        /// Pipeline id.
        id: String,
        /// What failed.
        message: String,
    },
    /// No registered version of the pipeline reports that version.
    #[error("Pipeline {id} has no version {version}; registered: {}", known.join(", "))]
    UnknownVersion {
        /// Pipeline id.
        id: String,
        /// The version asked for.
        version: String,
        /// The registered versions.
        known: Vec<String>,
    },
    /// A rollback without a target, but nothing was registered before the active version.
    #[error("Pipeline {id} has no version registered before the active one ({active})")]
    NoPreviousVersion {
        /// Pipeline id.
        id: String,
        /// The active version.
        active: String,
    },
}

struct Entry {
    config: PipelineConfig,
    /// The configured component file (a reload may point it elsewhere).
    component: RwLock<PathBuf>,
    /// The active version: what new jobs run on.
    ready: RwLock<Option<Arc<Worker>>>,
    /// Serialises initialisations and deploys of this pipeline.
    init_lock: tokio::sync::Mutex<()>,
    /// Every registered version (the active one included).
    versions: Mutex<VersionList>,
    /// A breaker per component digest, and one for the configured file.
    breakers: Mutex<Breakers>,
    init_attempts: AtomicU64,
    /// Whether an initialisation is under way.
    initialising: AtomicBool,
}

impl Entry {
    fn loaded(&self) -> Option<Arc<Worker>> {
        self.ready.read().ok().and_then(|r| r.clone())
    }

    /// Registers `worker` and, when `activate`, makes it the version new jobs run on.
    fn register(&self, id: &str, worker: Arc<Worker>, source: VersionSource, activate: bool) {
        let active =
            if activate { worker.digest.clone() } else { self.loaded().map(|w| w.digest.clone()).unwrap_or_default() };
        if let Ok(mut versions) = self.versions.lock() {
            for gone in versions.register(worker.clone(), source, &active) {
                tracing::info!(pipeline = id, version = %gone.worker.info.version, digest = %gone.worker.digest, "dropped an old version");
            }
        }
        if activate && let Ok(mut slot) = self.ready.write() {
            *slot = Some(worker);
        }
    }
}

/// A configured pipeline, found by [`Registry::pipeline`].
#[derive(Clone, Copy)]
pub struct Pipeline<'r> {
    registry: &'r Registry,
    id: &'r str,
    entry: &'r Entry,
}

impl std::fmt::Debug for Pipeline<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").field("id", &self.id).finish_non_exhaustive()
    }
}

impl<'r> Pipeline<'r> {
    /// The pipeline id.
    pub fn id(&self) -> &'r str {
        self.id
    }

    /// Its configuration.
    pub fn config(&self) -> &'r PipelineConfig {
        &self.entry.config
    }

    /// Its worker, created on first use (see [`Registry::get_worker`]).
    pub async fn worker(&self) -> Result<Arc<Worker>, RegistryError> {
        self.registry.worker_of(self.id, self.entry).await
    }
}

/// Where a pipeline's worker stands, for listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerState {
    /// Not loaded, nothing under way (never asked for, or shut down).
    NotLoaded,
    /// An initialisation is under way.
    Initialising,
    /// Loaded and initialised.
    Ready,
    /// The latest initialisation failed (see `last_error`).
    Failed,
}

impl WorkerState {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotLoaded => "not_loaded",
            Self::Initialising => "initialising",
            Self::Ready => "ready",
            Self::Failed => "failed",
        }
    }
}

/// A pipeline's registry state, for the API and metrics.
#[derive(Debug, Clone)]
pub struct EntryStatus {
    /// Whether a worker is loaded.
    pub loaded: bool,
    /// Where its worker stands.
    pub state: WorkerState,
    /// Whether the breaker refuses now.
    pub cooling_down: bool,
    /// Consecutive initialisation failures.
    pub failures: u32,
    /// The latest initialisation error.
    pub last_error: Option<String>,
    /// Initialisation attempts so far.
    pub init_attempts: u64,
    /// The loaded worker's self-description.
    pub info: Option<WorkerInfo>,
    /// How long the loaded worker took to create.
    pub init_time: Option<Duration>,
}

/// The worker registry.
pub struct Registry {
    sandbox: Arc<Sandbox>,
    entries: BTreeMap<String, Entry>,
    max_log_bytes: usize,
    closed: AtomicBool,
    /// The runtime's own folders and files (`Config::protected_paths`) no grant may reach.
    protected: Vec<PathBuf>,
    /// Components by digest, under the data folder.
    store: ComponentStore,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("pipelines", &self.entries.keys().collect::<Vec<_>>()).finish()
    }
}

impl Registry {
    /// A registry for every pipeline in `config`.
    pub fn new(sandbox: Arc<Sandbox>, config: &Config, breaker: BreakerSettings) -> Self {
        let entries = config
            .pipelines
            .iter()
            .map(|(id, p)| {
                (
                    id.clone(),
                    Entry {
                        config: p.clone(),
                        component: RwLock::new(p.component.clone()),
                        ready: RwLock::new(None),
                        init_lock: tokio::sync::Mutex::new(()),
                        versions: Mutex::new(VersionList::default()),
                        breakers: Mutex::new(Breakers::new(breaker)),
                        init_attempts: AtomicU64::new(0),
                        initialising: AtomicBool::new(false),
                    },
                )
            })
            .collect();
        let protected = config.protected_paths().into_iter().map(|p| p.path).collect();
        Self {
            sandbox,
            entries,
            max_log_bytes: config.runtime.max_log_bytes,
            closed: AtomicBool::new(false),
            protected,
            store: ComponentStore::new(config.runtime.data_dir.join("components")),
        }
    }

    /// The sandbox workers run in.
    pub fn sandbox(&self) -> &Arc<Sandbox> {
        &self.sandbox
    }

    /// Whether `id` is a configured pipeline.
    pub fn is_supported(&self, id: &str) -> bool {
        self.entries.contains_key(id)
    }

    /// Every configured pipeline id, sorted.
    pub fn pipeline_ids(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    /// A pipeline's configuration.
    pub fn pipeline_config(&self, id: &str) -> Option<&PipelineConfig> {
        self.entries.get(id).map(|e| &e.config)
    }

    fn unknown(&self, id: &str) -> RegistryError {
        RegistryError::Unknown { id: id.to_string(), supported: self.pipeline_ids() }
    }

    /// The configured pipeline `id`, looked up once: its configuration and worker come from
    /// the handle without another lookup.
    pub fn pipeline(&self, id: &str) -> Result<Pipeline<'_>, RegistryError> {
        let (id, entry) = self.entries.get_key_value(id).ok_or_else(|| self.unknown(id))?;
        Ok(Pipeline { registry: self, id, entry })
    }

    /// The cached worker, without initialising one.
    pub fn loaded(&self, id: &str) -> Option<Arc<Worker>> {
        self.entries.get(id).and_then(Entry::loaded)
    }

    /// The worker for `id`, creating it on first use.
    pub async fn get_worker(&self, id: &str) -> Result<Arc<Worker>, RegistryError> {
        self.pipeline(id)?.worker().await
    }

    /// The worker of `entry`, creating it on first use.
    async fn worker_of(&self, id: &str, entry: &Entry) -> Result<Arc<Worker>, RegistryError> {
        if let Some(w) = entry.loaded() {
            return Ok(w);
        }
        if self.closed.load(Ordering::Acquire) {
            return Err(RegistryError::ShuttingDown);
        }
        self.check_breaker(id, entry)?;
        let _guard = entry.init_lock.lock().await;
        // Whoever held the lock before us may have finished the work (or tripped the breaker).
        if let Some(w) = entry.loaded() {
            return Ok(w);
        }
        self.check_breaker(id, entry)?;
        entry.init_attempts.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        // Cleared however this future ends (a caller that goes away drops it mid-way).
        struct Initialising<'a>(&'a AtomicBool);
        impl Drop for Initialising<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        entry.initialising.store(true, Ordering::Release);
        let _initialising = Initialising(&entry.initialising);
        let component = entry.component.read().map(|c| c.clone()).unwrap_or_else(|_| entry.config.component.clone());
        let created = async {
            let wasm = tokio::fs::read(&component)
                .await
                .with_context(|| format!("reading component {}", component.display()))?;
            let wasm = Arc::new(wasm);
            let label = component.display().to_string();
            let worker = self.create(id, &entry.config, wasm.clone(), &label).await?;
            // Kept by digest, so a job triggered on this version can run after a reload.
            self.keep(id, &worker.digest, wasm).await;
            Ok::<_, anyhow::Error>(worker)
        };
        match created.await {
            Ok(mut worker) => {
                worker.init_time = started.elapsed();
                let worker = Arc::new(worker);
                if let Ok(mut b) = entry.breakers.lock() {
                    b.on_success(CONFIG_KEY);
                }
                entry.register(id, worker.clone(), VersionSource::Config, true);
                tracing::info!(
                    pipeline = id,
                    ms = worker.init_time.as_millis() as u64,
                    cached = worker.from_cache,
                    "worker initialised"
                );
                Ok(worker)
            }
            Err(e) => {
                let message = format!("{e:#}");
                tracing::error!(pipeline = id, error = %message, "worker initialisation failed");
                if let Ok(mut b) = entry.breakers.lock() {
                    b.on_failure(CONFIG_KEY, Instant::now(), message.clone());
                }
                Err(RegistryError::InitFailed { id: id.to_string(), message })
            }
        }
    }

    /// Starts initialising every pipeline in `ids` that is not loaded, not under way and not
    /// cooling down (disabled ones too: the listing shows their schema), in the background;
    /// waits for them at most `grace`. Never waits for an initialisation already under way.
    pub async fn start_loading(self: &Arc<Self>, ids: &[String], grace: Duration) {
        let mut started = Vec::new();
        for id in ids {
            let Some(entry) = self.entries.get(id) else {
                continue;
            };
            let cooling = entry.breakers.lock().map(|b| b.check(CONFIG_KEY, Instant::now()).is_err()).unwrap_or(true);
            if cooling
                || entry.loaded().is_some()
                || entry.initialising.load(Ordering::Acquire)
                || self.closed.load(Ordering::Acquire)
            {
                continue;
            }
            let registry = self.clone();
            let id = id.clone();
            // Detached: the initialisation finishes (and is cached) even if the listing is gone.
            started.push(tokio::spawn(async move {
                if let Err(e) = registry.get_worker(&id).await {
                    tracing::debug!(pipeline = %id, error = %e, "background initialisation failed");
                }
            }));
        }
        if !started.is_empty() {
            let _ = tokio::time::timeout(grace, futures::future::join_all(started)).await;
        }
    }

    fn check_breaker(&self, id: &str, entry: &Entry) -> Result<(), RegistryError> {
        check_key(id, entry, CONFIG_KEY)
    }

    /// Creates a worker from `wasm` within [`CREATE_TIMEOUT`]: compile, link, `describe`, `init`.
    async fn create(
        &self,
        id: &str,
        config: &PipelineConfig,
        wasm: Arc<Vec<u8>>,
        label: &str,
    ) -> anyhow::Result<Worker> {
        tokio::time::timeout(CREATE_TIMEOUT, self.init_worker(id, config, wasm, label))
            .await
            .unwrap_or_else(|_| Err(anyhow!("did not finish within {} s", CREATE_TIMEOUT.as_secs())))
    }

    async fn init_worker(
        &self,
        id: &str,
        config: &PipelineConfig,
        wasm: Arc<Vec<u8>>,
        label: &str,
    ) -> anyhow::Result<Worker> {
        let digest = versions::digest_of(&wasm);
        let (pre, loaded) = self.sandbox.load_bytes(wasm, label).await?;
        let journal = Journal::new(self.max_log_bytes, 0);
        let mut control =
            self.sandbox.control(&pre, (config.memory_mb as usize) << 20, INIT_TIMEOUT, journal.clone()).await?;
        let described = control.describe().await.map_err(|e| anyhow!("{e}")).context("calling describe")?;
        // What describe returned is checked (and the schema walked, within budgets) before
        // `init`: a worker whose self-description is over budget is never initialised.
        worker::check_described(&described)?;
        let schema: Value = serde_json::from_str(&described.params_schema)
            .with_context(|| format!("worker {} declared a parameter schema that is not JSON", described.id))?;
        let paths = PathPlan::build(&schema)
            .map_err(|e| anyhow!("worker {} declared a parameter schema the host refuses: {e}", described.id))?;
        let param_schema = ParamSchema::compile(&schema, paths.stats().uses_patterns).map_err(|e| {
            anyhow!("worker {} declared an invalid parameter schema: {}", described.id, shorten(&e, 1000))
        })?;
        let settings = serde_json::to_string(&config.settings).context("serialising pipeline settings")?;
        control
            .init(&settings)
            .await
            .map_err(|e| anyhow!("{e}"))
            .context("calling init")?
            .map_err(|msg| anyhow!("the worker's init refused: {msg}"))?;
        for line in journal.drain() {
            tracing::debug!(pipeline = id, stream = ?line.stream, "{}", line.message);
        }
        if described.id != id {
            tracing::info!(pipeline = id, worker = %described.id, "component reports a different id; the configured id is used");
        }
        let roots = config
            .roots
            .iter()
            .filter_map(|r| match std::fs::canonicalize(r) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(pipeline = id, root = %r.display(), error = %e, "granted root is not usable");
                    None
                }
            })
            .collect::<Vec<PathBuf>>();
        let info = WorkerInfo {
            id: described.id,
            version: described.version,
            name: described.name,
            description: described.description,
            params_schema: schema,
            git_workflow: described
                .git_workflow
                .map(|g| GitWorkflowInfo { branch_prefix: g.branch_prefix, commit_title: g.commit_title }),
        };
        let wants_output = info.params_schema.get(OUTPUT_KEYWORD).and_then(Value::as_bool) != Some(false);
        // The plan already knows whether any path parameter is reachable.
        let takes_paths = !paths.is_empty();
        Ok(Worker {
            pipeline_id: id.to_string(),
            digest,
            wants_output,
            takes_paths,
            config: config.clone(),
            info,
            pre,
            roots,
            // Resolved now, like the roots: the data folder exists once the server started.
            protected: self.protected.iter().map(|p| crate::config::canonical_lenient(p)).collect(),
            init_time: Duration::ZERO,
            from_cache: loaded.source == LoadSource::Cached,

            schema: param_schema,
            paths,
            control: tokio::sync::Mutex::new(Some(control)),
        })
    }

    /// Initialises the listed pipelines now; failures are logged, not fatal.
    pub async fn warm_up(&self, ids: &[String]) {
        let tasks = ids.iter().map(|id| async move {
            if let Err(e) = self.get_worker(id).await {
                tracing::warn!(pipeline = %id, error = %e, "warm-up failed");
            }
        });
        futures::future::join_all(tasks).await;
    }

    /// A pipeline's registry state.
    pub fn status(&self, id: &str) -> Option<EntryStatus> {
        let entry = self.entries.get(id)?;
        let worker = entry.loaded();
        let (cooling_down, failures, last_error) = entry
            .breakers
            .lock()
            .ok()
            .and_then(|b| {
                b.get(CONFIG_KEY).map(|b| (b.is_open(Instant::now()), b.failures(), b.last_error().map(str::to_string)))
            })
            .unwrap_or((false, 0, None));
        let state = if worker.is_some() {
            WorkerState::Ready
        } else if entry.initialising.load(Ordering::Acquire) {
            WorkerState::Initialising
        } else if last_error.is_some() {
            WorkerState::Failed
        } else {
            WorkerState::NotLoaded
        };
        Some(EntryStatus {
            loaded: worker.is_some(),
            state,
            cooling_down,
            failures,
            last_error,
            init_attempts: entry.init_attempts.load(Ordering::Relaxed),
            info: worker.as_ref().map(|w| w.info.clone()),
            init_time: worker.as_ref().map(|w| w.init_time),
        })
    }

    /// Calls every loaded guest's `shutdown` and drops the workers; later
    /// `get_worker` calls fail with `ShuttingDown`.
    pub async fn shutdown(&self) {
        self.closed.store(true, Ordering::Release);
        for (id, entry) in &self.entries {
            let active = entry.ready.write().ok().and_then(|mut slot| slot.take());
            let mut all: Vec<Arc<Worker>> = entry
                .versions
                .lock()
                .map(|mut v| v.take_all())
                .unwrap_or_default()
                .into_iter()
                .map(|r| r.worker)
                .collect();
            if let Some(w) = active
                && !all.iter().any(|v| v.digest == w.digest)
            {
                all.push(w);
            }
            for worker in all {
                let control = worker.control.lock().await.take();
                if let Some(mut control) = control {
                    match control.shutdown(Duration::from_secs(10)).await {
                        Ok(()) => tracing::info!(pipeline = %id, version = %worker.info.version, "worker shut down"),
                        Err(e) => tracing::warn!(pipeline = %id, error = %e, "worker shutdown failed"),
                    }
                }
            }
        }
    }
}

/// Refuses an attempt while the breaker of `key` (a digest, or [`CONFIG_KEY`]) is open.
fn check_key(id: &str, entry: &Entry, key: &str) -> Result<(), RegistryError> {
    let breakers = entry
        .breakers
        .lock()
        .map_err(|_| RegistryError::InitFailed { id: id.to_string(), message: "breaker lock poisoned".into() })?;
    breakers.check(key, Instant::now()).map_err(|(retry_after, last_error)| RegistryError::Cooldown {
        id: id.to_string(),
        retry_after,
        last_error,
    })
}
