//! claude-health: checks a Claude Code configuration folder (folders, JSON, hooks, components,
//! plugins, hook performance log), scores it and writes JSON + Markdown reports.
//!
//! The executable bit comes from the host (`file-executable`); tool versions are not visible in
//! the sandbox and are reported as unknown.

mod checks;
mod report;

use std::path::Path;

use alephauto_guest::{Context, JobError, Worker, WorkerInfo, export_worker, schemars};
use serde::Deserialize;

pub use checks::{Options, run_checks};
pub use report::write_reports;

/// Job parameters.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Params {
    /// The configuration folder (default `~/.claude`).
    #[serde(default = "default_dir")]
    #[schemars(default = "default_dir", extend("x-alephauto-path" = "read"))]
    pub config_dir: String,
    /// Include per-item details (hook lists, plugin names).
    #[serde(default)]
    pub detailed: bool,
    /// Check JSON validity of settings and skill rules.
    #[serde(default = "yes")]
    #[schemars(default = "yes")]
    pub validate_config: bool,
    /// Count and inspect enabled plugins.
    #[serde(default = "yes")]
    #[schemars(default = "yes")]
    pub analyze_plugins: bool,
    /// Read the hook performance log.
    #[serde(default = "yes")]
    #[schemars(default = "yes")]
    pub check_performance: bool,
}

fn default_dir() -> String {
    "~/.claude".to_owned()
}

fn yes() -> bool {
    true
}

/// The claude-health worker.
pub struct ClaudeHealth;

impl Worker for ClaudeHealth {
    type Params = Params;

    fn info() -> WorkerInfo {
        WorkerInfo {
            id: "claude-health".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            name: "Claude configuration health".into(),
            description: "Checks a Claude Code configuration folder: required folders, settings and skill-rule JSON, \
                          registered hooks against hook files, skills/agents/commands, enabled plugins and the hook \
                          performance log; scores it 0-100 with recommendations."
                .into(),
            git_workflow: None,
        }
    }

    fn run(ctx: &Context, p: Params) -> Result<serde_json::Value, JobError> {
        let dir = Path::new(&p.config_dir);
        if !dir.is_dir() {
            return Err(JobError::invalid("configDir", format!("{} is not a directory", dir.display())));
        }
        let opts = Options {
            detailed: p.detailed,
            validate_config: p.validate_config,
            analyze_plugins: p.analyze_plugins,
            check_performance: p.check_performance,
        };
        let exec = |path: &Path| ctx.file_executable(path).ok();
        let mut result = run_checks(dir, &opts, &exec, ctx);
        ctx.progress(90, "writing reports");
        let paths = write_reports(&result, ctx.output_dir())?;
        result["reportPaths"] = serde_json::to_value(paths).unwrap_or_default();
        ctx.progress(100, "health check complete");
        Ok(result)
    }
}

export_worker!(ClaudeHealth);

#[cfg(test)]
mod contract_tests {
    use alephauto_guest::testing::assert_contract;
    use serde_json::json;

    #[test]
    fn schema_marks_paths_defaults_and_is_closed() {
        assert_contract::<super::ClaudeHealth>(
            env!("CARGO_PKG_NAME"),
            &[
                ("/properties/configDir/x-alephauto-path", json!("read")),
                ("/properties/configDir/default", json!("~/.claude")),
                ("/properties/analyzePlugins/default", json!(true)),
            ],
        );
    }
}
