//! A circuit breaker for worker initialisation: after `threshold` consecutive
//! failures it refuses for a cooldown that doubles (from `base` up to `max`), then
//! lets one attempt through; a success closes it again.

use std::time::{Duration, Instant};

/// Breaker timing.
#[derive(Debug, Clone, Copy)]
pub struct BreakerSettings {
    /// Consecutive failures that open the breaker.
    pub threshold: u32,
    /// First cooldown.
    pub base: Duration,
    /// Longest cooldown.
    pub max: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self { threshold: 3, base: Duration::from_secs(60), max: Duration::from_secs(600) }
    }
}

/// One pipeline's breaker.
#[derive(Debug)]
pub struct Breaker {
    settings: BreakerSettings,
    failures: u32,
    open_until: Option<Instant>,
    next_cooldown: Duration,
    last_error: Option<String>,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(settings: BreakerSettings) -> Self {
        Self { settings, failures: 0, open_until: None, next_cooldown: settings.base, last_error: None }
    }

    /// Ok when an attempt may go ahead; otherwise how long until it may.
    pub fn check(&self, now: Instant) -> Result<(), Duration> {
        match self.open_until {
            Some(until) if now < until => Err(until - now),
            _ => Ok(()),
        }
    }

    /// True while refusing.
    pub fn is_open(&self, now: Instant) -> bool {
        self.check(now).is_err()
    }

    /// Records a failed attempt.
    pub fn on_failure(&mut self, now: Instant, error: String) {
        self.failures += 1;
        self.last_error = Some(error);
        if self.failures >= self.settings.threshold {
            self.open_until = Some(now + self.next_cooldown);
            self.next_cooldown = (self.next_cooldown * 2).min(self.settings.max);
        }
    }

    /// Records a success: the breaker closes and the cooldown resets.
    pub fn on_success(&mut self) {
        self.failures = 0;
        self.open_until = None;
        self.next_cooldown = self.settings.base;
        self.last_error = None;
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The latest initialisation error.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_three_failures_and_doubles_up_to_the_max() {
        let s = BreakerSettings { threshold: 3, base: Duration::from_secs(60), max: Duration::from_secs(600) };
        let mut b = Breaker::new(s);
        let t0 = Instant::now();
        b.on_failure(t0, "x".into());
        b.on_failure(t0, "x".into());
        assert!(b.check(t0).is_ok());
        b.on_failure(t0, "x".into());
        assert_eq!(b.check(t0), Err(Duration::from_secs(60)));
        // After the cooldown one attempt goes through; failing again doubles the wait.
        let t1 = t0 + Duration::from_secs(60);
        assert!(b.check(t1).is_ok());
        b.on_failure(t1, "x".into());
        assert_eq!(b.check(t1), Err(Duration::from_secs(120)));
        let mut t = t1;
        for _ in 0..10 {
            t += Duration::from_secs(700);
            b.on_failure(t, "x".into());
        }
        assert_eq!(b.check(t), Err(Duration::from_secs(600)));
        b.on_success();
        assert!(b.check(t).is_ok());
        assert_eq!(b.failures(), 0);
    }
}
