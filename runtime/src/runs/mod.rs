//! Fan-out runs over inventories: one trigger over an inventory creates one job per target
//! through the normal queue (so `max_concurrent`, the grant checks and retries all hold),
//! grouped under a run id with an aggregate state and progress; cancelling a run cancels
//! its queued and running jobs; a target the trigger refuses (outside the roots, queue full)
//! is recorded as refused and never run, and does not stop the others.
//!
//! `discover`: the inventory walk. `inventory`: configured and API-created inventories.
//! `model`: the aggregate. Storage is `store::runs::RunStore`.
//!
//! **Invariant:** a run's jobs are created only by `Runs::fan_out`, each with `runId` and
//! `triggeredBy` in its data; a start with a dedupe key already used returns that run.

pub mod discover;
pub mod inventory;
mod launcher;
pub mod model;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use serde_json::{Map, Value};

use self::discover::Discovered;
use self::inventory::{Inventory, Source};
use self::model::RunSummary;
use crate::config::{Config, InventoryConfig};
use crate::domain::JobStatus;
use crate::queue::{ControlError, Origin, Queue, TriggerError};
use crate::registry::RegistryError;
use crate::sandbox::grants::PATH_KEYWORD;
use crate::store::StoreError;
use crate::store::runs::{InventoryRecord, RunRecord, RunStore, TargetHistory, TargetRecord};

