//! The sender: one task that, every `poll` (or when woken), turns newly finished jobs into
//! deliveries and sends the due ones.
//!
//! Deriving: finished jobs are read in (`completed_at`, id) order after the stored cursor,
//! less a lookback (a job's finish time is taken just before its commit, so a job can commit
//! with a time a little before one already seen); inserts are idempotent per (hook, event),
//! and the cursor moves only after its deliveries are stored, so a crash anywhere re-derives
//! instead of losing. Sending: due rows are claimed with a lease (another node, or this one
//! after a restart, takes them once it runs out), at most `concurrency` at a time, each
//! attempt bounded by `timeout`, redirects refused and at most `MAX_EXCERPT` bytes of the
//! answer read. Nothing here is on the queue's path: a slow receiver only delays its own
//! deliveries.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::payload::NotifyEvent;
use super::{Notifier, signing};
use crate::config::notify::{NotifyEventKind, WebhookFormat};
use crate::failpoints;
use crate::store::deliveries::{AfterAttempt, Delivery, DeliveryAttempt};

/// Bytes of a receiver's answer kept with an attempt.
pub const MAX_EXCERPT: usize = 1_024;
/// How far before the cursor each pass looks again (finish times are taken before commit,
/// and cluster nodes' clocks differ a little).
const LOOKBACK: TimeDelta = TimeDelta::seconds(10);
/// On a first start (or after a long time without hooks), how far back finished jobs count.
const MAX_CATCH_UP: TimeDelta = TimeDelta::hours(24);
/// Finished jobs read per query.
const SCAN_PAGE: u32 = 500;

/// The delay before attempt `n + 1` of a round after `n` failed ones: `base * 2^(n-1)`, at most `max`.
pub fn backoff(base: Duration, max: Duration, failed: u32) -> Duration {
    let factor = 1u32.checked_shl(failed.saturating_sub(1).min(31)).unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(max)
}

