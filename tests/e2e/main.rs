//! End-to-end tests: the real `alephauto` binary, real components, real SQLite
//! files and real git repositories, driven the way a user drives them.

mod cdp;
mod support;

mod cluster;
mod contract;
mod control;
mod dashboard;
mod gitflow;
mod hardening;
mod hostile;
mod pipelines;
mod polyglot;
mod registry;
mod skeleton;
mod store_backends;
