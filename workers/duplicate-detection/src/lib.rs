//! duplicate-detection: finds duplicated code in one repository or across several.
//!
//! `normalize` turns source lines into hashes (whitespace, optionally identifiers and literals
//! folded), `detect` hashes windows of consecutive lines, groups recurring windows and merges
//! them into maximal blocks, `report` ranks them and writes JSON + Markdown reports.

mod detect;
mod normalize;
mod report;

use std::path::PathBuf;
use std::time::Instant;

use alephauto_guest::{Context, GitWorkflow, JobError, Worker, WorkerInfo, export_worker, schemars};
use serde::{Deserialize, Serialize};

pub use detect::{Duplicate, Occurrence, find_duplicates};
pub use normalize::{Mode, SourceFile, load_repository};
pub use report::{scan, write_reports};

/// intra-project (one repository) or inter-project (several).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
pub enum ScanType {
    /// Duplicates inside `repositoryPath`.
    #[serde(rename = "intra-project")]
    IntraProject,
    /// Duplicates within and across `repositories`.
    #[serde(rename = "inter-project")]
    InterProject,
}

/// One repository of an inter-project scan.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RepoRef {
    /// Display name (default: the folder name).
    #[serde(default)]
    pub name: Option<String>,
    /// Repository folder.
    #[schemars(extend("x-alephauto-path" = "read"))]
    pub path: String,
}

/// Job parameters. The schema says what `run` requires, so the host refuses a job at
/// trigger that would fail here: intra-project scans need `repositoryPath`, inter-project
/// scans at least two `repositories`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("allOf" = [{
    "if": {"properties": {"scanType": {"const": "inter-project"}}, "required": ["scanType"]},
    "then": {"required": ["repositories"], "properties": {"repositories": {"minItems": 2}}},
    "else": {"required": ["repositoryPath"]}
}]))]
pub struct Params {
    /// intra-project or inter-project.
    #[serde(default = "default_scan_type")]
    #[schemars(default = "default_scan_type")]
    pub scan_type: ScanType,
    /// The repository (intra-project).
    #[serde(default)]
    #[schemars(extend("x-alephauto-path" = "read"))]
    pub repository_path: Option<String>,
    /// The repositories (inter-project).
    #[serde(default)]
    pub repositories: Vec<RepoRef>,
    /// exact (whitespace folded) or structural (identifiers and literals folded too).
    #[serde(default)]
    pub mode: Mode,
    /// Smallest duplicate, in significant lines.
    #[serde(default = "default_min_lines")]
    #[schemars(default = "default_min_lines", range(min = 2, max = 200))]
    pub min_lines: usize,
    /// Most duplicate groups reported.
    #[serde(default = "default_max_results")]
    #[schemars(default = "default_max_results", range(min = 1, max = 1000))]
    pub max_results: usize,
}

fn default_scan_type() -> ScanType {
    ScanType::IntraProject
}

fn default_min_lines() -> usize {
    6
}

fn default_max_results() -> usize {
    50
}

/// The duplicate-detection worker.
pub struct DuplicateDetection;

impl Worker for DuplicateDetection {
    type Params = Params;

    fn info() -> WorkerInfo {
        WorkerInfo {
            id: "duplicate-detection".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            name: "Duplicate code detection".into(),
            description: "Finds duplicated code blocks inside one repository or across several by hashing windows of \
                          normalised source lines, merges them into blocks, ranks them by size x occurrences and \
                          writes JSON and Markdown reports."
                .into(),
            git_workflow: Some(GitWorkflow {
                branch_prefix: "consolidate".into(),
                commit_title: "refactor: consolidate duplicated code".into(),
            }),
        }
    }

    fn run(ctx: &Context, p: Params) -> Result<serde_json::Value, JobError> {
        let started = Instant::now();
        let repos: Vec<(String, PathBuf)> = match p.scan_type {
            ScanType::IntraProject => {
                let path = p
                    .repository_path
                    .as_deref()
                    .ok_or_else(|| JobError::invalid("repositoryPath", "intra-project scans need repositoryPath"))?;
                vec![(folder_name(path), PathBuf::from(path))]
            }
            ScanType::InterProject => {
                if p.repositories.len() < 2 {
                    return Err(JobError::invalid(
                        "repositories",
                        "inter-project scans need at least two repositories",
                    ));
                }
                p.repositories
                    .iter()
                    .map(|r| (r.name.clone().unwrap_or_else(|| folder_name(&r.path)), PathBuf::from(&r.path)))
                    .collect()
            }
        };
        for (i, (_, path)) in repos.iter().enumerate() {
            if !path.is_dir() {
                let field = if p.scan_type == ScanType::IntraProject {
                    "repositoryPath".to_owned()
                } else {
                    format!("repositories[{i}].path")
                };
                return Err(JobError::invalid(field, format!("{} is not a directory", path.display())));
            }
        }
        let mut result = scan(p.scan_type, &repos, p.mode, p.min_lines, p.max_results, ctx)?;
        result["duration"] = serde_json::json!(started.elapsed().as_millis() as u64);
        ctx.progress(95, "writing reports");
        result["reportPaths"] = write_reports(&result, ctx.output_dir())?;
        ctx.progress(100, "scan complete");
        Ok(result)
    }
}

fn folder_name(path: &str) -> String {
    path.trim_end_matches('/').rsplit('/').next().unwrap_or(path).to_owned()
}

export_worker!(DuplicateDetection);

#[cfg(test)]
mod contract_tests {
    use alephauto_guest::testing::assert_contract;
    use serde_json::json;

    #[test]
    fn schema_marks_paths_defaults_and_is_closed() {
        assert_contract::<super::DuplicateDetection>(
            env!("CARGO_PKG_NAME"),
            &[
                ("/properties/repositoryPath/x-alephauto-path", json!("read")),
                ("/properties/repositories/items/properties/path/x-alephauto-path", json!("read")),
                ("/properties/scanType/default", json!("intra-project")),
            ],
        );
    }
}
