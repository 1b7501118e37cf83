//! The job queue: a FIFO lane per pipeline with at most `max_concurrent` jobs
//! running, every transition persisted before its event is published, retryable
//! failures retried with backoff, and crash recovery on start.
//!
//! It depends on two traits it owns: [`Executor`] (how an attempt runs: the runtime's
//! [`Workers`], or a test's fake) and `source::JobSource` (where runnable jobs come from:
//! this process's lanes, or claims from a cluster's shared store).
//!
//! **Invariant:** the store is the source of truth; in-memory lanes only order work.
//! A job leaves a lane only through `execute`, which fences every write by attempt.

mod cluster;
mod execute;
mod executor;
pub mod ids;
mod lanes;
mod outputs;
mod reads;
pub mod retry;
mod source;
#[cfg(test)]
mod tests;
mod versions;
mod workers;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use serde_json::{Map, Value};
use tokio_util::task::TaskTracker;

use self::ids::IdGenerator;
use self::source::JobSource;
use crate::domain::{Job, JobStatus, format_ts, job_params};
use crate::events::{EventBus, EventKind, JobEvent};
use crate::failpoints;
use crate::registry::worker::ParamError;
use crate::registry::{Registry, RegistryError};
use crate::store::{JobStore, StoreError};

pub use cluster::ClusterSettings;
pub use executor::{Attempt, Executor, Outcome, RunsOn, Validated};
pub use workers::{NativeHandler, Workers};

/// Queue-wide settings.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    /// Attempts a retryable job gets.
    pub max_attempts: u32,
    /// First retry delay.
    pub retry_base: Duration,
    /// Log bytes kept per attempt.
    pub max_log_bytes: usize,
    /// Result bytes accepted.
    pub max_result_bytes: usize,
    /// Folder holding each job's output folder.
    pub outputs_dir: PathBuf,
    /// When false, triggers are refused.
    pub execution_enabled: bool,
}

/// Why a trigger was refused.
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    /// Unknown pipeline, breaker open, or initialisation failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// Parameters failed validation.
    #[error(transparent)]
    InvalidParams(#[from] ParamError),
    /// The pipeline's queue is at its cap.
    #[error("Queue for pipeline {pipeline} is full ({cap} jobs queued)")]
    QueueFull {
        /// Pipeline id.
        pipeline: String,
        /// Its cap.
        cap: usize,
    },
    /// Execution is disabled by configuration.
    #[error("{0}")]
    Disabled(String),
    /// The runtime is shutting down.
    #[error("the runtime is shutting down")]
    ShuttingDown,
    /// Persisting failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a cancel or retry was refused.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No job with that id.
    #[error("Job not found: {0}")]
    NotFound(String),
    /// The job's state does not allow it.
    #[error("Job {id} is {status}; {action}")]
    Conflict {
        /// Job id.
        id: String,
        /// Its status.
        status: &'static str,
        /// What would have been needed.
        action: &'static str,
    },
    /// Creating the retry failed.
    #[error(transparent)]
    Trigger(#[from] TriggerError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A pipeline's lane limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaneLimits {
    /// Jobs running at once.
    pub max_concurrent: usize,
    /// Jobs waiting at most; triggers beyond are refused.
    pub max_queued: usize,
    /// When false, triggers are refused and nothing is claimed.
    pub enabled: bool,
}

#[derive(Debug)]
pub(crate) struct Lane {
    /// Boxed: a growing backlog doubles the deque under the lane lock, and moving a few hundred
    /// bytes per job there stalled every trigger (max latency 55-153 ms vs 13-17 ms boxed).
    queued: VecDeque<Box<Job>>,
    /// Triggers between the cap check and the push.
    reserved: usize,
    running: usize,
    max_concurrent: usize,
    max_queued: usize,
}

pub(crate) struct Inner<X> {
    store: Arc<dyn JobStore>,
    executor: X,
    events: EventBus,
    settings: QueueSettings,
    /// Each configured pipeline's limits, by id (sorted, for messages).
    pipelines: BTreeMap<String, LaneLimits>,
    // std Mutex: lanes and the running map are touched briefly, never across awaits.
    lanes: HashMap<String, Mutex<Lane>>,
    running: Mutex<HashMap<String, Arc<AtomicBool>>>,
    ids: IdGenerator,
    accepting: AtomicBool,
    dispatching: AtomicBool,
    tracker: TaskTracker,
    metrics: Arc<crate::metrics::Metrics>,
    cluster: std::sync::OnceLock<cluster::Cluster>,
}

impl<X: Executor> Inner<X> {
    /// Where runnable jobs come from: the cluster once joined, else this process's lanes.
    fn source(&self) -> &dyn JobSource<X> {
        match self.cluster.get() {
            Some(cluster) => cluster,
            None => &lanes::LocalLanes,
        }
    }

    /// Publishes `kind` for `job`. The event (a JSON payload with the job's data or result)
    /// is built only when it will reach someone: a subscriber here, or other nodes.
    async fn publish_of(&self, kind: EventKind, job: &Job) {
        if !self.source().wants_events(self) {
            return;
        }
        self.publish(JobEvent::of(kind, job)).await;
    }

    /// Publishes an event: on the local bus, or (in a cluster) to every node through the store.
    async fn publish(&self, event: JobEvent) {
        self.source().publish(self, event).await;
        failpoints::hit(failpoints::EVENT_PUBLISHED);
    }
}

/// A configured pipeline of the queue, found by [`Queue::pipeline`]: a trigger through it
/// needs no second lookup.
pub struct Pipeline<'q, X: Executor = Workers> {
    queue: &'q Queue<X>,
    id: &'q str,
    limits: &'q LaneLimits,
}

