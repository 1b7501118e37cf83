//! The runtime's configuration: one validated `Config` read from TOML, with the
//! pipeline definitions and the filesystem roots each pipeline is granted.
//!
//! A default configuration is built in; `serve` writes it on first run so an operator
//! can edit it. Adding a pipeline is a component plus a `[pipelines.<id>]` table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

pub mod inventory;

pub use inventory::{DiscoverConfig, InventoryConfig, TargetKind};
pub mod notify;

/// The eight pipelines that ship with the runtime, in display order.
pub const BUILTIN_PIPELINES: [&str; 8] = [
    "duplicate-detection",
    "schema-enhancement",
    "git-activity",
    "gitignore-manager",
    "repomix",
    "claude-health",
    "repo-cleanup",
    "test-refactor",
];

/// Pipelines whose host-side git workflow is on by default.
const GIT_WORKFLOW_DEFAULT_ON: [&str; 1] = ["schema-enhancement"];

/// Where `build.rs` put the worker components it compiled.
pub const BUILT_WORKERS_DIR: &str = env!("ALEPHAUTO_BUILT_WORKERS_DIR");

/// The whole configuration file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// HTTP server settings.
    #[serde(default)]
    pub server: ServerConfig,
    /// Queue, storage and sandbox settings shared by all pipelines.
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// Host-side git workflow settings.
    #[serde(default)]
    pub git: GitConfig,
    /// Outgoing webhooks (`[[notify.webhooks]]`) and their delivery settings.
    #[serde(default)]
    pub notify: notify::NotifyConfig,
    /// Pipeline id → definition.
    #[serde(default)]
    pub pipelines: BTreeMap<String, PipelineConfig>,
    /// Inventory name → targets a run fans out over (read-only over the API).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inventories: BTreeMap<String, InventoryConfig>,
}

/// HTTP server settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub bind: String,
    /// API key required on mutating routes and `/ws` (env `ALEPHAUTO_API_KEY` and
    /// `serve --api-key` override). None: a key is generated into `<data_dir>/api-key`.
    pub api_key: Option<String>,
    /// False turns the key off entirely (accepted only on a loopback bind).
    pub require_key: bool,
    /// Largest accepted request body, in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Largest component `PUT /api/pipelines/{id}/component` accepts, in bytes (413 beyond).
    pub max_component_bytes: usize,
    /// Host names (besides IP literals and `localhost`) the `Host` header may carry;
    /// anything else is refused (DNS rebinding).
    pub allowed_hosts: Vec<String>,
    /// Origins (`https://ops.example.com`) whose pages may call the API cross-origin.
    pub allowed_origins: Vec<String>,
    /// Seconds a client has to send a request's headers (slowloris); also the idle
    /// keep-alive limit between requests.
    pub header_read_timeout_secs: u64,
    /// Seconds a request (body included) may take before it is answered 408.
    pub request_timeout_secs: u64,
    /// Largest WebSocket message (and frame) a client may send, in bytes.
    pub ws_max_message_bytes: usize,
    /// WebSocket connections open at once (then 503).
    pub ws_max_connections: usize,
    /// Seconds a WebSocket may stay silent (no message, no pong) before it is closed;
    /// the server pings at a third of it.
    pub ws_idle_timeout_secs: u64,
    /// Per-client limit on mutating requests.
    pub rate_limit: RateLimitConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            api_key: None,
            require_key: true,
            max_body_bytes: 1024 * 1024,
            // A Python component is ~18 MB.
            max_component_bytes: 64 * 1024 * 1024,
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            header_read_timeout_secs: 10,
            request_timeout_secs: 120,
            ws_max_message_bytes: 64 * 1024,
            ws_max_connections: 64,
            ws_idle_timeout_secs: 60,
            rate_limit: RateLimitConfig::default(),
        }
    }
}

/// Per-client (peer IP) rate limit on mutating routes: a bucket of `requests` that
/// refills over `window_secs`; beyond it, 429 with `Retry-After`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Requests a client may make in a burst; 0 turns the limit off.
    pub requests: u32,
    /// Seconds in which a spent burst refills.
    pub window_secs: u64,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        // The original's default: 500 requests per 15 minutes.
        Self { requests: 500, window_secs: 900 }
    }
}

