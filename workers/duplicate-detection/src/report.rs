//! Running a scan over repositories, paging its result and writing its full reports.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use alephauto_guest::{JobError, Reporter, ResultExt};
use serde_json::{Value, json};

use crate::ScanType;
use crate::detect::{Duplicate, find_duplicates};
use crate::source::{Mode, SourceFile, load_repository};
use crate::structural::find_function_duplicates;
use crate::suggest::suggest;

/// What to look for and which page of it to return.
#[derive(Debug, Clone, Copy)]
pub struct ScanOptions {
    /// Token comparison.
    pub mode: Mode,
    /// Smallest clone, in tokens.
    pub min_tokens: usize,
    /// Smallest clone, in lines.
    pub min_lines: usize,
    /// First group of the page (in each list).
    pub offset: usize,
    /// Groups per page (in each list).
    pub limit: usize,
}

/// A finished scan: every group, and the facts about the files.
#[derive(Debug)]
pub struct Scan {
    /// Token clone groups, ranked.
    pub duplicates: Vec<Duplicate>,
    /// Whole-function groups, ranked.
    pub functions: Vec<Duplicate>,
    /// Statistics over everything (never only a page).
    pub stats: Value,
}

/// Lines covered by at least one occurrence of `groups`.
fn duplicated_lines<'a>(groups: impl Iterator<Item = &'a Duplicate>) -> u64 {
    let mut per_file: BTreeMap<(&str, &str), Vec<(u32, u32)>> = BTreeMap::new();
    for o in groups.flat_map(|d| &d.occurrences) {
        per_file.entry((&o.repository, &o.file)).or_default().push((o.start_line, o.end_line));
    }
    let mut total = 0u64;
    for spans in per_file.values_mut() {
        spans.sort_unstable();
        let mut reach = 0u32;
        for &(a, b) in spans.iter() {
            let from = a.max(reach + 1);
            if b >= from {
                total += u64::from(b - from + 1);
            }
            reach = reach.max(b);
        }
    }
    total
}

/// Finds every group in `files`.
pub fn detect(scan_type: ScanType, files: &[SourceFile], names: &[String], o: &ScanOptions) -> Scan {
    let mut duplicates = find_duplicates(files, names, o.min_tokens, o.min_lines);
    let mut functions = find_function_duplicates(files, names, o.min_tokens, o.min_lines);
    if scan_type == ScanType::InterProject {
        // Cross-repository groups are what an inter-project scan is for: rank them first.
        for (list, prefix) in [(&mut duplicates, "dup"), (&mut functions, "fn")] {
            list.sort_by_key(|d| !d.cross_repository);
            for (n, d) in list.iter_mut().enumerate() {
                d.id = format!("{prefix}-{}", n + 1);
            }
        }
    }
    let mut languages: BTreeMap<&str, usize> = BTreeMap::new();
    for f in files {
        *languages.entry(f.language).or_default() += 1;
    }
    let code_lines: usize = files.iter().map(SourceFile::code_lines).sum();
    let dup_lines = duplicated_lines(duplicates.iter());
    let stats = json!({
        "filesScanned": files.len(),
        "languages": languages,
        "tokens": files.iter().map(|f| f.tokens.len()).sum::<usize>(),
        "significantLines": code_lines,
        "duplicateGroups": duplicates.len(),
        "functionGroups": functions.len(),
        "crossRepositoryGroups": duplicates.iter().chain(&functions).filter(|d| d.cross_repository).count(),
        "removableLines": duplicates.iter().map(|d| d.impact_score).sum::<u64>(),
        "duplicatedLines": dup_lines,
        "duplicatedPercent": if code_lines == 0 { 0.0 } else { (10_000 * dup_lines / code_lines as u64) as f64 / 100.0 },
    });
    Scan { duplicates, functions, stats }
}

/// Reads `repos` (name, path) and finds every group.
pub fn scan(
    scan_type: ScanType,
    repos: &[(String, PathBuf)],
    o: &ScanOptions,
    r: &dyn Reporter,
) -> Result<Scan, JobError> {
    let mut files = Vec::new();
    for (i, (name, path)) in repos.iter().enumerate() {
        r.progress((5 + 50 * i / repos.len().max(1)) as u8, &format!("reading {name}"));
        files.extend(load_repository(i, path, o.mode, r)?);
    }
    r.check_cancelled()?;
    r.progress(60, &format!("hashing {} files", files.len()));
    let names: Vec<String> = repos.iter().map(|(n, _)| n.clone()).collect();
    let found = detect(scan_type, &files, &names, o);
    r.progress(90, &format!("{} duplicate groups, {} function groups", found.duplicates.len(), found.functions.len()));
    Ok(found)
}

