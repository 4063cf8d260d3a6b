//! Go-style durations (`500ms`, `1m30s`) and RFC3339 timestamps: parsing and timestamps by
//! jiff; Go's `Duration.String()` shape, which jiff does not print, by hand.

use std::time::{Duration, SystemTime};

/// Parses a Go duration (`500ms`, `2s`, `1.5s`, `1m30s`; a bare `0` is zero) with jiff's
/// duration parser, which reads Go's units; negative durations are refused.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let bad = || format!("invalid duration {text:?}: expected e.g. 500ms, 2s, 1m30s");
    // jiff also reads spaced and ISO 8601 forms; Go's are compact and unsigned.
    if s.is_empty() || s.contains([' ', ',', '-', '+']) || s.starts_with(['P', 'p']) {
        return Err(bad());
    }
    let d: jiff::SignedDuration = s.parse().map_err(|_| bad())?;
    Duration::try_from(d).map_err(|_| bad())
}

/// Formats like Go's `time.Duration.String()`: `500ms`, `1.5s`, `1m20s`, `5m0s`, `1h0m0s`.
pub(crate) fn format_duration(d: Duration) -> String {
    localfargate_core::go_duration::format(d)
}

/// `2026-11-23T21:00:00.000000000Z`: the kubelet's log timestamp (the CRI log format's own
/// printer). Times jiff cannot represent print as the epoch.
pub(crate) fn rfc3339_nanos(t: SystemTime) -> String {
    crate::crilog::format_timestamp(
        jiff::Timestamp::try_from(t).unwrap_or(jiff::Timestamp::UNIX_EPOCH),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn parses_go_durations() {
        let ms = Duration::from_millis;
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("500ms").unwrap(), ms(500));
        assert_eq!(parse_duration("2s").unwrap(), ms(2000));
        assert_eq!(parse_duration("1.5s").unwrap(), ms(1500));
        assert_eq!(parse_duration("1m30s").unwrap(), ms(90_000));
        assert_eq!(parse_duration("1h").unwrap(), ms(3_600_000));
        assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
        assert_eq!(parse_duration(" 3s ").unwrap(), ms(3000));
        for bad in ["", "5", "s", "1x", "1..5s", "-1s", "1s5", "abc"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn formats_like_go() {
        let s = Duration::from_secs;
        assert_eq!(format_duration(s(10)), "10s");
        assert_eq!(format_duration(s(80)), "1m20s");
        assert_eq!(format_duration(s(300)), "5m0s");
        assert_eq!(format_duration(s(3600)), "1h0m0s");
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn formats_rfc3339_nanos() {
        assert_eq!(rfc3339_nanos(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        // 2026-11-23T21:00:00Z
        let t = UNIX_EPOCH + Duration::new(1_795_467_600, 5);
        assert_eq!(rfc3339_nanos(t), "2026-11-23T21:00:00.000000005Z");
        // 2024-02-29T23:59:59.5Z, a leap day
        let t = UNIX_EPOCH + Duration::new(1_709_251_199, 500_000_000);
        assert_eq!(rfc3339_nanos(t), "2024-02-29T23:59:59.500000000Z");
    }
}
