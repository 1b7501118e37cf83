//! The job queue: a FIFO lane per pipeline with at most `max_concurrent` jobs
//! running, every transition persisted before its event is published, retryable
//! failures retried with backoff, and crash recovery on start.
//!
//! **Invariant:** the store is the source of truth; in-memory lanes only order work.
//! A job leaves a lane only through `execute`, which fences every write by attempt.

mod cluster;
mod execute;
pub mod ids;
mod outputs;
mod reads;
pub mod retry;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use serde_json::{Map, Value};
use tokio_util::task::TaskTracker;

use self::ids::IdGenerator;
use crate::domain::{Job, JobFailure, JobStatus, format_ts, job_params};
use crate::events::{EventBus, EventKind, JobEvent};
use crate::registry::worker::ParamError;
use crate::registry::{Registry, RegistryError};
use crate::store::{JobStore, StoreError};

pub use cluster::ClusterSettings;

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

#[derive(Debug)]
struct Lane {
    /// Boxed: a growing backlog doubles the deque under the lane lock, and moving a few hundred
    /// bytes per job there stalled every trigger (max latency 55-153 ms vs 13-17 ms boxed).
    queued: VecDeque<Box<Job>>,
    /// Triggers between the cap check and the push.
    reserved: usize,
    running: usize,
    max_concurrent: usize,
    max_queued: usize,
}

pub(crate) struct Inner {
    store: Arc<dyn JobStore>,
    registry: Arc<Registry>,
    events: EventBus,
    settings: QueueSettings,
    // std Mutex: lanes and the running map are touched briefly, never across awaits.
    lanes: HashMap<String, Mutex<Lane>>,
    running: Mutex<HashMap<String, Arc<AtomicBool>>>,
    ids: IdGenerator,
    accepting: AtomicBool,
    dispatching: AtomicBool,
    tracker: TaskTracker,
    git: crate::gitflow::GitWorkflow,
    metrics: Arc<crate::metrics::Metrics>,
    cluster: std::sync::OnceLock<cluster::Cluster>,
    native: std::sync::RwLock<HashMap<String, NativeHandler>>,
    /// Removes empty output folders off the hot path.
    janitor: std::sync::mpsc::Sender<PathBuf>,
}

/// A handler that runs a pipeline's jobs natively in the host instead of in its
/// component: the baseline that shows what the sandbox costs (benchmarks, tests).
/// Triggers are still validated by the pipeline's worker.
pub type NativeHandler = Arc<dyn Fn(&Job) -> Result<Value, JobFailure> + Send + Sync>;

impl Inner {
    /// Publishes `kind` for `job`. The event (a JSON payload with the job's data or result)
    /// is built only when it will reach someone: a subscriber here, or other nodes.
    async fn publish_of(&self, kind: EventKind, job: &Job) {
        if self.cluster.get().is_none() && !self.events.has_subscribers() {
            return;
        }
        self.publish(JobEvent::of(kind, job)).await;
    }

    /// Publishes an event: on the local bus, or (in a cluster) to every node through the store.
    async fn publish(&self, event: JobEvent) {
        match self.cluster.get() {
            Some(c) => {
                if let Err(e) = c.store.broadcast(&event).await {
                    tracing::warn!(error = %e, "broadcasting an event failed; publishing locally");
                    self.events.publish(event);
                }
            }
            None => self.events.publish(event),
        }
    }
}

/// A configured pipeline of the queue, found by [`Queue::pipeline`]: a trigger through it
/// needs no second lookup.
#[derive(Debug, Clone, Copy)]
pub struct Pipeline<'q> {
    queue: &'q Queue,
    entry: crate::registry::Pipeline<'q>,
}

impl Pipeline<'_> {
    /// The pipeline id.
    pub fn id(&self) -> &str {
        self.entry.id()
    }

    /// Validates, persists and queues a job with `params` (keys the server sets are dropped
    /// from an object); returns it as stored.
    pub async fn trigger(&self, params: Value) -> Result<Job, TriggerError> {
        let params = if params.is_object() { job_params(&params) } else { params };
        self.queue.create_job(self.entry, params, "manual", "api", None).await
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

/// The job queue; cheap to clone.
#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").finish_non_exhaustive()
    }
}

