//! `alephauto runs list|show|start|cancel` and `alephauto inventories list|show`: thin
//! clients of `/api/runs` and `/api/inventories`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Subcommand;
use serde_json::{Value, json};

use super::{UsageError, build_params, exit};
use crate::client::Client;

/// `alephauto runs …`.
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List runs, newest first, with their progress.
    List {
        /// Only this pipeline's runs.
        #[arg(long)]
        pipeline: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Show a run and each target's job.
    Show {
        /// Run id.
        id: String,
    },
    /// Start a run: one job of PIPELINE per target of an inventory.
    Start {
        /// Pipeline id.
        pipeline: String,
        /// Inventory name.
        #[arg(long, short = 'i')]
        inventory: String,
        /// A shared parameter as key=value (JSON when it parses as JSON, else a string).
        #[arg(long = "param", short = 'p')]
        params: Vec<String>,
        /// All shared parameters as one JSON object.
        #[arg(long)]
        params_json: Option<String>,
        /// The parameter each target's path goes into (default: the pipeline's only path parameter).
        #[arg(long)]
        path_param: Option<String>,
        /// Wait until every job has ended; exit 4 unless all completed.
        #[arg(long)]
        wait: bool,
    },
    /// Cancel a run's queued and running jobs.
    Cancel {
        /// Run id.
        id: String,
    },
}

/// `alephauto inventories …`.
#[derive(Debug, Subcommand)]
pub enum InventoriesCommand {
    /// List inventories.
    List,
    /// Show an inventory's targets with their last scan and outcome.
    Show {
        /// Inventory name.
        name: String,
    },
}

fn print_run_line(r: &Value) {
    let c = &r["counts"];
    println!(
        "{:<48} {:<20} {:<10} {:>3}% {}/{} done (completed {}, failed {}, refused {}, cancelled {})",
        r["id"].as_str().unwrap_or("?"),
        r["inventory"].as_str().unwrap_or("?"),
        r["status"].as_str().unwrap_or("?"),
        r["percent"],
        r["total"].as_u64().unwrap_or(0) - c["queued"].as_u64().unwrap_or(0) - c["running"].as_u64().unwrap_or(0),
        r["total"],
        c["completed"],
        c["failed"],
        c["refused"],
        c["cancelled"],
    );
}

fn print_run(v: &Value) {
    print_run_line(&v["run"]);
    for t in v["targets"].as_array().into_iter().flatten() {
        let outcome = match (t["status"].as_str(), t["refused"].as_str()) {
            (Some(s), _) => s.to_string(),
            (None, Some(why)) => format!("refused: {why}"),
            (None, None) => "pruned".to_string(),
        };
        println!("  {:<60} {:<44} {}", t["path"].as_str().unwrap_or("?"), t["jobId"].as_str().unwrap_or("-"), outcome);
    }
}

/// Runs a `runs` subcommand.
pub async fn runs(client: &Client, cmd: RunsCommand) -> Result<ExitCode> {
    match cmd {
        RunsCommand::List { pipeline, limit } => {
            let limit = limit.to_string();
            let mut query = vec![("limit", limit.as_str())];
            query.extend(pipeline.as_deref().map(|p| ("pipelineId", p)));
            let v = client.get(&["api", "runs"], &query).await?;
            for r in v["runs"].as_array().into_iter().flatten() {
                print_run_line(r);
            }
            println!("{} of {} runs", v["runs"].as_array().map_or(0, Vec::len), v["total"]);
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::Show { id } => {
            print_run(&client.get(&["api", "runs", &id], &[]).await?);
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::Cancel { id } => {
            let v = client.post(&["api", "runs", &id, "cancel"], json!({})).await?;
            print_run(&v);
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::Start { pipeline, inventory, params, params_json, path_param, wait } => {
            let params = build_params(&params, params_json.as_deref())?;
            let mut body = json!({"inventory": inventory, "parameters": params});
            if let Some(p) = path_param {
                body["pathParameter"] = Value::String(p);
            }
            let v = client.post(&["api", "pipelines", &pipeline, "runs"], body).await?;
            let id = v["run"]["id"].as_str().ok_or_else(|| UsageError("the server answered no run id".into()))?;
            println!("{id}");
            if !wait {
                return Ok(ExitCode::SUCCESS);
            }
            wait_for(client, id).await
        }
    }
}

/// Polls the run until no job is queued or running; prints it and maps its state to an exit code.
async fn wait_for(client: &Client, id: &str) -> Result<ExitCode> {
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let v = client.get(&["api", "runs", id], &[]).await?;
        let state = v["run"]["status"].as_str().unwrap_or("?").to_string();
        let line = format!("{state} {}%", v["run"]["percent"]);
        if line != last {
            eprintln!("{id}: {line} ({}s)", started.elapsed().as_secs());
            last = line;
        }
        let c = &v["run"]["counts"];
        let active = c["queued"].as_u64().unwrap_or(0) + c["running"].as_u64().unwrap_or(0);
        if state != "starting" && active == 0 {
            print_run(&v);
            return Ok(if state == "completed" { ExitCode::SUCCESS } else { ExitCode::from(exit::JOB_FAILED) });
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Runs an `inventories` subcommand.
pub async fn inventories(client: &Client, cmd: InventoriesCommand) -> Result<ExitCode> {
    match cmd {
        InventoriesCommand::List => {
            let v = client.get(&["api", "inventories"], &[]).await?;
            for i in v["inventories"].as_array().into_iter().flatten() {
                let what = match i["discover"].as_object() {
                    Some(d) => format!(
                        "discover {} (depth {}, {})",
                        d.get("base").and_then(Value::as_str).unwrap_or("?"),
                        d.get("depth").cloned().unwrap_or(Value::Null),
                        d.get("targets").and_then(Value::as_str).unwrap_or("folders"),
                    ),
                    None => format!("{} paths", i["paths"].as_array().map_or(0, Vec::len)),
                };
                println!(
                    "{:<24} {:<7} {}",
                    i["name"].as_str().unwrap_or("?"),
                    i["source"].as_str().unwrap_or("?"),
                    what
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        InventoriesCommand::Show { name } => {
            let v = client.get(&["api", "inventories", &name], &[]).await?;
            if let Some(e) = v["error"].as_str() {
                println!("error: {e}");
            }
            for t in v["targets"].as_array().into_iter().flatten() {
                println!(
                    "{:<60} {:<10} {:<26} {}",
                    t["path"].as_str().unwrap_or("?"),
                    t["lastOutcome"].as_str().or(t["lastRefused"].as_str().map(|_| "refused")).unwrap_or("never"),
                    t["lastScanned"].as_str().unwrap_or("-"),
                    t["lastJobId"].as_str().unwrap_or("-"),
                );
            }
            let n = v["targets"].as_array().map_or(0, Vec::len);
            println!("{n} targets{}", if v["truncated"] == json!(true) { " (truncated: budget reached)" } else { "" });
            Ok(ExitCode::SUCCESS)
        }
    }
}
