//! Where the scheduler reads "now" from. The system clock in every normal build; with the
//! `test-hooks` cargo feature, `ALEPHAUTO_TEST_CLOCK=FILE` makes it read an RFC 3339 time from
//! FILE and re-check whenever the file changes, so end-to-end tests move time by writing a
//! file instead of sleeping. Without the feature the variable is never read (the code is not
//! compiled in; see `tests::the_test_clock_is_not_compiled_in_by_default`).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// A source of the current time for the scheduler.
#[async_trait]
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
    /// Returns at `until` (None: no deadline), when the clock jumps, or after `max` of real
    /// time, whichever comes first.
    async fn wait(&self, until: Option<DateTime<Utc>>, max: Duration);
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    async fn wait(&self, until: Option<DateTime<Utc>>, max: Duration) {
        let left = until.and_then(|t| (t - Utc::now()).to_std().ok()).unwrap_or(Duration::ZERO);
        let left = if until.is_some() { left.min(max) } else { max };
        tokio::time::sleep(left).await;
    }
}

/// The clock the process uses: the test clock file under `test-hooks` when the variable is
/// set, else the system clock.
pub fn from_env() -> anyhow::Result<std::sync::Arc<dyn Clock>> {
    select(std::env::var_os("ALEPHAUTO_TEST_CLOCK"))
}

/// The clock for the variable's value.
fn select(test_clock: Option<std::ffi::OsString>) -> anyhow::Result<std::sync::Arc<dyn Clock>> {
    #[cfg(not(feature = "test-hooks"))]
    let _ = test_clock;
    #[cfg(feature = "test-hooks")]
    if let Some(path) = test_clock {
        tracing::warn!(file = %std::path::Path::new(&path).display(), "test clock: the scheduler reads the time from a file");
        return Ok(std::sync::Arc::new(file::FileClock::new(path.into())?));
    }
    Ok(std::sync::Arc::new(SystemClock))
}

#[cfg(feature = "test-hooks")]
mod file {
    use std::path::PathBuf;
    use std::sync::Mutex;
    use std::time::Duration;

    use anyhow::Context;
    use async_trait::async_trait;
    use chrono::{DateTime, Utc};

    use super::Clock;

    /// Reads the time from a file (RFC 3339); the last good reading is kept when the file is
    /// briefly unreadable (a test rewriting it).
    #[derive(Debug)]
    pub(super) struct FileClock {
        path: PathBuf,
        // std Mutex: one short read-modify per call, never across an await.
        last: Mutex<DateTime<Utc>>,
    }

    impl FileClock {
        pub(super) fn new(path: PathBuf) -> anyhow::Result<Self> {
            let now = read(&path).with_context(|| format!("reading the test clock {}", path.display()))?;
            Ok(Self { path, last: Mutex::new(now) })
        }
    }

    fn read(path: &std::path::Path) -> anyhow::Result<DateTime<Utc>> {
        let text = std::fs::read_to_string(path)?;
        crate::domain::parse_ts(text.trim()).with_context(|| format!("not an RFC 3339 time: {:?}", text.trim()))
    }

    #[async_trait]
    impl Clock for FileClock {
        fn now(&self) -> DateTime<Utc> {
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            if let Ok(t) = read(&self.path) {
                *last = t;
            }
            *last
        }

        async fn wait(&self, until: Option<DateTime<Utc>>, max: Duration) {
            let start = self.now();
            let deadline = tokio::time::Instant::now() + max;
            while tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let now = self.now();
                if now != start || until.is_some_and(|t| now >= t) {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(not(feature = "test-hooks"))]
    #[test]
    fn the_test_clock_is_not_compiled_in_by_default() {
        let clock = super::select(Some("/nonexistent/clock".into())).expect("the variable is ignored");
        let drift = (clock.now() - chrono::Utc::now()).num_seconds().abs();
        assert!(drift < 5, "the default build reads the system clock");
    }
}
