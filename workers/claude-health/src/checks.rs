//! The checks themselves, over `std::fs`, and the score.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use alephauto_guest::Reporter;
use serde_json::{Value, json};

/// Which checks to run.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Include per-item details.
    pub detailed: bool,
    /// Check JSON validity.
    pub validate_config: bool,
    /// Inspect plugins.
    pub analyze_plugins: bool,
    /// Read the hook performance log.
    pub check_performance: bool,
}

const REQUIRED_DIRS: &[&str] = &["skills", "hooks", "agents", "commands", "scripts", "logs"];

/// Issues, warnings, successes and recommendations as they are found.
#[derive(Default)]
struct Findings {
    issues: Vec<String>,
    warnings: Vec<String>,
    successes: Vec<String>,
    recommendations: Vec<Value>,
}

impl Findings {
    fn issue(&mut self, kind: &str, message: String, action: &str) {
        self.recommendations.push(json!({"priority": "high", "type": kind, "message": message, "action": action}));
        self.issues.push(message);
    }
    fn warning(&mut self, kind: &str, message: String, action: &str) {
        self.recommendations.push(json!({"priority": "medium", "type": kind, "message": message, "action": action}));
        self.warnings.push(message);
    }
    fn success(&mut self, message: String) {
        self.successes.push(message);
    }
}

/// Reads a JSON file: `None` when absent, `Some(Err)` when it does not parse.
fn read_json(path: &Path) -> Option<Result<Value, String>> {
    let text = fs::read_to_string(path).ok()?;
    Some(serde_json::from_str(&text).map_err(|e| e.to_string()))
}

fn names_in(dir: &Path, pred: impl Fn(&fs::DirEntry) -> bool) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| pred(e))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn is_md(e: &fs::DirEntry) -> bool {
    e.file_type().is_ok_and(|t| t.is_file()) && e.file_name().to_string_lossy().ends_with(".md")
}

/// Hook file names referenced by the `hooks` section of settings (`.../hooks/<name> args`).
fn registered_hooks(settings: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Some(events) = settings.get("hooks").and_then(Value::as_object) else {
        return out;
    };
    for groups in events.values().filter_map(Value::as_array) {
        for hook in groups.iter().filter_map(|g| g.get("hooks")).filter_map(Value::as_array).flatten() {
            let Some(cmd) = hook.get("command").and_then(Value::as_str) else {
                continue;
            };
            for word in cmd.split_whitespace() {
                let word = word.trim_matches(|c| c == '"' || c == '\'');
                if let Some((_, name)) = word.rsplit_once("hooks/").filter(|(_, n)| !n.is_empty() && !n.contains('/')) {
                    out.insert(name.to_owned());
                }
            }
        }
    }
    out
}

/// Runs the checks on `dir`; `exec` tells a file's executable bit (`None`: unknown).
pub fn run_checks(dir: &Path, o: &Options, exec: &dyn Fn(&Path) -> Option<bool>, r: &dyn Reporter) -> Value {
    let mut f = Findings::default();
    let mut checks = serde_json::Map::new();

    r.progress(10, "checking folders");
    let mut dirs = serde_json::Map::new();
    for d in REQUIRED_DIRS {
        let present = dir.join(d).is_dir();
        dirs.insert((*d).into(), present.into());
        if present {
            f.success(format!("{d}/ present"));
        } else {
            f.issue(
                "structure",
                format!("Required folder {d}/ is missing"),
                &format!("mkdir -p {}/{d}", dir.display()),
            );
        }
    }
    checks.insert("directories".into(), Value::Object(dirs));

    let settings = read_json(&dir.join("settings.json"));
    if o.validate_config {
        r.progress(25, "validating configuration");
        let mut cfg = serde_json::Map::new();
        for (name, rel) in [("settings", "settings.json"), ("skillRules", "skills/skill-rules.json")] {
            let state = match read_json(&dir.join(rel)) {
                None => {
                    f.warning("configuration", format!("{rel} not found"), &format!("Create {rel}"));
                    "missing"
                }
                Some(Err(e)) => {
                    f.issue(
                        "configuration",
                        format!("{rel} is not valid JSON: {e}"),
                        &format!("Fix the JSON syntax of {rel}"),
                    );
                    "invalid"
                }
                Some(Ok(_)) => {
                    f.success(format!("{rel} is valid JSON"));
                    "valid"
                }
            };
            cfg.insert(name.into(), state.into());
        }
        checks.insert("configuration".into(), Value::Object(cfg));
    }
    let settings = settings.and_then(Result::ok).unwrap_or(Value::Null);

    r.progress(45, "checking hooks");
    let registered = registered_hooks(&settings);
    let files = names_in(&dir.join("hooks"), |e| e.file_type().is_ok_and(|t| t.is_file()));
    let present: BTreeSet<String> = files.iter().cloned().collect();
    let missing: Vec<&String> = registered.difference(&present).collect();
    let unregistered: Vec<&String> = present.difference(&registered).collect();
    let mut not_exec = Vec::new();
    let mut exec_unknown = Vec::new();
    for name in registered.intersection(&present) {
        match exec(&dir.join("hooks").join(name)) {
            Some(true) => {}
            Some(false) => not_exec.push(name.clone()),
            None => exec_unknown.push(name.clone()),
        }
    }
    for m in &missing {
        f.issue(
            "hooks",
            format!("Hook {m} is registered in settings.json but hooks/{m} is missing"),
            "Restore the hook file or remove its registration",
        );
    }
    for n in &not_exec {
        f.warning("hooks", format!("Hook {n} is not executable"), &format!("chmod +x {}/hooks/{n}", dir.display()));
    }
    if !unregistered.is_empty() {
        f.warning(
            "hooks",
            format!("{} hook file(s) are not registered in settings.json", unregistered.len()),
            "Register them or remove unused hook files",
        );
    }
    if missing.is_empty() && !registered.is_empty() {
        f.success(format!("All {} registered hooks are present", registered.len()));
    }
    let mut hooks = json!({"registered": registered.len(), "files": files.len(), "missing": missing, "notExecutable": not_exec,
        "executableUnknown": exec_unknown, "unregistered": unregistered.len()});
    if o.detailed {
        hooks["registeredHooks"] = json!(registered);
        hooks["hookFiles"] = json!(files);
        hooks["unregisteredFiles"] = json!(unregistered);
    }
    checks.insert("hooks".into(), hooks);

    r.progress(60, "counting components");
    let skills = names_in(&dir.join("skills"), |e| e.file_type().is_ok_and(|t| t.is_dir()) || is_md(e));
    let agents = names_in(&dir.join("agents"), is_md);
    let commands = names_in(&dir.join("commands"), is_md);
    for (kind, list) in [("skills", &skills), ("agents", &agents), ("commands", &commands)] {
        if !list.is_empty() {
            f.success(format!("{} {kind} found", list.len()));
        }
    }
    let mut comps = json!({"skills": skills.len(), "agents": agents.len(), "commands": commands.len()});
    if o.detailed {
        comps["skillNames"] = json!(skills);
        comps["agentNames"] = json!(agents);
        comps["commandNames"] = json!(commands);
    }
    checks.insert("components".into(), comps);

    if o.analyze_plugins {
        r.progress(75, "analysing plugins");
        checks.insert("plugins".into(), plugins(&settings, o.detailed, &mut f));
    }
    if o.check_performance {
        r.progress(85, "reading hook performance log");
        checks.insert("performance".into(), performance(&dir.join("logs/hook-performance.log"), &mut f));
    }
    checks.insert("environment".into(), json!({"toolVersions": "unknown (not visible from the sandbox)"}));
    finish(checks, f)
}

