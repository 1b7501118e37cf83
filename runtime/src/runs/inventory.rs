//! Inventories: the configured ones (read-only) and those created over the API (stored),
//! resolved to targets. An API-created inventory may only name places inside some
//! pipeline's granted roots, so an API user cannot make the server list other folders.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::RunError;
use super::discover::{Discovered, discover};
use crate::config::inventory::{self, InventoryConfig};

/// Most targets a run (and an inventory listing) takes from one inventory.
pub const MAX_TARGETS: usize = 1000;
/// Entry budget of an API-created discovery (configured ones may go to `inventory::MAX_ENTRIES`).
pub const API_MAX_ENTRIES: usize = 10_000;

/// Where an inventory is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// `[inventories.NAME]` in the configuration: read-only over the API.
    Config,
    /// Created over the API.
    Api,
}

/// A named inventory.
#[derive(Debug, Clone, PartialEq)]
pub struct Inventory {
    /// Its name.
    pub name: String,
    /// Its definition.
    pub spec: InventoryConfig,
    /// Where it is defined.
    pub source: Source,
    /// When it was created (API-created only).
    pub created_at: Option<DateTime<Utc>>,
}

/// Resolves `spec` to its targets (blocking: discovery walks the file system).
pub fn targets(spec: &InventoryConfig) -> anyhow::Result<Discovered> {
    match &spec.discover {
        Some(d) => discover(d, MAX_TARGETS),
        None => Ok(Discovered {
            truncated: spec.paths.len() > MAX_TARGETS,
            targets: spec.paths.iter().take(MAX_TARGETS).cloned().collect(),
            links_skipped: 0,
        }),
    }
}

/// Checks an inventory given over the API: a valid name, a valid definition, and every place
/// it names (explicit paths, the discovery base) existing inside one of `roots` (canonical).
pub fn check_new(name: &str, spec: &InventoryConfig, roots: &[PathBuf]) -> Result<(), RunError> {
    let invalid = |field: &str, message: String| RunError::Invalid { field: field.into(), message };
    if !inventory::is_valid_name(name) {
        return Err(invalid("name", format!("{name:?} must match [a-z0-9][a-z0-9-]{{0,62}}")));
    }
    if let Some(problem) = spec.problems("inventory").into_iter().next() {
        return Err(invalid("inventory", problem));
    }
    if let Some(d) = &spec.discover
        && d.max_entries > API_MAX_ENTRIES
    {
        return Err(invalid(
            "discover.maxEntries",
            format!("at most {API_MAX_ENTRIES} for an inventory made over the API"),
        ));
    }
    let places: Vec<(&str, &Path)> = match &spec.discover {
        Some(d) => vec![("discover.base", d.base.as_path())],
        None => spec.paths.iter().map(|p| ("paths", p.as_path())).collect(),
    };
    for (field, place) in places {
        let canonical = std::fs::canonicalize(place)
            .map_err(|e| invalid(field, format!("{} cannot be resolved: {e}", place.display())))?;
        if !roots.iter().any(|r| canonical.starts_with(r)) {
            return Err(invalid(field, format!("{} lies outside every pipeline's granted roots", place.display())));
        }
    }
    Ok(())
}
