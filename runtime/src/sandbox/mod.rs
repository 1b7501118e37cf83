//! The wasmtime sandbox: one `Engine` and `Linker` per process, a compiled-component
//! cache, and a fresh `Store` per job holding exactly that job's capabilities.
//!
//! **Boundary:** only this module calls `Engine::new` or `bindgen!`; the rest of the
//! runtime sees `Sandbox`, `WorkerPre`, `GuestFailure` and two entries: `Sandbox::run_job`
//! (a job spec in, an output or a typed `RunError` out) and `Sandbox::control` (the
//! instance that answers `describe`, `init` and `shutdown`). Generated types stay here.

pub mod bindings;
pub mod cache;
pub mod capabilities;
pub mod engine;
pub mod grants;
pub mod journal;
pub mod limits;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::watch;
use wasmtime::component::{HasSelf, Linker, ResourceTable, ResourceTableError};
use wasmtime::{Engine, Store, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use self::bindings::{PipelineWorker, PipelineWorkerPre, types};
use self::cache::{ComponentCache, Loaded};
use self::capabilities::fs::{self, FdBudget, FsCaps, FsState, QuotaMonitor};
use self::capabilities::git::GitSettings;
use self::capabilities::host::{self, HostCapability};
use self::engine::{EngineSettings, EpochTicker};
use self::grants::Access;
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
        let wasm = tokio::fs::read(path).await.with_context(|| format!("reading component {}", path.display()))?;
        self.load_bytes(Arc::new(wasm), &path.display().to_string()).await
    }

    /// Compiles (or loads from the cache) the component `wasm`, named `label` in messages,
    /// and links it.
    pub async fn load_bytes(&self, wasm: Arc<Vec<u8>>, label: &str) -> Result<(WorkerPre, Loaded)> {
        let engine = self.engine.clone();
        let cache = self.cache.clone();
        let owned = label.to_string();
        // Compilation is CPU-bound: keep it off the async workers.
        let loaded = tokio::task::spawn_blocking(move || cache.load_bytes(&engine, &wasm, &owned))
            .await
            .context("component loader task failed")??;
        let instance_pre = self
            .linker
            .instantiate_pre(&loaded.component)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("linking {label} (does it target the alephauto:worker world?)"))?;
        let pre = PipelineWorkerPre::new(instance_pre)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("{label} does not export the alephauto:worker/worker interface"))?;
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

/// One job to run in a worker: what the guest is told, and the limits and sinks of its store.
#[derive(Debug)]
pub struct JobRun<'a> {
    /// Job id.
    pub id: &'a str,
    /// Pipeline id.
    pub pipeline_id: &'a str,
    /// Attempt number.
    pub attempt: u32,
    /// Parameters, as JSON text.
    pub params: String,
    /// The job's output folder (also among `grants`), watched against `caps`' quota.
    pub output_dir: Option<&'a Path>,
    /// Folders to preopen, the output folder included.
    pub grants: Vec<Grant>,
    /// Linear memory cap in bytes.
    pub memory_bytes: usize,
    /// Wall-clock budget.
    pub timeout: Duration,
    /// Descriptor and output-folder caps.
    pub caps: FsCaps,
    /// Set to interrupt the guest.
    pub cancelled: Arc<AtomicBool>,
    /// Where log calls and stdout/stderr go.
    pub journal: Journal,
    /// Where progress goes.
    pub progress: Option<ProgressSink>,
}

/// Why a job run returned no output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunError {
    /// The worker refused a parameter.
    InvalidInput {
        /// The parameter.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The worker reported a failure.
    Failed(String),
    /// The worker reported a failure worth retrying.
    Retryable(String),
    /// The host stopped the guest, or it could not run.
    Guest(GuestFailure),
}

/// How a job run ended.
#[derive(Debug)]
pub struct JobRunReport {
    /// The worker's output (JSON text), or why there is none.
    pub outcome: Result<String, RunError>,
    /// How long instantiating took, when it succeeded.
    pub instantiated: Option<Duration>,
}

