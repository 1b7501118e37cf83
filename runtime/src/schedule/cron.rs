//! Cron expressions and next-fire search: croner parses five-field (minute) and six-field
//! (second) expressions and the `@daily`-style aliases; times are searched in the schedule's
//! IANA time zone (chrono-tz), so daylight-saving changes follow croner's documented rules: a
//! fixed time inside the spring-forward gap fires once, at the first valid instant after the
//! gap, and a fixed time in the repeated fall-back hour fires once, at its first pass.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// A parsed schedule timing: the expression and its time zone.
#[derive(Debug, Clone)]
pub struct Timing {
    cron: Cron,
    tz: Tz,
}

/// Why a timing was refused, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimingError {
    /// The cron expression does not parse.
    #[error("cron: invalid expression {expr:?}: {reason}")]
    Cron {
        /// The expression.
        expr: String,
        /// croner's reason.
        reason: String,
    },
    /// The time zone is not an IANA name.
    #[error("timezone: unknown time zone {0:?} (want an IANA name such as \"Europe/Berlin\" or \"UTC\")")]
    TimeZone(String),
}

impl TimingError {
    /// The field at fault: `cron` or `timezone`.
    pub fn field(&self) -> &'static str {
        match self {
            TimingError::Cron { .. } => "cron",
            TimingError::TimeZone(_) => "timezone",
        }
    }
}

/// Longest expression accepted (croner's own limits apply within it).
const MAX_EXPR: usize = 200;

impl Timing {
    /// Parses `expr` (5 or 6 fields, or an alias) read in time zone `tz`.
    pub fn parse(expr: &str, tz: &str) -> Result<Self, TimingError> {
        let bad = |reason: String| TimingError::Cron { expr: expr.chars().take(MAX_EXPR).collect(), reason };
        if expr.len() > MAX_EXPR {
            return Err(bad(format!("longer than {MAX_EXPR} characters")));
        }
        let fields = expr.split_whitespace().count();
        if !expr.trim_start().starts_with('@') && !(5..=6).contains(&fields) {
            return Err(bad(format!(
                "has {fields} fields; want 5 (minute hour day month weekday) or 6 (with seconds first)"
            )));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build()
            .parse(expr)
            .map_err(|e| bad(e.to_string()))?;
        let tz = Tz::from_str(tz.trim()).map_err(|_| TimingError::TimeZone(tz.chars().take(100).collect()))?;
        // An expression that never matches (e.g. 30 February) is refused now, not at fire time.
        let timing = Self { cron, tz };
        if timing.next_after(Utc::now()).is_none() {
            return Err(bad("never matches a real date".into()));
        }
        Ok(timing)
    }

    /// The first fire time strictly after `t`, None when there is none.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.tz);
        self.cron.find_next_occurrence(&local, false).ok().map(|n| n.with_timezone(&Utc))
    }

    /// Fire times in `(after, until]`, oldest first, at most `cap` (the bool says whether more
    /// were left out).
    pub fn fires_between(&self, after: DateTime<Utc>, until: DateTime<Utc>, cap: usize) -> (Vec<DateTime<Utc>>, bool) {
        let mut out = Vec::new();
        let mut t = after;
        while let Some(next) = self.next_after(t) {
            if next > until {
                return (out, false);
            }
            if out.len() == cap {
                return (out, true);
            }
            out.push(next);
            t = next;
        }
        (out, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        crate::domain::parse_ts(s).unwrap()
    }

    #[test]
    fn five_and_six_fields_and_aliases_parse() {
        let t = Timing::parse("0 2 * * *", "UTC").unwrap();
        assert_eq!(t.next_after(utc("2026-03-01T00:00:00Z")), Some(utc("2026-03-01T02:00:00Z")));
        let t = Timing::parse("30 0 2 * * *", "UTC").unwrap();
        assert_eq!(t.next_after(utc("2026-03-01T00:00:00Z")), Some(utc("2026-03-01T02:00:30Z")));
        let t = Timing::parse("@daily", "UTC").unwrap();
        assert_eq!(t.next_after(utc("2026-03-01T00:00:00Z")), Some(utc("2026-03-02T00:00:00Z")));
        let t = Timing::parse("@hourly", "UTC").unwrap();
        assert_eq!(t.next_after(utc("2026-03-01T00:10:00Z")), Some(utc("2026-03-01T01:00:00Z")));
    }

    #[test]
    fn the_time_zone_decides_the_instant() {
        let berlin = Timing::parse("0 2 * * *", "Europe/Berlin").unwrap();
        assert_eq!(berlin.next_after(utc("2026-01-10T00:00:00Z")), Some(utc("2026-01-10T01:00:00Z")));
        let ny = Timing::parse("0 2 * * *", "America/New_York").unwrap();
        assert_eq!(ny.next_after(utc("2026-01-10T00:00:00Z")), Some(utc("2026-01-10T07:00:00Z")));
    }

    #[test]
    fn spring_forward_fires_once_after_the_gap_and_fall_back_once() {
        // 2026-03-29: Berlin jumps from 02:00 to 03:00 (01:00Z).
        let t = Timing::parse("30 2 * * *", "Europe/Berlin").unwrap();
        let (fires, more) = t.fires_between(utc("2026-03-28T12:00:00Z"), utc("2026-03-30T12:00:00Z"), 10);
        assert!(!more);
        assert_eq!(fires, vec![utc("2026-03-29T01:00:00Z"), utc("2026-03-30T00:30:00Z")]);
        // 2026-10-25: Berlin goes from 03:00 back to 02:00 (01:00Z); 02:30 happens twice.
        let (fires, _) = t.fires_between(utc("2026-10-24T12:00:00Z"), utc("2026-10-26T12:00:00Z"), 10);
        assert_eq!(fires, vec![utc("2026-10-25T00:30:00Z"), utc("2026-10-26T01:30:00Z")]);
    }

    #[test]
    fn bad_expressions_and_zones_name_their_field() {
        for expr in ["", "* * *", "61 * * * *", "* * * * * * *", "hello world a b c", "0 0 30 2 *"] {
            let err = Timing::parse(expr, "UTC").unwrap_err();
            assert_eq!(err.field(), "cron", "{expr:?}: {err}");
        }
        let err = Timing::parse("0 2 * * *", "Mars/Olympus").unwrap_err();
        assert_eq!(err.field(), "timezone");
        assert!(err.to_string().starts_with("timezone:"));
    }

    #[test]
    fn fires_between_is_bounded() {
        let t = Timing::parse("* * * * * *", "UTC").unwrap();
        let (fires, more) = t.fires_between(utc("2026-01-01T00:00:00Z"), utc("2026-02-01T00:00:00Z"), 5);
        assert_eq!(fires.len(), 5);
        assert!(more);
    }
}
