//! A loaded worker: the pre-linked component, what it said about itself, its
//! parameter validator, and the control instance that received `init`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};

use super::params::ParamSchema;
use crate::config::PipelineConfig;
use crate::sandbox::grants::{self, Grant, PathPlan, shorten};
use crate::sandbox::{ControlInstance, WorkerPre};

/// What a worker's `describe` returned, in API form.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerInfo {
    /// The worker's own id.
    pub id: String,
    /// Worker version.
    pub version: String,
    /// Display name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// JSON Schema of its parameters.
    pub params_schema: Value,
    /// Git workflow it asks for.
    pub git_workflow: Option<GitWorkflowInfo>,
}

/// The git workflow a worker asks for.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GitWorkflowInfo {
    /// Branch prefix.
    pub branch_prefix: String,
    /// Commit and PR title.
    pub commit_title: String,
}

/// A parameter problem, named for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid parameter '{field}': {message}")]
pub struct ParamError {
    /// The parameter (JSON pointer without the leading slash for nested ones).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl ParamError {
    /// The error with its field and message cut to a size fit for a response (a rejected
    /// value is never echoed whole).
    fn bounded(self) -> Self {
        Self {
            field: shorten(&self.field, MAX_ERROR_FIELD_BYTES),
            message: shorten(&self.message, MAX_ERROR_MESSAGE_BYTES),
        }
    }
}

/// Longest parameter name quoted in an error.
const MAX_ERROR_FIELD_BYTES: usize = 120;
/// Longest error message.
const MAX_ERROR_MESSAGE_BYTES: usize = 400;
/// Wall-clock budget of one validation, waiting for a slot included.
pub const VALIDATION_BUDGET: Duration = Duration::from_secs(2);
/// Validations running at once (each on a blocking thread, never on the async runtime's).
/// The input caps in `params` bound each one's work, so a validation that outlives its
/// budget still ends soon; the slots bound how many such can run together.
static VALIDATION_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// Parameters that passed validation, and the folders they grant.
#[derive(Debug, Clone)]
pub struct ValidParams {
    /// Parameters with defaults applied and paths canonical.
    pub params: Value,
    /// Folders to preopen.
    pub grants: Vec<Grant>,
}

/// A pipeline's loaded worker.
pub struct Worker {
    /// Pipeline id.
    pub pipeline_id: String,
    /// SHA-256 (hex) of its component: the version's identity.
    pub digest: String,
    /// Its configuration.
    pub config: PipelineConfig,
    /// What the worker says about itself.
    pub info: WorkerInfo,
    /// Compiled and linked component.
    pub pre: WorkerPre,
    /// Canonical granted roots.
    pub roots: Vec<PathBuf>,
    /// Canonical folders and files of the runtime's own (data, cache, database) no grant may reach.
    pub protected: Vec<PathBuf>,
    /// Time `get_worker` spent creating it.
    pub init_time: Duration,
    /// Whether the component came from the compiled cache.
    pub from_cache: bool,
    /// Whether jobs get an output folder (`"x-alephauto-output": false` at the schema root opts out).
    pub wants_output: bool,
    /// Whether the parameter schema declares any path (`x-alephauto-path`) anywhere.
    pub takes_paths: bool,
    pub(crate) schema: ParamSchema,
    /// Where the schema's path parameters are, planned once at load.
    pub(crate) paths: PathPlan,
    pub(crate) control: tokio::sync::Mutex<Option<ControlInstance>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("pipeline_id", &self.pipeline_id).field("info", &self.info).finish()
    }
}

impl Worker {
    /// Validates trigger parameters off the async threads, within [`VALIDATION_BUDGET`].
    pub async fn validate(self: &Arc<Self>, params: Value) -> Result<ValidParams, ParamError> {
        let worker = self.clone();
        let run = async move {
            let permit = VALIDATION_SLOTS.acquire().await.map_err(|e| ParamError {
                field: "parameters".into(),
                message: format!("validation is unavailable: {e}"),
            })?;
            tokio::task::spawn_blocking(move || {
                let _slot = permit;
                worker.validate_now(params)
            })
            .await
            .map_err(|e| ParamError { field: "parameters".into(), message: format!("validation failed: {e}") })?
        };
        match tokio::time::timeout(VALIDATION_BUDGET, run).await {
            Ok(result) => result.map_err(ParamError::bounded),
            Err(_) => {
                tracing::warn!(pipeline = %self.pipeline_id, "parameter validation over its time budget");
                Err(ParamError {
                    field: "parameters".into(),
                    message: format!(
                        "could not be validated within {} s (host budget); try smaller parameters",
                        VALIDATION_BUDGET.as_secs()
                    ),
                })
            }
        }
    }

    /// Validates on the calling thread: defaults, the declared schema, then path grants.
    fn validate_now(&self, params: Value) -> Result<ValidParams, ParamError> {
        let mut params = match params {
            Value::Null => Value::Object(Map::new()),
            Value::Object(map) => Value::Object(map),
            other => {
                return Err(ParamError {
                    field: "parameters".into(),
                    message: format!("must be a JSON object, got {}", json_type(&other)),
                });
            }
        };
        apply_defaults(&self.info.params_schema, &mut params);
        self.schema.check(&params)?;
        let grants = grants::resolve(&self.paths, &mut params, &self.roots, &self.protected, self.config.allow_write)
            .map_err(|e| ParamError { field: e.field, message: e.message })?;
        Ok(ValidParams { params, grants })
    }
}

/// Names the JSON type of a value, for messages.
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Fills absent top-level properties that declare a `default`.
fn apply_defaults(schema: &Value, params: &mut Value) {
    let (Some(props), Some(obj)) = (schema.get("properties").and_then(Value::as_object), params.as_object_mut()) else {
        return;
    };
    for (name, prop) in props {
        if let Some(default) = prop.get("default")
            && !obj.contains_key(name)
            && !default.is_null()
        {
            obj.insert(name.clone(), default.clone());
        }
    }
}

/// Refuses a self-description over the host's budgets (before anything walks or stores it).
pub(super) fn check_described(d: &crate::sandbox::Described) -> anyhow::Result<()> {
    let fields = [
        ("id", &d.id, super::MAX_LABEL_BYTES),
        ("name", &d.name, super::MAX_LABEL_BYTES),
        ("version", &d.version, super::MAX_LABEL_BYTES),
        ("description", &d.description, super::MAX_DESCRIPTION_BYTES),
        ("parameter schema", &d.params_schema, super::MAX_SCHEMA_BYTES),
    ];
    for (what, value, max) in fields {
        if value.len() > max {
            return Err(anyhow::anyhow!(
                "the worker's describe returned a {what} of {} bytes; the host limit is {max}",
                value.len()
            ));
        }
    }
    if let Some(g) = &d.git_workflow
        && (g.branch_prefix.len() > super::MAX_LABEL_BYTES || g.commit_title.len() > super::MAX_LABEL_BYTES)
    {
        return Err(anyhow::anyhow!(
            "the worker's describe returned a git workflow label over {} bytes (host limit)",
            super::MAX_LABEL_BYTES
        ));
    }
    Ok(())
}
