//! What the API reads through the queue: pipelines (configuration, worker state, loading),
//! jobs, counts and logs. The API holds a `Queue` and nothing else: it never reaches the
//! store or the registry behind it.

use std::collections::HashMap;
use std::time::Duration;

use super::Queue;
use crate::config::PipelineConfig;
use crate::domain::{Job, LogEntry};
use crate::registry::EntryStatus;
use crate::store::{JobFilter, JobPage, JsonPage, PipelineCounts, StoreResult};

impl Queue<super::Workers> {
    /// Every configured pipeline id, sorted.
    pub fn pipeline_ids(&self) -> Vec<String> {
        self.inner.executor.registry().pipeline_ids()
    }

    /// Whether `id` is a configured pipeline.
    pub fn has_pipeline(&self, id: &str) -> bool {
        self.inner.executor.registry().is_supported(id)
    }

    /// A pipeline's configuration.
    pub fn pipeline_config(&self, id: &str) -> Option<&PipelineConfig> {
        self.inner.executor.registry().pipeline_config(id)
    }

    /// Where a pipeline's worker stands (loaded, initialising, failed, cooling down).
    pub fn worker_status(&self, id: &str) -> Option<EntryStatus> {
        self.inner.executor.registry().status(id)
    }

    /// Starts loading the workers of `ids` not loaded yet; waits for them at most `grace`.
    pub async fn start_loading(&self, ids: &[String], grace: Duration) {
        self.inner.executor.registry().start_loading(ids, grace).await
    }

    /// One job.
    pub async fn job(&self, id: &str) -> StoreResult<Option<Job>> {
        self.inner.store.get(id).await
    }

    /// A page of jobs, newest first.
    pub async fn jobs(&self, filter: &JobFilter) -> StoreResult<JobPage> {
        self.inner.store.list(filter).await
    }

    /// A page of jobs as the API's JSON array.
    pub async fn jobs_json(&self, filter: &JobFilter) -> StoreResult<JsonPage> {
        self.inner.store.list_json(filter).await
    }

    /// Per-pipeline job counts from the store.
    pub async fn job_counts(&self) -> StoreResult<HashMap<String, PipelineCounts>> {
        self.inner.store.counts().await
    }

    /// A job's log, in order.
    pub async fn logs(&self, id: &str) -> StoreResult<Vec<LogEntry>> {
        self.inner.store.logs(id).await
    }
}
