//! AlephAuto: a job-queue runtime that runs every pipeline worker as a sandboxed
//! WASI 0.2 component.
//!
//! # Layout
//! - [`domain`]: jobs, statuses, failures, log lines, timestamps; imports nothing else from the crate.
//! - [`config`]: the TOML configuration and pipeline definitions.
//! - [`sandbox`]: the wasmtime engine, compiled-component cache, per-job stores, grants, limits,
//!   and the host capabilities a guest may call (`sandbox::capabilities`: `fs`, `host`, `git`).
//! - [`registry`]: lazy, cached workers per pipeline with a circuit breaker.
//! - [`queue`]: per-pipeline FIFO lanes, execution, retries and recovery.
//! - [`schedule`]: cron schedules fired exactly once per fire time, with misfire and overlap policies.
//! - [`gitflow`]: the host-side git workflow around a job; `gitcli`: the host's one git process runner.
//! - [`store`]: durable job storage (SQLite, PostgreSQL).
//! - [`events`]: the lifecycle event bus.
//! - [`runs`]: inventories of targets and fan-out runs (one job per target, grouped under a run id).
//! - [`failpoints`]: named crash points (test builds only, feature `test-hooks`).
//! - [`notify`]: outgoing webhooks (generic signed JSON, Slack, Discord), durable deliveries.
//! - [`api`]: the axum HTTP API and WebSocket feed.
//! - [`server`]: wiring and graceful shutdown; [`cli`] and [`client`]: the command line.

pub mod api;
pub mod artifacts;
pub mod cli;
pub mod client;
pub mod config;
pub mod dev;
pub mod domain;
pub mod events;
pub mod failpoints;
mod gitcli;
pub mod gitflow;
#[cfg(test)]
mod layers;
pub mod metrics;
pub mod notify;
pub mod queue;
pub mod registry;
pub mod retention;
pub mod runs;
pub mod sandbox;
pub mod scaffold;
pub mod schedule;
pub mod server;
pub mod store;
pub mod telemetry;
