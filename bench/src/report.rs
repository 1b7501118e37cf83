//! Result rows, percentiles and the Markdown table.

use std::fmt::Write as _;
use std::time::Duration;

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    /// Section (1-6).
    pub section: &'static str,
    /// What was measured.
    pub metric: String,
    /// The figure, formatted.
    pub value: String,
    /// The target it is held against ("" when none).
    pub target: String,
    /// Hit (true), miss (false), or no target.
    pub hit: Option<bool>,
    /// How it was measured.
    pub note: String,
}

/// Collects rows and prints each as it is measured.
#[derive(Debug, Default)]
pub struct Report {
    /// Every row so far.
    pub rows: Vec<Row>,
}

impl Report {
    /// Adds a row without a target.
    pub fn add(
        &mut self,
        section: &'static str,
        metric: impl Into<String>,
        value: impl Into<String>,
        note: impl Into<String>,
    ) {
        self.push(Row {
            section,
            metric: metric.into(),
            value: value.into(),
            target: String::new(),
            hit: None,
            note: note.into(),
        });
    }

    /// Adds a row held against a target.
    pub fn target(
        &mut self,
        section: &'static str,
        metric: impl Into<String>,
        value: impl Into<String>,
        target: impl Into<String>,
        hit: bool,
        note: impl Into<String>,
    ) {
        self.push(Row {
            section,
            metric: metric.into(),
            value: value.into(),
            target: target.into(),
            hit: Some(hit),
            note: note.into(),
        });
    }

    fn push(&mut self, row: Row) {
        let verdict = match row.hit {
            Some(true) => " [hit]",
            Some(false) => " [MISS]",
            None => "",
        };
        eprintln!("  [{:>6.1}s] {:<58} {:>22}{}", crate::elapsed(), row.metric, row.value, verdict);
        self.rows.push(row);
    }

    /// The whole table as Markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let mut section = "";
        for row in &self.rows {
            if row.section != section {
                section = row.section;
                let _ = writeln!(out, "\n### {section}\n");
                let _ = writeln!(out, "| Metric | Value | Target | Verdict | How |");
                let _ = writeln!(out, "|---|---:|---|---|---|");
            }
            let verdict = match row.hit {
                Some(true) => "hit",
                Some(false) => "**miss**",
                None => "",
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                row.metric,
                row.value,
                row.target,
                verdict,
                row.note.replace('|', "\\|")
            );
        }
        out
    }
}

/// Nearest-rank percentile of sorted samples.
pub fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The middle value (the upper middle of an even count); the default when empty.
pub fn median<T: Copy + PartialOrd + Default>(values: &[T]) -> T {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

/// Sorts and returns (p50, p99).
pub fn p50_p99(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort_unstable();
    (pct(samples, 50.0), pct(samples, 99.0))
}

/// A duration in the unit that reads best.
pub fn fmt_d(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns < 10_000 {
        format!("{:.2} µs", ns as f64 / 1e3)
    } else if ns < 1_000_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else if ns < 10_000_000 {
        format!("{:.2} ms", ns as f64 / 1e6)
    } else if ns < 1_000_000_000 {
        format!("{:.1} ms", ns as f64 / 1e6)
    } else {
        format!("{:.2} s", ns as f64 / 1e9)
    }
}

/// A ratio checked against `threshold`, to `decimals` places, or more while fewer would
/// print the threshold itself for a value beside it (1.302× must not read as 1.30× next
/// to "≤ 1.3×" and a miss).
pub fn fmt_ratio_near(ratio: f64, threshold: f64, decimals: usize) -> String {
    let mut places = decimals;
    while ratio != threshold && places < 6 && format!("{ratio:.places$}") == format!("{threshold:.places$}") {
        places += 1;
    }
    format!("{ratio:.places$}×")
}

/// A rate with thousands separators.
pub fn fmt_rate(per_s: f64, unit: &str) -> String {
    format!("{} {unit}", group(per_s.round() as u64))
}

/// 12345 → "12,345".
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Mebibytes from kibibytes.
pub fn fmt_mb(kib: u64) -> String {
    format!("{:.1} MB", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::fmt_ratio_near;

    #[test]
    fn a_ratio_next_to_its_threshold_shows_which_side_it_is_on() {
        assert_eq!(fmt_ratio_near(1.3024, 1.3, 2), "1.302×");
        assert_eq!(fmt_ratio_near(1.2971, 1.3, 2), "1.297×");
        assert_eq!(fmt_ratio_near(1.3, 1.3, 2), "1.30×");
        assert_eq!(fmt_ratio_near(1.21, 1.3, 2), "1.21×");
        assert_eq!(fmt_ratio_near(2.51, 2.0, 2), "2.51×");
    }
}
