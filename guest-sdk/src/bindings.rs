//! The only `generate!`: raw bindings for the `pipeline-worker` world, over `../wit`.
//!
//! Workers never use these directly; `crate::export_worker!` wires the exports and
//! `crate::Context` wraps the imports.

wit_bindgen::generate!({
    world: "pipeline-worker",
    path: "../wit",
    pub_export_macro: true,
    export_macro_name: "__export_pipeline_worker",
    default_bindings_module: "::alephauto_guest::bindings",
});
