//! Outgoing webhooks against loopback receivers: signed generic payloads that fail twice and
//! are then accepted (three recorded attempts, a server restart in between), a delivery not
//! yet derived when the server died, Slack and Discord shapes with hostile guest text, a
//! receiver that never answers (jobs do not slow down), and the deliveries API.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alephauto::notify::signing::{self, VerifyError};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::support::{Server, eventually, pipeline};

const SECRET: &str = "webhook-test-secret";

/// What a receiver does with a request.
#[derive(Clone, Copy)]
enum Answer {
    Status(u16),
    /// Never answers.
    Hang,
}

/// One request a receiver got.
#[derive(Clone, Debug)]
struct Hit {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone, Default)]
struct ReceiverState {
    hits: Arc<Mutex<Vec<Hit>>>,
    /// Answers in order; 200 once they run out.
    script: Arc<Mutex<VecDeque<Answer>>>,
    /// Requests being answered right now, and the most seen at once.
    open: Arc<Mutex<(usize, usize)>>,
}

/// An HTTP receiver on 127.0.0.1 that records every request.
struct Receiver {
    addr: SocketAddr,
    state: ReceiverState,
}

impl Receiver {
    async fn start(script: &[Answer]) -> Receiver {
        let state = ReceiverState::default();
        state.script.lock().unwrap().extend(script.iter().copied());
        let app = axum::Router::new().fallback(receive).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind receiver");
        let addr = listener.local_addr().expect("receiver address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { addr, state }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn hits(&self) -> Vec<Hit> {
        self.state.hits.lock().unwrap().clone()
    }

    fn max_open(&self) -> usize {
        self.state.open.lock().unwrap().1
    }
}

async fn receive(
    State(state): State<ReceiverState>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    state.hits.lock().unwrap().push(Hit { path: uri.path().to_string(), headers, body });
    let answer = state.script.lock().unwrap().pop_front().unwrap_or(Answer::Status(200));
    match answer {
        Answer::Status(code) => (StatusCode::from_u16(code).unwrap(), format!("answered {code}")),
        Answer::Hang => {
            {
                let mut open = state.open.lock().unwrap();
                open.0 += 1;
                open.1 = open.1.max(open.0);
            }
            // Dropped when the sender gives up (its timeout) and closes the connection.
            struct Close(ReceiverState);
            impl Drop for Close {
                fn drop(&mut self) {
                    self.0.open.lock().unwrap().0 -= 1;
                }
            }
            let _close = Close(state.clone());
            std::future::pending::<()>().await;
            unreachable!()
        }
    }
}

fn echo() -> String {
    pipeline("echo", "fixture_echo", "roots = [\"ROOT\"]\nmax_concurrent = 4")
}

/// `[notify]` settings for tests (fast polls and backoff) plus `hooks`.
fn notify(extra: &str, hooks: &str) -> String {
    let defaults: String = [("poll_ms", "50"), ("backoff_base_ms", "1500"), ("timeout_secs", "3")]
        .iter()
        .filter(|(key, _)| !extra.contains(&format!("{key} =")))
        .map(|(key, value)| format!("{key} = {value}\n"))
        .collect();
    format!("[notify]\n{defaults}{extra}\n{hooks}")
}

fn hook(id: &str, url: &str, events: &str, more: &str) -> String {
    format!("[[notify.webhooks]]\nid = {id:?}\nurl = {url:?}\nevents = {events}\n{more}\n")
}

/// Waits until `path` answers a delivery list of exactly `n` entries and returns it.
async fn deliveries(server: &Server, query: &str, n: usize) -> Vec<Value> {
    eventually(Duration::from_secs(30), "deliveries listed", || async {
        let (code, page) = server.get(&format!("/api/webhooks/deliveries{query}")).await;
        let list = page["deliveries"].as_array().cloned().unwrap_or_default();
        if code == 200 && list.len() == n { Ok(list) } else { Err((code, page)) }
    })
    .await
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_delivery_fails_twice_survives_a_restart_and_is_recorded_with_three_attempts() {
    let receiver = Receiver::start(&[Answer::Status(500), Answer::Status(503)]).await;
    let hooks = hook("ops", &receiver.url("/hook"), r#"["failed"]"#, &format!("secret = {SECRET:?}"));
    let mut server = Server::start_with(&echo(), &notify("", &hooks));
    let job = server.run("echo", json!({"failWith": "failed", "message": "disk full"})).await;
    let job_id = job["id"].as_str().unwrap().to_string();
    assert_eq!(job["status"], "failed");

    // The first attempt is recorded (500), then the process dies before the next one.
    let first = deliveries(&server, "", 1).await;
    let id = first[0]["id"].as_i64().unwrap();
    eventually(Duration::from_secs(30), "first attempt recorded", || async {
        let (_, d) = server.get(&format!("/api/webhooks/deliveries/{id}")).await;
        if d["attempts"].as_u64() >= Some(1) { Ok(()) } else { Err(d) }
    })
    .await;
    server.restart();

    let detail = eventually(Duration::from_secs(30), "delivered after the restart", || async {
        let (_, d) = server.get(&format!("/api/webhooks/deliveries/{id}")).await;
        if d["status"] == "delivered" { Ok(d) } else { Err(d) }
    })
    .await;
    assert_eq!(detail["attempts"], 3, "{detail}");
    let log = detail["attemptLog"].as_array().unwrap();
    let codes: Vec<_> = log.iter().map(|a| a["statusCode"].as_u64().unwrap()).collect();
    assert_eq!(codes, [500, 503, 200], "{detail}");
    assert_eq!(log[0]["error"], "receiver answered 500");
    assert_eq!(log[0]["responseExcerpt"], "answered 500");
    assert!(log[2]["error"].is_null());
    assert_eq!(detail["jobId"], job_id.as_str());
    assert_eq!(detail["payload"]["event"], "failed");
    assert!(detail["payload"]["error"]["message"].as_str().unwrap().contains("disk full"), "{detail}");

    // Every attempt is the same delivery, signed over its own timestamp; the receiver can verify
    // each, and a replay outside its tolerance is refused.
    let hits = receiver.hits();
    assert_eq!(hits.len(), 3, "one request per attempt, none lost or doubled by the restart");
    for hit in &hits {
        assert_eq!(hit.path, "/hook");
        assert_eq!(hit.headers["x-alephauto-delivery"], id.to_string().as_str());
        assert_eq!(hit.headers["x-alephauto-event"], "failed");
        assert_eq!(hit.headers["content-type"], "application/json");
        let sig = hit.headers[signing::SIGNATURE_HEADER].to_str().unwrap();
        assert_eq!(signing::verify(SECRET.as_bytes(), sig, &hit.body, now_secs(), 300), Ok(()));
        assert_eq!(signing::verify(b"wrong secret", sig, &hit.body, now_secs(), 300), Err(VerifyError::Mismatch));
        let mut tampered = hit.body.to_vec();
        tampered.extend_from_slice(b" ");
        assert_eq!(signing::verify(SECRET.as_bytes(), sig, &tampered, now_secs(), 300), Err(VerifyError::Mismatch));
        assert!(matches!(
            signing::verify(SECRET.as_bytes(), sig, &hit.body, now_secs() + 600, 300),
            Err(VerifyError::Stale { .. })
        ));
        assert_eq!(hit.body, hits[0].body, "the stored payload is sent as it is");
    }
    let body: Value = serde_json::from_slice(&hits[0].body).unwrap();
    assert_eq!(body["eventKey"], format!("job:{job_id}:failed"));
    assert_eq!(body["pipelineId"], "echo");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_finished_before_its_delivery_was_stored_is_delivered_after_a_crash() {
    let receiver = Receiver::start(&[]).await;
    let hooks = hook("ops", &receiver.url("/late"), r#"["completed"]"#, &format!("secret = {SECRET:?}"));
    // The sender looks at finished jobs only at start: the job below finishes unseen.
    let mut server = Server::start_with(&echo(), &notify("poll_ms = 600000", &hooks));
    let job = server.run("echo", json!({})).await;
    assert_eq!(job["status"], "completed");
    let (_, page) = server.get("/api/webhooks/deliveries").await;
    assert_eq!(page["deliveries"], json!([]), "nothing stored yet");
    server.kill();
    assert!(receiver.hits().is_empty());

    server.restart();
    let list = deliveries(&server, "", 1).await;
    assert_eq!(list[0]["jobId"], job["id"]);
    eventually(Duration::from_secs(30), "delivered", || async {
        let hits = receiver.hits();
        if hits.len() == 1 { Ok(()) } else { Err(hits.len()) }
    })
    .await;
    let body: Value = serde_json::from_slice(&receiver.hits()[0].body).unwrap();
    assert_eq!(body["event"], "completed");
    assert_eq!(body["jobId"], job["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_and_discord_get_their_shapes_with_guest_text_defused() {
    let receiver = Receiver::start(&[]).await;
    let hooks = hook(
        "slack",
        &receiver.url("/services/T0/B0/XSECRETX"),
        r#"["failed", "retries_exhausted"]"#,
        "format = \"slack\"",
    ) + &hook(
        "discord",
        &receiver.url("/api/webhooks/1/SECRET"),
        r#"["retries_exhausted"]"#,
        "format = \"discord\"",
    );
    let server = Server::start_with(&echo(), &notify("", &hooks));
    let evil = "<!channel> <@U024BE7LH> @everyone @here [click](https://evil.example) <https://evil.example|x>";
    let failed = server.run("echo", json!({"failWith": "failed", "message": evil})).await;
    // Retryable failures use up the attempts: `retries_exhausted` (and `failed`).
    let exhausted = server.run("echo", json!({"failWith": "retryable"})).await;
    assert_eq!(exhausted["status"], "failed");
    assert_eq!(exhausted["attempt"], 3);

    let hits = eventually(Duration::from_secs(30), "four chat messages", || async {
        let hits = receiver.hits();
        if hits.len() == 4 { Ok(hits) } else { Err(hits.len()) }
    })
    .await;
    let bodies = |prefix: &str| -> Vec<Value> {
        hits.iter().filter(|h| h.path.starts_with(prefix)).map(|h| serde_json::from_slice(&h.body).unwrap()).collect()
    };
    let slack = bodies("/services/");
    assert_eq!(slack.len(), 3, "failed twice, retries_exhausted once");
    for body in &slack {
        let keys: Vec<_> = body.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["text"], "{body}");
    }
    let evil_text =
        slack.iter().map(|b| b["text"].as_str().unwrap()).find(|t| t.contains(failed["id"].as_str().unwrap())).unwrap();
    assert!(!evil_text.contains('<') && !evil_text.contains('>'), "no Slack control sequence survives: {evil_text}");
    assert!(evil_text.contains("&lt;!channel&gt;"), "{evil_text}");
    assert!(slack.iter().any(|b| b["text"].as_str().unwrap().contains("after 3 attempts")), "{slack:?}");

    let discord = bodies("/api/webhooks/");
    assert_eq!(discord.len(), 1, "{discord:?}");
    assert_eq!(discord[0]["allowed_mentions"], json!({"parse": []}));
    assert_eq!(discord[0]["username"], "AlephAuto");
    assert!(discord[0]["content"].as_str().unwrap().contains(exhausted["id"].as_str().unwrap()));
    for hit in &hits {
        assert!(hit.headers.get(signing::SIGNATURE_HEADER).is_none(), "chat formats are not signed");
    }

    // The listing never shows the secret parts of a hook URL.
    let (code, listed) = server.get("/api/webhooks").await;
    assert_eq!(code, 200);
    let text = listed.to_string();
    assert!(!text.contains("XSECRETX") && !text.contains("SECRET"), "{text}");
    assert_eq!(listed["webhooks"][0]["format"], "slack");
    assert_eq!(listed["webhooks"][1]["events"], json!(["retries_exhausted"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_never_answers_does_not_slow_jobs() {
    let receiver = Receiver::start(&[Answer::Hang; 64]).await;
    let hooks = hook("stuck", &receiver.url("/hang"), r#"["completed"]"#, &format!("secret = {SECRET:?}"));
    let server = Server::start_with(&echo(), &notify("concurrency = 2\ntimeout_secs = 60", &hooks));
    // Warm the worker up first, so the timing below is about the queue only.
    server.run("echo", json!({})).await;
    eventually(Duration::from_secs(30), "the receiver is stuck", || async {
        if receiver.max_open() >= 1 { Ok(()) } else { Err(receiver.max_open()) }
    })
    .await;
    let start = Instant::now();
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(server.trigger_ok("echo", json!({})).await);
    }
    for id in &ids {
        let job = server.wait_job(id, Duration::from_secs(30)).await;
        assert_eq!(job["status"], "completed");
    }
    let took = start.elapsed();
    assert!(took < Duration::from_secs(15), "20 jobs took {took:?} while the receiver hung");
    // Every delivery is stored, at most `concurrency` are in flight, the rest wait.
    let listed = deliveries(&server, "?limit=200", 21).await;
    assert!(listed.iter().all(|d| d["status"] == "pending" && d["attempts"] == 0), "{listed:?}");
    assert!(receiver.max_open() <= 2, "in flight at once: {}", receiver.max_open());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deliveries_api_filters_pages_redelivers_and_refuses_bad_input() {
    let receiver = Receiver::start(&[]).await;
    let hooks = hook("a", &receiver.url("/a"), r#"["completed", "failed"]"#, &format!("secret = {SECRET:?}"))
        + &hook("b", &receiver.url("/b"), r#"["failed"]"#, "secret_env = \"HOME\"");
    let server = Server::start_with(&echo(), &notify("", &hooks));
    let ok = server.run("echo", json!({})).await;
    let bad = server.run("echo", json!({"failWith": "failed"})).await;
    let all = deliveries(&server, "", 3).await;
    // Newest first.
    assert!(all[0]["id"].as_i64() > all[1]["id"].as_i64() && all[1]["id"].as_i64() > all[2]["id"].as_i64());
    eventually(Duration::from_secs(30), "all delivered", || async {
        let (_, page) = server.get("/api/webhooks/deliveries?status=delivered").await;
        let n = page["deliveries"].as_array().map_or(0, Vec::len);
        if n == 3 { Ok(()) } else { Err(page) }
    })
    .await;
    assert_eq!(deliveries(&server, "?hook=b", 1).await[0]["jobId"], bad["id"]);
    let by_job = deliveries(&server, &format!("?jobId={}", ok["id"].as_str().unwrap()), 1).await;
    assert_eq!(by_job[0]["event"], "completed");
    assert_eq!(deliveries(&server, "?status=failed", 0).await.len(), 0);

    // Paging with `before`.
    let (_, p1) = server.get("/api/webhooks/deliveries?limit=2").await;
    assert_eq!(p1["deliveries"].as_array().unwrap().len(), 2);
    let before = p1["nextBefore"].as_i64().expect("a next page");
    let (_, p2) = server.get(&format!("/api/webhooks/deliveries?limit=2&before={before}")).await;
    assert_eq!(p2["deliveries"].as_array().unwrap().len(), 1);
    assert!(p2["nextBefore"].is_null());

    // Secrets never appear; `signed` says whether one is set.
    let (_, hooks) = server.get("/api/webhooks").await;
    assert!(!hooks.to_string().contains(SECRET));
    assert_eq!(hooks["webhooks"][0]["signed"], true);
    assert!(hooks["webhooks"][0].get("secret").is_none() && hooks["webhooks"][1].get("secretEnv").is_none());

    // Redelivery: one more attempt, in a round of its own.
    let id = by_job[0]["id"].as_i64().unwrap();
    let (code, body) = server.post(&format!("/api/webhooks/deliveries/{id}/redeliver"), json!({})).await;
    assert_eq!(code, 202, "{body}");
    eventually(Duration::from_secs(30), "redelivered", || async {
        let (_, d) = server.get(&format!("/api/webhooks/deliveries/{id}")).await;
        if d["status"] == "delivered" && d["attempts"] == 2 { Ok(()) } else { Err(d) }
    })
    .await;
    let to_a: Vec<_> = receiver.hits().into_iter().filter(|h| h.path == "/a").collect();
    assert_eq!(to_a.len(), 3, "two deliveries to a, one of them twice");

    // Bad input names the problem.
    for (path, want, code) in [
        ("/api/webhooks/deliveries/0", 404, "DELIVERY_NOT_FOUND"),
        ("/api/webhooks/deliveries/1.5", 400, "INVALID_DELIVERY_ID"),
        ("/api/webhooks/deliveries/x", 400, "INVALID_DELIVERY_ID"),
        ("/api/webhooks/deliveries/999999", 404, "DELIVERY_NOT_FOUND"),
        ("/api/webhooks/deliveries?status=lost", 400, "INVALID_QUERY"),
        ("/api/webhooks/deliveries?limit=0", 400, "INVALID_QUERY"),
        ("/api/webhooks/deliveries?before=-1", 400, "INVALID_QUERY"),
        ("/api/webhooks/deliveries?hook=No%20Such", 400, "INVALID_QUERY"),
        ("/api/webhooks/deliveries?jobId=..%2F..", 400, "INVALID_JOB_ID"),
        ("/api/webhooks/deliveries?url=http://x", 400, "INVALID_QUERY"),
    ] {
        let (status, body) = server.get(path).await;
        assert_eq!((status, body["code"].as_str()), (want, Some(code)), "{path}: {body}");
    }
    assert_eq!(deliveries(&server, "?hook=gone", 0).await.len(), 0, "an unconfigured hook lists nothing");
    let (status, body) = server.post("/api/webhooks/deliveries/999999/redeliver", json!({})).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("DELIVERY_NOT_FOUND")));
    // Redelivery is an action: it needs the key.
    let res = reqwest::Client::new()
        .post(format!("{}/api/webhooks/deliveries/{id}/redeliver", server.url))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);

    // The CLI lists the same deliveries, filtered, and redelivers with the key.
    let cli = |args: &[&str]| {
        let out = tokio::task::block_in_place(|| {
            std::process::Command::new(env!("CARGO_BIN_EXE_alephauto"))
                .args(args)
                .env("ALEPHAUTO_URL", &server.url)
                .env("ALEPHAUTO_API_KEY", server.api_key.as_deref().unwrap_or(""))
                .output()
                .expect("run the CLI")
        });
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let listed = cli(&["webhooks", "deliveries", "--hook", "b"]);
    assert_eq!(listed.lines().count(), 2, "a header and one delivery:\n{listed}");
    assert!(listed.contains(bad["id"].as_str().unwrap()) && listed.contains("delivered"), "{listed}");
    let paged = cli(&["webhooks", "deliveries", "--limit", "1"]);
    assert!(paged.contains("next page: --before "), "{paged}");
    let hooks_out = cli(&["webhooks", "list"]);
    assert!(hooks_out.contains("generic") && !hooks_out.contains(SECRET), "{hooks_out}");
    let again = cli(&["webhooks", "redeliver", &id.to_string()]);
    assert_eq!(again.trim(), format!("delivery {id} is pending"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_of_a_pending_delivery_is_a_conflict() {
    let receiver = Receiver::start(&[Answer::Hang]).await;
    let hooks = hook("slow", &receiver.url("/slow"), r#"["completed"]"#, &format!("secret = {SECRET:?}"));
    let server = Server::start_with(&echo(), &notify("timeout_secs = 60", &hooks));
    server.run("echo", json!({})).await;
    let list = deliveries(&server, "", 1).await;
    let id = list[0]["id"].as_i64().unwrap();
    let (status, body) = server.post(&format!("/api/webhooks/deliveries/{id}/redeliver"), json!({})).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("DELIVERY_PENDING")), "{body}");
}

#[test]
fn configuration_errors_name_the_webhook_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alephauto.toml");
    std::fs::write(
        &config,
        format!(
            "[runtime]\ndata_dir = {:?}\n[[notify.webhooks]]\nid = \"x\"\nurl = \"file:///etc/passwd\"\nevents = [\"failed\"]\n",
            dir.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_alephauto"))
        .args(["serve", "--bind", "127.0.0.1:0", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("notify.webhooks[0].url must be an http:// or https:// URL"), "{err}");
    assert!(err.contains("notify.webhooks[0]: a generic webhook needs `secret` or `secret_env`"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_postgresql_send_each_delivery_once() {
    let receiver = Receiver::start(&[Answer::Status(500)]).await;
    let url = crate::support::pg_schema_url("hooks");
    let hooks = hook("ops", &receiver.url("/pg"), r#"["completed"]"#, &format!("secret = {SECRET:?}"));
    let node = |id: &str| {
        let runtime = format!("database_url = {url:?}\nnode_id = {id:?}\nlease_secs = 2\n");
        Server::start_with(&echo(), &(runtime + &notify("backoff_base_ms = 200", &hooks)))
    };
    let a = node("a");
    let b = node("b");
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(a.trigger_ok("echo", json!({})).await);
    }
    for id in &ids {
        assert_eq!(a.wait_job(id, Duration::from_secs(60)).await["status"], "completed");
    }
    // Both nodes derive every event; each is stored once and delivered once (the first
    // attempt of one of them fails and is retried).
    eventually(Duration::from_secs(30), "four deliveries, all delivered", || async {
        let (_, page) = b.get("/api/webhooks/deliveries?status=delivered").await;
        let n = page["deliveries"].as_array().map_or(0, Vec::len);
        if n == 4 { Ok(()) } else { Err(page) }
    })
    .await;
    let listed = deliveries(&a, "", 4).await;
    let attempts: u64 = listed.iter().map(|d| d["attempts"].as_u64().unwrap()).sum();
    assert_eq!(attempts, 5, "{listed:?}");
    let hits = receiver.hits();
    assert_eq!(hits.len(), 5, "one request per attempt across both nodes");
    let mut keys: Vec<Value> =
        hits.iter().map(|h| serde_json::from_slice::<Value>(&h.body).unwrap()["eventKey"].clone()).collect();
    keys.sort_by_key(|k| k.to_string());
    keys.dedup();
    assert_eq!(keys.len(), 4);
    let detail_id = listed.iter().find(|d| d["attempts"] == 2).expect("the retried delivery")["id"].as_i64().unwrap();
    let (_, detail) = b.get(&format!("/api/webhooks/deliveries/{detail_id}")).await;
    let codes: Vec<_> = detail["attemptLog"].as_array().unwrap().iter().map(|x| x["statusCode"].clone()).collect();
    assert_eq!(codes, [json!(500), json!(200)], "{detail}");
}

/// Sentry, when a DSN is configured (off otherwise): a failed job reaches a loopback Sentry
/// endpoint as an event tagged with its pipeline and failure code, with the DSN's key in
/// `X-Sentry-Auth`; a completed job sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_is_reported_to_sentry_when_a_dsn_is_configured() {
    let got: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/api/42/envelope/",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let sink = sink.clone();
            async move {
                let auth = headers.get("x-sentry-auth").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                sink.lock().unwrap().push((auth, String::from_utf8_lossy(&body).into_owned()));
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dsn = format!("http://publickey@{}/42", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let server = Server::start_with(
        &pipeline("echo", "fixture_echo", "roots = [\"ROOT\"]"),
        &format!("sentry_dsn = {dsn:?}\nmax_attempts = 1\n"),
    );
    let ok = server.run("echo", json!({})).await;
    assert_eq!(ok["status"], "completed", "{ok}");
    let failed = server.run("echo", json!({"failWith": "failed", "message": "the disk is full"})).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let id = failed["id"].as_str().unwrap().to_string();

    let reports = eventually(Duration::from_secs(30), "a Sentry envelope for the failed job", || async {
        let got = got.lock().unwrap().clone();
        if got.iter().any(|(_, body)| body.contains(&id)) { Ok(got) } else { Err(server.log()) }
    })
    .await;
    let (auth, body) = reports.iter().find(|(_, body)| body.contains(&id)).unwrap();
    assert!(auth.contains("sentry_key=publickey"), "{auth}");
    assert!(body.contains("the disk is full") && body.contains("\"pipeline\":\"echo\""), "{body}");
    assert!(body.contains("\"failure_code\":\"FAILED\""), "{body}");
    let ok_id = ok["id"].as_str().unwrap();
    assert!(!reports.iter().any(|(_, body)| body.contains(ok_id)), "a completed job is not reported");
}
