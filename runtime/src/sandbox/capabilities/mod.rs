//! Host capabilities a guest can call, one module per capability (`fs` for WASI's
//! filesystem, `host` and `git` for the WIT interfaces), each owning its per-job state,
//! its linker hookup and its confinement. Each checks the job's grants itself: a guest
//! reaches only what its job was granted up front.
//!
//! They live inside `sandbox` because they implement the `bindgen!` traits on `HostState`:
//! the generated types and `HostState`'s fields stay private to the sandbox.

pub mod fs;
pub mod git;
pub mod host;
