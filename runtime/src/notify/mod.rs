//! Notifications: outgoing webhooks (`[[notify.webhooks]]`) told about finished jobs and
//! missed schedules, in a generic signed JSON format or as Slack / Discord messages.
//!
//! Deliveries are durable and never touch the queue's path: the sender (`sender`) derives
//! them from committed job transitions, reading finished jobs after a cursor kept in the
//! store (`store::deliveries`), so neither a lagging event bus nor a crash between a job's
//! commit and its delivery's insert loses one; each delivery row is stored before its first
//! attempt, unique per (hook, event), then sent with bounded concurrency, a timeout and a
//! bounded response read, and retried with exponential backoff up to `max_attempts`.
//!
//! `payload`: events and their formats (with escaping of guest text); `signing`: the
//! `X-AlephAuto-Signature` scheme and the receiver's check; `sender`: the loop.

pub mod payload;
pub mod sender;
pub mod signing;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::Utc;
use tokio_util::sync::CancellationToken;

pub use self::payload::NotifyEvent;
use crate::config::notify::{NotifyConfig, WebhookConfig};
use crate::store::deliveries::{Delivery, DeliveryAttempt, DeliveryFilter, DeliveryStore, NewDelivery};

/// Delivery settings, from `[notify]`.
#[derive(Debug, Clone)]
pub struct NotifySettings {
    /// Attempts per round.
    pub max_attempts: u32,
    /// First retry delay.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// One attempt's limit.
    pub timeout: Duration,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// Between passes.
    pub poll: Duration,
    /// How long finished deliveries are kept (None: forever).
    pub keep: Option<chrono::TimeDelta>,
}

impl NotifySettings {
    /// From the configuration.
    pub fn from_config(c: &NotifyConfig) -> Self {
        Self {
            max_attempts: c.max_attempts,
            backoff_base: Duration::from_millis(c.backoff_base_ms),
            backoff_max: Duration::from_secs(c.backoff_max_secs),
            timeout: Duration::from_secs(c.timeout_secs),
            concurrency: c.concurrency as usize,
            poll: Duration::from_millis(c.poll_ms),
            keep: (c.keep_days > 0)
                .then(|| chrono::TimeDelta::days(i64::try_from(c.keep_days).unwrap_or(i64::MAX / 86_400_000))),
        }
    }
}

struct Inner {
    store: Arc<dyn DeliveryStore>,
    hooks: Vec<WebhookConfig>,
    settings: NotifySettings,
    /// Wakes the sender early (a new delivery, a redelivery).
    wake: tokio::sync::Notify,
}

/// The notifier: what the server starts, the API reads and the scheduler calls. Cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier").field("hooks", &self.inner.hooks.len()).finish_non_exhaustive()
    }
}

impl Notifier {
    /// A notifier for the hooks of `config`, keeping deliveries in `store`.
    pub fn new(store: Arc<dyn DeliveryStore>, config: &NotifyConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                hooks: config.webhooks.clone(),
                settings: NotifySettings::from_config(config),
                wake: tokio::sync::Notify::new(),
            }),
        }
    }

    /// The configured hooks (their secrets stay inside: callers show `HookView`s).
    pub fn hooks(&self) -> Vec<HookView> {
        self.inner.hooks.iter().map(HookView::from).collect()
    }

    pub(crate) fn hook(&self, id: &str) -> Option<&WebhookConfig> {
        self.inner.hooks.iter().find(|h| h.id == id)
    }

    /// Stores a delivery of `event` for every hook that wants it (at most once per hook and
    /// event key, however often it is called) and wakes the sender; returns how many were new.
    /// The scheduler calls this for `schedule_missed`.
    pub async fn enqueue(&self, event: &NotifyEvent) -> Result<u64> {
        let rows = self.deliveries_for(event);
        let added = self.inner.store.enqueue(&rows).await.context("storing webhook deliveries")?;
        if added > 0 {
            self.inner.wake.notify_one();
        }
        Ok(added)
    }

    fn deliveries_for(&self, event: &NotifyEvent) -> Vec<NewDelivery> {
        let now = Utc::now();
        self.inner
            .hooks
            .iter()
            .filter(|h| h.wants(event.kind, &event.pipeline_id))
            .map(|h| NewDelivery {
                hook_id: h.id.clone(),
                event: event.kind.as_str().to_string(),
                event_key: event.event_key.clone(),
                pipeline_id: event.pipeline_id.clone(),
                job_id: event.job_id.clone(),
                payload: payload::render(h.format, event),
                at: now,
            })
            .collect()
    }

    /// A page of deliveries, newest first.
    pub async fn deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<Delivery>> {
        Ok(self.inner.store.list_deliveries(filter).await?)
    }

    /// One delivery and its attempts.
    pub async fn delivery(&self, id: i64) -> Result<Option<(Delivery, Vec<DeliveryAttempt>)>> {
        Ok(self.inner.store.delivery(id).await?)
    }

    /// Sends a finished delivery again (a new round of attempts); false when it is absent or
    /// still pending.
    pub async fn redeliver(&self, id: i64) -> Result<bool> {
        let done = self.inner.store.redeliver(id, Utc::now()).await?;
        if done {
            self.inner.wake.notify_one();
        }
        Ok(done)
    }

    /// Starts the sender; it stops when `shutdown` is cancelled (deliveries in flight are
    /// abandoned; their leases run out and the next start sends them).
    pub fn spawn(&self, shutdown: CancellationToken) -> Result<tokio::task::JoinHandle<()>> {
        let sender = sender::Sender::new(self.clone())?;
        Ok(tokio::spawn(sender.run(shutdown)))
    }
}

