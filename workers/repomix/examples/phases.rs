//! Per-phase timings of the repomix worker's logic, natively, on a folder (a profiling aid:
//! `cargo run --release --example phases -- DIR [ROUNDS]`, or under `perf record`).
//!
//! Times the whole `pack` (selection, secret check, tokens, output) and, on the same packed
//! files, each of the secret scan, the token count (a fresh per-job cache, as a job has) and
//! `compress` alone.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use alephauto_guest::Silent;
use repomix::{Counter, Options, Scanner, Selection, Style, pack};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: phases DIR [ROUNDS]")?);
    let rounds: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(3);
    let out = std::env::temp_dir().join(format!("repomix-phases-{}", std::process::id()));
    std::fs::create_dir_all(&out)?;
    let opts = Options {
        selection: Selection {
            ignore: Vec::new(),
            use_gitignore: true,
            use_dot_ignore: true,
            use_default_patterns: true,
            max_file_size: repomix::DEFAULT_MAX_FILE_SIZE,
        },
        style: Style::Xml,
        security_check: true,
        compress: false,
        top_files: 5,
    };
    // What a job pays before its first file: each job is a fresh instance.
    let t = Instant::now();
    Counter::new().count("warm up the pre-tokenizer");
    println!("pre-tokenizer set-up: {:?}", t.elapsed());
    let t = Instant::now();
    std::hint::black_box(Scanner::new());
    println!("secret rules set-up: {:?}", t.elapsed());
    let t = Instant::now();
    let outcome = pack(&dir, &out, &opts, &Silent).map_err(|e| format!("{e:?}"))?;
    println!("first pack (vocabulary load included): {:?}", t.elapsed());
    let texts = split_files(&std::fs::read_to_string(&outcome.output_file)?);
    println!(
        "{} files, {} bytes, {} tokens",
        outcome.files,
        texts.iter().map(|(_, t)| t.len()).sum::<usize>(),
        outcome.file_tokens
    );
    let time = |name: &str, f: &mut dyn FnMut()| {
        let mut best = Duration::MAX;
        for _ in 0..rounds {
            let t = Instant::now();
            f();
            best = best.min(t.elapsed());
        }
        println!("{name:>28}: {best:?} (best of {rounds})");
    };
    time("pack", &mut || {
        pack(&dir, &out, &opts, &Silent).expect("pack");
    });
    let scanner = Scanner::new();
    time("secret scan", &mut || {
        for (rel, text) in &texts {
            std::hint::black_box(scanner.scan(rel, text));
        }
    });
    time("tokens (fresh cache)", &mut || {
        let mut c = Counter::new();
        let n: u64 = texts.iter().map(|(_, t)| c.count(t)).sum();
        assert_eq!(n, outcome.file_tokens);
    });
    let mut slow: Vec<(Duration, &str, usize)> = texts
        .iter()
        .map(|(rel, t)| {
            let mut c = Counter::new();
            let at = Instant::now();
            c.count(t);
            (at.elapsed(), rel.as_str(), t.len())
        })
        .collect();
    slow.sort_by_key(|s| std::cmp::Reverse(s.0));
    for (d, rel, len) in slow.iter().take(5) {
        println!("{:>28}: {d:?} for {rel} ({len} bytes, tokens alone)", "slowest file");
    }
    let mut compress_opts = opts.clone();
    compress_opts.compress = true;
    time("pack --compress", &mut || {
        pack(&dir, &out, &compress_opts, &Silent).expect("pack");
    });
    std::fs::remove_dir_all(&out)?;
    Ok(())
}

/// The packed files of an XML output, as (path, content).
fn split_files(xml: &str) -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut rest = xml;
    while let Some(at) = rest.find("\n<file path=\"") {
        rest = &rest[at + 13..];
        let Some(q) = rest.find("\">\n") else { break };
        let path = rest[..q].to_string();
        rest = &rest[q + 3..];
        let Some(end) = rest.find("\n</file>\n\n<file path=\"").or_else(|| rest.find("\n</file>\n\n</files>")) else {
            break;
        };
        files.push((path, rest[..end].to_string()));
        rest = &rest[end..];
    }
    files
}
