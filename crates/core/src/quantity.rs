//! Kubernetes resource quantities (`500m`, `1.5Gi`, `2.5G`, `1e3`), converted exactly.
//!
//! Sizing needs exact arithmetic: `0.1` CPU must be 100 millicores, not 99.999…, and `2.5G` must be
//! 2,500,000,000 bytes. So a quantity is parsed into an integer mantissa with a decimal and a binary
//! exponent, and converted to the target unit rounding up (Kubernetes rounds quantities up too).

use thiserror::Error;

/// kube-apiserver's words for text that is not a quantity (`resource.ErrFormatWrong`), which
/// is also its whole decoding error when a Quantity field holds such text.
pub const FORMAT_MESSAGE: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message}: {0:?}", message = FORMAT_MESSAGE)]
pub struct QuantityError(pub String);

/// A parsed quantity: `mantissa × 10^exp10 × 2^exp2`, never negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parsed {
    mantissa: u128,
    exp10: i32,
    exp2: u32,
}

fn parse(text: &str) -> Result<Parsed, QuantityError> {
    let err = || QuantityError(text.to_string());
    let s = text.trim();
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.starts_with('-') {
        // A negative request or limit is rejected by the API server; here it is simply invalid.
        return Err(err());
    }
    let number_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(number_end);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return Err(err());
    }
    let mut mantissa: u128 = 0;
    let mut exp10: i32 = 0;
    let mut seen_dot = false;
    for c in number.chars() {
        if c == '.' {
            seen_dot = true;
            continue;
        }
        let digit = u128::from(c as u8 - b'0');
        if mantissa > u128::MAX / 100 {
            // Keep the precision we have; further digits only matter below the rounding unit
            // once the mantissa is this large, except for the exponent they carry.
            if !seen_dot {
                exp10 += 1;
            }
            continue;
        }
        mantissa = mantissa * 10 + digit;
        if seen_dot {
            exp10 -= 1;
        }
    }
    let (suffix_exp10, exp2) = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        other => {
            let exponent = other
                .strip_prefix('e')
                .or_else(|| other.strip_prefix('E'))
                .ok_or_else(err)?;
            let value: i32 = exponent.parse().map_err(|_| err())?;
            if !(-64..=64).contains(&value) {
                return Err(err());
            }
            (value, 0)
        }
    };
    Ok(Parsed {
        mantissa,
        exp10: exp10 + suffix_exp10,
        exp2,
    })
}

const POW10: [u128; 39] = {
    let mut table = [1u128; 39];
    let mut i = 1;
    while i < 39 {
        table[i] = table[i - 1] * 10;
        i += 1;
    }
    table
};

/// `ceil(p × 10^extra10)` as u64, saturating at `u64::MAX`.
fn to_unit(p: Parsed, extra10: i32) -> u64 {
    let exp10 = p.exp10 + extra10;
    let mut value = p.mantissa;
    if value == 0 {
        return 0;
    }
    // Binary suffixes: a shift, unless it would overflow.
    if p.exp2 > 0 {
        if value.leading_zeros() <= p.exp2 {
            return u64::MAX;
        }
        value <<= p.exp2;
    }
    if exp10 > 0 {
        let Some(factor) = POW10.get(exp10 as usize) else {
            return u64::MAX;
        };
        value = match value.checked_mul(*factor) {
            Some(v) => v,
            None => return u64::MAX,
        };
    } else if exp10 < 0 {
        value = match POW10.get(exp10.unsigned_abs() as usize) {
            // Most values fit 64 bits, where division is far cheaper than in 128.
            Some(&d) if value <= u128::from(u64::MAX) && d <= u128::from(u64::MAX) => {
                u128::from((value as u64).div_ceil(d as u64))
            }
            Some(&d) => value.div_ceil(d),
            // Dividing by more than 10^38 leaves 0 or 1.
            None => 1,
        };
    }
    u64::try_from(value).unwrap_or(u64::MAX)
}

