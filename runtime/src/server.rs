//! Assembles the service (store → sandbox → registry → queue → HTTP) and runs it
//! until a shutdown signal, then stops in order: stop accepting, close WebSockets,
//! drain running jobs up to the timeout, shut the workers down, flush SQLite.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use axum::serve::ListenerExt as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState};
use crate::capabilities::git::GitSettings;
use crate::config::Config;
use crate::events::EventBus;
use crate::gitflow::GitWorkflow;
use crate::queue::{ClusterSettings, Queue, QueueSettings};
use crate::registry::Registry;
use crate::registry::breaker::BreakerSettings;
use crate::sandbox::Sandbox;
use crate::sandbox::engine::EngineSettings;
use crate::store::postgres::PostgresStore;
use crate::store::{ClusterStore, JobStore};
use crate::store::sqlite::SqliteStore;

/// How to run the service.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The configuration.
    pub config: Config,
    /// SQLite file, or a `postgres://` URL (default: `runtime.database_url`, else `<data_dir>/alephauto.db`).
    pub db: Option<String>,
    /// Listen address (default: the config's).
    pub bind: Option<String>,
    /// Allow a non-loopback bind without an API key.
    pub allow_public_without_key: bool,
}

impl ServerOptions {
    /// Options for `config` with everything else defaulted.
    pub fn new(config: Config) -> Self {
        Self { config, db: None, bind: None, allow_public_without_key: false }
    }
}

/// A started service.
#[derive(Debug)]
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The job queue (for in-process callers and tests).
    pub queue: Queue,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl Running {
    /// Asks the service to stop and waits until it has.
    pub async fn stop(self) -> Result<()> {
        self.shutdown.cancel();
        self.task.await.context("server task panicked")?
    }

    /// Waits until the service stops on its own.
    pub async fn wait(self) -> Result<()> {
        self.task.await.context("server task panicked")?
    }
}

