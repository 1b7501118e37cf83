//! Job ids: `<pipeline>-<kind>-<unix ms>`, with `-1`, `-2`, ... when several jobs of
//! the same pipeline and kind are created in the same millisecond.

use std::collections::HashMap;
use std::sync::Mutex;

/// Hands out ids that are unique within the process.
#[derive(Debug, Default)]
pub struct IdGenerator {
    // std Mutex: a few integer operations, never held across an await.
    last: Mutex<HashMap<String, (i64, u32)>>,
}

impl IdGenerator {
    /// The next id for `pipeline` and `kind` (`manual`, `retry`) at `now_ms`.
    pub fn next(&self, pipeline: &str, kind: &str, now_ms: i64) -> String {
        let key = format!("{pipeline}-{kind}");
        let mut last = match self.last.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let slot = last.entry(key.clone()).or_insert((i64::MIN, 0));
        let seq = if slot.0 >= now_ms {
            // Same millisecond (or the clock stepped back): keep counting on the last one.
            slot.1 += 1;
            slot.1
        } else {
            *slot = (now_ms, 0);
            0
        };
        let ms = slot.0;
        if seq == 0 { format!("{key}-{ms}") } else { format!("{key}-{ms}-{seq}") }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collisions_in_one_millisecond_get_suffixes() {
        let ids = IdGenerator::default();
        assert_eq!(ids.next("repomix", "manual", 5), "repomix-manual-5");
        assert_eq!(ids.next("repomix", "manual", 5), "repomix-manual-5-1");
        assert_eq!(ids.next("repomix", "manual", 5), "repomix-manual-5-2");
        assert_eq!(ids.next("repomix", "retry", 5), "repomix-retry-5");
        assert_eq!(ids.next("repomix", "manual", 6), "repomix-manual-6");
        assert_eq!(ids.next("repomix", "manual", 4), "repomix-manual-6-1");
    }
}
