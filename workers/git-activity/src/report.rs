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

/// Commits on one day (UTC).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DayCount {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// Commits.
    pub commits: usize,
}

/// Commits in one week (Monday to Sunday, UTC).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct WeekCount {
    /// The week's Monday, `YYYY-MM-DD`.
    pub week: String,
    /// Commits.
    pub commits: usize,
}

/// One author's activity (authors are told apart by e-mail).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AuthorStats {
    /// Name on the author's newest commit.
    pub name: String,
    /// E-mail.
    pub email: String,
    /// Distinct commits (per repository).
    pub commits: usize,
    /// Lines added.
    pub lines_added: u64,
    /// Lines deleted.
    pub lines_deleted: u64,
    /// Repositories the author committed to.
    pub repositories: usize,
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
    /// Commits per day, days with commits only, oldest first.
    pub commits_by_day: Vec<DayCount>,
    /// Commits per week, every week the window touches (zeros too), oldest first.
    pub commits_by_week: Vec<WeekCount>,
    /// Authors, most commits first.
    pub authors: Vec<AuthorStats>,
    /// Repositories, most commits first.
    pub repositories: Vec<RepoStats>,
    /// Languages, most file changes first.
    pub languages: Vec<LanguageStats>,
}

const DAY: i64 = 86_400;

/// One author's running totals while the report is built.
struct Person<'a> {
    /// Time of the newest commit seen, whose name is kept.
    newest: i64,
    name: &'a str,
    commits: usize,
    added: u64,
    deleted: u64,
    /// Indexes of the repositories committed to.
    repositories: BTreeSet<usize>,
}

/// Days since the epoch of the Monday starting the week of `day` (1970-01-01 was a Thursday).
fn monday(day: i64) -> i64 {
    day - (day + 3).rem_euclid(7)
}

/// Every week from the one holding the window's first day to the one holding its last, with
/// the commits of `days` (day number → commits) that fall in each.
fn weeks(window: &Window, days: &BTreeMap<i64, usize>) -> Vec<WeekCount> {
    let first = monday(window.since.div_euclid(DAY));
    let last = monday((window.until - 1).div_euclid(DAY)).max(first);
    let mut out = Vec::new();
    let mut week = first;
    while week <= last {
        let commits = days.range(week..week + 7).map(|(_, n)| n).sum();
        out.push(WeekCount { week: time::format_date(week * DAY), commits });
        week += 7;
    }
    out
}

/// Aggregates commits into the report.
pub fn build_report(window: &Window, repos: &[RepoCommits]) -> Report {
    let mut totals = Totals { repositories: repos.len(), ..Totals::default() };
    let mut months: BTreeMap<String, usize> = BTreeMap::new();
    let mut languages: HashMap<&'static str, (usize, u64)> = HashMap::new();
    let mut all_authors: HashSet<&str> = HashSet::new();
    let mut days: BTreeMap<i64, usize> = BTreeMap::new();
    let mut people: HashMap<&str, Person> = HashMap::new();
    let mut stats = Vec::with_capacity(repos.len());
    for (repo_index, repo) in repos.iter().enumerate() {
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
            *days.entry(c.timestamp.div_euclid(DAY)).or_default() += 1;
            let person = people.entry(c.author_email.as_str()).or_insert_with(|| Person {
                newest: i64::MIN,
                name: "",
                commits: 0,
                added: 0,
                deleted: 0,
                repositories: BTreeSet::new(),
            });
            if c.timestamp >= person.newest {
                (person.newest, person.name) = (c.timestamp, c.author_name.as_str());
            }
            person.commits += 1;
            person.repositories.insert(repo_index);
            for f in &c.files {
                let (a, d) = (u64::from(f.added.unwrap_or(0)), u64::from(f.deleted.unwrap_or(0)));
                person.added += a;
                person.deleted += d;
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
    let mut authors: Vec<AuthorStats> = people
        .into_iter()
        .map(|(email, p)| AuthorStats {
            name: p.name.to_owned(),
            email: email.to_owned(),
            commits: p.commits,
            lines_added: p.added,
            lines_deleted: p.deleted,
            repositories: p.repositories.len(),
        })
        .collect();
    authors.sort_by(|a, b| b.commits.cmp(&a.commits).then_with(|| a.email.cmp(&b.email)));
    Report {
        period: window.clone(),
        totals,
        commits_by_month: months.into_iter().map(|(month, commits)| MonthCount { month, commits }).collect(),
        commits_by_week: weeks(window, &days),
        commits_by_day: days
            .into_iter()
            .map(|(day, commits)| DayCount { date: time::format_date(day * DAY), commits })
            .collect(),
        authors,
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
        assert_eq!(
            r.commits_by_day,
            vec![
                DayCount { date: "2024-01-02".into(), commits: 1 },
                DayCount { date: "2024-02-02".into(), commits: 2 }
            ]
        );
        // 2024-01-01 was a Monday; the window ends on Thursday 2024-02-29: nine weeks.
        assert_eq!(r.commits_by_week.len(), 9);
        assert_eq!(r.commits_by_week[0], WeekCount { week: "2024-01-01".into(), commits: 1 });
        assert_eq!(r.commits_by_week[4], WeekCount { week: "2024-01-29".into(), commits: 2 });
        assert_eq!(r.commits_by_week[8].week, "2024-02-26");
        assert_eq!(r.commits_by_week.iter().map(|w| w.commits).sum::<usize>(), 3);
        let x = &r.authors[0];
        assert_eq!((x.email.as_str(), x.commits, x.repositories, x.lines_added, x.lines_deleted), ("x@e", 2, 2, 18, 7));
        assert_eq!((r.authors[1].email.as_str(), r.authors[1].commits), ("y@e", 1));
    }
}
