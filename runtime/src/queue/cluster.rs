//! Cluster mode: several nodes share one store. A dispatcher claims work from the
//! store (woken by NOTIFY, polling as the fallback), a listener turns cluster notes
//! into local events and interrupts, and a heartbeat renews this node's leases; the
//! elected leader rescues expired leases and prunes old jobs.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::sync::broadcast::error::RecvError;

use super::Inner;
use super::execute::{Start, spawn_execute};
use crate::store::{ClusterNote, ClusterStore};

/// How this node takes part in the cluster.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// This node's id, recorded on the jobs it runs.
    pub node_id: String,
    /// How long a claim lasts without renewal; a dead node's jobs are rescued after it.
    pub lease: Duration,
    /// How often to look for work when no wake-up arrives.
    pub poll: Duration,
    /// Terminal jobs older than this are pruned by the leader.
    pub retention: Option<Duration>,
}

pub(super) struct Cluster {
    pub store: Arc<dyn ClusterStore>,
    pub settings: ClusterSettings,
    pub wake: Notify,
}

pub(super) fn start(inner: &Arc<Inner>, store: Arc<dyn ClusterStore>, settings: ClusterSettings) {
    let notes = store.notes();
    if inner.cluster.set(Cluster { store, settings, wake: Notify::new() }).is_err() {
        tracing::warn!("cluster mode was already enabled");
        return;
    }
    tokio::spawn(listen(inner.clone(), notes));
    tokio::spawn(dispatch(inner.clone()));
    tokio::spawn(heartbeat(inner.clone()));
}

fn interrupt(inner: &Inner, job_id: &str) {
    if let Some(flag) = inner.running.lock().ok().and_then(|r| r.get(job_id).cloned()) {
        flag.store(true, Ordering::Relaxed);
    }
}

async fn listen(inner: Arc<Inner>, mut notes: tokio::sync::broadcast::Receiver<ClusterNote>) {
    loop {
        match notes.recv().await {
            Ok(ClusterNote::Event(e)) => inner.events.publish(e),
            Ok(ClusterNote::Wake(_)) => {
                if let Some(c) = inner.cluster.get() {
                    c.wake.notify_one();
                }
            }
            Ok(ClusterNote::Cancel(id)) => interrupt(&inner, &id),
            // Missed notes are only hints: polling and the heartbeat catch up.
            Err(RecvError::Lagged(n)) => tracing::warn!(missed = n, "cluster notes lagged"),
            Err(RecvError::Closed) => return,
        }
    }
}

async fn dispatch(inner: Arc<Inner>) {
    let Some(c) = inner.cluster.get() else { return };
    while inner.dispatching.load(Ordering::Acquire) {
        let mut claimed_any = false;
        for (pipeline, lane) in &inner.lanes {
            let (free, cap) = match lane.lock() {
                Ok(l) => (l.max_concurrent.saturating_sub(l.running), l.max_concurrent),
                Err(_) => continue,
            };
            if free == 0 || inner.registry.pipeline_config(pipeline).is_some_and(|p| !p.enabled) {
                continue;
            }
            match c.store.claim(pipeline, &c.settings.node_id, free as u32, cap as u32, c.settings.lease).await {
                Ok(jobs) => {
                    claimed_any |= !jobs.is_empty();
                    for job in jobs {
                        if let Ok(mut l) = lane.lock() {
                            l.running += 1;
                        }
                        spawn_execute(&inner, job, Start::Claimed);
                    }
                }
                Err(e) => tracing::warn!(pipeline = %pipeline, error = %e, "claiming jobs failed"),
            }
        }
        if !claimed_any {
            tokio::select! {
                _ = c.wake.notified() => {}
                _ = tokio::time::sleep(c.settings.poll) => {}
            }
        }
    }
}

async fn heartbeat(inner: Arc<Inner>) {
    let Some(c) = inner.cluster.get() else { return };
    let every = c.settings.lease / 3;
    loop {
        tokio::time::sleep(every).await;
        let running: Vec<String> = inner.running.lock().map(|r| r.keys().cloned().collect()).unwrap_or_default();
        match c.store.heartbeat(&c.settings.node_id, &running, c.settings.lease).await {
            Ok(cancelled) => {
                for id in cancelled {
                    interrupt(&inner, &id);
                }
            }
            Err(e) => tracing::warn!(error = %e, "renewing leases failed"),
        }
        if matches!(c.store.try_lead().await, Ok(true)) {
            if let Err(e) = c.store.rescue_expired().await {
                tracing::warn!(error = %e, "rescuing expired jobs failed");
            }
            if let Some(keep) = c.settings.retention {
                let before = chrono::Utc::now() - chrono::Duration::from_std(keep).unwrap_or_default();
                match c.store.prune(before).await {
                    Ok(n) if n > 0 => tracing::info!(jobs = n, "pruned old jobs"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "pruning failed"),
                }
            }
        }
    }
}
