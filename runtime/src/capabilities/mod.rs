//! Host capabilities a guest can call, one module per WIT interface. Each checks the
//! job's grants itself: a guest reaches only what its job was granted up front.

pub mod fs;
pub mod git;
pub mod host;