/// A hook as the API shows it: no secret, only whether one is set.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HookView {
    /// Hook id.
    pub id: String,
    /// Where payloads go (scheme, host and path; any user info and query are hidden).
    pub url: String,
    /// Events it is sent.
    pub events: Vec<String>,
    /// Pipelines it is limited to (empty: all).
    pub pipelines: Vec<String>,
    /// `generic`, `slack` or `discord`.
    pub format: String,
    /// True when payloads are signed.
    pub signed: bool,
}

impl From<&WebhookConfig> for HookView {
    fn from(h: &WebhookConfig) -> Self {
        Self {
            id: h.id.clone(),
            url: redact_url(&h.url),
            events: h.events.iter().map(|e| e.as_str().to_string()).collect(),
            pipelines: h.pipelines.clone(),
            format: h.format.as_str().to_string(),
            signed: h.format == crate::config::notify::WebhookFormat::Generic && h.resolve_secret().is_some(),
        }
    }
}

/// Slack and Discord URLs are bearer secrets in their path: show only scheme and host,
/// and the first path segment.
fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let first = u.path_segments().and_then(|mut s| s.next()).unwrap_or("");
            let more = if u.path().trim_start_matches('/').contains('/') || u.query().is_some() { "/…" } else { "" };
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}://{}{port}/{first}{more}", u.scheme(), u.host_str().unwrap_or(""))
        }
        Err(_) => "(invalid)".into(),
    }
}