/// True when `key` can travel in a header: printable ASCII, no spaces (on `/ws` a browser
/// sends it hex-encoded as a subprotocol, see `api::auth`).
pub fn is_valid_api_key(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(|b| b.is_ascii_graphic())
}

/// File in the data folder that holds the API key generated on first run (mode 0600); the
/// server and the CLI both read it.
pub const API_KEY_FILE: &str = "api-key";

/// Queue, storage and sandbox settings shared by all pipelines.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Folder for the SQLite file, job output folders and the compiled-component cache.
    pub data_dir: PathBuf,
    /// Attempts a job gets when its failures are retryable (the first run counts).
    pub max_attempts: u32,
    /// First retry delay in milliseconds; doubles per attempt.
    pub retry_base_ms: u64,
    /// How long shutdown waits for running jobs before interrupting them.
    pub shutdown_timeout_secs: u64,
    /// Pipelines initialised at start instead of on first use.
    pub warm_up: Vec<String>,
    /// When false, triggers are refused with 503 (maintenance).
    pub execution_enabled: bool,
    /// Use the pooling instance allocator (faster instantiation, reserves address space).
    pub pooling_allocator: bool,
    /// Bytes of stdout/stderr/log records kept per job.
    pub max_log_bytes: usize,
    /// Bytes of JSON result a job may return.
    pub max_result_bytes: usize,
    /// Compiled-component cache folder (default: `<data_dir>/cache`).
    pub cache_dir: Option<PathBuf>,
    /// First circuit-breaker cooldown after repeated initialisation failures, in seconds.
    pub breaker_cooldown_secs: u64,
    /// Longest circuit-breaker cooldown, in seconds.
    pub breaker_max_cooldown_secs: u64,
    /// `postgres://...` to share one PostgreSQL database between several nodes (default: SQLite).
    pub database_url: Option<String>,
    /// This node's id in a cluster (default: host name and process id).
    pub node_id: Option<String>,
    /// Seconds a claimed job's lease lasts without renewal (cluster mode).
    pub lease_secs: u64,
    /// Days finished jobs are kept in cluster mode (none: forever).
    pub retention_days: Option<u64>,
    /// Seconds between passes of per-pipeline retention (`pipelines.*.retention`).
    pub retention_interval_secs: u64,
    /// Sentry DSN: report failed jobs, error logs and panics to Sentry (default: off; the
    /// `SENTRY_DSN` environment variable also turns it on).
    pub sentry_dsn: Option<String>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            data_dir: default_data_dir(),
            max_attempts: 3,
            retry_base_ms: 1000,
            shutdown_timeout_secs: 30,
            warm_up: Vec::new(),
            execution_enabled: true,
            pooling_allocator: true,
            max_log_bytes: 256 * 1024,
            max_result_bytes: 4 * 1024 * 1024,
            cache_dir: None,
            breaker_cooldown_secs: 60,
            breaker_max_cooldown_secs: 600,
            database_url: None,
            sentry_dsn: None,
            node_id: None,
            lease_secs: 30,
            retention_days: None,
            retention_interval_secs: 3600,
        }
    }
}

/// Host-side git workflow settings.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GitConfig {
    /// Remote that job branches are pushed to.
    pub remote: String,
    /// GitHub-compatible REST API base URL for pull requests; none disables PRs.
    pub forge_api_url: Option<String>,
    /// Token for the forge (env `ALEPHAUTO_FORGE_TOKEN` overrides); never logged.
    pub forge_token: Option<String>,
    /// Seconds a single git command may take.
    pub command_timeout_secs: u64,
    /// Bytes of output a git query may return to a guest.
    pub max_output_bytes: usize,
}

impl std::fmt::Debug for GitConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The forge token must never reach a log line.
        f.debug_struct("GitConfig")
            .field("remote", &self.remote)
            .field("forge_api_url", &self.forge_api_url)
            .field("forge_token", &self.forge_token.as_ref().map(|_| "<redacted>"))
            .field("command_timeout_secs", &self.command_timeout_secs)
            .field("max_output_bytes", &self.max_output_bytes)
            .finish()
    }
}

