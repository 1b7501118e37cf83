//! The only `bindgen!` in the runtime: host bindings for the `pipeline-worker`
//! world in the repository's `wit/` folder. Generated code stays here; the
//! capability implementations live in `sandbox::capabilities`.

// Generated items carry the WIT's comments only where it has them.
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    world: "pipeline-worker",
    path: "../wit",
    imports: { default: async | trappable },
    exports: { default: async },
});

pub use self::alephauto::worker::{git, host, types};
pub use self::exports::alephauto::worker::worker as guest;
