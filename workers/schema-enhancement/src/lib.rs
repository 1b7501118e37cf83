//! schema-enhancement: inserts Schema.org JSON-LD right after a README's first heading, in
//! one README (`readmePath`) or in every README under a base folder (`baseDir`).
//!
//! `markdown` reads the README (title, description, insertion), `schema` chooses the type, builds,
//! validates and scores the JSON-LD, `enhance` ties them together over `std::fs`, `folder` finds
//! the READMEs under a base folder and reports on each.

mod enhance;
mod folder;
mod markdown;
mod schema;

use std::path::{Path, PathBuf};

use alephauto_guest::{Context, GitWorkflow, JobError, Worker, WorkerInfo, export_worker, schemars};
use serde::Deserialize;

pub use enhance::{derive_context, enhance};
pub use folder::{FolderRun, enhance_folder, find_readmes};
pub use schema::ProjectContext;

/// Job parameters: one README (`readmePath`) or every README under a folder (`baseDir`); the
/// schema requires exactly one of them, so the host refuses other triggers naming the field.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("allOf" = [
    {"anyOf": [{"required": ["readmePath"]}, {"required": ["baseDir"]}]},
    {"if": {"required": ["baseDir"]}, "then": {"properties": {"readmePath": false}}}
]))]
pub struct Params {
    /// The README to enhance (give this or `baseDir`).
    #[serde(default)]
    #[schemars(extend("x-alephauto-path" = "write"))]
    pub readme_path: Option<String>,
    /// A folder whose README files (README.md, readme.md, README.markdown) are all enhanced, skipping
    /// dependency, build, cache, version-control and hidden folders (give this or `readmePath`).
    #[serde(default)]
    #[schemars(extend("x-alephauto-path" = "write"))]
    pub base_dir: Option<String>,
    /// How many folders below `baseDir` are searched.
    #[serde(default = "default_depth")]
    #[schemars(default = "default_depth", range(min = 0, max = 20))]
    pub max_depth: usize,
    /// More folder names not to enter under `baseDir` (beside node_modules, target, dist, build, vendor, .git...).
    #[serde(default)]
    pub exclude_dirs: Vec<String>,
    /// The repository root (found by walking up from each README when absent).
    #[serde(default)]
    #[schemars(extend("x-alephauto-path" = "read"))]
    pub repository_path: Option<String>,
    /// Facts about the project (derived when absent, per repository under `baseDir`).
    #[serde(default)]
    pub context: Option<ProjectContext>,
    /// Report the schema without writing the README.
    #[serde(default)]
    pub dry_run: bool,
}

fn default_depth() -> usize {
    10
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
                          the type from the README and its project, then validates and scores it; one README, or \
                          every README under a base folder (skipping dependency and build folders), reported per file."
                .into(),
            git_workflow: Some(GitWorkflow {
                branch_prefix: "docs".into(),
                commit_title: "docs: add Schema.org structured data to README.md".into(),
            }),
        }
    }

    fn run(ctx: &Context, p: Params) -> Result<serde_json::Value, JobError> {
        let remote = |r: &Path| ctx.git().remote_url(r, "origin").ok().flatten();
        let now = alephauto_guest::time::now_unix();
        let readme_path = match (p.readme_path, p.base_dir) {
            (Some(_), Some(_)) => return Err(JobError::invalid("baseDir", "give readmePath or baseDir, not both")),
            (None, None) => return Err(JobError::invalid("readmePath", "give readmePath or baseDir")),
            (None, Some(base)) => {
                let run = FolderRun {
                    base: Path::new(&base),
                    max_depth: p.max_depth,
                    exclude: &p.exclude_dirs,
                    repository: p.repository_path.as_deref().map(Path::new),
                    context: p.context.as_ref(),
                    dry_run: p.dry_run,
                    now,
                };
                return enhance_folder(&run, &remote, ctx);
            }
            (Some(readme), None) => readme,
        };
        let readme = PathBuf::from(&readme_path);
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
            None => derive_context(&readme, &repo, &remote, ctx),
        };
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
                ("/properties/baseDir/x-alephauto-path", json!("write")),
                ("/allOf/0/anyOf/1/required/0", json!("baseDir")),
                ("/allOf/1/then/properties/readmePath", json!(false)),
            ],
        );
    }

    /// Every parameter the schema names (nested ones too) appears in README.md with its description.
    #[test]
    fn readme_documents_every_parameter() {
        alephauto_guest::testing::assert_readme_documents::<super::Params>(include_str!("../README.md"));
    }
}
