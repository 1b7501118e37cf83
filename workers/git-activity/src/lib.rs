//! git-activity: commit activity over a window across repositories, as an HTML report (charts
//! inline), JSON and Markdown reports and SVG charts in the job's output directory.
//!
//! Only `run` needs the host's git capability; `report` (from commits), `render` and `html` are pure.

mod html;
mod render;
mod report;
mod window;

use std::path::{Path, PathBuf};

use alephauto_guest::{Context, GitError, JobError, Worker, WorkerInfo, export_worker, params, schemars, time};
use serde::Deserialize;

pub use render::{OutputFormat, charts, write_outputs};
pub use report::{AuthorStats, DayCount, RepoCommits, Report, WeekCount, build_report};
pub use window::{ReportType, Window, resolve_window};

/// Job parameters. The schema says what `run` requires, so the host refuses at trigger a
/// job that would fail here: `repositories` (non-empty) or `baseDir`, `sinceDate` for a custom
/// window without `days`, and dates as `YYYY-MM-DD`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("allOf" = [
    {"anyOf": [
        {"required": ["repositories"], "properties": {"repositories": {"minItems": 1}}},
        {"required": ["baseDir"]}
    ]},
    {
        "if": {"properties": {"reportType": {"const": "custom"}}, "required": ["reportType"]},
        "then": {"anyOf": [{"required": ["days"]}, {"required": ["sinceDate"]}]}
    }
]))]
pub struct Params {
    /// weekly (7 days), monthly (30) or custom (`sinceDate`..`untilDate`).
    #[serde(default)]
    pub report_type: ReportType,
    /// Window length in days, ending now (overrides `reportType`'s length).
    #[serde(default)]
    #[schemars(range(min = 1, max = 3660))]
    pub days: Option<u32>,
    /// Start date `YYYY-MM-DD` (custom).
    #[serde(default)]
    #[schemars(extend("pattern" = "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$", "format" = "date"))]
    pub since_date: Option<String>,
    /// End date `YYYY-MM-DD`, inclusive (custom; default today).
    #[serde(default)]
    #[schemars(extend("pattern" = "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$", "format" = "date"))]
    pub until_date: Option<String>,
    /// Repository folders.
    #[serde(default)]
    #[schemars(transform = params::read_path_items)]
    pub repositories: Option<Vec<String>>,
    /// Folder under which repositories are discovered.
    #[serde(default)]
    #[schemars(extend("x-alephauto-path" = "read"))]
    pub base_dir: Option<String>,
    /// How deep discovery goes below `baseDir`.
    #[serde(default = "default_depth")]
    #[schemars(default = "default_depth", range(min = 0, max = 10))]
    pub max_depth: usize,
    /// markdown, json or both.
    #[serde(default)]
    pub output_format: OutputFormat,
    /// Write SVG charts.
    #[serde(default = "yes")]
    #[schemars(default = "yes")]
    pub generate_visualizations: bool,
}

fn default_depth() -> usize {
    3
}

fn yes() -> bool {
    true
}

/// The git-activity worker.
pub struct GitActivity;

impl Worker for GitActivity {
    type Params = Params;

    fn info() -> WorkerInfo {
        WorkerInfo {
            id: "git-activity".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            name: "Git activity report".into(),
            description: "Reports commit activity over a window (weekly, monthly, custom or N days) across \
                          repositories: totals, commits per day, week and month, per repository and per author, \
                          language distribution, with an HTML report (charts inline), JSON/Markdown reports and \
                          SVG charts in the output directory."
                .into(),
            git_workflow: None,
        }
    }

    fn run(ctx: &Context, p: Params) -> Result<serde_json::Value, JobError> {
        let window =
            resolve_window(p.report_type, p.days, p.since_date.as_deref(), p.until_date.as_deref(), time::now_unix())?;
        let repos: Vec<PathBuf> = match (&p.repositories, &p.base_dir) {
            (Some(list), _) if !list.is_empty() => list.iter().map(PathBuf::from).collect(),
            (_, Some(base)) => discover(Path::new(base), p.max_depth)?,
            _ => {
                return Err(JobError::invalid("repositories", "give repositories or baseDir"));
            }
        };
        ctx.progress(5, &format!("reading history of {} repositories", repos.len()));
        let mut collected = Vec::with_capacity(repos.len());
        let mut errors = Vec::new();
        for (n, repo) in repos.iter().enumerate() {
            ctx.check_cancelled()?;
            let name = repo.file_name().map_or_else(|| repo.to_string_lossy(), |n| n.to_string_lossy()).into_owned();
            match ctx.git().log(repo, window.since, window.until) {
                Ok(commits) => collected.push(RepoCommits { name, path: repo.to_string_lossy().into_owned(), commits }),
                Err(GitError::Timeout(m)) if repos.len() == 1 => {
                    return Err(JobError::retryable(format!("git log timed out: {m}")));
                }
                Err(e) => {
                    ctx.log.warn(&format!("{}: {e}", repo.display()));
                    errors.push(
                        serde_json::json!({"repository": name, "path": repo.to_string_lossy(), "error": e.to_string()}),
                    );
                }
            }
            let pct = 5 + (70 * (n + 1) / repos.len().max(1)) as u8;
            ctx.progress(pct, &format!("read {} / {} repositories", n + 1, repos.len()));
        }
        let report = build_report(&window, &collected);
        ctx.progress(80, "writing reports");
        let paths = write_outputs(&report, ctx.output_dir(), p.output_format, p.generate_visualizations)?;
        ctx.progress(100, &format!("{} commits in {} repositories", report.totals.commits, report.totals.repositories));
        let mut value =
            serde_json::to_value(&report).map_err(|e| JobError::failed(format!("serialising the report: {e}")))?;
        if let Some(obj) = value.as_object_mut() {
            obj.insert("errors".into(), errors.into());
            obj.insert("reportPaths".into(), serde_json::to_value(&paths).unwrap_or_default());
        }
        Ok(value)
    }
}

/// Git work trees under `base` (itself included), not entering one once found, nor dot folders.
pub fn discover(base: &Path, max_depth: usize) -> Result<Vec<PathBuf>, JobError> {
    if !base.is_dir() {
        return Err(JobError::invalid("baseDir", format!("{} is not a directory", base.display())));
    }
    let mut found = Vec::new();
    let mut stack = vec![(base.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        if dir.join(".git").symlink_metadata().is_ok() {
            found.push(dir);
            continue;
        }
        if depth >= max_depth {
            continue;
        }
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.filter_map(Result::ok) {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if e.file_type().is_ok_and(|t| t.is_dir()) && !name.starts_with('.') && name != "node_modules" {
                stack.push((e.path(), depth + 1));
            }
        }
    }
    found.sort();
    Ok(found)
}

export_worker!(GitActivity);

#[cfg(test)]
mod contract_tests {
    use alephauto_guest::testing::assert_contract;
    use serde_json::json;

    #[test]
    fn schema_marks_paths_defaults_and_is_closed() {
        assert_contract::<super::GitActivity>(
            env!("CARGO_PKG_NAME"),
            &[
                ("/properties/repositories/items/x-alephauto-path", json!("read")),
                ("/properties/baseDir/x-alephauto-path", json!("read")),
                ("/properties/outputFormat/default", json!("both")),
                ("/properties/generateVisualizations/default", json!(true)),
            ],
        );
    }

    /// Every parameter the schema names (nested ones too) appears in README.md with its description.
    #[test]
    fn readme_documents_every_parameter() {
        alephauto_guest::testing::assert_readme_documents::<super::Params>(include_str!("../README.md"));
    }
}
