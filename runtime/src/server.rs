//! Assembles the service (store → sandbox → registry → queue → HTTP) and runs it
//! until a shutdown signal, then stops in order: stop accepting, close WebSockets,
//! drain running jobs up to the timeout, shut the workers down, flush SQLite.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

use crate::api::auth::{self, ServerKey};
use crate::api::{self, AppState};
use crate::config::Config;
use crate::events::EventBus;
use crate::gitflow::GitWorkflow;
use crate::notify::Notifier;
use crate::queue::{ClusterSettings, Queue, QueueSettings};
use crate::registry::Registry;
use crate::registry::breaker::BreakerSettings;
use crate::sandbox::Sandbox;
use crate::sandbox::capabilities::git::GitSettings;
use crate::sandbox::engine::EngineSettings;
use crate::schedule::Schedules;
use crate::store::deliveries::DeliveryStore;
use crate::store::postgres::PostgresStore;
use crate::store::postgres_runs::PostgresRunStore;
use crate::store::runs::RunStore;
use crate::store::schedules::ScheduleStore;
use crate::store::sqlite::SqliteStore;
use crate::store::sqlite::runs::SqliteRunStore;
use crate::store::{ClusterStore, JobStore};

/// The job store, the cluster view of it (PostgreSQL only) and the schedule store.
/// How to run the service.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The configuration.
    pub config: Config,
    /// SQLite file, or a `postgres://` URL (default: `runtime.database_url`, else `<data_dir>/alephauto.db`).
    pub db: Option<String>,
    /// Listen address (default: the config's).
    pub bind: Option<String>,
    /// API key from the command line (wins over `ALEPHAUTO_API_KEY` and `server.api_key`).
    pub api_key: Option<String>,
    /// The file `config` came from: re-read on SIGHUP (changed components are hot-swapped).
    pub config_path: Option<PathBuf>,
}

impl ServerOptions {
    /// Options for `config` with everything else defaulted.
    pub fn new(config: Config) -> Self {
        Self { config, db: None, bind: None, api_key: None, config_path: None }
    }
}

/// A started service.
#[derive(Debug)]
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The job queue (for in-process callers and tests).
    pub queue: Queue,
    /// Webhook notifications (`Notifier::enqueue` for events the queue does not derive).
    pub notifier: Notifier,
    /// Where a person opens the dashboard; with a generated key, the key rides in the
    /// fragment (`#key=`), which browsers never send to the server.
    pub dashboard_url: String,
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

/// The job store, the cluster view of it (PostgreSQL only), and the run, delivery and schedule
/// stores on the same database.
type Stores = (
    Arc<dyn JobStore>,
    Option<Arc<dyn ClusterStore>>,
    Arc<dyn RunStore>,
    Arc<dyn DeliveryStore>,
    Arc<dyn ScheduleStore>,
);

