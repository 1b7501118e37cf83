//! `bench`: AlephAuto's benchmark table (see BENCHMARKS.md; run it with `scripts/bench.sh`).
//!
//! ```text
//! bench [--smoke] [--polyglot] [--skip-instantiate] [--skip-peers] [--skip-http] [--skip-tools] [--only-tools]
//!       [--skip-pg] [--only-pg] [--pg-jobs N] [--pg-conc N] [--wrk PATH] [--node-modules DIR] [--alephauto PATH] [--out FILE] [--write-doc FILE]
//! ```
//!
//! `--smoke` runs every in-process part with tiny sizes and skips the peers, wrk, jscpd and
//! the polyglot components (it does compare the repomix worker's file selection with the
//! repomix CLI's on a small edge-case tree, and fails when they differ), and runs the PostgreSQL section with 50 jobs (a
//! skip row when no server answers); it asserts nothing about timings (it keeps the suite
//! from rotting). PostgreSQL: `ALEPHAUTO_BENCH_PG` (else `ALEPHAUTO_TEST_PG`, else
//! postgres://postgres@127.0.0.1:5432/test). `--polyglot` adds section 1's and section 4's
//! one-job-at-a-time rows for the JavaScript and Python components (`scripts/build-polyglot.sh`
//! builds them). `--only-tools` runs section 5 alone and prints its rows; `--only-pg` runs
//! section 7 alone (`--pg-jobs`, `--pg-conc`: its no-op rounds' size and cap, default 10,000 and 64).

mod cluster;
mod corpus;
mod dupes;
mod http;
mod instantiate;
mod peers;
mod pg_peers;
mod queue;
mod repomix;
mod report;
mod tools;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::report::Report;

/// The allocator the `alephauto` binary uses, so in-process figures match the server's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// Seconds since the bench started (progress lines).
pub fn elapsed() -> f64 {
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// The repository root (the bench crate's parent).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

#[derive(Debug)]
struct Args {
    smoke: bool,
    instantiate: bool,
    polyglot: bool,
    peers: bool,
    http: bool,
    tools: bool,
    pg: bool,
    /// Only section 7 (cluster mode on PostgreSQL).
    only_pg: bool,
    /// Section 7's no-op jobs per round (default 10,000).
    pg_jobs: Option<usize>,
    /// Section 7's cluster-wide slots for the no-op rounds (default 64).
    pg_conc: Option<usize>,
    /// Only section 5 (the pipelines against the Node tools).
    only_tools: bool,
    wrk: Option<String>,
    node_modules: PathBuf,
    alephauto: PathBuf,
    out: Option<PathBuf>,
    write_doc: Option<PathBuf>,
}

fn parse_args() -> Result<Args> {
    let root = repo_root();
    let mut a = Args {
        smoke: false,
        instantiate: true,
        polyglot: false,
        peers: true,
        http: true,
        tools: true,
        pg: true,
        only_pg: false,
        pg_jobs: None,
        pg_conc: None,
        only_tools: false,
        wrk: None,
        node_modules: root.join("bench/node_modules"),
        alephauto: root.join("target/release/alephauto"),
        out: None,
        write_doc: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--smoke" => a.smoke = true,
            "--polyglot" => a.polyglot = true,
            "--skip-instantiate" => a.instantiate = false,
            "--skip-peers" => a.peers = false,
            "--skip-http" => a.http = false,
            "--skip-tools" => a.tools = false,
            "--skip-pg" => a.pg = false,
            "--only-tools" => a.only_tools = true,
            "--only-pg" => a.only_pg = true,
            "--pg-jobs" => a.pg_jobs = Some(value("--pg-jobs")?.parse().context("--pg-jobs")?),
            "--pg-conc" => a.pg_conc = Some(value("--pg-conc")?.parse().context("--pg-conc")?),
            "--wrk" => a.wrk = Some(value("--wrk")?),
            "--node-modules" => a.node_modules = PathBuf::from(value("--node-modules")?),
            "--alephauto" => a.alephauto = PathBuf::from(value("--alephauto")?),
            "--out" => a.out = Some(PathBuf::from(value("--out")?)),
            "--write-doc" => a.write_doc = Some(PathBuf::from(value("--write-doc")?)),
            "-h" | "--help" => {
                println!(
                    "{}",
                    include_str!("main.rs")
                        .lines()
                        .take_while(|l| l.starts_with("//!"))
                        .map(|l| l.trim_start_matches("//!"))
                        .collect::<Vec<_>>()
                        .join("\n")
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (see --help)"),
        }
    }
    if a.smoke {
        a.peers = false;
        a.tools = false;
        a.wrk = None;
    }
    Ok(a)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let nproc = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| t.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<u64>().ok()))
        .map(|kib| format!("{:.1} GiB RAM", kib as f64 / 1048576.0))
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("nproc {nproc}, {cpu}, {mem}, Linux {}", kernel.trim())
}