impl<X: Executor> Pipeline<'_, X> {
    /// The pipeline id.
    pub fn id(&self) -> &str {
        self.id
    }

    /// Validates, persists and queues a job with `params` (keys the server sets are dropped
    /// from an object); returns it as stored.
    pub async fn trigger(&self, params: Value) -> Result<Job, TriggerError> {
        self.trigger_on(params, None).await
    }

    /// Like [`Self::trigger`], on the registered worker `version` when one is pinned.
    pub async fn trigger_on(&self, params: Value, version: Option<&str>) -> Result<Job, TriggerError> {
        self.queue.create_job(self, params, version, Origin::new("manual", "api"), None).await
    }

    /// Like `trigger`, for a job started on someone's behalf (a run, a schedule): its id
    /// reads `<pipeline>-<kind>-<ms>` unless the origin chose one, its data carry
    /// `triggeredBy`, the server-set `marks` and, for a fire, `scheduledFor`. A chosen id
    /// already taken fails with `StoreError::Duplicate` and creates nothing, which makes it
    /// an exactly-once key.
    pub async fn trigger_as(&self, params: Value, origin: Origin) -> Result<Job, TriggerError> {
        self.queue.create_job(self, params, None, origin, None).await
    }
}

/// Who a job is created for, when not a plain API trigger.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The kind in a generated id (`<pipeline>-<kind>-<ms>`).
    pub kind: String,
    /// The `triggeredBy` data key, e.g. `schedule:nightly`.
    pub triggered_by: String,
    /// Server-set data keys (e.g. `runId`, one of `RESERVED_KEYS`).
    pub marks: Map<String, Value>,
    /// The job id to use (None: a generated one).
    pub job_id: Option<String>,
    /// The fire time the job is for (`scheduledFor`).
    pub scheduled_for: Option<chrono::DateTime<Utc>>,
}

impl Origin {
    /// An origin with a generated id and no marks.
    pub fn new(kind: &str, triggered_by: &str) -> Self {
        Self {
            kind: kind.into(),
            triggered_by: triggered_by.into(),
            marks: Map::new(),
            job_id: None,
            scheduled_for: None,
        }
    }
}

/// Counts of one pipeline's lane.
#[derive(Debug, Clone, Copy, Default)]
pub struct LaneCounts {
    /// Jobs waiting.
    pub queued: usize,
    /// Jobs running.
    pub running: usize,
    /// Its concurrency limit.
    pub capacity: usize,
}

/// The job queue; cheap to clone. `X` runs the attempts: the runtime's [`Workers`] unless a
/// test supplies its own.
pub struct Queue<X: Executor = Workers> {
    inner: Arc<Inner<X>>,
}

impl<X: Executor> Clone for Queue<X> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone() }
    }
}

impl<X: Executor> std::fmt::Debug for Queue<X> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").finish_non_exhaustive()
    }
}