impl Default for GitConfig {
    fn default() -> Self {
        Self {
            remote: "origin".into(),
            forge_api_url: None,
            forge_token: None,
            command_timeout_secs: 30,
            max_output_bytes: 16 * 1024 * 1024,
        }
    }
}

/// One pipeline: its component, limits and grants.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Path of the `.wasm` component (relative paths are from the config file's folder).
    pub component: PathBuf,
    /// Jobs of this pipeline running at once.
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: usize,
    /// Queued jobs accepted before triggers get 429.
    #[serde(default = "default_max_queued")]
    pub max_queued: usize,
    /// Wall-clock seconds a job may run.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Linear memory a job's instance may grow to, in MiB.
    #[serde(default = "default_memory_mb")]
    pub memory_mb: u64,
    /// Folders inside which path parameters are accepted (`~` is the home folder).
    #[serde(default)]
    pub roots: Vec<PathBuf>,
    /// Whether write-annotated paths are granted read-write (else read-only).
    #[serde(default = "default_true")]
    pub allow_write: bool,
    /// Run the host-side git workflow around jobs that name a `repositoryPath`.
    #[serde(default)]
    pub git_workflow: bool,
    /// Free-form settings handed to the worker's `init` as JSON.
    #[serde(default)]
    pub settings: toml::Table,
    /// When false the pipeline is listed but refuses triggers.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Host descriptors (files, folders, directory listings) a job may hold open at once;
    /// past it the guest's open fails with an error.
    #[serde(default = "default_max_open_files")]
    pub max_open_files: usize,
    /// MiB a job's output folder may hold (else the job fails with `DISK_QUOTA`).
    #[serde(default = "default_output_quota_mb")]
    pub output_quota_mb: u64,
    /// Files and folders a job's output folder may hold (else `DISK_QUOTA`).
    #[serde(default = "default_output_quota_files")]
    pub output_quota_files: u64,
    /// How long finished jobs (rows, logs and output files) are kept; none: forever.
    #[serde(default)]
    pub retention: Option<RetentionPolicy>,
    /// Trigger one job (with the schema's default parameters) each time the service starts.
    #[serde(default)]
    pub run_on_startup: bool,
    /// Cron schedules that trigger this pipeline (`[[pipelines.ID.schedules]]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedules: Vec<ScheduleConfig>,
}

/// A schedule declared in the configuration (checked at start: `schedule::spec`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Unique among all schedules: `[A-Za-z0-9_-]{1,40}`.
    pub id: String,
    /// Cron expression: 5 fields, 6 with seconds first, or `@daily`-style aliases.
    pub cron: String,
    /// IANA time zone the expression is read in (default UTC).
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// The job's parameters.
    #[serde(default)]
    pub parameters: serde_json::Map<String, serde_json::Value>,
    /// Start a run over this inventory instead of one job.
    #[serde(default)]
    pub inventory: Option<String>,
    /// Fires missed while the service was down: `skip` or `run_once`.
    #[serde(default)]
    pub misfire: MisfirePolicy,
    /// A fire while the previous job still runs: `skip`, `queue` or `allow`.
    #[serde(default)]
    pub overlap: OverlapPolicy,
    /// A paused schedule does not fire.
    #[serde(default)]
    pub paused: bool,
}

fn default_timezone() -> String {
    "UTC".into()
}

/// What happens to fires missed while the service was down.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MisfirePolicy {
    /// Missed fires are reported (`schedule:missed`) and not run.
    #[default]
    Skip,
    /// The latest missed fire runs once; older ones are reported missed.
    RunOnce,
}

impl MisfirePolicy {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            MisfirePolicy::Skip => "skip",
            MisfirePolicy::RunOnce => "run_once",
        }
    }

    /// Parses the configuration spelling.
    pub fn parse(s: &str) -> Option<Self> {
        [MisfirePolicy::Skip, MisfirePolicy::RunOnce].into_iter().find(|p| p.as_str() == s)
    }
}