/// How often a running call checks its cancel flag and deadline from outside the guest.
const WATCH_TICK: Duration = Duration::from_millis(50);

impl Sandbox {
    /// Runs one job on `pre` in a fresh store holding exactly `run`'s capabilities. Returns once
    /// every progress report of the run has been forwarded.
    pub async fn run_job(&self, pre: &WorkerPre, run: JobRun<'_>) -> JobRunReport {
        let wit_job = Arc::new(types::Job {
            id: run.id.to_string(),
            pipeline_id: run.pipeline_id.to_string(),
            attempt: run.attempt,
            params: run.params,
            output_dir: run.output_dir.map(|d| d.to_string_lossy().into_owned()).unwrap_or_default(),
            grants: run
                .grants
                .iter()
                .map(|g| types::Grant {
                    param: g.param.clone(),
                    path: g.dir.to_string_lossy().into_owned(),
                    access: match g.access {
                        Access::Read => types::Access::ReadOnly,
                        Access::Write => types::Access::ReadWrite,
                    },
                })
                .collect(),
        });
        let (timeout, caps, cancelled) = (run.timeout, run.caps, run.cancelled.clone());
        let spec = StoreSpec {
            memory_bytes: run.memory_bytes,
            timeout,
            cancelled: run.cancelled,
            job: Some(wit_job.clone()),
            grants: run.grants,
            journal: run.journal,
            progress: run.progress,
        };
        let mut store = match self.new_store_with(spec, caps) {
            Ok(store) => store,
            Err(e) => {
                let failure = GuestFailure::Instantiate(format!("{e:#}"));
                return JobRunReport { outcome: Err(RunError::Guest(failure)), instantiated: None };
            }
        };
        let deadline = tokio::time::Instant::from_std(store.data().deadline.at);
        let mut monitor = run.output_dir.map(|dir| QuotaMonitor::new(dir.to_path_buf(), caps));
        let mut instantiated = None;
        let outcome = async {
            let started = Instant::now();
            let instance = self.instantiate(pre, &mut store).await?;
            instantiated = Some(started.elapsed());
            let call = instance.alephauto_worker_worker().call_run(&mut store, &wit_job);
            // Epochs stop guest code, but not a call parked in a host call (a WASI sleep, a
            // blocking read): the watchdog ends those. Dropping the call future abandons the
            // guest; its store is dropped right after and never reused.
            let ended = tokio::select! {
                ended = call => Ok(ended),
                stop = watchdog(&cancelled, deadline, timeout, monitor.as_mut()) => Err(stop),
            };
            match ended {
                Ok(Ok(r)) => Ok(r),
                Ok(Err(e)) => Err(classify(e, &store, timeout)),
                Err(stop) => Err(stop),
            }
        }
        .await;
        // A job that wrote fast and returned before the next scan is measured once more.
        let outcome = match (outcome, monitor.as_mut()) {
            (Ok(r), Some(m)) => match m.check().await {
                Some(why) => Err(GuestFailure::DiskQuota(why)),
                None => Ok(r),
            },
            (outcome, _) => outcome,
        };
        // The progress sender is closed: the forwarder drains and ends, so every progress
        // event precedes the job's terminal one.
        if let Some(task) = store.data_mut().host.progress.take().and_then(ProgressSink::finish) {
            let _ = task.await;
        }
        let outcome = match outcome {
            Ok(Ok(text)) => Ok(text),
            Ok(Err(types::JobError::InvalidInput(f))) => {
                Err(RunError::InvalidInput { field: f.field, message: f.message })
            }
            Ok(Err(types::JobError::Failed(msg))) => Err(RunError::Failed(msg)),
            Ok(Err(types::JobError::Retryable(msg))) => Err(RunError::Retryable(msg)),
            Err(f) => Err(RunError::Guest(f)),
        };
        JobRunReport { outcome, instantiated }
    }

