//! The command line (clap): `serve` runs the service; the other commands talk to a
//! running server over HTTP and the WebSocket feed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use serde_json::{Map, Value, json};

mod schedules;

use crate::client::{Client, ClientError};
use crate::config::Config;
use crate::server::{self, ServerOptions};

mod runs;

pub use runs::{InventoriesCommand, RunsCommand};
pub mod webhooks;

/// The exit codes of client commands (documented in `--help` and the README).
pub mod exit {
    /// Done.
    pub const SUCCESS: u8 = 0;
    /// The server refused the request (its message and code are printed), or a local error.
    pub const ERROR: u8 = 1;
    /// Bad command line: unknown flag, missing argument, malformed `--param` / `--server`.
    pub const USAGE: u8 = 2;
    /// No answer from the server: refused or reset connection, timeout, feed dropped.
    pub const UNREACHABLE: u8 = 3;
    /// `trigger --wait`: the job ended failed or cancelled.
    pub const JOB_FAILED: u8 = 4;
}

const EXIT_CODES_HELP: &str = "\
Exit codes of client commands:
  0  success
  1  the server refused the request (its message is printed), or another error
  2  usage: bad flags or arguments
  3  the server is unreachable (connection refused, timeout, feed dropped)
  4  trigger --wait: the job failed or was cancelled

The API key (--api-key, ALEPHAUTO_API_KEY, else <data_dir>/api-key of --config) is sent
only in the X-API-Key header, never in a URL.";

/// A command-line mistake (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// AlephAuto: run automation pipelines as sandboxed WebAssembly workers.
#[derive(Debug, Parser)]
#[command(name = "alephauto", version, about, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    /// Server URL for client commands.
    #[arg(long, global = true, env = "ALEPHAUTO_URL", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// API key for client commands (default: the `api-key` file in the data folder of --config).
    #[arg(long, global = true, env = "ALEPHAUTO_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Client commands: configuration whose data folder holds the server's `api-key` file
    /// (`serve` takes its own `--config` after the subcommand).
    #[arg(long = "config", env = "ALEPHAUTO_CONFIG", default_value = "alephauto.toml")]
    pub client_config: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service (HTTP API, WebSocket feed, queue and workers).
    Serve {
        /// Configuration file; written with defaults when absent.
        #[arg(long, default_value = "alephauto.toml")]
        config: PathBuf,
        /// SQLite database file (default: <data_dir>/alephauto.db), or a postgres:// URL
        /// to join a cluster of nodes sharing one PostgreSQL database.
        #[arg(long)]
        db: Option<String>,
        /// Listen address, e.g. 127.0.0.1:8080.
        #[arg(long)]
        bind: Option<String>,
        // The key the server enforces is the global `--api-key` (or ALEPHAUTO_API_KEY);
        // without one, `server.api_key`, else a key generated into <data_dir>/api-key.
    },
    /// Trigger a pipeline.
    Trigger {
        /// Pipeline id.
        pipeline: String,
        /// A parameter as key=value (value parsed as JSON when it is JSON, else a string).
        #[arg(long = "param", short = 'p')]
        params: Vec<String>,
        /// All parameters as one JSON object.
        #[arg(long)]
        params_json: Option<String>,
        /// Follow the job live and exit non-zero unless it completes.
        #[arg(long)]
        wait: bool,
        /// Run on this registered worker version instead of the active one (see `versions`).
        #[arg(long, value_name = "VERSION")]
        pin: Option<String>,
    },
    /// Deploy a component to a running pipeline (hot swap; the old version keeps serving if
    /// the new one is refused).
    Deploy {
        /// Pipeline id.
        pipeline: String,
        /// The component (.wasm).
        file: PathBuf,
    },
    /// List a pipeline's registered worker versions.
    Versions {
        /// Pipeline id.
        pipeline: String,
    },
    /// Make an earlier worker version active again.
    Rollback {
        /// Pipeline id.
        pipeline: String,
        /// The version to go back to (default: the one registered before the active one).
        #[arg(long, value_name = "VERSION")]
        to: Option<String>,
    },
    /// Rebuild a Rust worker crate on every edit and deploy it into the running server.
    Dev {
        /// The worker crate's folder.
        dir: PathBuf,
        /// Pipeline to deploy to (default: the crate's package name).
        #[arg(long)]
        pipeline: Option<String>,
        /// Build with --release.
        #[arg(long)]
        release: bool,
        /// Build and deploy once, then exit.
        #[arg(long)]
        once: bool,
    },
    /// List pipelines.
    Pipelines,
    /// List jobs, newest first.
    Jobs {
        /// Only this pipeline.
        #[arg(long)]
        pipeline: Option<String>,
        /// Only these statuses (comma-separated).
        #[arg(long)]
        status: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Start after this position: the `next page: --cursor …` a previous listing printed.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show one job.
    Job {
        /// Job id.
        id: String,
    },
    /// Show a job's log.
    Logs {
        /// Job id.
        id: String,
        /// Keep printing until the job ends.
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// Cancel a queued or running job.
    Cancel {
        /// Job id.
        id: String,
    },
    /// Retry a failed or cancelled job.
    Retry {
        /// Job id.
        id: String,
    },
    /// Fan-out runs over inventories: list, show, start, cancel.
    Runs {
        /// What to do with runs.
        #[command(subcommand)]
        command: RunsCommand,
    },
    /// Inventories of targets: list, show.
    Inventories {
        /// What to do with inventories.
        #[command(subcommand)]
        command: InventoriesCommand,
    },
    /// Webhooks and their deliveries.
    Webhooks {
        /// What to do.
        #[command(subcommand)]
        action: webhooks::WebhooksCommand,
    },
    /// Manage cron schedules: list, show, create, delete, pause, resume, run.
    Schedules {
        /// What to do.
        #[command(subcommand)]
        action: schedules::SchedulesCommand,
    },
    /// Scaffold a hello-world pipeline worker that builds and runs as it is.
    NewWorker {
        /// Pipeline id, e.g. `my-worker`.
        name: String,
        /// Language of the worker.
        #[arg(long, value_enum, default_value = "rust")]
        lang: crate::scaffold::Lang,
        /// Folder to create (default `./NAME`); must not exist or be empty.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// Parses `key=value` pairs and an optional JSON object into parameters.
pub fn build_params(pairs: &[String], json_text: Option<&str>) -> Result<Value> {
    let usage = |m: String| anyhow::Error::new(UsageError(m));
    let mut params = match json_text {
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return Err(usage("--params-json must be a JSON object".into())),
            Err(e) => return Err(usage(format!("--params-json is not valid JSON: {e}"))),
        },
        None => Map::new(),
    };
    for pair in pairs {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(usage(format!("--param {pair:?} must look like key=value")));
        };
        let value = serde_json::from_str::<Value>(v).unwrap_or_else(|_| Value::String(v.to_string()));
        params.insert(k.to_string(), value);
    }
    Ok(Value::Object(params))
}

/// Runs the CLI and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit_code_of(&e))
        }
    }
}

