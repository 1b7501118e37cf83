//! Sections 4 and 6: the real `alephauto serve` process on loopback, driven by `wrk`
//! on the same machine; its start-to-listening time and RSS idle and under load.

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use alephauto::config::{Config, PipelineConfig};
use anyhow::{Context, Result, bail};

use crate::instantiate::component;
use crate::report::{Report, fmt_d, fmt_mb, fmt_rate, group};

const S4: &str = "4. HTTP (loopback; server and wrk share the machine)";
const S6: &str = "6. Footprint";

/// A running `alephauto serve`.
pub struct Server {
    child: Child,
    /// Its address.
    pub addr: SocketAddr,
    /// Spawn → first successful TCP connect.
    pub start_to_listen: Duration,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts the binary with every built-in pipeline plus `noop`, data in a temp folder.
    pub fn start(bin: &Path, roots: &[PathBuf]) -> Result<Self> {
        Self::start_in(bin, roots, tempfile::tempdir()?)
    }

    /// Like `start`, with the data in `dir/data` (which may hold a database already).
    pub fn start_in(bin: &Path, roots: &[PathBuf], dir: tempfile::TempDir) -> Result<Self> {
        Self::start_with(bin, roots, dir, &[])
    }

    /// Like `start_in`, with the pipelines `extra` (id, component) configured too.
    pub fn start_with(
        bin: &Path,
        roots: &[PathBuf],
        dir: tempfile::TempDir,
        extra: &[(&str, PathBuf)],
    ) -> Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let mut config = Config::default();
        config.server.bind = addr.to_string();
        config.runtime.data_dir = dir.path().join("data");
        // One local load generator: no key to pass to wrk, no per-client rate limit.
        config.server.require_key = false;
        config.server.rate_limit.requests = 0;
        let mut noop = PipelineConfig::new(component("fixture_noop"));
        noop.max_concurrent = 8;
        noop.max_queued = 100_000_000;
        config.pipelines.insert("noop".into(), noop);
        for (id, component) in extra {
            let mut p = PipelineConfig::new(component.clone());
            p.timeout_secs = 120;
            config.pipelines.insert((*id).to_string(), p);
        }
        for p in config.pipelines.values_mut() {
            p.roots.extend(roots.iter().cloned());
        }
        let path = dir.path().join("alephauto.toml");
        std::fs::write(&path, toml::to_string_pretty(&config)?)?;
        let log = std::fs::File::create(dir.path().join("server.log"))?;
        let started = Instant::now();
        let mut child = Command::new(bin)
            .arg("serve")
            .arg("--config")
            .arg(&path)
            .env_remove("ALEPHAUTO_API_KEY")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        loop {
            if TcpStream::connect(addr).is_ok() {
                break;
            }
            if let Some(status) = child.try_wait()? {
                let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
                bail!("the server exited ({status}) before listening:\n{log}");
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                bail!("the server did not listen within 30 s");
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        let start_to_listen = started.elapsed();
        Ok(Self { child, addr, start_to_listen, _dir: dir })
    }

    /// VmRSS and VmHWM of the server, in KiB.
    pub fn rss(&self) -> (u64, u64) {
        rss_of(self.child.id())
    }

    /// SIGTERM, then wait (SIGKILL after 20 s); returns the data folder, for the caller to remove.
    pub fn stop(mut self) -> Result<tempfile::TempDir> {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(self._dir);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Ok(self._dir)
    }
}

fn rss_of(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Plain HTTP/1.1 GET returning the body (enough for polling the API).
fn get(addr: SocketAddr, path: &str) -> Result<String> {
    request(addr, &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"))
}

/// Plain HTTP/1.1 POST of a JSON body, returning the response body.
fn post(addr: SocketAddr, path: &str, json: &str) -> Result<String> {
    request(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{json}",
            json.len()
        ),
    )
}

fn request(addr: SocketAddr, head_and_body: &str) -> Result<String> {
    use std::io::Read as _;
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(head_and_body.as_bytes())?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    Ok(buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

/// The JSON object of a response body (chunked or not: the part between the first '{' and the last '}').
fn json_of(body: &str) -> Result<serde_json::Value> {
    let json = body.find('{').zip(body.rfind('}')).map(|(a, b)| &body[a..=b]).unwrap_or("{}");
    serde_json::from_str(json).with_context(|| format!("not a JSON body: {body}"))
}

/// Triggers `pipeline` and waits for the job's end; returns the job.
fn run_job(addr: SocketAddr, pipeline: &str, params: &str) -> Result<serde_json::Value> {
    let body = post(addr, &format!("/api/pipelines/{pipeline}/trigger"), &format!("{{\"parameters\":{params}}}"))?;
    let accepted = json_of(&body)?;
    let id = accepted["jobId"].as_str().with_context(|| format!("trigger {pipeline}: {accepted}"))?.to_string();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let job = json_of(&get(addr, &format!("/api/jobs/{id}"))?)?;
        match job["status"].as_str() {
            Some("completed") => return Ok(job),
            Some("failed" | "cancelled") => bail!("job {id} of {pipeline} ended: {job}"),
            _ if Instant::now() > deadline => bail!("job {id} of {pipeline} did not end in 180 s: {job}"),
            _ => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// Section 4's one-job-at-a-time rows, one per language: a first job (worker load and compile,
/// or the cache), then `n` sequential near-empty jobs, trigger → completed over HTTP and the
/// run itself (`completedAt - startedAt`: store, instantiate, one call). With `polyglot`, the
/// JavaScript and Python components of `scripts/build-polyglot.sh` too.
pub fn sequential_jobs(report: &mut Report, bin: &Path, polyglot: bool, n: usize) -> Result<tempfile::TempDir> {
    let root = tempfile::tempdir()?;
    let empty = root.path().join("empty");
    std::fs::create_dir_all(&empty)?;
    let built = crate::repo_root().join("target/polyglot");
    let mut extra = Vec::new();
    let mut cases = vec![("noop", "Rust", "{}".to_string())];
    if polyglot {
        let markdown = format!("{{\"repositoryPath\":{:?}}}", empty.display().to_string());
        for (id, stem, lang, params) in [
            ("changelog", "changelog", "JavaScript", r#"{"commits":[]}"#.to_string()),
            ("markdown-links", "markdown_links", "Python", markdown),
        ] {
            let wasm = built.join(format!("{stem}.wasm"));
            if wasm.is_file() {
                extra.push((id, wasm));
                cases.push((id, lang, params));
            } else {
                report.add(
                    S4,
                    format!("one job at a time, `{id}` ({lang})"),
                    "skipped",
                    format!("{} is absent", wasm.display()),
                );
            }
        }
    }
    let server = Server::start_with(bin, &[root.path().to_path_buf()], tempfile::tempdir()?, &extra)?;
    for (id, lang, params) in cases {
        let first = Instant::now();
        run_job(server.addr, id, &params)?;
        let cold = first.elapsed();
        let (mut walls, mut runs) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let start = Instant::now();
            let job = run_job(server.addr, id, &params)?;
            walls.push(start.elapsed());
            let at = |k: &str| {
                job[k]
                    .as_str()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .with_context(|| format!("{k} of {job}"))
            };
            runs.push((at("completedAt")? - at("startedAt")?).num_milliseconds());
        }
        walls.sort();
        let mean_run = runs.iter().sum::<i64>() as f64 / n as f64;
        report.add(
            S4,
            format!("one job at a time, `{id}` ({lang}): trigger → completed, median"),
            fmt_d(walls[walls.len() / 2]),
            format!(
                "{n} sequential jobs over HTTP after a first one of {} (worker load + compile); the run itself (startedAt → completedAt, ms clock): mean {mean_run:.1} ms, best {} ms",
                fmt_d(cold),
                runs.iter().min().copied().unwrap_or_default()
            ),
        );
    }
    server.stop()
}

fn total_of(addr: SocketAddr, query: &str) -> Result<u64> {
    let v = json_of(&get(addr, &format!("/api/jobs?{query}&limit=1"))?)?;
    v["total"].as_u64().with_context(|| format!("no total in /api/jobs: {v}"))
}

/// What wrk reported.
#[derive(Debug, Default)]
struct Wrk {
    rps: f64,
    p50: Duration,
    p99: Duration,
    requests: u64,
    errors: u64,
}

fn parse_dur(s: &str) -> Duration {
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len()));
    let v: f64 = num.parse().unwrap_or(0.0);
    let secs = match unit {
        "us" => v / 1e6,
        "ms" => v / 1e3,
        "s" => v,
        "m" => v * 60.0,
        _ => v,
    };
    Duration::from_secs_f64(secs)
}

fn wrk(wrk_bin: &str, url: &str, script: Option<&Path>, conns: u32, secs: u32) -> Result<Wrk> {
    let mut cmd = Command::new(wrk_bin);
    cmd.args(["-t2", &format!("-c{conns}"), &format!("-d{secs}s"), "--latency", "--timeout", "10s"]);
    if let Some(s) = script {
        cmd.arg("-s").arg(s);
    }
    let out = cmd.arg(url).output().with_context(|| format!("running {wrk_bin}"))?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        bail!("wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    }
    let mut w = Wrk::default();
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts.as_slice() {
            ["Requests/sec:", v] => w.rps = v.parse().unwrap_or(0.0),
            ["50%", v] => w.p50 = parse_dur(v),
            ["99%", v] => w.p99 = parse_dur(v),
            [n, "requests", "in", ..] => w.requests = n.parse().unwrap_or(0),
            ["Non-2xx", "or", "3xx", "responses:", n] => w.errors += n.parse::<u64>().unwrap_or(0),
            ["Socket", "errors:", rest @ ..] => {
                w.errors += rest.iter().filter_map(|t| t.trim_end_matches(',').parse::<u64>().ok()).sum::<u64>()
            }
            _ => {}
        }
    }
    if w.rps == 0.0 {
        bail!("could not read wrk's output:\n{text}");
    }
    Ok(w)
}

/// Sections 4 and 6 (with `wrk = None`, only start time and idle RSS).
///
/// Returns the servers' data folders (one output folder per job: the caller removes them last).
pub fn run(report: &mut Report, bin: &Path, wrk_bin: Option<&str>, secs: u32) -> Result<Vec<tempfile::TempDir>> {
    // Footprint: cold start (compiled-component cache empty; pipelines are lazy anyway).
    let mut starts = Vec::new();
    for _ in 0..3 {
        let server = Server::start(bin, &[])?;
        starts.push(server.start_to_listen);
        drop(server.stop()?);
    }
    starts.sort();
    // No roots: the data folder lives in the temp folder, and a root may not contain it.
    let server = Server::start(bin, &[])?;
    std::thread::sleep(Duration::from_millis(500));
    let (idle, _) = server.rss();
    report.target(
        S6,
        "start → listening",
        fmt_d(starts[1]),
        "≤ 0.5 s",
        starts[1] <= Duration::from_millis(500),
        "spawn of `alephauto serve` (release) to first TCP connect, fresh data folder; median of 3",
    );
    report.target(
        S6,
        "idle RSS, all pipelines configured",
        fmt_mb(idle),
        "≤ 40 MB",
        idle <= 40 * 1024,
        "VmRSS 0.5 s after listening; 8 built-in pipelines + noop configured, none loaded (workers are lazy)",
    );
    let Some(wrk_bin) = wrk_bin else {
        let idle = server.stop()?;
        return Ok(vec![idle, deep_pages(report, bin, None, 2_000, 0)?]);
    };
    let addr = server.addr;

    let dir = tempfile::tempdir()?;
    let lua = dir.path().join("trigger.lua");
    std::fs::write(
        &lua,
        "wrk.method = \"POST\"\nwrk.body = '{\"parameters\":{}}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\n",
    )?;
    // Sample RSS while triggers run.
    let peak = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, stop, pid) = (peak.clone(), stop.clone(), server.child.id());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss_of(pid).0, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    // Short warm-up (loads the noop worker), then the measured run.
    wrk(wrk_bin, &format!("http://{addr}/api/pipelines/noop/trigger"), Some(&lua), 4, 1)?;
    // The warm-up's jobs finish first, so the count below is the measured run's alone.
    let settle = Instant::now();
    while total_of(addr, "status=queued,running")? > 0 && settle.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let (before, stored_before) = (total_of(addr, "status=completed")?, total_of(addr, "pipelineId=noop")?);
    let t = wrk(wrk_bin, &format!("http://{addr}/api/pipelines/noop/trigger"), Some(&lua), 32, secs)?;
    let ran = total_of(addr, "status=completed")?.saturating_sub(before);
    // The server's own count: wrk leaves out the requests still in flight when it stops.
    let accepted = total_of(addr, "pipelineId=noop")?.saturating_sub(stored_before);
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let (_, hwm) = server.rss();
    let ok = t.rps >= 15_000.0 && t.p99 < Duration::from_millis(10);
    report.target(
        S4,
        "POST /api/pipelines/noop/trigger",
        fmt_rate(t.rps, "req/s"),
        "≥ 15,000 req/s, p99 < 10 ms",
        ok,
        format!(
            "wrk -t2 -c32 -d{secs}s, {} requests, {} errors; jobs run (max_concurrent 8) while triggers arrive",
            group(t.requests),
            t.errors
        ),
    );
    report.add(S4, "trigger latency p50 / p99", format!("{} / {}", fmt_d(t.p50), fmt_d(t.p99)), "wrk --latency");
    report.add(
        S4,
        "jobs completed during the trigger run",
        fmt_rate(ran as f64 / f64::from(secs), "jobs/s"),
        format!(
            "{} of the {} jobs the server accepted during the run had completed when wrk stopped: the server runs what it accepts, on the same 2 cores",
            group(ran),
            group(accepted)
        ),
    );
    report.add(
        S6,
        "RSS under load (peak while triggering)",
        fmt_mb(peak.load(Ordering::Relaxed).max(hwm)),
        "max of VmRSS sampled every 100 ms and VmHWM; noop worker loaded, jobs running",
    );

    // Let the backlog drain so the listing runs on a quiet server. A count that stops
    // moving for 10 s means jobs are stuck (queued or running with nothing running them):
    // stop waiting then, and report them.
    let drain_started = Instant::now();
    let (mut last, mut last_change) = (u64::MAX, Instant::now());
    loop {
        let pending = total_of(addr, "status=queued,running")?;
        if pending != last {
            (last, last_change) = (pending, Instant::now());
        }
        if pending == 0
            || last_change.elapsed() > Duration::from_secs(10)
            || drain_started.elapsed() > Duration::from_secs(120)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let drained_in = last_change.duration_since(drain_started);
    let still_pending = total_of(addr, "status=queued,running")?;
    let jobs = total_of(addr, "status=completed,failed,queued,running,cancelled")?;
    let l = wrk(wrk_bin, &format!("http://{addr}/api/jobs"), None, 32, secs)?;
    report.target(
        S4,
        "GET /api/jobs",
        fmt_rate(l.rps, "req/s"),
        "≥ 10,000 req/s",
        l.rps >= 10_000.0,
        format!(
            "wrk -t2 -c32 -d{secs}s, default page (50 newest) of {} jobs, {} errors; p50 / p99 {} / {}",
            group(jobs),
            l.errors,
            fmt_d(l.p50),
            fmt_d(l.p99)
        ),
    );
    report.add(
        S4,
        "backlog drain after the trigger run",
        fmt_d(drained_in),
        if still_pending == 0 {
            "time until no job was queued or running".to_string()
        } else {
            format!(
                "{} jobs were still queued or running when the count stopped moving (unchanged for 10 s, or 120 s in all): stuck; the figure is when the count last moved",
                group(still_pending)
            )
        },
    );
    let listed = server.stop()?;
    Ok(vec![listed, deep_pages(report, bin, Some(wrk_bin), DEEP_JOBS, secs)?])
}

/// Jobs stored for the deep-page rows.
const DEEP_JOBS: usize = 200_000;
/// The depth of the issue's slow listing (`offset=30000`).
const DEEP_OFFSET: usize = 30_000;

/// Writes `n` completed `noop` jobs into the database of the data folder `data`, oldest first,
/// two per millisecond (ties are ordered by the insertion sequence).
async fn seed(data: &Path, n: usize) -> Result<()> {
    use alephauto::domain::{Job, JobStatus};
    use alephauto::store::JobStore;
    use futures::StreamExt;
    let store = alephauto::store::sqlite::SqliteStore::open(&data.join("alephauto.db"))?;
    let base = chrono::Utc::now() - chrono::Duration::seconds(n as i64);
    let mut inserts = futures::stream::iter(0..n)
        .map(|i| {
            let created = base + chrono::Duration::milliseconds(i as i64 / 2);
            let mut job = Job::new(format!("noop-seed-{i:07}"), "noop".into(), serde_json::json!({}), created);
            job.status = JobStatus::Completed;
            job.started_at = Some(created);
            job.completed_at = Some(created + chrono::Duration::milliseconds(1));
            job.result = Some(serde_json::json!({"ok": true}));
            let store = &store;
            async move { store.insert(&job).await }
        })
        // Many in flight: the writer commits them in groups.
        .buffer_unordered(512);
    while let Some(r) = inserts.next().await {
        r?;
    }
    store.flush().await?;
    Ok(())
}

/// The `jobs` array of a listing body (chunked or not).
fn jobs_of(body: &str) -> Result<(serde_json::Value, Option<String>)> {
    let json = body.find('{').zip(body.rfind('}')).map(|(a, b)| &body[a..=b]).unwrap_or("{}");
    let v: serde_json::Value = serde_json::from_str(json).with_context(|| format!("bad /api/jobs body: {body}"))?;
    Ok((v["jobs"].clone(), v["nextCursor"].as_str().map(str::to_string)))
}

/// Section 4's deep pages: `n` jobs stored, the page at depth `DEEP_OFFSET` (and one near the
/// end) by offset and by cursor. Both must list the same jobs; with wrk, their rates.
fn deep_pages(
    report: &mut Report,
    bin: &Path,
    wrk_bin: Option<&str>,
    n: usize,
    secs: u32,
) -> Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data)?;
    let seeded = Instant::now();
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(seed(&data, n))?;
    let seeded = seeded.elapsed();
    let server = Server::start_in(bin, &[], dir)?;
    let addr = server.addr;
    let (shallow, deep) = (DEEP_OFFSET.min(n / 2), n - 100);
    let page = "/api/jobs?limit=50&status=completed";
    let mut rows = Vec::new();
    for depth in [shallow, deep] {
        // The cursor of the page before: where the page at `depth` starts.
        let (_, cursor) = jobs_of(&get(addr, &format!("{page}&offset={}", depth - 50))?)?;
        let cursor = cursor.context("no nextCursor before a deep page")?;
        let by_offset = format!("{page}&offset={depth}");
        let by_cursor = format!("{page}&cursor={cursor}");
        let (a, b) = (jobs_of(&get(addr, &by_offset)?)?.0, jobs_of(&get(addr, &by_cursor)?)?.0);
        if a != b || a.as_array().is_none_or(Vec::is_empty) {
            bail!("the cursor page at depth {depth} differs from the offset page:\n{a}\n{b}");
        }
        rows.push((depth, by_offset, by_cursor));
    }
    let Some(wrk_bin) = wrk_bin else {
        report.add(
            S4,
            "deep pages (smoke)",
            "checked",
            format!("{} jobs: the cursor and offset pages agree at depths {shallow} and {deep}", group(n as u64)),
        );
        return server.stop();
    };
    let url = |path: &str| format!("http://{addr}{path}");
    let (depth, by_offset, _) = &rows[0];
    let base = wrk(wrk_bin, &url(by_offset), None, 32, secs)?;
    report.add(
        S4,
        format!("GET /api/jobs, offset {}, status=completed", group(*depth as u64)),
        fmt_rate(base.rps, "req/s"),
        format!(
            "the baseline of the cursor rows: wrk -t2 -c32 -d{secs}s, {} jobs stored (seeded in {}), {} errors; p50 / p99 {} / {}",
            group(n as u64),
            fmt_d(seeded),
            base.errors,
            fmt_d(base.p50),
            fmt_d(base.p99)
        ),
    );
    for (depth, _, by_cursor) in &rows {
        let depth = *depth;
        let t = wrk(wrk_bin, &url(by_cursor), None, 32, secs)?;
        report.target(
            S4,
            format!("GET /api/jobs, cursor at depth {}, status=completed", group(depth as u64)),
            fmt_rate(t.rps, "req/s"),
            "≥ 5,000 req/s",
            t.rps >= 5_000.0 && t.errors == 0,
            format!(
                "wrk -t2 -c32 -d{secs}s, the same page as offset={depth}, {} jobs stored, {} errors; p50 / p99 {} / {}; {:.0}× the offset listing",
                group(n as u64),
                t.errors,
                fmt_d(t.p50),
                fmt_d(t.p99),
                t.rps / base.rps.max(1e-9)
            ),
        );
    }
    server.stop()
}
