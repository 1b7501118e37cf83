//! What a webhook receives: the event (`NotifyEvent`) and its three renderings. Text a guest
//! influenced (a failure message) is cut to a bound and, for chat formats, neutralised: Slack
//! control sequences (`<!channel>`, `<@U…>`, links) are escaped, and Discord gets no mention
//! parsing at all (`allowed_mentions`) plus escaped `@` and markdown.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use crate::config::notify::{NotifyEventKind, WebhookFormat};
use crate::domain::{Job, JobFailure, JobStatus, format_ts};

/// Characters of a failure message kept in a payload.
pub const MAX_MESSAGE_CHARS: usize = 1_000;
/// Discord refuses `content` longer than this.
const DISCORD_MAX_CHARS: usize = 2_000;

/// Something a webhook can be told about.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotifyEvent {
    /// The kind.
    #[serde(skip)]
    pub kind: NotifyEventKind,
    /// Unique per event (deliveries are unique per hook and key): `job:<id>:<kind>` for job events.
    pub event_key: String,
    /// Pipeline.
    pub pipeline_id: String,
    /// Job, when the event is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// The job's status, when about a job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<JobStatus>,
    /// The job's attempt, when about a job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// When it happened, RFC 3339.
    pub occurred_at: String,
    /// The failure (message bounded), for failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<JobFailure>,
    /// One line for people.
    pub summary: String,
}

/// Cuts `text` to `max` characters, saying so.
pub fn bounded(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}… (truncated)", &text[..at]),
        None => text.to_string(),
    }
}

impl NotifyEvent {
    /// The events a finished job raises: `completed`; or `failed`, plus `retries_exhausted`
    /// when the failure was retryable (a terminal retryable failure means no attempt was left).
    pub fn from_job(job: &Job) -> Vec<NotifyEvent> {
        let kinds: &[NotifyEventKind] = match (job.status, &job.error) {
            (JobStatus::Completed, _) => &[NotifyEventKind::Completed],
            (JobStatus::Failed, Some(e)) if e.retryable => {
                &[NotifyEventKind::Failed, NotifyEventKind::RetriesExhausted]
            }
            (JobStatus::Failed, _) => &[NotifyEventKind::Failed],
            _ => &[],
        };
        let at = job.completed_at.unwrap_or(job.created_at);
        kinds
            .iter()
            .map(|&kind| {
                let error = job.error.as_ref().map(|e| JobFailure {
                    message: bounded(&e.message, MAX_MESSAGE_CHARS),
                    code: e.code.clone(),
                    retryable: e.retryable,
                });
                let summary = match (&error, kind) {
                    (None, _) => format!("{} job {} completed", job.pipeline_id, job.id),
                    (Some(e), NotifyEventKind::RetriesExhausted) => format!(
                        "{} job {} failed after {} attempts ({}): {}",
                        job.pipeline_id,
                        job.id,
                        job.attempt,
                        e.code.as_str(),
                        e.message
                    ),
                    (Some(e), _) => {
                        format!("{} job {} failed ({}): {}", job.pipeline_id, job.id, e.code.as_str(), e.message)
                    }
                };
                NotifyEvent {
                    kind,
                    event_key: format!("job:{}:{}", job.id, kind.as_str()),
                    pipeline_id: job.pipeline_id.clone(),
                    job_id: Some(job.id.clone()),
                    status: Some(job.status),
                    attempt: Some(job.attempt),
                    occurred_at: format_ts(&at),
                    error,
                    summary,
                }
            })
            .collect()
    }

    /// A scheduled run of `pipeline` due at `due` that did not start (`schedule_missed`).
    pub fn schedule_missed(pipeline: &str, schedule: &str, due: DateTime<Utc>, reason: &str) -> NotifyEvent {
        NotifyEvent {
            kind: NotifyEventKind::ScheduleMissed,
            event_key: format!("schedule:{pipeline}:{schedule}:{}", due.timestamp()),
            pipeline_id: pipeline.to_string(),
            job_id: None,
            status: None,
            attempt: None,
            occurred_at: format_ts(&due),
            error: None,
            summary: format!(
                "{pipeline}: scheduled run {schedule:?} due at {} was missed: {}",
                format_ts(&due),
                bounded(reason, MAX_MESSAGE_CHARS)
            ),
        }
    }
}

