//! End-to-end tests: the real `alephauto` binary, real components, real SQLite
//! files and real git repositories, driven the way a user drives them.

mod support;

mod hostile;
mod registry;
mod skeleton;
