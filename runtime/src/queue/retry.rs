//! Retry policy: which failures are retried, and the exponential backoff between attempts.

use std::time::Duration;

use crate::domain::JobFailure;

/// Longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Whether a failed attempt should be queued again.
pub fn should_retry(failure: &JobFailure, attempt: u32, max_attempts: u32) -> bool {
    failure.retryable && attempt < max_attempts
}

/// Delay before attempt `attempt + 1`: base × 2^(attempt − 1), capped.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let factor = 1u32.checked_shl(attempt.saturating_sub(1)).unwrap_or(u32::MAX);
    base.checked_mul(factor).unwrap_or(MAX_BACKOFF).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let base = Duration::from_millis(100);
        assert_eq!(backoff(base, 1), Duration::from_millis(100));
        assert_eq!(backoff(base, 2), Duration::from_millis(200));
        assert_eq!(backoff(base, 4), Duration::from_millis(800));
        assert_eq!(backoff(base, 40), MAX_BACKOFF);
    }

    #[test]
    fn only_retryable_failures_with_attempts_left_are_retried() {
        let f = |retryable| JobFailure { message: "x".into(), code: "X".into(), retryable };
        assert!(should_retry(&f(true), 1, 3));
        assert!(!should_retry(&f(true), 3, 3));
        assert!(!should_retry(&f(false), 1, 3));
    }
}
