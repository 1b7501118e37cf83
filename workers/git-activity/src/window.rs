//! The reporting window: `[since, until)` in Unix seconds, where `until` is the end of the
//! last second covered, so the window's end is inclusive at git's (second) resolution.

use alephauto_guest::{JobError, schemars, time};
use serde::{Deserialize, Serialize};

/// Which window to report on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReportType {
    /// The last 7 days.
    #[default]
    Weekly,
    /// The last 30 days.
    Monthly,
    /// `sinceDate` to `untilDate`.
    Custom,
}

/// A resolved window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Window {
    /// What was asked for.
    pub report_type: ReportType,
    /// Start (inclusive), Unix seconds.
    pub since: i64,
    /// End, Unix seconds, exclusive: the end of `untilDate`'s day, or the end of the second the
    /// job started in (a commit made in that second counts).
    pub until: i64,
    /// Start date, `YYYY-MM-DD`.
    pub since_date: String,
    /// Last day covered, `YYYY-MM-DD`.
    pub until_date: String,
    /// Length in whole days (rounded up).
    pub days: i64,
}

/// Resolves the parameters against `now`; custom needs `sinceDate`, and the window must not be empty.
pub fn resolve_window(
    report_type: ReportType,
    days: Option<u32>,
    since_date: Option<&str>,
    until_date: Option<&str>,
    now: i64,
) -> Result<Window, JobError> {
    let parse = |field: &str, s: &str| {
        time::parse_date(s).ok_or_else(|| JobError::invalid(field, format!("`{s}` is not a YYYY-MM-DD date")))
    };
    // The end is inclusive: the window runs to the end of the until date's day, or to the end
    // of the current second (git times are whole seconds, so `now` itself must be inside).
    let until = match until_date {
        Some(s) => parse("untilDate", s)? + 86_400,
        None => now + 1,
    };
    let since = match (report_type, days, since_date) {
        (_, Some(d), _) => until - i64::from(d) * 86_400,
        (ReportType::Custom, None, Some(s)) => parse("sinceDate", s)?,
        (ReportType::Custom, None, None) => {
            return Err(JobError::invalid("sinceDate", "custom reports need sinceDate"));
        }
        (ReportType::Weekly, None, _) => until - 7 * 86_400,
        (ReportType::Monthly, None, _) => until - 30 * 86_400,
    };
    if since >= until {
        return Err(JobError::invalid("sinceDate", "the window is empty (since is not before until)"));
    }
    Ok(Window {
        report_type,
        since,
        until,
        since_date: time::format_date(since),
        until_date: time::format_date(until - 1),
        days: (until - since + 86_399) / 86_400,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_718_000_000; // 2024-06-10

    #[test]
    fn resolves_each_kind() {
        let w = resolve_window(ReportType::Weekly, None, None, None, NOW).expect("weekly");
        assert_eq!((w.until - w.since, w.days), (7 * 86_400, 7));
        let m = resolve_window(ReportType::Monthly, None, None, None, NOW).expect("monthly");
        assert_eq!(m.days, 30);
        let d = resolve_window(ReportType::Weekly, Some(90), None, None, NOW).expect("days");
        assert_eq!(d.days, 90);
        let c = resolve_window(ReportType::Custom, None, Some("2024-01-01"), Some("2024-01-31"), NOW).expect("custom");
        assert_eq!((c.since_date.as_str(), c.until_date.as_str(), c.days), ("2024-01-01", "2024-01-31", 31));
    }

    #[test]
    fn a_commit_in_the_current_second_is_inside_the_window() {
        for w in [
            resolve_window(ReportType::Weekly, None, None, None, NOW).expect("weekly"),
            resolve_window(ReportType::Monthly, Some(1), None, None, NOW).expect("days"),
        ] {
            assert!(w.since <= NOW && NOW < w.until, "{w:?}");
            assert_eq!(w.until, NOW + 1, "nothing after this second");
            assert_eq!(w.until_date, "2024-06-10");
        }
        let today = resolve_window(ReportType::Custom, None, Some("2024-06-10"), Some("2024-06-10"), NOW).expect("c");
        assert!(today.since <= NOW && NOW < today.until && today.days == 1, "{today:?}");
    }

    #[test]
    fn rejects_bad_custom_windows() {
        let e = resolve_window(ReportType::Custom, None, None, None, NOW).err();
        assert!(matches!(e, Some(JobError::InvalidInput { ref field, .. }) if field == "sinceDate"));
        let e = resolve_window(ReportType::Custom, None, Some("2024-02-30"), None, NOW).err();
        assert!(matches!(e, Some(JobError::InvalidInput { ref field, .. }) if field == "sinceDate"));
        let e = resolve_window(ReportType::Custom, None, Some("2024-03-01"), Some("2024-01-01"), NOW).err();
        assert!(e.is_some());
    }
}
