//! Cluster mode: several nodes share one store. A dispatcher claims work from the
//! store (woken by NOTIFY, polling as the fallback), a listener turns cluster notes
//! into local events and interrupts, and a heartbeat renews this node's leases; the
//! elected leader rescues expired leases and prunes old jobs.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{BoxFuture, Either};
use tokio::sync::Notify;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::execute::{Start, spawn_execute};
use super::executor::Executor;
use super::source::{JobSource, Step};
use super::{Inner, Lane, TriggerError};
use crate::domain::Job;
use crate::events::{EventKind, JobEvent};
use crate::store::{ClaimRequest, ClusterNote, ClusterStore, StoreError};

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
    /// Ends the listener, dispatcher and heartbeat tasks (the end of `Queue::shutdown`), so
    /// they release the queue and with it the store's connections.
    pub stop: CancellationToken,
}

/// The table is the queue: triggers insert (and NOTIFY), the dispatcher claims, events go
/// through the store to every node, and a retry's backoff is the row's `run_after`.
impl<X: Executor> JobSource<X> for Cluster {
    fn wants_events(&self, _inner: &Inner<X>) -> bool {
        true
    }

    fn publish<'a>(&'a self, inner: &'a Inner<X>, event: JobEvent) -> Step<'a, ()> {
        Either::Right(Box::pin(async move {
            if event.kind == EventKind::Created && self.store.notifies_created() {
                return;
            }
            if let Err(e) = self.store.broadcast(&event).await {
                tracing::warn!(error = %e, "broadcasting an event failed; publishing locally");
                inner.events.publish(event);
            }
        }))
    }

    fn reserve<'a>(
        &'a self,
        _inner: &'a Inner<X>,
        pipeline: &'a str,
        lane: &'a Mutex<Lane>,
    ) -> Step<'a, Result<(), TriggerError>> {
        Either::Right(Box::pin(async move {
            // Counted across the cluster, in the table.
            let cap = lane.lock().map(|l| l.max_queued).unwrap_or(usize::MAX);
            if self.store.queued_count(pipeline).await? >= cap as u64 {
                return Err(TriggerError::QueueFull { pipeline: pipeline.into(), cap });
            }
            Ok(())
        }))
    }

    fn admitted(&self, _inner: &Arc<Inner<X>>, _pipeline: &str, _lane: &Mutex<Lane>, job: Option<&Job>) {
        // The insert's NOTIFY wakes the other nodes' claimers; this one is woken here.
        if job.is_some() {
            self.wake.notify_one();
        }
    }

    fn pump(&self, inner: &Arc<Inner<X>>, _pipeline: &str) {
        if inner.dispatching.load(Ordering::Acquire) {
            self.wake.notify_one();
        }
    }

    fn successor(&self, _inner: &Arc<Inner<X>>, _pipeline: &str) -> Option<Job> {
        // Freed slots are filled by the dispatcher's claims, under the cluster-wide cap.
        None
    }

    fn run_later(&self, _inner: &Arc<Inner<X>>, _job: Job, _delay: Duration) {
        // The store holds the delay (`run_after`); a claimer picks the job up then.
    }

    fn recover<'a>(&'a self, inner: &'a Arc<Inner<X>>) -> BoxFuture<'a, Result<usize, StoreError>> {
        // A starting node never takes over its peers' running jobs: the store rescues
        // expired leases only, and queued jobs are claimed from the table.
        Box::pin(async move { Ok(inner.store.recover().await?.len()) })
    }
}

pub(super) fn start<X: Executor>(inner: &Arc<Inner<X>>, store: Arc<dyn ClusterStore>, settings: ClusterSettings) {
    let notes = store.notes();
    let cluster = Cluster { store, settings, wake: Notify::new(), stop: CancellationToken::new() };
    if inner.cluster.set(cluster).is_err() {
        tracing::warn!("cluster mode was already enabled");
        return;
    }
    tokio::spawn(listen(inner.clone(), notes));
    tokio::spawn(dispatch(inner.clone()));
    tokio::spawn(heartbeat(inner.clone()));
}

fn interrupt<X: Executor>(inner: &Inner<X>, job_id: &str) {
    if let Some(flag) = inner.running.lock().ok().and_then(|r| r.get(job_id).cloned()) {
        flag.store(true, Ordering::Relaxed);
    }
}

/// Ends the cluster's tasks (after the drain: leases and cancels matter until then).
pub(super) fn stop<X: Executor>(inner: &Inner<X>) {
    if let Some(c) = inner.cluster.get() {
        c.stop.cancel();
    }
}

async fn listen<X: Executor>(inner: Arc<Inner<X>>, mut notes: tokio::sync::broadcast::Receiver<ClusterNote>) {
    let Some(stop) = inner.cluster.get().map(|c| c.stop.clone()) else { return };
    loop {
        let note = tokio::select! {
            note = notes.recv() => note,
            () = stop.cancelled() => return,
        };
        match note {
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

async fn dispatch<X: Executor>(inner: Arc<Inner<X>>) {
    let Some(c) = inner.cluster.get() else { return };
    while inner.dispatching.load(Ordering::Acquire) {
        // Every pipeline with free slots here, in one claim (one statement on PostgreSQL).
        let mut requests = Vec::new();
        for (pipeline, lane) in &inner.lanes {
            let (free, cap) = match lane.lock() {
                Ok(l) => (l.max_concurrent.saturating_sub(l.running), l.max_concurrent),
                Err(_) => continue,
            };
            if free == 0 || inner.pipelines.get(pipeline).is_some_and(|p| !p.enabled) {
                continue;
            }
            requests.push(ClaimRequest { pipeline: pipeline.clone(), limit: free as u32, cap: cap as u32 });
        }
        let mut claimed_any = false;
        if !requests.is_empty() {
            match c.store.claim_many(&requests, &c.settings.node_id, c.settings.lease).await {
                Ok(jobs) => {
                    claimed_any = !jobs.is_empty();
                    for job in jobs {
                        if let Some(lane) = inner.lanes.get(&job.pipeline_id)
                            && let Ok(mut l) = lane.lock()
                        {
                            l.running += 1;
                        }
                        spawn_execute(&inner, job, Start::Claimed);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "claiming jobs failed"),
            }
        }
        if !claimed_any {
            tokio::select! {
                _ = c.wake.notified() => {}
                _ = tokio::time::sleep(c.settings.poll) => {}
                () = c.stop.cancelled() => return,
            }
        }
    }
}

async fn heartbeat<X: Executor>(inner: Arc<Inner<X>>) {
    let Some(c) = inner.cluster.get() else { return };
    let every = c.settings.lease / 3;
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = c.stop.cancelled() => return,
        }
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
