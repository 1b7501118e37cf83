//! The HTTP edge (issue #23): a web page on another origin cannot drive or read the API
//! while the dashboard on its own origin works; rebinding `Host` values, non-JSON
//! actions and unknown keys are refused; `serve --api-key` is enforced; a first run
//! generates a private key; WebSocket messages, connections and silence are bounded;
//! half-sent requests are cut off; mutating routes are rate limited.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::cdp::{Browser, artifacts_dir};
use crate::support::{Server, pipeline};

fn fixtures() -> String {
    pipeline("noop", "fixture_noop", "")
}

/// No key at all (the loopback-only opt-out): what stops a page must be the edge itself.
const NO_KEY: &str = "[server]\nrequire_key = false\n";

fn addr(server: &Server) -> String {
    server.url.trim_start_matches("http://").to_string()
}

/// A client's end of the `/ws` feed.
type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `/ws` with one extra handshake header (the key as `x-api-key`, or subprotocols).
async fn ws_with(
    server: &Server,
    header: &'static str,
    value: &str,
) -> Result<(Ws, tokio_tungstenite::tungstenite::handshake::client::Response), tokio_tungstenite::tungstenite::Error> {
    let mut req = format!("{}/ws", server.url.replacen("http", "ws", 1)).into_client_request().expect("ws request");
    req.headers_mut().insert(header, value.parse().expect("a header value"));
    tokio_tungstenite::connect_async(req).await
}

/// Sends `request` on a fresh connection and returns the status line's code and the body.
fn raw(server: &Server, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr(server)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

async fn jobs_total(server: &Server) -> u64 {
    let (code, page) = server.get("/api/jobs").await;
    assert_eq!(code, 200, "{page}");
    page["total"].as_u64().unwrap()
}

// ------------------------------------------------------------------ browsers

/// A one-page HTTP server on its own loopback port: the attacker's site.
async fn serve_page(html: String) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            let html = html.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    html.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(html.as_bytes()).await;
            });
        }
    });
    (origin, task)
}

/// Every way a page can send a request elsewhere without asking first, plus the ones
/// that ask (JSON, a read, the live feed); each outcome as the page saw it.
const ATTACK_PAGE: &str = r#"<!doctype html><html><body>
<iframe name="sink"></iframe>
<form id="f" method="POST" enctype="text/plain" target="sink" action="TARGET/api/pipelines/noop/trigger">
<input name='{"parameters":{},"x":"' value='"}'></form>
<script>
window.__attack = (async () => {
  const T = 'TARGET';
  const out = {};
  try {
    const r = await fetch(T + '/api/pipelines/noop/trigger', { method: 'POST', mode: 'no-cors',
      headers: { 'Content-Type': 'text/plain' }, body: '{"parameters":{}}' });
    out.plain = r.type;
  } catch (e) { out.plain = 'error'; }
  try {
    const r = await fetch(T + '/api/jobs/x/cancel', { method: 'POST', mode: 'no-cors' });
    out.bodyless = r.type;
  } catch (e) { out.bodyless = 'error'; }
  try {
    const r = await fetch(T + '/api/pipelines/noop/trigger', { method: 'POST',
      headers: { 'Content-Type': 'application/json' }, body: '{"parameters":{}}' });
    out.json = r.status;
  } catch (e) { out.json = 'error'; }
  try { const r = await fetch(T + '/api/jobs'); out.read = await r.text(); } catch (e) { out.read = 'error'; }
  out.ws = await new Promise((done) => {
    const ws = new WebSocket(T.replace('http', 'ws') + '/ws');
    ws.onopen = () => done('open');
    ws.onerror = () => done('error');
  });
  document.getElementById('f').submit();
  await new Promise((r) => setTimeout(r, 1500));
  return out;
})();
</script></body></html>"#;

