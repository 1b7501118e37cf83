//! duplicate-detection: finds duplicated code in one repository or across several.
//!
//! `tokenize` lexes each supported language into tokens, `source` loads files and folds
//! identifiers and literals where the mode asks for it, `detect` finds token clones (rolling
//! hashes of `minTokens`-token windows, extended into maximal clone classes), `structural`
//! groups whole functions of the same shape, `suggest` proposes a consolidation per group,
//! `report` pages the result and writes the full JSON and Markdown reports, and `html` the HTML
//! report (copies side by side).

mod detect;
mod functions;
mod html;
mod report;
mod source;
mod structural;
mod suggest;
mod tokenize;

use std::path::PathBuf;
use std::time::Instant;

use alephauto_guest::{Context, GitWorkflow, JobError, Worker, WorkerInfo, export_worker, schemars};
use serde::{Deserialize, Serialize};

pub use detect::{Duplicate, Occurrence, find_duplicates};
pub use report::{Scan, ScanOptions, result, scan, write_reports};
pub use source::{Mode, SourceFile, load_repository};
pub use structural::find_function_duplicates;

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
    /// exact (tokens as written) or structural (identifiers, strings and numbers folded: finds renamed copies).
    /// Whitespace, comments and import statements never count.
    #[serde(default)]
    pub mode: Mode,
    /// Smallest clone, in tokens (jscpd's `--min-tokens`).
    #[serde(default = "default_min_tokens")]
    #[schemars(default = "default_min_tokens", range(min = 10, max = 2000))]
    pub min_tokens: usize,
    /// Smallest clone, in lines from its first token's line to its last's (jscpd's `--min-lines`).
    #[serde(default = "default_min_lines")]
    #[schemars(default = "default_min_lines", range(min = 1, max = 500))]
    pub min_lines: usize,
    /// Groups returned per list (`duplicates`, `functionDuplicates`); the totals in `stats` and the
    /// report files always cover every group.
    #[serde(default = "default_limit")]
    #[schemars(default = "default_limit", range(min = 1, max = 1000))]
    pub limit: usize,
    /// Groups skipped before the page (the previous page's `page.nextOffset`).
    #[serde(default)]
    #[schemars(range(min = 0, max = 10_000_000))]
    pub offset: usize,
}

fn default_scan_type() -> ScanType {
    ScanType::IntraProject
}

fn default_min_tokens() -> usize {
    50
}

fn default_min_lines() -> usize {
    5
}

fn default_limit() -> usize {
    100
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
            description: "Finds duplicated code inside one repository or across several: token clones (renamed \
                          copies too, in structural mode) and whole functions of the same shape, ranked by size x \
                          occurrences, each with a consolidation suggestion; pages the result and writes full JSON, \
                          Markdown and HTML reports (copies side by side)."
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
        let opts = ScanOptions {
            mode: p.mode,
            min_tokens: p.min_tokens,
            min_lines: p.min_lines,
            offset: p.offset,
            limit: p.limit,
        };
        let found = scan(p.scan_type, &repos, &opts, ctx)?;
        ctx.progress(95, "writing reports");
        let mut result = result(p.scan_type, &repos, &found, &opts);
        let paths = write_reports(p.scan_type, &repos, &found, &opts, &result["page"], ctx.output_dir())?;
        result["duration"] = serde_json::json!(started.elapsed().as_millis() as u64);
        result["reportPaths"] = paths;
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

    /// Every parameter the schema names (nested ones too) appears in README.md with its description.
    #[test]
    fn readme_documents_every_parameter() {
        alephauto_guest::testing::assert_readme_documents::<super::Params>(include_str!("../README.md"));
    }
}
