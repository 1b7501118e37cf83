//! Host capabilities a guest can call, one module per capability (`fs` for WASI's
//! filesystem, `host` and `git` for the WIT interfaces), each owning its per-job state,
//! its linker hookup and its confinement. Each checks the job's grants itself: a guest
//! reaches only what its job was granted up front.

pub mod fs;
pub mod git;
pub mod host;
