//! The `Worker` trait a pipeline implements, and the adapter that maps it onto the WIT exports.

use std::marker::PhantomData;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;

use crate::bindings::alephauto::worker::types as wit;
use crate::bindings::exports::alephauto::worker::worker::Guest;
use crate::{Context, JobError, params};

/// Host-side git workflow a worker asks for (branch, commit, push, pull request around the job).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitWorkflow {
    /// Branch prefix, e.g. `docs` gives `docs/<pipeline>-<slug>-<ms>`.
    pub branch_prefix: String,
    /// First line of the commit message and the pull-request title.
    pub commit_title: String,
}

/// What a worker says about itself (the parameter schema is derived from `Worker::Params`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerInfo {
    /// Pipeline id, e.g. `repo-cleanup`.
    pub id: String,
    /// Semantic version.
    pub version: String,
    /// Human-readable name.
    pub name: String,
    /// One paragraph on what the worker does.
    pub description: String,
    /// Present when the worker wants the host's git workflow.
    pub git_workflow: Option<GitWorkflow>,
}

/// A pipeline worker; export it with [`crate::export_worker!`].
pub trait Worker: 'static {
    /// Job parameters: camelCase serde plus a schemars schema (paths marked `x-alephauto-path`).
    type Params: DeserializeOwned + JsonSchema;

    /// Id, version, name, description and git workflow.
    fn info() -> WorkerInfo;

    /// Called once with the pipeline's configuration (JSON); default accepts anything.
    fn init(_config: serde_json::Value) -> Result<(), String> {
        Ok(())
    }

    /// Runs one job; `Ok` is the job's result object.
    fn run(ctx: &Context, params: Self::Params) -> Result<serde_json::Value, JobError>;

    /// Called once when the runtime stops the worker.
    fn shutdown() {}
}

/// Maps a [`Worker`] onto the generated `Guest` trait; used by [`crate::export_worker!`].
#[doc(hidden)]
pub struct Adapter<W>(PhantomData<W>);

impl<W: Worker> Guest for Adapter<W> {
    fn describe() -> wit::WorkerInfo {
        let info = W::info();
        wit::WorkerInfo {
            id: info.id,
            version: info.version,
            name: info.name,
            description: info.description,
            params_schema: params::schema_for::<W::Params>(),
            git_workflow: info
                .git_workflow
                .map(|g| wit::GitWorkflow { branch_prefix: g.branch_prefix, commit_title: g.commit_title }),
        }
    }

    fn init(config: String) -> Result<(), String> {
        let config = if config.trim().is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&config).map_err(|e| format!("pipeline configuration is not JSON: {e}"))?
        };
        W::init(config)
    }

    fn run(job: wit::Job) -> Result<String, wit::JobError> {
        let ctx = Context::from_job(&job);
        let outcome = params::parse::<W::Params>(&job.params).and_then(|p| W::run(&ctx, p));
        match outcome {
            Ok(value) => {
                serde_json::to_string(&value).map_err(|e| wit::JobError::Failed(format!("serialising the result: {e}")))
            }
            Err(err) => {
                ctx.log.error(&err.to_string());
                Err(into_wit(err))
            }
        }
    }

    fn shutdown() {
        W::shutdown();
    }
}

fn into_wit(err: JobError) -> wit::JobError {
    match err {
        JobError::InvalidInput { field, message } => wit::JobError::InvalidInput(wit::FieldError { field, message }),
        JobError::Failed(m) => wit::JobError::Failed(m),
        JobError::Retryable(m) => wit::JobError::Retryable(m),
    }
}

/// Exports a [`Worker`] type as the component's `worker` interface: `export_worker!(MyWorker);`.
#[macro_export]
macro_rules! export_worker {
    ($ty:ty) => {
        // Native builds (unit tests) skip the exports: their names are not valid ELF version-script symbols.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            // The generated export macro takes an identifier, so name the adapter type.
            type __AlephautoExported = $crate::Adapter<$ty>;
    $crate::bindings::__export_pipeline_worker!(__AlephautoExported with_types_in $crate::bindings);
        };
    };
}
