//! `/ws`: the live activity feed. Each client subscribes to channels (`jobs`,
//! `activity`, `*`); events come from the broadcast bus. A client that falls
//! behind the bus is disconnected: it never slows job execution down.
//!
//! Bounds: a client's messages and frames are capped (`server.ws_max_message_bytes`;
//! bigger closes the connection with 1009 before the payload is read), connections are
//! capped (`server.ws_max_connections`; more get 503 before the upgrade), and a client
//! that stays silent (no message, no pong to our pings) for `server.ws_idle_timeout_secs`
//! is closed. The handshake is an HTTP request, so the header-read timeout bounds it.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::sync::broadcast::error::RecvError;

use super::AppState;
use super::auth::{WS_PROTOCOL, ws_key_protocol};
use super::error::ApiError;
use crate::config::ServerConfig;
use crate::domain::format_ts;
use crate::events::JobEvent;

/// The WebSocket route.
pub fn routes() -> Router<AppState> {
    Router::new().route("/ws", get(upgrade))
}

/// The WebSocket bounds, shared by all clients.
#[derive(Debug)]
pub struct WsLimits {
    /// Largest message (and frame) a client may send.
    pub max_message: usize,
    /// Silence after which a client is closed.
    pub idle: Duration,
    /// One permit per open connection.
    pub connections: Arc<Semaphore>,
    max_connections: usize,
}

impl WsLimits {
    /// The limits of `[server]`.
    pub fn new(server: &ServerConfig) -> Arc<Self> {
        Arc::new(Self {
            max_message: server.ws_max_message_bytes,
            idle: Duration::from_secs(server.ws_idle_timeout_secs.max(3)),
            connections: Arc::new(Semaphore::new(server.ws_max_connections)),
            max_connections: server.ws_max_connections,
        })
    }
}

async fn upgrade(State(state): State<AppState>, ws: WebSocketUpgrade) -> Response {
    let Ok(permit) = state.ws.connections.clone().try_acquire_owned() else {
        tracing::warn!(limit = state.ws.max_connections, "refused a WebSocket client: connection limit reached");
        return ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "TOO_MANY_CONNECTIONS",
            message: format!(
                "The live feed has its maximum of {} clients (server.ws_max_connections); retry later",
                state.ws.max_connections
            ),
            retry_after: Some(5),
        }
        .into_response();
    };
    // Answer with WS_PROTOCOL when offered, so a key carried as a subprotocol is not echoed.
    let key_protocol = state.api_key.as_deref().map(ws_key_protocol);
    ws.max_message_size(state.ws.max_message)
        .max_frame_size(state.ws.max_message)
        .protocols(std::iter::once(WS_PROTOCOL.to_string()).chain(key_protocol))
        .on_upgrade(move |socket| async move {
            client(socket, state).await;
            drop(permit);
        })
}

/// The close code for a read error: 1009 when the client sent too much.
fn close_for(error: &axum::Error) -> CloseFrame {
    let text = error.to_string();
    if text.contains("too long") || text.contains("Space limit") {
        CloseFrame { code: close_code::SIZE, reason: "message too big".into() }
    } else {
        CloseFrame { code: close_code::PROTOCOL, reason: "protocol error".into() }
    }
}