/// Builds everything and starts listening; `signal` resolving starts the shutdown.
pub async fn start(opts: ServerOptions, signal: impl Future<Output = ()> + Send + 'static) -> Result<Running> {
    let started = Instant::now();
    // Many jobs' files and the clients' sockets share one descriptor table: use all of it
    // (guests get at most the limit less a reserve, `capabilities::fs::FdBudget`).
    if let Some(limit) = crate::capabilities::fs::raise_nofile_limit() {
        tracing::debug!(limit, "descriptor limit");
    }
    let config = opts.config;
    let api_key: Option<Arc<str>> = std::env::var("ALEPHAUTO_API_KEY")
        .ok()
        .filter(|k| !k.is_empty())
        .or_else(|| config.server.api_key.clone().filter(|k| !k.is_empty()))
        .map(Arc::from);
    let bind = opts.bind.unwrap_or_else(|| config.server.bind.clone());
    let addr: SocketAddr = bind.parse().with_context(|| format!("invalid bind address {bind:?} (want IP:PORT)"))?;
    if !addr.ip().is_loopback() && api_key.is_none() && !opts.allow_public_without_key {
        bail!(
            "refusing to listen on non-loopback address {addr} without an API key; set server.api_key or \
             ALEPHAUTO_API_KEY, or pass --allow-public-without-key"
        );
    }

    let mut config = config;
    if opts.db.is_some() {
        // `--db` wins over the file; checked below like a configured database.
        config.runtime.database_url = opts.db;
    }
    // No root may reach the data folder, the cache or the database (also for a `--db`, or a
    // configuration built in code rather than loaded).
    config.check_isolation()?;
    let data_dir = config.runtime.data_dir.clone();
    std::fs::create_dir_all(&data_dir).with_context(|| format!("creating data folder {}", data_dir.display()))?;
    let db = config.runtime.database_url.clone().unwrap_or_else(|| data_dir.join("alephauto.db").display().to_string());
    let (store, cluster): (Arc<dyn JobStore>, Option<Arc<dyn ClusterStore>>) =
        if db.starts_with("postgres://") || db.starts_with("postgresql://") {
            let pg = Arc::new(PostgresStore::connect(&db).await?);
            (pg.clone(), Some(pg))
        } else {
            (Arc::new(SqliteStore::open(&PathBuf::from(&db))?), None)
        };
    let git_settings = GitSettings {
        timeout: Duration::from_secs(config.git.command_timeout_secs),
        max_output: config.git.max_output_bytes,
        // Every job's output folder lives here: never a repository a guest may query.
        forbidden: vec![data_dir.clone()],
    };
    let engine = EngineSettings { pooling: config.runtime.pooling_allocator, ..EngineSettings::default() };
    let cache_dir = config.cache_dir();
    let sandbox = Arc::new(Sandbox::new(&engine, &cache_dir, git_settings)?);
    let breaker = BreakerSettings {
        base: Duration::from_secs(config.runtime.breaker_cooldown_secs),
        max: Duration::from_secs(config.runtime.breaker_max_cooldown_secs),
        ..BreakerSettings::default()
    };
    let registry = Arc::new(Registry::new(sandbox, &config, breaker));
    let events = EventBus::new(4096);
    let settings = QueueSettings {
        max_attempts: config.runtime.max_attempts,
        retry_base: Duration::from_millis(config.runtime.retry_base_ms),
        max_log_bytes: config.runtime.max_log_bytes,
        max_result_bytes: config.runtime.max_result_bytes,
        outputs_dir: data_dir.join("outputs"),
        execution_enabled: config.runtime.execution_enabled,
    };
    let mut git_config = config.git.clone();
    if let Some(token) = std::env::var("ALEPHAUTO_FORGE_TOKEN").ok().filter(|t| !t.is_empty()) {
        git_config.forge_token = Some(token);
    }
    let queue = Queue::new(store.clone(), registry.clone(), events, settings, GitWorkflow::new(&git_config));
    if let Some(cluster) = cluster {
        let node_id = config.runtime.node_id.clone().unwrap_or_else(default_node_id);
        tracing::info!(node = %node_id, "cluster mode on PostgreSQL");
        queue.enable_cluster(cluster, ClusterSettings {
            node_id,
            lease: Duration::from_secs(config.runtime.lease_secs.max(1)),
            poll: Duration::from_millis(500),
            retention: config.runtime.retention_days.map(|d| Duration::from_secs(d * 86_400)),
        });
    }
    let recovered = queue.recover().await.context("recovering jobs from the store")?;
    if recovered > 0 {
        tracing::info!(jobs = recovered, "recovered unfinished jobs");
    }
    if !config.runtime.warm_up.is_empty() {
        let registry = registry.clone();
        let ids = config.runtime.warm_up.clone();
        tokio::spawn(async move { registry.warm_up(&ids).await });
    }

    let shutdown = CancellationToken::new();
    let state = AppState { queue: queue.clone(), started, api_key, shutdown: shutdown.clone() };
    let app = api::router(state, config.server.max_body_bytes);
    let listener = TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    let addr = listener.local_addr()?;
    // Small request/response exchanges: send each response at once, not after Nagle's delay.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "setting TCP_NODELAY failed");
        }
    });
    let db_label = if db.contains("://") { "postgres".to_string() } else { db.clone() };
    tracing::info!(%addr, db = %db_label, pipelines = registry.pipeline_ids().len(), ms = started.elapsed().as_millis() as u64, "listening");

    let token = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = signal => token.cancel(),
            _ = token.cancelled() => {}
        }
    });
    let drain = Duration::from_secs(config.runtime.shutdown_timeout_secs);
    let token = shutdown.clone();
    let q = queue.clone();
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(token.clone().cancelled_owned());
        serve.await.context("HTTP server failed")?;
        tracing::info!("stopped accepting; draining running jobs");
        q.shutdown(drain).await;
        registry.shutdown().await;
        store.flush().await.context("flushing the store")?;
        tracing::info!("shutdown complete");
        Ok(())
    });
    Ok(Running { addr, queue, shutdown, task })
}

/// A node id that is unique on this machine: host name and process id.
fn default_node_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "node".into());
    format!("{host}-{}", std::process::id())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT received"),
        _ = term => tracing::info!("SIGTERM received"),
    }
}
