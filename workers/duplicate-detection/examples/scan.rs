//! Runs a scan natively and prints the full report: `cargo run --release --example scan -- DIR [exact|structural]`.

use std::path::PathBuf;
use std::time::Instant;

use alephauto_guest::Silent;
use duplicate_detection::{
    Mode, ScanOptions, ScanType, find_duplicates, find_function_duplicates, load_repository, result, scan,
};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: scan DIR [exact|structural]");
        std::process::exit(2);
    };
    let mode = if args.next().as_deref() == Some("structural") { Mode::Structural } else { Mode::Exact };
    let repos = vec![("corpus".to_owned(), PathBuf::from(&dir))];
    let o = ScanOptions { mode, min_tokens: 50, min_lines: 5, offset: 0, limit: usize::MAX };
    // Phases, for profiling: loading (walk, read, tokenise), token clones, functions.
    let t = Instant::now();
    let files = load_repository(0, &repos[0].1, mode, &Silent).unwrap_or_default();
    let load = t.elapsed();
    let t = Instant::now();
    let clones = find_duplicates(&files, &["corpus".to_owned()], 50, 5).len();
    let detect = t.elapsed();
    let t = Instant::now();
    let functions = find_function_duplicates(&files, &["corpus".to_owned()], 50, 5).len();
    eprintln!("load {load:?}, {clones} clone groups in {detect:?}, {functions} function groups in {:?}", t.elapsed());
    let started = Instant::now();
    let found = match scan(ScanType::IntraProject, &repos, &o, &Silent) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("scan failed: {e}");
            std::process::exit(1);
        }
    };
    eprintln!("scanned in {:?}", started.elapsed());
    println!("{}", result(ScanType::IntraProject, &repos, &found, &o));
}