/// `at + by`, saturating at the end of time (a configured delay can be anything).
fn later(at: DateTime<Utc>, by: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(by).ok().and_then(|d| at.checked_add_signed(d)).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The sender task's state.
pub(super) struct Sender {
    notifier: Notifier,
    client: reqwest::Client,
    slots: Arc<Semaphore>,
    cursor: Option<DateTime<Utc>>,
    /// Pipelines with a hook that wants job events (empty with `all`: every pipeline).
    pipelines: Vec<String>,
    all: bool,
    job_events: bool,
}

/// How often finished deliveries past `notify.keep_days` are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

impl Sender {
    pub(super) fn new(notifier: Notifier) -> Result<Self> {
        let s = &notifier.inner.settings;
        let client = reqwest::Client::builder()
            .timeout(s.timeout)
            .connect_timeout(s.timeout)
            // A receiver cannot bounce a delivery (and its signature) somewhere else.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("AlephAuto-Webhook/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the webhook HTTP client")?;
        let job_kinds = [NotifyEventKind::Failed, NotifyEventKind::RetriesExhausted, NotifyEventKind::Completed];
        let job_hooks: Vec<_> =
            notifier.inner.hooks.iter().filter(|h| h.events.iter().any(|e| job_kinds.contains(e))).collect();
        let all = job_hooks.iter().any(|h| h.pipelines.is_empty());
        let mut pipelines: Vec<String> = job_hooks.iter().flat_map(|h| h.pipelines.iter().cloned()).collect();
        pipelines.sort();
        pipelines.dedup();
        let slots = Arc::new(Semaphore::new(s.concurrency.max(1)));
        Ok(Self { job_events: !job_hooks.is_empty(), notifier, client, slots, cursor: None, pipelines, all })
    }

    pub(super) async fn run(mut self, shutdown: CancellationToken) {
        let poll = self.notifier.inner.settings.poll;
        let mut pruned_at: Option<Instant> = None;
        loop {
            if pruned_at.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
                pruned_at = Some(Instant::now());
                self.prune().await;
            }
            if let Err(e) = self.derive().await {
                tracing::warn!(error = %format!("{e:#}"), "deriving webhook deliveries failed; retrying next pass");
            }
            if let Err(e) = self.dispatch().await {
                tracing::warn!(error = %format!("{e:#}"), "claiming webhook deliveries failed; retrying next pass");
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(poll) => {}
                _ = self.notifier.inner.wake.notified() => {}
            }
        }
    }

    /// Deletes finished deliveries older than `notify.keep_days` (a failure is logged and
    /// tried again at the next prune).
    async fn prune(&self) {
        let Some(keep) = self.notifier.inner.settings.keep else { return };
        match self.notifier.inner.store.prune(Utc::now() - keep).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "pruned old webhook deliveries"),
            Err(e) => tracing::warn!(error = %e, "pruning old webhook deliveries failed"),
        }
    }

    /// Stores deliveries for jobs finished since the cursor, then moves the cursor.
    async fn derive(&mut self) -> Result<()> {
        if !self.job_events {
            return Ok(());
        }
        let store = &self.notifier.inner.store;
        let now = Utc::now();
        let cursor = match self.cursor {
            Some(c) => c,
            None => {
                let c = match store.cursor().await.context("reading the notify cursor")? {
                    Some(saved) => saved.max(now - MAX_CATCH_UP),
                    None => {
                        // First start with hooks: from now on. Saved at once, so a crash
                        // before the first job is handled still rescans from here.
                        store.set_cursor(now).await.context("saving the notify cursor")?;
                        now
                    }
                };
                self.cursor = Some(c);
                c
            }
        };
        let only = if self.all { Vec::new() } else { self.pipelines.clone() };
        let mut after = (cursor - LOOKBACK, String::new());
        let mut newest = cursor;
        loop {
            let jobs = store.finished_after(&only, &after, SCAN_PAGE).await.context("reading finished jobs")?;
            let mut rows = Vec::new();
            for job in &jobs {
                for event in NotifyEvent::from_job(job) {
                    rows.extend(self.notifier.deliveries_for(&event));
                }
            }
            let added = store.enqueue(&rows).await.context("storing webhook deliveries")?;
            if added > 0 {
                tracing::debug!(added, "webhook deliveries stored");
            }
            if let Some(last) = jobs.last() {
                let at = last.completed_at.unwrap_or(cursor);
                newest = newest.max(at);
                after = (at, last.id.clone());
            }
            if jobs.len() < SCAN_PAGE as usize {
                break;
            }
        }
        if newest > cursor {
            store.set_cursor(newest).await.context("saving the notify cursor")?;
            self.cursor = Some(newest);
        }
        Ok(())
    }

    /// Claims as many due deliveries as there are free slots and sends each on its own task.
    async fn dispatch(&self) -> Result<()> {
        let free = self.slots.available_permits();
        if free == 0 {
            return Ok(());
        }
        let settings = &self.notifier.inner.settings;
        let now = Utc::now();
        // Long enough for the attempt (bounded by `timeout`) and recording it; a dead sender's
        // claim expires soon after.
        let lease = later(now, settings.timeout * 2 + Duration::from_secs(5));
        let due = self.notifier.inner.store.claim_due(now, lease, free as u32).await?;
        for delivery in due {
            let Ok(permit) = self.slots.clone().try_acquire_owned() else { break };
            let notifier = self.notifier.clone();
            let client = self.client.clone();
            tokio::spawn(async move {
                let id = delivery.id;
                if let Err(e) = attempt(&notifier, &client, delivery).await {
                    tracing::warn!(delivery = id, error = %format!("{e:#}"), "recording a webhook attempt failed");
                }
                drop(permit);
            });
        }
        Ok(())
    }
}

