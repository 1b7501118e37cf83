use super::*;
use crate::source::Mode;

const BLOCK: &str = "function total(items) {\n  let sum = 0;\n  for (const item of items) {\n    sum += item.price * item.qty;\n  }\n  const tax = sum * 0.2;\n  return sum + tax;\n}\n";

fn file(repo: usize, path: &str, text: &str, mode: Mode) -> SourceFile {
    let language = if path.ends_with(".py") { "Python" } else { "JavaScript" };
    SourceFile::parse(repo, path, language, text, mode).expect("supported language")
}

#[test]
fn finds_a_planted_block_with_whole_line_ranges() {
    let a = format!("const a = 1;\nconst b = 2;\n\n{BLOCK}\nexport const z = a + b;\n");
    let b = format!("// header\nlet unrelated = call(x);\n{BLOCK}");
    let files = vec![file(0, "src/a.js", &a, Mode::Exact), file(0, "lib/b.js", &b, Mode::Exact)];
    let dups = find_duplicates(&files, &["repo".into()], 30, 5);
    assert_eq!(dups.len(), 1, "{dups:#?}");
    let d = &dups[0];
    assert_eq!(d.id, "dup-1");
    let mut occ: Vec<(&str, u32, u32)> =
        d.occurrences.iter().map(|o| (o.file.as_str(), o.start_line, o.end_line)).collect();
    occ.sort();
    // The `;` before the block matches in both files too, but the clone is reported by whole lines.
    assert_eq!(occ, vec![("lib/b.js", 3, 10), ("src/a.js", 4, 11)]);
    assert_eq!((d.lines, d.tokens), (8, 43));
    assert_eq!(d.impact_score, 8);
    assert!(!d.cross_repository);
    // With the `;`, 44 tokens match; a 44-token minimum keeps the clone with that token's line.
    let with_semicolon = find_duplicates(&files, &["repo".into()], 44, 5);
    assert_eq!(with_semicolon.len(), 1);
    assert_eq!((with_semicolon[0].tokens, with_semicolon[0].lines), (44, 10));
    assert!(find_duplicates(&files, &["repo".into()], 45, 5).is_empty(), "44 tokens are under a 45-token minimum");
    assert!(find_duplicates(&files, &["repo".into()], 30, 9).is_empty(), "8 lines are under a 9-line minimum");
}

#[test]
fn self_overlapping_repeats_are_not_reported_as_overlapping() {
    let text = "x = compute(1)\n".repeat(20);
    let files =
        vec![file(0, "a.py", &text, Mode::Exact), file(0, "b.py", "x = compute(1)\ny = other(2)\n", Mode::Exact)];
    let dups = find_duplicates(&files, &["r".into()], 12, 2);
    assert!(!dups.is_empty());
    assert!(dups.iter().all(|d| d.occurrences.iter().all(|o| o.file == "a.py")));
    assert!(dups.iter().all(|d| d.occurrences.windows(2).all(|w| w[1].start_line > w[0].end_line)));
}

#[test]
fn structural_mode_finds_renamed_copies_across_repositories() {
    let renamed = BLOCK.replace("sum", "acc").replace("items", "rows").replace("0.2", "0.25");
    let exact = vec![file(0, "a.js", BLOCK, Mode::Exact), file(1, "b.js", &renamed, Mode::Exact)];
    assert!(find_duplicates(&exact, &["one".into(), "two".into()], 30, 5).is_empty());
    let structural = vec![file(0, "a.js", BLOCK, Mode::Structural), file(1, "b.js", &renamed, Mode::Structural)];
    let dups = find_duplicates(&structural, &["one".into(), "two".into()], 30, 5);
    assert_eq!(dups.len(), 1);
    assert!(dups[0].cross_repository);
    assert_eq!(dups[0].occurrences[1].repository, "two");
    assert_eq!((dups[0].occurrences[1].start_line, dups[0].occurrences[1].end_line), (1, 8));
}