fn plugins(settings: &Value, detailed: bool, f: &mut Findings) -> Value {
    let enabled: Vec<String> = settings
        .get("enabledPlugins")
        .and_then(Value::as_object)
        .map(|m| m.iter().filter(|(_, v)| v.as_bool() == Some(true)).map(|(k, _)| k.clone()).collect())
        .unwrap_or_default();
    let n = enabled.len();
    if n > 30 {
        f.issue("plugins", format!("{n} plugins enabled (over 30)"), "Disable plugins you do not use");
    } else if n > 20 {
        f.warning("plugins", format!("{n} plugins enabled (over 20)"), "Review enabled plugins");
    } else {
        f.success(format!("{n} plugins enabled"));
    }
    // Category: the plugin name (before `@marketplace`) up to its first `-`.
    let mut by_category: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for p in &enabled {
        let name = p.split('@').next().unwrap_or(p);
        let category = name.split('-').next().unwrap_or(name).to_owned();
        by_category.entry(category).or_default().push(p);
    }
    let duplicates: BTreeMap<&String, &Vec<&str>> = by_category.iter().filter(|(_, v)| v.len() > 1).collect();
    if !duplicates.is_empty() {
        let names: Vec<&str> = duplicates.keys().map(|k| k.as_str()).collect();
        f.warning(
            "plugins",
            format!("Several plugins share categories: {}", names.join(", ")),
            "Keep one plugin per category",
        );
    }
    let mut v = json!({"enabled": n, "duplicateCategories": duplicates});
    if detailed {
        v["enabledPlugins"] = json!(enabled);
    }
    v
}

fn performance(log: &Path, f: &mut Findings) -> Value {
    let Ok(text) = fs::read_to_string(log) else {
        return json!({"logFound": false});
    };
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(100)..];
    let slow = tail.iter().filter(|l| l.contains("SLOW")).count();
    let failed = tail.iter().filter(|l| l.to_ascii_lowercase().contains("failed")).count();
    if slow > 0 {
        f.warning(
            "performance",
            format!("{slow} slow hook run(s) in the last {} log lines", tail.len()),
            "Profile the slow hooks",
        );
    }
    if failed > 0 {
        f.issue(
            "performance",
            format!("{failed} failed hook run(s) in the last {} log lines", tail.len()),
            "Inspect logs/hook-performance.log",
        );
    }
    if slow == 0 && failed == 0 {
        f.success("No slow or failed hook runs logged".into());
    }
    json!({"logFound": true, "linesAnalyzed": tail.len(), "slowHooks": slow, "failedHooks": failed})
}

/// 100 − 20 × issues − 5 × warnings + 10 × successes / checks, clamped to 0-100.
pub fn health_score(issues: usize, warnings: usize, successes: usize) -> u8 {
    let checks = (issues + warnings + successes).max(1) as f64;
    let score = 100.0 - 20.0 * issues as f64 - 5.0 * warnings as f64 + 10.0 * successes as f64 / checks;
    score.clamp(0.0, 100.0).round() as u8
}

fn finish(checks: serde_json::Map<String, Value>, f: Findings) -> Value {
    let score = health_score(f.issues.len(), f.warnings.len(), f.successes.len());
    let (status, message) = match score {
        90.. => ("healthy", "Configuration is healthy"),
        70.. => ("warning", "Configuration works but needs attention"),
        _ => ("critical", "Configuration has serious problems"),
    };
    json!({
        "checks": checks,
        "analysis": {"issues": f.issues, "warnings": f.warnings, "successes": f.successes, "healthScore": score},
        "recommendations": f.recommendations,
        "summary": {"healthScore": score, "status": status, "message": message},
    })
}

#[cfg(test)]
mod tests;