impl Queue<Workers> {
    /// A queue over `store` that runs jobs through `registry`'s workers.
    pub fn new(
        store: Arc<dyn JobStore>,
        registry: Arc<Registry>,
        events: EventBus,
        settings: QueueSettings,
        git: crate::gitflow::GitWorkflow,
    ) -> Self {
        let metrics = Arc::<crate::metrics::Metrics>::default();
        let pipelines: Vec<(String, LaneLimits)> = registry
            .pipeline_ids()
            .into_iter()
            .filter_map(|id| {
                let cfg = registry.pipeline_config(&id)?;
                let limits =
                    LaneLimits { max_concurrent: cfg.max_concurrent, max_queued: cfg.max_queued, enabled: cfg.enabled };
                Some((id, limits))
            })
            .collect();
        let workers =
            Workers::new(registry, git, metrics.clone(), settings.outputs_dir.clone(), settings.max_result_bytes);
        Self::build(store, workers, pipelines, events, settings, metrics)
    }

    /// The registry the queue runs jobs with.
    pub fn registry(&self) -> &Arc<Registry> {
        self.inner.executor.registry()
    }

    /// Runs `pipeline`'s jobs with `handler` in the host instead of its component.
    pub fn set_native_handler(&self, pipeline: &str, handler: NativeHandler) {
        self.inner.executor.set_native_handler(pipeline, handler);
    }
}

impl<X: Executor> Queue<X> {
    /// A queue over `store` whose attempts `executor` runs, with a lane per pipeline of `pipelines`.
    pub fn with_executor(
        store: Arc<dyn JobStore>,
        executor: X,
        pipelines: impl IntoIterator<Item = (String, LaneLimits)>,
        events: EventBus,
        settings: QueueSettings,
    ) -> Self {
        Self::build(store, executor, pipelines, events, settings, Arc::default())
    }