/// A signed quantity in nano-units (`10^-9`), magnitude rounded up and saturating at
/// `u128::MAX`: fine enough to compare two quantities as upstream's `Quantity.Cmp` does, since
/// `n` is the finest suffix. Unlike the other conversions it accepts a leading `-`, so that
/// validation can say a negative quantity is negative rather than unparseable.
pub fn signed_nanos(text: &str) -> Result<(bool, u128), QuantityError> {
    let trimmed = text.trim();
    let (negative, magnitude) = match trimmed.strip_prefix('-') {
        Some(rest) if !rest.starts_with(['-', '+']) => (true, rest),
        _ => (false, trimmed),
    };
    let p = parse(magnitude).map_err(|_| QuantityError(text.to_string()))?;
    let mut value = p.mantissa;
    if value == 0 {
        return Ok((false, 0));
    }
    if p.exp2 > 0 {
        if value.leading_zeros() <= p.exp2 {
            return Ok((negative, u128::MAX));
        }
        value <<= p.exp2;
    }
    let exp10 = p.exp10 + 9;
    if exp10 > 0 {
        value = POW10
            .get(exp10 as usize)
            .and_then(|f| value.checked_mul(*f))
            .unwrap_or(u128::MAX);
    } else if exp10 < 0 {
        value = POW10
            .get(exp10.unsigned_abs() as usize)
            .map_or(1, |d| value.div_ceil(*d));
    }
    Ok((negative, value))
}

/// CPU in millicores, rounded up (`100m` → 100, `0.1` → 100, `1` → 1000, `1n` → 1).
pub fn cpu_millis(text: &str) -> Result<u64, QuantityError> {
    parse(text).map(|p| to_unit(p, 3))
}

/// A quantity in base units rounded up: bytes for memory and storage, whole devices for
/// extended resources.
pub fn base_units(text: &str) -> Result<u64, QuantityError> {
    parse(text).map(|p| to_unit(p, 0))
}

/// `value × 10^scale` printed as Kubernetes prints a `DecimalSI` quantity built from those two
/// numbers (`resource.NewScaledQuantity`, as metrics-server builds CPU usage in nanocores at scale
/// −9): trailing zeros go into the exponent, which is then lowered to a multiple of three and
/// shown as its SI suffix. `329087452n`, `250000000n` → `250m`, `2000000000n` → `2`, `0`.
pub fn format_decimal_si(value: u64, scale: i32) -> String {
    // Upstream keeps the value in an int64: a larger one loses its last digit.
    let (amount, scale) = if value > i64::MAX as u64 {
        (u128::from(value / 10), scale + 1)
    } else {
        (u128::from(value), scale)
    };
    // In nano-units: the finest a quantity keeps, so a finer scale rounds up as parsing does.
    let nanos = match scale + 9 {
        e if e >= 0 => POW10
            .get(e as usize)
            .and_then(|f| amount.checked_mul(*f))
            .unwrap_or(u128::MAX),
        e => POW10
            .get(e.unsigned_abs() as usize)
            .map_or(1, |d| amount.div_ceil(*d)),
    };
    canonical_nanos(false, nanos, Format::DecimalSI)
}

/// A byte count printed as Kubernetes prints a `BinarySI` quantity (metrics-server's memory):
/// the largest power of 1024 that divides it as its suffix (`2814136320` → `2748180Ki`,
/// `1048576` → `1Mi`), and under 1024 the plain number, which upstream prints as `DecimalSI`
/// (`1000` → `1k`).
pub fn format_binary_si(bytes: u64) -> String {
    canonical(bytes, Format::BinarySI)
}

/// How a quantity was written, which decides how Kubernetes prints it (`resource.Format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `Ki`, `Mi`, … suffixes.
    BinarySI,
    /// No suffix, or `k`, `M`, `m`, ….
    DecimalSI,
    /// `e3`, `E6`, ….
    DecimalExponent,
}

