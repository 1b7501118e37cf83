use super::*;
use crate::normalize::{Mode, significant_lines};

const BLOCK: &str = "function total(items) {\n  let sum = 0;\n  for (const item of items) {\n    sum += item.price * item.qty;\n  }\n  const tax = sum * 0.2;\n  return sum + tax;\n}\n";

fn file(repo: usize, path: &str, text: &str, mode: Mode) -> SourceFile {
    SourceFile { repo, path: path.into(), lines: significant_lines(text, mode) }
}

#[test]
fn finds_a_planted_block_with_line_ranges() {
    let a = format!("const a = 1;\nconst b = 2;\n\n{BLOCK}\nexport const z = a + b;\n");
    let b = format!("// header\nlet unrelated = call(x);\n{BLOCK}");
    let files = vec![file(0, "src/a.js", &a, Mode::Exact), file(0, "lib/b.js", &b, Mode::Exact)];
    let dups = find_duplicates(&files, &["repo".into()], 4);
    assert_eq!(dups.len(), 1, "{dups:#?}");
    let d = &dups[0];
    assert_eq!(d.id, "dup-1");
    let mut occ: Vec<(&str, u32, u32)> =
        d.occurrences.iter().map(|o| (o.file.as_str(), o.start_line, o.end_line)).collect();
    occ.sort();
    // Lone braces are not significant, so the block spans `function` .. `return`.
    assert_eq!(occ, vec![("lib/b.js", 3, 9), ("src/a.js", 4, 10)]);
    assert_eq!(d.lines, 7);
    assert_eq!(d.impact_score, 7);
    assert!(!d.cross_repository);
}

#[test]
fn short_or_self_overlapping_repeats_are_not_reported() {
    let text = "x = compute(1)\n".repeat(20);
    let files =
        vec![file(0, "a.py", &text, Mode::Exact), file(0, "b.py", "x = compute(1)\ny = other(2)\n", Mode::Exact)];
    let dups = find_duplicates(&files, &["r".into()], 4);
    assert!(dups.iter().all(|d| d.occurrences.iter().all(|o| o.file == "a.py")));
    assert!(dups.iter().all(|d| { d.occurrences.windows(2).all(|w| w[1].start_line > w[0].end_line) }));
}

#[test]
fn structural_mode_finds_renamed_copies_across_repositories() {
    let renamed = BLOCK.replace("sum", "acc").replace("items", "rows").replace("0.2", "0.25");
    let exact = vec![file(0, "a.js", BLOCK, Mode::Exact), file(1, "b.js", &renamed, Mode::Exact)];
    assert!(find_duplicates(&exact, &["one".into(), "two".into()], 4).is_empty());
    let structural = vec![file(0, "a.js", BLOCK, Mode::Structural), file(1, "b.js", &renamed, Mode::Structural)];
    let dups = find_duplicates(&structural, &["one".into(), "two".into()], 4);
    assert_eq!(dups.len(), 1);
    assert!(dups[0].cross_repository);
    assert_eq!(dups[0].occurrences[1].repository, "two");
}

#[test]
fn bigger_groups_rank_first() {
    let small = "alpha = one(1)\nbeta = two(2)\ngamma = three(3)\ndelta = four(4)\n";
    let files = vec![
        file(0, "a.js", &format!("{BLOCK}{small}"), Mode::Exact),
        file(0, "b.js", BLOCK, Mode::Exact),
        file(0, "c.js", small, Mode::Exact),
        file(0, "d.js", small, Mode::Exact),
    ];
    let dups = find_duplicates(&files, &["r".into()], 4);
    assert_eq!(dups.len(), 2);
    assert_eq!(dups[0].occurrences.len(), 3, "4 lines x 2 extra copies beat 7 lines x 1");
    assert_eq!(dups[0].impact_score, 8);
    assert_eq!(dups[1].impact_score, 7);
}
