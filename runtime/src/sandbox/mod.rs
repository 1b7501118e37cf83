//! The wasmtime sandbox: one `Engine` and `Linker` per process, a compiled-component
//! cache, and a fresh `Store` per job holding exactly that job's capabilities.
//!
//! **Boundary:** only this module calls `Engine::new` or `bindgen!`; the rest of the
//! runtime sees `Sandbox`, `WorkerPre` and `GuestFailure`.

pub mod bindings;
pub mod cache;
pub mod capabilities;
pub mod engine;
pub mod grants;
pub mod journal;
pub mod limits;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::watch;
use wasmtime::component::{HasSelf, Linker, ResourceTable, ResourceTableError};
use wasmtime::{Engine, Store, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use self::bindings::{PipelineWorker, PipelineWorkerPre, types};
use self::cache::{ComponentCache, Loaded};
use self::capabilities::fs::{self, FdBudget, FsCaps, FsState};
use self::capabilities::git::GitSettings;
use self::capabilities::host::{self, HostCapability};
use self::engine::{EngineSettings, EpochTicker};
use self::grants::Grant;
use self::journal::Journal;
use self::limits::{Deadline, Interrupt, JobLimiter};
use crate::domain::{FailureCode, LogStream, Progress};

/// A compiled, pre-linked worker component, ready to instantiate per job.
pub type WorkerPre = PipelineWorkerPre<HostState>;

/// Everything a guest can reach, held in its `Store`: one part per capability, each
/// owning its per-job state (and, in its module, its configuration, linker hookup and
/// confinement). Its fields are private to `sandbox` (the capabilities are its children);
/// the rest of the runtime uses the accessors.
pub struct HostState {
    /// WASI (`wasmtime-wasi`): clocks, random, stdio and the preopened folders.
    wasi: WasiCtx,
    /// The guest's handles (descriptors, streams, pollables), at most `fs::MAX_HANDLES`.
    table: ResourceTable,
    /// Linear memory cap (`sandbox::limits`).
    limiter: JobLimiter,
    /// Deadline and cancellation, checked at every epoch tick (`sandbox::limits`).
    deadline: Deadline,
    /// The `host` interface: job context, log, progress (`capabilities::host`).
    host: HostCapability,
    /// Descriptor cap and its accounting (`capabilities::fs`).
    fs: FsState,
    /// The job's granted folders, read by `file-executable` and the `git` interface.
    grants: Vec<Grant>,
    /// Settings of the `git` interface (`capabilities::git`).
    git: GitSettings,
}

impl HostState {
    /// The job's granted folders.
    pub fn grants(&self) -> &[Grant] {
        &self.grants
    }

    /// The `git` interface's settings.
    pub fn git_settings(&self) -> &GitSettings {
        &self.git
    }

    /// When the guest's deadline falls.
    pub fn deadline(&self) -> Instant {
        self.deadline.at
    }

    /// Moves the guest's deadline (a control instance gets a fresh budget for `shutdown`).
    pub fn set_deadline(&mut self, at: Instant) {
        self.deadline.at = at;
    }

    /// Takes the job's progress sink, ending progress reporting for this store.
    pub fn take_progress(&mut self) -> Option<ProgressSink> {
        self.host.progress.take()
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// What a store is built from: the job's grants, limits and sinks.
#[derive(Debug)]
pub struct StoreSpec {
    /// Linear memory cap in bytes.
    pub memory_bytes: usize,
    /// Wall-clock budget for everything run in this store.
    pub timeout: Duration,
    /// Set to interrupt the guest at the next epoch tick.
    pub cancelled: Arc<AtomicBool>,
    /// The job (none for the registry's control instance).
    pub job: Option<Arc<types::Job>>,
    /// Folders to preopen.
    pub grants: Vec<Grant>,
    /// Where log calls and stdout/stderr go.
    pub journal: Journal,
    /// Where progress goes.
    pub progress: Option<ProgressSink>,
}

/// Starts the task that consumes a job's progress reports.
type StartConsumer = Box<dyn FnOnce(watch::Receiver<Progress>) -> tokio::task::JoinHandle<()> + Send>;

/// Where a job's progress reports go: a watch channel (a flood of reports keeps only the
/// latest) whose consumer task is started by the first report, so the many jobs that never
/// report progress cost no channel and no task.
pub struct ProgressSink {
    tx: Option<watch::Sender<Progress>>,
    start: Option<StartConsumer>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for ProgressSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgressSink").field("started", &self.task.is_some()).finish()
    }
}

impl ProgressSink {
    /// A sink whose first report calls `start` with the receiving end; `start` returns the
    /// consumer task.
    pub fn new(start: impl FnOnce(watch::Receiver<Progress>) -> tokio::task::JoinHandle<()> + Send + 'static) -> Self {
        Self { tx: None, start: Some(Box::new(start)), task: None }
    }

    /// Publishes the latest progress.
    pub fn report(&mut self, progress: Progress) {
        match &self.tx {
            Some(tx) => {
                tx.send_replace(progress);
            }
            None => {
                let (tx, rx) = watch::channel(Progress::default());
                // Sent after subscribing, so the consumer sees this report as a change.
                tx.send_replace(progress);
                if let Some(start) = self.start.take() {
                    self.task = Some(start(rx));
                }
                self.tx = Some(tx);
            }
        }
    }

    /// Closes the channel and hands back the consumer task, if one started: it ends once it
    /// has forwarded the last report.
    pub fn finish(mut self) -> Option<tokio::task::JoinHandle<()>> {
        self.tx = None;
        self.task.take()
    }
}

/// Why a guest call did not return normally.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuestFailure {
    /// It ran past its deadline.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// A user cancelled it.
    #[error("cancelled")]
    Cancelled,
    /// It grew its memory past the pipeline's limit.
    #[error("{0}")]
    MemoryLimit(String),
    /// It trapped (panic, unreachable, stack overflow, ...).
    #[error("guest trapped: {0}")]
    Trap(String),
    /// It could not be instantiated.
    #[error("could not instantiate the worker: {0}")]
    Instantiate(String),
    /// Its output folder grew past the pipeline's quota.
    #[error("disk quota exceeded: {0}")]
    DiskQuota(String),
    /// It held more handles (descriptors, streams, pollables) than a job may.
    #[error("handle limit exceeded: the job held {0} WASI handles at once")]
    HandleLimit(usize),
}

impl GuestFailure {
    /// The code stored on the job.
    pub fn code(&self) -> FailureCode {
        match self {
            GuestFailure::Timeout(_) => FailureCode::Timeout,
            GuestFailure::Cancelled => FailureCode::Cancelled,
            GuestFailure::MemoryLimit(_) => FailureCode::MemoryLimit,
            GuestFailure::Trap(_) => FailureCode::Trap,
            GuestFailure::Instantiate(_) => FailureCode::InstantiateFailed,
            GuestFailure::DiskQuota(_) => FailureCode::DiskQuota,
            GuestFailure::HandleLimit(_) => FailureCode::HandleLimit,
        }
    }
}

/// The process-wide sandbox.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<HostState>,
    cache: ComponentCache,
    git: GitSettings,
    /// Descriptors all guests together may hold (the process limit less the server's reserve).
    fd_budget: Arc<FdBudget>,
    _ticker: EpochTicker,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox").field("cache", &self.cache).finish()
    }
}