/// What happens to a fire while the schedule's previous job is still queued or running.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OverlapPolicy {
    /// The fire is reported missed.
    #[default]
    Skip,
    /// The fire waits until the previous job ends (at most one waits; later ones are missed).
    Queue,
    /// The fire runs alongside.
    Allow,
}

impl OverlapPolicy {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OverlapPolicy::Skip => "skip",
            OverlapPolicy::Queue => "queue",
            OverlapPolicy::Allow => "allow",
        }
    }

    /// Parses the configuration spelling.
    pub fn parse(s: &str) -> Option<Self> {
        [OverlapPolicy::Skip, OverlapPolicy::Queue, OverlapPolicy::Allow].into_iter().find(|p| p.as_str() == s)
    }
}

/// Which finished jobs of a pipeline are kept; a job past either limit is pruned with its files.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicy {
    /// Days after finishing (fractions allowed).
    pub max_age_days: Option<f64>,
    /// The newest finished jobs kept.
    pub max_jobs: Option<u32>,
}

fn default_max_concurrent() -> usize {
    5
}
fn default_max_queued() -> usize {
    10_000
}
fn default_timeout_secs() -> u64 {
    300
}
fn default_memory_mb() -> u64 {
    256
}
fn default_true() -> bool {
    true
}
fn default_max_open_files() -> usize {
    256
}
fn default_output_quota_mb() -> u64 {
    1024
}
fn default_output_quota_files() -> u64 {
    10_000
}

impl PipelineConfig {
    /// A pipeline definition with the defaults for everything but the component.
    pub fn new(component: PathBuf) -> Self {
        Self {
            component,
            max_concurrent: default_max_concurrent(),
            max_queued: default_max_queued(),
            timeout_secs: default_timeout_secs(),
            memory_mb: default_memory_mb(),
            roots: Vec::new(),
            allow_write: true,
            git_workflow: false,
            settings: toml::Table::new(),
            enabled: true,
            max_open_files: default_max_open_files(),
            output_quota_mb: default_output_quota_mb(),
            output_quota_files: default_output_quota_files(),
            retention: None,
            run_on_startup: false,
            schedules: Vec::new(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        let mut pipelines = BTreeMap::new();
        let roots = default_roots();
        for id in BUILTIN_PIPELINES {
            let file = format!("{}.wasm", id.replace('-', "_"));
            let mut p = PipelineConfig::new(Path::new(BUILT_WORKERS_DIR).join(file));
            p.roots = roots.clone();
            p.git_workflow = GIT_WORKFLOW_DEFAULT_ON.contains(&id);
            pipelines.insert(id.to_string(), p);
        }
        Self {
            server: ServerConfig::default(),
            runtime: RuntimeConfig::default(),
            git: GitConfig::default(),
            notify: notify::NotifyConfig::default(),
            pipelines,
            inventories: BTreeMap::new(),
        }
    }
}

/// `$XDG_DATA_HOME/alephauto`, else `~/.local/share/alephauto`, else `data` beside the config:
/// outside the working folder, which is often a checkout under the granted `~/code`.
fn default_data_dir() -> PathBuf {
    let xdg = std::env::var_os("XDG_DATA_HOME").map(PathBuf::from).filter(|p| p.is_absolute());
    let home = || std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local").join("share"));
    xdg.or_else(home).map(|d| d.join("alephauto")).unwrap_or_else(|| PathBuf::from("data"))
}

/// `~/code`, where the original tool found repositories. Never the whole home folder (it
/// holds SSH keys, credentials and, often, this runtime's own data) nor the temp folder.
fn default_roots() -> Vec<PathBuf> {
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join("code")).into_iter().collect()
}

/// Something of the runtime's own that no pipeline root may overlap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protected {
    /// What it is, for messages (`the data folder (runtime.data_dir)`).
    pub what: String,
    /// Its path, as configured (absolute once the configuration is resolved).
    pub path: PathBuf,
    /// A file (only a root containing it overlaps) rather than a folder.
    pub is_file: bool,
}

