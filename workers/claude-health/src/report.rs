//! JSON and Markdown reports of a health check.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use alephauto_guest::{JobError, ResultExt};
use serde_json::{Value, json};

/// Writes `claude-health-report.json` and `.md` into `out`; returns their paths.
pub fn write_reports(result: &Value, out: &Path) -> Result<Value, JobError> {
    let json_path = out.join("claude-health-report.json");
    let md_path = out.join("claude-health-report.md");
    let body = serde_json::to_string_pretty(result).or_fail("serialising the report")?;
    fs::write(&json_path, body).or_fail_with(|| format!("writing {}", json_path.display()))?;
    fs::write(&md_path, markdown(result)).or_fail_with(|| format!("writing {}", md_path.display()))?;
    Ok(json!({"json": json_path.to_string_lossy(), "markdown": md_path.to_string_lossy()}))
}

fn list(s: &mut String, title: &str, items: &Value) {
    let _ = writeln!(s, "## {title}\n");
    match items.as_array().filter(|a| !a.is_empty()) {
        Some(a) => a.iter().filter_map(Value::as_str).for_each(|i| {
            let _ = writeln!(s, "- {i}");
        }),
        None => s.push_str("- none\n"),
    }
    s.push('\n');
}

/// The Markdown report.
pub fn markdown(v: &Value) -> String {
    let mut s = String::from("# Claude configuration health\n\n");
    let _ = writeln!(
        s,
        "**Score:** {} / 100 ({})  \n{}\n",
        v["summary"]["healthScore"],
        v["summary"]["status"].as_str().unwrap_or("unknown"),
        v["summary"]["message"].as_str().unwrap_or("")
    );
    list(&mut s, "Issues", &v["analysis"]["issues"]);
    list(&mut s, "Warnings", &v["analysis"]["warnings"]);
    list(&mut s, "Successes", &v["analysis"]["successes"]);
    s.push_str("## Recommendations\n\n| Priority | Type | Message | Action |\n|---|---|---|---|\n");
    for r in v["recommendations"].as_array().into_iter().flatten() {
        let cell = |k: &str| r[k].as_str().unwrap_or("").replace('|', "\\|");
        let _ = writeln!(s, "| {} | {} | {} | {} |", cell("priority"), cell("type"), cell("message"), cell("action"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_both_reports() {
        let dir = tempfile::tempdir().expect("tempdir");
        let v = json!({"summary": {"healthScore": 75, "status": "warning", "message": "m"},
            "analysis": {"issues": ["a|b"], "warnings": [], "successes": ["ok"]},
            "recommendations": [{"priority": "high", "type": "hooks", "message": "a|b", "action": "fix"}]});
        let paths = write_reports(&v, dir.path()).expect("write");
        let md = fs::read_to_string(paths["markdown"].as_str().expect("path")).expect("read");
        assert!(md.contains("**Score:** 75 / 100 (warning)"));
        assert!(md.contains("| high | hooks | a\\|b | fix |"));
        assert!(md.contains("## Warnings\n\n- none"));
        assert!(dir.path().join("claude-health-report.json").is_file());
    }
}
