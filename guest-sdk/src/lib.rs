//! Guest SDK for AlephAuto pipeline workers: implement [`Worker`], call [`export_worker!`],
//! build for `wasm32-wasip2`.
//!
//! # Layout
//! - `bindings`: the only `wit_bindgen::generate!` (over `../wit`); hidden behind the rest.
//! - `worker`: the [`Worker`] trait, [`WorkerInfo`] and the export adapter.
//! - `params`: schema generation and typed parsing of parameters.
//! - `context`: [`Context`] (progress, log, grants, cancel, exec bit) and [`Reporter`].
//! - `git`: typed wrappers over the host's read-only git queries.
//! - `walk`: `.gitignore`-aware tree walking that never follows symlinks nor enters `.git`.
//! - `html`: escaping and the self-contained page shell of HTML reports (no script, inline CSS).
//! - `lang`, `time`: extension → language, and UTC civil dates (no tz database in a guest).
//! - `error`: [`JobError`] and [`ResultExt`].
//! - `testing` (feature `testing`): the contract check every worker's tests run, fixture files.
//!
//! Invariant: worker logic depends on [`Reporter`], not [`Context`], so it runs natively in tests.

#[doc(hidden)]
pub mod bindings;
mod context;
mod error;
mod git;
pub mod html;
pub mod lang;
pub mod params;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod time;
pub mod walk;
mod worker;

pub use context::{Context, Grant, Level, Log, Reporter, Silent};
pub use error::{JobError, ResultExt};
pub use git::{Commit, FileChange, Git, GitError, StatusEntry};
pub use worker::{Adapter, GitWorkflow, Worker, WorkerInfo};

/// Re-exported so workers use the same versions as the SDK.
pub use schemars;
/// Re-exported so workers use the same versions as the SDK.
pub use serde_json;
