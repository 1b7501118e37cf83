//! repo-cleanup: removes clutter (virtualenvs, temp files, logs, build output, stale folders)
//! under `targetDir`. Dry run by default: deleting needs `dryRun: false`.
//!
//! `scan` finds the items (pure, over `std::fs`); `cleanup` removes them and builds the result.

mod scan;

use std::path::PathBuf;

use alephauto_guest::{Context, JobError, Worker, WorkerInfo, export_worker, schemars};
use serde::Deserialize;

pub use scan::{Category, Item, Outcome, cleanup, scan};

/// Job parameters.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Params {
    /// Folder to clean (absolute; written only when `dryRun` is false).
    #[schemars(extend("x-alephauto-path" = "write"))]
    pub target_dir: String,
    /// Report what would be removed without removing anything (default true).
    #[serde(default = "default_dry_run")]
    #[schemars(default = "default_dry_run")]
    pub dry_run: bool,
}

fn default_dry_run() -> bool {
    true
}

/// The repo-cleanup worker.
pub struct RepoCleanup;

impl Worker for RepoCleanup {
    type Params = Params;

    fn info() -> WorkerInfo {
        WorkerInfo {
            id: "repo-cleanup".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            name: "Repository cleanup".into(),
            description: "Removes virtual environments, temporary files, logs and output files, top-level build \
                          artifacts and redundant folders under targetDir. Dry run unless dryRun is false; never \
                          follows symlinks and never touches .git."
                .into(),
            git_workflow: None,
        }
    }

    fn run(ctx: &Context, params: Params) -> Result<serde_json::Value, JobError> {
        let root = PathBuf::from(&params.target_dir);
        if !root.is_dir() {
            return Err(JobError::invalid("targetDir", format!("{} is not a directory", root.display())));
        }
        let outcome = cleanup(&root, params.dry_run, ctx)?;
        serde_json::to_value(&outcome).map_err(|e| JobError::failed(format!("serialising the result: {e}")))
    }
}

export_worker!(RepoCleanup);

#[cfg(test)]
mod contract_tests {
    use alephauto_guest::testing::assert_contract;
    use serde_json::json;

    #[test]
    fn schema_marks_paths_defaults_and_is_closed() {
        assert_contract::<super::RepoCleanup>(
            env!("CARGO_PKG_NAME"),
            &[("/properties/targetDir/x-alephauto-path", json!("write")), ("/properties/dryRun/default", json!(true))],
        );
    }
}
