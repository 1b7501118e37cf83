//! A loaded worker: the pre-linked component, what it said about itself, its
//! parameter validator, and the control instance that received `init`.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};
use wasmtime::Store;

use super::params::ParamSchema;
use crate::config::PipelineConfig;
use crate::sandbox::bindings::PipelineWorker;
use crate::sandbox::grants::{self, Grant};
use crate::sandbox::{HostState, WorkerPre};

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
    pub(crate) control: tokio::sync::Mutex<Option<(Store<HostState>, PipelineWorker)>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("pipeline_id", &self.pipeline_id).field("info", &self.info).finish()
    }
}

impl Worker {
    /// Validates trigger parameters: defaults, the declared schema, then path grants.
    pub fn validate(&self, params: Value) -> Result<ValidParams, ParamError> {
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
        let grants = grants::resolve(&self.info.params_schema, &mut params, &self.roots, &self.protected, self.config.allow_write)
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
    let (Some(props), Some(obj)) = (schema.get("properties").and_then(Value::as_object), params.as_object_mut())
    else {
        return;
    };
    for (name, prop) in props {
        if let Some(default) = prop.get("default")
            && !obj.contains_key(name) && !default.is_null() {
                obj.insert(name.clone(), default.clone());
            }
    }
}
