//! The HTTP edge: what keeps a web page the user happens to visit from driving or
//! reading the API, and what bounds a single client.
//!
//! - `Host` must be an IP literal, `localhost` or a configured name (421 otherwise):
//!   DNS rebinding needs the attacker's own name in `Host`.
//! - A request carrying an `Origin` other than this server's own (or an allowed one)
//!   is refused with 403; so is a cross-site subresource load without `Origin`
//!   (`Sec-Fetch-Site`). Allowed origins get CORS headers (tower-http's `CorsLayer`).
//! - POSTs (every mutating route) must be `application/json` (415): no "simple"
//!   cross-origin request (`text/plain`, forms) can reach a handler, even where `Origin`
//!   is absent. The one PUT, the component upload, must be `application/wasm`.
//! - Mutating requests are rate limited per peer IP (429 + `Retry-After`).
//! - Every request is answered within `request_timeout_secs` (408).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::error::ApiError;
use crate::config::{RateLimitConfig, ServerConfig};

/// The allow-lists, normalised (lower case, no trailing slash or dot).
#[derive(Debug, Default)]
pub struct EdgePolicy {
    hosts: Vec<String>,
    origins: Vec<String>,
}

impl EdgePolicy {
    /// The policy of `[server]`.
    pub fn new(server: &ServerConfig) -> Arc<Self> {
        Arc::new(Self {
            hosts: server.allowed_hosts.iter().map(|h| normalise_name(host_name(h))).collect(),
            origins: server.allowed_origins.iter().map(|o| o.trim_end_matches('/').to_ascii_lowercase()).collect(),
        })
    }

    /// True when the `Host` value names this server: an IP literal (a page can only be
    /// same-origin with it if this server served the page), `localhost`, or an allowed name.
    pub fn host_allowed(&self, host: &str) -> bool {
        let name = host_name(host);
        if name.parse::<IpAddr>().is_ok() {
            return true;
        }
        let name = normalise_name(name);
        name == "localhost" || self.hosts.contains(&name)
    }

    /// True when `origin` is this server's own (same authority as `Host`) or allowed.
    pub fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        if self.origins.contains(&origin) {
            return true;
        }
        let (Some((scheme, authority)), Some(host)) = (origin.split_once("://"), host) else { return false };
        let host = host.to_ascii_lowercase();
        let default_port = match scheme {
            "http" => "80",
            "https" => "443",
            _ => return false,
        };
        authority == host || host.strip_suffix(default_port).and_then(|h| h.strip_suffix(':')) == Some(authority)
    }

    /// CORS headers and preflight answers for the allowed origins (none: no layer).
    pub fn cors(&self) -> Option<CorsLayer> {
        let origins: Vec<HeaderValue> = self.origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
        if origins.is_empty() {
            return None;
        }
        Some(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
                .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION, HeaderName::from_static("x-api-key")])
                .max_age(Duration::from_secs(600)),
        )
    }
}

/// The host part of `host[:port]` or `[v6]:port`.
fn host_name(authority: &str) -> &str {
    let authority = authority.trim();
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    }
}

fn normalise_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn refuse(status: StatusCode, code: &'static str, message: String) -> Response {
    ApiError { status, code, message, retry_after: None }.into_response()
}

/// True when a browser says this is a cross-site subresource load (an `<img>`, a
/// `<script>`, a no-cors `fetch`): browsers send no `Origin` with those.
fn cross_site_subresource(headers: &HeaderMap) -> bool {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    matches!(get("sec-fetch-site"), "cross-site" | "same-site") && get("sec-fetch-mode") != "navigate"
}

/// Middleware: refuses foreign `Host` values (421) and foreign origins (403).
pub async fn check_host_and_origin(State(policy): State<Arc<EdgePolicy>>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let host = headers.get(header::HOST).map(|v| v.to_str().unwrap_or("\u{fffd}"));
    if let Some(host) = host
        && !policy.host_allowed(host)
    {
        tracing::warn!(host, "refused a request for a foreign Host (DNS rebinding?)");
        return refuse(
            StatusCode::MISDIRECTED_REQUEST,
            "HOST_NOT_ALLOWED",
            format!("Host {host:?} is not this server's; add it to server.allowed_hosts if it is"),
        );
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("\u{fffd}");
        if !policy.origin_allowed(origin, host) {
            tracing::warn!(origin, path = %req.uri().path(), "refused a cross-origin request");
            return refuse(
                StatusCode::FORBIDDEN,
                "ORIGIN_NOT_ALLOWED",
                format!(
                    "Requests from origin {origin:?} are not allowed; add it to server.allowed_origins if they should be"
                ),
            );
        }
    } else if cross_site_subresource(headers) {
        return refuse(StatusCode::FORBIDDEN, "ORIGIN_NOT_ALLOWED", "Cross-site requests are not allowed".into());
    }
    next.run(req).await
}