/// The format of a quantity as written (`1Mi`: binary; `1M`, `1000`: decimal; `1e6`: exponent).
pub fn format_of(text: &str) -> Result<Format, QuantityError> {
    parse(text)?;
    let suffix = text
        .trim()
        .trim_start_matches(|c: char| c.is_ascii_digit() || c == '.' || c == '+' || c == '-');
    Ok(if suffix.ends_with('i') {
        Format::BinarySI
    } else if suffix.starts_with(['e', 'E']) {
        Format::DecimalExponent
    } else {
        Format::DecimalSI
    })
}

/// A whole number of base units as Kubernetes' `Quantity.String()` prints it in `format`: the
/// largest suffix that keeps it a whole number (`1Mi`, `1536Ki`, `1500k`, `20Gi`). A binary
/// quantity below 1024 is printed as a decimal one, as upstream does.
pub fn canonical(value: u64, format: Format) -> String {
    canonical_nanos(false, u128::from(value) * NANOS_PER_UNIT, format)
}

/// Nano-units in one unit: the finest a quantity keeps (`1n`).
pub const NANOS_PER_UNIT: u128 = 1_000_000_000;

/// A quantity of `nanos` nano-units (negative when `negative`) as `Quantity.String()` prints
/// it in `format` (`CanonicalizeBytes`): binary suffixes only for a whole number of at least
/// 1024 (anything else would round, so upstream prints it as decimal), otherwise the trailing
/// zeros go into a decimal exponent lowered to a multiple of three, shown as its SI suffix
/// (`1500m`, `2k`, `512`) or, for a quantity written with an exponent, as `e3`.
pub fn canonical_nanos(negative: bool, nanos: u128, format: Format) -> String {
    if nanos == 0 {
        return "0".to_string();
    }
    let sign = if negative { "-" } else { "" };
    if format == Format::BinarySI
        && nanos >= 1024 * NANOS_PER_UNIT
        && nanos.is_multiple_of(NANOS_PER_UNIT)
    {
        let (mut mantissa, mut step) = (nanos / NANOS_PER_UNIT, 0usize);
        while mantissa.is_multiple_of(1024) && step < 6 {
            mantissa /= 1024;
            step += 1;
        }
        let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][step];
        return format!("{sign}{mantissa}{suffix}");
    }
    let (mut amount, mut exponent) = (nanos, -9i32);
    while amount.is_multiple_of(10) {
        amount /= 10;
        exponent += 1;
    }
    // Each step up from -9 divided by ten at least once, so these cannot overflow.
    match exponent.rem_euclid(3) {
        1 => {
            amount *= 10;
            exponent -= 1;
        }
        2 => {
            amount *= 100;
            exponent -= 2;
        }
        _ => {}
    }
    let suffix = match (format, exponent) {
        (_, 0) => String::new(),
        (Format::DecimalExponent, e) => format!("e{e}"),
        (_, -9) => "n".to_string(),
        (_, -6) => "u".to_string(),
        (_, -3) => "m".to_string(),
        (_, 3) => "k".to_string(),
        (_, 6) => "M".to_string(),
        (_, 9) => "G".to_string(),
        (_, 12) => "T".to_string(),
        (_, 15) => "P".to_string(),
        (_, 18) => "E".to_string(),
        (_, e) => format!("e{e}"),
    };
    format!("{sign}{amount}{suffix}")
}

