//! repomix: packs a repository into one AI-friendly file (xml, markdown or plain) in the job's
//! output directory: a header, the directory tree, then every file's path and contents.
//!
//! The output goes to the output directory (not `sourceDir`), so the source stays read-only.

mod pack;

use std::path::Path;

use alephauto_guest::{Context, JobError, Worker, WorkerInfo, export_worker, schemars};
use serde::Deserialize;

pub use pack::{Options, Outcome, Style, pack};

/// Job parameters.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Params {
    /// Repository folder to pack (read only).
    #[schemars(extend("x-alephauto-path" = "read"))]
    pub source_dir: String,
    /// Extra ignore patterns (gitignore syntax, relative to `sourceDir`).
    #[serde(default)]
    pub ignore: Vec<String>,
    /// Honour `.gitignore` files (default true).
    #[serde(default = "yes")]
    #[schemars(default = "yes")]
    pub use_gitignore: bool,
    /// Output style (default xml).
    #[serde(default)]
    pub style: Style,
}

fn yes() -> bool {
    true
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
                          directory tree and every file's contents, honouring .gitignore; written to the job's \
                          output directory."
                .into(),
            git_workflow: None,
        }
    }

    fn run(ctx: &Context, p: Params) -> Result<serde_json::Value, JobError> {
        let source = Path::new(&p.source_dir);
        if !source.is_dir() {
            return Err(JobError::invalid("sourceDir", format!("{} is not a directory", source.display())));
        }
        let options = Options { extra_ignore: p.ignore, use_gitignore: p.use_gitignore, style: p.style };
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
