//! Non-Rust workers: the JavaScript `changelog` and `todo-tracker` (ComponentizeJS, the
//! latter on the JS SDK, reading and walking its grant through `wasi:filesystem`) and the
//! Python `markdown-links` (componentize-py, on the Python SDK) pipelines, registered through
//! configuration only and triggered over HTTP against fixture trees; the `new-worker` scaffold
//! of each language built and run. (Their per-job cost is measured by the bench:
//! `scripts/bench.sh --polyglot`, sections 1 and 4.)
//!
//! The components come from `scripts/build-polyglot.sh` (run here once; it is
//! incremental). Where node/npm or python3 is missing, the tests of that language
//! print SKIP and return.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::support::{Server, git, init_repo, write_tree};

fn repo_root() -> PathBuf {
    std::fs::canonicalize(Path::new(env!("CARGO_MANIFEST_DIR")).join("..")).expect("repository root")
}

fn polyglot_dir() -> PathBuf {
    repo_root().join("target").join("polyglot")
}

/// Runs the build script once per test process; its output says what it skipped.
fn build_polyglot() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = Command::new(repo_root().join("scripts/build-polyglot.sh")).output().expect("run build-polyglot.sh");
        eprintln!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "scripts/build-polyglot.sh failed");
    });
}

fn has(tool: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|o| o.status.success())
}

/// The built component of a polyglot worker, or None (SKIP printed) when its language's tools are missing.
fn component(stem: &str, tools: &[&str]) -> Option<PathBuf> {
    if let Some(missing) = tools.iter().find(|t| !has(t)) {
        eprintln!("SKIP {stem}: {missing} is not installed");
        return None;
    }
    build_polyglot();
    let path = polyglot_dir().join(format!("{stem}.wasm"));
    assert!(path.is_file(), "{} was not built although {tools:?} are installed", path.display());
    Some(path)
}

/// A pipeline table for a component outside the built-workers folder.
fn table(id: &str, component: &Path, extra: &str) -> String {
    format!("[pipelines.{id}]\ncomponent = {:?}\nroots = [\"ROOT\"]\n{extra}\n", component.display().to_string())
}

async fn log_messages(server: &Server, id: &str) -> Vec<String> {
    let (code, logs) = server.get(&format!("/api/jobs/{id}/logs")).await;
    assert_eq!(code, 200, "{logs}");
    logs["logs"].as_array().into_iter().flatten().filter_map(|l| l["message"].as_str().map(str::to_string)).collect()
}

fn assert_invalid(job: &Value, field: &str) {
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["error"]["code"], "INVALID_INPUT", "{job}");
    let message = job["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains(&format!("'{field}'")), "expected the error to name {field}: {job}");
}

