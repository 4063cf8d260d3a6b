//! Kubernetes' timestamps as kube-apiserver decodes and encodes them: `metav1.Time` (Go's
//! `time.Parse(time.RFC3339, …)`, written back in UTC to the second) and `metav1.MicroTime`
//! (`time.Parse(RFC3339Micro, …)`, written back in UTC to the microsecond), with the errors Go's
//! parser words (`parsing time "yesterday" as "2006-01-02T15:04:05Z07:00": cannot parse
//! "yesterday" as "2006"`).
//!
//! Only the two layouts are parsed, element by element as Go's `time.parse` walks them, so that
//! what Go accepts (a one-digit hour, a comma before the fraction, an offset of `+24:00`) and
//! where it stops are the same.

use jiff::Timestamp;
use jiff::civil::Date;

use crate::go_format::quote;

/// Which of apimachinery's timestamp types a value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `metav1.Time`: `2006-01-02T15:04:05Z07:00`, stored to the second.
    Rfc3339,
    /// `metav1.MicroTime`: `2006-01-02T15:04:05.000000Z07:00`, exactly six fractional digits.
    Rfc3339Micro,
}

impl Layout {
    fn text(self) -> &'static str {
        match self {
            Layout::Rfc3339 => "2006-01-02T15:04:05Z07:00",
            Layout::Rfc3339Micro => "2006-01-02T15:04:05.000000Z07:00",
        }
    }
}

/// A timestamp's text as kube-apiserver stores it: parsed as Go parses it, then formatted in UTC
/// (`2024-01-01T08:00:00Z`; `2024-01-01T08:00:00.123456Z` for a MicroTime). `Ok(None)` for Go's
/// zero time (`0001-01-01T00:00:00Z`), which apimachinery writes as `null`. `Err` is Go's
/// `time.ParseError` text.
pub fn canonical(layout: Layout, value: &str) -> Result<Option<String>, String> {
    let (ts, nanos_exact) = parse(layout, value)?;
    const ZERO_SECONDS: i64 = -62_135_596_800; // 0001-01-01T00:00:00Z
    if ts.as_second() == ZERO_SECONDS && nanos_exact == 0 {
        return Ok(None);
    }
    let utc = ts.to_zoned(jiff::tz::TimeZone::UTC);
    let seconds = utc.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    Ok(Some(match layout {
        Layout::Rfc3339 => format!("{seconds}Z"),
        Layout::Rfc3339Micro => format!("{seconds}.{:06}Z", nanos_exact / 1_000),
    }))
}

/// Go's `time.ParseError` for `value` against `layout`.
fn parse_error(layout: Layout, value: &str, value_elem: &str, layout_elem: &str) -> String {
    format!(
        "parsing time {} as {}: cannot parse {} as {}",
        quote(value),
        quote(layout.text()),
        quote(value_elem),
        quote(layout_elem)
    )
}

fn range_error(value: &str, what: &str) -> String {
    format!("parsing time {}: {what} out of range", quote(value))
}

fn is_digit(s: &[u8], i: usize) -> bool {
    s.get(i).is_some_and(u8::is_ascii_digit)
}

/// Go's `getnum`: one or two digits (exactly two when `fixed`).
fn getnum(s: &[u8], fixed: bool) -> Option<(i32, &[u8])> {
    if !is_digit(s, 0) {
        return None;
    }
    let first = i32::from(s[0] - b'0');
    if !is_digit(s, 1) {
        return if fixed { None } else { Some((first, &s[1..])) };
    }
    Some((first * 10 + i32::from(s[1] - b'0'), &s[2..]))
}