/// The file holding the cache's key: `<cache_dir>.key`, beside the cache folder and never in
/// it, so whoever can write entries cannot also read the key.
pub fn cache_key_path(cache_dir: &Path) -> Result<PathBuf> {
    let Some(name) = cache_dir.file_name() else {
        bail!("the cache folder {} has no name to derive its key file from", cache_dir.display());
    };
    let mut file = name.to_os_string();
    file.push(".key");
    Ok(cache_dir.with_file_name(file))
}

/// Canonicalises the longest existing prefix of `path` and appends the rest, so folders
/// created later (the data folder on first start) compare like existing ones; relative
/// paths are taken from the working folder.
pub fn canonical_lenient(path: &Path) -> PathBuf {
    let abs =
        if path.is_absolute() { path.to_path_buf() } else { std::env::current_dir().unwrap_or_default().join(path) };
    if let Ok(c) = std::fs::canonicalize(&abs) {
        return c;
    }
    let parts: Vec<_> = abs.components().collect();
    for k in (1..parts.len()).rev() {
        let prefix: PathBuf = parts[..k].iter().collect();
        if let Ok(mut out) = std::fs::canonicalize(&prefix) {
            for part in &parts[k..] {
                match part {
                    std::path::Component::ParentDir => {
                        out.pop();
                    }
                    std::path::Component::CurDir => {}
                    other => out.push(other),
                }
            }
            return out;
        }
    }
    abs
}

/// Replaces a leading `~` with the home folder.
pub fn expand_home(path: &Path) -> PathBuf {
    let Ok(rest) = path.strip_prefix("~") else { return path.to_path_buf() };
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(rest),
        None => path.to_path_buf(),
    }
}

impl Config {
    /// Parses and validates a TOML document; `base` resolves relative paths.
    pub fn from_toml(text: &str, base: &Path) -> Result<Self> {
        Self::parse(text, base, None)
    }

    fn parse(text: &str, base: &Path, file: Option<&Path>) -> Result<Self> {
        let mut config: Config = toml::from_str(text).context("invalid configuration TOML")?;
        config.resolve_paths(base);
        // A guest that can read the file learns the secrets in it: refused when it holds any.
        // Without secrets it is only warned about (a checkout under `~/code` holding
        // `alephauto.toml` is the usual set-up), see SECURITY.md.
        let mut extra = Vec::new();
        if let Some(file) = file {
            let holds_secret = config.server.api_key.is_some() || config.git.forge_token.is_some();
            let place = Protected { what: "the configuration file".into(), path: file.to_path_buf(), is_file: true };
            if holds_secret {
                extra.push(place);
            } else {
                for problem in config.overlap_problems(std::slice::from_ref(&place)) {
                    tracing::warn!(
                        "{problem}; keep secrets in ALEPHAUTO_API_KEY / ALEPHAUTO_FORGE_TOKEN, not in this file"
                    );
                }
            }
        }
        config.validate_with(&extra)?;
        Ok(config)
    }

