//! Building the activity report from commits (pure: no git, no files).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use alephauto_guest::{Commit, lang, time};
use serde::Serialize;

use crate::window::Window;

/// One repository's commits in the window.
#[derive(Debug, Clone)]
pub struct RepoCommits {
    /// Folder name.
    pub name: String,
    /// Absolute path.
    pub path: String,
    /// Commits (may repeat across branches; deduplicated by sha).
    pub commits: Vec<Commit>,
}

/// Totals over every repository.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    /// Distinct commits.
    pub commits: usize,
    /// Repositories scanned.
    pub repositories: usize,
    /// Repositories with at least one commit.
    pub active_repositories: usize,
    /// Lines added.
    pub lines_added: u64,
    /// Lines deleted.
    pub lines_deleted: u64,
    /// Distinct files changed (per repository).
    pub files_changed: usize,
    /// Distinct author e-mails.
    pub authors: usize,
}

/// Commits in one calendar month.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MonthCount {
    /// `YYYY-MM`.
    pub month: String,
    /// Commits.
    pub commits: usize,
}

/// One repository's activity.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RepoStats {
    /// Folder name.
    pub name: String,
    /// Absolute path.
    pub path: String,
    /// Distinct commits.
    pub commits: usize,
    /// Lines added.
    pub lines_added: u64,
    /// Lines deleted.
    pub lines_deleted: u64,
    /// Distinct files changed.
    pub files_changed: usize,
    /// Distinct author e-mails.
    pub authors: usize,
    /// Date of the newest commit.
    pub last_commit: Option<String>,
}

/// File changes per language.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LanguageStats {
    /// Language (by file extension; `Other` when unknown).
    pub language: String,
    /// File changes (a file touched by two commits counts twice).
    pub file_changes: usize,
    /// Lines added plus deleted.
    pub lines_changed: u64,
    /// Share of file changes, 0-100.
    pub percentage: f64,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The window reported on.
    pub period: Window,
    /// Totals.
    pub totals: Totals,
    /// Commits per month, oldest first.
    pub commits_by_month: Vec<MonthCount>,
    /// Repositories, most commits first.
    pub repositories: Vec<RepoStats>,
    /// Languages, most file changes first.
    pub languages: Vec<LanguageStats>,
}

