//! Prometheus metrics (OpenMetrics text): job outcomes and durations, instantiation
//! time, and gauges (jobs by status, queue depth, running, worker init time,
//! circuit-breaker state) refreshed at scrape time.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A `pipeline` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PipelineLabel {
    /// Pipeline id.
    pub pipeline: String,
}

/// `pipeline` and `status` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    /// Pipeline id.
    pub pipeline: String,
    /// Job status.
    pub status: String,
}

fn pipeline(p: &str) -> PipelineLabel {
    PipelineLabel { pipeline: p.to_string() }
}

/// Every metric the runtime exports.
pub struct Metrics {
    registry: Registry,
    finished: Family<StatusLabel, Counter>,
    duration: Family<PipelineLabel, Histogram>,
    instantiate: Family<PipelineLabel, Histogram>,
    /// Jobs in the store by pipeline and status.
    pub jobs: Family<StatusLabel, Gauge>,
    /// Jobs waiting in each lane.
    pub queue_depth: Family<PipelineLabel, Gauge>,
    /// Jobs running in each lane.
    pub running: Family<PipelineLabel, Gauge>,
    /// 1 while a pipeline's circuit breaker refuses initialisation.
    pub breaker_open: Family<PipelineLabel, Gauge>,
    /// Seconds the loaded worker took to initialise.
    pub worker_init: Family<PipelineLabel, Gauge<f64, AtomicU64>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("alephauto");
        let finished = Family::<StatusLabel, Counter>::default();
        let duration =
            Family::<PipelineLabel, Histogram>::new_with_constructor(|| Histogram::new(exponential_buckets(0.001, 4.0, 10)));
        let instantiate = Family::<PipelineLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_005, 4.0, 10))
        });
        let jobs = Family::<StatusLabel, Gauge>::default();
        let queue_depth = Family::<PipelineLabel, Gauge>::default();
        let running = Family::<PipelineLabel, Gauge>::default();
        let breaker_open = Family::<PipelineLabel, Gauge>::default();
        let worker_init = Family::<PipelineLabel, Gauge<f64, AtomicU64>>::default();
        registry.register("jobs_finished", "Jobs that reached a terminal state in this process", finished.clone());
        registry.register("job_duration_seconds", "Wall time of finished job attempts", duration.clone());
        registry.register("instantiate_seconds", "Time to instantiate a job's component", instantiate.clone());
        registry.register("jobs", "Jobs in the store by pipeline and status", jobs.clone());
        registry.register("queue_depth", "Jobs waiting for a slot", queue_depth.clone());
        registry.register("jobs_running", "Jobs running now", running.clone());
        registry.register("circuit_breaker_open", "1 while worker initialisation is refused", breaker_open.clone());
        registry.register("worker_init_seconds", "Time the loaded worker took to initialise", worker_init.clone());
        Self { registry, finished, duration, instantiate, jobs, queue_depth, running, breaker_open, worker_init }
    }
}

impl Metrics {
    /// Records a finished attempt.
    pub fn job_finished(&self, pipeline_id: &str, status: &str, took: Duration) {
        self.finished.get_or_create(&StatusLabel { pipeline: pipeline_id.into(), status: status.into() }).inc();
        self.duration.get_or_create(&pipeline(pipeline_id)).observe(took.as_secs_f64());
    }

    /// Records an instantiation.
    pub fn instantiated(&self, pipeline_id: &str, took: Duration) {
        self.instantiate.get_or_create(&pipeline(pipeline_id)).observe(took.as_secs_f64());
    }

    /// Sets a per-pipeline gauge.
    pub fn set(family: &Family<PipelineLabel, Gauge>, pipeline_id: &str, value: i64) {
        family.get_or_create(&pipeline(pipeline_id)).set(value);
    }

    /// The current values in OpenMetrics text.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
