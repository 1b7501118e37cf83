//! claude-health: a fake `.claude` folder with a broken skill-rules file, registered vs
//! present hooks, executable bits set and unset, and a hook-performance log with SLOW and
//! failed lines; the issues, warnings and score follow the spec's formula.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::{Value, json};

use super::{config, p, read, run_ok};
use crate::support::{Server, write_tree};

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn settings(hooks: Value, plugins: Value) -> String {
    serde_json::to_string_pretty(&json!({"hooks": hooks, "enabledPlugins": plugins})).unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn claude_health_finds_issues_and_warnings_and_scores_by_the_formula() {
    let server = Server::start(&config(&["claude-health"]));
    let dir = server.dir.join("home/.claude");
    let hooks = json!({
        "UserPromptSubmit": [{"hooks": [{"type": "command", "command": "$CLAUDE_PROJECT_DIR/.claude/hooks/skill-activation.sh"}]}],
        "PostToolUse": [{"matcher": "Edit|Write", "hooks": [
            {"type": "command", "command": "bash ~/.claude/hooks/post-edit.sh --fast"},
            {"type": "command", "command": "\"~/.claude/hooks/missing-hook.sh\""}
        ]}]
    });
    let plugins =
        json!({"git-helper@market": true, "git-tools@market": true, "lint-js@market": true, "off-thing@market": false});
    // 120 lines: the first 20 (failed) fall outside the last 100 that are read.
    let mut log = String::new();
    for i in 0..20 {
        log.push_str(&format!("2025-01-01T00:00:{i:02} post-edit.sh failed exit=1\n"));
    }
    for i in 0..100 {
        let line = match i {
            10 | 50 => format!("2025-01-02T00:00:{:02} SLOW skill-activation.sh 2300ms\n", i % 60),
            70 => "2025-01-02T00:01:10 post-edit.sh FAILED exit=2\n".to_string(),
            _ => format!("2025-01-02T00:00:{:02} skill-activation.sh ok 12ms\n", i % 60),
        };
        log.push_str(&line);
    }
    write_tree(
        &dir,
        &[
            ("settings.json", &settings(hooks, plugins)),
            ("skills/skill-rules.json", "{ \"rules\": [ broken"),
            ("skills/pdf/SKILL.md", "# PDF\n"),
            ("skills/notes.md", "# notes\n"),
            ("hooks/skill-activation.sh", "#!/bin/sh\nexit 0\n"),
            ("hooks/post-edit.sh", "#!/bin/sh\nexit 0\n"),
            ("hooks/unused.sh", "#!/bin/sh\nexit 0\n"),
            ("agents/reviewer.md", "# reviewer\n"),
            ("agents/planner.md", "# planner\n"),
            ("agents/readme.txt", "not an agent\n"),
            ("commands/ship.md", "# ship\n"),
            ("logs/hook-performance.log", &log),
        ],
    );
    // No scripts/ folder.
    chmod(&dir.join("hooks/skill-activation.sh"), 0o755);
    chmod(&dir.join("hooks/post-edit.sh"), 0o644);
    chmod(&dir.join("hooks/unused.sh"), 0o644);

    let job =
        run_ok(&server, "claude-health", json!({"configDir": p(&dir), "detailed": true}), "health check complete")
            .await;
    let r = &job["result"];
    let c = &r["checks"];
    assert_eq!(
        c["directories"],
        json!({"skills": true, "hooks": true, "agents": true, "commands": true, "scripts": false, "logs": true})
    );
    assert_eq!(c["configuration"], json!({"settings": "valid", "skillRules": "invalid"}));
    let h = &c["hooks"];
    assert_eq!(
        (h["registered"].as_u64(), h["files"].as_u64(), h["unregistered"].as_u64()),
        (Some(3), Some(3), Some(1)),
        "{h}"
    );
    assert_eq!(h["missing"], json!(["missing-hook.sh"]));
    assert_eq!(h["notExecutable"], json!(["post-edit.sh"]), "the executable bit comes from the host: {h}");
    assert_eq!(h["executableUnknown"], json!([]), "{h}");
    assert_eq!(h["registeredHooks"], json!(["missing-hook.sh", "post-edit.sh", "skill-activation.sh"]));
    assert_eq!(h["unregisteredFiles"], json!(["unused.sh"]));
    assert_eq!(c["components"]["skills"], 2);
    assert_eq!(c["components"]["agents"], 2);
    assert_eq!(c["components"]["commands"], 1);
    assert_eq!(c["plugins"]["enabled"], 3);
    assert_eq!(c["plugins"]["duplicateCategories"], json!({"git": ["git-helper@market", "git-tools@market"]}));
    assert_eq!(c["performance"], json!({"logFound": true, "linesAnalyzed": 100, "slowHooks": 2, "failedHooks": 1}));
    assert!(c["environment"]["toolVersions"].as_str().unwrap().contains("unknown"), "never guessed: {c}");

    let a = &r["analysis"];
    let issues = strings(&a["issues"]);
    let warnings = strings(&a["warnings"]);
    let successes = strings(&a["successes"]);
    assert_eq!(issues.len(), 4, "{issues:#?}");
    for needle in ["scripts/", "skill-rules.json", "missing-hook.sh", "1 failed"] {
        assert!(issues.iter().any(|i| i.contains(needle)), "issue about {needle}: {issues:#?}");
    }
    assert_eq!(warnings.len(), 4, "{warnings:#?}");
    for needle in
        ["post-edit.sh is not executable", "1 hook file(s) are not registered", "share categories: git", "2 slow"]
    {
        assert!(warnings.iter().any(|w| w.contains(needle)), "warning {needle}: {warnings:#?}");
    }
    assert_eq!(successes.len(), 10, "5 folders, settings.json, skills, agents, commands, plugins: {successes:#?}");
    // 100 − 20×4 − 5×4 + 10×10/18 = 5.6 → 6.
    assert_eq!(a["healthScore"], 6);
    assert_eq!(r["summary"]["healthScore"], 6);
    assert_eq!(r["summary"]["status"], "critical");
    let recs = r["recommendations"].as_array().unwrap();
    assert_eq!(recs.len(), 8);
    assert_eq!(recs.iter().filter(|x| x["priority"] == "high").count(), 4);
    let chmod_rec = recs.iter().find(|x| x["message"].as_str().unwrap().contains("not executable")).unwrap();
    assert_eq!(chmod_rec["action"], format!("chmod +x {}/hooks/post-edit.sh", p(&dir)));

    let md = read(r["reportPaths"]["markdown"].as_str().unwrap());
    assert!(md.contains("**Score:** 6 / 100 (critical)"), "{md}");
    let report: Value = serde_json::from_str(&read(r["reportPaths"]["json"].as_str().unwrap())).unwrap();
    assert_eq!(report["analysis"], r["analysis"]);

    // Fix the executable bit and the check follows the file system, not a guess.
    chmod(&dir.join("hooks/post-edit.sh"), 0o750);
    let job = run_ok(&server, "claude-health", json!({"configDir": p(&dir)}), "health check complete").await;
    let r = &job["result"];
    assert_eq!(r["checks"]["hooks"]["notExecutable"], json!([]), "{}", r["checks"]["hooks"]);
    assert!(r["checks"]["hooks"].get("registeredHooks").is_none(), "details only when asked");
    assert_eq!(strings(&r["analysis"]["warnings"]).len(), 3);
    assert_eq!(r["analysis"]["healthScore"], 11, "{}", r["analysis"]);
}

#[tokio::test]
async fn claude_health_reports_a_tidy_folder_as_healthy_and_honours_the_switches() {
    let server = Server::start(&config(&["claude-health"]));
    let dir = server.dir.join(".claude");
    let hooks = json!({"Stop": [{"hooks": [{"type": "command", "command": "~/.claude/hooks/stop.sh"}]}]});
    let many: serde_json::Map<String, Value> = (0..25).map(|i| (format!("plugin{i}@m"), json!(true))).collect();
    write_tree(
        &dir,
        &[
            ("settings.json", &settings(hooks, json!({"alpha@m": true}))),
            ("skills/skill-rules.json", "{\"rules\": []}"),
            ("hooks/stop.sh", "#!/bin/sh\n"),
            ("agents/a.md", "# a\n"),
            ("commands/c.md", "# c\n"),
            ("scripts/x.sh", "#!/bin/sh\n"),
            ("logs/hook-performance.log", "stop.sh ok 3ms\nstop.sh ok 4ms\n"),
        ],
    );
    chmod(&dir.join("hooks/stop.sh"), 0o755);

    let job = run_ok(&server, "claude-health", json!({"configDir": p(&dir)}), "health check complete").await;
    let r = &job["result"];
    assert_eq!(r["analysis"]["issues"], json!([]), "{r}");
    assert_eq!(r["analysis"]["warnings"], json!([]), "{r}");
    assert_eq!(r["summary"]["healthScore"], 100);
    assert_eq!(r["summary"]["status"], "healthy");
    assert_eq!(r["recommendations"], json!([]));
    assert_eq!(r["checks"]["performance"]["slowHooks"], 0);

    // Over 20 plugins is a warning; the switches turn checks off.
    write_tree(&dir, &[("settings.json", &serde_json::to_string(&json!({"enabledPlugins": many})).unwrap())]);
    let job = run_ok(&server, "claude-health", json!({"configDir": p(&dir)}), "health check complete").await;
    let w = strings(&job["result"]["analysis"]["warnings"]);
    assert!(w.iter().any(|x| x.contains("25 plugins enabled (over 20)")), "{w:?}");
    let job = run_ok(
        &server,
        "claude-health",
        json!({"configDir": p(&dir), "validateConfig": false, "analyzePlugins": false, "checkPerformance": false}),
        "health check complete",
    )
    .await;
    let checks = job["result"]["checks"].as_object().unwrap();
    for off in ["configuration", "plugins", "performance"] {
        assert!(!checks.contains_key(off), "{off} was switched off: {checks:?}");
    }
    let w = strings(&job["result"]["analysis"]["warnings"]);
    assert_eq!(
        w,
        vec!["1 hook file(s) are not registered in settings.json".to_string()],
        "only the hook check is left"
    );
}
