//! The API contract: the served OpenAPI document passes `openapi-spec-validator`, a
//! bounded `schemathesis` run with every check finds nothing against a server set up
//! like a default install (the eight real workers, an API key, roots narrowed to a
//! temp folder so generated triggers cannot touch anything else), every error on every
//! route and method is the JSON error body, and what a worker would refuse is refused
//! at trigger. The Python tools come from `scripts/setup.sh` (a venv under
//! `target/contract/venv`); without them these tests fail and say so.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::pipelines::ALL;
use crate::support::{Server, pipeline};

const KEY: &str = "contract-test-key";

/// A server with the eight real workers, each granted only the test's temp folder, and an API key.
fn default_install() -> Server {
    let pipelines: String = ALL.iter().map(|(id, stem)| pipeline(id, stem, "roots = [\"ROOT/granted\"]")).collect();
    let server = Server::start_with(&pipelines, &format!("[server]\napi_key = {KEY:?}\n"));
    std::fs::create_dir_all(server.dir.join("granted")).expect("granted folder");
    server
}

/// A tool installed by `scripts/setup.sh`; panics with the fix when it is missing.
fn tool(name: &str) -> PathBuf {
    let venv = std::env::var_os("ALEPHAUTO_CONTRACT_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/contract/venv")));
    let path = venv.join("bin").join(name);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/setup.sh (it installs openapi-spec-validator and schemathesis into {})",
        path.display(),
        venv.display()
    );
    path
}

/// Runs `cmd`, killing it after `limit`; returns (success, stdout + stderr).
fn run_bounded(mut cmd: Command, limit: Duration) -> (bool, String) {
    let out_path = tempfile::NamedTempFile::new().expect("temp file");
    let file = out_path.reopen().expect("reopen");
    let mut child = cmd
        .stdout(Stdio::from(file.try_clone().expect("clone")))
        .stderr(Stdio::from(file))
        .spawn()
        .expect("start tool");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break Some(s);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = std::fs::read_to_string(out_path.path()).unwrap_or_default();
    match status {
        Some(s) => (s.success(), output),
        None => (false, format!("killed after {limit:?}\n{output}")),
    }
}

async fn document(server: &Server) -> Value {
    let (code, doc) = server.get("/api/openapi.json").await;
    assert_eq!(code, 200);
    doc
}

#[tokio::test]
async fn the_openapi_document_validates_and_describes_every_operation() {
    let server = default_install();
    let doc = document(&server).await;
    let path = server.dir.join("openapi.json");
    std::fs::write(&path, doc.to_string()).expect("write document");
    let mut cmd = Command::new(tool("openapi-spec-validator"));
    cmd.arg(&path);
    let (ok, output) = run_bounded(cmd, Duration::from_secs(60));
    assert!(ok, "openapi-spec-validator refused the served document:\n{output}");

    let mut ids = std::collections::HashSet::new();
    for (route, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let id = op["operationId"].as_str().expect("operationId");
            assert!(ids.insert(id.to_string()), "operationId {id} used twice");
            if method == "post" || route == "/ws" {
                let security = op["security"].as_array().map(Vec::len).unwrap_or(0);
                assert!(security >= 2, "{method} {route} must name the X-API-Key and bearer schemes: {op}");
                for code in ["401", "403", "405"] {
                    assert!(op["responses"][code].is_object(), "{method} {route} documents {code}");
                }
            }
            if method == "post" {
                for code in ["413", "415", "429"] {
                    assert!(op["responses"][code].is_object(), "{method} {route} documents {code}");
                }
            }
            for (code, response) in op["responses"].as_object().expect("responses") {
                if let Some(schema) = response.pointer("/content/application~1json/schema") {
                    assert!(schema["$ref"].is_string(), "{method} {route} {code}: a named, typed schema, got {schema}");
                }
                if code.starts_with('4') {
                    assert_eq!(
                        response.pointer("/content/application~1json/schema/$ref"),
                        Some(&json!("#/components/schemas/ErrorBody")),
                        "{method} {route} {code}"
                    );
                }
            }
        }
    }
    let param = |route: &str, name: &str| -> Value {
        doc["paths"][route]["get"]["parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name).cloned())
            .unwrap_or_else(|| panic!("{route} documents {name}"))
    };
    assert_eq!(param("/api/jobs", "limit")["schema"]["minimum"], 1);
    assert_eq!(param("/api/jobs", "limit")["schema"]["maximum"], 1000);
    assert_eq!(param("/api/pipelines/{id}/jobs", "limit")["schema"]["maximum"], 100);
    assert_eq!(param("/api/jobs", "offset")["schema"]["minimum"], 0);
    let ids: Vec<&str> = ALL.iter().map(|(id, _)| *id).collect();
    assert_eq!(param("/api/pipelines/{id}/jobs", "id")["schema"]["enum"], json!(ids));
    let list = &doc["paths"]["/api/jobs"]["get"]["responses"]["200"];
    assert_eq!(list.pointer("/content/application~1json/schema/$ref"), Some(&json!("#/components/schemas/JobsPage")));
    assert_eq!(
        doc["components"]["schemas"]["JobsPage"]["properties"]["jobs"]["items"]["$ref"],
        "#/components/schemas/Job"
    );
}