    /// A worker's control instance, in a store with no grants and a `timeout` budget.
    pub async fn control(
        &self,
        pre: &WorkerPre,
        memory_bytes: usize,
        timeout: Duration,
        journal: Journal,
    ) -> Result<ControlInstance> {
        let mut store = self.new_store(StoreSpec {
            memory_bytes,
            timeout,
            cancelled: Arc::default(),
            job: None,
            grants: Vec::new(),
            journal,
            progress: None,
        })?;
        let instance = self.instantiate(pre, &mut store).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(ControlInstance { store, instance, timeout })
    }
}

/// Resolves when a running call must end from outside: a cancel, the deadline, or an
/// output folder over its quota. Checks every `WATCH_TICK`; scans when the monitor says.
async fn watchdog(
    cancelled: &AtomicBool,
    deadline: tokio::time::Instant,
    budget: Duration,
    mut monitor: Option<&mut QuotaMonitor>,
) -> GuestFailure {
    loop {
        let mut wake = (tokio::time::Instant::now() + WATCH_TICK).min(deadline);
        if let Some(m) = &monitor {
            wake = wake.min(tokio::time::Instant::from_std(m.due()));
        }
        tokio::time::sleep_until(wake).await;
        if cancelled.load(Ordering::Relaxed) {
            return GuestFailure::Cancelled;
        }
        if tokio::time::Instant::now() >= deadline {
            return GuestFailure::Timeout(budget);
        }
        if let Some(m) = monitor.as_deref_mut()
            && Instant::now() >= m.due()
            && let Some(why) = m.check().await
        {
            return GuestFailure::DiskQuota(why);
        }
    }
}

/// What a worker's `describe` returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    /// The worker's own id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Worker version.
    pub version: String,
    /// What it does.
    pub description: String,
    /// JSON Schema of its parameters, as text.
    pub params_schema: String,
    /// The git workflow it asks for.
    pub git_workflow: Option<DescribedGit>,
}

/// The git workflow a worker's `describe` asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedGit {
    /// Branch prefix.
    pub branch_prefix: String,
    /// Commit and pull-request title.
    pub commit_title: String,
}

/// A worker's control instance: it answers `describe` and `init` once, and `shutdown` at the end.
pub struct ControlInstance {
    store: Store<HostState>,
    instance: PipelineWorker,
    timeout: Duration,
}

impl std::fmt::Debug for ControlInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlInstance").finish_non_exhaustive()
    }
}

impl ControlInstance {
    /// Calls the worker's `describe`.
    pub async fn describe(&mut self) -> Result<Described, GuestFailure> {
        let d = self
            .instance
            .alephauto_worker_worker()
            .call_describe(&mut self.store)
            .await
            .map_err(|e| classify(e, &self.store, self.timeout))?;
        Ok(Described {
            id: d.id,
            name: d.name,
            version: d.version,
            description: d.description,
            params_schema: d.params_schema,
            git_workflow: d
                .git_workflow
                .map(|g| DescribedGit { branch_prefix: g.branch_prefix, commit_title: g.commit_title }),
        })
    }

    /// Calls the worker's `init` with its settings (JSON text); the inner error is the worker's refusal.
    pub async fn init(&mut self, settings: &str) -> Result<Result<(), String>, GuestFailure> {
        self.instance
            .alephauto_worker_worker()
            .call_init(&mut self.store, settings)
            .await
            .map_err(|e| classify(e, &self.store, self.timeout))
    }

    /// Calls the worker's `shutdown` with a fresh `budget`.
    pub async fn shutdown(&mut self, budget: Duration) -> Result<(), GuestFailure> {
        self.store.data_mut().deadline.at = Instant::now() + budget;
        let call = self.instance.alephauto_worker_worker().call_shutdown(&mut self.store);
        match tokio::time::timeout(budget, call).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(classify(e, &self.store, budget)),
            Err(_) => Err(GuestFailure::Timeout(budget)),
        }
    }
}
