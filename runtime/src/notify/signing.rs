//! Signatures of generic webhook payloads, and the check a receiver makes.
//!
//! Each attempt is sent with `X-AlephAuto-Signature: t=<unix seconds>,v1=<hex>`, where the
//! hex is HMAC-SHA256, keyed with the hook's secret, over `"<t>." + body`. A receiver
//! recomputes it over the raw body, compares in constant time, and refuses a `t` older than
//! its tolerance (five minutes is usual): a captured request replayed later fails. A retry
//! is signed afresh with a new `t`; its `X-AlephAuto-Delivery` id (and the body's
//! `eventKey`) stay the same, so a receiver can also drop duplicates.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Header carrying `t=<unix seconds>,v1=<hex HMAC-SHA256>`.
pub const SIGNATURE_HEADER: &str = "x-alephauto-signature";
/// Header carrying the delivery id (the same on every attempt).
pub const DELIVERY_HEADER: &str = "x-alephauto-delivery";
/// Header carrying the event kind (`failed`, `completed`, ...).
pub const EVENT_HEADER: &str = "x-alephauto-event";

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; an empty one is refused at config load.
    let mut mac = HmacSha256::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The header value for `body` sent at `timestamp` (Unix seconds).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", hex::encode(mac(secret, timestamp, body).finalize().into_bytes()))
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The header is not `t=<int>,v1=<hex>`.
    #[error("malformed signature header")]
    Malformed,
    /// The timestamp is further from now than the tolerance (a replay, or a skewed clock).
    #[error("signature timestamp is {age_secs} s away from now (tolerance {tolerance_secs} s)")]
    Stale {
        /// Seconds between the timestamp and now.
        age_secs: i64,
        /// The tolerance used.
        tolerance_secs: i64,
    },
    /// No `v1` signature matches the body.
    #[error("signature does not match the body")]
    Mismatch,
}

/// Checks `header` against the raw `body`, at `now` (Unix seconds), accepting timestamps at
/// most `tolerance_secs` away. Several `v1=` entries are allowed (key rotation); one must match.
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: i64, tolerance_secs: i64) -> Result<(), VerifyError> {
    let mut timestamp = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = Some(t.parse::<i64>().map_err(|_| VerifyError::Malformed)?),
            Some(("v1", s)) => sigs.push(hex::decode(s).map_err(|_| VerifyError::Malformed)?),
            _ => {}
        }
    }
    let (Some(t), false) = (timestamp, sigs.is_empty()) else { return Err(VerifyError::Malformed) };
    let age = now.saturating_sub(t).saturating_abs();
    if age > tolerance_secs {
        return Err(VerifyError::Stale { age_secs: age, tolerance_secs });
    }
    // Constant-time comparison.
    if sigs.iter().any(|s| mac(secret, t, body).verify_slice(s).is_ok()) { Ok(()) } else { Err(VerifyError::Mismatch) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_any_change_is_refused() {
        let body = br#"{"event":"failed"}"#;
        let header = sign(b"key", 1_700_000_000, body);
        assert!(header.starts_with("t=1700000000,v1="));
        assert_eq!(verify(b"key", &header, body, 1_700_000_010, 300), Ok(()));
        assert_eq!(verify(b"other", &header, body, 1_700_000_010, 300), Err(VerifyError::Mismatch));
        assert_eq!(verify(b"key", &header, b"{}", 1_700_000_010, 300), Err(VerifyError::Mismatch));
        // The timestamp is signed: moving it forward to pass the age check breaks the signature.
        let forged = header.replace("t=1700000000", "t=1700000900");
        assert_eq!(verify(b"key", &forged, body, 1_700_000_900, 300), Err(VerifyError::Mismatch));
    }

    #[test]
    fn a_replay_after_the_tolerance_is_stale() {
        let header = sign(b"key", 1_000, b"x");
        assert_eq!(
            verify(b"key", &header, b"x", 1_000 + 301, 300),
            Err(VerifyError::Stale { age_secs: 301, tolerance_secs: 300 })
        );
        assert!(matches!(verify(b"key", &header, b"x", 1_000 - 400, 300), Err(VerifyError::Stale { .. })));
    }

    #[test]
    fn malformed_headers_are_refused() {
        for h in ["", "t=1", "v1=00", "t=x,v1=00", "t=1,v1=zz"] {
            assert_eq!(verify(b"k", h, b"", 1, 300), Err(VerifyError::Malformed), "{h}");
        }
    }
}
