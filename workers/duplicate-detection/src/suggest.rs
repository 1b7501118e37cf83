//! Consolidation suggestions, one per duplicate group, in the shape the original pipeline
//! gave them: a strategy tier (local utility, shared package, MCP server, or no action), its
//! rationale, where the consolidated code would go, effort, risk, priority and the steps.

use serde::Serialize;

use crate::detect::Duplicate;

/// How a group would be consolidated.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Suggestion {
    /// `cs-` + the group's id.
    pub suggestion_id: String,
    /// The group it is about.
    pub duplicate_id: String,
    /// extract-function (one file), extract-module (one repository) or shared-package (several).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// local_util, shared_package, mcp_server or no_action.
    pub strategy: &'static str,
    /// Why that strategy.
    pub strategy_rationale: String,
    /// One sentence for people.
    pub message: String,
    /// Where the consolidated code would live (a file, or a new package for shared code).
    pub target_location: String,
    /// A name for it, when the group is a named function.
    pub target_name: Option<String>,
    /// trivial, simple, moderate, complex or very_complex.
    pub complexity: &'static str,
    /// minimal, low, medium or high.
    pub migration_risk: &'static str,
    /// Callers outside one repository must change.
    pub breaking_changes: bool,
    /// Lines removed: lines × (occurrences − 1).
    pub estimated_lines_saved: u64,
    /// Files that would change.
    pub affected_files: usize,
    /// Repositories that would change.
    pub affected_repositories: usize,
    /// critical, high, medium or low.
    pub priority: &'static str,
    /// How sure the detector is that the copies are one piece of logic (0–1).
    pub confidence: f64,
    /// What to do, in order.
    pub migration_steps: Vec<String>,
}

fn is_test_path(p: &str) -> bool {
    let p = p.to_ascii_lowercase();
    p.split('/').any(|part| matches!(part, "test" | "tests" | "__tests__" | "spec" | "specs" | "testdata"))
        || p.contains(".test.")
        || p.contains(".spec.")
        || p.contains("_test.")
        || p.rsplit('/').next().is_some_and(|n| n.starts_with("test_"))
}

/// The deepest folder holding every occurrence's file (`""` for the root).
fn common_folder<'a>(files: impl Iterator<Item = &'a str>) -> String {
    let mut common: Option<Vec<&str>> = None;
    for f in files {
        let parts: Vec<&str> = f.split('/').collect();
        let dirs = &parts[..parts.len().saturating_sub(1)];
        common = Some(match common {
            None => dirs.to_vec(),
            Some(c) => c.iter().zip(dirs).take_while(|(a, b)| a == b).map(|(a, _)| *a).collect(),
        });
    }
    common.unwrap_or_default().join("/")
}

fn extension(file: &str) -> &str {
    file.rsplit_once('.').map(|(_, e)| e).filter(|e| !e.contains('/')).unwrap_or("txt")
}

