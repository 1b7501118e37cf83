//! Webhook deliveries: the durable half of `notify`. A delivery row is written before its
//! first attempt, unique per (hook, event key) so an event is delivered once per hook even
//! when it is derived twice (a rescan, a second node). Sending claims due rows with a lease,
//! so a delivery abandoned by a dead process is picked up again when the lease runs out.
//! The cursor over finished jobs lives here too, so a restart rescans from where it stopped.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::domain::Job;

/// A delivery to create.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    /// The configured hook.
    pub hook_id: String,
    /// `failed`, `retries_exhausted`, `completed`, `schedule_missed`.
    pub event: String,
    /// Unique per hook: `job:<id>:<event>`, or what the caller of `Notifier::enqueue` chose.
    pub event_key: String,
    /// Pipeline the event is about.
    pub pipeline_id: String,
    /// Job, when the event is about one.
    pub job_id: Option<String>,
    /// The body sent, already in the hook's format.
    pub payload: String,
    /// When it was created.
    pub at: DateTime<Utc>,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    /// A receiver answered 2xx.
    Delivered,
    /// Out of attempts (or its hook is gone).
    Failed,
}

impl DeliveryStatus {
    /// The lowercase name in SQL and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    /// Parses `as_str`'s form.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Failed].into_iter().find(|d| d.as_str() == s)
    }
}

/// A stored delivery.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Store id (increasing).
    pub id: i64,
    /// The configured hook.
    pub hook_id: String,
    /// The event kind.
    pub event: String,
    /// Unique per hook.
    pub event_key: String,
    /// Pipeline.
    pub pipeline_id: String,
    /// Job, when about one.
    pub job_id: Option<String>,
    /// The body.
    pub payload: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// Attempts before the current round (a redelivery starts a new round).
    pub round_start: u32,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When the next attempt is due (pending only).
    pub next_at: Option<DateTime<Utc>>,
    /// HTTP status of the last attempt, when one answered.
    pub last_status: Option<u16>,
    /// Error of the last attempt, when it failed.
    pub last_error: Option<String>,
}

/// One attempt at a delivery.
#[derive(Debug, Clone)]
pub struct DeliveryAttempt {
    /// 1-based attempt number.
    pub n: u32,
    /// When it started.
    pub at: DateTime<Utc>,
    /// How long it took.
    pub duration_ms: u64,
    /// HTTP status, when the receiver answered.
    pub status_code: Option<u16>,
    /// What went wrong (connection, timeout, non-2xx), if anything.
    pub error: Option<String>,
    /// The start of the response body (bounded).
    pub response_excerpt: Option<String>,
}

/// What an attempt leads to.
#[derive(Debug, Clone, Copy)]
pub enum AfterAttempt {
    /// Done: 2xx.
    Delivered,
    /// Try again at this time.
    Retry(DateTime<Utc>),
    /// Give up.
    Failed,
}

/// Filters for listing deliveries, newest first.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    /// Only this hook.
    pub hook_id: Option<String>,
    /// Only this status.
    pub status: Option<DeliveryStatus>,
    /// Only this job.
    pub job_id: Option<String>,
    /// Only ids below this (the previous page's last id).
    pub before: Option<i64>,
    /// Page size.
    pub limit: u32,
}

/// Durable webhook deliveries.
#[async_trait]
pub trait DeliveryStore: Send + Sync + 'static {
    /// Completed and failed jobs of `pipelines` (empty: all) after position `after` in
    /// (`completed_at`, id) order, oldest first, at most `limit`.
    async fn finished_after(
        &self,
        pipelines: &[String],
        after: &(DateTime<Utc>, String),
        limit: u32,
    ) -> StoreResult<Vec<Job>>;
    /// The finished-jobs cursor, when one was saved.
    async fn cursor(&self) -> StoreResult<Option<DateTime<Utc>>>;
    /// Saves the finished-jobs cursor.
    async fn set_cursor(&self, at: DateTime<Utc>) -> StoreResult<()>;
    /// Stores deliveries that do not exist yet (by hook and event key), due at once;
    /// returns how many were new.
    async fn enqueue(&self, deliveries: &[NewDelivery]) -> StoreResult<u64>;
    /// Claims up to `limit` pending deliveries due at `now` whose lease (if any) ran out,
    /// leasing them until `lease_until`.
    async fn claim_due(&self, now: DateTime<Utc>, lease_until: DateTime<Utc>, limit: u32)
    -> StoreResult<Vec<Delivery>>;
    /// Records attempt `attempt.n` of delivery `id` and what follows; false when fenced out
    /// (the delivery is no longer pending at `attempt.n - 1` attempts).
    async fn record_attempt(&self, id: i64, attempt: &DeliveryAttempt, next: AfterAttempt) -> StoreResult<bool>;
    /// A page of deliveries, newest first.
    async fn list_deliveries(&self, filter: &DeliveryFilter) -> StoreResult<Vec<Delivery>>;
    /// One delivery with its attempts, oldest first.
    async fn delivery(&self, id: i64) -> StoreResult<Option<(Delivery, Vec<DeliveryAttempt>)>>;
    /// Makes a delivered or failed delivery pending again, due at `now`, with a new round of
    /// attempts; false when it is absent or still pending.
    async fn redeliver(&self, id: i64, now: DateTime<Utc>) -> StoreResult<bool>;
    /// Deletes finished deliveries (delivered or failed) created before `before`, with their
    /// attempts; pending ones are kept whatever their age. Returns how many were deleted.
    async fn prune(&self, before: DateTime<Utc>) -> StoreResult<u64>;
}
