//! Time as the domain sees it: milliseconds since the Unix epoch, UTC, handed in by the caller.
//! The domain never reads a clock (TigerBeetle's rule: the state machine cannot ask the OS).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A moment in UTC with millisecond precision.
///
/// Serialized as RFC 3339 text (`2026-11-27T10:00:00.000Z`) in human-readable formats such as
/// JSON, and as a plain `i64` of milliseconds in binary formats such as the stored bincode.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(i64);

/// Milliseconds in one hour: the edit and delete window (R-M3, R-M4).
pub const HOUR_MS: i64 = 60 * 60 * 1000;
/// Milliseconds in one UTC day: the daily-limit period (R-R3).
pub const DAY_MS: i64 = 24 * HOUR_MS;

impl Timestamp {
    /// The moment `ms` milliseconds after 1970-01-01T00:00:00Z.
    pub const fn from_millis(ms: i64) -> Timestamp {
        Timestamp(ms)
    }

    /// Milliseconds since the epoch.
    pub const fn millis(self) -> i64 {
        self.0
    }

    /// Milliseconds from `earlier` to `self` (negative when `earlier` is later).
    pub fn millis_since(self, earlier: Timestamp) -> i64 {
        self.0.saturating_sub(earlier.0)
    }

    /// This moment plus `ms` milliseconds, saturating at the ends of time.
    pub fn plus_millis(self, ms: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(ms))
    }

    /// The UTC day number (days since the epoch): the bucket of the daily limit (R-R3).
    pub fn utc_day(self) -> i64 {
        self.0.div_euclid(DAY_MS)
    }

    /// RFC 3339 text with milliseconds, e.g. `2026-11-27T10:00:00.000Z`.
    pub fn to_rfc3339(self) -> String {
        match chrono::DateTime::from_timestamp_millis(self.0) {
            Some(time) => time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            // Outside chrono's range (hundreds of thousands of years): fall back to the number
            // rather than failing, since formatting must never lose an event.
            None => format!("@{}ms", self.0),
        }
    }

    /// Parses RFC 3339 text (any offset; converted to UTC; sub-millisecond digits truncated).
    pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
        chrono::DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|time| Timestamp(time.timestamp_millis()))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({})", self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_rfc3339())
        } else {
            serializer.serialize_i64(self.0)
        }
    }
}

/// JSON (human-readable) form only: RFC 3339 text; the schema describes the JSON contract.
impl schemars::JsonSchema for Timestamp {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Timestamp".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "format": "date-time",
            "description": "RFC 3339, UTC, with milliseconds (2026-11-27T10:00:00.000Z)"
        })
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            Timestamp::parse_rfc3339(&text)
                .ok_or_else(|| serde::de::Error::custom("expected an RFC 3339 timestamp"))
        } else {
            i64::deserialize(deserializer).map(Timestamp)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_with_milliseconds() {
        let t = Timestamp::from_millis(1_795_000_000_123);
        assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()), Some(t));
        assert!(t.to_rfc3339().ends_with(".123Z"));
    }

    #[test]
    fn utc_days_split_at_midnight() {
        let midnight = Timestamp::from_millis(20_000 * DAY_MS);
        assert_eq!(midnight.utc_day(), 20_000);
        assert_eq!(midnight.plus_millis(-1).utc_day(), 19_999);
    }
}
