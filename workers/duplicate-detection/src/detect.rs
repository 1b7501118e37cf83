//! Token clones: windows of `minTokens` tokens are hashed (rolling), windows that recur are
//! grouped, and each group is extended backwards and forwards while every occurrence keeps
//! matching, giving maximal clone classes (a block shared by A, B and C inside a longer block
//! shared by A and B is two classes).

use serde::Serialize;

use crate::source::SourceFile;

const NONE: u32 = u32::MAX;
/// Base of the rolling hash (odd, so multiplication by it is invertible mod 2^64).
const BASE: u64 = 0x100_0000_01b3_0025;

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
    /// The function, for structural (whole-function) duplicates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
}

/// A group of identical (or, in structural mode, identically shaped) blocks.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Duplicate {
    /// `dup-N` (token clones) or `fn-N` (whole functions), by rank.
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
    /// Whole functions only: `identical` (same tokens) or `renamed` (same shape, other names or literals).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub similarity: Option<&'static str>,
}

impl Duplicate {
    /// Number of distinct files it occurs in.
    pub fn files(&self) -> usize {
        let mut f: Vec<(&str, &str)> =
            self.occurrences.iter().map(|o| (o.repository.as_str(), o.file.as_str())).collect();
        f.sort_unstable();
        f.dedup();
        f.len()
    }

    /// Number of distinct repositories it occurs in.
    pub fn repositories(&self) -> usize {
        let mut r: Vec<&str> = self.occurrences.iter().map(|o| o.repository.as_str()).collect();
        r.sort_unstable();
        r.dedup();
        r.len()
    }
}

/// Every file's tokens laid end to end, with where each token came from.
struct Corpus {
    /// Token index → file index.
    file_of: Vec<u32>,
    /// File index → global index of its first token.
    offset: Vec<u32>,
}

impl Corpus {
    fn new(files: &[SourceFile]) -> Corpus {
        let total: usize = files.iter().map(|f| f.tokens.len()).sum();
        let mut file_of = Vec::with_capacity(total);
        let mut offset = Vec::with_capacity(files.len());
        for (i, f) in files.iter().enumerate() {
            offset.push(file_of.len() as u32);
            file_of.resize(file_of.len() + f.tokens.len(), i as u32);
        }
        Corpus { file_of, offset }
    }

    /// (file, token index in it) of a global token index.
    fn locate(&self, p: u32) -> (usize, usize) {
        let f = self.file_of[p as usize] as usize;
        (f, (p - self.offset[f]) as usize)
    }
}

/// Groups of windows that recur, as a flat member list: `group_of[p]` is the group of the
/// window starting at global token `p`, `members[start[g]..start[g + 1]]` its windows.
struct Groups {
    group_of: Vec<u32>,
    start: Vec<u32>,
    members: Vec<u32>,
}

impl Groups {
    fn of(&self, g: u32) -> &[u32] {
        &self.members[self.start[g as usize] as usize..self.start[g as usize + 1] as usize]
    }
}

fn group_windows(files: &[SourceFile], corpus: &Corpus, w: usize) -> Groups {
    let mut all: Vec<(u64, u32)> = Vec::new();
    let top = BASE.wrapping_pow(w as u32 - 1);
    for (f, file) in files.iter().enumerate() {
        let t = &file.tokens;
        if t.len() < w {
            continue;
        }
        let base = corpus.offset[f];
        let mut h = t[..w].iter().fold(0u64, |h, &x| h.wrapping_mul(BASE).wrapping_add(x));
        all.push((h, base));
        for i in 1..=t.len() - w {
            h = h.wrapping_sub(t[i - 1].wrapping_mul(top)).wrapping_mul(BASE).wrapping_add(t[i + w - 1]);
            all.push((h, base + i as u32));
        }
    }
    all.sort_unstable();
    let mut g = Groups { group_of: vec![NONE; corpus.file_of.len()], start: vec![0], members: Vec::new() };
    for run in all.chunk_by(|a, b| a.0 == b.0).filter(|r| r.len() > 1) {
        let from = g.members.len();
        // Drop hits overlapping the previous one in the same file (repetition is not duplication).
        for &(_, p) in run {
            let keep = g.members[from..]
                .last()
                .is_none_or(|&q| corpus.file_of[q as usize] != corpus.file_of[p as usize] || p >= q + w as u32);
            if keep {
                g.members.push(p);
            }
        }
        if g.members.len() - from < 2 {
            g.members.truncate(from);
            continue;
        }
        let id = g.start.len() as u32 - 1;
        for &p in &g.members[from..] {
            g.group_of[p as usize] = id;
        }
        g.start.push(g.members.len() as u32);
    }
    g
}

