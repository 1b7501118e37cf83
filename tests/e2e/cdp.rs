//! A tiny Chrome DevTools Protocol client over a WebSocket: launches headless
//! Chromium, drives a page (navigate, evaluate, wait, screenshot) for the browser tests.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

pub fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("target"));
    let dir = target.join("e2e-artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

pub fn find_chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ALEPHAUTO_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|p| p.is_file())
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Headless Chromium with one page, driven over the DevTools protocol.
pub struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    ws: Ws,
    next_id: u64,
    session: String,
    stderr: Arc<Mutex<String>>,
    /// Uncaught exceptions and console errors from the page.
    page_errors: Vec<String>,
}

impl Browser {
    /// Starts Chromium, or prints SKIP and returns `None` when it is not installed.
    pub async fn launch() -> Option<Browser> {
        let Some(bin) = find_chromium() else {
            eprintln!(
                "SKIP: chromium is not installed (run scripts/setup.sh, or set ALEPHAUTO_CHROMIUM); \
                 the dashboard browser test did not run"
            );
            return None;
        };
        let profile = tempfile::tempdir().expect("profile dir");
        let mut child = Command::new(&bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--window-size=1440,1000",
                "--remote-debugging-port=0",
                "about:blank",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let pipe = child.stderr.take().expect("stderr");
            let log = stderr.clone();
            std::thread::spawn(move || {
                // Keep draining so Chromium never blocks on a full pipe.
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if let Some(url) = line.strip_prefix("DevTools listening on ") {
                        let _ = tx.send(url.trim().to_string());
                    }
                    let mut log = log.lock().unwrap();
                    if log.len() < 64 * 1024 {
                        log.push_str(&line);
                        log.push('\n');
                    }
                }
            });
        }
        let url = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!("chromium did not print its DevTools URL; stderr:\n{}", stderr.lock().unwrap());
            }
        };
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.expect("connect to DevTools");
        let mut b = Browser {
            child,
            _profile: profile,
            ws,
            next_id: 0,
            session: String::new(),
            stderr,
            page_errors: Vec::new(),
        };
        let target = b.send("Target.createTarget", json!({"url": "about:blank"})).await;
        let target_id = target["targetId"].as_str().expect("targetId").to_string();
        let attached = b.send("Target.attachToTarget", json!({"targetId": target_id, "flatten": true})).await;
        b.session = attached["sessionId"].as_str().expect("sessionId").to_string();
        b.send("Page.enable", json!({})).await;
        b.send("Runtime.enable", json!({})).await;
        b.send(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1440, "height": 1000, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await;
        Some(b)
    }

    /// Sends a command (to the page once attached) and waits for its answer,
    /// noting page errors among the events that arrive meanwhile.
    pub async fn send(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.send_in(&session, method, params).await
    }

    /// Sends a command to `session` (`""`: the browser itself) and waits for its answer.
    pub async fn send_in(&mut self, session: &str, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if !session.is_empty() {
            msg["sessionId"] = json!(session);
        }
        self.ws.send(Message::Text(msg.to_string().into())).await.expect("send to DevTools");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next()).await;
            let text = match next {
                Ok(Some(Ok(Message::Text(t)))) => t,
                Ok(Some(Ok(_))) => continue,
                Ok(other) => panic!("DevTools connection ended: {other:?}\n{}", self.stderr.lock().unwrap()),
                Err(_) => panic!("no answer to {method} in time"),
            };
            let v: Value = serde_json::from_str(&text).expect("DevTools JSON");
            if v["id"] == id {
                if let Some(err) = v.get("error") {
                    panic!("{method} failed: {err}");
                }
                return v["result"].clone();
            }
            match v["method"].as_str() {
                Some("Runtime.exceptionThrown") => {
                    let d = &v["params"]["exceptionDetails"];
                    self.page_errors.push(format!("{} {}", d["text"], d["exception"]["description"]));
                }
                Some("Runtime.consoleAPICalled") if v["params"]["type"] == "error" => {
                    self.page_errors.push(v["params"]["args"].to_string());
                }
                _ => {}
            }
        }
    }

    /// Runs `source` in every new document before the page's own scripts.
    pub async fn add_init_script(&mut self, source: &str) {
        self.send("Page.addScriptToEvaluateOnNewDocument", json!({"source": source})).await;
    }

    pub async fn goto(&mut self, url: &str) {
        self.send("Page.navigate", json!({"url": url})).await;
    }

    /// Evaluates `expr` in the page and returns its JSON value.
    pub async fn eval(&mut self, expr: &str) -> Value {
        let r = self
            .send("Runtime.evaluate", json!({"expression": expr, "returnByValue": true, "awaitPromise": true}))
            .await;
        if let Some(ex) = r.get("exceptionDetails") {
            panic!(
                "page script failed: {expr}\n{}",
                ex["exception"]["description"].as_str().unwrap_or(&ex.to_string())
            );
        }
        r["result"]["value"].clone()
    }

    /// Polls `expr` until it is truthy; returns its value.
    pub async fn wait_for(&mut self, expr: &str, secs: u64) -> Value {
        let start = Instant::now();
        let guarded = format!("(() => {{ try {{ return {expr}; }} catch (e) {{ return null; }} }})()");
        loop {
            let v = self.eval(&guarded).await;
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return v;
            }
            if start.elapsed() > Duration::from_secs(secs) {
                let body = self.eval("document.body ? document.body.innerText.slice(0, 3000) : ''").await;
                let _ = self.screenshot(&artifacts_dir().join("dashboard-timeout.png")).await;
                panic!(
                    "timed out waiting for: {expr}\npage errors: {:?}\npage text:\n{}",
                    self.page_errors,
                    body.as_str().unwrap_or("")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Evaluates `expr` inside the page's frame whose URL ends with `url_suffix` (DevTools
    /// evaluates even where the frame's sandbox keeps the page's own scripts off); `None` while
    /// no such frame exists. A cross-process frame is reached through its own target, an
    /// in-process one through an isolated world.
    pub async fn frame_eval(&mut self, url_suffix: &str, expr: &str) -> Option<Value> {
        let targets = self.send_in("", "Target.getTargets", json!({})).await;
        let oopif = targets["targetInfos"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["type"] == "iframe" && t["url"].as_str().is_some_and(|u| u.ends_with(url_suffix)));
        let params = json!({"expression": expr, "returnByValue": true});
        let r = if let Some(t) = oopif {
            let attached =
                self.send_in("", "Target.attachToTarget", json!({"targetId": t["targetId"], "flatten": true})).await;
            let session = attached["sessionId"].as_str().expect("sessionId").to_string();
            self.send_in(&session, "Runtime.evaluate", params).await
        } else {
            let tree = self.send("Page.getFrameTree", json!({})).await;
            let mut stack = vec![tree["frameTree"].clone()];
            let mut found = None;
            while let Some(node) = stack.pop() {
                if node["frame"]["url"].as_str().is_some_and(|u| u.ends_with(url_suffix))
                    && node["frame"]["parentId"].is_string()
                {
                    found = node["frame"]["id"].as_str().map(str::to_string);
                    break;
                }
                stack.extend(node["childFrames"].as_array().into_iter().flatten().cloned());
            }
            let frame = found?;
            let world =
                self.send("Page.createIsolatedWorld", json!({"frameId": frame, "worldName": "e2e-probe"})).await;
            let mut params = params;
            params["contextId"] = world["executionContextId"].clone();
            self.send("Runtime.evaluate", params).await
        };
        if let Some(ex) = r.get("exceptionDetails") {
            panic!("frame script failed: {expr}\n{ex}");
        }
        Some(r["result"]["value"].clone())
    }

    pub async fn screenshot(&mut self, path: &std::path::Path) {
        let shot = self.send("Page.captureScreenshot", json!({"format": "png"})).await;
        let png = base64_decode(shot["data"].as_str().expect("png data"));
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(path, png).expect("write screenshot");
        eprintln!("screenshot: {}", path.display());
    }

    pub fn assert_no_page_errors(&self) {
        assert!(self.page_errors.is_empty(), "the page reported errors: {:#?}", self.page_errors);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let bytes: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &c)| acc | (u32::from(val(c)) << (18 - 6 * i)));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}