/// The page `[offset, offset + limit)` of a list.
fn page<'a>(list: &'a [Duplicate], o: &ScanOptions) -> &'a [Duplicate] {
    let from = o.offset.min(list.len());
    &list[from..(from + o.limit).min(list.len())]
}

/// Most bytes of a result: the host refuses results over 4 MiB by default, so a page that would
/// be bigger is shortened, and `page.limit` (with `page.shortenedForSize`) says so.
const MAX_RESULT_BYTES: usize = 3 * 1024 * 1024;

/// The result object: the header, one page of each list with its suggestions, exact totals.
pub fn result(scan_type: ScanType, repos: &[(String, PathBuf)], s: &Scan, o: &ScanOptions) -> Value {
    result_within(scan_type, repos, s, o, MAX_RESULT_BYTES)
}

/// [`result`] with the page halved until its JSON fits in `max_bytes` (one group at least).
fn result_within(
    scan_type: ScanType,
    repos: &[(String, PathBuf)],
    s: &Scan,
    o: &ScanOptions,
    max_bytes: usize,
) -> Value {
    let mut limit = o.limit;
    loop {
        let mut v = page_result(scan_type, repos, s, &ScanOptions { limit, ..*o });
        if limit == 1 || serde_json::to_vec(&v).map_or(0, |b| b.len()) <= max_bytes {
            if limit < o.limit {
                v["page"]["requestedLimit"] = json!(o.limit);
                v["page"]["shortenedForSize"] = json!(true);
            }
            return v;
        }
        limit = limit.div_ceil(2);
    }
}

fn page_result(scan_type: ScanType, repos: &[(String, PathBuf)], s: &Scan, o: &ScanOptions) -> Value {
    let (dups, funcs) = (page(&s.duplicates, o), page(&s.functions, o));
    let total = s.duplicates.len().max(s.functions.len());
    let next = o.offset.saturating_add(o.limit);
    let mut v = json!({
        "scanType": scan_type,
        "mode": o.mode,
        "minTokens": o.min_tokens,
        "minLines": o.min_lines,
        "duplicates": dups,
        "functionDuplicates": funcs,
        "suggestions": dups.iter().chain(funcs).map(suggest).collect::<Vec<_>>(),
        "page": {
            "offset": o.offset,
            "limit": o.limit,
            "duplicates": dups.len(),
            "functionDuplicates": funcs.len(),
            "nextOffset": if next < total { Some(next) } else { None },
        },
        "stats": s.stats,
    });
    let repo_json = |(name, path): &(String, PathBuf)| json!({"name": name, "path": path.to_string_lossy()});
    match scan_type {
        ScanType::IntraProject => v["repository"] = repos.first().map(repo_json).unwrap_or(Value::Null),
        ScanType::InterProject => v["repositories"] = repos.iter().map(repo_json).collect(),
    }
    v
}

/// Writes the full reports (every group, not a page) into `out`: `duplicate-report.json`,
/// `.md` and `.html` (which also says what `page`, the job result's page, holds); returns their paths.
pub fn write_reports(
    scan_type: ScanType,
    repos: &[(String, PathBuf)],
    s: &Scan,
    o: &ScanOptions,
    page: &Value,
    out: &Path,
) -> Result<Value, JobError> {
    let all = ScanOptions { offset: 0, limit: usize::MAX, ..*o };
    let mut full = page_result(scan_type, repos, s, &all);
    if let Some(page) = full.as_object_mut() {
        page.remove("page");
    }
    let json_path = out.join("duplicate-report.json");
    let md_path = out.join("duplicate-report.md");
    let body = serde_json::to_string_pretty(&full).or_fail("serialising the report")?;
    fs::write(&json_path, body).or_fail_with(|| format!("writing {}", json_path.display()))?;
    fs::write(&md_path, markdown(&full)).or_fail_with(|| format!("writing {}", md_path.display()))?;
    let html_path = out.join("duplicate-report.html");
    let html = crate::html::render(scan_type, repos, s, o, page);
    fs::write(&html_path, html).or_fail_with(|| format!("writing {}", html_path.display()))?;
    Ok(json!({
        "json": json_path.to_string_lossy(),
        "markdown": md_path.to_string_lossy(),
        "html": html_path.to_string_lossy(),
    }))
}

