//! repomix: packs a repository into one AI-friendly file (xml, markdown or plain) in the job's
//! output directory: a header, the directory tree, then every file's path and contents, with
//! the repomix CLI's file selection, its secret check, o200k token counts and `compress`.
//!
//! The output goes to the output directory (not `sourceDir`), so the source stays read-only.
//! Parameters and result are documented in README.md beside this crate.

mod compress;
mod pack;
mod report;
mod secrets;
mod select;
mod tokens;

use std::path::Path;

use alephauto_guest::{Context, JobError, Worker, WorkerInfo, export_worker, schemars};
use serde::Deserialize;

pub use pack::{FileStat, Options, Outcome, Style, pack};
pub use report::REPORT_FILE;
pub use secrets::{Finding, Scanner};
pub use select::{Selection, compare_paths};
pub use tokens::Counter;

/// The CLI's default `maxFileSize` (50 MiB).
pub const DEFAULT_MAX_FILE_SIZE: u64 = 50 * 1024 * 1024;

/// Job parameters (the repomix CLI's options of the same names).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Params {
    /// Repository folder to pack (read only).
    #[schemars(extend("x-alephauto-path" = "read"))]
    pub source_dir: String,
    /// Extra ignore patterns, as the CLI's `--ignore`: globs relative to `sourceDir` (`*` stays
    /// within one folder, `**/` crosses folders, `dir/` or `dir/**` drops a folder; a pattern without
    /// a slash matches at the top level only, so `**/*.log` is every `.log` file).
    #[serde(default)]
    pub ignore: Vec<String>,
    /// Honour `.gitignore` files and `.git/info/exclude` (default true).
    #[serde(default = "yes")]
    #[schemars(default = "yes")]
    pub use_gitignore: bool,
    /// Honour `.ignore` files (default true). `.repomixignore` files are always honoured.
    #[serde(default = "yes")]
    #[schemars(default = "yes")]
    pub use_dot_ignore: bool,
    /// Apply the CLI's default ignore list (dependencies, build output, lock files, logs, caches; default true).
    #[serde(default = "yes")]
    #[schemars(default = "yes")]
    pub use_default_patterns: bool,
    /// Files larger than this many bytes are skipped (default 52428800, the CLI's 50 MiB).
    #[serde(default = "max_file_size")]
    #[schemars(default = "max_file_size", range(min = 1))]
    pub max_file_size: u64,
    /// Check every file for secrets (secretlint's recommended rules) and leave flagged files out
    /// (default true).
    #[serde(default = "yes")]
    #[schemars(default = "yes")]
    pub security_check: bool,
    /// Keep only imports, comments, signatures and type structure of Rust, TypeScript/JavaScript
    /// and Python files (default false); other files are packed whole.
    #[serde(default)]
    pub compress: bool,
    /// How many files `topFiles` lists, by tokens (default 5).
    #[serde(default = "top_files_length")]
    #[schemars(default = "top_files_length", range(max = 10000))]
    pub top_files_length: usize,
    /// Output style (default xml).
    #[serde(default)]
    pub style: Style,
}

fn yes() -> bool {
    true
}

fn max_file_size() -> u64 {
    DEFAULT_MAX_FILE_SIZE
}

fn top_files_length() -> usize {
    5
}

/// The repomix worker.
pub struct Repomix;

impl Worker for Repomix {
    type Params = Params;

    fn info() -> WorkerInfo {
        WorkerInfo {
            id: "repomix".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            name: "Repomix".into(),
            description: "Packs a repository into one AI-friendly file (xml, markdown or plain) with a header, the \
                          directory tree and every file's contents, selecting files as the repomix CLI does \
                          (.gitignore, .ignore, .repomixignore, default ignores, binaries), leaving out files \
                          with secrets, counting o200k tokens and optionally compressing code to signatures; \
                          written to the job's output directory."
                .into(),
            git_workflow: None,
        }
    }

    fn run(ctx: &Context, p: Params) -> Result<serde_json::Value, JobError> {
        let source = Path::new(&p.source_dir);
        if !source.is_dir() {
            return Err(JobError::invalid("sourceDir", format!("{} is not a directory", source.display())));
        }
        let options = Options {
            selection: Selection {
                ignore: p.ignore,
                use_gitignore: p.use_gitignore,
                use_dot_ignore: p.use_dot_ignore,
                use_default_patterns: p.use_default_patterns,
                max_file_size: p.max_file_size,
            },
            style: p.style,
            security_check: p.security_check,
            compress: p.compress,
            top_files: p.top_files_length,
        };
        let outcome = pack(source, ctx.output_dir(), &options, ctx)?;
        serde_json::to_value(&outcome).map_err(|e| JobError::failed(format!("serialising the result: {e}")))
    }
}

export_worker!(Repomix);

#[cfg(test)]
mod contract_tests {
    use alephauto_guest::testing::assert_contract;
    use serde_json::json;

    #[test]
    fn schema_marks_paths_defaults_and_is_closed() {
        assert_contract::<super::Repomix>(
            env!("CARGO_PKG_NAME"),
            &[
                ("/properties/sourceDir/x-alephauto-path", json!("read")),
                ("/properties/useGitignore/default", json!(true)),
                ("/properties/style/default", json!("xml")),
            ],
        );
    }
}
