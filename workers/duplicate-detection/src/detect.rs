//! Window hashing, grouping and merging into maximal duplicate blocks.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use serde::Serialize;

use crate::normalize::SourceFile;

const NONE: u32 = u32::MAX;

/// One place a duplicated block occurs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Occurrence {
    /// Repository name.
    pub repository: String,
    /// Path relative to the repository.
    pub file: String,
    /// First line (1-based).
    pub start_line: u32,
    /// Last line (inclusive).
    pub end_line: u32,
}

/// A group of identical blocks.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Duplicate {
    /// `dup-N`, by rank.
    pub id: String,
    /// Lines in the first occurrence.
    pub lines: u32,
    /// Tokens in the block.
    pub tokens: u32,
    /// Where it occurs.
    pub occurrences: Vec<Occurrence>,
    /// lines × (occurrences − 1): the lines a consolidation would remove.
    pub impact_score: u64,
    /// Occurs in more than one repository.
    pub cross_repository: bool,
}

/// Locations `(file, line index)` of one recurring window, sorted.
type Group = Vec<(u32, u32)>;

fn window_hash(lines: &[crate::normalize::Line]) -> u64 {
    let mut h = DefaultHasher::new();
    for l in lines {
        l.hash.hash(&mut h);
    }
    h.finish()
}

/// Groups windows of `w` lines that recur; `group_of[file][i]` is the group of the window at `i`.
fn group_windows(files: &[SourceFile], w: usize) -> (Vec<Group>, Vec<Vec<u32>>) {
    // Sorting (hash, file, index) triples keeps memory flat compared with a map of vectors.
    let mut all: Vec<(u64, u32, u32)> = Vec::new();
    for (f, file) in files.iter().enumerate() {
        for (i, win) in file.lines.windows(w).enumerate() {
            all.push((window_hash(win), f as u32, i as u32));
        }
    }
    all.sort_unstable();
    let mut groups = Vec::new();
    let mut group_of: Vec<Vec<u32>> = files.iter().map(|f| vec![NONE; f.lines.len()]).collect();
    for run in all.chunk_by(|a, b| a.0 == b.0).filter(|r| r.len() > 1) {
        // Drop self-overlapping hits in one file (repetitive code is not duplication).
        let mut kept: Group = Vec::with_capacity(run.len());
        for &(_, f, i) in run {
            if kept.last().is_none_or(|&(pf, pi)| pf != f || i >= pi + w as u32) {
                kept.push((f, i));
            }
        }
        if kept.len() < 2 {
            continue;
        }
        let id = groups.len() as u32;
        for &(f, i) in &kept {
            group_of[f as usize][i as usize] = id;
        }
        groups.push(kept);
    }
    (groups, group_of)
}

/// Whether group `b` is group `a` with every location shifted by `by` lines.
fn shifted(a: &Group, b: &Group, by: u32) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.0 == y.0 && x.1 + by == y.1)
}

/// Finds duplicate blocks of at least `min_lines` significant lines, ranked by impact.
pub fn find_duplicates(files: &[SourceFile], repo_names: &[String], min_lines: usize) -> Vec<Duplicate> {
    let w = min_lines.max(1);
    let (groups, group_of) = group_windows(files, w);
    let at = |f: u32, i: u32| group_of[f as usize].get(i as usize).copied().unwrap_or(NONE);
    let mut out = Vec::new();
    for g in &groups {
        let (f0, i0) = g[0];
        // A window continuing an earlier one belongs to that block.
        if i0 > 0 && at(f0, i0 - 1) != NONE && shifted(&groups[at(f0, i0 - 1) as usize], g, 1) {
            continue;
        }
        let mut len = 1u32;
        while at(f0, i0 + len) != NONE && shifted(g, &groups[at(f0, i0 + len) as usize], len) {
            len += 1;
        }
        let last = len - 1 + w as u32 - 1;
        let occurrences: Vec<Occurrence> = g
            .iter()
            .map(|&(f, i)| {
                let file = &files[f as usize];
                Occurrence {
                    repository: repo_names.get(file.repo).cloned().unwrap_or_default(),
                    file: file.path.clone(),
                    start_line: file.lines[i as usize].number,
                    end_line: file.lines[(i + last) as usize].number,
                }
            })
            .collect();
        let first = &files[f0 as usize].lines[i0 as usize..=(i0 + last) as usize];
        let lines = occurrences[0].end_line - occurrences[0].start_line + 1;
        let cross_repository = g.iter().any(|&(f, _)| files[f as usize].repo != files[f0 as usize].repo);
        out.push(Duplicate {
            id: String::new(),
            lines,
            tokens: first.iter().map(|l| l.tokens).sum(),
            impact_score: u64::from(lines) * (occurrences.len() as u64 - 1),
            occurrences,
            cross_repository,
        });
    }
    out.sort_by(|a, b| {
        b.impact_score.cmp(&a.impact_score).then_with(|| {
            (&a.occurrences[0].file, a.occurrences[0].start_line)
                .cmp(&(&b.occurrences[0].file, b.occurrences[0].start_line))
        })
    });
    for (n, d) in out.iter_mut().enumerate() {
        d.id = format!("dup-{}", n + 1);
    }
    out
}

#[cfg(test)]
mod tests;