/// The body sent to a hook of `format`.
pub fn render(format: WebhookFormat, event: &NotifyEvent) -> String {
    let value = match format {
        WebhookFormat::Generic => generic(event),
        WebhookFormat::Slack => json!({ "text": slack_text(event) }),
        WebhookFormat::Discord => json!({
            "username": "AlephAuto",
            "content": discord_text(event),
            // No @everyone, @here, role or user pings, whatever the text says.
            "allowed_mentions": { "parse": [] },
        }),
    };
    value.to_string()
}

fn generic(event: &NotifyEvent) -> Value {
    let mut v = serde_json::to_value(event).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("event".into(), Value::String(event.kind.as_str().into()));
    }
    v
}

fn icon(kind: NotifyEventKind) -> &'static str {
    match kind {
        NotifyEventKind::Completed => "✅",
        NotifyEventKind::Failed | NotifyEventKind::RetriesExhausted => "❌",
        NotifyEventKind::ScheduleMissed => "⏰",
    }
}

/// Slack's three control characters escaped (its documented rule): no `<!channel>`,
/// `<@user>` or `<url|text>` can come out of guest text.
pub fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn slack_text(event: &NotifyEvent) -> String {
    format!("{} *AlephAuto* {}", icon(event.kind), slack_escape(&event.summary))
}

/// Markdown and mention syntax escaped for Discord: a backslash before markdown characters,
/// and a zero-width space after `@`, so `@everyone` reads as text even where mentions parse.
pub fn discord_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '*' | '_' | '~' | '`' | '|' | '>' | '[' | ']' | '(' | ')' | '#' | '<' | ':' => {
                out.push('\\');
                out.push(c);
            }
            '@' => out.push_str("@\u{200b}"),
            _ => out.push(c),
        }
    }
    out
}

fn discord_text(event: &NotifyEvent) -> String {
    let text = format!("{} **AlephAuto** {}", icon(event.kind), discord_escape(&event.summary));
    bounded(&text, DISCORD_MAX_CHARS - 20)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::FailureCode;

    fn failed_job(message: &str, retryable: bool) -> Job {
        let mut job = Job::new("j-1".into(), "p".into(), json!({}), Utc::now());
        job.status = JobStatus::Failed;
        job.attempt = 3;
        job.completed_at = Some(Utc::now());
        job.error = Some(JobFailure::new(FailureCode::Trap, message, retryable));
        job
    }

    #[test]
    fn a_failed_job_raises_failed_and_when_retryable_retries_exhausted() {
        let kinds: Vec<_> = NotifyEvent::from_job(&failed_job("x", false)).iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [NotifyEventKind::Failed]);
        let events = NotifyEvent::from_job(&failed_job("x", true));
        let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [NotifyEventKind::Failed, NotifyEventKind::RetriesExhausted]);
        assert_eq!(events[1].event_key, "job:j-1:retries_exhausted");
        let body: Value = serde_json::from_str(&render(WebhookFormat::Generic, &events[1])).unwrap();
        assert_eq!(body["event"], "retries_exhausted");
        assert_eq!(body["jobId"], "j-1");
        assert_eq!(body["error"]["code"], "TRAP");
    }

    #[test]
    fn guest_text_cannot_ping_or_link_in_chat_formats() {
        let evil = "<!channel> <@U123> @everyone @here <https://evil.example|click> [x](https://evil.example)";
        let event = &NotifyEvent::from_job(&failed_job(evil, false))[0];
        let slack: Value = serde_json::from_str(&render(WebhookFormat::Slack, event)).unwrap();
        let text = slack["text"].as_str().unwrap();
        assert!(!text.contains('<') && !text.contains('>'), "{text}");
        assert!(text.contains("&lt;!channel&gt;"), "{text}");
        let discord: Value = serde_json::from_str(&render(WebhookFormat::Discord, event)).unwrap();
        assert_eq!(discord["allowed_mentions"], json!({"parse": []}));
        let content = discord["content"].as_str().unwrap();
        assert!(!content.contains("@everyone") && !content.contains("@here"), "{content}");
        assert!(!content.contains("](https"), "{content}");
    }

    #[test]
    fn long_messages_are_bounded() {
        let event = &NotifyEvent::from_job(&failed_job(&"é".repeat(100_000), false))[0];
        for format in [WebhookFormat::Generic, WebhookFormat::Slack, WebhookFormat::Discord] {
            assert!(render(format, event).len() < 8 * 1024, "{format:?}");
        }
        let discord: Value = serde_json::from_str(&render(WebhookFormat::Discord, event)).unwrap();
        assert!(discord["content"].as_str().unwrap().chars().count() <= 2_000);
    }
}
