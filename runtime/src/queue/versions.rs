//! Worker versions through the queue, for the API: deploy a component, list the registered
//! versions, roll back. The registry does the work (`registry::deploy`); jobs already
//! triggered keep the version they recorded.

use std::sync::Arc;

use super::Queue;
use crate::registry::versions::{VersionInfo, VersionSource};
use crate::registry::worker::Worker;
use crate::registry::{Deployed, RegistryError};

impl Queue<super::Workers> {
    /// Makes `wasm` the active version of `pipeline` once it compiled, described and
    /// initialised; refused otherwise, with the active version untouched.
    pub async fn deploy(&self, pipeline: &str, wasm: Vec<u8>) -> Result<Deployed, RegistryError> {
        self.inner.executor.registry().deploy(pipeline, wasm, VersionSource::Upload).await
    }

    /// The registered versions of `pipeline` (oldest first) and the active digest.
    pub fn versions(&self, pipeline: &str) -> Result<(Option<String>, Vec<VersionInfo>), RegistryError> {
        self.inner.executor.registry().versions(pipeline)
    }

    /// Makes the named version, or the one before the active one, active again.
    pub async fn rollback(&self, pipeline: &str, version: Option<&str>) -> Result<Arc<Worker>, RegistryError> {
        self.inner.executor.registry().rollback(pipeline, version).await
    }
}
