//! Single-node mode: runnable jobs come from this process's FIFO lanes, one per pipeline,
//! and events go to the local bus. A retry waits out its backoff in a timer task.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use futures::future::BoxFuture;

use super::execute::{Start, spawn_execute};
use super::executor::Executor;
use super::source::{JobSource, Step, ready};
use super::{Inner, Lane, TriggerError};
use crate::domain::Job;
use crate::events::JobEvent;
use crate::store::{Recovered, StoreError};

/// This process's lanes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LocalLanes;

impl<X: Executor> JobSource<X> for LocalLanes {
    fn wants_events(&self, inner: &Inner<X>) -> bool {
        inner.events.has_subscribers()
    }

    fn publish<'a>(&'a self, inner: &'a Inner<X>, event: JobEvent) -> Step<'a, ()> {
        inner.events.publish(event);
        ready(())
    }

    fn reserve<'a>(
        &'a self,
        _inner: &'a Inner<X>,
        pipeline: &'a str,
        lane: &'a Mutex<Lane>,
    ) -> Step<'a, Result<(), TriggerError>> {
        let reserved = match lane.lock() {
            Ok(l) if l.queued.len() + l.reserved >= l.max_queued => {
                Err(TriggerError::QueueFull { pipeline: pipeline.into(), cap: l.max_queued })
            }
            Ok(mut l) => {
                l.reserved += 1;
                Ok(())
            }
            Err(_) => Err(TriggerError::Disabled("lane lock poisoned".into())),
        };
        ready(reserved)
    }

    fn admitted(&self, inner: &Arc<Inner<X>>, pipeline: &str, lane: &Mutex<Lane>, job: Option<&Job>) {
        if let Ok(mut l) = lane.lock() {
            l.reserved -= 1;
            if let Some(job) = job {
                l.queued.push_back(Box::new(job.clone()));
            }
        }
        if job.is_some() {
            JobSource::<X>::pump(self, inner, pipeline);
        }
    }

    fn pump(&self, inner: &Arc<Inner<X>>, pipeline: &str) {
        if !inner.dispatching.load(Ordering::Acquire) {
            return;
        }
        let Some(lane) = inner.lanes.get(pipeline) else { return };
        let mut start = Vec::new();
        if let Ok(mut l) = lane.lock() {
            while l.running < l.max_concurrent {
                let Some(job) = l.queued.pop_front() else { break };
                l.running += 1;
                start.push(*job);
            }
        }
        for job in start {
            spawn_execute(inner, job, Start::FromLane);
        }
    }

    fn successor(&self, inner: &Arc<Inner<X>>, pipeline: &str) -> Option<Job> {
        if !inner.dispatching.load(Ordering::Acquire) {
            return None;
        }
        Some(*inner.lanes.get(pipeline)?.lock().ok()?.queued.pop_front()?)
    }

    fn run_later(&self, inner: &Arc<Inner<X>>, job: Job, delay: Duration) {
        let inner = inner.clone();
        inner.tracker.clone().spawn(async move {
            tokio::time::sleep(delay).await;
            if !inner.dispatching.load(Ordering::Acquire) {
                return; // stays queued in the store; the next start picks it up
            }
            let pipeline = job.pipeline_id.clone();
            if let Some(lane) = inner.lanes.get(&pipeline)
                && let Ok(mut l) = lane.lock()
            {
                l.queued.push_back(Box::new(job));
            }
            JobSource::<X>::pump(&LocalLanes, &inner, &pipeline);
        });
    }

    fn recover<'a>(&'a self, inner: &'a Arc<Inner<X>>) -> BoxFuture<'a, Result<usize, StoreError>> {
        Box::pin(async move {
            let jobs = inner.store.recover().await?;
            let count = jobs.len();
            let now = Utc::now();
            let mut pipelines = Vec::new();
            for Recovered { job, run_after } in jobs {
                let Some(lane) = inner.lanes.get(&job.pipeline_id) else {
                    tracing::warn!(job = %job.id, pipeline = %job.pipeline_id, "recovered job's pipeline is no longer configured; left queued");
                    continue;
                };
                // A retry still in its backoff waits out the rest of it.
                if let Some(delay) = run_after.and_then(|at| (at - now).to_std().ok()).filter(|d| !d.is_zero()) {
                    JobSource::<X>::run_later(self, inner, job, delay);
                    continue;
                }
                if let Ok(mut l) = lane.lock() {
                    if !pipelines.contains(&job.pipeline_id) {
                        pipelines.push(job.pipeline_id.clone());
                    }
                    l.queued.push_back(Box::new(job));
                }
            }
            for p in pipelines {
                JobSource::<X>::pump(self, inner, &p);
            }
            Ok(count)
        })
    }
}
