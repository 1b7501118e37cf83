//! {{name}}: a hello-world AlephAuto pipeline worker (scaffolded by `alephauto new-worker`).

use alephauto_guest::{Context, JobError, Reporter, Worker, WorkerInfo, export_worker, schemars};
use serde::Deserialize;

/// Job parameters; the JSON Schema the host validates against is derived from this type.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Params {
    /// Who to greet (default "world").
    #[serde(default = "world")]
    #[schemars(default = "world")]
    pub name: String,
    /// How many times (1-100, default 1).
    #[serde(default = "one")]
    #[schemars(default = "one", range(min = 1, max = 100))]
    pub times: u32,
}

fn world() -> String {
    "world".into()
}
fn one() -> u32 {
    1
}

/// The work, as a plain function over a `Reporter`, so tests run it natively with `Silent`.
pub fn greet(p: &Params, r: &dyn Reporter) -> Result<Vec<String>, JobError> {
    if p.name.trim().is_empty() {
        return Err(JobError::invalid("name", "must not be blank"));
    }
    let mut lines = Vec::new();
    for i in 0..p.times {
        r.check_cancelled()?;
        lines.push(format!("Hello, {}!", p.name.trim()));
        r.progress((((i + 1) * 100) / p.times) as u8, &format!("greeted {} of {}", i + 1, p.times));
    }
    Ok(lines)
}

/// The worker.
pub struct Hello;

impl Worker for Hello {
    type Params = Params;

    fn info() -> WorkerInfo {
        WorkerInfo {
            id: "{{name}}".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            name: "{{name}}".into(),
            description: "Says hello (scaffolded by alephauto new-worker).".into(),
            git_workflow: None,
        }
    }

    fn run(ctx: &Context, p: Params) -> Result<serde_json::Value, JobError> {
        ctx.log.info(&format!("greeting {}", p.name));
        let lines = greet(&p, ctx)?;
        Ok(serde_json::json!({ "greeting": lines[0], "lines": lines, "jobId": ctx.job_id() }))
    }
}

export_worker!(Hello);

#[cfg(test)]
mod tests {
    use super::*;
    use alephauto_guest::Silent;

    #[test]
    fn greets_and_refuses_a_blank_name() {
        let p = Params { name: "Ada".into(), times: 2 };
        assert_eq!(greet(&p, &Silent).unwrap(), vec!["Hello, Ada!", "Hello, Ada!"]);
        let blank = Params { name: " ".into(), times: 1 };
        assert!(matches!(greet(&blank, &Silent), Err(JobError::InvalidInput { field, .. }) if field == "name"));
    }
}
