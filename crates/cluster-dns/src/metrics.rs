//! The `prometheus` plugin's `/metrics`: CoreDNS's counters under CoreDNS's names and labels,
//! in Prometheus's text format, so dashboards and alerts written for EKS's CoreDNS read them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// The CoreDNS version the built-in answers as (EKS's `v1.11.3-eksbuild.1` image).
pub const VERSION: &str = "1.11.3";

/// The counter families, with CoreDNS's help texts.
const FAMILIES: &[(&str, &str)] = &[
    ("coredns_cache_hits_total", "The count of cache hits."),
    (
        "coredns_cache_misses_total",
        "The count of cache misses. Deprecated, derive misses from cache hits/requests counters.",
    ),
    (
        "coredns_cache_requests_total",
        "The count of cache requests.",
    ),
    (
        "coredns_dns_requests_total",
        "Counter of DNS requests made per zone, protocol and family.",
    ),
    (
        "coredns_dns_responses_total",
        "Counter of response status codes.",
    ),
    (
        "coredns_forward_requests_total",
        "Counter of requests made per upstream.",
    ),
    (
        "coredns_reload_failed_total",
        "Counter of the number of failed reload attempts.",
    ),
];

/// Counters by family and label set; kept across reloads, as CoreDNS's registry is.
#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<&'static str, BTreeMap<String, u64>>>,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn label_text(labels: &[(&str, &str)]) -> String {
    let mut sorted: Vec<_> = labels.to_vec();
    sorted.sort();
    let inner: Vec<String> = sorted
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

impl Metrics {
    /// Add one to `family` (one of [`FAMILIES`]) with `labels`.
    pub fn inc(&self, family: &'static str, labels: &[(&str, &str)]) {
        let mut c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        *c.entry(family)
            .or_default()
            .entry(label_text(labels))
            .or_default() += 1;
    }

    /// The value of one series (for tests and logs).
    pub fn get(&self, family: &str, labels: &[(&str, &str)]) -> u64 {
        let c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        c.get(family)
            .and_then(|f| f.get(&label_text(labels)))
            .copied()
            .unwrap_or(0)
    }

    /// The exposition: `coredns_build_info` and every counter seen so far.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP coredns_build_info A metric with a constant '1' value labeled by version, revision, and goversion from which CoreDNS was built.\n# TYPE coredns_build_info gauge\ncoredns_build_info{{goversion=\"none (localfargate built-in)\",revision=\"localfargate-{}\",version=\"{VERSION}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        let c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        for (family, help) in FAMILIES {
            let Some(series) = c.get(family) else {
                continue;
            };
            let _ = writeln!(out, "# HELP {family} {help}\n# TYPE {family} counter");
            for (labels, v) in series {
                let _ = writeln!(out, "{family}{labels} {v}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_in_the_text_format() {
        let m = Metrics::default();
        let l = [("server", "dns://:53"), ("zone", "."), ("rcode", "NOERROR")];
        m.inc("coredns_dns_responses_total", &l);
        m.inc("coredns_dns_responses_total", &l);
        assert_eq!(m.get("coredns_dns_responses_total", &l), 2);
        let text = m.render();
        assert!(
            text.contains(
                "coredns_dns_responses_total{rcode=\"NOERROR\",server=\"dns://:53\",zone=\".\"} 2\n"
            ),
            "{text}"
        );
        assert!(text.contains("# TYPE coredns_dns_responses_total counter\n"));
        assert!(text.contains("coredns_build_info{"));
        assert!(!text.contains("coredns_cache_hits_total"));
    }
}
