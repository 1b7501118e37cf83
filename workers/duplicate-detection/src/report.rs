//! Running a scan over repositories and writing its reports.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use alephauto_guest::{JobError, Reporter, ResultExt};
use serde_json::{Value, json};

use crate::ScanType;
use crate::detect::{Duplicate, find_duplicates};
use crate::normalize::{Mode, load_repository};

/// Scans `repos` (name, path) and returns the result object (without `duration`/`reportPaths`).
pub fn scan(
    scan_type: ScanType,
    repos: &[(String, PathBuf)],
    mode: Mode,
    min_lines: usize,
    max_results: usize,
    r: &dyn Reporter,
) -> Result<Value, JobError> {
    let mut files = Vec::new();
    for (i, (name, path)) in repos.iter().enumerate() {
        r.progress((5 + 50 * i / repos.len().max(1)) as u8, &format!("reading {name}"));
        files.extend(load_repository(i, path, mode, r)?);
    }
    r.check_cancelled()?;
    r.progress(60, &format!("hashing {} files", files.len()));
    let names: Vec<String> = repos.iter().map(|(n, _)| n.clone()).collect();
    let mut duplicates = find_duplicates(&files, &names, min_lines);
    if scan_type == ScanType::InterProject {
        // Cross-repository groups are what an inter-project scan is for: rank them first.
        duplicates.sort_by_key(|d| !d.cross_repository);
        for (n, d) in duplicates.iter_mut().enumerate() {
            d.id = format!("dup-{}", n + 1);
        }
    }
    let total_groups = duplicates.len();
    let duplicated_lines: u64 = duplicates.iter().map(|d| d.impact_score).sum();
    duplicates.truncate(max_results);
    r.progress(90, &format!("{total_groups} duplicate groups"));
    let mut result = json!({
        "scanType": scan_type,
        "mode": mode,
        "minLines": min_lines,
        "duplicates": duplicates,
        "suggestions": suggestions(&duplicates),
        "stats": {
            "filesScanned": files.len(),
            "significantLines": files.iter().map(|f| f.lines.len()).sum::<usize>(),
            "duplicateGroups": total_groups,
            "crossRepositoryGroups": duplicates.iter().filter(|d| d.cross_repository).count(),
            "removableLines": duplicated_lines,
            "truncated": total_groups > max_results,
        },
    });
    let repo_json = |(name, path): &(String, PathBuf)| json!({"name": name, "path": path.to_string_lossy()});
    match scan_type {
        ScanType::IntraProject => result["repository"] = repos.first().map(repo_json).unwrap_or(Value::Null),
        ScanType::InterProject => result["repositories"] = repos.iter().map(repo_json).collect(),
    }
    Ok(result)
}

/// One refactoring suggestion per reported group (the top 10).
fn suggestions(dups: &[Duplicate]) -> Vec<Value> {
    dups.iter()
        .take(10)
        .map(|d| {
            let n = d.occurrences.len();
            let (kind, message) = if d.cross_repository {
                (
                    "shared-package",
                    format!("Move the {}-line block repeated across repositories into a shared package", d.lines),
                )
            } else if d.occurrences.iter().all(|o| o.file == d.occurrences[0].file) {
                (
                    "extract-function",
                    format!(
                        "Extract the {}-line block repeated {n} times in {} into a function",
                        d.lines, d.occurrences[0].file
                    ),
                )
            } else {
                (
                    "extract-module",
                    format!("Extract the {}-line block repeated in {n} files into a shared module", d.lines),
                )
            };
            json!({"duplicateId": d.id, "type": kind, "message": message, "estimatedLinesSaved": d.impact_score})
        })
        .collect()
}

/// Writes `duplicate-report.json` and `.md` into `out`; returns their paths.
pub fn write_reports(result: &Value, out: &Path) -> Result<Value, JobError> {
    let json_path = out.join("duplicate-report.json");
    let md_path = out.join("duplicate-report.md");
    let body = serde_json::to_string_pretty(result).or_fail("serialising the report")?;
    fs::write(&json_path, body).or_fail_with(|| format!("writing {}", json_path.display()))?;
    fs::write(&md_path, markdown(result)).or_fail_with(|| format!("writing {}", md_path.display()))?;
    Ok(json!({"json": json_path.to_string_lossy(), "markdown": md_path.to_string_lossy()}))
}

