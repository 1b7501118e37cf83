//! What clients see: `/metrics` read by the reference Prometheus parser (both formats), the
//! CLI's requests (key in a header, encoded URLs, relative paths, exit codes), and keyset
//! pagination of `GET /api/jobs`.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Server, eventually, pipeline, write_tree};

const KEY: &str = "k+y/with=signs";

fn echo() -> String {
    pipeline("echo", "fixture_echo", "roots = [\"ROOT\"]\nmax_concurrent = 2")
}

/// The Python of the venv `scripts/setup.sh` installs prometheus_client into.
fn prom_python() -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/prom-venv/bin/python");
    let ok = Command::new(&python).args(["-c", "import prometheus_client"]).output().is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{} with prometheus_client is missing: run scripts/setup.sh (it installs the pinned parser)",
        python.display()
    );
    python
}

/// Parses `text` with prometheus_client's OpenMetrics parser (strict) or its text-format
/// parser; returns `[{name, type, unit, samples: [{name, labels, value}]}]`.
fn parse_metrics(text: &str, openmetrics: bool) -> Vec<Value> {
    let parser = if openmetrics { "prometheus_client.openmetrics.parser" } else { "prometheus_client.parser" };
    let script = format!(
        "import json, sys\nfrom {parser} import text_string_to_metric_families as parse\n\
         out = [{{'name': f.name, 'type': f.type, 'unit': f.unit, 'samples': [{{'name': s.name, 'labels': s.labels, 'value': s.value}} for s in f.samples]}} for f in parse(sys.stdin.read())]\n\
         print(json.dumps(out))\n"
    );
    let mut child = Command::new(prom_python())
        .args(["-c", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start python");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the parser refused the metrics: {}\n{text}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn family<'a>(families: &'a [Value], name: &str) -> &'a Value {
    families.iter().find(|f| f["name"] == name).unwrap_or_else(|| panic!("no family {name} in {families:#?}"))
}

fn sample(f: &Value, name: &str, labels: &[(&str, &str)]) -> f64 {
    let s = f["samples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name && labels.iter().all(|(k, v)| s["labels"][*k] == *v));
    s.unwrap_or_else(|| panic!("no sample {name}{labels:?} in {f:#}"))["value"].as_f64().unwrap()
}

/// What both formats must say after one completed, one failed and two cancelled echo jobs.
fn check_families(families: &[Value], format: &str) {
    let name_ok = |n: &str| {
        let mut chars = n.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    for f in families {
        let name = f["name"].as_str().unwrap();
        assert!(name.starts_with("alephauto_") && name_ok(name), "{format}: bad name {name}");
        assert!(!matches!(f["type"].as_str(), Some("unknown" | "untyped")), "{format}: untyped family {f:#}");
        if f["type"] == "counter" {
            assert!(!name.ends_with("_total"), "{format}: counter family named with its sample suffix: {name}");
            for s in f["samples"].as_array().unwrap() {
                assert_eq!(s["name"].as_str().unwrap(), format!("{name}_total"), "{format}: {f:#}");
            }
        }
        if f["unit"] == "seconds" || name.ends_with("_seconds") {
            assert!(name.ends_with("_seconds"), "{format}: unit not in the name: {f:#}");
        }
    }
    let finished = family(families, "alephauto_jobs_finished");
    assert_eq!(finished["type"], "counter", "{format}");
    for (status, n) in [("completed", 1.0), ("failed", 1.0), ("cancelled", 2.0)] {
        let got = sample(finished, "alephauto_jobs_finished_total", &[("pipeline", "echo"), ("status", status)]);
        assert_eq!(got, n, "{format}: jobs finished with {status}");
    }
    let duration = family(families, "alephauto_job_duration_seconds");
    assert_eq!(duration["type"], "histogram", "{format}");
    assert_eq!(
        sample(duration, "alephauto_job_duration_seconds_count", &[("pipeline", "echo")]),
        4.0,
        "{format}: every terminal job"
    );
    assert_eq!(family(families, "alephauto_jobs")["type"], "gauge", "{format}");
}

#[tokio::test]
async fn metrics_parse_in_both_formats_and_count_cancelled_jobs() {
    let server = Server::start(&echo());
    assert_eq!(server.run("echo", json!({})).await["status"], "completed");
    assert_eq!(server.run("echo", json!({"failWith": "failed"})).await["status"], "failed");
    // One cancelled while running, one while queued behind it... both slots busy first.
    let long = server.trigger_ok("echo", json!({"sleepMs": 60000, "steps": 100})).await;
    let other = server.trigger_ok("echo", json!({"sleepMs": 60000, "steps": 100})).await;
    let queued = server.trigger_ok("echo", json!({})).await;
    server.wait_status(&long, &["running"], Duration::from_secs(30)).await;
    server.wait_status(&other, &["running"], Duration::from_secs(30)).await;
    for id in [&queued, &long] {
        let (code, job) = server.post(&format!("/api/jobs/{id}/cancel"), json!({})).await;
        assert_eq!((code, job["status"].as_str()), (200, Some("cancelled")), "{job}");
    }
    // The interrupted attempt's own end must not count the job a second time: wait for it
    // to end (its slot is freed then, leaving `other` the only job running).
    server.wait_status(&other, &["running"], Duration::from_secs(5)).await;
    eventually(Duration::from_secs(10), "the cancelled attempt ends", || async {
        let text = server.http.get(format!("{}/metrics", server.url)).send().await.unwrap().text().await.unwrap();
        let running = text.lines().find(|l| l.starts_with("alephauto_jobs_running{pipeline=\"echo\"}"));
        match running {
            Some(line) if line.ends_with(" 1") => Ok(()),
            other => Err(other.map(str::to_owned)),
        }
    })
    .await;

    let fetch = |accept: Option<&'static str>| {
        let mut req = server.http.get(format!("{}/metrics", server.url));
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        async move {
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), 200);
            let ct = res.headers()["content-type"].to_str().unwrap().to_string();
            (ct, res.text().await.unwrap())
        }
    };
    // What Prometheus itself sends: OpenMetrics first.
    let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,\
                      text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let (ct, text) = fetch(Some(prometheus)).await;
    assert!(ct.starts_with("application/openmetrics-text; version=1.0.0"), "{ct}");
    check_families(&parse_metrics(&text, true), "OpenMetrics");
    for accept in [Some("text/plain"), Some("text/plain;version=0.0.4"), None] {
        let (ct, text) = fetch(accept).await;
        assert!(ct.starts_with("text/plain; version=0.0.4"), "{accept:?}: {ct}");
        assert!(!text.contains("# EOF"), "{accept:?}");
        check_families(&parse_metrics(&text, false), "text 0.0.4");
    }
}

/// Runs the CLI in `cwd` with a clean environment; returns its output.
fn cli_in(cwd: &Path, url: &str, args: &[&str]) -> Output {
    tokio::task::block_in_place(|| {
        Command::new(env!("CARGO_BIN_EXE_alephauto"))
            .args(args)
            .current_dir(cwd)
            .env("ALEPHAUTO_URL", url)
            .env_remove("ALEPHAUTO_API_KEY")
            .env_remove("ALEPHAUTO_CONFIG")
            .output()
            .expect("run the CLI")
    })
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A loopback listener that records each request's head and answers `status` with `body`.
fn recorder(status: &'static str, body: &'static str) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(16) {
            let Ok(mut s) = stream else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).is_ok_and(|n| n == 1) {
                head.push(byte[0]);
            }
            log.lock().unwrap().push(String::from_utf8_lossy(&head).into_owned());
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sends_the_key_in_a_header_and_encodes_what_it_puts_in_urls() {
    let dir = tempfile::tempdir().unwrap();
    let (url, seen) = recorder("401 Unauthorized", r#"{"error":"no","code":"UNAUTHORIZED"}"#);
    // The WebSocket handshake of --wait is the first request.
    let out = cli_in(dir.path(), &url, &["--api-key", KEY, "trigger", "echo", "--wait"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let (url2, seen2) = recorder("200 OK", r#"{"jobs":[],"total":0}"#);
    let out = cli_in(dir.path(), &url2, &["--api-key", KEY, "jobs", "--status", "failed&limit=1", "--pipeline", "a b"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = cli_in(dir.path(), &url2, &["--api-key", KEY, "job", "../../metrics"]);
    assert!(out.status.success(), "{}", text(&out));

    let heads: Vec<String> = seen.lock().unwrap().iter().chain(seen2.lock().unwrap().iter()).cloned().collect();
    assert_eq!(heads.len(), 3, "{heads:#?}");
    let ws = &heads[0];
    assert!(ws.starts_with("GET /ws HTTP/1.1\r\n"), "{ws}");
    assert!(ws.to_ascii_lowercase().contains("upgrade: websocket"), "{ws}");
    for head in &heads {
        let lower = head.to_ascii_lowercase();
        assert!(lower.contains(&format!("x-api-key: {KEY}\r\n")), "the key goes in the header: {head}");
        let request_line = head.lines().next().unwrap();
        assert!(
            !request_line.contains("k+y") && !request_line.contains("apiKey"),
            "the key is never in a URL: {request_line}"
        );
    }
    assert!(
        heads[1].starts_with("GET /api/jobs?limit=20&pipelineId=a+b&status=failed%26limit%3D1 HTTP/1.1"),
        "{}",
        heads[1]
    );
    assert!(heads[2].starts_with("GET /api/jobs/..%2F..%2Fmetrics HTTP/1.1"), "{}", heads[2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_works_against_a_keyed_server_and_exits_with_distinct_codes() {
    let server = Server::start_with(&echo(), &format!("\n[server]\napi_key = {KEY:?}\n"));
    let work = server.dir.join("work");
    write_tree(&work, &[("in/a.txt", "a"), ("in/b.txt", "b")]);

    // --wait over a WebSocket whose handshake carries the key; relative paths resolve here.
    let out = cli_in(&work, &server.url, &["--api-key", KEY, "trigger", "echo", "-p", "inputDir=in", "--wait"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("\"inputDir\": \"{}\"", work.join("in").display())), "{stdout}");
    assert!(stdout.contains("\"a.txt\"") && stdout.contains("\"b.txt\""), "{stdout}");

    // Without a flag, the key comes from the data folder of --config.
    let data = server.state.join("data");
    std::fs::write(data.join("api-key"), format!("{KEY}\n")).unwrap();
    let config = server.state.join("alephauto.toml");
    let config = config.to_str().unwrap();
    let out = cli_in(&work, &server.url, &["--config", config, "trigger", "echo", "--wait"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = cli_in(&work, &server.url, &["trigger", "echo"]);
    assert_eq!(out.status.code(), Some(1), "no key, refused: {}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("UNAUTHORIZED"), "{}", text(&out));

    // Job failed: 4.
    let out = cli_in(&work, &server.url, &["--api-key", KEY, "trigger", "echo", "-p", "failWith=failed", "--wait"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    // The server refuses a query that was not split by the CLI: 1, with the server's message.
    let out = cli_in(&work, &server.url, &["jobs", "--status", "failed&limit=1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("400") && stderr.contains("'status' must be one of") && stderr.contains("failed&limit=1"),
        "{stderr}"
    );
    // Usage: 2.
    for args in [&["trigger", "echo", "-p", "nokey"][..], &["jobs", "--bogus"], &["--server", "not a url", "jobs"]] {
        let out = cli_in(&work, &server.url, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
    }
    // Unreachable: 3 (a port that was just free).
    let closed = format!("http://{}", TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap());
    for args in [&["jobs"][..], &["--api-key", KEY, "trigger", "echo", "--wait"]] {
        let out = cli_in(&work, &closed, args);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", text(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the server"), "{}", text(&out));
    }
    // `jobs` pages by cursor: the line it prints is the next command's flag.
    let first = cli_in(&work, &server.url, &["jobs", "--limit", "1"]);
    let first = String::from_utf8_lossy(&first.stdout).into_owned();
    let cursor =
        first.lines().find_map(|l| l.strip_prefix("next page: --cursor ")).unwrap_or_else(|| panic!("{first}"));
    let second = cli_in(&work, &server.url, &["jobs", "--limit", "1", "--cursor", cursor]);
    assert!(second.status.success(), "{}", text(&second));
    let id_of = |listing: &str| listing.lines().nth(1).and_then(|l| l.split_whitespace().next()).map(str::to_string);
    let second = String::from_utf8_lossy(&second.stdout).into_owned();
    assert!(
        id_of(&first).is_some() && id_of(&second).is_some() && id_of(&first) != id_of(&second),
        "{first}\n{second}"
    );
    let help = cli_in(&work, &server.url, &["--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("Exit codes") && help.contains("3  the server is unreachable"), "{help}");
}

#[tokio::test]
async fn cursor_pages_walk_every_job_once_while_jobs_arrive() {
    let server = Server::start(&[pipeline("noop", "fixture_noop", "max_concurrent = 4"), echo()].concat());
    let mut ids = Vec::new();
    for i in 0..23 {
        let p = if i % 3 == 0 { "echo" } else { "noop" };
        ids.push((p, server.trigger_ok(p, json!({})).await));
    }
    for (_, id) in &ids {
        server.wait_job(id, Duration::from_secs(60)).await;
    }
    // Walk the noop jobs 5 at a time, triggering more between pages: they sort before the
    // cursor, so the walk neither repeats nor skips.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = cursor.as_ref().map(|c| format!("&cursor={c}")).unwrap_or_default();
        let (code, page) = server.get(&format!("/api/jobs?pipelineId=noop&status=completed&limit=5{q}")).await;
        assert_eq!(code, 200, "{page}");
        seen.extend(page["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().to_string()));
        if cursor.is_none() {
            // Arrivals after the first page.
            for _ in 0..3 {
                server.trigger_ok("noop", json!({})).await;
            }
        }
        assert_eq!(page["hasMore"], page["nextCursor"].is_string(), "{page}");
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let expected: Vec<String> = ids.iter().rev().filter(|(p, _)| *p == "noop").map(|(_, id)| id.clone()).collect();
    assert_eq!(seen, expected, "newest first, each once");

    let (code, body) = server.get("/api/jobs?cursor=nonsense").await;
    assert_eq!((code, body["code"].as_str()), (400, Some("INVALID_CURSOR")), "{body}");
    // With a cursor, an offset skips rows after it.
    let (_, first) = server.get("/api/jobs?limit=2").await;
    let c = first["nextCursor"].as_str().expect("more than two jobs").to_string();
    let (_, after) = server.get(&format!("/api/jobs?limit=2&cursor={c}")).await;
    let (code, skipped) = server.get(&format!("/api/jobs?limit=2&cursor={c}&offset=1")).await;
    assert_eq!(code, 200, "{skipped}");
    assert_eq!(skipped["jobs"][0]["id"], after["jobs"][1]["id"], "{after} / {skipped}");
    let (_, doc) = server.get("/api/openapi.json").await;
    let params = doc["paths"]["/api/jobs"]["get"]["parameters"].as_array().unwrap();
    assert!(params.iter().any(|p| p["name"] == "cursor"), "the cursor is documented");
}
