//! API-key auth: mutating routes and `/ws` need the key in `X-API-Key` or
//! `Authorization: Bearer`; on `/ws` a browser (which cannot set headers on a
//! WebSocket) offers it hex-encoded as the subprotocol `alephauto.key.<hex>` next to
//! [`WS_PROTOCOL`]. Never in the query string: URLs end up in logs and history.
//! Missing → 401, wrong → 403. Reads stay open (the edge checks keep browsers out).
//!
//! Where the key comes from ([`resolve_key`]): `serve --api-key`, `ALEPHAUTO_API_KEY`,
//! `server.api_key`, else a key generated once into `<data_dir>/api-key` (mode 0600)
//! and re-used; `server.require_key = false` turns it off on a loopback bind only.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use crate::config::{API_KEY_FILE, ServerConfig, is_valid_api_key};

/// The WebSocket subprotocol the server answers with; a client carrying its key as a
/// subprotocol offers this one too (`Sec-WebSocket-Protocol: alephauto.v1, alephauto.key.<hex>`),
/// so the key is never echoed back.
pub const WS_PROTOCOL: &str = "alephauto.v1";

/// Prefix of the subprotocol that carries the API key on `/ws`, hex-encoded: a key may hold
/// `+`, `/` or `=`, which a subprotocol token may not.
pub const WS_KEY_PROTOCOL_PREFIX: &str = "alephauto.key.";

/// Where a generated key lives: `<data_dir>/api-key`.
pub fn key_file(data_dir: &Path) -> PathBuf {
    data_dir.join(API_KEY_FILE)
}

/// Reads the generated key from `<data_dir>/api-key`, if there is one (for the CLI).
pub fn read_key_file(data_dir: &Path) -> Result<Option<String>> {
    let path = key_file(data_dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let key = text.trim().to_string();
            if !is_valid_api_key(&key) {
                bail!("{} does not hold a valid API key; delete it to generate a new one", path.display());
            }
            Ok(Some(key))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Returns the key in `<data_dir>/api-key`, generating it first when absent: 32 random
/// bytes as hex, written to a private temporary file and hard-linked into place, so the
/// file appears whole and only once (`link` fails if it exists, like `O_EXCL`) even when
/// two processes start together. `true` when this call created it.
pub fn load_or_create_key(data_dir: &Path) -> Result<(String, bool)> {
    if let Some(key) = read_key_file(data_dir)? {
        tighten_permissions(&key_file(data_dir));
        return Ok((key, false));
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no system randomness for the API key: {e}"))?;
    let key = hex::encode(bytes);
    let path = key_file(data_dir);
    let tmp = data_dir.join(format!(".{API_KEY_FILE}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let written = opts
        .open(&tmp)
        .and_then(|mut f| f.write_all(format!("{key}\n").as_bytes()).and_then(|()| f.sync_all()))
        .with_context(|| format!("writing {}", tmp.display()));
    let linked = written.and_then(|()| match std::fs::hard_link(&tmp, &path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    });
    let _ = std::fs::remove_file(&tmp);
    if linked? {
        return Ok((key, true));
    }
    // Another process won the race: use its key.
    let key = read_key_file(data_dir)?.with_context(|| format!("{} vanished", path.display()))?;
    Ok((key, false))
}

/// A key file others can read is made private again (and said so).
fn tighten_permissions(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), "the API key file was readable by others; setting mode 0600");
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// The key the server enforces, and whether it was generated into the data folder.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerKey {
    /// Given by the operator (flag, environment or configuration).
    Configured(String),
    /// Generated on a first run and kept in `<data_dir>/api-key`.
    Generated(String),
    /// `server.require_key = false`: no key at all.
    Disabled,
}

impl ServerKey {
    /// The key, unless disabled.
    pub fn key(&self) -> Option<&str> {
        match self {
            ServerKey::Configured(k) | ServerKey::Generated(k) => Some(k),
            ServerKey::Disabled => None,
        }
    }
}

/// Picks the key: `flag` (`serve --api-key`), then `ALEPHAUTO_API_KEY`, then
/// `server.api_key`, else the opt-out (loopback only) or the generated key.
pub fn resolve_key(flag: Option<&str>, server: &ServerConfig, data_dir: &Path, loopback: bool) -> Result<ServerKey> {
    let env = std::env::var("ALEPHAUTO_API_KEY").ok();
    let configured = [flag, env.as_deref(), server.api_key.as_deref()].into_iter().flatten().find(|k| !k.is_empty());
    if let Some(key) = configured {
        if !is_valid_api_key(key) {
            bail!("the API key may hold only printable ASCII without spaces (it travels in headers)");
        }
        return Ok(ServerKey::Configured(key.to_string()));
    }
    if !server.require_key {
        if !loopback {
            bail!(
                "refusing to listen on non-loopback address without an API key: server.require_key = false is \
                 accepted only on a loopback bind; remove it (a key is then generated) or set server.api_key"
            );
        }
        tracing::warn!("server.require_key = false: any local user and process can trigger and cancel jobs");
        return Ok(ServerKey::Disabled);
    }
    let (key, created) = load_or_create_key(data_dir)?;
    if created {
        tracing::info!(path = %key_file(data_dir).display(), "generated an API key (mode 0600)");
    }
    Ok(ServerKey::Generated(key))
}

/// Compares in time independent of where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The subprotocol that carries `key` (see [`WS_KEY_PROTOCOL_PREFIX`]).
pub fn ws_key_protocol(key: &str) -> String {
    format!("{WS_KEY_PROTOCOL_PREFIX}{}", hex::encode(key))
}

/// The key a WebSocket client offered as a subprotocol, if any (an offer that is not hex
/// of UTF-8 counts as a wrong key, not a missing one).
pub fn ws_protocol_key(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix(WS_KEY_PROTOCOL_PREFIX))
        .map(|h| hex::decode(h).ok().and_then(|b| String::from_utf8(b).ok()).unwrap_or_default())
}

fn presented_key(req: &Request) -> Option<String> {
    let headers = req.headers();
    if let Some(v) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.to_string());
    }
    if let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
        && let Some(token) = v.strip_prefix("Bearer ")
    {
        return Some(token.trim().to_string());
    }
    if req.uri().path() == "/ws" {
        return ws_protocol_key(headers);
    }
    None
}

