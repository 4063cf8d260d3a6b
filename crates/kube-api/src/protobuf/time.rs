//! The text forms of `metav1.Time`, `metav1.MicroTime` (RFC 3339, UTC) and `metav1.Duration`
//! (Go's `time.Duration` string).

/// Seconds and nanoseconds since the epoch of an RFC 3339 timestamp.
pub fn parse_rfc3339(text: &str) -> Result<(i64, i32), String> {
    let ts: jiff::Timestamp = text
        .parse()
        .map_err(|e| format!("{text:?} is not an RFC 3339 time: {e}"))?;
    Ok((ts.as_second(), ts.subsec_nanosecond()))
}

/// `2026-01-02T03:04:05Z` (`metav1.Time` keeps whole seconds) or, for `micro`,
/// `2026-01-02T03:04:05.123456Z`.
pub fn format_rfc3339(seconds: i64, nanos: i32, micro: bool) -> Result<String, String> {
    let ts = jiff::Timestamp::new(seconds, if micro { nanos } else { 0 })
        .map_err(|e| format!("time {seconds}.{nanos} is out of range: {e}"))?;
    let whole = ts.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    Ok(if micro {
        format!("{whole}.{:06}Z", ts.subsec_nanosecond() / 1000)
    } else {
        format!("{whole}Z")
    })
}

const SECOND: u64 = 1_000_000_000;

/// `whole.fraction` of `value / unit`, with trailing zeros of the fraction dropped.
fn decimal(value: u64, unit: u64, digits: usize) -> String {
    let (whole, fraction) = (value / unit, value % unit);
    if fraction == 0 {
        return whole.to_string();
    }
    let fraction = format!("{fraction:0digits$}");
    format!("{whole}.{}", fraction.trim_end_matches('0'))
}

/// Go's `time.Duration.String()`: `1h2m3.5s`, `1.5ms`, `0s`.
pub fn format_go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    let body = if n < 1_000 {
        format!("{n}ns")
    } else if n < 1_000_000 {
        format!("{}µs", decimal(n, 1_000, 3))
    } else if n < SECOND {
        format!("{}ms", decimal(n, 1_000_000, 6))
    } else {
        let hours = n / (3600 * SECOND);
        let minutes = n % (3600 * SECOND) / (60 * SECOND);
        let seconds = decimal(n % (60 * SECOND), SECOND, 9);
        match (hours, minutes) {
            (0, 0) => format!("{seconds}s"),
            (0, m) => format!("{m}m{seconds}s"),
            (h, m) => format!("{h}h{m}m{seconds}s"),
        }
    };
    format!("{sign}{body}")
}

/// Go's `time.ParseDuration`: a sequence of decimal numbers with units (`ns`, `us`/`µs`,
/// `ms`, `s`, `m`, `h`), optionally signed; `0` alone is allowed.
pub fn parse_go_duration(text: &str) -> Result<i64, String> {
    let bad = || format!("time: invalid duration {text:?}");
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("time: missing unit in duration {text:?}"))?;
        let number: f64 = rest[..number_end].parse().map_err(|_| bad())?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            other => return Err(format!("time: unknown unit {other:?} in duration {text:?}")),
        };
        total += number * unit;
        rest = &rest[unit_end..];
    }
    if total > i64::MAX as f64 {
        return Err(bad());
    }
    let nanos = total.round() as i64;
    Ok(if negative { -nanos } else { nanos })
}