    fn build(
        store: Arc<dyn JobStore>,
        executor: X,
        pipelines: impl IntoIterator<Item = (String, LaneLimits)>,
        events: EventBus,
        settings: QueueSettings,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        let pipelines: BTreeMap<String, LaneLimits> = pipelines.into_iter().collect();
        let lanes = pipelines
            .iter()
            .map(|(id, limits)| {
                let lane = Lane {
                    queued: VecDeque::new(),
                    reserved: 0,
                    running: 0,
                    max_concurrent: limits.max_concurrent,
                    max_queued: limits.max_queued,
                };
                (id.clone(), Mutex::new(lane))
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                store,
                executor,
                events,
                settings,
                pipelines,
                lanes,
                running: Mutex::new(HashMap::new()),
                ids: IdGenerator::default(),
                accepting: AtomicBool::new(true),
                dispatching: AtomicBool::new(true),
                tracker: TaskTracker::new(),
                metrics,
                cluster: std::sync::OnceLock::new(),
            }),
        }
    }

    /// The executor that runs the attempts.
    pub fn executor(&self) -> &X {
        &self.inner.executor
    }

    /// The store the queue persists to (for benchmarks and tests; the API uses the queue's
    /// own methods).
    pub fn store(&self) -> &Arc<dyn JobStore> {
        &self.inner.store
    }

    /// The runtime's metrics.
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.inner.metrics
    }

    /// The event bus.
    pub fn events(&self) -> &EventBus {
        &self.inner.events
    }

    /// Queued, running and capacity of a pipeline's lane.
    pub fn lane_counts(&self, pipeline: &str) -> LaneCounts {
        self.inner
            .lanes
            .get(pipeline)
            .and_then(|l| {
                l.lock().ok().map(|l| LaneCounts {
                    queued: l.queued.len(),
                    running: l.running,
                    capacity: l.max_concurrent,
                })
            })
            .unwrap_or_default()
    }

    /// The configured pipeline `id`, looked up once for a trigger (unknown ids are refused
    /// with the list of known ones).
    pub fn pipeline(&self, id: &str) -> Result<Pipeline<'_, X>, TriggerError> {
        let Some((id, limits)) = self.inner.pipelines.get_key_value(id) else {
            let supported = self.inner.pipelines.keys().cloned().collect();
            return Err(RegistryError::Unknown { id: id.into(), supported }.into());
        };
        Ok(Pipeline { queue: self, id, limits })
    }

    /// Validates, persists and queues a job; returns it as stored.
    pub async fn trigger(&self, pipeline: &str, params: Value) -> Result<Job, TriggerError> {
        self.pipeline(pipeline)?.trigger(params).await
    }

    /// `params` are the job's parameters, without the keys the server sets.
    async fn create_job(
        &self,
        handle: &Pipeline<'_, X>,
        params: Value,
        version: Option<&str>,
        origin: Origin,
        retry_of: Option<&Job>,
    ) -> Result<Job, TriggerError> {
        let (pipeline, limits) = (handle.id, handle.limits);
        let inner = &self.inner;
        if !inner.accepting.load(Ordering::Acquire) {
            return Err(TriggerError::ShuttingDown);
        }
        if !inner.settings.execution_enabled {
            return Err(TriggerError::Disabled("Job execution is disabled by configuration".into()));
        }
        if !limits.enabled {
            return Err(TriggerError::Disabled(format!("Pipeline {pipeline} is disabled by configuration")));
        }
        let params = if params.is_object() { job_params(&params) } else { params };
        let Validated { params, runs_on } = inner.executor.validate_on(pipeline, params, version).await?;
        // Persisting and queueing must finish even when the caller goes away (an HTTP client
        // that disconnects drops its handler): otherwise a job could be stored but never queued.
        let queue = self.clone();
        let pipeline = pipeline.to_string();
        let retry_of = retry_of.cloned();
        tokio::spawn(async move { queue.enqueue(&pipeline, params, runs_on, origin, retry_of.as_ref()).await })
            .await
            .map_err(|e| TriggerError::Store(StoreError::Backend(anyhow::anyhow!("enqueue task failed: {e}"))))?
    }

    /// Reserves room within the pipeline's cap, persists the job and hands it to the source
    /// (its lane, or the cluster's claimers).
    async fn enqueue(
        &self,
        pipeline: &str,
        params: Value,
        runs_on: Option<RunsOn>,
        origin: Origin,
        retry_of: Option<&Job>,
    ) -> Result<Job, TriggerError> {
        let inner = &self.inner;
        let lane =
            inner.lanes.get(pipeline).ok_or_else(|| TriggerError::Disabled(format!("no lane for {pipeline}")))?;
        let source = inner.source();
        source.reserve(inner, pipeline, lane).await?;
        let result = self.persist_new(pipeline, params, runs_on, origin, retry_of).await;
        source.admitted(inner, pipeline, lane, result.as_ref().ok());
        result
    }

    async fn persist_new(
        &self,
        pipeline: &str,
        params: Value,
        runs_on: Option<RunsOn>,
        origin: Origin,
        retry_of: Option<&Job>,
    ) -> Result<Job, TriggerError> {
        let Origin { kind, triggered_by, marks, job_id, scheduled_for } = origin;
        let now = Utc::now();
        let mut data = match params {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        data.extend(marks);
        data.insert("triggeredBy".into(), Value::String(triggered_by));
        data.insert("triggeredAt".into(), Value::String(format_ts(&now)));
        if let Some(at) = scheduled_for {
            data.insert("scheduledFor".into(), Value::String(format_ts(&at)));
        }
        let data = Value::Object(data);
        let new_job = |id: String| {
            let mut job = Job::new(id, pipeline.to_string(), data.clone(), now);
            if let Some(old) = retry_of {
                job.retried_from = Some(old.id.clone());
                job.retry_count = old.retry_count + 1;
            }
            if let Some(on) = &runs_on {
                job.worker_version = Some(on.version.clone());
                job.component_digest = Some(on.digest.clone());
            }
            job
        };
        if let Some(id) = job_id {
            // A chosen id is tried once: taken means another process created this job already.
            let job = new_job(id);
            self.inner.store.insert(&job).await?;
            failpoints::hit(failpoints::ENQUEUED);
            self.inner.publish_of(EventKind::Created, &job).await;
            return Ok(job);
        }
        // A restarted process may meet ids of its predecessor in the same millisecond.
        for _ in 0..16 {
            let job = new_job(self.inner.ids.next(pipeline, &kind, now.timestamp_millis()));
            match self.inner.store.insert(&job).await {
                Ok(()) => {
                    failpoints::hit(failpoints::ENQUEUED);
                    self.inner.publish_of(EventKind::Created, &job).await;
                    return Ok(job);
                }
                Err(StoreError::Duplicate(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Backend(anyhow::anyhow!("could not find a free job id")).into())
    }

    /// Cancels a queued job at once, or interrupts a running one.
    pub async fn cancel(&self, id: &str) -> Result<Job, ControlError> {
        // Like a trigger, a cancel completes even if its caller goes away mid-way.
        let queue = self.clone();
        let id = id.to_string();
        tokio::spawn(async move { queue.cancel_now(&id).await })
            .await
            .map_err(|e| ControlError::Store(StoreError::Backend(anyhow::anyhow!("cancel task failed: {e}"))))?
    }

    async fn cancel_now(&self, id: &str) -> Result<Job, ControlError> {
        let inner = &self.inner;
        match inner.store.cancel(id, Utc::now()).await? {
            Some(before) => {
                if before.status == JobStatus::Running {
                    if let Some(flag) = inner.running.lock().ok().and_then(|r| r.get(id).cloned()) {
                        flag.store(true, Ordering::Relaxed);
                    }
                } else if let Some(lane) = inner.lanes.get(&before.pipeline_id)
                    && let Ok(mut l) = lane.lock()
                {
                    l.queued.retain(|j| j.id != id);
                }
                let job = inner.store.get(id).await?.ok_or_else(|| ControlError::NotFound(id.into()))?;
                // The attempt's own finish is fenced out now, so the cancel is what counts it.
                let ran = job.started_at.zip(job.completed_at).and_then(|(s, e)| (e - s).to_std().ok());
                inner.metrics.job_finished(&job.pipeline_id, JobStatus::Cancelled.as_str(), ran.unwrap_or_default());
                inner.publish_of(EventKind::Cancelled, &job).await;
                Ok(job)
            }
            None => match inner.store.get(id).await? {
                None => Err(ControlError::NotFound(id.into())),
                Some(job) => Err(ControlError::Conflict {
                    id: id.into(),
                    status: job.status.as_str(),
                    action: "only queued or running jobs can be cancelled",
                }),
            },
        }
    }

    /// Creates `<pipeline>-retry-<ms>` with the parameters of a failed or cancelled job.
    pub async fn retry(&self, id: &str) -> Result<Job, ControlError> {
        let old = self.inner.store.get(id).await?.ok_or_else(|| ControlError::NotFound(id.into()))?;
        if !matches!(old.status, JobStatus::Failed | JobStatus::Cancelled) {
            return Err(ControlError::Conflict {
                id: id.into(),
                status: old.status.as_str(),
                action: "only failed or cancelled jobs can be retried",
            });
        }
        let pipeline = self.pipeline(&old.pipeline_id)?;
        Ok(self.create_job(&pipeline, job_params(&old.data), None, Origin::new("retry", "retry"), Some(&old)).await?)
    }

    /// Joins a cluster: jobs are claimed from the shared store instead of local lanes,
    /// events travel through the store, and leases are renewed. Call before `recover`.
    pub fn enable_cluster(&self, store: Arc<dyn crate::store::ClusterStore>, settings: ClusterSettings) {
        cluster::start(&self.inner, store, settings);
    }

    /// Takes up jobs left queued or running by a previous process: back in their lanes (a
    /// retry still in its backoff after the rest of it), or, in a cluster, expired leases rescued.
    pub async fn recover(&self) -> Result<usize, StoreError> {
        self.inner.source().recover(&self.inner).await
    }

    /// Stops accepting, lets running jobs finish for up to `timeout`, then interrupts
    /// the rest (they stay `running` in the store and are re-run on the next start).
    pub async fn shutdown(&self, timeout: Duration) {
        let inner = &self.inner;
        inner.accepting.store(false, Ordering::Release);
        inner.dispatching.store(false, Ordering::Release);
        inner.tracker.close();
        if tokio::time::timeout(timeout, inner.tracker.wait()).await.is_err() {
            let flags: Vec<_> = inner.running.lock().map(|r| r.values().cloned().collect()).unwrap_or_default();
            tracing::warn!(jobs = flags.len(), "drain timed out; interrupting running jobs");
            for flag in flags {
                flag.store(true, Ordering::Relaxed);
            }
            let _ = tokio::time::timeout(Duration::from_secs(10), inner.tracker.wait()).await;
        }
        if let Err(e) = inner.store.flush().await {
            tracing::error!(error = %e, "flushing the store at shutdown failed");
        }
        cluster::stop(inner);
    }

    /// Publishes an event that is not a job's own (a schedule's), the way job events go: on
    /// the local bus, or in a cluster to every node. Call it after the change it reports is stored.
    pub async fn publish_event(&self, event: JobEvent) {
        self.inner.publish(event).await;
    }

    /// Jobs currently executing.
    pub fn running_count(&self) -> usize {
        self.inner.running.lock().map(|r| r.len()).unwrap_or(0)
    }
}