/// One attempt at `d`, recorded with what follows it.
async fn attempt(notifier: &Notifier, client: &reqwest::Client, d: Delivery) -> Result<()> {
    let settings = &notifier.inner.settings;
    let n = d.attempts + 1;
    let at = Utc::now();
    let started = Instant::now();
    let (status_code, error, excerpt) = match notifier.hook(&d.hook_id) {
        None => (None, Some(format!("webhook {:?} is no longer configured", d.hook_id)), None),
        Some(hook) => {
            let mut req = client
                .post(&hook.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(signing::DELIVERY_HEADER, d.id.to_string())
                .header(signing::EVENT_HEADER, &d.event);
            if hook.format == WebhookFormat::Generic
                && let Some(secret) = hook.resolve_secret()
            {
                req = req.header(
                    signing::SIGNATURE_HEADER,
                    signing::sign(secret.as_bytes(), at.timestamp(), d.payload.as_bytes()),
                );
            }
            send(req.body(d.payload.clone()), settings.timeout).await
        }
    };
    let ok = status_code.is_some_and(|s| (200..300).contains(&s)) && error.is_none();
    if ok {
        // Test builds: killed here, the delivery is sent again with the same id after a restart.
        failpoints::hit(failpoints::WEBHOOK_SENT);
    }
    let hook_gone = notifier.hook(&d.hook_id).is_none();
    let failed_in_round = n.saturating_sub(d.round_start);
    let next = if ok {
        AfterAttempt::Delivered
    } else if hook_gone || failed_in_round >= settings.max_attempts {
        AfterAttempt::Failed
    } else {
        let delay = backoff(settings.backoff_base, settings.backoff_max, failed_in_round);
        AfterAttempt::Retry(later(Utc::now(), delay))
    };
    let record = DeliveryAttempt {
        n,
        at,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        status_code,
        error,
        response_excerpt: excerpt,
    };
    match next {
        AfterAttempt::Delivered => tracing::info!(delivery = d.id, hook = %d.hook_id, attempt = n, "webhook delivered"),
        _ => tracing::warn!(delivery = d.id, hook = %d.hook_id, attempt = n, status = ?record.status_code,
            error = ?record.error, "webhook attempt failed"),
    }
    let recorded = notifier.inner.store.record_attempt(d.id, &record, next).await?;
    if !recorded {
        tracing::debug!(delivery = d.id, attempt = n, "webhook attempt fenced out (handled elsewhere)");
    }
    Ok(())
}

/// Sends `req`; returns the status, an error, and the start of the body. The whole exchange,
/// body read included, is bounded by `timeout`, and at most `MAX_EXCERPT` bytes are kept.
async fn send(req: reqwest::RequestBuilder, timeout: Duration) -> (Option<u16>, Option<String>, Option<String>) {
    let exchange = async {
        let mut res = match req.send().await {
            Ok(r) => r,
            Err(e) => return (None, Some(describe(&e)), None),
        };
        let status = res.status().as_u16();
        let mut body = Vec::new();
        // The answer is informational: a read error after the status only shortens the excerpt.
        while body.len() < MAX_EXCERPT {
            match res.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk[..chunk.len().min(MAX_EXCERPT - body.len())]),
                Ok(None) | Err(_) => break,
            }
        }
        let excerpt = (!body.is_empty()).then(|| String::from_utf8_lossy(&body).into_owned());
        let error = (!(200..300).contains(&status)).then(|| format!("receiver answered {status}"));
        (Some(status), error, excerpt)
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r,
        Err(_) => (None, Some(format!("timed out after {} s", timeout.as_secs_f32())), None),
    }
}

fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    // Without the URL: it may hold a token (Slack, Discord).
    let detail = std::error::Error::source(e).map(|s| s.to_string()).unwrap_or_default();
    super::payload::bounded(&format!("{kind}: {detail}"), 300)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = |n| backoff(Duration::from_secs(2), Duration::from_secs(60), n);
        assert_eq!([b(1), b(2), b(3), b(5), b(6), b(40)].map(|d| d.as_secs()), [2, 4, 8, 32, 60, 60]);
    }
}
