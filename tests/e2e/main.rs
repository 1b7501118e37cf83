//! End-to-end tests: the real `alephauto` binary, real components, real SQLite
//! files and real git repositories, driven the way a user drives them.

// Test code throughout, helpers included (clippy's allow-unwrap-in-tests looks for cfg(test)).
#![cfg(test)]

mod cdp;
mod client;
mod support;

mod artifacts;
mod cluster;
mod contract;
mod control;
// Needs the failpoints: `cargo test --features alephauto/test-hooks` (scripts/test.sh does).
#[cfg(feature = "test-hooks")]
mod crash;
mod dashboard;
mod edge;
mod gitflow;
mod hardening;
mod hostile;
mod hostile_data;
mod hostile_git;
mod hostile_limits;
mod hostile_schema;
mod pipelines;
mod polyglot;
mod registry;
mod reports;
mod runs;
// Needs the test clock and failpoints: `cargo test --features test-hooks`.
#[cfg(feature = "test-hooks")]
mod schedules;
mod skeleton;
mod store_backends;
mod versions;
mod webhooks;
