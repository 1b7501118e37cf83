//! Inventory schedules start runs: the scheduler's `InventoryLauncher` over [`Runs`].

use async_trait::async_trait;

use super::model::RunState;
use super::{Runs, StartRun};
use crate::schedule::launch::{self, InventoryLauncher, LaunchError};

#[async_trait]
impl InventoryLauncher for Runs {
    async fn has_inventory(&self, inventory: &str) -> bool {
        self.inventory(inventory).await.is_ok()
    }

    /// One run per fire: the fire's dedupe key makes a second start (another node, a restart
    /// after a kill between deciding and inserting) return the first run, not a new one.
    async fn start(&self, run: launch::StartRun) -> Result<String, LaunchError> {
        let request = StartRun {
            pipeline: run.pipeline,
            inventory: run.inventory,
            parameters: run.parameters,
            path_parameter: None,
            triggered_by: run.triggered_by,
            dedupe_key: Some(run.dedupe_key),
        };
        match Runs::start(self, request).await {
            Ok((detail, true)) => Ok(detail.summary.record.id),
            Ok((_, false)) => Err(LaunchError::AlreadyLaunched),
            Err(e) => Err(LaunchError::Refused(e.to_string())),
        }
    }

    async fn is_active(&self, run_id: &str) -> bool {
        self.detail(run_id)
            .await
            .is_ok_and(|d| matches!(d.summary.state, RunState::Starting | RunState::Queued | RunState::Running))
    }
}