#[tokio::test]
async fn a_page_on_another_origin_cannot_trigger_or_read_while_the_dashboard_can() {
    let Some(mut browser) = Browser::launch().await else { return };
    // The worst case: no key at all, so only the edge checks stand in the way.
    let server = Server::start_with(&fixtures(), NO_KEY);
    let (evil, page_task) = serve_page(ATTACK_PAGE.replace("TARGET", &server.url)).await;
    browser.goto(&format!("{evil}/")).await;
    browser.wait_for("window.__attack !== undefined", 20).await;
    let seen = browser.eval("window.__attack").await;
    eprintln!("what the page on {evil} saw: {seen}");
    assert_eq!(seen["plain"], "opaque", "{seen}");
    assert_eq!(seen["json"], "error", "the preflight is refused: {seen}");
    assert_eq!(seen["read"], "error", "the page cannot read the API: {seen}");
    assert_eq!(seen["ws"], "error", "nor open the live feed: {seen}");
    assert_eq!(jobs_total(&server).await, 0, "no request from the page created a job\n{}", server.log());
    let log = server.log();
    assert!(log.contains("refused a cross-origin request"), "{log}");
    page_task.abort();

    // The dashboard on the server's own origin triggers and follows a job.
    browser.goto(&server.url).await;
    browser.wait_for("document.querySelector('[data-trigger=\"noop\"]:not([disabled])') !== null", 60).await;
    browser.wait_for("document.getElementById('conn').dataset.state === 'live'", 30).await;
    browser.eval("document.querySelector('[data-trigger=\"noop\"]').click()").await;
    browser.wait_for("document.getElementById('trigger-submit') !== null", 10).await;
    browser.eval("document.getElementById('trigger-submit').click()").await;
    let id = browser
        .wait_for("document.querySelector('tr[data-job-id^=\"noop-manual-\"]')?.dataset.jobId ?? null", 20)
        .await;
    let job = server.wait_job(id.as_str().unwrap(), Duration::from_secs(60)).await;
    assert_eq!(job["status"], "completed");
    // Cancel from the page (a body-less action) reaches the server as JSON: 409 for a finished job.
    let cancel = browser
        .eval(&format!(
            "fetch('/api/jobs/{}/cancel', {{method: 'POST', headers: {{'Content-Type': 'application/json'}}, body: '{{}}'}}).then(r => r.status)",
            id.as_str().unwrap()
        ))
        .await;
    assert_eq!(cancel, 409);
    browser.screenshot(&artifacts_dir().join("edge-dashboard.png")).await;
    browser.assert_no_page_errors();
}

#[tokio::test]
async fn origins_are_checked_over_plain_http_and_allowed_ones_get_cors() {
    let extra = "[server]\nrequire_key = false\nallowed_origins = [\"https://ops.example.com\"]\n";
    let server = Server::start_with(&fixtures(), extra);
    let trigger = server.url.clone() + "/api/pipelines/noop/trigger";
    let post = |origin: Option<&str>, ct: &str| {
        let mut req = server.http.post(&trigger).header("content-type", ct).body("{}");
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req.send()
    };
    // Foreign origins: 403 naming the problem, whatever the content type.
    for ct in ["text/plain", "application/json"] {
        let res = post(Some("http://evil.example"), ct).await.unwrap();
        assert_eq!(res.status(), 403);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["code"], "ORIGIN_NOT_ALLOWED", "{body}");
        assert!(body["error"].as_str().unwrap().contains("evil.example"), "{body}");
    }
    let res = post(Some("null"), "application/json").await.unwrap();
    assert_eq!(res.status(), 403);
    // Without an Origin (a no-cors request, curl): only JSON is taken.
    let res = post(None, "text/plain").await.unwrap();
    assert_eq!(res.status(), 415);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "UNSUPPORTED_MEDIA_TYPE");
    let res = server.http.post(server.url.clone() + "/api/jobs/x/cancel").send().await.unwrap();
    assert_eq!(res.status(), 415, "no body is no exception");
    let res = post(None, "application/x-www-form-urlencoded").await.unwrap();
    assert_eq!(res.status(), 415);
    assert_eq!(jobs_total(&server).await, 0);
    // A cross-site subresource load (an <img>, a <script>) is refused too.
    let res = server
        .http
        .get(server.url.clone() + "/api/jobs")
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "no-cors")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);

    // Its own origin, and JSON with parameters on the media type, are fine.
    let res = post(Some(&server.url), "application/json; charset=utf-8").await.unwrap();
    assert_eq!(res.status(), 201);
    // A wrong method is still a 405, not a 415.
    let res = server.http.put(&trigger).body("x").send().await.unwrap();
    assert_eq!(res.status(), 405);

    // An allowed origin: its preflight is answered and its request goes through, readable.
    let res = server
        .http
        .request(reqwest::Method::OPTIONS, &trigger)
        .header("origin", "https://ops.example.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type,x-api-key")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let allow = |res: &reqwest::Response| {
        res.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
    };
    assert_eq!(allow(&res), "https://ops.example.com");
    let res = post(Some("https://ops.example.com"), "application/json").await.unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(allow(&res), "https://ops.example.com");
    assert_eq!(jobs_total(&server).await, 2);
}