impl Sandbox {
    /// Builds the engine, the linker with WASI and our host interfaces, and the cache.
    pub fn new(settings: &EngineSettings, cache_dir: &Path, git: GitSettings) -> Result<Self> {
        let engine = engine::build_engine(settings)?;
        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(anyhow::Error::from)
            .context("adding WASI to the linker")?;
        fs::add_to_linker(&mut linker)?;
        host::add_to_linker(&mut linker)?;
        bindings::git::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(anyhow::Error::from)
            .context("adding alephauto:worker/git to the linker")?;
        let cache = ComponentCache::new(&engine, cache_dir)?;
        let ticker = EpochTicker::start(engine.clone())?;
        let fd_budget = Arc::new(FdBudget::from_rlimit());
        Ok(Self { engine, linker, cache, git, fd_budget, _ticker: ticker })
    }

    /// The engine (for benchmarks and diagnostics).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Loads (from the cache when possible) and pre-links a component.
    pub async fn load(&self, path: &Path) -> Result<(WorkerPre, Loaded)> {
        let engine = self.engine.clone();
        let cache = self.cache.clone();
        let owned = path.to_path_buf();
        // Compilation is CPU-bound: keep it off the async workers.
        let loaded = tokio::task::spawn_blocking(move || cache.load(&engine, &owned))
            .await
            .context("component loader task failed")??;
        let instance_pre = self
            .linker
            .instantiate_pre(&loaded.component)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("linking {} (does it target the alephauto:worker world?)", path.display()))?;
        let pre = PipelineWorkerPre::new(instance_pre)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("{} does not export the alephauto:worker/worker interface", path.display()))?;
        Ok((pre, loaded))
    }

    /// A fresh store holding exactly the capabilities in `spec`, with the default caps.
    pub fn new_store(&self, spec: StoreSpec) -> Result<Store<HostState>> {
        self.new_store_with(spec, FsCaps::default())
    }

    /// A fresh store holding exactly the capabilities in `spec`, with the filesystem caps `caps`.
    pub fn new_store_with(&self, spec: StoreSpec, caps: FsCaps) -> Result<Store<HostState>> {
        let mut wasi = WasiCtx::builder();
        wasi.stdout(spec.journal.stream(LogStream::Stdout)).stderr(spec.journal.stream(LogStream::Stderr));
        fs::preopen(&mut wasi, &spec.grants)?;
        let mut table = ResourceTable::new();
        table.set_max_capacity(fs::MAX_HANDLES);
        let state = HostState {
            wasi: wasi.build(),
            table,
            limiter: JobLimiter::new(spec.memory_bytes),
            deadline: Deadline { at: Instant::now() + spec.timeout, cancelled: spec.cancelled.clone() },
            host: HostCapability {
                job: spec.job,
                journal: spec.journal,
                progress: spec.progress,
                cancelled: spec.cancelled,
            },
            fs: FsState::new(caps, self.fd_budget.clone()),
            grants: spec.grants,
            git: self.git.clone(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| ctx.data().deadline.check());
        Ok(store)
    }

    /// Instantiates `pre` in `store`.
    pub async fn instantiate(
        &self,
        pre: &WorkerPre,
        store: &mut Store<HostState>,
    ) -> Result<PipelineWorker, GuestFailure> {
        pre.instantiate_async(&mut *store).await.map_err(|e| classify(e, store, Duration::ZERO))
    }
}

