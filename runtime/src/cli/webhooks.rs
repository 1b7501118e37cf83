//! `alephauto webhooks …`: the configured hooks and their deliveries, over the HTTP API.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use serde_json::{Value, json};

use crate::client::Client;

/// What `alephauto webhooks` does.
#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// List the configured webhooks (secrets are never shown).
    List,
    /// List deliveries, newest first.
    Deliveries {
        /// Only this hook.
        #[arg(long)]
        hook: Option<String>,
        /// Only this status: pending, delivered or failed.
        #[arg(long)]
        status: Option<String>,
        /// Only deliveries about this job.
        #[arg(long)]
        job: Option<String>,
        /// How many (1-200).
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Only deliveries older than this id: the `next page: --before …` a listing printed.
        #[arg(long)]
        before: Option<i64>,
    },
    /// Show one delivery with its payload and attempts.
    Show {
        /// Delivery id.
        id: i64,
    },
    /// Send a delivered or failed delivery again.
    Redeliver {
        /// Delivery id.
        id: i64,
    },
}

/// Runs `cmd` against the server behind `client`.
pub async fn run(client: &Client, cmd: WebhooksCommand) -> Result<ExitCode> {
    match cmd {
        WebhooksCommand::List => {
            let v = client.get(&["api", "webhooks"], &[]).await?;
            println!("{:<20} {:<8} {:<7} {:<40} EVENTS", "HOOK", "FORMAT", "SIGNED", "URL");
            for h in v["webhooks"].as_array().into_iter().flatten() {
                let events: Vec<&str> =
                    h["events"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                println!(
                    "{:<20} {:<8} {:<7} {:<40} {}",
                    h["id"].as_str().unwrap_or("?"),
                    h["format"].as_str().unwrap_or("?"),
                    h["signed"],
                    h["url"].as_str().unwrap_or("?"),
                    events.join(",")
                );
            }
        }
        WebhooksCommand::Deliveries { hook, status, job, limit, before } => {
            let (limit, before) = (limit.to_string(), before.map(|b| b.to_string()));
            let mut query = vec![("limit", limit.as_str())];
            query.extend(hook.as_deref().map(|h| ("hook", h)));
            query.extend(status.as_deref().map(|s| ("status", s)));
            query.extend(job.as_deref().map(|j| ("jobId", j)));
            query.extend(before.as_deref().map(|b| ("before", b)));
            let v = client.get(&["api", "webhooks", "deliveries"], &query).await?;
            println!(
                "{:<8} {:<16} {:<18} {:<10} {:<8} {:<5} {:<25} JOB",
                "ID", "HOOK", "EVENT", "STATUS", "ATTEMPTS", "LAST", "CREATED"
            );
            for d in v["deliveries"].as_array().into_iter().flatten() {
                println!(
                    "{:<8} {:<16} {:<18} {:<10} {:<8} {:<5} {:<25} {}",
                    d["id"],
                    d["hookId"].as_str().unwrap_or("?"),
                    d["event"].as_str().unwrap_or("?"),
                    d["status"].as_str().unwrap_or("?"),
                    d["attempts"],
                    d["lastStatusCode"].as_u64().map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
                    d["createdAt"].as_str().unwrap_or(""),
                    d["jobId"].as_str().unwrap_or("-")
                );
            }
            if let Some(next) = v["nextBefore"].as_i64() {
                println!("next page: --before {next}");
            }
        }
        WebhooksCommand::Show { id } => {
            let v = client.get(&["api", "webhooks", "deliveries", &id.to_string()], &[]).await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        WebhooksCommand::Redeliver { id } => {
            let v = client.post(&["api", "webhooks", "deliveries", &id.to_string(), "redeliver"], json!({})).await?;
            println!("delivery {id} is {}", v["status"].as_str().unwrap_or("?"));
        }
    }
    Ok(ExitCode::SUCCESS)
}