#[tokio::test]
async fn a_rebinding_host_is_refused_and_known_names_are_served() {
    let server = Server::start_with(&fixtures(), "[server]\nallowed_hosts = [\"aleph.internal\"]\n");
    let port = addr(&server).rsplit_once(':').unwrap().1.to_string();
    let get =
        |host: &str| raw(&server, &format!("GET /api/jobs HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"));
    for evil in [format!("evil.example:{port}"), "evil.example".to_string(), format!("127.0.0.1.nip.io:{port}")] {
        let (code, body) = get(&evil);
        assert_eq!(code, 421, "{evil}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("JSON body: {body}"));
        assert_eq!(v["code"], "HOST_NOT_ALLOWED", "{body}");
    }
    // The dashboard page itself is not served to a rebound name either.
    let (code, _) = raw(&server, &format!("GET / HTTP/1.1\r\nHost: evil.example:{port}\r\nConnection: close\r\n\r\n"));
    assert_eq!(code, 421);
    for ok in [format!("127.0.0.1:{port}"), format!("localhost:{port}"), format!("ALEPH.internal:{port}")] {
        let (code, body) = get(&ok);
        assert_eq!(code, 200, "{ok}: {body}");
    }
}

// ------------------------------------------------------------------ keys

/// `alephauto serve` with extra arguments; killed on drop.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `serve` on a fresh data folder with `args`; returns the process, its URL and
/// the lines it printed by then.
fn serve_with(dir: &std::path::Path, args: &[&str]) -> (Process, String, Vec<String>) {
    use std::io::BufRead as _;
    let config = dir.join("alephauto.toml");
    let data = dir.join("data");
    let text = format!("[runtime]\ndata_dir = {:?}\n{}", data.display().to_string(), fixtures());
    std::fs::write(&config, text).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_alephauto"))
        .args(["serve", "--bind", "127.0.0.1:0", "--config"])
        .arg(&config)
        .args(args)
        .env_remove("ALEPHAUTO_API_KEY")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let process = Process(child);
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while lines.len() < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        lines.push(rx.recv_timeout(left).expect("serve printed its address and dashboard URL"));
    }
    let url = lines[0].strip_prefix("AlephAuto listening on ").expect("listening line").to_string();
    (process, url, lines)
}