/// Aggregates commits into the report.
pub fn build_report(window: &Window, repos: &[RepoCommits]) -> Report {
    let mut totals = Totals { repositories: repos.len(), ..Totals::default() };
    let mut months: BTreeMap<String, usize> = BTreeMap::new();
    let mut languages: HashMap<&'static str, (usize, u64)> = HashMap::new();
    let mut all_authors: HashSet<&str> = HashSet::new();
    let mut stats = Vec::with_capacity(repos.len());
    for repo in repos {
        let mut seen: HashSet<&str> = HashSet::new();
        let mut files: BTreeSet<&str> = BTreeSet::new();
        let mut authors: HashSet<&str> = HashSet::new();
        let mut s = RepoStats {
            name: repo.name.clone(),
            path: repo.path.clone(),
            commits: 0,
            lines_added: 0,
            lines_deleted: 0,
            files_changed: 0,
            authors: 0,
            last_commit: None,
        };
        let mut newest = i64::MIN;
        for c in repo.commits.iter().filter(|c| seen.insert(c.sha.as_str())) {
            s.commits += 1;
            newest = newest.max(c.timestamp);
            authors.insert(c.author_email.as_str());
            all_authors.insert(c.author_email.as_str());
            *months.entry(time::format_month(c.timestamp)).or_default() += 1;
            for f in &c.files {
                let (a, d) = (u64::from(f.added.unwrap_or(0)), u64::from(f.deleted.unwrap_or(0)));
                s.lines_added += a;
                s.lines_deleted += d;
                files.insert(f.path.as_str());
                let language = lang::language_for_extension(&lang::extension(&f.path)).unwrap_or("Other");
                let entry = languages.entry(language).or_default();
                entry.0 += 1;
                entry.1 += a + d;
            }
        }
        s.files_changed = files.len();
        s.authors = authors.len();
        s.last_commit = (s.commits > 0).then(|| time::format_date(newest));
        totals.commits += s.commits;
        totals.lines_added += s.lines_added;
        totals.lines_deleted += s.lines_deleted;
        totals.files_changed += s.files_changed;
        totals.active_repositories += usize::from(s.commits > 0);
        stats.push(s);
    }
    totals.authors = all_authors.len();
    stats.sort_by(|a, b| b.commits.cmp(&a.commits).then_with(|| a.name.cmp(&b.name)));
    let changes: usize = languages.values().map(|v| v.0).sum();
    let mut langs: Vec<LanguageStats> = languages
        .into_iter()
        .map(|(l, (n, lines))| LanguageStats {
            language: l.to_owned(),
            file_changes: n,
            lines_changed: lines,
            percentage: (1000.0 * n as f64 / changes.max(1) as f64).round() / 10.0,
        })
        .collect();
    langs.sort_by(|a, b| b.file_changes.cmp(&a.file_changes).then_with(|| a.language.cmp(&b.language)));
    Report {
        period: window.clone(),
        totals,
        commits_by_month: months.into_iter().map(|(month, commits)| MonthCount { month, commits }).collect(),
        repositories: stats,
        languages: langs,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::window::{ReportType, resolve_window};
    use alephauto_guest::FileChange;

    pub(crate) fn commit(sha: &str, email: &str, ts: i64, files: &[(&str, Option<u32>, Option<u32>)]) -> Commit {
        Commit {
            sha: sha.into(),
            author_name: email.split('@').next().unwrap_or(email).into(),
            author_email: email.into(),
            timestamp: ts,
            subject: format!("commit {sha}"),
            files: files.iter().map(|(p, a, d)| FileChange { path: (*p).into(), added: *a, deleted: *d }).collect(),
        }
    }

    pub(crate) fn sample() -> Report {
        let jan = 1_704_067_200 + 86_400; // 2024-01-02
        let feb = 1_706_745_600 + 86_400; // 2024-02-01 + 1d
        let window =
            resolve_window(ReportType::Custom, None, Some("2024-01-01"), Some("2024-02-29"), 0).expect("window");
        let a = RepoCommits {
            name: "alpha".into(),
            path: "/r/alpha".into(),
            commits: vec![
                commit("a1", "x@e", jan, &[("src/lib.rs", Some(10), Some(2)), ("README.md", Some(3), Some(0))]),
                commit("a2", "y@e", feb, &[("src/lib.rs", Some(1), Some(1)), ("logo.png", None, None)]),
                commit("a1", "x@e", jan, &[("src/lib.rs", Some(10), Some(2))]),
            ],
        };
        let b = RepoCommits {
            name: "beta".into(),
            path: "/r/beta".into(),
            commits: vec![commit("b1", "x@e", feb, &[("app.ts", Some(5), Some(5))])],
        };
        let idle = RepoCommits { name: "idle".into(), path: "/r/idle".into(), commits: vec![] };
        build_report(&window, &[b, a, idle])
    }

    #[test]
    fn aggregates_dedupes_and_ranks() {
        let r = sample();
        assert_eq!(
            r.totals,
            Totals {
                commits: 3,
                repositories: 3,
                active_repositories: 2,
                lines_added: 19,
                lines_deleted: 8,
                files_changed: 4,
                authors: 2
            }
        );
        assert_eq!(
            r.commits_by_month,
            vec![
                MonthCount { month: "2024-01".into(), commits: 1 },
                MonthCount { month: "2024-02".into(), commits: 2 }
            ]
        );
        let names: Vec<&str> = r.repositories.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, vec!["alpha", "beta", "idle"]);
        assert_eq!(r.repositories[0].last_commit.as_deref(), Some("2024-02-02"));
        assert_eq!(r.repositories[2].last_commit, None);
        assert_eq!(r.languages[0].language, "Rust");
        assert_eq!(r.languages[0].file_changes, 2);
        assert_eq!(r.languages[0].lines_changed, 14);
        let total_pct: f64 = r.languages.iter().map(|l| l.percentage).sum();
        assert!((total_pct - 100.0).abs() < 0.5);
        assert!(r.languages.iter().any(|l| l.language == "Other" && l.lines_changed == 0));
    }
}
