//! The eight pipelines, driven the way a user drives them: each real component runs
//! through the `alephauto serve` binary over HTTP against fixture trees built here
//! (git repositories, READMEs, `.gitignore` files, junk, duplicated code, test suites,
//! a fake `.claude` folder), and the outcome is checked on disk and in the result.
//!
//! One submodule per pipeline; this root holds the shared helpers and the checks that
//! span all eight (listing and schemas, bad parameters, paths outside the roots).

mod activity;
mod cleanup;
mod duplicates;
mod gitignore;
mod health;
mod refactor;
mod repomix;
mod schema;

use std::path::Path;

use serde_json::{Value, json};

use crate::support::{Server, pipeline};

/// Every pipeline id with its component stem.
pub const ALL: &[(&str, &str)] = &[
    ("claude-health", "claude_health"),
    ("duplicate-detection", "duplicate_detection"),
    ("git-activity", "git_activity"),
    ("gitignore-manager", "gitignore_manager"),
    ("repo-cleanup", "repo_cleanup"),
    ("repomix", "repomix"),
    ("schema-enhancement", "schema_enhancement"),
    ("test-refactor", "test_refactor"),
];

/// Config for the named pipelines, each allowed the test's temp dir only.
pub fn config(ids: &[&str]) -> String {
    ids.iter()
        .map(|id| {
            let stem = ALL.iter().find(|(i, _)| i == id).unwrap_or_else(|| panic!("unknown pipeline {id}")).1;
            pipeline(id, stem, "roots = [\"ROOT\"]")
        })
        .collect()
}

/// A path as a JSON string parameter.
pub fn p(path: &Path) -> String {
    path.display().to_string()
}

/// Runs `pipeline` to its end, asserts it completed, and checks that the worker's own
/// last progress message (not the runtime's) is what the job ended with.
pub async fn run_ok(server: &Server, pipeline: &str, params: Value, final_progress: &str) -> Value {
    let job = server.run(pipeline, params).await;
    assert_eq!(job["status"], "completed", "{pipeline}: {job}\nlog:\n{}", server.log());
    assert_eq!(job["progress"]["percent"], 100, "{job}");
    let message = job["progress"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(final_progress),
        "{pipeline}: the worker's final progress message should contain {final_progress:?}, got {message:?}"
    );
    job
}