#[tokio::test]
async fn schemathesis_with_every_check_finds_nothing() {
    let server = default_install();
    // Something a fuzzed trigger could damage if the grants let it: it must survive the run.
    let granted = server.dir.join("granted");
    std::fs::write(granted.join("keep.txt"), "keep").expect("write sentinel");
    let outside = server.dir.join("outside.txt");
    std::fs::write(&outside, "keep").expect("write sentinel");

    // Trigger parameters (and a retry's, re-checked) are validated against the worker's schema
    // and against the filesystem (a path must exist inside the granted roots), which JSON Schema
    // cannot say: a schema-valid trigger may get 400 naming the path. The same holds for an
    // inventory's places (they must exist inside a pipeline's roots), a run's inventory and path
    // parameter, and a schedule's cron expression, time zone and parameters (checked by croner,
    // the IANA database and the worker's schema). Every other check and operation keeps
    // schemathesis's defaults.
    let config = server.dir.join("schemathesis.toml");
    let relaxed = "checks.positive_data_acceptance.expected-statuses = [\"2xx\", \"400\", \"401\", \"403\", \"404\", \"409\", \"429\"]";
    // A schema-valid upload is any bytes: only a real component is accepted, so random ones
    // are refused (422), and a digest refused repeatedly cools down (429).
    let deploy = "checks.positive_data_acceptance.expected-statuses = [\"2xx\", \"400\", \"422\", \"429\"]";
    std::fs::write(
        &config,
        format!(
            "[[operations]]\ninclude-operation-id = \"triggerPipeline\"\n{relaxed}\n\n\
             [[operations]]\ninclude-operation-id = \"retryJob\"\n{relaxed}\n\n\
             [[operations]]\ninclude-operation-id = \"rollbackPipeline\"\n{relaxed}\n\n\
             [[operations]]\ninclude-operation-id = \"deployComponent\"\n{deploy}\n\n\
             [[operations]]\ninclude-operation-id = \"createInventory\"\n{relaxed}\n\n\
             [[operations]]\ninclude-operation-id = \"startRun\"\n{relaxed}\n\n\
             [[operations]]\ninclude-operation-id = \"createSchedule\"\n{relaxed}\n\n\
             [[operations]]\ninclude-operation-id = \"replaceSchedule\"\n{relaxed}\n"
        ),
    )
    .expect("write config");
    // The component upload takes `application/wasm`, which schemathesis has no serializer
    // for: send its generated bytes as it would `application/octet-stream`.
    std::fs::write(
        server.dir.join("alephauto_hooks.py"),
        "import schemathesis\nschemathesis.serializer.alias(\"application/wasm\", \"application/octet-stream\")\n",
    )
    .expect("write hooks");
    // Load (and on a cold cache, compile) every worker before the clock of each request starts.
    // The listing starts the loads and answers without waiting for them: ask until all are ready.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(240);
    loop {
        let (code, listing) = server.get("/api/pipelines").await;
        assert_eq!(code, 200, "{listing}");
        let pipelines = listing["pipelines"].as_array().cloned().unwrap_or_default();
        assert!(pipelines.iter().all(|p| p["state"] != "failed"), "{listing}");
        if pipelines.iter().all(|p| p["state"] == "ready") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "workers still loading: {listing}");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let mut cmd = Command::new(tool("schemathesis"));
    cmd.arg("--config-file")
        .arg(&config)
        .args(["--no-color", "run"])
        .arg(format!("{}/api/openapi.json", server.url))
        .args(["--checks", "all", "--seed", "20261203", "--max-examples", "40", "--workers", "1"])
        .args(["--generation-database", "none", "--request-timeout", "60", "--suppress-health-check", "all"])
        // The WebSocket upgrade is not HTTP request/response; its contract is checked below and in ws tests.
        .args(["--exclude-path", "/ws"])
        .args(["-H", &format!("X-API-Key: {KEY}")])
        .current_dir(&server.dir)
        .env("SCHEMATHESIS_HOOKS", "alephauto_hooks")
        .env("PYTHONPATH", &server.dir)
        .env("NO_COLOR", "1");
    let started = Instant::now();
    // Off the test's runtime, so its pooled connections see the server's idle close meanwhile.
    let (ok, output) = tokio::task::spawn_blocking(move || run_bounded(cmd, Duration::from_secs(240)))
        .await
        .expect("schemathesis runner");
    eprintln!("schemathesis ran in {:.1} s", started.elapsed().as_secs_f64());
    assert!(ok, "schemathesis found problems:\n{output}\nserver log tail:\n{}", tail(&server.log(), 40));
    assert!(output.contains("Test cases:"), "schemathesis did not run any test:\n{output}");
    assert_eq!(std::fs::read_to_string(granted.join("keep.txt")).ok().as_deref(), Some("keep"));
    assert_eq!(std::fs::read_to_string(&outside).ok().as_deref(), Some("keep"));
    let (code, _) = server.get("/health").await;
    assert_eq!(code, 200);
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Sends a raw request; returns status, headers and the body parsed as JSON (Null if not JSON).
async fn send(
    server: &Server,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = server.http.request(method, format!("{}{path}", server.url));
    if let Some(k) = key {
        req = req.header("x-api-key", k);
    }
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b.to_string());
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap_or_default();
    (status, headers, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn assert_error_body(
    what: &str,
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &Value,
    want_status: u16,
    want_code: &str,
) {
    assert_eq!(status, want_status, "{what}: {body}");
    let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    assert!(ct.starts_with("application/json"), "{what}: content-type {ct:?}");
    assert_eq!(body["code"], want_code, "{what}: {body}");
    assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{what}: a message: {body}");
    assert_eq!(body.as_object().map(|o| o.len()), Some(2), "{what}: exactly error and code: {body}");
}

#[tokio::test]
async fn every_error_on_every_route_and_method_is_the_json_error_body() {
    let server = default_install();
    let doc = document(&server).await;
    // Every documented route with every method it does not serve: 405, Allow, the JSON body,
    // with or without the key (a key being set must not turn 405 into 401).
    for (route, item) in doc["paths"].as_object().expect("paths") {
        let path = route.replace("{id}", if route.starts_with("/api/jobs") { "some-job" } else { "repomix" });
        let served: Vec<String> = item.as_object().unwrap().keys().map(|m| m.to_uppercase()).collect();
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            if served.iter().any(|m| m == method) {
                continue;
            }
            for key in [None, Some(KEY)] {
                let (status, headers, body) = send(&server, method, &path, key, None).await;
                assert_error_body(
                    &format!("{method} {path} key={key:?}"),
                    status,
                    &headers,
                    &body,
                    405,
                    "METHOD_NOT_ALLOWED",
                );
                let allow = headers.get("allow").and_then(|v| v.to_str().ok()).unwrap_or("");
                for m in &served {
                    assert!(allow.contains(m.as_str()), "{method} {path}: Allow {allow:?} names {m}");
                }
            }
        }
    }

    // (method, path, key, body, status, code)
    type Case<'a> = (&'a str, &'a str, Option<&'a str>, Option<&'a str>, u16, &'a str);
    let cases: &[Case] = &[
        ("GET", "/api/jobs/%FF%FE", None, None, 400, "INVALID_PATH"),
        ("POST", "/api/jobs/%C3%28/cancel", Some(KEY), Some("{}"), 400, "INVALID_PATH"),
        ("POST", "/api/pipelines/%FF/trigger", Some(KEY), Some("{}"), 400, "INVALID_PATH"),
        ("GET", "/api/jobs/..%2Fetc", None, None, 400, "INVALID_JOB_ID"),
        ("GET", "/api/jobs?limit=0", None, None, 400, "INVALID_QUERY"),
        ("GET", "/api/jobs?limit=1001", None, None, 400, "INVALID_QUERY"),
        ("GET", "/api/jobs?offset=-1", None, None, 400, "INVALID_QUERY"),
        ("GET", "/api/jobs?status=", None, None, 400, "INVALID_QUERY"),
        ("GET", "/api/jobs?sort=asc", None, None, 400, "INVALID_QUERY"),
        ("GET", "/api/jobs?limit=%FF", None, None, 400, "INVALID_QUERY"),
        ("GET", "/api/jobs?limit=1&limit=2", None, None, 400, "INVALID_QUERY"),
        ("GET", "/api/pipelines/repomix/jobs?limit=101", None, None, 400, "INVALID_QUERY"),
        ("GET", "/api/pipelines/ghost/jobs", None, None, 404, "UNKNOWN_PIPELINE"),
        ("GET", "/api/nope", None, None, 404, "NOT_FOUND"),
        ("POST", "/api/nope", None, None, 404, "NOT_FOUND"),
        ("POST", "/api/pipelines/repomix/trigger", None, Some("{}"), 401, "UNAUTHORIZED"),
        ("POST", "/api/pipelines/repomix/trigger", Some("wrong"), Some("{}"), 403, "FORBIDDEN"),
        ("POST", "/api/pipelines/repomix/trigger", Some(KEY), Some("{\"parameters\":"), 400, "INVALID_JSON"),
        ("POST", "/api/pipelines/repomix/trigger", Some(KEY), Some("[]"), 400, "INVALID_BODY"),
        ("POST", "/api/pipelines/repomix/trigger", Some(KEY), Some("{\"parameters\":null}"), 400, "INVALID_PARAMETERS"),
        ("POST", "/api/pipelines/repomix/trigger", Some(KEY), Some("{\"parameters\":7}"), 400, "INVALID_PARAMETERS"),
        ("POST", "/api/pipelines/ghost/trigger", Some(KEY), Some("{}"), 400, "UNKNOWN_PIPELINE"),
        // The pipeline is looked up before the body is read.
        ("POST", "/api/pipelines/ghost/trigger", Some(KEY), Some("{\"parameters\":"), 400, "UNKNOWN_PIPELINE"),
        ("POST", "/api/jobs/ghost-1/cancel", Some(KEY), Some("{}"), 404, "JOB_NOT_FOUND"),
        ("POST", "/api/jobs/ghost-1/cancel", Some(KEY), None, 415, "UNSUPPORTED_MEDIA_TYPE"),
        ("GET", "/ws", None, None, 401, "UNAUTHORIZED"),
        ("GET", "/ws", Some(KEY), None, 400, "BAD_REQUEST"),
    ];
    for &(method, path, key, body, want, code) in cases {
        let (status, headers, json) = send(&server, method, path, key, body).await;
        assert_error_body(&format!("{method} {path}"), status, &headers, &json, want, code);
    }
    let (_, _, body) =
        send(&server, "POST", "/api/pipelines/repomix/trigger", Some(KEY), Some("{\"parameters\":null}")).await;
    assert!(body["error"].as_str().unwrap().contains("'parameters'"), "names the field: {body}");

    // An oversized body: 413 with the JSON body.
    let big = format!("{{\"parameters\":{{\"x\":\"{}\"}}}}", "a".repeat(2 * 1024 * 1024));
    let (status, headers, json) = send(&server, "POST", "/api/pipelines/repomix/trigger", Some(KEY), Some(&big)).await;
    assert_error_body("oversized body", status, &headers, &json, 413, "PAYLOAD_TOO_LARGE");
}

