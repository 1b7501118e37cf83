//! The `alephauto` binary: parses the command line and hands over to the library.

/// mimalloc instead of glibc malloc: per-job and per-request allocations (JSON, events,
/// store rows) spent ~12% of the server's CPU in glibc's allocator under load. The crate's
/// `override` feature also routes C `malloc` (the bundled SQLite's) to it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // Every finished job drops an error inside wasmtime; with RUST_BACKTRACE=1 inherited
        // from a shell each one would capture a backtrace (~20% of a no-op job). Panics keep
        // theirs. SAFETY: no other thread exists yet.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
    alephauto::telemetry::init();
    // Test builds only: failpoints named in `FAILPOINTS` (e.g. `schedule-fire=sleep(60000)`).
    #[cfg(feature = "test-hooks")]
    let _failpoints = fail::FailScenario::setup();
    alephauto::cli::main()
}
