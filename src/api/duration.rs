//! A Go-style duration string (`90s`, `5m`, `1h30m`, `250ms`), the form
//! Kubernetes users already write in manifests.
//!
//! The CRD schema carries [`PATTERN`], so the API server rejects a malformed
//! duration at `kubectl apply` time; [`Duration::parse`] accepts exactly what
//! the pattern accepts.

use std::{borrow::Cow, fmt, time};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// One or more `<digits><unit>` groups, unit one of `ms`, `s`, `m`, `h`.
pub const PATTERN: &str = "^([0-9]{1,6}(ms|s|m|h))+$";
const MAX_LEN: usize = 32;

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Duration(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{value:?} is not a duration such as 90s, 5m or 1h30m")]
pub struct InvalidDuration {
    pub value: String,
}

impl Duration {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The duration this string denotes. The schema keeps malformed strings
    /// out of the cluster, but objects written before a schema change (or
    /// with validation disabled) still reach us, so this is fallible.
    pub fn parse(&self) -> Result<time::Duration, InvalidDuration> {
        parse(&self.0)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Duration {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

pub fn parse(value: &str) -> Result<time::Duration, InvalidDuration> {
    let invalid = || InvalidDuration {
        value: value.to_string(),
    };
    if value.is_empty() || value.len() > MAX_LEN {
        return Err(invalid());
    }
    let mut total = time::Duration::ZERO;
    let mut rest = value;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 6 {
            return Err(invalid());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (time::Duration::from_millis(1), 2)
        } else if rest.starts_with('s') {
            (time::Duration::from_secs(1), 1)
        } else if rest.starts_with('m') {
            (time::Duration::from_secs(60), 1)
        } else if rest.starts_with('h') {
            (time::Duration::from_secs(3600), 1)
        } else {
            return Err(invalid());
        };
        rest = &rest[len..];
        let number = u32::try_from(number).map_err(|_| invalid())?;
        total += unit * number;
    }
    Ok(total)
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A duration such as 90s, 5m or 1h30m (units ms, s, m, h).",
            "maxLength": MAX_LEN,
            "pattern": PATTERN,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_style_durations() {
        assert_eq!(parse("90s"), Ok(time::Duration::from_secs(90)));
        assert_eq!(parse("5m"), Ok(time::Duration::from_secs(300)));
        assert_eq!(parse("1h30m"), Ok(time::Duration::from_secs(5400)));
        assert_eq!(parse("250ms"), Ok(time::Duration::from_millis(250)));
        assert_eq!(parse("1m500ms"), Ok(time::Duration::from_millis(60_500)));
        assert_eq!(parse("0s"), Ok(time::Duration::ZERO));
    }

    #[test]
    fn rejects_what_the_schema_pattern_rejects() {
        for bad in [
            "",
            "5",
            "m",
            "5 minutes",
            "1.5h",
            "-5m",
            "5d",
            "1h 30m",
            "9999999s",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
