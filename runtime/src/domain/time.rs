//! Timestamps as the API and the stores spell them: RFC 3339, UTC, milliseconds.

use chrono::{DateTime, SecondsFormat, Utc};

/// Formats a timestamp the way the API does: RFC 3339, UTC, milliseconds.
pub fn format_ts(ts: &DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses an RFC 3339 timestamp (any offset) into UTC.
pub fn parse_ts(s: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc))
}

/// Serde for a timestamp field in the API's format.
pub mod rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `ts` with [`super::format_ts`].
    pub fn serialize<S: Serializer>(ts: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_ts(ts))
    }

    /// Reads an RFC 3339 string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_ts(&s).map_err(serde::de::Error::custom)
    }
}

/// Serde for an optional timestamp field in the API's format (`null` when absent).
pub mod rfc3339_opt {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `ts` with [`super::format_ts`], or `null`.
    pub fn serialize<S: Serializer>(ts: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match ts {
            Some(ts) => s.serialize_str(&super::format_ts(ts)),
            None => s.serialize_none(),
        }
    }

    /// Reads an RFC 3339 string or `null`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| super::parse_ts(&s).map_err(serde::de::Error::custom)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_with_milliseconds_and_round_trip() {
        let ts = parse_ts("2026-01-02T03:04:05.678+02:00").unwrap();
        assert_eq!(format_ts(&ts), "2026-01-02T01:04:05.678Z");
        assert_eq!(parse_ts(&format_ts(&ts)).unwrap(), ts);
        assert!(parse_ts("yesterday").is_err());
    }
}
