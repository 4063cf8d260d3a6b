//! Go's `time.Duration.String()`, which Kubernetes objects and the kubelet's messages carry
//! (`10.003241s`, `1m0.5s`, `1.5ms`, `5m0s`) and which jiff does not print.

use std::time::Duration;

/// A `metav1.Duration` as Go prints it (`time.Duration.String()`): `10.003241s`, `1m0.5s`,
/// `1.5ms`.
pub fn format(d: Duration) -> String {
    fn decimal(value: u128, unit: u128, digits: usize) -> String {
        let (whole, rest) = (value / unit, value % unit);
        if rest == 0 {
            whole.to_string()
        } else {
            let fraction = format!("{rest:0digits$}");
            format!("{whole}.{}", fraction.trim_end_matches('0'))
        }
    }
    let ns = d.as_nanos();
    match ns {
        0 => "0s".to_string(),
        1..1_000 => format!("{ns}ns"),
        1_000..1_000_000 => format!("{}µs", decimal(ns, 1_000, 3)),
        1_000_000..1_000_000_000 => format!("{}ms", decimal(ns, 1_000_000, 6)),
        _ => {
            let secs = d.as_secs();
            let (h, m) = (secs / 3600, (secs / 60) % 60);
            let s = decimal(
                u128::from(secs % 60) * 1_000_000_000 + u128::from(d.subsec_nanos()),
                1_000_000_000,
                9,
            );
            if h > 0 {
                format!("{h}h{m}m{s}s")
            } else if m > 0 {
                format!("{m}m{s}s")
            } else {
                format!("{s}s")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_print_as_go_durations() {
        let ms = Duration::from_millis;
        assert_eq!(format(Duration::ZERO), "0s");
        assert_eq!(format(Duration::from_secs(10)), "10s");
        assert_eq!(format(ms(20_064)), "20.064s");
        assert_eq!(format(Duration::from_nanos(10_003_241_000)), "10.003241s");
        assert_eq!(format(ms(60_500)), "1m0.5s");
        assert_eq!(format(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(format(ms(1) + Duration::from_micros(500)), "1.5ms");
        assert_eq!(format(Duration::from_micros(999)), "999µs");
        assert_eq!(format(Duration::from_nanos(42)), "42ns");
    }
}