/// Reads a file the test expects to exist.
pub fn read(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Every file under `root` (relative, sorted), `.git` included, symlinks listed not followed.
pub fn snapshot(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().map(Result::unwrap) {
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let ft = entry.file_type().unwrap();
            if ft.is_symlink() {
                out.push((rel, std::fs::read_link(&path).unwrap().display().to_string().into_bytes()));
            } else if ft.is_dir() {
                out.push((format!("{rel}/"), Vec::new()));
                stack.push(path);
            } else {
                out.push((rel, std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn the_pipeline_list_has_all_eight_with_their_parameter_schemas() {
    let ids: Vec<&str> = ALL.iter().map(|(id, _)| *id).collect();
    let server = Server::start(&config(&ids));
    // Listing never waits long on initialisation: ask until every worker is ready (a cold
    // compile of eight components takes longer than the listing's grace).
    let started = std::time::Instant::now();
    let list = loop {
        let (code, list) = server.get("/api/pipelines").await;
        assert_eq!(code, 200, "{list}");
        let states: Vec<&str> = list["pipelines"]
            .as_array()
            .expect("pipelines array")
            .iter()
            .map(|p| p["state"].as_str().unwrap_or(""))
            .collect();
        assert!(!states.contains(&"failed"), "{list}");
        if states.iter().all(|s| *s == "ready") {
            break list;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(120), "workers never became ready: {list}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let pipelines = list["pipelines"].as_array().expect("pipelines array");
    let mut listed: Vec<&str> = pipelines.iter().filter_map(|p| p["id"].as_str()).collect();
    listed.sort();
    assert_eq!(listed, ids);

    // (pipeline, every property, path marks by JSON pointer inside paramsSchema, required)
    // (pipeline, properties, path marks (pointer, access), required)
    type Expected<'a> = (&'a str, &'a [&'a str], &'a [(&'a str, &'a str)], &'a [&'a str]);
    let expected: &[Expected] = &[
        (
            "claude-health",
            &["analyzePlugins", "checkPerformance", "configDir", "detailed", "validateConfig"],
            &[("/properties/configDir", "read")],
            &[],
        ),
        (
            "duplicate-detection",
            &["limit", "minLines", "minTokens", "mode", "offset", "repositories", "repositoryPath", "scanType"],
            &[("/properties/repositoryPath", "read"), ("/properties/repositories/items/properties/path", "read")],
            &[],
        ),
        (
            "git-activity",
            &[
                "baseDir",
                "days",
                "generateVisualizations",
                "maxDepth",
                "outputFormat",
                "reportType",
                "repositories",
                "sinceDate",
                "untilDate",
            ],
            &[("/properties/baseDir", "read"), ("/properties/repositories/items", "read")],
            &[],
        ),
        (
            "gitignore-manager",
            &["baseDir", "dryRun", "excludeDirs", "gitignoreEntry", "maxDepth", "repositories"],
            &[("/properties/baseDir", "write"), ("/properties/repositories/items", "write")],
            &[],
        ),
        ("repo-cleanup", &["dryRun", "targetDir"], &[("/properties/targetDir", "write")], &["targetDir"]),
        (
            "repomix",
            &[
                "compress",
                "ignore",
                "maxFileSize",
                "securityCheck",
                "sourceDir",
                "style",
                "topFilesLength",
                "useDefaultPatterns",
                "useDotIgnore",
                "useGitignore",
            ],
            &[("/properties/sourceDir", "read")],
            &["sourceDir"],
        ),
        (
            "schema-enhancement",
            &["baseDir", "context", "dryRun", "excludeDirs", "maxDepth", "readmePath", "repositoryPath"],
            &[
                ("/properties/readmePath", "write"),
                ("/properties/baseDir", "write"),
                ("/properties/repositoryPath", "read"),
            ],
            &[],
        ),
        (
            "test-refactor",
            &["dryRun", "e2eDir", "framework", "repositoryPath", "testsDir", "utilsDir"],
            &[("/properties/repositoryPath", "write")],
            &["repositoryPath"],
        ),
    ];
    for (id, props, marks, required) in expected {
        let entry = pipelines.iter().find(|p| p["id"] == *id).unwrap();
        assert_eq!(entry["workerLoaded"], true, "{entry}");
        assert_eq!(entry["status"], "idle", "{entry}");
        assert!(entry["version"].as_str().is_some_and(|v| !v.is_empty()), "{entry}");
        assert!(entry["description"].as_str().is_some_and(|d| d.len() > 20), "{entry}");
        let schema = &entry["paramsSchema"];
        let mut names: Vec<&str> = schema["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{id}: {schema}"))
            .keys()
            .map(String::as_str)
            .collect();
        names.sort();
        assert_eq!(names, *props, "{id} parameters");
        assert_eq!(schema["additionalProperties"], false, "{id}: unknown parameters must be refused");
        for (pointer, access) in *marks {
            let mark = schema.pointer(pointer).and_then(|n| n.get("x-alephauto-path"));
            assert_eq!(mark, Some(&json!(access)), "{id}{pointer}");
        }
        // No other property is a path: unmarked strings are never granted.
        let all_marks = schema.to_string().matches("x-alephauto-path").count();
        assert_eq!(all_marks, marks.len(), "{id}: {schema}");
        let mut req: Vec<&str> =
            schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        req.sort();
        assert_eq!(req, *required, "{id} required");
    }
    let cleanup = pipelines.iter().find(|p| p["id"] == "repo-cleanup").unwrap();
    assert_eq!(
        cleanup["paramsSchema"]["properties"]["dryRun"]["default"], true,
        "repo-cleanup must default to a dry run"
    );
}

#[tokio::test]
async fn bad_parameters_and_paths_outside_the_roots_get_400_naming_the_field() {
    let ids: Vec<&str> = ALL.iter().map(|(id, _)| *id).collect();
    let server = Server::start(&config(&ids));
    let inside = server.dir.join("inside");
    std::fs::create_dir_all(&inside).unwrap();
    std::fs::write(inside.join("README.md"), "# Inside\n").unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("README.md"), "# Outside\n").unwrap();
    let (i, o) = (p(&inside), p(outside.path()));
    let o_readme = p(&outside.path().join("README.md"));

    // (pipeline, parameters, a word the error must contain)
    let bad: Vec<(&str, Value, &str)> = vec![
        ("duplicate-detection", json!({"scanType": "sideways", "repositoryPath": i}), "scanType"),
        (
            "duplicate-detection",
            json!({"scanType": "inter-project", "repositories": [{"path": i}, {"path": o}]}),
            "repositories/1/path",
        ),
        ("schema-enhancement", json!({"readmePath": 42}), "readmePath"),
        ("schema-enhancement", json!({}), "readmePath"),
        ("schema-enhancement", json!({"readmePath": o_readme}), "readmePath"),
        ("schema-enhancement", json!({"baseDir": o}), "baseDir"),
        ("schema-enhancement", json!({"readmePath": p(&inside.join("README.md")), "baseDir": i}), "readmePath"),
        ("duplicate-detection", json!({"repositoryPath": i, "limit": 5000}), "limit"),
        ("git-activity", json!({"outputFormat": "pdf", "repositories": [i]}), "outputFormat"),
        ("git-activity", json!({"repositories": [i, o]}), "repositories/1"),
        ("gitignore-manager", json!({"baseDir": i, "maxDepth": "deep"}), "maxDepth"),
        ("gitignore-manager", json!({"baseDir": o}), "baseDir"),
        ("repomix", json!({"sourceDir": i, "sourceDirectory": i}), "sourceDirectory"),
        ("repomix", json!({"sourceDir": o}), "sourceDir"),
        ("claude-health", json!({"configDir": i, "detailed": "yes"}), "detailed"),
        // The default `~/.claude` is not inside this pipeline's roots.
        ("claude-health", json!({}), "configDir"),
        ("repo-cleanup", json!({"targetDir": i, "dryRun": "false"}), "dryRun"),
        ("repo-cleanup", json!({"targetDir": o, "dryRun": false}), "targetDir"),
        ("repo-cleanup", json!({"targetDir": "relative/dir"}), "targetDir"),
        ("test-refactor", json!({"repositoryPath": i, "framework": "mocha"}), "framework"),
        ("test-refactor", json!({"repositoryPath": o}), "repositoryPath"),
    ];
    for (pipeline, params, field) in bad {
        let (status, body) = server.trigger(pipeline, params.clone()).await;
        assert_eq!(status, 400, "{pipeline} {params}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(field), "{pipeline} {params}: error should name {field}: {body}");
        if params.to_string().contains(&o) {
            assert!(error.contains("outside"), "{pipeline}: {body}");
        }
    }
    let (_, jobs) = server.get("/api/jobs").await;
    assert_eq!(jobs["total"], 0, "no bad trigger may queue a job: {jobs}");
    // The outside tree was never touched.
    assert_eq!(read(outside.path().join("README.md")), "# Outside\n");
}

#[tokio::test]
async fn inputs_only_the_worker_can_judge_fail_the_job_as_invalid_input_naming_the_field() {
    let server = Server::start(&config(&["duplicate-detection", "git-activity", "gitignore-manager", "test-refactor"]));
    let dir = server.dir.join("repo");
    std::fs::create_dir_all(&dir).unwrap();
    let d = p(&dir);
    // What the worker's schema can say is refused at trigger (no job is queued), naming the field.
    let refused: Vec<(&str, Value, &str)> = vec![
        ("duplicate-detection", json!({"scanType": "inter-project", "repositories": [{"path": d}]}), "repositories"),
        ("duplicate-detection", json!({"scanType": "intra-project"}), "repositoryPath"),
        ("git-activity", json!({"reportType": "custom", "repositories": [d]}), "days"),
        ("gitignore-manager", json!({"dryRun": true}), "repositories"),
        ("test-refactor", json!({"repositoryPath": d, "utilsDir": "../escape"}), "utilsDir"),
    ];
    for (pipeline, params, field) in refused {
        let (code, body) = server.trigger(pipeline, params.clone()).await;
        assert_eq!(code, 400, "{pipeline} {params}: {body}");
        assert_eq!(body["code"], "INVALID_PARAMETERS", "{body}");
        assert!(body["error"].as_str().unwrap_or_default().contains(field), "{pipeline}: {body}");
    }
    let (_, jobs) = server.get("/api/jobs").await;
    assert_eq!(jobs["total"], 0, "no refused trigger may queue a job: {jobs}");
    // A calendar date that does not exist passes the schema's YYYY-MM-DD pattern; the worker judges it.
    let params = json!({"reportType": "custom", "sinceDate": "2024-02-30", "repositories": [d]});
    let job = server.run("git-activity", params.clone()).await;
    assert_eq!(job["status"], "failed", "{params}: {job}");
    assert_eq!(job["error"]["code"], "INVALID_INPUT", "{job}");
    assert_eq!(job["attempt"], 1, "invalid input is not retried: {job}");
    let msg = job["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("sinceDate"), "{msg}");
    assert!(!server.dir.join("escape").exists());
}
