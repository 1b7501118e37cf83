//! `alephauto schedules …`: the `/api/schedules` routes from the command line.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::Client;

/// What `schedules` does.
#[derive(Debug, Subcommand)]
pub enum SchedulesCommand {
    /// List schedules with their next fire, last run and its outcome.
    List,
    /// Show one schedule as JSON.
    Show {
        /// Schedule id.
        id: String,
    },
    /// Create a schedule.
    Create {
        /// Schedule id: 1-40 of A-Z, a-z, 0-9, '_', '-'.
        id: String,
        /// Pipeline id.
        pipeline: String,
        /// Cron expression: 5 fields, 6 with seconds first, or @hourly / @daily / @weekly ...
        #[arg(long)]
        cron: String,
        /// IANA time zone (default UTC).
        #[arg(long)]
        timezone: Option<String>,
        /// A parameter as key=value (value parsed as JSON when it is JSON, else a string).
        #[arg(long = "param", short = 'p')]
        params: Vec<String>,
        /// All parameters as one JSON object.
        #[arg(long)]
        params_json: Option<String>,
        /// Start a run over this inventory instead of one job.
        #[arg(long)]
        inventory: Option<String>,
        /// Fires missed while the service was down: skip or run_once.
        #[arg(long)]
        misfire: Option<String>,
        /// A fire while the previous job runs: skip, queue or allow.
        #[arg(long)]
        overlap: Option<String>,
        /// Create it paused.
        #[arg(long)]
        paused: bool,
    },
    /// Delete a schedule made over the API.
    Delete {
        /// Schedule id.
        id: String,
    },
    /// Pause a schedule.
    Pause {
        /// Schedule id.
        id: String,
    },
    /// Resume a schedule (it next fires at its next fire time from now).
    Resume {
        /// Schedule id.
        id: String,
    },
    /// Trigger a schedule's job now.
    Run {
        /// Schedule id.
        id: String,
    },
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

fn print_row(s: &Value) {
    let state = if s["paused"].as_bool() == Some(true) { "paused" } else { "active" };
    println!(
        "{:<24} {:<22} {:<16} {:<7} {:<25} {:<25} {}",
        text(&s["id"]),
        text(&s["pipelineId"]),
        text(&s["cron"]),
        state,
        text(&s["nextFire"]),
        text(&s["lastFire"]),
        text(&s["lastOutcome"]),
    );
}

/// Runs a `schedules` subcommand.
pub async fn run(client: &Client, command: SchedulesCommand) -> Result<ExitCode> {
    match command {
        SchedulesCommand::List => {
            let v = client.get(&["api", "schedules"], &[]).await?;
            println!(
                "{:<24} {:<22} {:<16} {:<7} {:<25} {:<25} LAST OUTCOME",
                "ID", "PIPELINE", "CRON", "STATE", "NEXT FIRE", "LAST FIRE"
            );
            for s in v["schedules"].as_array().into_iter().flatten() {
                print_row(s);
            }
        }
        SchedulesCommand::Show { id } => {
            let v = client.get(&["api", "schedules", &id], &[]).await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        SchedulesCommand::Create {
            id,
            pipeline,
            cron,
            timezone,
            params,
            params_json,
            inventory,
            misfire,
            overlap,
            paused,
        } => {
            let parameters = super::build_params(&params, params_json.as_deref())?;
            let mut body =
                json!({"id": id, "pipelineId": pipeline, "cron": cron, "parameters": parameters, "paused": paused});
            for (key, value) in
                [("timezone", timezone), ("inventory", inventory), ("misfire", misfire), ("overlap", overlap)]
            {
                if let Some(value) = value {
                    body[key] = json!(value);
                }
            }
            let v = client.post(&["api", "schedules"], body).await?;
            println!("created {} (next fire {})", text(&v["id"]), text(&v["nextFire"]));
        }
        SchedulesCommand::Delete { id } => {
            client.call(Method::DELETE, &["api", "schedules", &id], &[], None).await?;
            println!("deleted {id}");
        }
        SchedulesCommand::Pause { id } => {
            client.post(&["api", "schedules", &id, "pause"], json!({})).await?;
            println!("paused {id}");
        }
        SchedulesCommand::Resume { id } => {
            let v = client.post(&["api", "schedules", &id, "resume"], json!({})).await?;
            println!("resumed {id} (next fire {})", text(&v["nextFire"]));
        }
        SchedulesCommand::Run { id } => {
            let v = client.post(&["api", "schedules", &id, "run"], json!({})).await?;
            println!("{}", text(&v["jobId"]));
        }
    }
    Ok(ExitCode::SUCCESS)
}
