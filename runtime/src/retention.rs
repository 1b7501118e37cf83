//! Per-pipeline retention: finished jobs past their pipeline's `retention` limits are pruned
//! with their output files.
//!
//! Order matters for a crash: the output folders go first, then the rows. A crash in between
//! leaves rows whose files are gone (listed with no artifacts, pruned on the next pass), never
//! folders no row points to.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::artifacts::OutputFolders;
use crate::config::RetentionPolicy;
use crate::store::{JobStore, StoreResult};

/// Jobs pruned per pipeline per batch (one read and one write each).
const BATCH: u32 = 500;

/// Prunes every pipeline once; returns the jobs removed per pipeline.
pub async fn prune_once(
    store: &dyn JobStore,
    outputs: &OutputFolders,
    policies: &BTreeMap<String, RetentionPolicy>,
) -> StoreResult<BTreeMap<String, u64>> {
    let mut removed = BTreeMap::new();
    for (pipeline, policy) in policies {
        let before = policy
            .max_age_days
            .and_then(|d| chrono::Duration::try_milliseconds((d * 86_400_000.0) as i64))
            .map(|age| Utc::now() - age);
        if before.is_none() && policy.max_jobs.is_none() {
            continue;
        }
        let mut total = 0;
        loop {
            let ids = store.expired(pipeline, before, policy.max_jobs, BATCH).await?;
            if ids.is_empty() {
                break;
            }
            let folders: Vec<_> = ids.iter().map(|id| outputs.folder(id)).collect();
            // Off the async threads: a job may have left thousands of files.
            let _ = tokio::task::spawn_blocking(move || {
                for dir in folders {
                    match std::fs::remove_dir_all(&dir) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => {
                            tracing::warn!(dir = %dir.display(), error = %e, "cannot remove a pruned job's outputs")
                        }
                    }
                }
            })
            .await;
            let n = store.delete_terminal(&ids).await?;
            total += n;
            if (ids.len() as u32) < BATCH || n == 0 {
                break;
            }
        }
        if total > 0 {
            tracing::info!(pipeline, jobs = total, "pruned finished jobs past the pipeline's retention");
            removed.insert(pipeline.clone(), total);
        }
    }
    Ok(removed)
}

/// Runs [`prune_once`] at start and then every `interval` until `shutdown`.
pub fn spawn(
    store: Arc<dyn JobStore>,
    outputs: Arc<OutputFolders>,
    policies: BTreeMap<String, RetentionPolicy>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    if policies.is_empty() {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval.max(Duration::from_secs(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = prune_once(store.as_ref(), &outputs, &policies).await {
                tracing::warn!(error = %e, "retention pass failed; retrying at the next interval");
            }
        }
    });
}
