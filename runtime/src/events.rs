//! Job lifecycle events on an in-process broadcast bus. Every event is sent only
//! after the state change it reports is persisted. Slow subscribers lag and lose
//! events (tokio broadcast semantics); they never slow the publisher.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::domain::{Job, format_ts};

/// Kinds of job events, named as on the WebSocket feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// A job was queued.
    #[serde(rename = "job:created")]
    Created,
    /// A job started running.
    #[serde(rename = "job:started")]
    Started,
    /// A running job reported progress.
    #[serde(rename = "job:progress")]
    Progress,
    /// A job completed.
    #[serde(rename = "job:completed")]
    Completed,
    /// A job failed.
    #[serde(rename = "job:failed")]
    Failed,
    /// A job was cancelled.
    #[serde(rename = "job:cancelled")]
    Cancelled,
    /// A job failed retryably and was queued again.
    #[serde(rename = "job:retrying")]
    Retrying,
    /// A schedule fired: its job (or run) was created. `jobId` is that job.
    #[serde(rename = "schedule:fired")]
    ScheduleFired,
    /// A schedule's fire created nothing (downtime, overlap, or the trigger was refused);
    /// `jobId` is empty and the payload says why.
    #[serde(rename = "schedule:missed")]
    ScheduleMissed,
}

impl EventKind {
    /// The event's wire name.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Created => "job:created",
            EventKind::Started => "job:started",
            EventKind::Progress => "job:progress",
            EventKind::Completed => "job:completed",
            EventKind::Failed => "job:failed",
            EventKind::Cancelled => "job:cancelled",
            EventKind::Retrying => "job:retrying",
            EventKind::ScheduleFired => "schedule:fired",
            EventKind::ScheduleMissed => "schedule:missed",
        }
    }
}

/// One job event: the kind, the job's identity and the fields that changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobEvent {
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// Job id.
    #[serde(rename = "jobId")]
    pub job_id: String,
    /// Pipeline id.
    #[serde(rename = "pipelineId")]
    pub pipeline_id: String,
    /// Changed fields (`status`, `progress`, `result`, `error`, ...).
    pub payload: Value,
    /// RFC 3339 time of the event.
    pub timestamp: String,
}

impl JobEvent {
    /// An event of `kind` describing `job` as it is now.
    pub fn of(kind: EventKind, job: &Job) -> Self {
        let payload = match kind {
            EventKind::Created => {
                json!({"status": job.status, "data": job.data, "createdAt": format_ts(&job.created_at)})
            }
            EventKind::Started => json!({"status": job.status, "attempt": job.attempt,
                "startedAt": job.started_at.as_ref().map(format_ts)}),
            EventKind::Progress => json!({"status": job.status, "progress": job.progress}),
            EventKind::Completed => json!({"status": job.status, "result": job.result, "git": job.git,
                "completedAt": job.completed_at.as_ref().map(format_ts)}),
            EventKind::Failed | EventKind::Cancelled => json!({"status": job.status, "error": job.error,
                "completedAt": job.completed_at.as_ref().map(format_ts)}),
            EventKind::Retrying => json!({"status": job.status, "attempt": job.attempt, "error": job.error}),
            EventKind::ScheduleFired | EventKind::ScheduleMissed => json!({"status": job.status}),
        };
        Self {
            kind,
            job_id: job.id.clone(),
            pipeline_id: job.pipeline_id.clone(),
            payload,
            timestamp: format_ts(&chrono::Utc::now()),
        }
    }

    /// A schedule event: `payload` carries `scheduleId`, `fireTime` and, for a miss, `reason`.
    pub fn schedule(kind: EventKind, pipeline_id: &str, job_id: &str, payload: Value) -> Self {
        Self {
            kind,
            job_id: job_id.to_string(),
            pipeline_id: pipeline_id.to_string(),
            payload,
            timestamp: format_ts(&chrono::Utc::now()),
        }
    }

    /// A one-line human message for the activity feed.
    pub fn activity_message(&self) -> String {
        let what = match self.kind {
            EventKind::Created => "queued".to_string(),
            EventKind::Started => "started".to_string(),
            EventKind::Progress => {
                let pct = self.payload["progress"]["percent"].as_u64().unwrap_or(0);
                let msg = self.payload["progress"]["message"].as_str().unwrap_or("");
                format!("{pct}% {msg}")
            }
            EventKind::Completed => "completed".to_string(),
            EventKind::Failed => {
                format!("failed: {}", self.payload["error"]["message"].as_str().unwrap_or("unknown error"))
            }
            EventKind::Cancelled => "cancelled".to_string(),
            EventKind::Retrying => "will be retried".to_string(),
            EventKind::ScheduleFired | EventKind::ScheduleMissed => {
                let schedule = self.payload["scheduleId"].as_str().unwrap_or("?");
                let fire = self.payload["fireTime"].as_str().unwrap_or("?");
                return match self.kind {
                    EventKind::ScheduleFired => format!("schedule {schedule} fired for {fire}: job {}", self.job_id),
                    _ => {
                        let why = self.payload["reason"].as_str().unwrap_or("missed");
                        format!("schedule {schedule} missed {fire}: {why}")
                    }
                };
            }
        };
        format!("{} job {} {}", self.pipeline_id, self.job_id, what)
    }
}

/// The broadcast bus that the queue publishes to and the WebSocket feed reads.
#[derive(Debug, Clone)]
pub struct EventBus {
    sender: broadcast::Sender<JobEvent>,
}

impl EventBus {
    /// A bus that buffers `capacity` events per subscriber before it lags.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity);
        Self { sender }
    }

    /// Publishes an event; having no subscribers is fine.
    pub fn publish(&self, event: JobEvent) {
        let _ = self.sender.send(event);
    }

    /// True while someone is subscribed (a WebSocket client, a test, the bench).
    pub fn has_subscribers(&self) -> bool {
        self.sender.receiver_count() > 0
    }

    /// A new subscription starting from the next event.
    pub fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.sender.subscribe()
    }
}
