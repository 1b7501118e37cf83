//! schema-enhancement: inserts Schema.org JSON-LD right after a README's first heading.
//!
//! `markdown` reads the README (title, description, insertion), `schema` chooses the type, builds,
//! validates and scores the JSON-LD, `enhance` ties them together over `std::fs`.

mod enhance;
mod markdown;
mod schema;

use std::path::{Path, PathBuf};

use alephauto_guest::{Context, GitWorkflow, JobError, Worker, WorkerInfo, export_worker, schemars};
use serde::Deserialize;

pub use enhance::{derive_context, enhance};
pub use schema::ProjectContext;

/// Job parameters.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Params {
    /// The README to enhance.
    #[schemars(extend("x-alephauto-path" = "write"))]
    pub readme_path: String,
    /// The repository root (found by walking up from the README when absent).
    #[serde(default)]
    #[schemars(extend("x-alephauto-path" = "read"))]
    pub repository_path: Option<String>,
    /// Facts about the project (derived when absent).
    #[serde(default)]
    pub context: Option<ProjectContext>,
    /// Report the schema without writing the README.
    #[serde(default)]
    pub dry_run: bool,
}

/// The schema-enhancement worker.
pub struct SchemaEnhancement;

impl Worker for SchemaEnhancement {
    type Params = Params;

    fn info() -> WorkerInfo {
        WorkerInfo {
            id: "schema-enhancement".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            name: "Schema.org enhancement".into(),
            description: "Inserts Schema.org JSON-LD structured data right after a README's first heading, choosing \
                          the type from the README and its project, then validates and scores it."
                .into(),
            git_workflow: Some(GitWorkflow {
                branch_prefix: "docs".into(),
                commit_title: "docs: add Schema.org structured data to README.md".into(),
            }),
        }
    }

    fn run(ctx: &Context, p: Params) -> Result<serde_json::Value, JobError> {
        let readme = PathBuf::from(&p.readme_path);
        if !readme.is_file() {
            return Err(JobError::invalid("readmePath", format!("{} is not a file", readme.display())));
        }
        let repo = match &p.repository_path {
            Some(r) => PathBuf::from(r),
            None => find_repo_root(&readme),
        };
        ctx.progress(10, "gathering project context");
        let context = match p.context {
            Some(c) => c,
            None => {
                let remote = |r: &Path| ctx.git().remote_url(r, "origin").ok().flatten();
                derive_context(&readme, &repo, &remote, ctx)
            }
        };
        let now = alephauto_guest::time::now_unix();
        enhance(&readme, &repo, &context, p.dry_run, now, ctx)
    }
}

/// The nearest ancestor of the README holding `.git` (only granted folders are visible), else its folder.
fn find_repo_root(readme: &Path) -> PathBuf {
    let start = readme.parent().unwrap_or(readme);
    start.ancestors().find(|dir| dir.join(".git").symlink_metadata().is_ok()).unwrap_or(start).to_path_buf()
}

export_worker!(SchemaEnhancement);

#[cfg(test)]
mod contract_tests {
    use alephauto_guest::testing::assert_contract;
    use serde_json::json;

    #[test]
    fn schema_marks_paths_defaults_and_is_closed() {
        assert_contract::<super::SchemaEnhancement>(
            env!("CARGO_PKG_NAME"),
            &[
                ("/properties/readmePath/x-alephauto-path", json!("write")),
                ("/properties/repositoryPath/x-alephauto-path", json!("read")),
            ],
        );
    }
}
