//! test-refactor: analyses a JavaScript/TypeScript test suite for repeated patterns and writes
//! shared test utilities (only files that do not exist yet).
//!
//! `analyze` counts patterns in test files, `generate` renders the helper files.

mod analyze;
mod generate;

use std::path::{Component, Path};

use alephauto_guest::{Context, GitWorkflow, JobError, Worker, WorkerInfo, export_worker, schemars};
use serde::{Deserialize, Serialize};

pub use analyze::{Analysis, analyze_files, find_test_files};
pub use generate::refactor;

/// Test framework the helpers target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Framework {
    /// Vitest.
    Vitest,
    /// Jest.
    Jest,
    /// Playwright test.
    Playwright,
}

/// Job parameters. `testsDir`, `utilsDir` and `e2eDir` are relative paths without `..`
/// (the schema says so, and `relative` checks it again here).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Params {
    /// The repository (helpers are written under it).
    #[schemars(extend("x-alephauto-path" = "write"))]
    pub repository_path: String,
    /// Test folder, relative to the repository.
    #[serde(default = "default_tests")]
    #[schemars(default = "default_tests", extend("pattern" = "^[^/]", "not" = {"pattern": "(^|/)\\.\\.(/|$)"}))]
    pub tests_dir: String,
    /// Where helpers go, relative to the repository.
    #[serde(default = "default_utils")]
    #[schemars(default = "default_utils", extend("pattern" = "^[^/]", "not" = {"pattern": "(^|/)\\.\\.(/|$)"}))]
    pub utils_dir: String,
    /// End-to-end test folder, relative to the repository.
    #[serde(default)]
    #[schemars(extend("pattern" = "^[^/]", "not" = {"pattern": "(^|/)\\.\\.(/|$)"}))]
    pub e2e_dir: Option<String>,
    /// Framework (detected from package.json when absent).
    #[serde(default)]
    pub framework: Option<Framework>,
    /// Report what would be written without writing.
    #[serde(default)]
    pub dry_run: bool,
}

fn default_tests() -> String {
    "tests".to_owned()
}

fn default_utils() -> String {
    "tests/utils".to_owned()
}

/// Rejects absolute paths and `..` so every write stays inside the repository.
fn relative(field: &str, value: &str) -> Result<(), JobError> {
    let p = Path::new(value);
    if value.is_empty()
        || p.is_absolute()
        || p.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(JobError::invalid(field, "must be a relative path inside the repository"));
    }
    Ok(())
}

/// The test-refactor worker.
pub struct TestRefactor;

impl Worker for TestRefactor {
    type Params = Params;

    fn info() -> WorkerInfo {
        WorkerInfo {
            id: "test-refactor".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            name: "Test suite refactor".into(),
            description: "Analyses a JavaScript/TypeScript test suite for repeated render/waitFor pairs, link and \
                          heading assertions, form interactions, strings and expect patterns, recommends helpers and \
                          writes shared test utilities where absent."
                .into(),
            git_workflow: Some(GitWorkflow {
                branch_prefix: "test-refactor".into(),
                commit_title: "refactor(tests): add modular test utilities".into(),
            }),
        }
    }

    fn run(ctx: &Context, p: Params) -> Result<serde_json::Value, JobError> {
        relative("testsDir", &p.tests_dir)?;
        relative("utilsDir", &p.utils_dir)?;
        if let Some(e2e) = &p.e2e_dir {
            relative("e2eDir", e2e)?;
        }
        let repo = Path::new(&p.repository_path);
        if !repo.is_dir() {
            return Err(JobError::invalid("repositoryPath", format!("{} is not a directory", repo.display())));
        }
        let opts = generate::Options {
            tests_dir: p.tests_dir,
            utils_dir: p.utils_dir,
            e2e_dir: p.e2e_dir,
            framework: p.framework,
            dry_run: p.dry_run,
        };
        refactor(repo, &opts, ctx)
    }
}

export_worker!(TestRefactor);

#[cfg(test)]
mod contract_tests {
    use alephauto_guest::testing::assert_contract;
    use serde_json::json;

    #[test]
    fn schema_marks_paths_defaults_and_is_closed() {
        assert_contract::<super::TestRefactor>(
            env!("CARGO_PKG_NAME"),
            &[
                ("/properties/repositoryPath/x-alephauto-path", json!("write")),
                ("/properties/testsDir/default", json!("tests")),
                ("/properties/utilsDir/default", json!("tests/utils")),
            ],
        );
    }
}
