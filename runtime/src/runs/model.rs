//! What a run looks like from outside: its aggregate state and progress, computed from its
//! targets' jobs (never stored, so it cannot drift from the jobs table).

use serde::{Deserialize, Serialize};

use crate::store::runs::{RunCounts, RunRecord};

/// A run's aggregate state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Jobs are still being created.
    Starting,
    /// Every job is waiting.
    Queued,
    /// Some jobs are running or waiting, others done.
    Running,
    /// Every target's job completed.
    Completed,
    /// Done, and some targets failed, were refused or cancelled while others completed.
    Partial,
    /// Done, and no target completed.
    Failed,
    /// Cancelled by a user.
    Cancelled,
}

/// A run with its aggregate.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    /// The stored run.
    pub record: RunRecord,
    /// Its targets by outcome.
    pub counts: RunCounts,
    /// Aggregate state.
    pub state: RunState,
    /// Targets finished (any outcome) per hundred.
    pub percent: u8,
}

/// Targets with an outcome: completed, failed, cancelled, refused or pruned.
pub fn finished(c: &RunCounts) -> u32 {
    c.completed + c.failed + c.cancelled + c.refused + c.missing
}

impl RunSummary {
    /// The aggregate of `record` with `counts`.
    pub fn of(record: RunRecord, counts: RunCounts) -> Self {
        let active = counts.queued + counts.running;
        let done = finished(&counts);
        let state = if record.cancelled_at.is_some() {
            RunState::Cancelled
        } else if record.started_at.is_none() {
            RunState::Starting
        } else if active > 0 {
            if counts.running == 0 && done == 0 { RunState::Queued } else { RunState::Running }
        } else if done == counts.completed {
            RunState::Completed
        } else if counts.completed == 0 {
            RunState::Failed
        } else {
            RunState::Partial
        };
        let total = record.target_count.max(active + done);
        let percent = if total == 0 { 100 } else { (u64::from(done) * 100 / u64::from(total)) as u8 };
        Self { record, counts, state, percent }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;

    use super::*;

    fn record(started: bool, cancelled: bool, targets: u32) -> RunRecord {
        RunRecord {
            id: "run-x".into(),
            pipeline_id: "p".into(),
            inventory: "i".into(),
            parameters: json!({}),
            path_parameter: "dir".into(),
            triggered_by: "api".into(),
            dedupe_key: None,
            created_at: Utc::now(),
            started_at: started.then(Utc::now),
            cancelled_at: cancelled.then(Utc::now),
            target_count: targets,
            truncated: false,
        }
    }

    #[test]
    fn aggregate_states_follow_the_jobs() {
        let c = |queued, running, completed, failed, refused| RunCounts {
            queued,
            running,
            completed,
            failed,
            refused,
            ..RunCounts::default()
        };
        let of = |started, cancelled, counts: RunCounts| RunSummary::of(record(started, cancelled, 4), counts);
        assert_eq!(of(false, false, c(1, 0, 0, 0, 0)).state, RunState::Starting);
        assert_eq!(of(true, false, c(4, 0, 0, 0, 0)).state, RunState::Queued);
        assert_eq!(of(true, false, c(2, 1, 1, 0, 0)).state, RunState::Running);
        assert_eq!(of(true, false, c(0, 0, 4, 0, 0)).state, RunState::Completed);
        assert_eq!(of(true, false, c(0, 0, 3, 1, 0)).state, RunState::Partial);
        assert_eq!(of(true, false, c(0, 0, 0, 2, 2)).state, RunState::Failed);
        assert_eq!(of(true, true, c(0, 1, 3, 0, 0)).state, RunState::Cancelled);
        assert_eq!(of(true, false, c(2, 1, 1, 0, 0)).percent, 25);
        assert_eq!(RunSummary::of(record(true, false, 0), RunCounts::default()).percent, 100);
    }
}
