use super::*;
use alephauto_guest::Silent;
use alephauto_guest::testing::put;

const ALL: Options = Options { detailed: true, validate_config: true, analyze_plugins: true, check_performance: true };

fn healthy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = dir.path();
    for d in REQUIRED_DIRS {
        fs::create_dir_all(r.join(d)).expect("mkdir");
    }
    put(
        r,
        "settings.json",
        r#"{"hooks":{"PreToolUse":[{"matcher":"*","hooks":[{"type":"command","command":"~/.claude/hooks/guard.sh --x"}]}]},"enabledPlugins":{"git-a@m":true,"lint-b@m":true,"off@m":false}}"#,
    );
    put(r, "skills/skill-rules.json", "{}");
    put(r, "skills/writing/SKILL.md", "x");
    put(r, "agents/reviewer.md", "x");
    put(r, "commands/ship.md", "x");
    put(r, "hooks/guard.sh", "#!/bin/sh\n");
    put(r, "logs/hook-performance.log", "guard ok 10ms\n");
    dir
}

#[test]
fn healthy_config_scores_high() {
    let dir = healthy();
    let v = run_checks(dir.path(), &ALL, &|_| Some(true), &Silent);
    assert_eq!(v["analysis"]["issues"], json!([]));
    assert_eq!(v["analysis"]["warnings"], json!([]));
    assert_eq!(v["summary"]["healthScore"], 100);
    assert_eq!(v["summary"]["status"], "healthy");
    assert_eq!(v["checks"]["components"]["skills"], 1, "a skill folder counts, skill-rules.json does not");
    assert_eq!(v["checks"]["plugins"]["enabled"], 2);
    assert_eq!(v["checks"]["hooks"]["registeredHooks"], json!(["guard.sh"]));
}

#[test]
fn broken_config_is_critical_with_recommendations() {
    let dir = healthy();
    let r = dir.path();
    fs::remove_dir_all(r.join("scripts")).expect("rm");
    put(r, "skills/skill-rules.json", "{ nope");
    fs::remove_file(r.join("hooks/guard.sh")).expect("rm");
    put(r, "hooks/stray.sh", "x");
    let log: String = (0..150)
        .map(|i| {
            if i < 50 {
                "old failed\n".to_owned()
            } else if i % 10 == 0 {
                format!("hook SLOW {i}\n")
            } else {
                "ok\n".to_owned()
            }
        })
        .collect();
    put(r, "logs/hook-performance.log", &log);
    let plugins: Vec<String> = (0..31).map(|i| format!("\"p{i}-x@m\":true")).collect();
    put(
        r,
        "settings.json",
        format!(
            r#"{{"hooks":{{"Stop":[{{"hooks":[{{"command":"bash hooks/guard.sh"}}]}}]}},"enabledPlugins":{{{}}}}}"#,
            plugins.join(",")
        ),
    );
    let v = run_checks(r, &ALL, &|_| None, &Silent);
    let issues = v["analysis"]["issues"].as_array().expect("issues").len();
    assert_eq!(issues, 4, "scripts/, bad JSON, missing hook, >30 plugins: {v}");
    assert_eq!(v["checks"]["performance"]["slowHooks"], 10);
    assert_eq!(v["checks"]["performance"]["failedHooks"], 0, "failures older than 100 lines are ignored");
    assert_eq!(v["checks"]["configuration"]["skillRules"], "invalid");
    assert_eq!(v["summary"]["status"], "critical");
    let recs = v["recommendations"].as_array().expect("recs");
    assert!(recs.iter().any(|r| r["priority"] == "high" && r["type"] == "hooks"));
}

#[test]
fn executable_bit_is_reported_not_guessed() {
    let dir = healthy();
    let v = run_checks(dir.path(), &ALL, &|_| None, &Silent);
    assert_eq!(v["checks"]["hooks"]["executableUnknown"], json!(["guard.sh"]));
    let v = run_checks(dir.path(), &ALL, &|_| Some(false), &Silent);
    assert_eq!(v["checks"]["hooks"]["notExecutable"], json!(["guard.sh"]));
    assert_eq!(v["analysis"]["warnings"], json!(["Hook guard.sh is not executable"]));
}

#[test]
fn score_formula() {
    assert_eq!(health_score(0, 0, 10), 100);
    assert_eq!(health_score(1, 1, 8), 83);
    assert_eq!(health_score(6, 0, 0), 0);
}
