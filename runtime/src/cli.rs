//! The command line (clap): `serve` runs the service; the other commands talk to a
//! running server over HTTP and the WebSocket feed.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use serde_json::{Map, Value, json};

use crate::client::Client;
use crate::config::Config;
use crate::server::{self, ServerOptions};

/// AlephAuto: run automation pipelines as sandboxed WebAssembly workers.
#[derive(Debug, Parser)]
#[command(name = "alephauto", version, about)]
pub struct Cli {
    /// Server URL for client commands.
    #[arg(long, global = true, env = "ALEPHAUTO_URL", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// API key for client commands.
    #[arg(long, global = true, env = "ALEPHAUTO_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
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
    },
    /// List pipelines.
    Pipelines,
    /// List jobs.
    Jobs {
        /// Only this pipeline.
        #[arg(long)]
        pipeline: Option<String>,
        /// Only this status.
        #[arg(long)]
        status: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
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
    let mut params = match json_text {
        Some(text) => match serde_json::from_str::<Value>(text).context("--params-json is not valid JSON")? {
            Value::Object(m) => m,
            _ => bail!("--params-json must be a JSON object"),
        },
        None => Map::new(),
    };
    for pair in pairs {
        let Some((k, v)) = pair.split_once('=') else { bail!("--param {pair:?} must look like key=value") };
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
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    if let Command::Serve { config, db, bind } = cli.command {
        let config = Config::load_or_init(&config)?;
        let mut opts = ServerOptions::new(config);
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
    let client = Client::new(&cli.server, cli.api_key)?;
    match cli.command {
        Command::Serve { .. } | Command::NewWorker { .. } => unreachable!("handled above"),
        Command::Trigger { pipeline, params, params_json, wait } => {
            let params = build_params(&params, params_json.as_deref())?;
            trigger(&client, &pipeline, params, wait).await
        }
        Command::Pipelines => {
            let v = client.get("/api/pipelines").await?;
            for p in v["pipelines"].as_array().into_iter().flatten() {
                println!(
                    "{:<22} {:<9} queued {:<4} running {:<3} completed {:<5} failed {:<4} {}",
                    p["id"].as_str().unwrap_or("?"),
                    p["status"].as_str().unwrap_or("?"),
                    p["queued"], p["running"], p["completed"], p["failed"],
                    p["description"].as_str().unwrap_or("").chars().take(60).collect::<String>()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Jobs { pipeline, status, limit } => {
            let mut path = format!("/api/jobs?limit={limit}");
            if let Some(p) = pipeline {
                path.push_str(&format!("&pipelineId={p}"));
            }
            if let Some(s) = status {
                path.push_str(&format!("&status={s}"));
            }
            let v = client.get(&path).await?;
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
            Ok(ExitCode::SUCCESS)
        }
        Command::Job { id } => {
            let v = client.get(&format!("/api/jobs/{id}")).await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Logs { id, follow } => logs(&client, &id, follow).await,
        Command::Cancel { id } => {
            let v = client.post(&format!("/api/jobs/{id}/cancel"), json!({})).await?;
            println!("{} is {}", id, v["status"].as_str().unwrap_or("?"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Retry { id } => {
            let v = client.post(&format!("/api/jobs/{id}/retry"), json!({})).await?;
            println!("{}", v["jobId"].as_str().unwrap_or("?"));
            Ok(ExitCode::SUCCESS)
        }
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
        let v = client.get(&format!("/api/jobs/{id}/logs")).await?;
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
    let _ = write!(err, "\r[{}{}] {:>3}% {:<50}", "#".repeat(filled), "-".repeat(20 - filled), percent, message.chars().take(50).collect::<String>());
    let _ = err.flush();
}

async fn trigger(client: &Client, pipeline: &str, params: Value, wait: bool) -> Result<ExitCode> {
    // Subscribe first so no event of the new job can be missed.
    let mut feed = if wait { Some(client.subscribe_jobs().await?) } else { None };
    let v = client.post(&format!("/api/pipelines/{pipeline}/trigger"), json!({"parameters": params})).await?;
    let job_id = v["jobId"].as_str().unwrap_or_default().to_string();
    println!("{job_id}");
    let Some(feed) = feed.as_mut() else { return Ok(ExitCode::SUCCESS) };
    draw_bar(0, "queued");
    loop {
        let Some(event) = feed.next_event().await? else { bail!("the server closed the feed before {job_id} ended") };
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
    let job = client.get(&format!("/api/jobs/{job_id}")).await?;
    let status = job["status"].as_str().unwrap_or("");
    if status == "completed" {
        draw_bar(100, "completed");
        eprintln!();
        println!("{}", serde_json::to_string_pretty(&job["result"])?);
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!();
        eprintln!("job {job_id} {status}: {}", job["error"]["message"].as_str().unwrap_or("no message"));
        Ok(ExitCode::FAILURE)
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
    }
}
