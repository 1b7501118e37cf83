//! Structured logging with `tracing`: human-readable by default, JSON with
//! `ALEPHAUTO_LOG_FORMAT=json`; the filter comes from `RUST_LOG` (default `info`).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber (logs go to stderr so stdout stays for output).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let json = std::env::var("ALEPHAUTO_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}