/// Serialises a job event for the `jobs` channel.
pub fn job_message(event: &JobEvent) -> Value {
    let mut msg = json!({
        "type": event.kind,
        "channel": "jobs",
        "jobId": event.job_id,
        "pipelineId": event.pipeline_id,
        "timestamp": event.timestamp,
    });
    if let (Value::Object(m), Value::Object(p)) = (&mut msg, &event.payload) {
        for (k, v) in p {
            m.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    msg
}

fn activity_message(event: &JobEvent) -> Value {
    json!({
        "type": "activity:new",
        "channel": "activity",
        "message": event.activity_message(),
        "event": event.kind,
        "jobId": event.job_id,
        "pipelineId": event.pipeline_id,
        "timestamp": event.timestamp,
    })
}

const CHANNELS: [&str; 3] = ["jobs", "activity", "*"];

async fn client(mut socket: WebSocket, state: AppState) {
    let client_id = format!("c{:x}", rand_id());
    let mut events = state.queue.events().subscribe();
    let mut channels: HashSet<String> = HashSet::new();
    let hello =
        json!({"type": "connected", "clientId": client_id, "channels": CHANNELS, "timestamp": format_ts(&Utc::now())});
    if socket.send(Message::Text(hello.to_string().into())).await.is_err() {
        return;
    }
    let idle = state.ws.idle;
    let silence = tokio::time::sleep(idle);
    tokio::pin!(silence);
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + idle / 3, idle / 3);
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => {
                let _ = socket.send(Message::Close(None)).await;
                return;
            }
            () = &mut silence => {
                tracing::debug!(client = %client_id, "closing a silent WebSocket client");
                let bye = CloseFrame { code: close_code::AWAY, reason: "idle".into() };
                let _ = tokio::time::timeout(Duration::from_secs(1), socket.send(Message::Close(Some(bye)))).await;
                return;
            }
            _ = ping.tick() => {
                let send = socket.send(Message::Ping(Default::default()));
                if !matches!(tokio::time::timeout(Duration::from_secs(5), send).await, Ok(Ok(()))) {
                    return;
                }
            }
            incoming = socket.recv() => {
                let msg = match incoming {
                    Some(Ok(msg)) => msg,
                    Some(Err(e)) => {
                        tracing::debug!(client = %client_id, error = %e, "WebSocket read failed");
                        let frame = close_for(&e);
                        let _ = tokio::time::timeout(Duration::from_secs(1), socket.send(Message::Close(Some(frame)))).await;
                        return;
                    }
                    None => return,
                };
                silence.as_mut().reset(tokio::time::Instant::now() + idle);
                let reply = match msg {
                    Message::Text(text) => handle_client_message(&text, &mut channels),
                    Message::Close(_) => return,
                    _ => None,
                };
                if let Some(reply) = reply
                    && socket.send(Message::Text(reply.to_string().into())).await.is_err() {
                        return;
                    }
            }
            event = events.recv() => {
                match event {
                    Ok(event) => {
                        let all = channels.contains("*");
                        let mut out = Vec::new();
                        if all || channels.contains("jobs") {
                            out.push(job_message(&event));
                        }
                        if all || channels.contains("activity") {
                            out.push(activity_message(&event));
                        }
                        for m in out {
                            // A send that cannot complete quickly means a stuck client.
                            let send = socket.send(Message::Text(m.to_string().into()));
                            match tokio::time::timeout(std::time::Duration::from_secs(5), send).await {
                                Ok(Ok(())) => {}
                                _ => return,
                            }
                        }
                    }
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(client = %client_id, missed, "dropping a WebSocket client that fell behind");
                        let bye = json!({"type": "error", "error": format!("client too slow: {missed} events missed; reconnect")});
                        let _ = socket.send(Message::Text(bye.to_string().into())).await;
                        let _ = socket.send(Message::Close(None)).await;
                        return;
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        }
    }
}

/// Applies a client message; returns the reply to send, if any.
fn handle_client_message(text: &str, channels: &mut HashSet<String>) -> Option<Value> {
    let now = format_ts(&Utc::now());
    let Ok(msg) = serde_json::from_str::<Value>(text) else {
        return Some(json!({"type": "error", "error": "message is not valid JSON", "timestamp": now}));
    };
    let requested = |msg: &Value| -> Result<Vec<String>, String> {
        let list = msg.get("channels").and_then(Value::as_array).ok_or("'channels' must be an array")?;
        list.iter()
            .map(|c| match c.as_str() {
                Some(c) if CHANNELS.contains(&c) => Ok(c.to_string()),
                _ => Err(format!("unknown channel {c}; channels are jobs, activity, *")),
            })
            .collect()
    };
    match msg.get("type").and_then(Value::as_str) {
        Some("ping") => Some(json!({"type": "pong", "timestamp": now})),
        Some("subscribe") => Some(match requested(&msg) {
            Ok(list) => {
                channels.extend(list);
                json!({"type": "subscribed", "channels": channels.iter().collect::<Vec<_>>(), "timestamp": now})
            }
            Err(e) => json!({"type": "error", "error": e, "timestamp": now}),
        }),
        Some("unsubscribe") => Some(match requested(&msg) {
            Ok(list) => {
                for c in list {
                    channels.remove(&c);
                }
                json!({"type": "unsubscribed", "channels": channels.iter().collect::<Vec<_>>(), "timestamp": now})
            }
            Err(e) => json!({"type": "error", "error": e, "timestamp": now}),
        }),
        Some(other) => {
            Some(json!({"type": "error", "error": format!("unknown message type {other:?}"), "timestamp": now}))
        }
        None => Some(json!({"type": "error", "error": "message needs a 'type'", "timestamp": now})),
    }
}

fn rand_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Utc::now().timestamp_nanos_opt().unwrap_or_default() as u128);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_are_answered_and_errors_keep_the_connection() {
        let mut ch = HashSet::new();
        assert_eq!(handle_client_message(r#"{"type":"ping"}"#, &mut ch).unwrap()["type"], "pong");
        assert_eq!(handle_client_message("nope", &mut ch).unwrap()["type"], "error");
        assert_eq!(
            handle_client_message(r#"{"type":"subscribe","channels":["jobs"]}"#, &mut ch).unwrap()["type"],
            "subscribed"
        );
        assert!(ch.contains("jobs"));
        assert_eq!(
            handle_client_message(r#"{"type":"subscribe","channels":["x"]}"#, &mut ch).unwrap()["type"],
            "error"
        );
        handle_client_message(r#"{"type":"unsubscribe","channels":["jobs"]}"#, &mut ch);
        assert!(ch.is_empty());
        assert_eq!(handle_client_message(r#"{"type":"dance"}"#, &mut ch).unwrap()["type"], "error");
    }
}