/// Maps a wasmtime error from a guest call to the failure a user sees.
pub fn classify(err: wasmtime::Error, store: &Store<HostState>, budget: Duration) -> GuestFailure {
    if let Some(interrupt) = err.downcast_ref::<Interrupt>() {
        return match interrupt {
            Interrupt::Timeout => GuestFailure::Timeout(budget),
            Interrupt::Cancelled => GuestFailure::Cancelled,
        };
    }
    if let Some(message) = &store.data().limiter.refused {
        return GuestFailure::MemoryLimit(message.clone());
    }
    if err
        .chain()
        .any(|e| e.downcast_ref::<ResourceTableError>().is_some_and(|t| matches!(t, ResourceTableError::Full)))
    {
        return GuestFailure::HandleLimit(fs::MAX_HANDLES);
    }
    if let Some(trap) = err.downcast_ref::<Trap>() {
        let detail = match trap {
            Trap::StackOverflow => "stack overflow".to_string(),
            other => other.to_string(),
        };
        return GuestFailure::Trap(format!("{detail} ({})", root_message(&err)));
    }
    GuestFailure::Trap(root_message(&err))
}

fn root_message(err: &wasmtime::Error) -> String {
    let text = format!("{err:?}");
    // The debug form holds the wasm backtrace; keep it bounded.
    text.chars().take(2000).collect()
}