fn markdown(v: &Value) -> String {
    let mut s = String::from("# Duplicate code report\n\n");
    let st = &v["stats"];
    let _ = writeln!(
        s,
        "Scan: {} ({} mode, blocks of {}+ significant lines)  \nFiles scanned: {}  \nDuplicate groups: {} ({} across repositories)  \nLines removable by consolidation: {}\n",
        v["scanType"].as_str().unwrap_or(""),
        v["mode"].as_str().unwrap_or(""),
        v["minLines"],
        st["filesScanned"],
        st["duplicateGroups"],
        st["crossRepositoryGroups"],
        st["removableLines"]
    );
    s.push_str("## Duplicates\n\n| Id | Lines | Occurrences | Impact | Locations |\n|---|---:|---:|---:|---|\n");
    for d in v["duplicates"].as_array().into_iter().flatten() {
        let locs: Vec<String> = d["occurrences"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|o| {
                format!(
                    "{}:{}:{}-{}",
                    o["repository"].as_str().unwrap_or(""),
                    o["file"].as_str().unwrap_or(""),
                    o["startLine"],
                    o["endLine"]
                )
            })
            .collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            d["id"].as_str().unwrap_or(""),
            d["lines"],
            locs.len(),
            d["impactScore"],
            locs.join("<br>").replace('|', "\\|")
        );
    }
    s.push_str("\n## Suggestions\n\n");
    for sug in v["suggestions"].as_array().into_iter().flatten() {
        let _ = writeln!(
            s,
            "- **{}**: {}",
            sug["duplicateId"].as_str().unwrap_or(""),
            sug["message"].as_str().unwrap_or("")
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use alephauto_guest::Silent;
    use alephauto_guest::testing::put;

    const BLOCK: &str = "def load(path):\n    with open(path) as handle:\n        data = handle.read()\n    rows = data.splitlines()\n    cleaned = [r.strip() for r in rows]\n    return [c for c in cleaned if c]\n";

    #[test]
    fn scans_repositories_and_writes_reports() {
        let one = tempfile::tempdir().expect("tempdir");
        let two = tempfile::tempdir().expect("tempdir");
        put(one.path(), "app/io.py", format!("x_value = 1\n{BLOCK}"));
        put(one.path(), "node_modules/dep/io.py", BLOCK);
        put(one.path(), ".gitignore", "ignored/\n");
        put(one.path(), "ignored/io.py", BLOCK);
        put(two.path(), "src/files.py", format!("{BLOCK}y_value = 2\n"));
        let repos = vec![("one".to_owned(), one.path().to_path_buf()), ("two".to_owned(), two.path().to_path_buf())];
        let v = scan(ScanType::InterProject, &repos, Mode::Exact, 5, 50, &Silent).expect("scan");
        assert_eq!(v["stats"]["filesScanned"], 2, "vendored and gitignored copies are skipped: {v}");
        let d = &v["duplicates"][0];
        assert_eq!(d["crossRepository"], true);
        assert_eq!(d["occurrences"][0]["file"], "app/io.py");
        assert_eq!(
            (d["occurrences"][0]["startLine"].as_u64(), d["occurrences"][0]["endLine"].as_u64()),
            (Some(2), Some(7))
        );
        assert_eq!(v["repositories"][1]["name"], "two");
        assert_eq!(v["suggestions"][0]["type"], "shared-package");

        let out = tempfile::tempdir().expect("tempdir");
        let paths = write_reports(&v, out.path()).expect("reports");
        let md = fs::read_to_string(paths["markdown"].as_str().expect("path")).expect("read");
        assert!(md.contains("one:app/io.py:2-7<br>two:src/files.py:1-6"));
        assert!(out.path().join("duplicate-report.json").is_file());
    }
}