/// The suggestion for one group.
pub fn suggest(d: &Duplicate) -> Suggestion {
    let n = d.occurrences.len();
    let files = d.files();
    let repos = d.repositories();
    let first = &d.occurrences[0];
    let name = d.occurrences.iter().find_map(|o| o.function.clone());
    let renamed = d.similarity == Some("renamed");
    let all_tests = d.occurrences.iter().all(|o| is_test_path(&o.file));
    let (kind, mut message) = if d.cross_repository {
        (
            "shared-package",
            format!("Move the {}-line block repeated across {repos} repositories into a shared package", d.lines),
        )
    } else if files == 1 {
        (
            "extract-function",
            format!("Extract the {}-line block repeated {n} times in {} into a function", d.lines, first.file),
        )
    } else {
        ("extract-module", format!("Extract the {}-line block repeated in {files} files into a shared module", d.lines))
    };
    if renamed {
        message.push_str(" (the copies differ in names or literals: make those parameters)");
    }
    let (strategy, rationale) = if all_tests && !d.cross_repository {
        ("no_action", "Every copy is test code, where spelling a case out is often clearer than sharing it".to_owned())
    } else if repos > 3 {
        (
            "mcp_server",
            format!(
                "Used by {repos} repositories: a service (e.g. an MCP server) serves them all without a shared build"
            ),
        )
    } else if d.cross_repository {
        ("shared_package", format!("Used by {repos} repositories: a versioned package they depend on"))
    } else {
        (
            "local_util",
            format!("Used within one repository ({files} file{}): a local utility", if files == 1 { "" } else { "s" }),
        )
    };
    let ext = extension(&first.file);
    let target_location = match strategy {
        "shared_package" | "mcp_server" => format!("packages/{}", name.as_deref().unwrap_or("shared")),
        _ if files == 1 => first.file.clone(),
        _ => {
            let folder = common_folder(d.occurrences.iter().map(|o| o.file.as_str()));
            let file = format!("shared.{ext}");
            if folder.is_empty() { file } else { format!("{folder}/{file}") }
        }
    };
    let complexity = match (d.lines, files, repos) {
        (_, _, r) if r > 3 => "very_complex",
        (_, _, r) if r > 1 => "complex",
        (l, 1, _) if l < 15 => "trivial",
        (l, f, _) if l < 40 && f <= 3 => "simple",
        (l, f, _) if l < 120 && f <= 8 => "moderate",
        _ => "complex",
    };
    let migration_risk = match (files, repos) {
        (_, r) if r > 1 => "high",
        (1, _) if !renamed => "minimal",
        (f, _) if f <= 3 && !renamed => "low",
        _ => "medium",
    };
    let saved = d.impact_score;
    let priority = match (saved, complexity) {
        _ if strategy == "no_action" => "low",
        (s, "trivial" | "simple") if s >= 60 => "critical",
        (s, "trivial" | "simple" | "moderate") if s >= 25 => "high",
        (s, _) if s >= 10 => "medium",
        _ => "low",
    };
    let what = name.as_deref().map_or_else(|| "the block".to_owned(), |n| format!("`{n}`"));
    let mut steps = vec![format!(
        "Create {what} in {target_location}{}",
        if renamed { ", taking what differs between the copies as parameters" } else { "" }
    )];
    steps.push(format!("Replace the {n} copies with calls to it"));
    if strategy == "shared_package" || strategy == "mcp_server" {
        steps.push("Publish it and add the dependency to each repository".to_owned());
    }
    steps.push("Run each affected test suite".to_owned());
    Suggestion {
        suggestion_id: format!("cs-{}", d.id),
        duplicate_id: d.id.clone(),
        kind,
        strategy,
        strategy_rationale: rationale,
        message,
        target_location,
        target_name: name,
        complexity,
        migration_risk,
        breaking_changes: d.cross_repository,
        estimated_lines_saved: saved,
        affected_files: files,
        affected_repositories: repos,
        priority,
        confidence: match d.similarity {
            Some("identical") => 0.95,
            Some(_) => 0.8,
            None => 0.9,
        },
        migration_steps: steps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Occurrence;

    fn dup(places: &[(&str, &str)], lines: u32, similarity: Option<&'static str>) -> Duplicate {
        Duplicate {
            id: "dup-1".into(),
            lines,
            tokens: 80,
            occurrences: places
                .iter()
                .map(|(r, f)| Occurrence {
                    repository: (*r).into(),
                    file: (*f).into(),
                    start_line: 1,
                    end_line: lines,
                    function: similarity.map(|_| "parseRows".into()),
                })
                .collect(),
            impact_score: u64::from(lines) * (places.len() as u64 - 1),
            cross_repository: places.iter().any(|p| p.0 != places[0].0),
            similarity,
        }
    }

    #[test]
    fn strategy_follows_where_the_copies_are() {
        let one_file = suggest(&dup(&[("r", "src/a.ts"), ("r", "src/a.ts")], 10, None));
        assert_eq!(
            (one_file.kind, one_file.strategy, one_file.complexity),
            ("extract-function", "local_util", "trivial")
        );
        assert_eq!((one_file.target_location.as_str(), one_file.migration_risk), ("src/a.ts", "minimal"));
        let module =
            suggest(&dup(&[("r", "src/x/a.py"), ("r", "src/y/b.py"), ("r", "src/x/c.py")], 30, Some("renamed")));
        assert_eq!((module.kind, module.strategy), ("extract-module", "local_util"));
        assert_eq!(module.target_location, "src/shared.py");
        assert_eq!(module.target_name.as_deref(), Some("parseRows"));
        assert_eq!((module.migration_risk, module.priority, module.estimated_lines_saved), ("medium", "critical", 60));
        assert!(module.message.contains("parameters") && module.migration_steps[0].contains("parameters"));
        let shared = suggest(&dup(&[("a", "lib.rs"), ("b", "src/lib.rs")], 20, None));
        assert_eq!((shared.kind, shared.strategy, shared.migration_risk), ("shared-package", "shared_package", "high"));
        assert!(shared.breaking_changes && shared.target_location == "packages/shared");
        let many = suggest(&dup(&[("a", "x.go"), ("b", "x.go"), ("c", "x.go"), ("d", "x.go")], 20, None));
        assert_eq!((many.strategy, many.complexity), ("mcp_server", "very_complex"));
        let tests = suggest(&dup(&[("r", "tests/a.rs"), ("r", "src/b.test.ts")], 50, None));
        assert_eq!((tests.strategy, tests.priority), ("no_action", "low"));
    }
}
