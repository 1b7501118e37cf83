//! gitignore-manager: makes sure an entry (default `repomix-output.xml`) is in every repository's
//! `.gitignore`, discovering repositories under `baseDir` or taking an explicit list.

mod manage;

use std::path::PathBuf;

use alephauto_guest::{Context, JobError, Worker, WorkerInfo, export_worker, params, schemars};
use serde::Deserialize;

pub use manage::{Action, Outcome, RepoResult, discover, ensure_entry, manage};

/// Job parameters. The schema says what `run` requires, so the host refuses at trigger a
/// job that would fail here: `baseDir` or a non-empty `repositories`, and an entry that is
/// one non-empty, non-comment line once trimmed.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("anyOf" = [
    {"required": ["repositories"], "properties": {"repositories": {"minItems": 1}}},
    {"required": ["baseDir"]}
]))]
pub struct Params {
    /// Folder under which repositories are discovered.
    #[serde(default)]
    #[schemars(extend("x-alephauto-path" = "write"))]
    pub base_dir: Option<String>,
    /// Explicit repository folders (instead of discovery).
    #[serde(default)]
    #[schemars(transform = params::write_path_items)]
    pub repositories: Option<Vec<String>>,
    /// Folder names not entered during discovery.
    #[serde(default)]
    pub exclude_dirs: Vec<String>,
    /// How deep discovery goes below `baseDir`.
    #[serde(default = "default_max_depth")]
    #[schemars(default = "default_max_depth", range(min = 0, max = 64))]
    pub max_depth: usize,
    /// The line to ensure.
    #[serde(default = "default_entry")]
    #[schemars(default = "default_entry", extend("pattern" = "^\\s*[^\\s#][^\\n]*\\s*$"))]
    pub gitignore_entry: String,
    /// Report what would change without writing.
    #[serde(default)]
    pub dry_run: bool,
}

fn default_max_depth() -> usize {
    10
}

fn default_entry() -> String {
    "repomix-output.xml".to_owned()
}

/// The gitignore-manager worker.
pub struct GitignoreManager;

impl Worker for GitignoreManager {
    type Params = Params;

    fn info() -> WorkerInfo {
        WorkerInfo {
            id: "gitignore-manager".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            name: "Gitignore manager".into(),
            description: "Ensures an entry (default repomix-output.xml) is present in the .gitignore of every \
                          repository found under baseDir or listed in repositories; honours dryRun."
                .into(),
            git_workflow: None,
        }
    }

    fn run(ctx: &Context, p: Params) -> Result<serde_json::Value, JobError> {
        let entry = p.gitignore_entry.trim();
        if entry.is_empty() || entry.contains('\n') || entry.starts_with('#') {
            return Err(JobError::invalid("gitignoreEntry", "must be one non-empty, non-comment line"));
        }
        let repos: Vec<PathBuf> = match (&p.repositories, &p.base_dir) {
            (Some(list), _) if !list.is_empty() => list.iter().map(PathBuf::from).collect(),
            (_, Some(base)) => {
                ctx.progress(5, "discovering repositories");
                discover(std::path::Path::new(base), p.max_depth, &p.exclude_dirs, ctx)?
            }
            _ => {
                return Err(JobError::invalid("baseDir", "give baseDir or a non-empty repositories list"));
            }
        };
        let outcome = manage(&repos, entry, p.dry_run, ctx);
        serde_json::to_value(&outcome).map_err(|e| JobError::failed(format!("serialising the result: {e}")))
    }
}

export_worker!(GitignoreManager);

#[cfg(test)]
mod contract_tests {
    use alephauto_guest::testing::assert_contract;
    use serde_json::json;

    #[test]
    fn schema_marks_paths_defaults_and_is_closed() {
        assert_contract::<super::GitignoreManager>(
            env!("CARGO_PKG_NAME"),
            &[
                ("/properties/baseDir/x-alephauto-path", json!("write")),
                ("/properties/repositories/items/x-alephauto-path", json!("write")),
                ("/properties/maxDepth/default", json!(10)),
                ("/properties/gitignoreEntry/default", json!("repomix-output.xml")),
            ],
        );
    }
}