/// Why a run or inventory operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The pipeline refused (unknown, cooling down, disabled).
    #[error(transparent)]
    Trigger(#[from] TriggerError),
    /// No inventory by that name.
    #[error("Unknown inventory: {0}")]
    UnknownInventory(String),
    /// No run by that id.
    #[error("Run not found: {0}")]
    NotFound(String),
    /// A request field is wrong.
    #[error("Invalid '{field}': {message}")]
    Invalid {
        /// The field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The inventory exists already, or is configured (read-only).
    #[error("{0}")]
    Conflict(String),
    /// The inventory's targets could not be resolved (a missing discovery base).
    #[error("Inventory {name}: {message}")]
    Targets {
        /// Inventory name.
        name: String,
        /// Why.
        message: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<RegistryError> for RunError {
    fn from(e: RegistryError) -> Self {
        RunError::Trigger(e.into())
    }
}

/// A request to start a run.
#[derive(Debug, Clone)]
pub struct StartRun {
    /// Pipeline id.
    pub pipeline: String,
    /// Inventory name.
    pub inventory: String,
    /// Parameters shared by every job (an object).
    pub parameters: Value,
    /// Which parameter gets each target's path; None: the pipeline's only top-level
    /// `x-alephauto-path` parameter.
    pub path_parameter: Option<String>,
    /// Who starts it: `api`, `cli`, `schedule:<id>`.
    pub triggered_by: String,
    /// When set, a second start with the same key returns the first run.
    pub dedupe_key: Option<String>,
}

/// A run and its targets.
#[derive(Debug, Clone)]
pub struct RunDetail {
    /// The run and its aggregate.
    pub summary: RunSummary,
    /// Its targets in order.
    pub targets: Vec<TargetRecord>,
}

/// An inventory with its current targets and each target's latest run entry.
#[derive(Debug, Clone)]
pub struct InventoryDetail {
    /// The inventory.
    pub inventory: Inventory,
    /// Targets as resolved now (discovery walks again), each with its history.
    pub targets: Vec<(String, Option<TargetHistory>)>,
    /// The walk hit a budget.
    pub truncated: bool,
    /// Links met and not followed.
    pub links_skipped: usize,
    /// Why the targets could not be resolved (a missing base), if so.
    pub error: Option<String>,
}

struct Inner {
    queue: Queue,
    store: Arc<dyn RunStore>,
    configured: BTreeMap<String, InventoryConfig>,
    /// Every pipeline's granted roots, canonical: where API-created inventories may point.
    roots: Vec<PathBuf>,
    // std Mutex: touched briefly to register or flag a fan-out, never across an await.
    starting: Mutex<HashMap<String, Arc<AtomicBool>>>,
}

/// The runs service; cheap to clone.
#[derive(Clone)]
pub struct Runs {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Runs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runs").finish_non_exhaustive()
    }
}

impl Runs {
    /// Runs over `queue`, stored in `store`, with the inventories and roots of `config`.
    pub fn new(queue: Queue, store: Arc<dyn RunStore>, config: &Config) -> Self {
        let mut roots: Vec<PathBuf> = config
            .pipelines
            .values()
            .flat_map(|p| p.roots.iter())
            .filter_map(|r| std::fs::canonicalize(r).ok())
            .collect();
        roots.sort();
        roots.dedup();
        Self {
            inner: Arc::new(Inner {
                queue,
                store,
                configured: config.inventories.clone(),
                roots,
                starting: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Starts a run: one job per target of the inventory. Returns the run and whether it is
    /// new (false: the dedupe key named an existing run, returned as it stands).
    pub async fn start(&self, req: StartRun) -> Result<(RunDetail, bool), RunError> {
        let inner = &self.inner;
        inner.queue.pipeline(&req.pipeline)?;
        let params = match req.parameters {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            other => {
                return Err(RunError::Invalid {
                    field: "parameters".into(),
                    message: format!("must be a JSON object, got {}", crate::registry::worker::json_type(&other)),
                });
            }
        };
        let inventory = self.inventory(&req.inventory).await?;
        let path_parameter = self.path_parameter(&req.pipeline, req.path_parameter.as_deref()).await?;
        if params.contains_key(&path_parameter) {
            return Err(RunError::Invalid {
                field: format!("parameters.{path_parameter}"),
                message: "is set per target by the run; leave it out".into(),
            });
        }
        let found = resolve(&inventory).await?;
        let now = Utc::now();
        let record = RunRecord {
            id: new_run_id(&req.pipeline, now.timestamp_millis()),
            pipeline_id: req.pipeline.clone(),
            inventory: inventory.name.clone(),
            parameters: Value::Object(params.clone()),
            path_parameter: path_parameter.clone(),
            triggered_by: req.triggered_by.clone(),
            dedupe_key: req.dedupe_key.clone(),
            created_at: now,
            started_at: None,
            cancelled_at: None,
            target_count: 0,
            truncated: found.truncated,
        };
        let (record, created) = inner.store.create_run(&record).await?;
        if !created {
            return Ok((self.detail(&record.id).await?, false));
        }
        // Like a trigger, the fan-out completes even when the caller goes away mid-way.
        let this = self.clone();
        let id = record.id.clone();
        tokio::spawn(async move { this.fan_out(record, params, found).await })
            .await
            .map_err(|e| StoreError::Backend(anyhow::anyhow!("run fan-out task failed: {e}")))??;
        Ok((self.detail(&id).await?, true))
    }

    /// Creates the run's jobs in target order, recording each job or refusal.
    async fn fan_out(&self, run: RunRecord, params: Map<String, Value>, found: Discovered) -> Result<(), RunError> {
        let inner = &self.inner;
        let flag = Arc::new(AtomicBool::new(false));
        if let Ok(mut s) = inner.starting.lock() {
            s.insert(run.id.clone(), flag.clone());
        }
        let result = self.create_jobs(&run, &params, &found, &flag).await;
        if let Ok(mut s) = inner.starting.lock() {
            s.remove(&run.id);
        }
        let count = result?;
        inner.store.mark_started(&run.id, count, found.truncated, Utc::now()).await?;
        // A cancel from another node (or one that raced the last job) is honoured here.
        if inner.store.run(&run.id).await?.is_some_and(|r| r.cancelled_at.is_some()) {
            self.cancel_active(&run.id).await?;
        }
        tracing::info!(run = %run.id, pipeline = %run.pipeline_id, targets = count, "run started");
        Ok(())
    }

    async fn create_jobs(
        &self,
        run: &RunRecord,
        params: &Map<String, Value>,
        found: &Discovered,
        cancelled: &AtomicBool,
    ) -> Result<u32, RunError> {
        let inner = &self.inner;
        let pipeline = inner.queue.pipeline(&run.pipeline_id)?;
        let mut marks = Map::new();
        marks.insert("runId".into(), Value::String(run.id.clone()));
        let mut seq = 0u32;
        for path in &found.targets {
            let text = path.to_string_lossy().into_owned();
            let (job_id, refused) = if cancelled.load(Ordering::Acquire) {
                (None, Some("the run was cancelled before this target's job was created".to_string()))
            } else if path.to_str().is_none() {
                (None, Some("the path is not valid UTF-8".to_string()))
            } else {
                let mut p = params.clone();
                p.insert(run.path_parameter.clone(), Value::String(text.clone()));
                match pipeline
                    .trigger_as(
                        Value::Object(p),
                        Origin { marks: marks.clone(), ..Origin::new("run", &run.triggered_by) },
                    )
                    .await
                {
                    Ok(job) => (Some(job.id), None),
                    Err(e) => {
                        tracing::info!(run = %run.id, target = %text, error = %e, "run target refused");
                        (None, Some(e.to_string()))
                    }
                }
            };
            let target =
                TargetRecord { seq, path: text, job_id: job_id.clone(), refused, status: None, completed_at: None };
            inner.store.add_target(&run.id, &target).await?;
            // A cancel that read the targets before this one was recorded missed its job.
            if let Some(job) = job_id.filter(|_| cancelled.load(Ordering::Acquire)) {
                cancel_quietly(&inner.queue, &job).await?;
            }
            seq += 1;
        }
        Ok(seq)
    }

    /// The parameter that receives each target: `named` when it is one of the pipeline's
    /// top-level path parameters, else the only one there is.
    async fn path_parameter(&self, pipeline: &str, named: Option<&str>) -> Result<String, RunError> {
        let worker = self.inner.queue.registry().get_worker(pipeline).await?;
        let props = worker.info.params_schema.get("properties").and_then(Value::as_object);
        let paths: Vec<&String> = props
            .map(|p| p.iter().filter(|(_, s)| s.get(PATH_KEYWORD).is_some()).map(|(k, _)| k).collect())
            .unwrap_or_default();
        let list = paths.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ");
        match named {
            Some(name) if paths.iter().any(|p| *p == name) => Ok(name.to_string()),
            Some(name) => Err(RunError::Invalid {
                field: "pathParameter".into(),
                message: format!("{name:?} is not a path parameter of {pipeline} (its path parameters: {list})"),
            }),
            None if paths.len() == 1 => Ok(paths[0].clone()),
            None => Err(RunError::Invalid {
                field: "pathParameter".into(),
                message: format!(
                    "{pipeline} has {} path parameters ({list}); name the one each target fills",
                    paths.len()
                ),
            }),
        }
    }

    /// Runs newest first, each with its aggregate, and how many there are in all.
    pub async fn list(
        &self,
        pipeline: Option<&str>,
        limit: u32,
        offset: u32,
    ) -> Result<(Vec<RunSummary>, u64), RunError> {
        let (records, total) = self.inner.store.runs(pipeline, limit, offset).await?;
        let mut out = Vec::with_capacity(records.len());
        for r in records {
            let counts = self.inner.store.counts(&r.id).await?;
            out.push(RunSummary::of(r, counts));
        }
        Ok((out, total))
    }

    /// One run with its targets.
    pub async fn detail(&self, id: &str) -> Result<RunDetail, RunError> {
        let store = &self.inner.store;
        let record = store.run(id).await?.ok_or_else(|| RunError::NotFound(id.into()))?;
        let targets = store.targets(id).await?;
        let mut counts = crate::store::runs::RunCounts::default();
        for t in &targets {
            counts.add(t.status, t.refused.is_some(), 1);
        }
        Ok(RunDetail { summary: RunSummary::of(record, counts), targets })
    }

    /// Cancels a run: no more of its jobs are created, and its queued and running ones are
    /// cancelled. Cancelling a cancelled or finished run changes nothing.
    pub async fn cancel(&self, id: &str) -> Result<RunDetail, RunError> {
        let inner = &self.inner;
        if let Some(flag) = inner.starting.lock().ok().and_then(|s| s.get(id).cloned()) {
            flag.store(true, Ordering::Release);
        }
        if !inner.store.mark_cancelled(id, Utc::now()).await? {
            return Err(RunError::NotFound(id.into()));
        }
        self.cancel_active(id).await?;
        tracing::info!(run = %id, "run cancelled");
        self.detail(id).await
    }

    async fn cancel_active(&self, id: &str) -> Result<(), RunError> {
        for t in self.inner.store.targets(id).await? {
            if let (Some(job), Some(JobStatus::Queued | JobStatus::Running)) = (&t.job_id, t.status) {
                cancel_quietly(&self.inner.queue, job).await?;
            }
        }
        Ok(())
    }

    /// Every inventory: configured ones first, then those made over the API, each by name.
    pub async fn inventories(&self) -> Result<Vec<Inventory>, RunError> {
        let mut out: Vec<Inventory> = self
            .inner
            .configured
            .iter()
            .map(|(name, spec)| Inventory {
                name: name.clone(),
                spec: spec.clone(),
                source: Source::Config,
                created_at: None,
            })
            .collect();
        for rec in self.inner.store.inventories().await? {
            if !self.inner.configured.contains_key(&rec.name) {
                out.push(stored(rec)?);
            }
        }
        Ok(out)
    }

    /// One inventory by name.
    pub async fn inventory(&self, name: &str) -> Result<Inventory, RunError> {
        if let Some(spec) = self.inner.configured.get(name) {
            return Ok(Inventory { name: name.into(), spec: spec.clone(), source: Source::Config, created_at: None });
        }
        match self.inner.store.inventory(name).await? {
            Some(rec) => stored(rec),
            None => Err(RunError::UnknownInventory(name.into())),
        }
    }

    /// One inventory with its targets as they resolve now and each one's latest run entry
    /// (last scanned, outcome, job).
    pub async fn inventory_detail(&self, name: &str) -> Result<InventoryDetail, RunError> {
        let inventory = self.inventory(name).await?;
        let (found, error) = match resolve(&inventory).await {
            Ok(found) => (found, None),
            Err(e) => (Discovered::default(), Some(e.to_string())),
        };
        let mut history: HashMap<String, TargetHistory> =
            self.inner.store.history(name).await?.into_iter().map(|h| (h.path.clone(), h)).collect();
        let targets = found
            .targets
            .iter()
            .map(|p| {
                let path = p.to_string_lossy().into_owned();
                let h = history.remove(&path);
                (path, h)
            })
            .collect();
        Ok(InventoryDetail {
            inventory,
            targets,
            truncated: found.truncated,
            links_skipped: found.links_skipped,
            error,
        })
    }

    /// Stores an inventory made over the API (checked by `inventory::check_new`).
    pub async fn create_inventory(&self, name: &str, spec: InventoryConfig) -> Result<Inventory, RunError> {
        if self.inner.configured.contains_key(name) {
            return Err(RunError::Conflict(format!("Inventory {name} is defined in the configuration")));
        }
        inventory::check_new(name, &spec, &self.inner.roots)?;
        let spec_json = serde_json::to_value(&spec).map_err(|e| StoreError::Backend(e.into()))?;
        let rec = InventoryRecord { name: name.into(), spec: spec_json, created_at: Utc::now() };
        if !self.inner.store.put_inventory(&rec).await? {
            return Err(RunError::Conflict(format!("Inventory {name} exists already")));
        }
        stored(rec)
    }

    /// Deletes an inventory made over the API (configured ones are read-only). Its runs stay.
    pub async fn delete_inventory(&self, name: &str) -> Result<(), RunError> {
        if self.inner.configured.contains_key(name) {
            return Err(RunError::Conflict(format!(
                "Inventory {name} is defined in the configuration and cannot be deleted over the API"
            )));
        }
        if self.inner.store.delete_inventory(name).await? {
            Ok(())
        } else {
            Err(RunError::UnknownInventory(name.into()))
        }
    }
}

/// Cancels `job`, ignoring that it finished meanwhile.
async fn cancel_quietly(queue: &Queue, job: &str) -> Result<(), RunError> {
    match queue.cancel(job).await {
        Ok(_) | Err(ControlError::Conflict { .. } | ControlError::NotFound(_)) => Ok(()),
        Err(ControlError::Store(e)) => Err(e.into()),
        Err(ControlError::Trigger(e)) => Err(e.into()),
    }
}

fn stored(rec: InventoryRecord) -> Result<Inventory, RunError> {
    let spec: InventoryConfig = serde_json::from_value(rec.spec)
        .map_err(|e| StoreError::Backend(anyhow::anyhow!("stored inventory {} is unreadable: {e}", rec.name)))?;
    Ok(Inventory { name: rec.name, spec, source: Source::Api, created_at: Some(rec.created_at) })
}

/// The inventory's targets, resolved on a blocking thread.
async fn resolve(inv: &Inventory) -> Result<Discovered, RunError> {
    let spec = inv.spec.clone();
    let name = inv.name.clone();
    tokio::task::spawn_blocking(move || inventory::targets(&spec))
        .await
        .map_err(|e| StoreError::Backend(anyhow::anyhow!("discovery task failed: {e}")))?
        .map_err(|e| RunError::Targets { name, message: format!("{e:#}") })
}

/// `run-<pipeline>-<ms>-<random>`: unique across the nodes of a cluster without coordination.
fn new_run_id(pipeline: &str, ms: i64) -> String {
    let mut bytes = [0u8; 4];
    if getrandom::fill(&mut bytes).is_err() {
        // No entropy source: the nanoseconds still tell two starts of one millisecond apart.
        bytes = Utc::now().timestamp_subsec_nanos().to_be_bytes();
    }
    format!("run-{pipeline}-{ms}-{}", hex::encode(bytes))
}
