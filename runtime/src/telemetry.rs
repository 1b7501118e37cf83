//! Structured logging with `tracing`: human-readable by default, JSON with
//! `ALEPHAUTO_LOG_FORMAT=json`; the filter comes from `RUST_LOG` (default `info`).
//!
//! Optional error reporting through the official `sentry` client, off unless a DSN is
//! configured (`runtime.sentry_dsn` or `SENTRY_DSN`): error logs and panics become Sentry
//! events (warnings and info lines breadcrumbs), and every job that ends failed is reported
//! with its pipeline, attempt and failure code as tags.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::domain::JobFailure;

/// Longest failure message sent to Sentry (a guest writes it).
const MAX_REPORTED_MESSAGE: usize = 1000;

/// Installs the global subscriber (logs go to stderr so stdout stays for output). The Sentry
/// layer is always there and does nothing until [`init_sentry`] binds a client.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("ALEPHAUTO_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter).with(sentry::integrations::tracing::layer());
    let _ = if json { registry.with(fmt.json()).try_init() } else { registry.with(fmt).try_init() };
}

/// Starts Sentry reporting when `dsn` (else `SENTRY_DSN`) names one; keep the guard for the
/// life of the process (dropping it flushes what is queued). None: reporting stays off.
pub fn init_sentry(dsn: Option<&str>) -> anyhow::Result<Option<sentry::ClientInitGuard>> {
    let from_env = std::env::var("SENTRY_DSN").ok().filter(|d| !d.trim().is_empty());
    let Some(dsn) = dsn.map(str::to_string).or(from_env) else { return Ok(None) };
    let parsed: sentry::types::Dsn =
        dsn.parse().map_err(|e| anyhow::anyhow!("runtime.sentry_dsn / SENTRY_DSN is not a Sentry DSN: {e}"))?;
    let guard = sentry::init(sentry::ClientOptions {
        dsn: Some(parsed),
        release: Some(concat!("alephauto@", env!("CARGO_PKG_VERSION")).into()),
        // Job data and paths may be private: never attach the host's user or IP.
        send_default_pii: false,
        ..Default::default()
    });
    tracing::info!("Sentry error reporting on");
    Ok(Some(guard))
}

/// Reports a job that ended failed (a no-op unless Sentry is on).
pub fn report_job_failure(pipeline: &str, job: &str, attempt: u32, failure: &JobFailure) {
    if sentry::Hub::current().client().is_none() {
        return;
    }
    let mut message: String = failure.message.chars().take(MAX_REPORTED_MESSAGE).collect();
    if message.len() < failure.message.len() {
        message.push('…');
    }
    let code = failure.code.to_string();
    sentry::with_scope(
        |scope| {
            scope.set_tag("pipeline", pipeline);
            scope.set_tag("job", job);
            scope.set_tag("attempt", attempt);
            scope.set_tag("failure_code", &code);
            // One issue per pipeline and failure code, not one per job.
            scope.set_fingerprint(Some(["job-failed", pipeline, code.as_str()].as_ref()));
        },
        || {
            sentry::capture_message(
                &format!("Job {job} of {pipeline} failed ({code}): {message}"),
                sentry::Level::Error,
            )
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_dsn_is_refused_naming_the_setting() {
        let Err(err) = init_sentry(Some("not a dsn")) else { panic!("a bad DSN was accepted") };
        let err = err.to_string();
        assert!(err.contains("runtime.sentry_dsn"), "{err}");
    }

    #[test]
    fn reporting_without_a_client_is_a_no_op() {
        // No client bound in this test process: nothing is captured, nothing panics.
        let failure = JobFailure {
            message: "x".repeat(5000),
            code: crate::domain::FailureCode::parse("FAILED"),
            retryable: false,
        };
        report_job_failure("p", "j", 1, &failure);
        assert!(sentry::Hub::current().client().is_none());
    }
}