/// A quantity's text as kube-apiserver stores it: decoded into a `resource.Quantity` (rounded
/// up to the nano-unit, its format taken from the suffix) and encoded back in canonical form.
/// So `1000m` is stored as `1`, `0.5Gi` as `512Mi`, `2000` as `2k`, `1.5` as `1500m`.
pub fn canonical_text(text: &str) -> Result<String, QuantityError> {
    let (negative, nanos) = signed_nanos(text)?;
    let magnitude = text.trim().trim_start_matches(['-', '+']);
    let format = format_of(magnitude)?;
    Ok(canonical_nanos(negative, nanos, format))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_si_as_metrics_server_prints_cpu() {
        assert_eq!(format_decimal_si(0, -9), "0");
        assert_eq!(format_decimal_si(329_087_452, -9), "329087452n");
        assert_eq!(format_decimal_si(250_000_000, -9), "250m");
        assert_eq!(format_decimal_si(1_500_000_000, -9), "1500m");
        assert_eq!(format_decimal_si(2_000_000_000, -9), "2");
        assert_eq!(format_decimal_si(1_000, -9), "1u");
        assert_eq!(format_decimal_si(10, -9), "10n");
        assert_eq!(format_decimal_si(120_000, -9), "120u");
        assert_eq!(format_decimal_si(1_200_000, -9), "1200u");
        assert_eq!(format_decimal_si(30_000_000_000, -9), "30");
        assert_eq!(format_decimal_si(1_000, 0), "1k");
        // Whatever it prints parses back to the same value.
        for v in [1u64, 7, 999, 1_000_001, 123_456_789_000, 4_000_000_000_000] {
            assert_eq!(
                cpu_millis(&format_decimal_si(v * 1_000_000, -9)).unwrap(),
                v
            );
        }
    }

    #[test]
    fn binary_si_as_metrics_server_prints_memory() {
        assert_eq!(format_binary_si(0), "0");
        assert_eq!(format_binary_si(512), "512");
        assert_eq!(format_binary_si(1000), "1k");
        assert_eq!(format_binary_si(1024), "1Ki");
        assert_eq!(format_binary_si(1536), "1536");
        assert_eq!(format_binary_si(2_814_136_320), "2748180Ki");
        assert_eq!(format_binary_si(64 << 20), "64Mi");
        assert_eq!(format_binary_si(3 << 30), "3Gi");
        assert_eq!(format_binary_si(12_345 * 4096), "49380Ki");
        for v in [1024u64, 4096 * 3, 1 << 40, (1 << 20) + 4096] {
            assert_eq!(base_units(&format_binary_si(v)).unwrap(), v);
        }
    }

    #[test]
    fn quantities_print_as_kubernetes_prints_them() {
        let mi = 1u64 << 20;
        assert_eq!(canonical(mi, Format::BinarySI), "1Mi");
        assert_eq!(canonical(1536 * 1024, Format::BinarySI), "1536Ki");
        assert_eq!(canonical(mi + 500_000, Format::BinarySI), "1548576");
        assert_eq!(canonical(20 << 30, Format::BinarySI), "20Gi");
        assert_eq!(canonical(512, Format::BinarySI), "512");
        assert_eq!(canonical(1_500_000, Format::DecimalSI), "1500k");
        assert_eq!(canonical(1_000_000, Format::DecimalSI), "1M");
        assert_eq!(canonical(20_000, Format::DecimalSI), "20k");
        assert_eq!(canonical(1536, Format::DecimalSI), "1536");
        assert_eq!(canonical(1_000, Format::DecimalExponent), "1e3");
        assert_eq!(canonical(0, Format::BinarySI), "0");
        assert_eq!(format_of("1Mi").unwrap(), Format::BinarySI);
        assert_eq!(format_of("1.5Gi").unwrap(), Format::BinarySI);
        assert_eq!(format_of("100M").unwrap(), Format::DecimalSI);
        assert_eq!(format_of("4096").unwrap(), Format::DecimalSI);
        assert_eq!(format_of("1e6").unwrap(), Format::DecimalExponent);
        assert!(format_of("1Xi").is_err());
    }

    #[test]
    fn quantities_are_stored_in_upstreams_canonical_form() {
        // As kube-apiserver answers a written quantity (resource.Quantity's own test cases).
        for (written, stored) in [
            ("1000m", "1"),
            ("1", "1"),
            ("0.5", "500m"),
            ("1.5", "1500m"),
            ("100m", "100m"),
            ("2000", "2k"),
            ("1500", "1500"),
            ("1000000", "1M"),
            ("0.5Gi", "512Mi"),
            ("1.5Gi", "1536Mi"),
            ("1024Mi", "1Gi"),
            ("1000Mi", "1000Mi"),
            ("1Ki", "1Ki"),
            ("1.5Ki", "1536"),
            ("0.5Ki", "512"),
            ("1.1Ki", "1126400m"),
            ("1e3", "1e3"),
            ("1E3", "1e3"),
            ("1.5e3", "1500"),
            ("1.5e-3", "1500e-6"),
            ("12e6", "12e6"),
            ("100M", "100M"),
            ("1000k", "1M"),
            ("0.1n", "1n"),
            ("1.0001", "1000100u"),
            ("+1", "1"),
            ("-1", "-1"),
            ("-0.5", "-500m"),
            ("-0", "0"),
            ("0Gi", "0"),
            (" 1 ", "1"),
            // apimachinery's TestQuantityString alternates and TestQuantityParseEmit.
            ("1024Mi", "1Gi"),
            ("307200Ki", "300Mi"),
            ("1025024Mi", "1001Gi"),
            ("5000m", "5"),
            ("1000M", "1G"),
            ("0.001T", "1G"),
            ("1000u", "1m"),
            ("1.08", "1080m"),
            ("1080000000n", "1080m"),
            (".001e12", "1e9"),
            ("0.001e0", "1e-3"),
            ("1000e-12", "1e-9"),
            ("00", "0"),
            (".001Ki", "1024m"),
            (".000001Ki", "1024u"),
            (".000000001Ki", "1024n"),
            (".000000000001Ki", "2n"),
            ("-1024Mi", "-1Gi"),
            ("-.001Ki", "-1024m"),
        ] {
            assert_eq!(canonical_text(written).unwrap(), stored, "{written:?}");
        }
        for bad in ["", "abc", "1Xi", "1 Gi", "--1", "Gi"] {
            assert!(canonical_text(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            QuantityError("x".into()).to_string(),
            format!("{FORMAT_MESSAGE}: \"x\"")
        );
    }

    #[test]
    fn cpu_forms() {
        assert_eq!(cpu_millis("100m").unwrap(), 100);
        assert_eq!(cpu_millis("0.1").unwrap(), 100);
        assert_eq!(cpu_millis(".5").unwrap(), 500);
        assert_eq!(cpu_millis("1").unwrap(), 1000);
        assert_eq!(cpu_millis("2.25").unwrap(), 2250);
        assert_eq!(cpu_millis("1500m").unwrap(), 1500);
        assert_eq!(cpu_millis("+1").unwrap(), 1000);
        assert_eq!(cpu_millis("1n").unwrap(), 1, "rounds up");
        assert_eq!(cpu_millis("250000u").unwrap(), 250);
        assert_eq!(cpu_millis("1e3").unwrap(), 1_000_000);
        assert_eq!(cpu_millis("1E-3").unwrap(), 1);
        assert_eq!(cpu_millis("0").unwrap(), 0);
    }

    #[test]
    fn memory_forms() {
        assert_eq!(base_units("128Mi").unwrap(), 128 << 20);
        assert_eq!(base_units("1Gi").unwrap(), 1 << 30);
        assert_eq!(base_units("1.5Gi").unwrap(), 3 << 29);
        assert_eq!(base_units("2.5G").unwrap(), 2_500_000_000);
        assert_eq!(base_units("750M").unwrap(), 750_000_000);
        assert_eq!(base_units("1k").unwrap(), 1000);
        assert_eq!(base_units("1Ki").unwrap(), 1024);
        assert_eq!(base_units("512").unwrap(), 512);
        assert_eq!(base_units("100m").unwrap(), 1, "fractional bytes round up");
    }

    #[test]
    fn huge_values_saturate() {
        assert_eq!(base_units("999999999Ei").unwrap(), u64::MAX);
        assert_eq!(cpu_millis("1e60").unwrap(), u64::MAX);
        assert_eq!(
            base_units("123456789012345678901234567890123456789012345").unwrap(),
            u64::MAX
        );
    }

    #[test]
    fn invalid_forms() {
        for bad in [
            "", "-1", "abc", "1.2.3", "1Xi", "1e", "Gi", ".", "1 Gi", "1e999", "--1",
        ] {
            assert!(
                cpu_millis(bad).is_err() && base_units(bad).is_err(),
                "{bad:?} accepted"
            );
        }
    }
}