    /// Loads `path`, writing the built-in default there first when it does not exist.
    pub fn load_or_init(path: &Path) -> Result<Self> {
        if !path.exists() {
            let text = toml::to_string_pretty(&Config::default()).context("serialising default config")?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            }
            std::fs::write(path, text).with_context(|| format!("writing default config to {}", path.display()))?;
            tracing::info!(path = %path.display(), "wrote default configuration");
        }
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::parse(&text, &base, Some(path)).with_context(|| format!("in {}", path.display()))
    }

    /// The SQLite file, when the database is one (not `postgres://`): `runtime.database_url`
    /// or `<data_dir>/alephauto.db`.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        match &self.runtime.database_url {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => None,
            Some(file) => Some(PathBuf::from(file)),
            None => Some(self.runtime.data_dir.join("alephauto.db")),
        }
    }

    /// The cache folder: `runtime.cache_dir` or `<data_dir>/cache`.
    pub fn cache_dir(&self) -> PathBuf {
        self.runtime.cache_dir.clone().unwrap_or_else(|| self.runtime.data_dir.join("cache"))
    }

    /// Everything of the runtime's own that guests must never reach: the data folder (the
    /// database, its WAL, the API key, every job's output folder), the compiled-code cache
    /// (native code the host loads) and its key, and the SQLite file's folder.
    pub fn protected_paths(&self) -> Vec<Protected> {
        let data = &self.runtime.data_dir;
        let cache = self.cache_dir();
        let mut out = vec![
            Protected { what: "the data folder (runtime.data_dir)".into(), path: data.clone(), is_file: false },
            Protected { what: "the job outputs folder".into(), path: data.join("outputs"), is_file: false },
            Protected {
                what: "the compiled-code cache (runtime.cache_dir)".into(),
                path: cache.clone(),
                is_file: false,
            },
        ];
        if let Ok(key) = cache_key_path(&cache) {
            out.push(Protected { what: "the compiled-code cache key".into(), path: key, is_file: true });
        }
        if let Some(folder) = self.sqlite_path().as_deref().and_then(Path::parent) {
            let folder = if folder.as_os_str().is_empty() { Path::new(".") } else { folder };
            out.push(Protected {
                what: "the SQLite database's folder".into(),
                path: folder.to_path_buf(),
                is_file: false,
            });
        }
        out
    }

    /// Every root that overlaps something in `protected` (contains it, or lies inside a
    /// protected folder), one message per root naming the pipeline, the root and the place.
    fn overlap_problems(&self, protected: &[Protected]) -> Vec<String> {
        let places: Vec<(&Protected, PathBuf)> = protected.iter().map(|p| (p, canonical_lenient(&p.path))).collect();
        let mut problems = Vec::new();
        for (id, p) in &self.pipelines {
            for root in &p.roots {
                let canonical = canonical_lenient(root);
                let hit = places.iter().find_map(|(place, path)| {
                    if path.starts_with(&canonical) {
                        Some(format!("contains {} {}", place.what, path.display()))
                    } else if !place.is_file && canonical.starts_with(path) {
                        Some(format!("lies inside {} {}", place.what, path.display()))
                    } else {
                        None
                    }
                });
                if let Some(hit) = hit {
                    problems.push(format!(
                        "pipelines.{id}.roots: {} {hit}; guests must never reach it (narrow the root, or move the data \
                         folder, cache or database out of every root)",
                        root.display()
                    ));
                }
            }
        }
        problems
    }

    /// Refuses a configuration in which a pipeline root overlaps the runtime's own files
    /// (`protected_paths`; call again once `database_url` holds the `--db` choice).
    pub fn check_isolation(&self) -> Result<()> {
        let problems = self.overlap_problems(&self.protected_paths());
        if problems.is_empty() { Ok(()) } else { bail!("invalid configuration:\n  - {}", problems.join("\n  - ")) }
    }

    fn resolve_paths(&mut self, base: &Path) {
        let abs = |p: &Path| {
            let p = expand_home(p);
            if p.is_absolute() { p } else { base.join(p) }
        };
        self.runtime.data_dir = abs(&self.runtime.data_dir);
        self.runtime.cache_dir = self.runtime.cache_dir.as_deref().map(abs);
        for p in self.pipelines.values_mut() {
            p.component = abs(&p.component);
            p.roots = p.roots.iter().map(|r| abs(r)).collect();
        }
        for inv in self.inventories.values_mut() {
            inv.resolve_paths(abs);
        }
    }

    /// Checks every setting and reports all problems at once.
    pub fn validate(&self) -> Result<()> {
        self.validate_with(&[])
    }

    /// `validate`, with more places no root may overlap.
    fn validate_with(&self, extra: &[Protected]) -> Result<()> {
        let mut protected = self.protected_paths();
        protected.extend_from_slice(extra);
        let mut problems = self.overlap_problems(&protected);
        for (id, p) in &self.pipelines {
            if !is_valid_pipeline_id(id) {
                problems.push(format!("pipeline id {id:?} must match [a-z0-9][a-z0-9-]{{0,62}}"));
            }
            if let Some(r) = &p.retention
                && r.max_age_days.is_some_and(|d| !(d.is_finite() && d > 0.0))
            {
                problems.push(format!("pipelines.{id}.retention.max_age_days must be a positive number of days"));
            }
            if p.max_concurrent == 0 {
                problems.push(format!("pipelines.{id}.max_concurrent must be at least 1"));
            }
            if p.timeout_secs == 0 {
                problems.push(format!("pipelines.{id}.timeout_secs must be at least 1"));
            }
            if p.memory_mb == 0 || p.memory_mb > 4096 {
                problems.push(format!("pipelines.{id}.memory_mb must be in 1..=4096"));
            }
        }
        for (name, inv) in &self.inventories {
            if !inventory::is_valid_name(name) {
                problems.push(format!("inventory name {name:?} must match [a-z0-9][a-z0-9-]{{0,62}}"));
            }
            problems.extend(inv.problems(&format!("inventories.{name}")));
        }
        for id in &self.runtime.warm_up {
            if !self.pipelines.contains_key(id) {
                problems.push(format!("runtime.warm_up names unknown pipeline {id:?}"));
            }
        }
        if let Some(key) = self.server.api_key.as_deref().filter(|k| !k.is_empty())
            && !is_valid_api_key(key)
        {
            problems.push("server.api_key may hold only printable ASCII without spaces (it travels in headers)".into());
        }
        if self.server.header_read_timeout_secs == 0 || self.server.request_timeout_secs == 0 {
            problems.push("server.header_read_timeout_secs and server.request_timeout_secs must be at least 1".into());
        }
        if self.server.ws_idle_timeout_secs < 3 {
            problems.push("server.ws_idle_timeout_secs must be at least 3".into());
        }
        if !(1024..=512 * 1024 * 1024).contains(&self.server.max_component_bytes) {
            problems.push("server.max_component_bytes must be in 1024..=536870912".into());
        }
        if self.server.rate_limit.requests > 0 && self.server.rate_limit.window_secs == 0 {
            problems.push("server.rate_limit.window_secs must be at least 1".into());
        }
        if self.runtime.max_attempts == 0 {
            problems.push("runtime.max_attempts must be at least 1".into());
        }
        let ids: Vec<&str> = self.pipelines.keys().map(String::as_str).collect();
        problems.extend(self.notify.problems(&ids));
        if problems.is_empty() { Ok(()) } else { bail!("invalid configuration:\n  - {}", problems.join("\n  - ")) }
    }
}