#[tokio::test]
async fn js_changelog_summarises_a_repository_and_inline_commits() {
    let Some(wasm) = component("changelog", &["node", "npm"]) else { return };
    let server = Server::start(&table("changelog", &wasm, "timeout_secs = 120\nmemory_mb = 256"));
    let repo = server.dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    init_repo(&repo);
    for (i, subject) in [
        "feat(api): add the trigger endpoint",
        "fix: handle empty parameters",
        "docs: explain grants",
        "perf(queue)!: one lane per pipeline",
        "tidy up",
    ]
    .iter()
    .enumerate()
    {
        std::fs::write(repo.join("f.txt"), format!("{i}\n")).unwrap();
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-q", "-m", subject]);
    }

    let job = server
        .run(
            "changelog",
            json!({"repositoryPath": repo.display().to_string(), "previousVersion": "1.4.2", "date": "2024-05-01"}),
        )
        .await;
    assert_eq!(job["status"], "completed", "{job}\n{}", server.log());
    let r = &job["result"];
    assert_eq!(r["bump"], "major", "{r}");
    assert_eq!(r["version"], "2.0.0");
    assert_eq!(r["commits"], 6, "five commits plus the initial one: {r}");
    assert_eq!(r["conventional"], 4);
    assert_eq!(r["skipped"], 2);
    assert_eq!(r["breaking"], json!(["one lane per pipeline"]));
    assert_eq!(r["sections"], json!({"Features": 1, "Bug fixes": 1, "Performance": 1, "Documentation": 1}));
    let md = r["markdown"].as_str().unwrap();
    assert!(md.starts_with("## 2.0.0 (2024-05-01)"), "{md}");
    assert!(md.contains("### Features\n\n- **api:** add the trigger endpoint ("), "{md}");
    assert!(!md.contains("tidy up"), "{md}");
    assert_eq!(job["progress"]["percent"], 100, "{job}");
    let logs = log_messages(&server, job["id"].as_str().unwrap()).await;
    assert!(logs.iter().any(|m| m == "changelog: commits loaded"), "{logs:?}");

    // Inline commits, no repository.
    let job = server
        .run(
            "changelog",
            json!({"commits": [{"subject": "fix(cli): quote paths", "sha": "0123456789abcdef"}, {"subject": "wip"}],
                   "previousVersion": "0.3.1", "includeOther": true, "repoUrl": "https://example.com/r"}),
        )
        .await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["result"]["version"], "0.3.2");
    let md = job["result"]["markdown"].as_str().unwrap();
    assert!(md.contains("- **cli:** quote paths ([0123456](https://example.com/r/commit/0123456789abcdef))"), "{md}");
    assert!(md.contains("### Other\n\n- wip"), "{md}");

    // Typed errors from the worker name the parameter.
    assert_invalid(&server.run("changelog", json!({"commits": [], "previousVersion": "one"})).await, "previousVersion");
    assert_invalid(
        &server.run("changelog", json!({"commits": [{"subject": "feat: a"}, {"subject": " "}]})).await,
        "commits/1/subject",
    );
    assert_invalid(&server.run("changelog", json!({})).await, "repositoryPath");
    let not_a_repo = server.dir.join("plain");
    std::fs::create_dir_all(&not_a_repo).unwrap();
    assert_invalid(
        &server.run("changelog", json!({"repositoryPath": not_a_repo.display().to_string()})).await,
        "repositoryPath",
    );
    // The schema it declared is enforced by the host before the job exists.
    let (status, body) = server.trigger("changelog", json!({"bogus": 1})).await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn js_todo_tracker_reads_and_walks_its_grant_honouring_gitignore() {
    let Some(wasm) = component("todo_tracker", &["node", "npm"]) else { return };
    // A low descriptor cap: the walk and the reads must release every descriptor they open.
    let server =
        Server::start(&table("todo-tracker", &wasm, "timeout_secs = 120\nmemory_mb = 256\nmax_open_files = 12"));
    let repo = std::fs::canonicalize(&server.dir).unwrap().join("repo");
    for i in 0..40 {
        write_tree(&repo, &[(&format!("many/f{i:02}.txt"), "no markers here\n")]);
    }
    write_tree(
        &repo,
        &[
            (".gitignore", "dist/\n*.log\n!keep.log\n"),
            ("src/app.js", "// TODO: wire the API\nconst x = 1; // HACK around a bug\n"),
            ("src/deep/er/util.py", "def f():\n    pass  # FIXME(ann): handle None\n"),
            ("src/.gitignore", "*.gen.js\n"),
            ("src/api.gen.js", "// TODO generated, ignored by the nested .gitignore\n"),
            ("dist/bundle.js", "// TODO built output, ignored\n"),
            ("debug.log", "TODO: ignored log\n"),
            ("keep.log", "XXX re-included by !keep.log\n"),
            ("docs/plan.md", "# Plan\n\nTODO: write the docs\n"),
        ],
    );
    std::fs::write(repo.join("logo.bin"), b"TODO\0binary").unwrap();
    init_repo(&repo);
    // Untracked after the commit: its marker is flagged.
    write_tree(&repo, &[("notes.txt", "HACK: untracked\n")]);

    let job = server.run("todo-tracker", json!({"repositoryPath": repo.display().to_string()})).await;
    assert_eq!(job["status"], "completed", "{job}\n{}", server.log());
    let r = &job["result"];
    let found: Vec<String> = r["markers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!("{}:{}:{}:{}", m["file"].as_str().unwrap(), m["line"], m["marker"].as_str().unwrap(), m["tracked"])
        })
        .collect();
    assert_eq!(
        found,
        [
            "docs/plan.md:3:TODO:true",
            "keep.log:1:XXX:true",
            "notes.txt:1:HACK:false",
            "src/app.js:1:TODO:true",
            "src/app.js:2:HACK:true",
            "src/deep/er/util.py:2:FIXME:true",
        ],
        "{r}"
    );
    assert_eq!(r["markers"][3]["text"], "wire the API", "{r}");
    assert_eq!(r["counts"], json!({"TODO": 2, "FIXME": 1, "HACK": 2, "XXX": 1}), "{r}");
    // .gitignore, src/.gitignore, the five files with markers and many/*; logo.bin is binary.
    assert_eq!(r["filesScanned"], 47, "{r}");
    assert_eq!(r["skipped"]["binary"], 1, "{r}");
    assert_eq!(r["git"], json!({"branch": "main", "trackedFiles": 47, "untrackedWithMarkers": 1}), "{r}");
    assert_eq!(r["refused"], json!([]), "{r}");
    assert_eq!(job["progress"]["percent"], 100, "{job}");
    // The reports, written through the output grant.
    let id = job["id"].as_str().unwrap();
    let out = server.data_dir().join("outputs").join(id);
    let md = std::fs::read_to_string(out.join("todo-report.md")).unwrap();
    assert!(md.contains("## notes.txt\n\n- line 1: **HACK** untracked _(untracked)_"), "{md}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(out.join("todo-report.json")).unwrap()).unwrap();
    assert_eq!(report["total"], 6);
    let logs = log_messages(&server, id).await;
    assert!(logs.iter().any(|m| m == "todo-tracker: done"), "{logs:?}");

    // Extra patterns and a custom marker list; gitignore off brings the ignored files back.
    let job = server
        .run(
            "todo-tracker",
            json!({"repositoryPath": repo.display().to_string(), "markers": ["TODO"], "exclude": ["docs/"], "gitignore": false}),
        )
        .await;
    let files: Vec<&str> =
        job["result"]["markers"].as_array().unwrap().iter().map(|m| m["file"].as_str().unwrap()).collect();
    assert_eq!(files, ["debug.log", "dist/bundle.js", "src/api.gen.js", "src/app.js"], "{job}");

    // Typed errors name the parameter; the host enforces the declared schema.
    let file = repo.join("src/app.js").display().to_string();
    assert_invalid(&server.run("todo-tracker", json!({"repositoryPath": file})).await, "repositoryPath");
    let (status, body) =
        server.trigger("todo-tracker", json!({"repositoryPath": repo.display().to_string(), "markers": []})).await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn js_todo_tracker_is_refused_paths_outside_its_grant() {
    let Some(wasm) = component("todo_tracker", &["node", "npm"]) else { return };
    let server = Server::start(&table("todo-tracker", &wasm, "timeout_secs = 120"));
    let outside = tempfile::tempdir().unwrap();
    let outside = std::fs::canonicalize(outside.path()).unwrap();
    write_tree(&outside, &[("secret.txt", "TODO: the secret plan\n"), ("dir/more.txt", "FIXME: secret too\n")]);
    let repo = std::fs::canonicalize(&server.dir).unwrap().join("granted");
    write_tree(&repo, &[("a.txt", "TODO: inside\n")]);
    std::os::unix::fs::symlink(outside.join("secret.txt"), repo.join("escape.txt")).unwrap();
    std::os::unix::fs::symlink(outside.join("dir"), repo.join("escape-dir")).unwrap();

    // A path parameter outside the pipeline's roots never reaches the worker.
    let (status, body) = server.trigger("todo-tracker", json!({"repositoryPath": outside.display().to_string()})).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("repositoryPath"), "{body}");

    // Inside the grant, a symlink out of it is refused by the sandbox when the worker follows it.
    let job =
        server.run("todo-tracker", json!({"repositoryPath": repo.display().to_string(), "followSymlinks": true})).await;
    assert_eq!(job["status"], "completed", "{job}\n{}", server.log());
    let r = &job["result"];
    assert_eq!(r["total"], 1, "only the granted file's marker: {r}");
    assert_eq!(r["markers"][0]["file"], "a.txt", "{r}");
    let refused: Vec<(&str, &str)> = r["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["file"].as_str().unwrap(), x["code"].as_str().unwrap()))
        .collect();
    assert_eq!(refused, [("escape-dir", REFUSED_CODE), ("escape.txt", REFUSED_CODE)], "{r}");
    assert!(!r.to_string().contains("secret plan"), "{r}");
    let logs = log_messages(&server, job["id"].as_str().unwrap()).await;
    assert!(logs.iter().any(|m| m == "refused: escape.txt"), "{logs:?}");
    // Not following symlinks, they are only counted.
    let job = server.run("todo-tracker", json!({"repositoryPath": repo.display().to_string()})).await;
    assert_eq!(job["result"]["skipped"]["symlinks"], 2, "{job}");
    assert_eq!(job["result"]["refused"], json!([]), "{job}");
}

/// The WASI error code wasmtime answers for a symlink that leaves a preopened folder.
const REFUSED_CODE: &str = "not-permitted";

#[tokio::test]
async fn python_markdown_links_reports_broken_links_and_anchors() {
    let Some(wasm) = component("markdown_links", &["python3"]) else { return };
    let server = Server::start(&table("markdown-links", &wasm, "timeout_secs = 120\nmemory_mb = 256"));
    let docs = server.dir.join("docs");
    write_tree(
        &docs,
        &[
            (
                "README.md",
                "# Project\n\nSee [the guide](guide/intro.md), [setup](guide/intro.md#getting-started) and \
                 [a bad anchor](guide/intro.md#nope).\n![logo](img/logo.png) [missing](guide/missing.md) \
                 [web](https://example.com)\nJump to [Usage](#usage) or [Nowhere](#nowhere). `[code](not/checked.md)`\n\n\
                 ## Usage\n\n```\n[fenced](also/not/checked.md)\n```\n\n[ref]: guide/\n[up]: ../../etc/passwd\n",
            ),
            (
                "guide/intro.md",
                "Intro\n=====\n\n## Getting Started\n\nBack to [the readme](../README.md#project), [root](/README.md) \
                 and [custom](#custom).\n<a id=\"custom\"></a>\n",
            ),
            ("node_modules/dep/README.md", "[skipped](nope.md)\n"),
            // The SDK's walk honours .gitignore inside the component.
            (".gitignore", "generated/\n"),
            ("generated/api.md", "[ignored](nope.md)\n"),
        ],
    );
    let job = server.run("markdown-links", json!({"repositoryPath": docs.display().to_string()})).await;
    assert_eq!(job["status"], "completed", "{job}\n{}", server.log());
    let r = &job["result"];
    assert_eq!(r["filesScanned"], 2, "{r}");
    assert_eq!(r["linksChecked"], 12, "{r}");
    assert_eq!(r["externalLinks"], 1);
    assert_eq!(r["ok"], false);
    let broken: Vec<(String, i64, String, String)> = r["broken"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["file"].as_str().unwrap().to_string(),
                b["line"].as_i64().unwrap(),
                b["link"].as_str().unwrap().to_string(),
                b["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expect = |f: &str, l: i64, link: &str, reason: &str| (f.to_string(), l, link.to_string(), reason.to_string());
    assert_eq!(
        broken,
        vec![
            expect("README.md", 3, "guide/intro.md#nope", "missing-anchor"),
            expect("README.md", 4, "img/logo.png", "missing-file"),
            expect("README.md", 4, "guide/missing.md", "missing-file"),
            expect("README.md", 5, "#nowhere", "missing-anchor"),
            expect("README.md", 14, "../../etc/passwd", "outside-repository"),
        ],
        "{r}"
    );
    assert_eq!(job["progress"]["percent"], 100, "{job}");
    let id = job["id"].as_str().unwrap();
    // The report file in the job's own output folder (a WASI write through the output grant).
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(server.data_dir().join("outputs").join(id).join("markdown-links.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report["brokenCount"], 5);
    let logs = log_messages(&server, id).await;
    assert!(logs.iter().any(|m| m == "markdown-links: done"), "{logs:?}");
    assert!(logs.iter().any(|m| m.starts_with("broken link in README.md:4")), "{logs:?}");

    // Anchors unchecked on request: only the missing files and the escape remain.
    let job = server
        .run("markdown-links", json!({"repositoryPath": docs.display().to_string(), "checkAnchors": false}))
        .await;
    assert_eq!(job["result"]["brokenCount"], 3, "{job}");

    // Typed errors from the worker name the parameter.
    let file = docs.join("README.md").display().to_string();
    assert_invalid(&server.run("markdown-links", json!({"repositoryPath": file})).await, "repositoryPath");
    let bad = json!({"repositoryPath": docs.display().to_string(), "skipDirs": ["ok", "a/b"]});
    assert_invalid(&server.run("markdown-links", bad).await, "skipDirs/1");
    // Paths outside the roots never reach the worker.
    let outside = tempfile::tempdir().unwrap();
    let (status, body) =
        server.trigger("markdown-links", json!({"repositoryPath": outside.path().display().to_string()})).await;
    assert_eq!(status, 400, "{body}");
}

/// Scaffolds `name` in `lang` with the real binary into a temp folder; returns (temp, folder, stdout).
fn scaffold(name: &str, lang: &str) -> (tempfile::TempDir, PathBuf, String) {
    let temp = tempfile::tempdir().unwrap();
    let dir = std::fs::canonicalize(temp.path()).unwrap().join(name);
    let out = Command::new(env!("CARGO_BIN_EXE_alephauto"))
        .args(["new-worker", name, "--lang", lang, "--dir"])
        .arg(&dir)
        .output()
        .expect("run alephauto new-worker");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "new-worker failed: {}{stdout}", String::from_utf8_lossy(&out.stderr));
    for step in ["Build the component", &format!("[pipelines.{name}]"), "curl -X POST"] {
        assert!(stdout.contains(step), "next steps lack {step:?}:\n{stdout}");
    }
    (temp, dir, stdout)
}

fn sh(dir: &Path, script: &str, envs: &[(&str, String)]) {
    let out = Command::new("bash")
        .args(["-c", script])
        .current_dir(dir)
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("run shell");
    assert!(
        out.status.success(),
        "`{script}` failed in {}:\n{}\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Registers the scaffolded component, runs a hello job and a refused one.
async fn run_scaffolded(name: &str, wasm: &Path) {
    assert!(wasm.is_file(), "{} was not built", wasm.display());
    eprintln!("{name}: {} bytes", std::fs::metadata(wasm).unwrap().len());
    let server = Server::start(&table(name, wasm, "timeout_secs = 120"));
    let job = server.run(name, json!({"name": "Ada", "times": 3})).await;
    assert_eq!(job["status"], "completed", "{job}\n{}", server.log());
    assert_eq!(job["result"]["greeting"], "Hello, Ada!", "{job}");
    assert_eq!(job["result"]["lines"].as_array().map(Vec::len), Some(3), "{job}");
    assert_eq!(job["progress"]["percent"], 100, "{job}");
    assert_eq!(job["progress"]["message"], "greeted 3 of 3", "{job}");
    assert!(log_messages(&server, job["id"].as_str().unwrap()).await.iter().any(|m| m == "greeting Ada"));
    // Defaults come from the declared schema.
    let job = server.run(name, json!({})).await;
    assert_eq!(job["result"]["greeting"], "Hello, world!", "{job}");
    assert_invalid(&server.run(name, json!({"name": "  "})).await, "name");
    let (status, body) = server.trigger(name, json!({"times": 0})).await;
    assert_eq!(status, 400, "the schema's minimum is enforced: {body}");
}

#[tokio::test]
async fn scaffolded_rust_worker_builds_and_runs() {
    let (_temp, dir, _) = scaffold("hello-rs", "rust");
    // Shares compiled dependencies between runs; the scaffold's own target/ stays empty.
    let target = repo_root().join("target").join("scaffold-rust");
    sh(
        &dir,
        "cargo build --release --target wasm32-wasip2 --quiet",
        &[("CARGO_TARGET_DIR", target.display().to_string())],
    );
    run_scaffolded("hello-rs", &target.join("wasm32-wasip2/release/hello_rs.wasm")).await;
}

#[tokio::test]
async fn scaffolded_js_worker_builds_and_runs() {
    if !has("node") || !has("npm") {
        eprintln!("SKIP scaffolded JS worker: node/npm not installed");
        return;
    }
    build_polyglot();
    let (_temp, dir, _) = scaffold("hello-js", "js");
    // `npm install` would fetch the same pinned ComponentizeJS the project installed: reuse it.
    std::os::unix::fs::symlink(repo_root().join("workers-polyglot/node_modules"), dir.join("node_modules")).unwrap();
    sh(&dir, "npm test --silent && npm run build --silent", &[]);
    run_scaffolded("hello-js", &dir.join("hello_js.wasm")).await;
}

#[tokio::test]
async fn scaffolded_python_worker_builds_and_runs() {
    if !has("python3") {
        eprintln!("SKIP scaffolded Python worker: python3 not installed");
        return;
    }
    build_polyglot();
    let venv_bin = polyglot_dir().join("venv/bin");
    if !venv_bin.join("componentize-py").is_file() {
        eprintln!("SKIP scaffolded Python worker: componentize-py was not installed by build-polyglot.sh");
        return;
    }
    let (_temp, dir, _) = scaffold("hello-py", "python");
    let path = format!("{}:{}", venv_bin.display(), std::env::var("PATH").unwrap_or_default());
    sh(&dir, "python3 -m unittest -q && ./build.sh", &[("PATH", path)]);
    run_scaffolded("hello-py", &dir.join("hello_py.wasm")).await;
}
