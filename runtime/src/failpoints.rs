//! Named crash points where durable state and an outside effect meet (TiKV's `fail` crate).
//!
//! Compiled to nothing unless the `test-hooks` feature is on. With it, `main` calls
//! [`setup`] and the `FAILPOINTS` environment variable configures points the way `fail`
//! documents (`name=action;name2=action`): `sleep(ms)`, `pause`, `panic`, `print(...)`, or
//! `return(kill)`, which writes `failpoint <name> reached: SIGKILL` to stderr and then sends
//! the process a real SIGKILL, so nothing (no destructor, no flush, no caught panic) runs
//! after the point: what a power cut or the OOM killer leaves. The crash-point suite
//! (`tests/e2e/crash.rs`) drives every name in [`ALL`].

/// Every crash point, in the order a job meets them. A new effect adds its name here and a
/// row to the suite's table.
pub const ALL: &[&str] = &[
    ENQUEUED,
    CLAIMED,
    GUEST_FINISHED,
    BRANCH_CREATED,
    COMMITTED,
    PUSHED,
    PR_OPENED,
    OUTCOME_WRITTEN,
    EVENT_PUBLISHED,
    WEBHOOK_SENT,
    SCHEDULE_FIRE,
    SCHEDULE_FIRED,
];

/// The job row is committed; `job:created` not yet published.
pub const ENQUEUED: &str = "enqueued";
/// The attempt is claimed (`running` committed); `job:started` not yet published.
pub const CLAIMED: &str = "claimed";
/// The guest returned; nothing of its outcome (git, store) done yet.
pub const GUEST_FINISHED: &str = "guest-finished";
/// The job branch is checked out in the work tree; the guest has not run.
pub const BRANCH_CREATED: &str = "branch-created";
/// The job commit exists on the local job branch; nothing pushed.
pub const COMMITTED: &str = "committed";
/// The job branch is on the remote; no pull request yet.
pub const PUSHED: &str = "pushed";
/// The forge answered the pull request; the outcome is not written.
pub const PR_OPENED: &str = "pr-opened";
/// The terminal outcome is committed; its event not yet published.
pub const OUTCOME_WRITTEN: &str = "outcome-written";
/// A lifecycle event was handed to the bus (or the cluster).
pub const EVENT_PUBLISHED: &str = "event-published";
/// A webhook receiver accepted a delivery; the attempt is not recorded yet.
pub const WEBHOOK_SENT: &str = "webhook-sent";
/// A schedule decided to fire; its job (or run) is not inserted yet.
pub const SCHEDULE_FIRE: &str = "schedule-fire";
/// A schedule's fire is inserted; the schedule's state (last fire, next fire) is not saved yet.
pub const SCHEDULE_FIRED: &str = "schedule-fired";

/// Reads `FAILPOINTS`; the returned scenario must live as long as the process.
#[cfg(feature = "test-hooks")]
pub fn setup() -> fail::FailScenario<'static> {
    fail::FailScenario::setup()
}

/// Evaluates the point `name`: does nothing unless `FAILPOINTS` configured it.
#[cfg(feature = "test-hooks")]
pub fn hit(name: &str) {
    let action = fail::eval(name, |arg| arg);
    if let Some(Some(arg)) = action
        && arg == "kill"
    {
        use std::io::Write as _;
        // Straight to the file descriptor: the test reads it after the process is gone.
        let _ = writeln!(std::io::stderr(), "failpoint {name} reached: SIGKILL");
        // SAFETY: kill(2) on our own pid with a valid signal number has no memory effects.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

/// Evaluates the point `name`: compiled out without the `test-hooks` feature.
#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub fn hit(_name: &str) {}

/// True when the test-only switch `name` is set in the environment (always false without
/// the `test-hooks` feature). The crash-point suite uses these to break an idempotency
/// check on purpose and prove it would notice.
pub fn broken(name: &str) -> bool {
    cfg!(feature = "test-hooks") && std::env::var_os(name).is_some_and(|v| v == "1")
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_point_has_a_distinct_name() {
        let mut names = super::ALL.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), super::ALL.len());
    }
}