/// Pipeline ids are URL path segments and job-id prefixes.
pub fn is_valid_pipeline_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_round_trips_through_toml() {
        let config = Config::default();
        let text = toml::to_string_pretty(&config).unwrap();
        let back = Config::from_toml(&text, Path::new("/")).unwrap();
        assert_eq!(back.pipelines.len(), 8);
        assert!(back.pipelines["schema-enhancement"].git_workflow);
    }

    #[test]
    fn relative_paths_resolve_against_the_config_folder() {
        let text = "[pipelines.x]\ncomponent = \"w/x.wasm\"\nroots = [\"repos\"]\n";
        let c = Config::from_toml(text, Path::new("/etc/aa")).unwrap();
        assert_eq!(c.pipelines["x"].component, PathBuf::from("/etc/aa/w/x.wasm"));
        assert_eq!(c.pipelines["x"].roots, vec![PathBuf::from("/etc/aa/repos")]);
    }

    #[test]
    fn all_problems_are_reported_at_once() {
        let text = "[runtime]\nmax_attempts = 0\n[pipelines.Bad_Id]\ncomponent = \"x\"\nmax_concurrent = 0\n";
        let err = format!("{:#}", Config::from_toml(text, Path::new("/")).unwrap_err());
        assert!(err.contains("Bad_Id") && err.contains("max_concurrent") && err.contains("max_attempts"), "{err}");
    }

    #[test]
    fn the_default_data_folder_is_outside_the_default_roots() {
        let c = Config::default();
        if std::env::var_os("HOME").is_some() {
            assert!(c.runtime.data_dir.is_absolute(), "{}", c.runtime.data_dir.display());
        }
        c.check_isolation().unwrap();
    }

    #[test]
    fn default_roots_are_narrow() {
        let roots = &Config::default().pipelines["repomix"].roots;
        if let Some(home) = std::env::var_os("HOME") {
            assert_eq!(roots, &vec![PathBuf::from(home).join("code")]);
        }
        assert!(!roots.contains(&std::env::temp_dir()));
    }

    /// A config with one pipeline granted `roots` and `runtime` lines, loaded from `dir`.
    fn load(dir: &Path, runtime: &str, roots: &[&Path]) -> Result<Config> {
        let roots: Vec<String> = roots.iter().map(|r| format!("{:?}", r.display().to_string())).collect();
        let text = format!(
            "[runtime]\n{runtime}\n[pipelines.probe]\ncomponent = \"x.wasm\"\nroots = [{}]\n",
            roots.join(", ")
        );
        let path = dir.join("conf").join("alephauto.toml");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        Config::load_or_init(&path)
    }

    fn refusal(result: Result<Config>) -> String {
        format!("{:#}", result.expect_err("the configuration must be refused"))
    }

    #[test]
    fn a_root_overlapping_the_data_folder_is_refused_naming_pipeline_root_and_folder() {
        let t = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(t.path()).unwrap();
        let state = base.join("state");
        let data = format!("data_dir = {:?}", state.join("data").display().to_string());
        // Containing it (the data folder does not exist yet).
        let err = refusal(load(&base, &data, &[&state]));
        assert!(err.contains("pipelines.probe.roots") && err.contains(&state.display().to_string()), "{err}");
        assert!(
            err.contains("contains the data folder") && err.contains(&state.join("data").display().to_string()),
            "{err}"
        );
        // Lying inside it: another job's outputs.
        let err = refusal(load(&base, &data, &[&state.join("data/outputs/job-1")]));
        assert!(err.contains("lies inside the data folder"), "{err}");
        // Through a symbolic link to the folder that holds it.
        std::fs::create_dir_all(&state).unwrap();
        std::os::unix::fs::symlink(&state, base.join("innocent")).unwrap();
        let err = refusal(load(&base, &data, &[&base.join("innocent")]));
        assert!(err.contains("contains the data folder"), "{err}");
        // A sibling is fine.
        std::fs::create_dir_all(base.join("repos")).unwrap();
        load(&base, &data, &[&base.join("repos")]).unwrap();
    }

    #[test]
    fn a_root_overlapping_the_cache_its_key_the_database_or_the_config_file_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(t.path()).unwrap();
        let data = format!("data_dir = {:?}", base.join("data").display().to_string());
        let cache = format!("{data}\ncache_dir = {:?}", base.join("shared/cache").display().to_string());
        let err = refusal(load(&base, &cache, &[&base.join("shared")]));
        assert!(err.contains("contains the compiled-code cache"), "{err}");
        let err = refusal(load(&base, &cache, &[&base.join("shared/cache/sub")]));
        assert!(err.contains("lies inside the compiled-code cache"), "{err}");

        let db = format!("{data}\ndatabase_url = {:?}", base.join("db/jobs.db").display().to_string());
        let err = refusal(load(&base, &db, &[&base.join("db")]));
        assert!(err.contains("the SQLite database's folder"), "{err}");
        let pg = format!("{data}\ndatabase_url = \"postgres://u@127.0.0.1/x\"");
        std::fs::create_dir_all(base.join("db")).unwrap();
        load(&base, &pg, &[&base.join("db")]).unwrap();

        // The config file, once it holds a secret; without one it is only warned about.
        std::fs::create_dir_all(base.join("conf")).unwrap();
        load(&base, &data, &[&base.join("conf")]).unwrap();
        let secret = format!("{data}\n[server]\napi_key = \"s3cret\"");
        let err = refusal(load(&base, &secret, &[&base.join("conf")]));
        assert!(err.contains("contains the configuration file"), "{err}");
    }

    #[test]
    fn isolation_is_checked_again_for_a_database_chosen_later() {
        let t = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(t.path()).unwrap();
        let mut c =
            load(&base, &format!("data_dir = {:?}", base.join("data").display().to_string()), &[&base.join("repos")])
                .unwrap();
        c.check_isolation().unwrap();
        c.runtime.database_url = Some(base.join("repos/sneaky.db").display().to_string());
        let err = format!("{:#}", c.check_isolation().unwrap_err());
        assert!(err.contains("the SQLite database's folder"), "{err}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(Config::from_toml("[server]\nbindd = \"x\"\n", Path::new("/")).is_err());
    }
}