/// Middleware (on matched paths): a POST must say `application/json`; the component upload
/// (a PUT) must say `application/wasm`, the one route that takes anything else. POST is the
/// only method a page can send cross-origin without a preflight (and every mutating route's
/// but the upload); other methods pass, so a wrong one still meets the route's 405.
pub async fn require_json(req: Request, next: Next) -> Response {
    let upload_route =
        req.extensions().get::<MatchedPath>().is_some_and(|p| p.as_str() == super::versions::COMPONENT_ROUTE);
    let wanted = if upload_route {
        (req.method() == Method::PUT).then_some(super::versions::WASM_MEDIA_TYPE)
    } else {
        (req.method() == Method::POST).then_some("application/json")
    };
    if let Some(wanted) = wanted {
        let media = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let essence = media.split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case(wanted) {
            let got = if media.is_empty() { "no Content-Type".to_string() } else { format!("Content-Type {media:?}") };
            let hint = if upload_route { "" } else { " (send {} for an empty body)" };
            return refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
                format!("This route takes Content-Type: {wanted}{hint}, got {got}"),
            );
        }
    }
    next.run(req).await
}

/// Middleware: a request that is not answered within the limit gets a 408 (a body sent
/// byte by byte, a handler stuck on a slow client).
pub async fn request_timeout(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => refuse(
            StatusCode::REQUEST_TIMEOUT,
            "REQUEST_TIMEOUT",
            format!("The request took longer than {} s (server.request_timeout_secs)", limit.as_secs()),
        ),
    }
}

/// Adds the per-client rate limit on mutating methods (none when `requests` is 0), and a
/// task that forgets idle clients every minute until `shutdown`.
pub fn with_rate_limit<S>(router: Router<S>, cfg: &RateLimitConfig, shutdown: CancellationToken) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    if cfg.requests == 0 {
        return router;
    }
    let period = (Duration::from_secs(cfg.window_secs.max(1)) / cfg.requests).max(Duration::from_nanos(1));
    let Some(config) = GovernorConfigBuilder::default()
        .period(period)
        .burst_size(cfg.requests)
        .methods(vec![Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
        .finish()
    else {
        return router;
    };
    let limiter = config.limiter().clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(60)) => limiter.retain_recent(),
            }
        }
    });
    let layer = GovernorLayer::new(config).error_handler(|e| {
        let err = match e {
            tower_governor::GovernorError::TooManyRequests { wait_time, .. } => ApiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                code: "RATE_LIMITED",
                message: format!(
                    "Too many requests from this client; retry in {} s (server.rate_limit)",
                    wait_time.max(1)
                ),
                retry_after: Some(wait_time.max(1)),
            },
            // The server inserts every peer address, so this is a bug if it happens.
            other => ApiError::internal(format!("rate limiter: {other}")),
        };
        err.into_response()
    });
    router.layer(layer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(hosts: &[&str], origins: &[&str]) -> Arc<EdgePolicy> {
        EdgePolicy::new(&ServerConfig {
            allowed_hosts: hosts.iter().map(|s| s.to_string()).collect(),
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            ..ServerConfig::default()
        })
    }

    #[test]
    fn hosts_are_ip_literals_localhost_or_configured_names() {
        let p = policy(&["Ops.Example.com"], &[]);
        for ok in [
            "127.0.0.1:8080",
            "127.0.0.1",
            "[::1]:8080",
            "10.1.2.3:80",
            "localhost:8080",
            "LOCALHOST.",
            "ops.example.com:443",
        ] {
            assert!(p.host_allowed(ok), "{ok}");
        }
        for bad in
            ["evil.example:8080", "evil.example", "127.0.0.1.nip.io:8080", "localhost.evil.example", "0x7f.1:8080", ""]
        {
            assert!(!p.host_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn origins_match_their_host_or_the_allow_list() {
        let p = policy(&[], &["https://ops.example.com/"]);
        assert!(p.origin_allowed("http://127.0.0.1:8080", Some("127.0.0.1:8080")));
        assert!(p.origin_allowed("http://LOCALHOST:8080", Some("localhost:8080")));
        assert!(p.origin_allowed("http://localhost", Some("localhost:80")));
        assert!(p.origin_allowed("https://ops.example.com", Some("127.0.0.1:8080")));
        assert!(!p.origin_allowed("http://127.0.0.1:9999", Some("127.0.0.1:8080")));
        assert!(!p.origin_allowed("http://evil.example", Some("127.0.0.1:8080")));
        assert!(!p.origin_allowed("null", Some("127.0.0.1:8080")));
        assert!(!p.origin_allowed("http://127.0.0.1:8080", None));
    }
}