/// The parsed instant and its nanoseconds within the second.
fn parse(layout: Layout, value: &str) -> Result<(Timestamp, i32), String> {
    let whole = value;
    let text = |s: &[u8]| String::from_utf8_lossy(s).into_owned();
    let bad = |at: &[u8], elem: &str| parse_error(layout, whole, &text(at), elem);
    let mut v = value.as_bytes();
    fn literal<'a>(layout: Layout, whole: &str, v: &'a [u8], c: u8) -> Result<&'a [u8], String> {
        match v.first() {
            Some(&b) if b == c => Ok(&v[1..]),
            _ => Err(parse_error(
                layout,
                whole,
                &String::from_utf8_lossy(v),
                &(c as char).to_string(),
            )),
        }
    }
    // 2006
    if v.len() < 4 || !v[..4].iter().all(u8::is_ascii_digit) {
        return Err(bad(v, "2006"));
    }
    let year: i32 = v[..4].iter().fold(0, |n, d| n * 10 + i32::from(d - b'0'));
    v = &v[4..];
    // -01
    v = literal(layout, whole, v, b'-')?;
    let (month, rest) = getnum(v, true).ok_or_else(|| bad(v, "01"))?;
    if !(1..=12).contains(&month) {
        return Err(range_error(whole, "month"));
    }
    v = rest;
    // -02 (any one- or two-digit day here; the date is checked once parsed)
    v = literal(layout, whole, v, b'-')?;
    let (day, rest) = getnum(v, true).ok_or_else(|| bad(v, "02"))?;
    v = rest;
    // T15
    v = literal(layout, whole, v, b'T')?;
    let (hour, rest) = getnum(v, false).ok_or_else(|| bad(v, "15"))?;
    if !(0..24).contains(&hour) {
        return Err(range_error(whole, "hour"));
    }
    v = rest;
    // :04
    v = literal(layout, whole, v, b':')?;
    let (minute, rest) = getnum(v, true).ok_or_else(|| bad(v, "04"))?;
    if !(0..60).contains(&minute) {
        return Err(range_error(whole, "minute"));
    }
    v = rest;
    // :05
    v = literal(layout, whole, v, b':')?;
    let (second, rest) = getnum(v, true).ok_or_else(|| bad(v, "05"))?;
    if !(0..60).contains(&second) {
        return Err(range_error(whole, "second"));
    }
    v = rest;
    let comma_or_period = |v: &[u8]| matches!(v.first(), Some(b'.' | b','));
    let mut nanos = 0i32;
    match layout {
        // A fraction the layout does not have is taken anyway, any number of digits (nine
        // kept).
        Layout::Rfc3339 => {
            if v.len() >= 2 && comma_or_period(v) && is_digit(v, 1) {
                let mut n = 2;
                while is_digit(v, n) {
                    n += 1;
                }
                nanos = fraction(&v[1..n]);
                v = &v[n..];
            }
        }
        // `.000000`: exactly six digits.
        Layout::Rfc3339Micro => {
            if v.len() < 7 || !comma_or_period(v) || !v[1..7].iter().all(u8::is_ascii_digit) {
                return Err(bad(v, ".000000"));
            }
            nanos = fraction(&v[1..7]);
            v = &v[7..];
        }
    }
    // Z07:00
    let offset_seconds = if v.first() == Some(&b'Z') {
        v = &v[1..];
        0
    } else {
        if v.len() < 6 || v[3] != b':' {
            return Err(bad(v, "Z07:00"));
        }
        let (sign, hh, mm) = (v[0], &v[1..3], &v[4..6]);
        let (Some((hours, _)), Some((minutes, _))) = (getnum(hh, true), getnum(mm, true)) else {
            return Err(bad(v, "Z07:00"));
        };
        // Go allows an offset of 24 hours or 60 minutes.
        if hours > 24 {
            return Err(range_error(whole, "time zone offset hour"));
        }
        if minutes > 60 {
            return Err(range_error(whole, "time zone offset minute"));
        }
        let magnitude = (hours * 60 + minutes) * 60;
        let offset = match sign {
            b'+' => magnitude,
            b'-' => -magnitude,
            _ => return Err(bad(v, "Z07:00")),
        };
        v = &v[6..];
        offset
    };
    if !v.is_empty() {
        return Err(format!(
            "parsing time {}: extra text: {}",
            quote(whole),
            quote(&text(v))
        ));
    }
    let date =
        Date::new(year as i16, month as i8, day as i8).map_err(|_| range_error(whole, "day"))?;
    // The wall time at the offset, less the offset (Go's Date normalizes an offset past a day
    // the same way).
    let local_seconds = date
        .to_datetime(jiff::civil::Time::midnight())
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map_err(|_| range_error(whole, "year"))?
        .timestamp()
        .as_second()
        + i64::from(hour) * 3600
        + i64::from(minute) * 60
        + i64::from(second);
    let instant = Timestamp::from_second(local_seconds - i64::from(offset_seconds))
        .map_err(|_| range_error(whole, "year"))?;
    Ok((instant, nanos))
}

