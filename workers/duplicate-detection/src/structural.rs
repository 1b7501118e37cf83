//! Structural duplicates, as the original pipeline reported them: whole functions whose
//! token shape is the same once identifiers and literals are folded (renamed copies), or
//! whose tokens are identical. A function inside a reported function is not reported again.

use std::collections::HashMap;

use crate::detect::{Duplicate, Occurrence, rank};
use crate::source::SourceFile;

/// Groups functions of at least `min_tokens` tokens and `min_lines` lines by shape.
pub fn find_function_duplicates(
    files: &[SourceFile],
    repo_names: &[String],
    min_tokens: usize,
    min_lines: usize,
) -> Vec<Duplicate> {
    // shape → (file, function index)
    let mut by_shape: HashMap<u64, Vec<(usize, usize)>> = HashMap::new();
    for (f, file) in files.iter().enumerate() {
        for (k, func) in file.functions.iter().enumerate() {
            let tokens = (func.end - func.start) as usize;
            let lines = file.lines[func.end as usize - 1] - file.lines[func.start as usize] + 1;
            if tokens >= min_tokens && lines as usize >= min_lines {
                by_shape.entry(func.shape).or_default().push((f, k));
            }
        }
    }
    let mut groups: Vec<Vec<(usize, usize)>> = by_shape.into_values().filter(|g| g.len() > 1).collect();
    // Biggest first, so a function inside a reported one is recognised as covered.
    let size = |g: &Vec<(usize, usize)>| {
        let (f, k) = g[0];
        files[f].functions[k].end - files[f].functions[k].start
    };
    groups.sort_by_key(|g| (std::cmp::Reverse(size(g)), g[0]));
    let mut covered: HashMap<usize, Vec<(u32, u32)>> = HashMap::new();
    let mut out = Vec::new();
    for mut g in groups {
        g.sort_unstable();
        let inside = |&(f, k): &(usize, usize)| {
            let func = &files[f].functions[k];
            covered.get(&f).is_some_and(|spans| spans.iter().any(|&(s, e)| s <= func.start && func.end <= e))
        };
        if g.iter().all(inside) {
            continue;
        }
        for &(f, k) in &g {
            let func = &files[f].functions[k];
            covered.entry(f).or_default().push((func.start, func.end));
        }
        let first = &files[g[0].0].functions[g[0].1];
        let identical = g.iter().all(|&(f, k)| files[f].functions[k].exact == first.exact);
        let occurrences: Vec<Occurrence> = g
            .iter()
            .map(|&(f, k)| {
                let file = &files[f];
                let func = &file.functions[k];
                Occurrence {
                    repository: repo_names.get(file.repo).cloned().unwrap_or_default(),
                    file: file.path.clone(),
                    start_line: file.lines[func.start as usize],
                    end_line: file.lines[func.end as usize - 1],
                    function: Some(func.name.clone()),
                }
            })
            .collect();
        let lines = occurrences[0].end_line - occurrences[0].start_line + 1;
        let repo0 = files[g[0].0].repo;
        out.push(Duplicate {
            id: String::new(),
            lines,
            tokens: first.end - first.start,
            impact_score: u64::from(lines) * (occurrences.len() as u64 - 1),
            cross_repository: g.iter().any(|&(f, _)| files[f].repo != repo0),
            occurrences,
            similarity: Some(if identical { "identical" } else { "renamed" }),
        });
    }
    rank(&mut out, "fn");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Mode;

    const TOTAL: &str = "function total(items) {\n  let sum = 0;\n  for (const item of items) {\n    sum += item.price * item.qty;\n  }\n  const tax = sum * 0.2;\n  return sum + tax;\n}\n";

    fn parse(repo: usize, path: &str, text: &str) -> SourceFile {
        SourceFile::parse(repo, path, "JavaScript", text, Mode::Exact).expect("javascript")
    }

    #[test]
    fn groups_renamed_and_identical_functions_once() {
        let renamed = TOTAL.replace("total", "grandTotal").replace("sum", "acc").replace("0.2", "0.25");
        let wrapped = format!("function outer() {{\n  {}\n  return 1;\n}}\n", TOTAL.replace('\n', "\n  "));
        let files = vec![
            parse(0, "a.js", TOTAL),
            parse(0, "b.js", &renamed),
            parse(1, "c.js", &wrapped),
            parse(1, "d.js", &wrapped),
        ];
        let groups = find_function_duplicates(&files, &["one".into(), "two".into()], 20, 3);
        assert_eq!(groups.len(), 2, "{groups:#?}");
        let outer = groups.iter().find(|g| g.occurrences[0].function.as_deref() == Some("outer")).expect("outer");
        assert_eq!(outer.similarity, Some("identical"));
        assert_eq!(outer.occurrences.len(), 2);
        // `total` inside the identical `outer`s is covered by them, but its copies in a.js
        // and b.js are not, so it is one group of four, renamed.
        let inner = groups.iter().find(|g| g.occurrences[0].function.as_deref() != Some("outer")).expect("inner");
        assert_eq!(inner.similarity, Some("renamed"));
        assert_eq!(inner.occurrences.len(), 4);
        assert!(inner.cross_repository);
        assert_eq!((inner.occurrences[0].start_line, inner.occurrences[0].end_line), (1, 8));
        let names: Vec<_> = inner.occurrences.iter().filter_map(|o| o.function.as_deref()).collect();
        assert_eq!(names, ["total", "grandTotal", "total", "total"]);
    }
}