#[test]
fn a_clone_shared_by_three_inside_one_shared_by_two_is_two_classes() {
    let head = "function head(a) {\n  const first = a.map((x) => x * 2);\n  const second = first.filter(Boolean);\n  return second.length;\n}\n";
    let tail = "function tail(b) {\n  const third = b.reduce((s, y) => s + y, 0);\n  const fourth = third > 10 ? third : -third;\n  return fourth + 1;\n}\n";
    let files = vec![
        file(0, "a.js", &format!("{head}{tail}"), Mode::Exact),
        file(0, "b.js", &format!("{head}{tail}"), Mode::Exact),
        file(0, "c.js", &format!("let other = 1;\n{tail}"), Mode::Exact),
    ];
    let dups = find_duplicates(&files, &["r".into()], 20, 3);
    let spans: Vec<Vec<(&str, u32, u32)>> = dups
        .iter()
        .map(|d| d.occurrences.iter().map(|o| (o.file.as_str(), o.start_line, o.end_line)).collect())
        .collect();
    assert_eq!(spans.len(), 2, "{spans:?}");
    assert!(spans.contains(&vec![("a.js", 1, 10), ("b.js", 1, 10)]), "{spans:?}");
    assert!(spans.contains(&vec![("a.js", 6, 10), ("b.js", 6, 10), ("c.js", 2, 6)]), "{spans:?}");
}

#[test]
fn bigger_groups_rank_first() {
    let small = "alpha = one(1) + two(2) + three(3)\nbeta = two(2) * three(3) - four(4)\ngamma = three(3) / four(4) + five(5)\ndelta = four(4) % five(5) - six(6)\nomega = five(5) ** six(6) // seven(7)\n";
    let files = vec![
        file(0, "a.py", &format!("value = 0\n{small}"), Mode::Exact),
        file(0, "b.py", small, Mode::Exact),
        file(0, "c.py", small, Mode::Exact),
        file(0, "d.js", BLOCK, Mode::Exact),
        file(0, "e.js", BLOCK, Mode::Exact),
    ];
    let dups = find_duplicates(&files, &["r".into()], 30, 4);
    assert_eq!(dups.len(), 2, "{dups:#?}");
    assert_eq!(dups[0].occurrences.len(), 3, "5 lines x 2 extra copies beat 8 lines x 1");
    assert_eq!((dups[0].impact_score, dups[1].impact_score), (10, 8));
    assert_eq!((dups[0].id.as_str(), dups[1].id.as_str()), ("dup-1", "dup-2"));
}

#[test]
fn renamed_copies_are_found_in_rust_and_python_too() {
    let rust = "pub fn checksum(data: &[u8], seed: u32) -> u32 {\n    let mut acc = seed;\n    for (i, b) in data.iter().enumerate() {\n        acc = acc.rotate_left(5) ^ u32::from(*b);\n        acc = acc.wrapping_mul(0x9e37_79b9).wrapping_add(i as u32);\n    }\n    acc ^ (acc >> 16)\n}\n";
    let rust_renamed = rust.replace("checksum", "digest").replace("acc", "state").replace("0x9e37_79b9", "31");
    let python = "def summarise(rows, limit):\n    seen = set()\n    out = []\n    for row in rows:\n        key = row.get('id')\n        if key in seen or len(out) >= limit:\n            continue\n        seen.add(key)\n        out.append({'id': key, 'size': len(row)})\n    return out\n";
    let python_renamed = python.replace("rows", "items").replace("seen", "done").replace("'id'", "'key'");
    for (lang, a, b) in [("Rust", rust, rust_renamed), ("Python", python, python_renamed)] {
        let parse = |path: &str, text: &str, mode| SourceFile::parse(0, path, lang, text, mode).expect("supported");
        let exact = vec![parse("a", a, Mode::Exact), parse("b", &b, Mode::Exact)];
        assert!(find_duplicates(&exact, &["r".into()], 40, 5).is_empty(), "{lang}: exact mode sees the renames");
        let structural = vec![parse("a", a, Mode::Structural), parse("b", &b, Mode::Structural)];
        let dups = find_duplicates(&structural, &["r".into()], 40, 5);
        assert_eq!(dups.len(), 1, "{lang}: {dups:#?}");
        let lines = a.lines().count() as u32;
        assert_eq!((dups[0].occurrences[0].start_line, dups[0].occurrences[0].end_line), (1, lines), "{lang}");
        assert_eq!((dups[0].occurrences[1].start_line, dups[0].occurrences[1].end_line), (1, lines), "{lang}");
        let functions = crate::structural::find_function_duplicates(&exact, &["r".into()], 40, 5);
        assert_eq!(functions.len(), 1, "{lang}: {functions:#?}");
        assert_eq!(functions[0].similarity, Some("renamed"), "{lang}");
    }
}
