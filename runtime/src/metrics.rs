//! Prometheus metrics: job outcomes and durations, instantiation time, and gauges (jobs by
//! status, queue depth, running, worker init time, circuit-breaker state) refreshed at scrape
//! time. Served as OpenMetrics 1.0 when the scraper asks for it, else as the Prometheus text
//! format 0.0.4 (`Format::negotiate`).

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

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
        let duration = Family::<PipelineLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 4.0, 10))
        });
        let instantiate = Family::<PipelineLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_005, 4.0, 10))
        });
        let jobs = Family::<StatusLabel, Gauge>::default();
        let queue_depth = Family::<PipelineLabel, Gauge>::default();
        let running = Family::<PipelineLabel, Gauge>::default();
        let breaker_open = Family::<PipelineLabel, Gauge>::default();
        let worker_init = Family::<PipelineLabel, Gauge<f64, AtomicU64>>::default();
        // Counters are registered without `_total` and seconds with their unit: the encoder adds
        // both suffixes (and the OpenMetrics `# UNIT` line).
        registry.register("jobs_finished", "Jobs that reached a terminal state in this process", finished.clone());
        registry.register_with_unit(
            "job_duration",
            "Wall time of finished job attempts (0 for a job cancelled before it started)",
            Unit::Seconds,
            duration.clone(),
        );
        registry.register_with_unit(
            "instantiate",
            "Time to instantiate a job's component",
            Unit::Seconds,
            instantiate.clone(),
        );
        registry.register("jobs", "Jobs in the store by pipeline and status", jobs.clone());
        registry.register("queue_depth", "Jobs waiting for a slot", queue_depth.clone());
        registry.register("jobs_running", "Jobs running now", running.clone());
        registry.register("circuit_breaker_open", "1 while worker initialisation is refused", breaker_open.clone());
        registry.register_with_unit(
            "worker_init",
            "Time the loaded worker took to initialise",
            Unit::Seconds,
            worker_init.clone(),
        );
        Self { registry, finished, duration, instantiate, jobs, queue_depth, running, breaker_open, worker_init }
    }
}

impl Metrics {
    /// Records a job that reached a terminal status (completed, failed or cancelled).
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

    /// The current values in `format`.
    pub fn encode_as(&self, format: Format) -> Result<String, std::fmt::Error> {
        let open = self.encode()?;
        Ok(match format {
            Format::OpenMetrics => open,
            Format::Text004 => openmetrics_to_text004(&open),
        })
    }
}

/// The exposition formats `/metrics` serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0.0 (`application/openmetrics-text`).
    OpenMetrics,
    /// The Prometheus text format 0.0.4 (`text/plain`), what scrapers take by default.
    Text004,
}

impl Format {
    /// The format an `Accept` header prefers: OpenMetrics only when it is listed with a
    /// weight at least that of `text/plain` (and of `*/*`); otherwise the plain text format.
    /// Hand-written: a dozen lines of q-value parsing are cheaper than a header crate.
    pub fn negotiate(accept: Option<&str>) -> Self {
        let Some(accept) = accept else { return Self::Text004 };
        let (mut open, mut plain) = (0.0_f32, 0.0_f32);
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .and_then(|(_, v)| v.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            match media.as_str() {
                "application/openmetrics-text" => open = open.max(q),
                "text/plain" | "text/*" | "*/*" => plain = plain.max(q),
                _ => {}
            }
        }
        if open > 0.0 && open >= plain { Self::OpenMetrics } else { Self::Text004 }
    }

    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Self::Text004 => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// Rewrites prometheus-client's OpenMetrics output as text format 0.0.4, which that crate
/// cannot write: a counter's `# HELP`/`# TYPE` name the `_total` samples, `unknown` is
/// `untyped`, and `# UNIT` / `# EOF` go. Samples are the same in both formats (we emit no
/// exemplars and no `_created` series).
fn openmetrics_to_text004(open: &str) -> String {
    let mut out = String::with_capacity(open.len());
    // prometheus-client writes HELP, then UNIT, then TYPE: HELP waits until the type is known.
    let mut help: Option<(&str, &str)> = None;
    for line in open.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            help = Some((name, text));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            let (name, kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "unknown" => (name.to_string(), "untyped"),
                other => (name.to_string(), other),
            };
            if let Some((_, text)) = help.take() {
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
        } else if !line.starts_with("# UNIT ") && line != "# EOF" {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_header_picks_the_format() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,\
                          text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(Some("application/openmetrics-text")), Format::OpenMetrics);
        assert_eq!(Format::negotiate(Some("text/plain;version=0.0.4")), Format::Text004);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Text004);
        assert_eq!(Format::negotiate(Some("text/plain, application/openmetrics-text;q=0.5")), Format::Text004);
        assert_eq!(Format::negotiate(Some("application/openmetrics-text;q=0")), Format::Text004);
        assert_eq!(Format::negotiate(None), Format::Text004);
    }

    #[test]
    fn text_format_types_the_samples_it_has() {
        let m = Metrics::default();
        m.job_finished("p", "cancelled", Duration::from_millis(5));
        let text = m.encode_as(Format::Text004).unwrap();
        assert!(text.contains("# TYPE alephauto_jobs_finished_total counter\n"), "{text}");
        assert!(text.contains("# HELP alephauto_jobs_finished_total "), "{text}");
        assert!(text.contains("alephauto_jobs_finished_total{pipeline=\"p\",status=\"cancelled\"} 1\n"), "{text}");
        assert!(text.contains("# TYPE alephauto_job_duration_seconds histogram\n"), "{text}");
        assert!(!text.contains("# EOF") && !text.contains("# UNIT"), "{text}");
        let open = m.encode_as(Format::OpenMetrics).unwrap();
        assert!(open.contains("# TYPE alephauto_jobs_finished counter\n") && open.ends_with("# EOF\n"), "{open}");
        assert!(open.contains("# UNIT alephauto_job_duration_seconds seconds\n"), "{open}");
    }
}
