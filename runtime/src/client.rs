//! A small HTTP + WebSocket client for the CLI: talks to a running server.

use anyhow::{Context, Result, anyhow};
use futures::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// A client of one server.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    api_key: Option<String>,
    http: reqwest::Client,
}

impl Client {
    /// A client for `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: &str, api_key: Option<String>) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .context("building the HTTP client")?;
        Ok(Self { base: base.trim_end_matches('/').to_string(), api_key, http })
    }

    /// Sends a request; a non-2xx answer becomes an error carrying the server's message.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(key) = &self.api_key {
            req = req.header("x-api-key", key);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.with_context(|| format!("cannot reach the server at {}", self.base))?;
        let status = res.status();
        let text = res.text().await.context("reading the response")?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() {
            let msg = value.get("error").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| value.to_string());
            return Err(anyhow!("{method} {path} → {status}: {msg}"));
        }
        Ok(value)
    }

    /// GET `path`.
    pub async fn get(&self, path: &str) -> Result<Value> {
        self.call(Method::GET, path, None).await
    }

    /// POST `path` with `body`.
    pub async fn post(&self, path: &str, body: Value) -> Result<Value> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// Opens the WebSocket feed subscribed to the `jobs` channel.
    pub async fn subscribe_jobs(&self) -> Result<JobFeed> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
        let mut req = format!("{}/ws", self.base.replacen("http", "ws", 1))
            .into_client_request()
            .context("the WebSocket URL")?;
        // In a header, never the query string (the server refuses keys in URLs).
        if let Some(key) = &self.api_key {
            req.headers_mut().insert("x-api-key", key.parse().context("the API key is not a valid header value")?);
        }
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.context("opening the WebSocket feed")?;
        ws.send(Message::Text(json!({"type": "subscribe", "channels": ["jobs"]}).to_string().into()))
            .await
            .context("subscribing to jobs")?;
        // Wait for the acknowledgement so no event after this point is missed.
        while let Some(msg) = ws.next().await {
            if let Message::Text(t) = msg?
                && serde_json::from_str::<Value>(&t).ok().and_then(|v| v["type"].as_str().map(str::to_string)).as_deref()
                    == Some("subscribed")
                {
                    break;
                }
        }
        Ok(JobFeed { ws })
    }
}

/// A WebSocket subscription to job events.
pub struct JobFeed {
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
}

impl std::fmt::Debug for JobFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JobFeed")
    }
}

impl JobFeed {
    /// The next job event, or None when the server closed the feed.
    pub async fn next_event(&mut self) -> Result<Option<Value>> {
        while let Some(msg) = self.ws.next().await {
            match msg.context("reading the WebSocket feed")? {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(&t).context("bad event JSON")?;
                    if v["type"].as_str().is_some_and(|t| t.starts_with("job:")) {
                        return Ok(Some(v));
                    }
                }
                Message::Close(_) => return Ok(None),
                _ => {}
            }
        }
        Ok(None)
    }
}
