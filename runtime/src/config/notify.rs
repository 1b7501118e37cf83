//! `[notify]`: outgoing webhooks (`[[notify.webhooks]]`) and how deliveries are sent. Plain
//! data, validated at load with messages naming the key; `notify` reads it.

use serde::{Deserialize, Serialize};

/// What a webhook can be told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEventKind {
    /// A job ended `failed` (whether or not it was retried before).
    Failed,
    /// A job ended `failed` with a retryable failure after its last attempt.
    RetriesExhausted,
    /// A job ended `completed`.
    Completed,
    /// A scheduled run did not start in its window.
    ScheduleMissed,
}

impl NotifyEventKind {
    /// Every kind.
    pub const ALL: [NotifyEventKind; 4] = [Self::Failed, Self::RetriesExhausted, Self::Completed, Self::ScheduleMissed];

    /// The snake_case name used in config, payloads and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failed => "failed",
            Self::RetriesExhausted => "retries_exhausted",
            Self::Completed => "completed",
            Self::ScheduleMissed => "schedule_missed",
        }
    }

    /// Parses `as_str`'s form.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Payload shape of a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// JSON event, signed with HMAC-SHA256 (`X-AlephAuto-Signature`).
    #[default]
    Generic,
    /// A Slack incoming webhook (`{"text": ...}`).
    Slack,
    /// A Discord webhook (`{"content": ..., "allowed_mentions": {"parse": []}}`).
    Discord,
}

impl WebhookFormat {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Generic => "generic",
            Self::Slack => "slack",
            Self::Discord => "discord",
        }
    }
}

/// One `[[notify.webhooks]]` entry.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Stable id (deliveries name it): `[a-z0-9][a-z0-9-]{0,62}`.
    pub id: String,
    /// `http://` or `https://` URL the payload is POSTed to.
    pub url: String,
    /// Events sent to it (at least one).
    pub events: Vec<NotifyEventKind>,
    /// Only these pipelines (empty: every pipeline).
    #[serde(default)]
    pub pipelines: Vec<String>,
    /// Payload shape.
    #[serde(default)]
    pub format: WebhookFormat,
    /// HMAC key for `generic` payloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Environment variable holding the HMAC key (wins over `secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
}

// Hand-written so a secret never reaches a log line through `{:?}`.
impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("pipelines", &self.pipelines)
            .field("format", &self.format)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("secret_env", &self.secret_env)
            .finish()
    }
}

impl WebhookConfig {
    /// True when this hook wants `kind` events of `pipeline`.
    pub fn wants(&self, kind: NotifyEventKind, pipeline: &str) -> bool {
        self.events.contains(&kind) && (self.pipelines.is_empty() || self.pipelines.iter().any(|p| p == pipeline))
    }

    /// The signing key: `secret_env`'s value, else `secret`.
    pub fn resolve_secret(&self) -> Option<String> {
        if let Some(var) = &self.secret_env
            && let Ok(v) = std::env::var(var)
            && !v.is_empty()
        {
            return Some(v);
        }
        self.secret.clone().filter(|s| !s.is_empty())
    }
}

/// `[notify]`: webhooks and their delivery settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// The webhooks.
    pub webhooks: Vec<WebhookConfig>,
    /// Attempts per delivery before it is marked failed.
    pub max_attempts: u32,
    /// First retry delay in milliseconds; doubles per attempt.
    pub backoff_base_ms: u64,
    /// Longest retry delay in seconds.
    pub backoff_max_secs: u64,
    /// Seconds one attempt may take (connect, send, response) before it counts as failed.
    pub timeout_secs: u64,
    /// Deliveries sent at once.
    pub concurrency: u32,
    /// Milliseconds between looks at finished jobs and due deliveries.
    pub poll_ms: u64,
    /// Days finished deliveries (and their attempts) are kept; 0 keeps them forever.
    pub keep_days: u64,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            webhooks: Vec::new(),
            max_attempts: 8,
            backoff_base_ms: 2_000,
            backoff_max_secs: 3_600,
            timeout_secs: 10,
            concurrency: 4,
            poll_ms: 1_000,
            keep_days: 30,
        }
    }
}