/// Builds everything and starts listening; `signal` resolving starts the shutdown.
pub async fn start(opts: ServerOptions, signal: impl Future<Output = ()> + Send + 'static) -> Result<Running> {
    let started = Instant::now();
    // Many jobs' files and the clients' sockets share one descriptor table: use all of it
    // (guests get at most the limit less a reserve, `capabilities::fs::FdBudget`).
    if let Some(limit) = crate::sandbox::capabilities::fs::raise_nofile_limit() {
        tracing::debug!(limit, "descriptor limit");
    }
    let config = opts.config;
    let config_path = opts.config_path;
    let bind = opts.bind.unwrap_or_else(|| config.server.bind.clone());
    let addr: SocketAddr = bind.parse().with_context(|| format!("invalid bind address {bind:?} (want IP:PORT)"))?;

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
    let key = auth::resolve_key(opts.api_key.as_deref(), &config.server, &data_dir, addr.ip().is_loopback())?;
    let api_key: Option<Arc<str>> = key.key().map(Arc::from);
    let db = config.runtime.database_url.clone().unwrap_or_else(|| data_dir.join("alephauto.db").display().to_string());
    let (store, cluster, run_store, deliveries, schedule_store): Stores =
        if db.starts_with("postgres://") || db.starts_with("postgresql://") {
            let pg = Arc::new(PostgresStore::connect(&db).await?);
            let runs = Arc::new(PostgresRunStore::new(&pg));
            let deliveries = Arc::new(pg.deliveries());
            (pg.clone(), Some(pg.clone()), runs, deliveries, pg)
        } else {
            let path = PathBuf::from(&db);
            let sqlite = Arc::new(SqliteStore::open(&path)?);
            let deliveries = Arc::new(sqlite.deliveries()?);
            // Opened after the job store, which created and migrated the file.
            let runs = Arc::new(SqliteRunStore::open(&path).context("opening the run store")?);
            (sqlite.clone(), None, runs, deliveries, sqlite)
        };
    let notifier = Notifier::new(deliveries, &config.notify);
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
        queue.enable_cluster(
            cluster,
            ClusterSettings {
                node_id,
                lease: Duration::from_secs(config.runtime.lease_secs.max(1)),
                poll: Duration::from_millis(500),
                retention: config.runtime.retention_days.map(|d| Duration::from_secs(d * 86_400)),
            },
        );
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
    if let Some(path) = config_path {
        reload_on_sighup(path, registry.clone(), shutdown.clone());
    }
    if !config.notify.webhooks.is_empty() {
        notifier.spawn(shutdown.clone()).context("starting the webhook sender")?;
        tracing::info!(hooks = config.notify.webhooks.len(), "webhooks configured");
    }
    let runs = crate::runs::Runs::new(queue.clone(), run_store, &config);
    // Schedules: the configuration's are synced into the store (a bad entry fails the start,
    // naming its key), then the loop fires them: jobs through the queue, runs over inventories.
    let schedules = Schedules::new(
        schedule_store,
        Arc::new(queue.clone()),
        Arc::new(runs.clone()),
        crate::schedule::clock::from_env()?,
        Some(Arc::new(notifier.clone())),
    );
    schedules.sync_config(&config).await.context("configuring schedules")?;
    schedules.run_on_startup(&config).await;
    let _scheduler = schedules.spawn(shutdown.clone());
    let state = AppState {
        notifier: notifier.clone(),
        queue: queue.clone(),
        started,
        api_key,
        shutdown: shutdown.clone(),
        ws: api::ws::WsLimits::new(&config.server),
        outputs: Arc::new(crate::artifacts::OutputFolders::new(&data_dir.join("outputs"))),
        runs: runs.clone(),
        schedules,
    };
    let policies: std::collections::BTreeMap<_, _> =
        config.pipelines.iter().filter_map(|(id, p)| p.retention.map(|r| (id.clone(), r))).collect();
    crate::retention::spawn(
        store.clone(),
        state.outputs.clone(),
        policies,
        Duration::from_secs(config.runtime.retention_interval_secs),
        shutdown.clone(),
    );
    let app = api::router(state, &config.server);
    let listener = TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    let addr = listener.local_addr()?;
    let dashboard_url = dashboard_url(addr, &key);
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
    let header_read_timeout = Duration::from_secs(config.server.header_read_timeout_secs);
    let task = tokio::spawn(async move {
        serve(listener, app, header_read_timeout, token).await;
        tracing::info!("stopped accepting; draining running jobs");
        q.shutdown(drain).await;
        registry.shutdown().await;
        store.flush().await.context("flushing the store")?;
        tracing::info!("shutdown complete");
        Ok(())
    });
    Ok(Running { addr, queue, notifier, dashboard_url, shutdown, task })
}

/// `http://<addr>/`, with `#key=<key>` when the key was generated (the operator has no
/// other way to learn it but the file). A wildcard bind is reached on loopback.
fn dashboard_url(addr: SocketAddr, key: &ServerKey) -> String {
    let mut shown = addr;
    if addr.ip().is_unspecified() {
        shown.set_ip(if addr.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() });
    }
    match key {
        ServerKey::Generated(k) => format!("http://{shown}/#key={k}"),
        _ => format!("http://{shown}/"),
    }
}

/// Accepts connections until `stop`, then lets each finish its current request. Our own
/// loop instead of `axum::serve`, which sets no timer and so no header-read timeout: a
/// client that sends half a request head (or idles between requests) longer than
/// `header_read_timeout` is disconnected.
async fn serve(listener: TcpListener, app: axum::Router, header_read_timeout: Duration, stop: CancellationToken) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(header_read_timeout);
    let connections = TaskTracker::new();
    loop {
        let (tcp, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // Small request/response exchanges: send each response at once, not after Nagle's delay.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "setting TCP_NODELAY failed");
        }
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            // The rate limiter keys on the peer address.
            req.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(req)
        });
        let conn = http.serve_connection(TokioIo::new(tcp), service).with_upgrades();
        let stop = stop.clone();
        connections.spawn(async move {
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// A node id that is unique on this machine: host name and process id.
fn default_node_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "node".into());
    format!("{host}-{}", std::process::id())
}

/// On each SIGHUP, re-reads the configuration file and hot-swaps every pipeline whose
/// component changed (`Registry::reload`); a file that does not load is logged and nothing
/// changes.
fn reload_on_sighup(path: PathBuf, registry: Arc<Registry>, shutdown: CancellationToken) {
    let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; configuration reload is off");
            return;
        }
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                got = hangups.recv() => if got.is_none() { return },
            }
            tracing::info!(config = %path.display(), "SIGHUP: reloading the configuration");
            let loaded = tokio::task::spawn_blocking({
                let path = path.clone();
                move || Config::load_or_init(&path)
            })
            .await;
            match loaded {
                Ok(Ok(config)) => registry.reload(&config).await,
                Ok(Err(e)) => {
                    tracing::error!(error = %format!("{e:#}"), "SIGHUP: configuration refused; nothing changed")
                }
                Err(e) => tracing::error!(error = %e, "SIGHUP: reload task failed"),
            }
        }
    });
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
