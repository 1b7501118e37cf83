//! AlephAuto: a job-queue runtime that runs every pipeline worker as a sandboxed
//! WASI 0.2 component.
//!
//! # Layout
//! - [`config`]: the TOML configuration and pipeline definitions.
//! - [`sandbox`]: the wasmtime engine, compiled-component cache, per-job stores, grants and limits.
//! - [`capabilities`]: host interfaces a guest may call (`host`, `git`).
//! - [`registry`]: lazy, cached workers per pipeline with a circuit breaker.
//! - [`queue`]: per-pipeline FIFO lanes, execution, retries and recovery.
//! - [`gitflow`]: the host-side git workflow around a job; `gitcli`: the host's one git process runner.
//! - [`store`]: durable job storage (SQLite).
//! - [`events`]: the lifecycle event bus.
//! - [`api`]: the axum HTTP API and WebSocket feed.
//! - [`server`]: wiring and graceful shutdown; [`cli`] and [`client`]: the command line.

pub mod api;
pub mod capabilities;
pub mod cli;
pub mod client;
pub mod config;
pub mod events;
mod gitcli;
pub mod gitflow;
pub mod metrics;
pub mod queue;
pub mod registry;
pub mod sandbox;
pub mod scaffold;
pub mod server;
pub mod store;
pub mod telemetry;