/// The exit code an error maps to.
pub fn exit_code_of(e: &anyhow::Error) -> u8 {
    if e.chain().any(|c| c.is::<UsageError>()) {
        return exit::USAGE;
    }
    match e.chain().find_map(|c| c.downcast_ref::<ClientError>()) {
        Some(ClientError::Unreachable { .. }) => exit::UNREACHABLE,
        _ => exit::ERROR,
    }
}

/// The API key: given (flag or environment), else the `api-key` file the server wrote into
/// the data folder of `config` (relative to the config's folder), or the server's default
/// data folder when the config names none or does not exist.
pub fn resolve_api_key(given: Option<String>, config: &Path) -> Result<Option<String>> {
    if let Some(key) = given.filter(|k| !k.trim().is_empty()) {
        return Ok(Some(key));
    }
    let base = config.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let data_dir = match std::fs::read_to_string(config) {
        Ok(text) => {
            let doc: toml::Table = toml::from_str(&text).with_context(|| format!("reading {}", config.display()))?;
            match doc.get("runtime").and_then(|r| r.get("data_dir")).and_then(toml::Value::as_str) {
                Some(dir) => crate::config::expand_home(Path::new(dir)),
                None => crate::config::RuntimeConfig::default().data_dir,
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => crate::config::RuntimeConfig::default().data_dir,
        Err(e) => return Err(e).with_context(|| format!("reading {}", config.display())),
    };
    let file = base.join(data_dir).join(crate::config::API_KEY_FILE);
    match std::fs::read_to_string(&file) {
        Ok(key) => Ok(Some(key.trim().to_string()).filter(|k| !k.is_empty())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading the API key from {}", file.display())),
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    if let Command::Serve { config, db, bind } = cli.command {
        let loaded = Config::load_or_init(&config)?;
        // Kept for the life of the server: dropping it flushes queued reports.
        let _sentry = crate::telemetry::init_sentry(loaded.runtime.sentry_dsn.as_deref())?;
        let mut opts = ServerOptions::new(loaded);
        opts.config_path = Some(config);
        opts.db = db;
        opts.bind = bind;
        opts.api_key = cli.api_key;
        let running = server::start(opts, server::shutdown_signal()).await?;
        println!("AlephAuto listening on http://{}", running.addr);
        println!("Dashboard: {}", running.dashboard_url);
        let _ = std::io::stdout().flush();
        running.wait().await?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::NewWorker { name, lang, dir } = cli.command {
        let s = crate::scaffold::new_worker(&name, lang, dir.as_deref())?;
        println!("Created {} ({lang:?} worker `{name}`): {}\n", s.dir.display(), s.files.join(", "));
        println!("{}", crate::scaffold::next_steps(&name, &s));
        return Ok(ExitCode::SUCCESS);
    }
    let api_key = resolve_api_key(cli.api_key, &cli.client_config)?;
    let client = Client::new(&cli.server, api_key).map_err(|e| UsageError(format!("{e:#}")))?;
    match cli.command {
        Command::Serve { .. } | Command::NewWorker { .. } => unreachable!("handled above"),
        Command::Trigger { pipeline, params, params_json, wait, pin } => {
            let mut params = build_params(&params, params_json.as_deref())?;
            absolutize_paths(&client, &pipeline, &mut params).await?;
            trigger(&client, &pipeline, params, pin, wait).await
        }
        Command::Deploy { pipeline, file } => {
            let wasm = tokio::fs::read(&file).await.with_context(|| format!("reading {}", file.display()))?;
            let v = client.put_wasm(&["api", "pipelines", &pipeline, "component"], wasm).await?;
            println!(
                "{pipeline}: version {} active (sha256 {})",
                v["version"].as_str().unwrap_or("?"),
                v["digest"].as_str().unwrap_or("?")
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Versions { pipeline } => {
            let v = client.get(&["api", "pipelines", &pipeline, "versions"], &[]).await?;
            println!("{:<2} {:<16} {:<8} {:<25} SHA-256", "", "VERSION", "SOURCE", "REGISTERED");
            for r in v["versions"].as_array().into_iter().flatten() {
                println!(
                    "{:<2} {:<16} {:<8} {:<25} {}",
                    if r["active"] == Value::Bool(true) { "*" } else { "" },
                    r["version"].as_str().unwrap_or("?"),
                    r["source"].as_str().unwrap_or("?"),
                    r["registeredAt"].as_str().unwrap_or(""),
                    r["digest"].as_str().unwrap_or("?")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Rollback { pipeline, to } => {
            let body = match to {
                Some(v) => json!({ "version": v }),
                None => json!({}),
            };
            let v = client.post(&["api", "pipelines", &pipeline, "rollback"], body).await?;
            println!("{pipeline}: version {} active", v["version"].as_str().unwrap_or("?"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Dev { dir, pipeline, release, once } => {
            let opts = crate::dev::DevOptions {
                dir,
                pipeline,
                release,
                poll: std::time::Duration::from_millis(300),
                debounce: std::time::Duration::from_millis(300),
                once,
            };
            crate::dev::run(&client, opts).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Pipelines => {
            let v = client.get(&["api", "pipelines"], &[]).await?;
            for p in v["pipelines"].as_array().into_iter().flatten() {
                println!(
                    "{:<22} {:<9} queued {:<4} running {:<3} completed {:<5} failed {:<4} {}",
                    p["id"].as_str().unwrap_or("?"),
                    p["status"].as_str().unwrap_or("?"),
                    p["queued"],
                    p["running"],
                    p["completed"],
                    p["failed"],
                    p["description"].as_str().unwrap_or("").chars().take(60).collect::<String>()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Jobs { pipeline, status, limit, cursor } => {
            let limit = limit.to_string();
            let mut query = vec![("limit", limit.as_str())];
            query.extend(pipeline.as_deref().map(|p| ("pipelineId", p)));
            query.extend(status.as_deref().map(|s| ("status", s)));
            query.extend(cursor.as_deref().map(|c| ("cursor", c)));
            let v = client.get(&["api", "jobs"], &query).await?;
            println!("{:<48} {:<10} {:<8} {:<25}", "JOB", "STATUS", "ATTEMPT", "CREATED");
            for j in v["jobs"].as_array().into_iter().flatten() {
                println!(
                    "{:<48} {:<10} {:<8} {:<25}",
                    j["id"].as_str().unwrap_or("?"),
                    j["status"].as_str().unwrap_or("?"),
                    j["attempt"],
                    j["createdAt"].as_str().unwrap_or("")
                );
            }
            println!("{} of {} jobs", v["jobs"].as_array().map_or(0, Vec::len), v["total"]);
            if let Some(next) = v["nextCursor"].as_str() {
                println!("next page: --cursor {next}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Job { id } => {
            let v = client.get(&["api", "jobs", &id], &[]).await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Logs { id, follow } => logs(&client, &id, follow).await,
        Command::Cancel { id } => {
            let v = client.post(&["api", "jobs", &id, "cancel"], json!({})).await?;
            println!("{} is {}", id, v["status"].as_str().unwrap_or("?"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Retry { id } => {
            let v = client.post(&["api", "jobs", &id, "retry"], json!({})).await?;
            println!("{}", v["jobId"].as_str().unwrap_or("?"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Runs { command } => runs::runs(&client, command).await,
        Command::Inventories { command } => runs::inventories(&client, command).await,
        Command::Webhooks { action } => webhooks::run(&client, action).await,
        Command::Schedules { action } => schedules::run(&client, action).await,
    }
}

fn print_log_line(l: &Value) {
    println!(
        "{} {:<5} [{}] {}",
        l["timestamp"].as_str().unwrap_or(""),
        l["level"].as_str().unwrap_or(""),
        l["stream"].as_str().unwrap_or(""),
        l["message"].as_str().unwrap_or("")
    );
}

async fn logs(client: &Client, id: &str, follow: bool) -> Result<ExitCode> {
    let mut shown = 0usize;
    loop {
        let v = client.get(&["api", "jobs", id, "logs"], &[]).await?;
        let lines = v["logs"].as_array().cloned().unwrap_or_default();
        for l in lines.iter().skip(shown) {
            print_log_line(l);
        }
        shown = lines.len();
        let status = v["status"].as_str().unwrap_or("");
        if !follow || matches!(status, "completed" | "failed" | "cancelled") {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

fn draw_bar(percent: u64, message: &str) {
    let filled = (percent.min(100) / 5) as usize;
    let mut err = std::io::stderr();
    let _ = write!(
        err,
        "\r[{}{}] {:>3}% {:<50}",
        "#".repeat(filled),
        "-".repeat(20 - filled),
        percent,
        message.chars().take(50).collect::<String>()
    );
    let _ = err.flush();
}

async fn trigger(client: &Client, pipeline: &str, params: Value, pin: Option<String>, wait: bool) -> Result<ExitCode> {
    // Subscribe first so no event of the new job can be missed.
    let mut feed = if wait { Some(client.subscribe_jobs().await?) } else { None };
    let mut body = json!({"parameters": params});
    if let Some(version) = pin {
        body["version"] = Value::String(version);
    }
    let v = client.post(&["api", "pipelines", pipeline, "trigger"], body).await?;
    let job_id = v["jobId"].as_str().unwrap_or_default().to_string();
    println!("{job_id}");
    let Some(feed) = feed.as_mut() else { return Ok(ExitCode::SUCCESS) };
    draw_bar(0, "queued");
    loop {
        let Some(event) = feed.next_event().await? else {
            return Err(ClientError::Unreachable {
                base: client.url(&[], &[]).to_string(),
                detail: format!("the server closed the feed before {job_id} ended"),
            }
            .into());
        };
        if event["jobId"].as_str() != Some(job_id.as_str()) {
            continue;
        }
        match event["type"].as_str().unwrap_or("") {
            "job:started" => draw_bar(0, "started"),
            "job:progress" => draw_bar(
                event["progress"]["percent"].as_u64().unwrap_or(0),
                event["progress"]["message"].as_str().unwrap_or(""),
            ),
            "job:completed" | "job:failed" | "job:cancelled" => break,
            _ => {}
        }
    }
    let job = client.get(&["api", "jobs", &job_id], &[]).await?;
    let status = job["status"].as_str().unwrap_or("");
    if status == "completed" {
        draw_bar(100, "completed");
        eprintln!();
        println!("{}", serde_json::to_string_pretty(&job["result"])?);
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!();
        eprintln!("job {job_id} {status}: {}", job["error"]["message"].as_str().unwrap_or("no message"));
        Ok(ExitCode::from(exit::JOB_FAILED))
    }
}

/// Makes relative path parameters (those the pipeline's schema marks `x-alephauto-path`)
/// absolute against this process's working folder: the server resolves nothing relative,
/// and "." means the folder the user typed the command in.
async fn absolutize_paths(client: &Client, pipeline: &str, params: &mut Value) -> Result<()> {
    if !has_relative_string(params) {
        return Ok(());
    }
    let listing = client.get(&["api", "pipelines"], &[]).await?;
    let schema = listing["pipelines"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["id"].as_str() == Some(pipeline))
        .map(|p| p["paramsSchema"].clone());
    // An unknown pipeline: the trigger's answer says so.
    let Some(schema) = schema.filter(Value::is_object) else { return Ok(()) };
    let cwd = std::env::current_dir().context("reading the working folder")?;
    absolutize(&schema, &schema, params, &cwd, 0);
    Ok(())
}

fn has_relative_string(v: &Value) -> bool {
    match v {
        Value::String(s) => !s.is_empty() && Path::new(s).is_relative(),
        Value::Array(items) => items.iter().any(has_relative_string),
        Value::Object(m) => m.values().any(has_relative_string),
        _ => false,
    }
}

/// Walks `value` along `schema` (following local `$ref`s, `allOf`/`anyOf`/`oneOf`,
/// `properties` and `items`) and joins `cwd` to every relative string at a path keyword.
fn absolutize(schema: &Value, root: &Value, value: &mut Value, cwd: &Path, depth: u32) {
    // Bounded: a recursive schema must not loop.
    if depth > 32 {
        return;
    }
    let schema = match schema.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix('#')) {
        Some(pointer) => root.pointer(pointer).unwrap_or(schema),
        None => schema,
    };
    if schema.get(crate::sandbox::grants::PATH_KEYWORD).is_some()
        && let Value::String(s) = value
        && !s.is_empty()
        && Path::new(s.as_str()).is_relative()
    {
        *s = cwd.join(&*s).display().to_string();
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        for sub in schema.get(key).and_then(Value::as_array).into_iter().flatten() {
            absolutize(sub, root, value, cwd, depth + 1);
        }
    }
    match value {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, v) in map.iter_mut() {
                    if let Some(sub) = props.get(k) {
                        absolutize(sub, root, v, cwd, depth + 1);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items") {
                for v in items {
                    absolutize(sub, root, v, cwd, depth + 1);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_from_pairs_and_json() {
        let p = build_params(&["dryRun=false".into(), "name=x y".into(), "n=3".into()], Some(r#"{"a":[1]}"#)).unwrap();
        assert_eq!(p, json!({"a": [1], "dryRun": false, "name": "x y", "n": 3}));
        assert!(build_params(&["nokey".into()], None).is_err());
        assert!(build_params(&[], Some("[1]")).is_err());
        assert_eq!(exit_code_of(&build_params(&["nokey".into()], None).unwrap_err()), exit::USAGE);
    }

    #[test]
    fn relative_path_parameters_join_the_working_folder() {
        let schema = json!({
            "type": "object",
            "properties": {
                "dir": {"type": "string", "x-alephauto-path": "read"},
                "name": {"type": "string"},
                "repos": {"type": "array", "items": {"$ref": "#/$defs/Repo"}},
                "maybe": {"anyOf": [{"$ref": "#/$defs/Repo"}, {"type": "null"}]}
            },
            "$defs": {"Repo": {"type": "object", "properties": {"path": {"type": "string", "x-alephauto-path": "write"}}}}
        });
        let mut params = json!({"dir": "src/../x", "name": "a/b", "repos": [{"path": "r1"}, {"path": "/abs"}], "maybe": {"path": "."}});
        absolutize(&schema, &schema, &mut params, Path::new("/home/u/w"), 0);
        assert_eq!(
            params,
            json!({"dir": "/home/u/w/src/../x", "name": "a/b",
            "repos": [{"path": "/home/u/w/r1"}, {"path": "/abs"}], "maybe": {"path": "/home/u/w/."}})
        );
    }

    #[test]
    fn the_api_key_comes_from_the_data_folder_of_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("alephauto.toml");
        assert_eq!(resolve_api_key(None, &config).unwrap(), None);
        std::fs::write(&config, "[runtime]\ndata_dir = \"state\"\n").unwrap();
        std::fs::create_dir(dir.path().join("state")).unwrap();
        std::fs::write(dir.path().join("state").join(crate::config::API_KEY_FILE), "k+/=\n").unwrap();
        assert_eq!(resolve_api_key(None, &config).unwrap().as_deref(), Some("k+/="));
        assert_eq!(resolve_api_key(Some("given".into()), &config).unwrap().as_deref(), Some("given"));
    }
}