/// Missed schedule fires become `schedule_missed` deliveries (stored before this returns; the
/// event key names the schedule and the fire, so a repeated miss stores nothing new).
#[async_trait::async_trait]
impl crate::schedule::launch::MissSink for Notifier {
    async fn missed(&self, pipeline: &str, schedule: &str, fire: chrono::DateTime<chrono::Utc>, reason: &str) {
        if let Err(e) = self.enqueue(&NotifyEvent::schedule_missed(pipeline, schedule, fire, reason)).await {
            tracing::error!(pipeline, schedule, error = %format!("{e:#}"), "storing a schedule_missed webhook");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::notify::NotifyEventKind;
    use crate::store::deliveries::{AfterAttempt, DeliveryAttempt, DeliveryFilter, DeliveryStatus, NewDelivery};
    use crate::store::sqlite::SqliteStore;

    /// A loopback receiver that forwards each request's signature header and body.
    async fn receiver() -> (String, tokio::sync::mpsc::UnboundedReceiver<(String, bytes::Bytes)>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap, body: bytes::Bytes| {
            let tx = tx.clone();
            async move {
                let sig =
                    headers.get(signing::SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                let _ = tx.send((sig, body));
                "ok"
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, rx)
    }

    /// `notify.keep_days`: finished deliveries older than the limit go with their attempts;
    /// newer ones and pending ones of any age stay.
    #[tokio::test]
    async fn pruning_removes_old_finished_deliveries_and_keeps_pending_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("a.db")).unwrap().deliveries().unwrap();
        let now = chrono::Utc::now();
        let old = now - chrono::TimeDelta::days(40);
        let row = |key: &str, at| NewDelivery {
            hook_id: "ops".into(),
            event: "completed".into(),
            event_key: key.into(),
            pipeline_id: "p".into(),
            job_id: Some(key.into()),
            payload: "{}".into(),
            at,
        };
        store.enqueue(&[row("old-done", old), row("old-pending", old), row("new-done", now)]).await.unwrap();
        let all = |status| DeliveryFilter { hook_id: None, status, job_id: None, before: None, limit: 10 };
        for d in store.list_deliveries(&all(None)).await.unwrap() {
            if d.event_key != "old-pending" {
                let attempt = DeliveryAttempt {
                    n: 1,
                    at: now,
                    duration_ms: 1,
                    status_code: Some(200),
                    error: None,
                    response_excerpt: None,
                };
                assert!(store.record_attempt(d.id, &attempt, AfterAttempt::Delivered).await.unwrap());
            }
        }
        assert_eq!(store.prune(now - chrono::TimeDelta::days(30)).await.unwrap(), 1);
        let mut left: Vec<String> =
            store.list_deliveries(&all(None)).await.unwrap().into_iter().map(|d| d.event_key).collect();
        left.sort();
        assert_eq!(left, ["new-done", "old-pending"]);
        assert_eq!(store.prune(now - chrono::TimeDelta::days(30)).await.unwrap(), 0, "nothing left to prune");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn schedule_missed_is_stored_once_per_wanting_hook_and_sent_signed() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("a.db")).unwrap();
        let (url, mut got) = receiver().await;
        let config = NotifyConfig {
            webhooks: vec![WebhookConfig {
                id: "ops".into(),
                url,
                events: vec![NotifyEventKind::ScheduleMissed],
                pipelines: vec!["nightly".into()],
                format: crate::config::notify::WebhookFormat::Generic,
                secret: Some("k".into()),
                secret_env: None,
            }],
            poll_ms: 20,
            ..NotifyConfig::default()
        };
        let notifier = Notifier::new(Arc::new(store.deliveries().unwrap()), &config);
        let due = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let missed = NotifyEvent::schedule_missed("nightly", "0 3 * * *", due, "the server was down");
        assert_eq!(notifier.enqueue(&missed).await.unwrap(), 1);
        assert_eq!(notifier.enqueue(&missed).await.unwrap(), 0, "the same event is stored once");
        let other = NotifyEvent::schedule_missed("weekly", "0 3 * * 0", due, "down");
        assert_eq!(notifier.enqueue(&other).await.unwrap(), 0, "no hook wants this pipeline");

        let stop = CancellationToken::new();
        notifier.spawn(stop.clone()).unwrap();
        let (sig, body) = tokio::time::timeout(Duration::from_secs(10), got.recv()).await.unwrap().unwrap();
        let now = Utc::now().timestamp();
        assert_eq!(signing::verify(b"k", &sig, &body, now, 300), Ok(()));
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["event"], "schedule_missed");
        assert_eq!(json["pipelineId"], "nightly");
        assert!(json["summary"].as_str().unwrap().contains("the server was down"));
        let delivered = async {
            loop {
                let list = notifier.deliveries(&DeliveryFilter { limit: 10, ..Default::default() }).await.unwrap();
                if list.len() == 1 && list[0].status == DeliveryStatus::Delivered {
                    return list;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let list = tokio::time::timeout(Duration::from_secs(10), delivered).await.unwrap();
        assert_eq!(list[0].attempts, 1);
        assert_eq!(list[0].event, "schedule_missed");
        stop.cancel();
    }

    #[test]
    fn urls_are_shown_without_their_secret_parts() {
        assert_eq!(
            redact_url("https://hooks.slack.com/services/T000/B000/XXXXSECRET"),
            "https://hooks.slack.com/services/…"
        );
        assert_eq!(redact_url("https://u:p@example.com/hook?token=abc"), "https://example.com/hook/…");
        assert_eq!(redact_url("http://127.0.0.1:9/"), "http://127.0.0.1:9/");
    }
}