/// Go's `parseNanoseconds` of the digits after the separator: nine kept, the rest dropped.
fn fraction(digits: &[u8]) -> i32 {
    let mut nanos = 0i32;
    for i in 0..9 {
        nanos = nanos * 10 + digits.get(i).map_or(0, |d| i32::from(d - b'0'));
    }
    nanos
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(v: &str) -> Result<Option<String>, String> {
        canonical(Layout::Rfc3339, v)
    }

    fn micro(v: &str) -> Result<Option<String>, String> {
        canonical(Layout::Rfc3339Micro, v)
    }

    #[test]
    fn times_are_stored_in_utc_to_the_second() {
        for (written, stored) in [
            ("2024-01-01T08:00:00Z", "2024-01-01T08:00:00Z"),
            ("2024-01-01T10:00:00+02:00", "2024-01-01T08:00:00Z"),
            ("2024-01-01T00:30:00-01:00", "2024-01-01T01:30:00Z"),
            ("2024-01-01T01:00:00+02:00", "2023-12-31T23:00:00Z"),
            ("2024-01-01T08:00:00.999999Z", "2024-01-01T08:00:00Z"),
            ("2024-01-01T08:00:00,5Z", "2024-01-01T08:00:00Z"),
            ("2024-01-01T8:00:00Z", "2024-01-01T08:00:00Z"),
            ("2024-02-29T00:00:00Z", "2024-02-29T00:00:00Z"),
            ("2024-01-01T00:00:00+24:00", "2023-12-31T00:00:00Z"),
            (
                "2024-06-01T12:00:00.123456789123+00:00",
                "2024-06-01T12:00:00Z",
            ),
        ] {
            assert_eq!(time(written).unwrap().as_deref(), Some(stored), "{written}");
        }
        assert_eq!(
            time("0001-01-01T00:00:00Z"),
            Ok(None),
            "Go's zero time is null"
        );
        assert_eq!(
            time("0001-01-01T00:00:01Z").unwrap().as_deref(),
            Some("0001-01-01T00:00:01Z")
        );
    }

    #[test]
    fn micro_times_keep_six_digits() {
        assert_eq!(
            micro("2024-01-01T10:00:00.123456+02:00")
                .unwrap()
                .as_deref(),
            Some("2024-01-01T08:00:00.123456Z")
        );
        assert_eq!(
            micro("2024-01-01T08:00:00.000000Z").unwrap().as_deref(),
            Some("2024-01-01T08:00:00.000000Z")
        );
        assert_eq!(
            micro("2024-01-01T08:00:00Z"),
            Err(r#"parsing time "2024-01-01T08:00:00Z" as "2006-01-02T15:04:05.000000Z07:00": cannot parse "Z" as ".000000""#.into())
        );
        assert_eq!(
            micro("2024-01-01T08:00:00.123456789Z"),
            Err(r#"parsing time "2024-01-01T08:00:00.123456789Z" as "2006-01-02T15:04:05.000000Z07:00": cannot parse "789Z" as "Z07:00""#.into())
        );
    }

    #[test]
    fn bad_times_get_gos_words() {
        let layout = r#""2006-01-02T15:04:05Z07:00""#;
        for (written, elem, as_) in [
            ("yesterday", "yesterday", "2006"),
            ("", "", "2006"),
            ("2024-01-01", "", "T"),
            ("2024-01-01 08:00:00Z", " 08:00:00Z", "T"),
            ("2024/01/01T08:00:00Z", "/01/01T08:00:00Z", "-"),
            ("2024-1-01T08:00:00Z", "1-01T08:00:00Z", "01"),
            ("2024-01-01T08:00:00", "", "Z07:00"),
            ("2024-01-01T08:00:00.5", "", "Z07:00"),
            ("2024-01-01T08:00:00+0200", "+0200", "Z07:00"),
            ("2024-01-01Tab:00:00Z", "ab:00:00Z", "15"),
        ] {
            assert_eq!(
                time(written),
                Err(format!(
                    "parsing time {} as {layout}: cannot parse {} as {}",
                    quote(written),
                    quote(elem),
                    quote(as_)
                )),
                "{written}"
            );
        }
        assert_eq!(
            time("2024-13-01T08:00:00Z"),
            Err(r#"parsing time "2024-13-01T08:00:00Z": month out of range"#.into())
        );
        assert_eq!(
            time("2023-02-29T08:00:00Z"),
            Err(r#"parsing time "2023-02-29T08:00:00Z": day out of range"#.into())
        );
        assert_eq!(
            time("2024-01-01T24:00:00Z"),
            Err(r#"parsing time "2024-01-01T24:00:00Z": hour out of range"#.into())
        );
        assert_eq!(
            time("2024-01-01T08:00:00Zulu"),
            Err(r#"parsing time "2024-01-01T08:00:00Zulu": extra text: "ulu""#.into())
        );
        assert_eq!(
            time("2024-01-01T08:00:00+25:00"),
            Err(
                r#"parsing time "2024-01-01T08:00:00+25:00": time zone offset hour out of range"#
                    .into()
            )
        );
    }
}