#[tokio::test]
async fn what_a_worker_would_refuse_is_refused_at_trigger() {
    let server = default_install();
    let granted = server.dir.join("granted");
    let g = granted.display().to_string();
    // Each of these used to be accepted and fail later as INVALID_INPUT.
    let refused: &[(&str, Value, &str)] = &[
        ("duplicate-detection", json!({}), "repositoryPath"),
        ("duplicate-detection", json!({"scanType": "intra-project"}), "repositoryPath"),
        ("duplicate-detection", json!({"scanType": "inter-project", "repositories": [{"path": g}]}), "repositories"),
        ("duplicate-detection", json!({"scanType": "inter-project"}), "repositories"),
        ("git-activity", json!({}), "repositories"),
        ("git-activity", json!({"repositories": []}), "repositories"),
        ("git-activity", json!({"baseDir": g, "reportType": "custom"}), "days"),
        ("git-activity", json!({"baseDir": g, "sinceDate": "2024-13-01"}), "sinceDate"),
        ("git-activity", json!({"baseDir": g, "untilDate": "yesterday"}), "untilDate"),
        ("gitignore-manager", json!({}), "repositories"),
        ("gitignore-manager", json!({"baseDir": g, "gitignoreEntry": "  "}), "gitignoreEntry"),
        ("gitignore-manager", json!({"baseDir": g, "gitignoreEntry": "# comment"}), "gitignoreEntry"),
        ("gitignore-manager", json!({"baseDir": g, "gitignoreEntry": "a\nb"}), "gitignoreEntry"),
        ("test-refactor", json!({"repositoryPath": g, "testsDir": "../elsewhere"}), "testsDir"),
        ("test-refactor", json!({"repositoryPath": g, "utilsDir": "/etc"}), "utilsDir"),
        ("test-refactor", json!({"repositoryPath": g, "e2eDir": "e2e/../../x"}), "e2eDir"),
        ("test-refactor", json!({"repositoryPath": g, "testsDir": ""}), "testsDir"),
    ];
    for (id, params, field) in refused {
        let body = json!({"parameters": params}).to_string();
        let (code, _, body) =
            send(&server, "POST", &format!("/api/pipelines/{id}/trigger"), Some(KEY), Some(&body)).await;
        assert_eq!(code, 400, "{id} {params}: {body}");
        assert_eq!(body["code"], "INVALID_PARAMETERS", "{id} {params}: {body}");
        assert!(body["error"].as_str().unwrap_or("").contains(field), "{id} {params}: names {field}: {body}");
    }
    // What the workers accept still passes the trigger (and, here, runs to completion).
    let accepted: &[(&str, Value)] = &[
        ("duplicate-detection", json!({"repositoryPath": g})),
        (
            "git-activity",
            json!({"baseDir": g, "reportType": "custom", "sinceDate": "2024-01-01", "untilDate": "2024-02-29"}),
        ),
        ("git-activity", json!({"baseDir": g, "reportType": "custom", "days": 3})),
        ("gitignore-manager", json!({"baseDir": g, "gitignoreEntry": " dist/ \n", "dryRun": true})),
        (
            "test-refactor",
            json!({"repositoryPath": g, "testsDir": "./tests", "utilsDir": "tests/a..b", "dryRun": true}),
        ),
    ];
    for (id, params) in accepted {
        let body = json!({"parameters": params}).to_string();
        let (code, _, body) =
            send(&server, "POST", &format!("/api/pipelines/{id}/trigger"), Some(KEY), Some(&body)).await;
        assert_eq!(code, 201, "{id} {params}: {body}");
        let job = server.wait_job(body["jobId"].as_str().unwrap(), Duration::from_secs(120)).await;
        assert_ne!(job["error"]["code"], "INVALID_INPUT", "{id} {params}: the worker agrees with its schema: {job}");
    }
}