fn table(s: &mut String, title: &str, groups: &Value) {
    let _ = writeln!(s, "## {title}\n");
    let rows = groups.as_array().map(Vec::as_slice).unwrap_or_default();
    if rows.is_empty() {
        s.push_str("None.\n\n");
        return;
    }
    s.push_str("| Id | Lines | Tokens | Occurrences | Impact | Locations |\n|---|---:|---:|---:|---:|---|\n");
    for d in rows {
        let locs: Vec<String> = d["occurrences"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|o| {
                let func = o["function"].as_str().map(|f| format!(" `{f}`")).unwrap_or_default();
                format!(
                    "{}:{}:{}-{}{func}",
                    o["repository"].as_str().unwrap_or(""),
                    o["file"].as_str().unwrap_or(""),
                    o["startLine"],
                    o["endLine"]
                )
            })
            .collect();
        let _ = writeln!(
            s,
            "| {}{} | {} | {} | {} | {} | {} |",
            d["id"].as_str().unwrap_or(""),
            d["similarity"].as_str().map(|x| format!(" ({x})")).unwrap_or_default(),
            d["lines"],
            d["tokens"],
            locs.len(),
            d["impactScore"],
            locs.join("<br>").replace('|', "\\|")
        );
    }
    s.push('\n');
}

fn markdown(v: &Value) -> String {
    let mut s = String::from("# Duplicate code report\n\n");
    let st = &v["stats"];
    let _ = writeln!(
        s,
        "Scan: {} ({} mode, clones of {}+ tokens and {}+ lines)  \nFiles scanned: {} ({} tokens, {} lines of code)  \nDuplicate groups: {} ({} duplicated lines, {}%)  \nDuplicated functions: {} groups  \nGroups across repositories: {}  \nLines removable by consolidation: {}\n",
        v["scanType"].as_str().unwrap_or(""),
        v["mode"].as_str().unwrap_or(""),
        v["minTokens"],
        v["minLines"],
        st["filesScanned"],
        st["tokens"],
        st["significantLines"],
        st["duplicateGroups"],
        st["duplicatedLines"],
        st["duplicatedPercent"],
        st["functionGroups"],
        st["crossRepositoryGroups"],
        st["removableLines"]
    );
    table(&mut s, "Duplicated blocks", &v["duplicates"]);
    table(&mut s, "Duplicated functions", &v["functionDuplicates"]);
    s.push_str("## Consolidation suggestions\n\n");
    for sug in v["suggestions"].as_array().into_iter().flatten() {
        let _ = writeln!(
            s,
            "- **{}** ({}, {} priority, {} complexity, {} risk): {}. Target: `{}`. {}",
            sug["duplicateId"].as_str().unwrap_or(""),
            sug["strategy"].as_str().unwrap_or(""),
            sug["priority"].as_str().unwrap_or(""),
            sug["complexity"].as_str().unwrap_or(""),
            sug["migrationRisk"].as_str().unwrap_or(""),
            sug["message"].as_str().unwrap_or(""),
            sug["targetLocation"].as_str().unwrap_or(""),
            sug["strategyRationale"].as_str().unwrap_or("")
        );
    }
    s
}