impl Queue {
    /// A queue over `store` that runs jobs through `registry`'s workers.
    pub fn new(
        store: Arc<dyn JobStore>,
        registry: Arc<Registry>,
        events: EventBus,
        mut settings: QueueSettings,
        git: crate::gitflow::GitWorkflow,
    ) -> Self {
        // Resolved once here, so each job's folder needs one mkdir and no path walk.
        if let Err(e) = std::fs::create_dir_all(&settings.outputs_dir) {
            tracing::warn!(dir = %settings.outputs_dir.display(), error = %e, "cannot create the outputs folder");
        }
        if let Ok(canonical) = std::fs::canonicalize(&settings.outputs_dir) {
            settings.outputs_dir = canonical;
        }
        let (janitor, folders) = std::sync::mpsc::channel::<PathBuf>();
        let spawned = std::thread::Builder::new().name("output-janitor".into()).spawn(move || {
            for dir in folders {
                outputs::tidy(&dir);
            }
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the output-folder janitor; empty folders stay");
        }
        let lanes = registry
            .pipeline_ids()
            .into_iter()
            .filter_map(|id| {
                let cfg = registry.pipeline_config(&id)?;
                let lane = Lane {
                    queued: VecDeque::new(),
                    reserved: 0,
                    running: 0,
                    max_concurrent: cfg.max_concurrent,
                    max_queued: cfg.max_queued,
                };
                Some((id, Mutex::new(lane)))
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                store,
                registry,
                events,
                settings,
                lanes,
                running: Mutex::new(HashMap::new()),
                ids: IdGenerator::default(),
                accepting: AtomicBool::new(true),
                dispatching: AtomicBool::new(true),
                tracker: TaskTracker::new(),
                git,
                metrics: Arc::default(),
                cluster: std::sync::OnceLock::new(),
                native: std::sync::RwLock::default(),
                janitor,
            }),
        }
    }

    /// The registry the queue runs jobs with (for benchmarks and tests; the API uses the
    /// queue's own methods).
    pub fn registry(&self) -> &Arc<Registry> {
        &self.inner.registry
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
    pub fn pipeline(&self, id: &str) -> Result<Pipeline<'_>, TriggerError> {
        Ok(Pipeline { queue: self, entry: self.inner.registry.pipeline(id)? })
    }

    /// Validates, persists and queues a job; returns it as stored.
    pub async fn trigger(&self, pipeline: &str, params: Value) -> Result<Job, TriggerError> {
        self.pipeline(pipeline)?.trigger(params).await
    }

    /// `params` are the job's parameters, without the keys the server sets.
    async fn create_job(
        &self,
        entry: crate::registry::Pipeline<'_>,
        params: Value,
        kind: &str,
        triggered_by: &str,
        retry_of: Option<&Job>,
    ) -> Result<Job, TriggerError> {
        let inner = &self.inner;
        let pipeline = entry.id();
        if !inner.accepting.load(Ordering::Acquire) {
            return Err(TriggerError::ShuttingDown);
        }
        if !inner.settings.execution_enabled {
            return Err(TriggerError::Disabled("Job execution is disabled by configuration".into()));
        }
        if !entry.config().enabled {
            return Err(TriggerError::Disabled(format!("Pipeline {pipeline} is disabled by configuration")));
        }
        let worker = entry.worker().await?;
        let valid = worker.validate(params).await?;
        // Persisting and queueing must finish even when the caller goes away (an HTTP client
        // that disconnects drops its handler): otherwise a job could be stored but never queued.
        let queue = self.clone();
        let (pipeline, kind, triggered_by) = (pipeline.to_string(), kind.to_string(), triggered_by.to_string());
        let retry_of = retry_of.cloned();
        tokio::spawn(
            async move { queue.enqueue(&pipeline, valid.params, &kind, &triggered_by, retry_of.as_ref()).await },
        )
        .await
        .map_err(|e| TriggerError::Store(StoreError::Backend(anyhow::anyhow!("enqueue task failed: {e}"))))?
    }

