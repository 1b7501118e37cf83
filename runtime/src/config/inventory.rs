//! `[inventories.NAME]`: named sets of targets a run fans out over, either explicit `paths`
//! or a `discover` walk under a base folder. Plain data; the walk itself is `runs::discover`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Most folders a discovery walk may descend below its base.
pub const MAX_DEPTH: usize = 8;
/// Most entries a discovery walk may visit (its default budget, and the cap on any other).
pub const MAX_ENTRIES: usize = 100_000;
/// Most explicit paths an inventory may list.
pub const MAX_PATHS: usize = 1000;
/// Most exclusion globs a discovery may carry.
pub const MAX_EXCLUDES: usize = 64;

/// One inventory: explicit `paths`, or a `discover` walk (exactly one of them).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InventoryConfig {
    /// Explicit target folders (or files), absolute or relative to the config file's folder.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<PathBuf>,
    /// Targets found under a base folder when a run starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discover: Option<DiscoverConfig>,
}

/// What a discovery walk collects.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// Folders (with `git_only`, only git work trees: a `.git` entry inside).
    #[default]
    Folders,
    /// README files (README.md, readme.md, README.markdown), e.g. for schema-enhancement.
    Readme,
}

/// A discovery walk under `base`, within budgets; symbolic links are never followed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct DiscoverConfig {
    /// Folder the walk starts from (not itself a target).
    pub base: PathBuf,
    /// Folder levels below `base` searched (1: its children only).
    pub depth: usize,
    /// Globs (gitignore wildmatch) on the path relative to `base` or on an entry's name;
    /// a matching folder is not entered.
    pub exclude: Vec<String>,
    /// Folders: only git work trees (and the walk does not descend into one).
    #[serde(alias = "git_only")]
    pub git_only: bool,
    /// What becomes a target.
    pub targets: TargetKind,
    /// Entries the walk may visit before it stops (reported as truncated).
    #[serde(alias = "max_entries")]
    pub max_entries: usize,
}

impl Default for DiscoverConfig {
    fn default() -> Self {
        Self {
            base: PathBuf::new(),
            depth: 2,
            exclude: Vec::new(),
            git_only: true,
            targets: TargetKind::Folders,
            max_entries: 10_000,
        }
    }
}

/// Inventory names are URL path segments: the pipeline-id rule.
pub fn is_valid_name(name: &str) -> bool {
    super::is_valid_pipeline_id(name)
}

impl InventoryConfig {
    /// Every problem with this inventory, each naming `at` (e.g. `inventories.repos`).
    pub fn problems(&self, at: &str) -> Vec<String> {
        let mut out = Vec::new();
        match (&self.discover, self.paths.is_empty()) {
            (Some(_), false) => out.push(format!("{at}: give `paths` or `discover`, not both")),
            (None, true) => out.push(format!("{at}: give `paths` or `discover`")),
            _ => {}
        }
        if self.paths.len() > MAX_PATHS {
            out.push(format!("{at}.paths: at most {MAX_PATHS} paths"));
        }
        for p in &self.paths {
            if !p.is_absolute() {
                out.push(format!("{at}.paths: {} is not an absolute path", p.display()));
            }
        }
        if let Some(d) = &self.discover {
            if !d.base.is_absolute() {
                out.push(format!("{at}.discover.base: {:?} is not an absolute path", d.base.display().to_string()));
            }
            if d.depth == 0 || d.depth > MAX_DEPTH {
                out.push(format!("{at}.discover.depth must be in 1..={MAX_DEPTH}"));
            }
            if d.max_entries == 0 || d.max_entries > MAX_ENTRIES {
                out.push(format!("{at}.discover.max_entries must be in 1..={MAX_ENTRIES}"));
            }
            if d.exclude.len() > MAX_EXCLUDES {
                out.push(format!("{at}.discover.exclude: at most {MAX_EXCLUDES} globs"));
            }
            for g in &d.exclude {
                if g.is_empty() || g.len() > 256 {
                    out.push(format!("{at}.discover.exclude: {g:?} must be 1 to 256 characters"));
                }
            }
        }
        out
    }

    /// Makes relative paths absolute against `base` (the config file's folder), `~` expanded.
    pub(super) fn resolve_paths(&mut self, abs: impl Fn(&Path) -> PathBuf) {
        self.paths = self.paths.iter().map(|p| abs(p)).collect();
        if let Some(d) = &mut self.discover {
            d.base = abs(&d.base);
        }
    }
}