/// The group every member's window `by` tokens away belongs to, when it is one and the same.
fn common_step(g: &Groups, corpus: &Corpus, members: &[u32], by: i64) -> Option<u32> {
    let mut common = NONE;
    for &m in members {
        let q = i64::from(m) + by;
        if q < 0 || q as usize >= corpus.file_of.len() || corpus.file_of[q as usize] != corpus.file_of[m as usize] {
            return None;
        }
        let h = g.group_of[q as usize];
        if h == NONE || (common != NONE && h != common) {
            return None;
        }
        common = h;
    }
    Some(common)
}

/// Finds token clones of at least `min_tokens` tokens spanning at least `min_lines` lines,
/// ranked by impact (lines × extra copies).
pub fn find_duplicates(
    files: &[SourceFile],
    repo_names: &[String],
    min_tokens: usize,
    min_lines: usize,
) -> Vec<Duplicate> {
    let w = min_tokens.max(2);
    let corpus = Corpus::new(files);
    let groups = group_windows(files, &corpus, w);
    let n_groups = groups.start.len() - 1;
    let mut visited = vec![false; n_groups];
    let mut out = Vec::new();
    for g in 0..n_groups as u32 {
        if visited[g as usize] {
            continue;
        }
        visited[g as usize] = true;
        let members = groups.of(g);
        // Extend while every occurrence's neighbouring window sits in one common group; a group
        // of the same size is this one shifted, so it needs no block of its own.
        let mut extend = |dir: i64| {
            let mut n = 0i64;
            while let Some(h) = common_step(&groups, &corpus, members, dir * (n + 1)) {
                if groups.of(h).len() == members.len() {
                    visited[h as usize] = true;
                }
                n += 1;
            }
            n as u32
        };
        let back = extend(-1);
        let fwd = extend(1);
        let len = w as u32 + back + fwd;
        let mut spans: Vec<(usize, usize)> = members.iter().map(|&m| corpus.locate(m - back)).collect();
        // Extended copies may now overlap inside one file: keep the first of such.
        let mut kept: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
        spans.sort_unstable();
        for s in spans {
            if kept.last().is_none_or(|&(f, i)| f != s.0 || s.1 >= i + len as usize) {
                kept.push(s);
            }
        }
        if kept.len() < 2 {
            continue;
        }
        // Report whole lines: drop leading and trailing tokens that share a line with code outside
        // the clone (the `;` ending the line before), unless too little would remain.
        let (mut a, mut b) = (0usize, len as usize);
        let starts_line = |f: usize, i: usize| i == 0 || files[f].lines[i - 1] != files[f].lines[i];
        let ends_line = |f: usize, i: usize| files[f].lines.get(i + 1).is_none_or(|&l| l != files[f].lines[i]);
        while a < b && !kept.iter().all(|&(f, i)| starts_line(f, i + a)) {
            a += 1;
        }
        while b > a && !kept.iter().all(|&(f, i)| ends_line(f, i + b - 1)) {
            b -= 1;
        }
        let (kept, len) =
            if b - a >= w { (kept.iter().map(|&(f, i)| (f, i + a)).collect(), (b - a) as u32) } else { (kept, len) };
        let occurrences: Vec<Occurrence> = kept
            .iter()
            .map(|&(f, i)| {
                let file = &files[f];
                Occurrence {
                    repository: repo_names.get(file.repo).cloned().unwrap_or_default(),
                    file: file.path.clone(),
                    start_line: file.lines[i],
                    end_line: file.lines[i + len as usize - 1],
                    function: None,
                }
            })
            .collect();
        let lines = occurrences[0].end_line - occurrences[0].start_line + 1;
        if (lines as usize) < min_lines {
            continue;
        }
        let repo0 = files[kept[0].0].repo;
        out.push(Duplicate {
            id: String::new(),
            lines,
            tokens: len,
            impact_score: u64::from(lines) * (occurrences.len() as u64 - 1),
            cross_repository: kept.iter().any(|&(f, _)| files[f].repo != repo0),
            occurrences,
            similarity: None,
        });
    }
    rank(&mut out, "dup");
    out
}

/// Sorts by impact (then by place, for stable output) and numbers the groups `prefix-N`.
pub fn rank(out: &mut [Duplicate], prefix: &str) {
    out.sort_by(|a, b| {
        b.impact_score.cmp(&a.impact_score).then_with(|| {
            (&a.occurrences[0].repository, &a.occurrences[0].file, a.occurrences[0].start_line).cmp(&(
                &b.occurrences[0].repository,
                &b.occurrences[0].file,
                b.occurrences[0].start_line,
            ))
        })
    });
    for (n, d) in out.iter_mut().enumerate() {
        d.id = format!("{prefix}-{}", n + 1);
    }
}

#[cfg(test)]
mod tests;