#[tokio::test]
async fn serve_honours_the_api_key_given_on_its_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, url, lines) = serve_with(dir.path(), &["--api-key", "from-the-flag"]);
    assert!(!lines[1].contains("#key="), "a configured key is never printed: {lines:?}");
    assert!(!dir.path().join("data/api-key").exists(), "no key is generated when one is given");
    let http = reqwest::Client::new();
    let trigger = |key: Option<&'static str>| {
        let mut req = http
            .post(format!("{url}/api/pipelines/noop/trigger"))
            .header("content-type", "application/json")
            .body("{}");
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        req.send()
    };
    assert_eq!(trigger(None).await.unwrap().status(), 401);
    assert_eq!(trigger(Some("wrong")).await.unwrap().status(), 403);
    assert_eq!(trigger(Some("from-the-flag")).await.unwrap().status(), 201);
    // Reads stay open.
    assert_eq!(http.get(format!("{url}/api/jobs")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_first_run_generates_a_private_key_that_later_runs_reuse() {
    let mut server = Server::start(&fixtures());
    let file = server.state.join("data/api-key");
    let key = server.api_key.clone().expect("a generated key");
    assert!(key.len() >= 32 && key.bytes().all(|b| b.is_ascii_hexdigit()), "{key}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    assert!(server.dashboard_url.ends_with(&format!("/#key={key}")), "{}", server.dashboard_url);
    assert!(!server.log().contains(&key), "the key stays out of the log");
    // Without the key, actions and the feed are refused; reads are open.
    let anonymous = reqwest::Client::new();
    let res = anonymous
        .post(format!("{}/api/pipelines/noop/trigger", server.url))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(anonymous.get(format!("{}/ws", server.url)).send().await.unwrap().status(), 401);
    assert_eq!(anonymous.get(format!("{}/api/jobs", server.url)).send().await.unwrap().status(), 200);
    // The key as the WebSocket subprotocol (what the dashboard sends); the server answers
    // with the plain protocol, so the key is not echoed.
    let protocols = |key: &str| format!("alephauto.v1, alephauto.key.{}", hex::encode(key));
    let (_ws, res) =
        ws_with(&server, "sec-websocket-protocol", &protocols(&key)).await.expect("subprotocol key accepted");
    assert_eq!(res.headers()["sec-websocket-protocol"], "alephauto.v1");
    match ws_with(&server, "sec-websocket-protocol", &protocols("wrong")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status(), 403),
        other => panic!("a wrong key must be refused: {:?}", other.map(|(_, r)| r.status())),
    }
    server.trigger_ok("noop", json!({})).await;
    // A restart reuses the same key.
    server.restart();
    assert_eq!(server.api_key.as_deref(), Some(key.as_str()));
    server.trigger_ok("noop", json!({})).await;
}

// ------------------------------------------------------------------ WebSocket bounds

const WS_LIMITS: &str = "[server]\nws_max_connections = 4\nws_max_message_bytes = 4096\nws_idle_timeout_secs = 3\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_messages_and_extra_connections_are_refused_and_the_server_stays_small() {
    let server = Server::start_with(&fixtures(), WS_LIMITS);
    server.run("noop", json!({})).await;
    let baseline = server.rss_kib();

    // Sixteen clients (the issue's attack): four get in, the rest get a 503 before any upgrade.
    let mut open = Vec::new();
    let mut refused = 0;
    for _ in 0..16 {
        match ws_with(&server, "x-api-key", server.api_key.as_deref().unwrap()).await {
            Ok((ws, _)) => open.push(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
                assert_eq!(res.status(), 503);
                let body: Value = serde_json::from_slice(res.body().as_deref().unwrap_or_default()).unwrap();
                assert_eq!(body["code"], "TOO_MANY_CONNECTIONS", "{body}");
                refused += 1;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!((open.len(), refused), (4, 12));

    // One sends a message just over the limit: closed with 1009 (Message Too Big). The
    // others send 16 MiB each: closed as soon as the frame header shows the size (a reset
    // may beat the close frame then, as the server never reads the rest).
    let mut codes = Vec::new();
    for (i, mut ws) in open.into_iter().enumerate() {
        let size = if i == 0 { 5000 } else { 16 << 20 };
        let _ = ws.send(Message::Text("x".repeat(size).into())).await;
        let code = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(msg) = ws.next().await {
                match msg {
                    Ok(Message::Close(frame)) => return frame.map(|f| f.code),
                    Ok(_) => {}
                    Err(_) => return None,
                }
            }
            None
        })
        .await
        .expect("the server closes the connection");
        codes.push(code);
    }
    eprintln!("close codes: {codes:?}");
    assert_eq!(codes[0], Some(CloseCode::Size), "{codes:?}");
    let after = server.rss_kib();
    eprintln!("server RSS: {baseline} KiB before, {after} KiB after 16 clients and 64 MiB of messages");
    assert!(after < baseline + 32 * 1024, "RSS grew from {baseline} to {after} KiB");

    // The slots are free again, the feed works, the server is healthy.
    let mut ws = server.ws().await;
    let hello = ws.next().await.unwrap().unwrap();
    assert!(hello.to_text().unwrap().contains("connected"), "{hello:?}");
    ws.send(Message::Text(r#"{"type":"ping"}"#.into())).await.unwrap();
    let (code, _) = server.get("/health").await;
    assert_eq!(code, 200);
    assert_eq!(server.run("noop", json!({})).await["status"], "completed");
}

/// The opcodes of the server frames in `bytes` (unmasked), with each close frame's code.
fn frames(mut bytes: &[u8]) -> Vec<(u8, Option<u16>)> {
    let mut out = Vec::new();
    while bytes.len() >= 2 {
        let opcode = bytes[0] & 0x0f;
        let (len, head) = match bytes[1] & 0x7f {
            126 if bytes.len() >= 4 => (usize::from(u16::from_be_bytes([bytes[2], bytes[3]])), 4),
            127 => break,
            n => (usize::from(n), 2),
        };
        let Some(payload) = bytes.get(head..head + len) else { break };
        let code = (opcode == 8 && len >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
        out.push((opcode, code));
        bytes = &bytes[head + len..];
    }
    out
}

#[tokio::test]
async fn a_silent_websocket_client_is_closed_and_a_live_one_is_kept() {
    let server = Server::start_with(&fixtures(), WS_LIMITS);
    // A client that completes the handshake and then never sends a byte (not even a pong).
    let host = addr(&server);
    let mut silent = tokio::net::TcpStream::connect(&host).await.unwrap();
    let key = server.api_key.clone().unwrap();
    let handshake = format!(
        "GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-API-Key: {key}\r\n\r\n"
    );
    silent.write_all(handshake.as_bytes()).await.unwrap();
    let opened = Instant::now();
    let mut live = server.ws().await;
    // The live client reads (so it answers the server's pings) for twice the idle limit.
    while opened.elapsed() < Duration::from_secs(6) {
        match tokio::time::timeout(Duration::from_millis(500), live.next()).await {
            Ok(Some(Ok(Message::Close(f)))) => panic!("a live client was closed: {f:?}"),
            Ok(Some(Err(e))) => panic!("a live client was cut: {e}"),
            Ok(None) => panic!("a live client was cut"),
            _ => {}
        }
    }
    // The silent one got the hello, pings, then a 1001 close, and the server hung up.
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), silent.read_to_end(&mut bytes))
        .await
        .expect("the server hung up on the silent client")
        .unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    let body = &bytes[text.find("\r\n\r\n").unwrap() + 4..];
    let seen = frames(body);
    assert_eq!(seen.first().map(|f| f.0), Some(1), "the hello first: {seen:?}");
    assert!(seen.iter().any(|f| f.0 == 9), "pinged: {seen:?}");
    assert_eq!(seen.last(), Some(&(8, Some(1001))), "closed as idle: {seen:?}");
}

// ------------------------------------------------------------------ slow clients

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_are_cut_off_and_slow_bodies_time_out() {
    let extra = "[server]\nheader_read_timeout_secs = 2\nrequest_timeout_secs = 3\n";
    let server = Server::start_with(&fixtures(), extra);
    let host = addr(&server);
    // Fifty slowloris clients: half a request head each (some of them WebSocket upgrades).
    let mut clients = Vec::new();
    for i in 0..50 {
        let mut s = tokio::net::TcpStream::connect(&host).await.unwrap();
        let head = if i % 2 == 0 {
            format!("GET /health HTTP/1.1\r\nHost: {host}\r\nX-Slow: ")
        } else {
            format!("GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")
        };
        s.write_all(head.as_bytes()).await.unwrap();
        clients.push(s);
    }
    let start = Instant::now();
    // The server keeps answering meanwhile.
    let t = Instant::now();
    let (code, _) = server.get("/health").await;
    assert_eq!(code, 200);
    assert!(t.elapsed() < Duration::from_secs(5), "/health took {:?} under the slowloris", t.elapsed());
    // Every half-sent request is disconnected after the header-read timeout (2 s), none long after.
    for mut s in clients {
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(10), async {
            let mut total = 0;
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return total,
                    Ok(n) => total += n,
                }
            }
        })
        .await
        .expect("the server cut the slow client off");
        assert!(n == 0 || std::str::from_utf8(&buf[..n]).is_ok_and(|t| !t.contains("200 OK")));
    }
    let cut = start.elapsed();
    eprintln!("50 half-sent requests cut off after {cut:?} (header_read_timeout_secs = 2)");
    assert!(cut >= Duration::from_millis(1500) && cut < Duration::from_secs(8), "{cut:?}");

    // A body sent a byte at a time: 408 after the request timeout (3 s).
    let mut s = tokio::net::TcpStream::connect(&host).await.unwrap();
    let key = server.api_key.clone().unwrap();
    let head = format!(
        "POST /api/pipelines/noop/trigger HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{{"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let start = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while start.elapsed() < Duration::from_secs(15) {
        tokio::select! {
            r = s.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => { answer.extend_from_slice(&buf[..n]); if answer.windows(4).any(|w| w == b"\r\n\r\n") { break; } }
            },
            _ = tokio::time::sleep(Duration::from_millis(500)) => { let _ = s.write_all(b" ").await; }
        }
    }
    let answer = String::from_utf8_lossy(&answer).to_string();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(start.elapsed() < Duration::from_secs(8), "{:?}", start.elapsed());
    assert_eq!(jobs_total(&server).await, 0);
}

// ------------------------------------------------------------------ rate limit

#[tokio::test]
async fn mutating_routes_are_rate_limited_per_client_with_retry_after() {
    let server = Server::start_with(&fixtures(), "[server.rate_limit]\nrequests = 3\nwindow_secs = 60\n");
    for _ in 0..3 {
        server.trigger_ok("noop", json!({})).await;
    }
    let res = server
        .http
        .post(format!("{}/api/pipelines/noop/trigger", server.url))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry), "one request comes back every 20 s: {retry}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "RATE_LIMITED", "{body}");
    // Cancels count too; reads do not.
    let (code, _) = server.post("/api/jobs/nope/cancel", json!({})).await;
    assert_eq!(code, 429);
    for _ in 0..10 {
        let (code, _) = server.get("/api/jobs").await;
        assert_eq!(code, 200);
    }
    assert_eq!(jobs_total(&server).await, 3);
}
