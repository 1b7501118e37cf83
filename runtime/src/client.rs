//! A small HTTP + WebSocket client for the CLI: talks to a running server. URLs are built
//! from path segments and query pairs (both percent-encoded by `url`); the API key travels
//! only in the `X-API-Key` header, on the WebSocket handshake too, never in a URL.

use anyhow::{Context, Result};
use futures::{SinkExt, StreamExt};
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Method, Url};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The header that carries the API key.
pub const API_KEY_HEADER: &str = "x-api-key";

/// Why a call to the server failed, as the CLI's exit code tells it.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No answer: connection refused or reset, DNS, timeout, the feed dropped.
    #[error("cannot reach the server at {base}: {detail}")]
    Unreachable {
        /// The server's base URL.
        base: String,
        /// What the transport said.
        detail: String,
    },
    /// The server answered with an error status.
    #[error("{method} {path} → {status}: {message}{}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Refused {
        /// The request method.
        method: Method,
        /// The request path (without the query).
        path: String,
        /// The HTTP status.
        status: reqwest::StatusCode,
        /// The API's `code`, when the body had one.
        code: Option<String>,
        /// The API's `error` message, else the body.
        message: String,
    },
}

/// A client of one server.
#[derive(Debug, Clone)]
pub struct Client {
    base: Url,
    api_key: Option<HeaderValue>,
    http: reqwest::Client,
}

impl Client {
    /// A client for `base` (e.g. `http://127.0.0.1:8080`, possibly with a path prefix).
    pub fn new(base: &str, api_key: Option<String>) -> Result<Self> {
        let mut base = Url::parse(base).with_context(|| format!("--server {base:?} is not a URL"))?;
        anyhow::ensure!(matches!(base.scheme(), "http" | "https"), "--server must be an http:// or https:// URL");
        anyhow::ensure!(
            base.query().is_none() && base.fragment().is_none(),
            "--server must not have a query or fragment"
        );
        // `join`-free segment pushing needs a base path without a trailing empty segment.
        if let Ok(mut segments) = base.path_segments_mut() {
            segments.pop_if_empty();
        }
        let api_key = api_key
            .map(|k| {
                let mut v = HeaderValue::from_str(k.trim()).context("the API key must be printable ASCII")?;
                // Keeps it out of debug output of the request.
                v.set_sensitive(true);
                anyhow::Ok(v)
            })
            .transpose()?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .context("building the HTTP client")?;
        Ok(Self { base, api_key, http })
    }

    /// The URL of `segments` (each one percent-encoded as one path segment) with `query`.
    pub fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    fn unreachable(&self, e: impl std::fmt::Display) -> anyhow::Error {
        ClientError::Unreachable { base: self.base.to_string(), detail: e.to_string() }.into()
    }

    /// Sends a request; a non-2xx answer becomes `ClientError::Refused` with the server's message.
    pub async fn call(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Result<Value> {
        let url = self.url(segments, query);
        let mut req = self.http.request(method.clone(), url.clone());
        if let Some(key) = &self.api_key {
            req = req.header(HeaderName::from_static(API_KEY_HEADER), key.clone());
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        self.send(method, &url, req).await
    }

    /// PUTs a component's bytes (`application/wasm`) to `segments`.
    pub async fn put_wasm(&self, segments: &[&str], wasm: Vec<u8>) -> Result<Value> {
        let url = self.url(segments, &[]);
        let mut req = self
            .http
            .put(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/wasm")
            // Compiling and initialising a large component takes a while.
            .timeout(std::time::Duration::from_secs(180))
            .body(wasm);
        if let Some(key) = &self.api_key {
            req = req.header(HeaderName::from_static(API_KEY_HEADER), key.clone());
        }
        self.send(Method::PUT, &url, req).await
    }

    async fn send(&self, method: Method, url: &Url, req: reqwest::RequestBuilder) -> Result<Value> {
        let res = req.send().await.map_err(|e| self.unreachable(error_chain(&e)))?;
        let status = res.status();
        let text = res.text().await.map_err(|e| self.unreachable(error_chain(&e)))?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() {
            let message =
                value.get("error").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| value.to_string());
            let code = value.get("code").and_then(Value::as_str).map(str::to_string);
            return Err(ClientError::Refused { method, path: url.path().to_string(), status, code, message }.into());
        }
        Ok(value)
    }

    /// GET `segments` with `query`.
    pub async fn get(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Value> {
        self.call(Method::GET, segments, query, None).await
    }

    /// POST `body` to `segments`.
    pub async fn post(&self, segments: &[&str], body: Value) -> Result<Value> {
        self.call(Method::POST, segments, &[], Some(body)).await
    }

    /// Opens the WebSocket feed subscribed to the `jobs` channel.
    pub async fn subscribe_jobs(&self) -> Result<JobFeed> {
        let mut url = self.url(&["ws"], &[]);
        let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
        url.set_scheme(scheme).map_err(|()| anyhow::anyhow!("cannot make a WebSocket URL of {url}"))?;
        let mut request = url.as_str().into_client_request().context("building the WebSocket request")?;
        if let Some(key) = &self.api_key {
            request.headers_mut().insert(HeaderName::from_static(API_KEY_HEADER), key.clone());
        }
        let (mut ws, _) = match tokio_tungstenite::connect_async(request).await {
            Ok(ok) => ok,
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
                let status = res.status();
                let body = res.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default();
                let value: Value = serde_json::from_str(&body).unwrap_or(Value::String(body.into_owned()));
                return Err(ClientError::Refused {
                    method: Method::GET,
                    path: url.path().to_string(),
                    status,
                    code: value.get("code").and_then(Value::as_str).map(str::to_string),
                    message: value
                        .get("error")
                        .and_then(Value::as_str)
                        .map_or_else(|| value.to_string(), str::to_string),
                }
                .into());
            }
            Err(e) => return Err(self.unreachable(format!("opening the WebSocket feed: {e}"))),
        };
        ws.send(Message::Text(json!({"type": "subscribe", "channels": ["jobs"]}).to_string().into()))
            .await
            .map_err(|e| self.unreachable(format!("subscribing to jobs: {e}")))?;
        // Wait for the acknowledgement so no event after this point is missed.
        while let Some(msg) = ws.next().await {
            if let Message::Text(t) = msg.map_err(|e| self.unreachable(format!("reading the WebSocket feed: {e}")))?
                && serde_json::from_str::<Value>(&t)
                    .ok()
                    .and_then(|v| v["type"].as_str().map(str::to_string))
                    .as_deref()
                    == Some("subscribed")
            {
                break;
            }
        }
        Ok(JobFeed { ws, base: self.base.to_string() })
    }
}

/// `e` and its causes on one line (reqwest's own message omits the cause, e.g. "connection refused").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// A WebSocket subscription to job events.
pub struct JobFeed {
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    base: String,
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
            let msg = msg.map_err(|e| ClientError::Unreachable {
                base: self.base.clone(),
                detail: format!("reading the WebSocket feed: {e}"),
            })?;
            match msg {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_encode_segments_and_query_values() {
        let c = Client::new("http://127.0.0.1:9/prefix/", None).unwrap();
        let url = c.url(&["api", "jobs", "a/b?c"], &[("status", "failed&limit=1"), ("pipelineId", "x y")]);
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/prefix/api/jobs/a%2Fb%3Fc?status=failed%26limit%3D1&pipelineId=x+y"
        );
        assert!(Client::new("ftp://x", None).is_err());
        assert!(Client::new("not a url", None).is_err());
    }
}