/// Middleware enforcing the key on mutating methods and the WebSocket.
pub async fn require_key(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(expected) = state.api_key.as_deref() else { return next.run(req).await };
    let guarded = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) || req.uri().path() == "/ws";
    if !guarded {
        return next.run(req).await;
    }
    match presented_key(&req) {
        None => ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "UNAUTHORIZED",
            message: "This route needs an API key: send X-API-Key or Authorization: Bearer (on /ws also the \
                      subprotocol alephauto.key.<hex of the key>)"
                .into(),
            retry_after: None,
        }
        .into_response(),
        Some(key) if constant_time_eq(key.as_bytes(), expected.as_bytes()) => next.run(req).await,
        Some(_) => ApiError {
            status: StatusCode::FORBIDDEN,
            code: "FORBIDDEN",
            message: "The API key is not valid".into(),
            retry_after: None,
        }
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_is_private_reused_and_survives_a_stray_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let (key, created) = load_or_create_key(dir.path()).unwrap();
        assert!(created && key.len() == 64 && is_valid_api_key(&key), "{key}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(key_file(dir.path())).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(load_or_create_key(dir.path()).unwrap(), (key.clone(), false));
        assert_eq!(read_key_file(dir.path()).unwrap().as_deref(), Some(key.as_str()));
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from(API_KEY_FILE)]);
    }

    #[test]
    fn the_opt_out_is_refused_off_loopback_and_a_configured_key_wins() {
        let dir = tempfile::tempdir().unwrap();
        let server = ServerConfig { require_key: false, ..ServerConfig::default() };
        assert!(resolve_key(None, &server, dir.path(), false).is_err());
        assert_eq!(resolve_key(None, &server, dir.path(), true).unwrap(), ServerKey::Disabled);
        assert_eq!(
            resolve_key(Some("flag"), &server, dir.path(), false).unwrap(),
            ServerKey::Configured("flag".into())
        );
        assert!(resolve_key(Some("has space"), &server, dir.path(), true).is_err());
        assert!(!key_file(dir.path()).exists(), "nothing generated when a key is configured or disabled");
    }

    #[test]
    fn the_key_subprotocol_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            format!("alephauto.v1, {}", ws_key_protocol("a+/=b")).parse().unwrap(),
        );
        assert_eq!(ws_protocol_key(&h).as_deref(), Some("a+/=b"));
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, "alephauto.v1".parse().unwrap());
        assert_eq!(ws_protocol_key(&h), None);
    }
}
