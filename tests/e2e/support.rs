//! Test support: a real `alephauto serve` process on a free loopback port with a
//! temporary SQLite file, driven over HTTP; plus helpers for fixture trees. The server's
//! own files live in a temp folder beside the fixture folder, never inside a grant.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Folder of the built guest components (workers and fixtures).
pub fn components_dir() -> PathBuf {
    PathBuf::from(env!("ALEPHAUTO_BUILT_WORKERS_DIR"))
}

/// A component path by file stem, e.g. `fixture_noop`.
pub fn component(stem: &str) -> String {
    components_dir().join(format!("{stem}.wasm")).display().to_string()
}

/// The compiled-component cache shared by all test servers (compiling once saves minutes).
pub fn shared_cache() -> PathBuf {
    components_dir().join("..").join("..").join("e2e-cache")
}

/// A pipeline table for the test config.
pub fn pipeline(id: &str, stem: &str, extra: &str) -> String {
    format!("[pipelines.{id}]\ncomponent = {:?}\n{extra}\n", component(stem))
}

/// Polls `probe` until it returns `Some`, at most until `limit`; then fails naming `what`
/// and the last thing `probe` saw. For waits on a condition instead of fixed sleeps.
pub async fn eventually<T, S: std::fmt::Debug, F: std::future::Future<Output = Result<T, S>>>(
    limit: Duration,
    what: &str,
    mut probe: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match probe().await {
            Ok(done) => return done,
            Err(seen) => assert!(Instant::now() < deadline, "{what}: still {seen:?} after {limit:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A running server process and its files.
pub struct Server {
    child: Option<Child>,
    /// Base URL, e.g. `http://127.0.0.1:43121`.
    pub url: String,
    /// The test's fixture folder, `ROOT` in pipeline tables (what pipelines are granted).
    pub dir: PathBuf,
    /// The server's own folder beside it (config, data folder, log), which no root may reach.
    pub state: PathBuf,
    _temp: Option<tempfile::TempDir>,
    _state_temp: Option<tempfile::TempDir>,
    /// HTTP client; sends the server's generated API key (if it made one) by default.
    pub http: reqwest::Client,
    /// The key the server generated into its data folder, if it did.
    pub api_key: Option<String>,
    /// The dashboard login URL the server printed (`#key=...` when it generated the key).
    pub dashboard_url: String,
    config_path: PathBuf,
    /// The descriptor limit the server is started with, when set.
    nofile: Option<u64>,
    /// Extra environment of the server process (e.g. `ALEPHAUTO_TEST_CLOCK`); applies from
    /// the next start on when changed.
    pub env: Vec<(String, String)>,
}

impl Server {
    /// Starts a server whose config is `[runtime]` defaults for tests plus `pipelines`.
    pub fn start(pipelines: &str) -> Server {
        Self::start_with(pipelines, "")
    }

    /// Like `start`, with extra `[runtime]` lines and top-level tables in `extra`.
    pub fn start_with(pipelines: &str, extra: &str) -> Server {
        Self::start_full(pipelines, extra, true, None)
    }

    /// Like `start`, with a compiled-component cache of its own (`<data>/cache`), for tests
    /// that change cache entries.
    pub fn start_with_private_cache(pipelines: &str) -> Server {
        Self::start_full(pipelines, "", false, None)
    }

    /// Like `start`, with the server's descriptor limit (soft and hard) set to `limit`.
    pub fn start_with_nofile_limit(pipelines: &str, limit: u64) -> Server {
        Self::start_full(pipelines, "", true, Some(limit))
    }

    /// Like `start_with`, with `env` set in the first process's environment (not kept for
    /// restarts: `set_env` for that).
    // Only the crash-point and schedules suites use it, and they need the `test-hooks` feature.
    #[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
    pub fn start_with_env(pipelines: &str, extra: &str, env: &[(&str, &str)]) -> Server {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Self::start_full_env(pipelines, extra, true, None, env)
    }

    fn start_full(pipelines: &str, extra: &str, shared: bool, nofile: Option<u64>) -> Server {
        Self::start_full_env(pipelines, extra, shared, nofile, Vec::new())
    }

    fn start_full_env(
        pipelines: &str,
        extra: &str,
        shared: bool,
        nofile: Option<u64>,
        env: Vec<(String, String)>,
    ) -> Server {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = std::fs::canonicalize(temp.path()).expect("canonical temp dir");
        let state_temp = tempfile::tempdir().expect("temp dir");
        let state = std::fs::canonicalize(state_temp.path()).expect("canonical temp dir");
        let config_path = state.join("alephauto.toml");
        let cache =
            if shared { format!("cache_dir = {:?}\n", shared_cache().display().to_string()) } else { String::new() };
        // Tests fire requests far faster than a person: no rate limit unless a test sets one.
        let rate_limit = if extra.contains("[server.rate_limit]") { "" } else { "[server.rate_limit]\nrequests = 0\n" };
        let config = format!(
            "[runtime]\ndata_dir = {:?}\n{cache}retry_base_ms = 50\nshutdown_timeout_secs = 10\n\
             breaker_cooldown_secs = 1\nbreaker_max_cooldown_secs = 2\n{extra}\n{}\n{rate_limit}",
            state.join("data").display().to_string(),
            pipelines.replace("ROOT", &dir.display().to_string())
        );
        std::fs::write(&config_path, config).expect("write config");
        let mut server = Server {
            child: None,
            url: String::new(),
            dir,
            state,
            _temp: Some(temp),
            _state_temp: Some(state_temp),
            http: reqwest::Client::new(),
            api_key: None,
            dashboard_url: String::new(),
            config_path,
            nofile,
            env,
        };
        server.spawn();
        server
    }

    /// The server's data folder (database, outputs).
    pub fn data_dir(&self) -> PathBuf {
        self.state.join("data")
    }

    /// Starts `alephauto serve` on `bind`; the receiver gets the URL once it listens.
    fn launch(&self, bind: &str) -> (Child, std::sync::mpsc::Receiver<String>) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_alephauto"));
        if let Some(limit) = self.nofile {
            use std::os::unix::process::CommandExt as _;
            // SAFETY: only setrlimit (async-signal-safe) runs between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    let rl = libc::rlimit { rlim_cur: limit, rlim_max: limit };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &rl) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = command
            .args(["serve", "--bind", bind, "--config"])
            .arg(&self.config_path)
            .env("RUST_LOG", "warn,alephauto=info")
            .env_remove("ALEPHAUTO_API_KEY")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(self.state.join("server.log")).expect("log file")))
            .spawn()
            .expect("start alephauto serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("AlephAuto listening on ") {
                    let _ = tx.send(url.to_string());
                } else if let Some(url) = line.strip_prefix("Dashboard: ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        (child, rx)
    }

    fn spawn(&mut self) {
        let (mut child, rx) = self.launch("127.0.0.1:0");
        let url = rx.recv_timeout(Duration::from_secs(120)).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("server did not start; log:\n{}", self.log())
        });
        self.url = url;
        self.dashboard_url = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
        self.child = Some(child);
        self.use_generated_key();
    }

    /// Reads the key the server generated on its first run (none when one is configured
    /// or the key is off) and makes `http` send it.
    fn use_generated_key(&mut self) {
        self.api_key =
            std::fs::read_to_string(self.state.join("data").join("api-key")).ok().map(|k| k.trim().to_string());
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(key) = &self.api_key {
            headers.insert("x-api-key", key.parse().expect("the key is a header value"));
        }
        self.http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .default_headers(headers)
            .build()
            .expect("client");
    }

    /// Opens the `/ws` feed, with the server's generated key (if any) in `X-API-Key`.
    pub async fn ws(
        &self,
    ) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
        let mut req = format!("{}/ws", self.url.replacen("http", "ws", 1)).into_client_request().expect("ws request");
        if let Some(key) = &self.api_key {
            req.headers_mut().insert("x-api-key", key.parse().expect("the key is a header value"));
        }
        tokio_tungstenite::connect_async(req).await.expect("ws connect").0
    }

    /// The server's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.state.join("server.log")).unwrap_or_default()
    }

    /// The SQLite file.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir().join("alephauto.db")
    }

    /// SIGKILLs the process.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running server");
        let pid = c.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().expect("kill -TERM");
        let start = Instant::now();
        loop {
            if let Some(status) = c.try_wait().expect("wait") {
                return status;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "server did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The configuration file the server was started with.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Runs the CLI against this server (its URL and key in the environment).
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_alephauto"))
            .args(args)
            .env("ALEPHAUTO_URL", &self.url)
            .env("ALEPHAUTO_API_KEY", self.api_key.clone().unwrap_or_default())
            .output()
            .expect("run the CLI")
    }

    /// Like `cli`: (exited 0, stdout, stderr) as text.
    pub fn cli_text(&self, args: &[&str]) -> (bool, String, String) {
        let out = self.cli(args);
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
    }

    /// PUTs a component's bytes to `/api/pipelines/{pipeline}/component` with `content_type`.
    pub async fn put_component(&self, pipeline: &str, bytes: Vec<u8>, content_type: &str) -> (u16, Value) {
        let res = self
            .http
            .put(format!("{}/api/pipelines/{pipeline}/component", self.url))
            .header("content-type", content_type)
            .body(bytes)
            .send()
            .await
            .expect("PUT component");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    #[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
    /// Replaces the extra environment of the next launches (`restart`).
    pub fn set_env(&mut self, env: &[(&str, &str)]) {
        self.env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    }

    #[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
    /// Waits (at most `limit`) for the process to end by itself, e.g. at a failpoint.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let c = self.child.as_mut().expect("running server");
        let start = Instant::now();
        loop {
            if let Some(status) = c.try_wait().expect("wait") {
                self.child = None;
                return status;
            }
            assert!(start.elapsed() < limit, "server still running after {limit:?}; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the process again on the same config and database.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// GET, returning status and JSON.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let res = self.http.get(format!("{}{path}", self.url)).send().await.expect("GET");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// POST raw bytes, returning status and JSON.
    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let res = self
            .http
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("POST");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// POST JSON.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.post_raw(path, body.to_string()).await
    }

    /// Triggers `pipeline` with `params`; returns status and body.
    pub async fn trigger(&self, pipeline: &str, params: Value) -> (u16, Value) {
        self.post(&format!("/api/pipelines/{pipeline}/trigger"), json!({"parameters": params})).await
    }

    /// Triggers and asserts 201; returns the job id.
    pub async fn trigger_ok(&self, pipeline: &str, params: Value) -> String {
        let (status, body) = self.trigger(pipeline, params).await;
        assert_eq!(status, 201, "trigger {pipeline}: {body}");
        body["jobId"].as_str().expect("jobId").to_string()
    }

    /// Waits until the job is terminal and returns it.
    pub async fn wait_job(&self, id: &str, timeout: Duration) -> Value {
        self.wait_status(id, &["completed", "failed", "cancelled"], timeout).await
    }

    /// Waits until the job has one of `statuses`.
    pub async fn wait_status(&self, id: &str, statuses: &[&str], timeout: Duration) -> Value {
        let start = Instant::now();
        loop {
            let (code, job) = self.get(&format!("/api/jobs/{id}")).await;
            assert_eq!(code, 200, "GET job {id}: {job}");
            if statuses.contains(&job["status"].as_str().unwrap_or("")) {
                return job;
            }
            assert!(start.elapsed() < timeout, "job {id} stuck at {job}\nlog:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Runs a pipeline to its end and returns the job.
    pub async fn run(&self, pipeline: &str, params: Value) -> Value {
        let id = self.trigger_ok(pipeline, params).await;
        self.wait_job(&id, Duration::from_secs(120)).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs git in `dir`, panicking with its stderr on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().expect("run git");
    assert!(out.status.success(), "git {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Makes `dir` a git repository with one commit of everything in it.
pub fn init_repo(dir: &Path) {
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["config", "user.email", "test@example.com"]);
    git(dir, &["config", "user.name", "Test"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "initial", "--allow-empty"]);
}

/// Writes `files` (relative path → contents) under `root`.
pub fn write_tree(root: &Path, files: &[(&str, &str)]) {
    for (rel, text) in files {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write");
    }
}

impl Server {
    /// Kills the process and starts it again on the same address, config and
    /// database, so that clients reconnecting to the old URL find it (the dashboard
    /// tests use this; `restart` picks a new port).
    pub fn restart_same_port(&mut self) {
        self.kill();
        let bind = self.url.trim_start_matches("http://").to_string();
        let start = Instant::now();
        loop {
            let (mut child, rx) = self.launch(&bind);
            // Either it listens, or it exits (address briefly still in use): retry.
            let deadline = Instant::now() + Duration::from_secs(120);
            let listening = loop {
                if rx.recv_timeout(Duration::from_millis(100)).is_ok() {
                    break true;
                }
                if child.try_wait().expect("wait").is_some() || Instant::now() > deadline {
                    break false;
                }
            };
            if listening {
                self.child = Some(child);
                self.use_generated_key();
                return;
            }
            let _ = child.kill();
            let _ = child.wait();
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "server did not restart on {bind}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Server {
    /// The server process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running server").id()
    }

    /// Resident memory of the server process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// Counts jobs by status through the API.
    pub async fn count(&self, status: &str) -> u64 {
        let (_, page) = self.get(&format!("/api/jobs?status={status}&limit=1")).await;
        page["total"].as_u64().unwrap_or(0)
    }
}

/// The PostgreSQL server the cluster tests use (`ALEPHAUTO_TEST_PG` overrides).
pub fn pg_base_url() -> String {
    std::env::var("ALEPHAUTO_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A URL whose connections use a fresh schema of their own, so tests run in parallel.
pub fn pg_schema_url(tag: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let schema = format!("t_{tag}_{}_{}", std::process::id(), nanos % 1_000_000_000);
    let base = pg_base_url();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-csearch_path%3D{schema}")
}