impl NotifyConfig {
    /// Problems with these settings, each naming its key; `pipelines` are the configured ids.
    pub fn problems(&self, pipelines: &[&str]) -> Vec<String> {
        let mut problems = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for (i, h) in self.webhooks.iter().enumerate() {
            let key = format!("notify.webhooks[{i}]");
            if !super::is_valid_pipeline_id(&h.id) {
                problems.push(format!("{key}.id {:?} must match [a-z0-9][a-z0-9-]{{0,62}}", h.id));
            } else if !seen.insert(h.id.as_str()) {
                problems.push(format!("{key}.id {:?} is used by another webhook", h.id));
            }
            match reqwest::Url::parse(&h.url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
                _ => problems.push(format!("{key}.url must be an http:// or https:// URL")),
            }
            if h.events.is_empty() {
                problems.push(format!("{key}.events must name at least one event"));
            }
            for p in &h.pipelines {
                if !pipelines.contains(&p.as_str()) {
                    problems.push(format!("{key}.pipelines names unknown pipeline {p:?}"));
                }
            }
            if h.format == WebhookFormat::Generic && h.secret.is_none() && h.secret_env.is_none() {
                problems.push(format!("{key}: a generic webhook needs `secret` or `secret_env` (payloads are signed)"));
            }
            if let Some(var) = &h.secret_env
                && std::env::var(var).map(|v| v.is_empty()).unwrap_or(true)
                && h.secret.is_none()
            {
                problems.push(format!("{key}.secret_env names {var:?}, which is not set"));
            }
        }
        if self.max_attempts == 0 || self.max_attempts > 100 {
            problems.push("notify.max_attempts must be in 1..=100".into());
        }
        if self.timeout_secs == 0 || self.timeout_secs > 300 {
            problems.push("notify.timeout_secs must be in 1..=300".into());
        }
        if self.concurrency == 0 || self.concurrency > 64 {
            problems.push("notify.concurrency must be in 1..=64".into());
        }
        if self.poll_ms < 10 {
            problems.push("notify.poll_ms must be at least 10".into());
        }
        if self.backoff_base_ms == 0 {
            problems.push("notify.backoff_base_ms must be at least 1".into());
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> NotifyConfig {
        toml::from_str(text).expect("parses")
    }

    #[test]
    fn hooks_parse_and_problems_name_their_keys() {
        let c = parse(
            r#"
            [[webhooks]]
            id = "ops"
            url = "https://hooks.example.com/x"
            events = ["failed", "retries_exhausted"]
            pipelines = ["repomix"]
            secret = "s"
            [[webhooks]]
            id = "ops"
            url = "ftp://x"
            events = []
            pipelines = ["nope"]
            "#,
        );
        assert_eq!(c.webhooks[0].events, [NotifyEventKind::Failed, NotifyEventKind::RetriesExhausted]);
        assert!(c.webhooks[0].wants(NotifyEventKind::Failed, "repomix"));
        assert!(!c.webhooks[0].wants(NotifyEventKind::Failed, "other"));
        assert!(!c.webhooks[0].wants(NotifyEventKind::Completed, "repomix"));
        let problems = c.problems(&["repomix"]).join("\n");
        for want in [
            "notify.webhooks[1].id \"ops\" is used",
            "notify.webhooks[1].url",
            "notify.webhooks[1].events",
            "unknown pipeline \"nope\"",
            "needs `secret` or `secret_env`",
        ] {
            assert!(problems.contains(want), "{want} missing from {problems}");
        }
        assert!(!problems.contains("webhooks[0]"), "{problems}");
    }

    #[test]
    fn unknown_keys_and_events_are_refused() {
        assert!(toml::from_str::<NotifyConfig>("[[webhooks]]\nid='a'\nurl='http://x'\nevents=['x']").is_err());
        assert!(toml::from_str::<NotifyConfig>("[[webhooks]]\nid='a'\nurl='http://x'\nevents=[]\nsekret='x'").is_err());
    }

    #[test]
    fn debug_hides_the_secret() {
        let c = parse("[[webhooks]]\nid='a'\nurl='http://x'\nevents=['failed']\nsecret='hunter2'");
        assert!(!format!("{:?}", c).contains("hunter2"));
    }
}