fn main() -> Result<()> {
    // With RUST_BACKTRACE=1 in the caller's environment every error value, including the
    // ones wasmtime creates and discards on a job's success path, captures a backtrace
    // (a stack walk per job). Library backtraces are turned off unless asked for
    // explicitly; panics still print theirs. Set before any thread exists; children (the
    // HTTP section's server) inherit it.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: single-threaded here (no runtime, no thread spawned yet).
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
    let args = parse_args()?;
    let started = *START.get_or_init(Instant::now);
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    if !args.smoke && cfg!(debug_assertions) {
        eprintln!("warning: a debug build; figures are meaningless (use scripts/bench.sh)");
    }
    // Sizes: (instantiations, queue N, concurrency, latency rate, latency secs, effectum N, apalis N, wrk secs,
    // polyglot instantiations (0: skipped), PostgreSQL N per round, sequential jobs over HTTP per language).
    let (iters, n, conc, lat_rate, lat_secs, n_eff, n_apalis, wrk_secs, poly_iters, n_pg, seq_jobs) = if args.smoke {
        (200, 300, 8, 200, 1, 0, 0, 0, 0, 50, 5)
    } else {
        (10_000, 50_000, 8, 1_000, 3, 20_000, 1_000, 5, 1_000, 10_000, 50)
    };

    // Section 7: no-op rounds (size, cap), waiting rounds (size, cap), repetitions.
    let sizes = if args.smoke {
        cluster::Sizes { n: n_pg, conc, n_wait: 20, wait_cap: 8, reps: 1 }
    } else {
        cluster::Sizes {
            n: args.pg_jobs.unwrap_or(n_pg),
            conc: args.pg_conc.unwrap_or(64),
            n_wait: 4_000,
            wait_cap: 128,
            reps: 3,
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut report = Report::default();
    if args.only_tools {
        rt.block_on(repomix::run(&mut report, &args.node_modules, false))?;
        rt.block_on(dupes::run(&mut report, &args.node_modules))?;
        println!("{}", report.markdown());
        return Ok(());
    }
    let machine = machine();
    eprintln!("alephauto-bench ({profile}{}) on {machine}", if args.smoke { ", smoke" } else { "" });

    if args.only_pg {
        let dir = tempfile::tempdir()?;
        eprintln!("7. cluster mode (PostgreSQL)");
        if let Some(ours) = rt.block_on(cluster::run(&mut report, sizes, dir.path()))?
            && args.peers
        {
            rt.block_on(pg_peers::run(&mut report, ours, sizes.n, sizes.conc, sizes.reps))?;
        }
        println!("Machine: {machine}. Build: {profile}.\n{}", report.markdown());
        return Ok(());
    }
    if args.instantiate {
        eprintln!("1. instantiation");
        rt.block_on(instantiate::run(&mut report, iters))?;
        if args.polyglot {
            rt.block_on(instantiate::polyglot(&mut report, poly_iters))?;
        }
    }
    eprintln!("2. queue");
    let (figures, queue_dir) =
        rt.block_on(queue::run(&mut report, n, if args.smoke { 1 } else { 5 }, conc, lat_rate, lat_secs))?;
    if args.pg {
        eprintln!("7. cluster mode (PostgreSQL)");
        if let Some(ours) = rt.block_on(cluster::run(&mut report, sizes, queue_dir.path()))?
            && args.peers
        {
            eprintln!("7. PostgreSQL peers");
            rt.block_on(pg_peers::run(&mut report, ours, sizes.n, sizes.conc, sizes.reps))?;
        }
    }
    if args.peers {
        eprintln!("3. peers");
        peers::run(&mut report, figures, n_eff, n_apalis, conc)?;
    }
    let mut leftovers = vec![queue_dir];
    if args.http {
        eprintln!("4/6. http + footprint");
        if args.alephauto.exists() {
            leftovers.extend(http::run(&mut report, &args.alephauto, args.wrk.as_deref(), wrk_secs)?);
            leftovers.push(http::sequential_jobs(&mut report, &args.alephauto, args.polyglot, seq_jobs)?);
        } else if args.smoke {
            eprintln!("  (skipped: {} not built)", args.alephauto.display());
        } else {
            bail!("{} is missing: build it with `cargo build --release -p alephauto`", args.alephauto.display());
        }
    }
    if args.tools {
        eprintln!("5. pipelines vs Node tools");
        rt.block_on(repomix::run(&mut report, &args.node_modules, false))?;
        rt.block_on(dupes::run(&mut report, &args.node_modules))?;
    } else if args.smoke {
        eprintln!("5. repomix file selection vs the CLI (edge-case tree)");
        rt.block_on(repomix::run(&mut report, &args.node_modules, true))?;
    }
    let mut order: Vec<_> = report.rows.drain(..).collect();
    order.sort_by_key(|r| r.section.chars().next().unwrap_or('9'));
    report.rows = order;

    let header = format!(
        "Machine: {machine}. Build: {profile}. Settings: queue N = {}, concurrency {conc} (max_concurrent / max_concurrency), \
         {} instantiations per engine, durable SQLite (WAL, synchronous=NORMAL); PostgreSQL N = {} per round; RUST_LIB_BACKTRACE={}. Total bench time {:.0} s.\n",
        report::group(n as u64),
        report::group(iters as u64),
        report::group(n_pg as u64),
        std::env::var("RUST_LIB_BACKTRACE").unwrap_or_default(),
        started.elapsed().as_secs_f64()
    );
    let table = format!("{header}{}", report.markdown());
    println!("{table}");
    if let Some(out) = &args.out {
        std::fs::write(out, &table).with_context(|| format!("writing {}", out.display()))?;
    }
    if let Some(doc) = &args.write_doc {
        let text = std::fs::read_to_string(doc).with_context(|| format!("reading {}", doc.display()))?;
        let (begin, end) = ("<!-- bench:begin -->", "<!-- bench:end -->");
        let (Some(a), Some(b)) = (text.find(begin), text.find(end)) else {
            bail!("{} has no {begin} … {end} markers", doc.display());
        };
        let updated = format!("{}{begin}\n{table}\n{}", &text[..a], &text[b..]);
        std::fs::write(doc, updated)?;
        eprintln!("updated {}", doc.display());
    }
    // One output folder per job: removing tens of thousands is slow where the disk is
    // mounted with `discard` (each rmdir waits for the discard). Not part of any figure.
    eprintln!("removing the job output folders of the queue and HTTP sections");
    let cleanup = Instant::now();
    drop(leftovers);
    eprintln!("removed in {:.0} s", cleanup.elapsed().as_secs_f64());
    Ok(())
}