    /// Checks the cap, persists the job and puts it in its lane (or wakes the cluster's claimers).
    async fn enqueue(
        &self,
        pipeline: &str,
        params: Value,
        kind: &str,
        triggered_by: &str,
        retry_of: Option<&Job>,
    ) -> Result<Job, TriggerError> {
        let inner = &self.inner;
        let lane =
            inner.lanes.get(pipeline).ok_or_else(|| TriggerError::Disabled(format!("no lane for {pipeline}")))?;
        if let Some(c) = inner.cluster.get() {
            // The table is the queue: count there, insert, and the insert's NOTIFY wakes a claimer.
            let cap = lane.lock().map(|l| l.max_queued).unwrap_or(usize::MAX);
            if c.store.queued_count(pipeline).await? >= cap as u64 {
                return Err(TriggerError::QueueFull { pipeline: pipeline.into(), cap });
            }
            let job = self.persist_new(pipeline, params, kind, triggered_by, retry_of).await?;
            c.wake.notify_one();
            return Ok(job);
        }
        {
            let mut l = lane.lock().map_err(|_| TriggerError::Disabled("lane lock poisoned".into()))?;
            if l.queued.len() + l.reserved >= l.max_queued {
                return Err(TriggerError::QueueFull { pipeline: pipeline.into(), cap: l.max_queued });
            }
            l.reserved += 1;
        }
        let result = self.persist_new(pipeline, params, kind, triggered_by, retry_of).await;
        let mut l = lane.lock().map_err(|_| TriggerError::Disabled("lane lock poisoned".into()))?;
        l.reserved -= 1;
        let job = result?;
        l.queued.push_back(Box::new(job.clone()));
        drop(l);
        execute::pump(&self.inner, pipeline);
        Ok(job)
    }

    async fn persist_new(
        &self,
        pipeline: &str,
        params: Value,
        kind: &str,
        triggered_by: &str,
        retry_of: Option<&Job>,
    ) -> Result<Job, TriggerError> {
        let now = Utc::now();
        let mut data = match params {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        data.insert("triggeredBy".into(), Value::String(triggered_by.into()));
        data.insert("triggeredAt".into(), Value::String(format_ts(&now)));
        let data = Value::Object(data);
        // A restarted process may meet ids of its predecessor in the same millisecond.
        for _ in 0..16 {
            let id = self.inner.ids.next(pipeline, kind, now.timestamp_millis());
            let mut job = Job::new(id, pipeline.to_string(), data.clone(), now);
            if let Some(old) = retry_of {
                job.retried_from = Some(old.id.clone());
                job.retry_count = old.retry_count + 1;
            }
            match self.inner.store.insert(&job).await {
                Ok(()) => {
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
        Ok(self.create_job(pipeline.entry, job_params(&old.data), "retry", "retry", Some(&old)).await?)
    }

    /// Runs `pipeline`'s jobs with `handler` in the host instead of its component.
    pub fn set_native_handler(&self, pipeline: &str, handler: NativeHandler) {
        if let Ok(mut native) = self.inner.native.write() {
            native.insert(pipeline.to_string(), handler);
        }
    }

    /// Joins a cluster: jobs are claimed from the shared store instead of local lanes,
    /// events travel through the store, and leases are renewed. Call before `recover`.
    pub fn enable_cluster(&self, store: Arc<dyn crate::store::ClusterStore>, settings: ClusterSettings) {
        cluster::start(&self.inner, store, settings);
    }

    /// Puts jobs left queued or running by a previous process back in their lanes.
    pub async fn recover(&self) -> Result<usize, StoreError> {
        let jobs = self.inner.store.recover().await?;
        let count = jobs.len();
        let mut pipelines = Vec::new();
        for job in jobs {
            match self.inner.lanes.get(&job.pipeline_id) {
                Some(lane) => {
                    if let Ok(mut l) = lane.lock() {
                        if !pipelines.contains(&job.pipeline_id) {
                            pipelines.push(job.pipeline_id.clone());
                        }
                        l.queued.push_back(Box::new(job));
                    }
                }
                None => {
                    tracing::warn!(job = %job.id, pipeline = %job.pipeline_id, "recovered job's pipeline is no longer configured; left queued")
                }
            }
        }
        for p in pipelines {
            execute::pump(&self.inner, &p);
        }
        Ok(count)
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
    }

    /// Jobs currently executing.
    pub fn running_count(&self) -> usize {
        self.inner.running.lock().map(|r| r.len()).unwrap_or(0)
    }
}