/// Group ids, for assertion messages.
#[cfg(test)]
fn ids(list: &[Duplicate]) -> Vec<String> {
    list.iter().map(|d| d.id.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alephauto_guest::Silent;
    use alephauto_guest::testing::put;

    const BLOCK: &str = "def load(path):\n    with open(path) as handle:\n        data = handle.read()\n    rows = data.splitlines()\n    cleaned = [r.strip() for r in rows]\n    return [c for c in cleaned if c]\n";

    fn opts(limit: usize, offset: usize) -> ScanOptions {
        ScanOptions { mode: Mode::Exact, min_tokens: 20, min_lines: 4, offset, limit }
    }

    #[test]
    fn scans_repositories_and_writes_full_reports() {
        let one = tempfile::tempdir().expect("tempdir");
        let two = tempfile::tempdir().expect("tempdir");
        put(one.path(), "app/io.py", format!("x_value = 1\n{BLOCK}"));
        put(one.path(), "node_modules/dep/io.py", BLOCK);
        put(one.path(), ".gitignore", "ignored/\n");
        put(one.path(), "ignored/io.py", BLOCK);
        put(two.path(), "src/files.py", format!("{BLOCK}y_value = 2\n"));
        let repos = vec![("one".to_owned(), one.path().to_path_buf()), ("two".to_owned(), two.path().to_path_buf())];
        let s = scan(ScanType::InterProject, &repos, &opts(50, 0), &Silent).expect("scan");
        let v = result(ScanType::InterProject, &repos, &s, &opts(50, 0));
        assert_eq!(v["stats"]["filesScanned"], 2, "vendored and gitignored copies are skipped: {v}");
        assert_eq!(v["stats"]["languages"], json!({"Python": 2}));
        let d = &v["duplicates"][0];
        assert_eq!(d["crossRepository"], true);
        assert_eq!(d["occurrences"][0]["file"], "app/io.py");
        assert_eq!(
            (d["occurrences"][0]["startLine"].as_u64(), d["occurrences"][0]["endLine"].as_u64()),
            (Some(2), Some(7))
        );
        assert_eq!(v["functionDuplicates"][0]["occurrences"][1]["function"], "load");
        assert_eq!(v["functionDuplicates"][0]["similarity"], "identical");
        assert_eq!(v["repositories"][1]["name"], "two");
        assert_eq!(v["suggestions"][0]["type"], "shared-package");
        assert_eq!(v["suggestions"][0]["strategy"], "shared_package");
        assert_eq!(v["stats"]["duplicatedLines"], 12);

        let out = tempfile::tempdir().expect("tempdir");
        let paths =
            write_reports(ScanType::InterProject, &repos, &s, &opts(50, 0), &v["page"], out.path()).expect("reports");
        let md = fs::read_to_string(paths["markdown"].as_str().expect("path")).expect("read");
        assert!(md.contains("one:app/io.py:2-7<br>two:src/files.py:1-6"), "{md}");
        assert!(md.contains("one:app/io.py:2-7 `load`"), "{md}");
        assert!(md.contains("(shared_package, "), "{md}");
        assert!(out.path().join("duplicate-report.json").is_file());
    }

    #[test]
    fn pages_are_exact_and_the_report_has_every_group() {
        // Twelve distinct blocks, each copied into two files: twelve groups.
        let dir = tempfile::tempdir().expect("tempdir");
        let mut a = String::new();
        for n in 0..12 {
            a.push_str(&format!(
                "def f{n}(rows):\n    total_{n} = 0\n    for r in rows:\n        total_{n} += r * {n}\n    return total_{n} - {n}\n\n"
            ));
        }
        put(dir.path(), "a.py", &a);
        put(dir.path(), "b.py", a.replace("def f", "def g"));
        let repos = vec![("r".to_owned(), dir.path().to_path_buf())];
        let s = scan(ScanType::IntraProject, &repos, &opts(5, 0), &Silent).expect("scan");
        assert_eq!(s.duplicates.len(), 12, "{:#?}", ids(&s.duplicates));
        let first = result(ScanType::IntraProject, &repos, &s, &opts(5, 0));
        assert_eq!(first["duplicates"].as_array().map(Vec::len), Some(5));
        assert_eq!(first["stats"]["duplicateGroups"], 12, "totals are never a page's");
        assert_eq!(first["page"]["nextOffset"], 5);
        let last = result(ScanType::IntraProject, &repos, &s, &opts(5, 10));
        assert_eq!(last["duplicates"].as_array().map(Vec::len), Some(2));
        assert_eq!(last["duplicates"][0]["id"], "dup-11");
        assert_eq!(last["page"]["nextOffset"], Value::Null);
        assert_eq!(last["suggestions"][0]["duplicateId"], "dup-11");
        let out = tempfile::tempdir().expect("tempdir");
        let paths = write_reports(ScanType::IntraProject, &repos, &s, &opts(5, 0), &first["page"], out.path())
            .expect("reports");
        let full: Value =
            serde_json::from_str(&fs::read_to_string(paths["json"].as_str().expect("p")).expect("read")).expect("json");
        assert_eq!(full["duplicates"].as_array().map(Vec::len), Some(12));
        assert!(full.get("page").is_none());

        // A page too big for a result is shortened, and says so; the next page starts after it.
        let small = result_within(ScanType::IntraProject, &repos, &s, &opts(10, 0), 9_000);
        assert!(serde_json::to_vec(&small).expect("json").len() <= 9_000, "{}", small["page"]);
        let shown = small["page"]["duplicates"].as_u64().expect("count");
        assert!((1..10).contains(&shown), "{}", small["page"]);
        assert_eq!(small["page"]["limit"], shown);
        assert_eq!(small["page"]["requestedLimit"], 10);
        assert_eq!(small["page"]["shortenedForSize"], true);
        assert_eq!(small["page"]["nextOffset"], shown);
        assert_eq!(small["stats"]["duplicateGroups"], 12);
    }
}
