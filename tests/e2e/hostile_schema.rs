//! A worker's parameter schema cannot stall the host: a schema bomb fails the worker's
//! init promptly, a heavy `pattern` meets capped input, errors stay small, and listing
//! pipelines never waits on a worker's init.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Server, pipeline};

/// Polls `/health` until `stop`, returning the worst probe latency. Each probe is the best of
/// up to three tries, so one scheduling hiccup on a shared machine is not read as a stall.
fn watch_health(url: String, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Duration> {
    tokio::spawn(async move {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
        let mut worst = Duration::ZERO;
        while !stop.load(Ordering::Acquire) {
            let mut best = Duration::MAX;
            for _ in 0..3 {
                let started = Instant::now();
                let res = http.get(format!("{url}/health")).send().await.expect("GET /health");
                assert_eq!(res.status(), 200);
                best = best.min(started.elapsed());
                if best < Duration::from_millis(100) {
                    break;
                }
            }
            worst = worst.max(best);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        worst
    })
}

/// POSTs a trigger body, returning status, raw body length and JSON, and how long it took.
async fn trigger_raw(server: &Server, id: &str, body: String) -> (u16, usize, Value, Duration) {
    let started = Instant::now();
    let res = server
        .http
        .post(format!("{}/api/pipelines/{id}/trigger", server.url))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("POST trigger");
    let status = res.status().as_u16();
    let text = res.text().await.expect("body");
    let elapsed = started.elapsed();
    (status, text.len(), serde_json::from_str(&text).unwrap_or(Value::Null), elapsed)
}

fn listed(list: &Value, id: &str) -> Value {
    list["pipelines"].as_array().expect("pipelines").iter().find(|p| p["id"] == id).expect("listed").clone()
}

#[tokio::test]
async fn a_schema_bomb_fails_init_promptly_and_the_host_stays_up() {
    let mut server =
        Server::start(&[pipeline("bomb", "fixture_schema_bomb", ""), pipeline("noop", "fixture_noop", "")].concat());
    let stop = Arc::new(AtomicBool::new(false));
    let health = watch_health(server.url.clone(), stop.clone());

    for attempt in 0..2 {
        let (status, len, body, took) = trigger_raw(&server, "bomb", r#"{"parameters":{}}"#.into()).await;
        assert!(took < Duration::from_secs(10), "attempt {attempt}: answered in {took:?}");
        assert!(len < 2048, "a small error body: {len} bytes");
        if attempt == 0 {
            assert_eq!((status, body["code"].as_str()), (503, Some("WORKER_INIT_FAILED")), "{body}");
            let error = body["error"].as_str().unwrap_or_default();
            assert!(
                error.contains("host walk budget") && error.contains("deeper than 64 subschemas"),
                "names the budget: {error}"
            );
        } else {
            // The breaker counts the failure; either way the trigger is refused at once.
            assert_eq!(status, 503, "{body}");
        }
    }

    // A normal pipeline beside it keeps working, and the listing reports the failure.
    let job = server.run("noop", json!({})).await;
    assert_eq!(job["status"], "completed", "{job}");
    let (code, list) = server.get("/api/pipelines").await;
    assert_eq!(code, 200);
    let bomb = listed(&list, "bomb");
    assert_eq!(bomb["state"], "failed", "{bomb}");
    assert!(bomb["lastError"].as_str().unwrap_or_default().contains("budget"), "{bomb}");

    stop.store(true, Ordering::Release);
    let worst = health.await.expect("health watcher");
    assert!(worst < Duration::from_millis(100), "/health took {worst:?} during the bomb");
    let exit = server.terminate();
    assert!(exit.success(), "SIGTERM stops the server cleanly: {exit:?}");
}

#[tokio::test]
async fn a_heavy_pattern_meets_capped_input_and_a_small_error() {
    let server = Server::start(&pipeline("regex", "fixture_schema_regex", ""));
    assert_eq!(server.trigger("regex", json!({"name": "abcZ"})).await.0, 201, "a matching name is accepted");
    let stop = Arc::new(AtomicBool::new(false));
    let health = watch_health(server.url.clone(), stop.clone());

    // One megabyte against the pattern: refused before the regex runs, without echoing it.
    let body = json!({"parameters": {"name": "a".repeat(1_000_000)}}).to_string();
    let (status, len, err, took) = trigger_raw(&server, "regex", body).await;
    assert_eq!((status, err["code"].as_str()), (400, Some("INVALID_PARAMETERS")), "{err}");
    assert!(len < 1024, "the error body is {len} bytes");
    assert!(err["error"].as_str().unwrap_or_default().contains("8192"), "{err}");
    assert!(took < Duration::from_secs(3), "answered in {took:?}");

    // Under the per-string cap but many of them: the total cap holds.
    let many: serde_json::Map<String, Value> = (0..16).map(|i| (format!("k{i}"), json!("a".repeat(8000)))).collect();
    let (status, len, err, took) = trigger_raw(&server, "regex", json!({"parameters": many}).to_string()).await;
    assert_eq!(status, 400, "{err}");
    assert!(len < 1024 && took < Duration::from_secs(3), "{len} bytes in {took:?}");

    // The most the caps allow, checked for real: a mismatch, answered promptly and briefly.
    let (status, len, err, took) =
        trigger_raw(&server, "regex", json!({"parameters": {"name": "a".repeat(8192)}}).to_string()).await;
    assert_eq!(status, 400, "{err}");
    assert!(err["error"].as_str().unwrap_or_default().contains("does not match the pattern"), "{err}");
    assert!(len < 1024, "the 8 KiB value is not echoed whole: {len} bytes");
    assert!(took < Duration::from_secs(3), "answered in {took:?}");

    stop.store(true, Ordering::Release);
    let worst = health.await.expect("health watcher");
    assert!(worst < Duration::from_millis(100), "/health took {worst:?} while patterns were checked");
}

#[tokio::test]
async fn listing_never_waits_on_a_hanging_init() {
    let mut server =
        Server::start(&[pipeline("slow", "fixture_slow_init", ""), pipeline("noop", "fixture_noop", "")].concat());
    for round in 0..3 {
        let started = Instant::now();
        let (code, list) = server.get("/api/pipelines").await;
        let took = started.elapsed();
        assert_eq!(code, 200, "{list}");
        // The first listing starts the init and waits a grace of one second; later ones not at all.
        let bound = if round == 0 { Duration::from_secs(5) } else { Duration::from_secs(1) };
        assert!(took < bound, "round {round}: listing took {took:?} behind a hanging init");
        let slow = listed(&list, "slow");
        assert_eq!(slow["state"], "initialising", "{slow}");
        assert_eq!(slow["workerLoaded"], false, "{slow}");
        assert!(slow["paramsSchema"].is_null(), "{slow}");
    }
    // The other pipeline loads and runs meanwhile.
    assert_eq!(server.run("noop", json!({})).await["status"], "completed");
    let (_, list) = server.get("/api/pipelines").await;
    assert_eq!(listed(&list, "noop")["state"], "ready");
    let (code, _) = server.get("/health").await;
    assert_eq!(code, 200);
    let exit = server.terminate();
    assert!(exit.success(), "SIGTERM stops the server with an init still hanging: {exit:?}");
}
