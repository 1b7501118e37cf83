//! The web dashboard at `/`: plain HTML, CSS and JavaScript embedded in the binary
//! (no front-end build, no CDN, no separate server). The page talks to the same API
//! and `/ws` feed as every other client.
//!
//! Caching: every file carries a strong `ETag` (a SHA-256 prefix of its bytes) and
//! `If-None-Match` gets a 304. `index.html` refers to its assets with `?v=<hash>`;
//! a request whose `v` matches the current hash may be cached forever, anything else
//! must be revalidated, so a new binary never serves a stale script.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::RawQuery;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use super::AppState;

const INDEX_HTML: &str = include_str!("../../assets/index.html");
const APP_JS: &str = include_str!("../../assets/app.js");
const APP_CSS: &str = include_str!("../../assets/app.css");
const FAVICON_SVG: &str = include_str!("../../assets/favicon.svg");

/// The page's Content-Security-Policy: only this origin, no inline script or style
/// markup, no framing of the dashboard; it frames only this origin's artifacts (which the
/// server sends with their own `sandbox` policy).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self' ws: wss:; font-src 'self'; base-uri 'none'; form-action 'none'; \
                   frame-src 'self'; frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    body: String,
    content_type: &'static str,
    /// Hex SHA-256 prefix of `body`.
    hash: String,
    /// `"<hash>"`.
    etag: HeaderValue,
}

impl Asset {
    fn new(body: String, content_type: &'static str) -> Self {
        let hash = hex::encode(&Sha256::digest(body.as_bytes())[..8]);
        let etag = HeaderValue::from_str(&format!("\"{hash}\"")).expect("hex is a valid header value");
        Self { body, content_type, hash, etag }
    }
}

static JS: LazyLock<Asset> = LazyLock::new(|| Asset::new(APP_JS.to_string(), "text/javascript; charset=utf-8"));
static CSS: LazyLock<Asset> = LazyLock::new(|| Asset::new(APP_CSS.to_string(), "text/css; charset=utf-8"));
static ICON: LazyLock<Asset> = LazyLock::new(|| Asset::new(FAVICON_SVG.to_string(), "image/svg+xml"));
static INDEX: LazyLock<Asset> = LazyLock::new(|| {
    let html = INDEX_HTML
        .replace("{{APP_JS_HASH}}", &JS.hash)
        .replace("{{APP_CSS_HASH}}", &CSS.hash)
        .replace("{{FAVICON_HASH}}", &ICON.hash)
        .replace("{{VERSION}}", env!("CARGO_PKG_VERSION"));
    Asset::new(html, "text/html; charset=utf-8")
});

/// Dashboard routes: `/`, `/index.html` and `/assets/*`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/assets/app.js", get(|h: HeaderMap, q: RawQuery| async move { asset(&JS, &h, q.0.as_deref()) }))
        .route("/assets/app.css", get(|h: HeaderMap, q: RawQuery| async move { asset(&CSS, &h, q.0.as_deref()) }))
        .route("/assets/favicon.svg", get(|h: HeaderMap, q: RawQuery| async move { asset(&ICON, &h, q.0.as_deref()) }))
}

async fn index(headers: HeaderMap) -> Response {
    let mut res = serve(&INDEX, &headers, "no-cache");
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    res
}

fn asset(asset: &'static Asset, headers: &HeaderMap, query: Option<&str>) -> Response {
    let versioned = query.is_some_and(|q| q.split('&').any(|p| p.strip_prefix("v=") == Some(asset.hash.as_str())));
    let cache = if versioned { "public, max-age=31536000, immutable" } else { "no-cache" };
    serve(asset, headers, cache)
}

/// True when `If-None-Match` names `etag` (or `*`); weak comparison, as RFC 9110 asks.
fn not_modified(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let Some(inm) = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) else { return false };
    let ours = etag.to_str().unwrap_or_default();
    inm.split(',').map(str::trim).any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == ours)
}

fn serve(asset: &'static Asset, headers: &HeaderMap, cache: &'static str) -> Response {
    let common = [
        (header::ETAG, asset.etag.clone()),
        (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
    ];
    if not_modified(headers, &asset.etag) {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (
        StatusCode::OK,
        common,
        [(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type))],
        asset.body.as_str(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_refers_to_the_current_asset_hashes() {
        assert!(INDEX.body.contains(&format!("/assets/app.js?v={}", JS.hash)));
        assert!(INDEX.body.contains(&format!("/assets/app.css?v={}", CSS.hash)));
        assert!(!INDEX.body.contains("{{"), "every placeholder is filled");
    }

    #[test]
    fn etags_match_strongly_weakly_and_in_lists() {
        let etag = HeaderValue::from_static("\"abc\"");
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::IF_NONE_MATCH, HeaderValue::from_static(v));
            not_modified(&h, &etag)
        };
        assert!(with("\"abc\""));
        assert!(with("W/\"abc\""));
        assert!(with("\"x\", \"abc\""));
        assert!(with("*"));
        assert!(!with("\"abd\""));
        assert!(!not_modified(&HeaderMap::new(), &etag));
    }

    #[test]
    fn the_script_never_parses_strings_as_html_and_loads_nothing_remote() {
        for banned in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"] {
            assert!(!APP_JS.contains(banned), "app.js must not use {banned}");
        }
        for file in [APP_JS, APP_CSS, INDEX_HTML] {
            assert!(!file.contains("https://") && !file.contains("http://"), "no remote resources");
        }
    }
}
