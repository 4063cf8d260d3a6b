//! The `prometheus` plugin's `/metrics`: CoreDNS's counters under CoreDNS's names and labels,
//! in Prometheus's text format, so dashboards and alerts written for EKS's CoreDNS read them.
//!
//! The counters a query touches are registered once per server block when a config is built
//! ([`Metrics::zone`], [`Metrics::cache`]): a block holds its label values (`server`, `zone`)
//! already made and an array of atomics indexed by the query's protocol, family and type, and
//! by the response's code and plugin. Counting a query is then two atomic additions, with no
//! lock, no allocation and no label formatting; the labels are written only when `/metrics`
//! is read. Rare series (reload failures, codes outside the table) go through a map.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

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
        "coredns_forward_healthcheck_broken_total",
        "Counter of the number of complete failures of the healthchecks.",
    ),
    (
        "coredns_proxy_healthcheck_failures_total",
        "Counter of the number of failed healthchecks.",
    ),
    (
        "coredns_reload_failed_total",
        "Counter of the number of failed reload attempts.",
    ),
];

/// The query types `coredns_dns_requests_total` names (CoreDNS's monitored types); the rest
/// are counted as `other`, the last slot.
const TYPES: &[RecordType] = &[
    RecordType::A,
    RecordType::AAAA,
    RecordType::MX,
    RecordType::SOA,
    RecordType::CNAME,
    RecordType::PTR,
    RecordType::TXT,
    RecordType::NS,
    RecordType::SRV,
    RecordType::DS,
    RecordType::DNSKEY,
    RecordType::RRSIG,
    RecordType::NSEC,
    RecordType::NSEC3,
    RecordType::HTTPS,
    RecordType::IXFR,
    RecordType::AXFR,
    RecordType::ANY,
];
const TYPE_SLOTS: usize = TYPES.len() + 1;

fn type_slot(t: RecordType) -> usize {
    TYPES.iter().position(|x| *x == t).unwrap_or(TYPES.len())
}

fn type_label(slot: usize) -> String {
    TYPES
        .get(slot)
        .map_or_else(|| "other".to_string(), |t| t.to_string())
}

/// The response codes by number as CoreDNS names them (miekg/dns's table; unnamed ones
/// `RCODE<n>`). Codes past the table are rare (extended codes) and counted in the map.
const RCODES: &[&str] = &[
    "NOERROR",
    "FORMERR",
    "SERVFAIL",
    "NXDOMAIN",
    "NOTIMP",
    "REFUSED",
    "YXDOMAIN",
    "YXRRSET",
    "NXRRSET",
    "NOTAUTH",
    "NOTZONE",
    "RCODE11",
    "RCODE12",
    "RCODE13",
    "RCODE14",
    "RCODE15",
    "BADSIG",
    "BADKEY",
    "BADTIME",
    "BADMODE",
    "BADNAME",
    "BADALG",
    "BADTRUNC",
    "BADCOOKIE",
];

/// `rcode`'s label value.
pub fn rcode_label(rcode: ResponseCode) -> String {
    let n = u16::from(rcode);
    RCODES
        .get(usize::from(n))
        .map_or_else(|| format!("RCODE{n}"), |s| (*s).to_string())
}

/// The plugin that wrote a response (`coredns_dns_responses_total`'s `plugin`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plugin {
    /// An error of the server's own (no block, no next plugin): the empty label.
    None,
    Kubernetes,
    Forward,
    Cache,
}

impl Plugin {
    const ALL: [Plugin; 4] = [
        Plugin::None,
        Plugin::Kubernetes,
        Plugin::Forward,
        Plugin::Cache,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Plugin::None => "",
            Plugin::Kubernetes => "kubernetes",
            Plugin::Forward => "forward",
            Plugin::Cache => "cache",
        }
    }

    fn slot(self) -> usize {
        self as usize
    }
}

fn counters(n: usize) -> Box<[AtomicU64]> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

/// The request and response counters of one server block's zone (or of `dropped`, the
/// queries no block holds), with its label values made once.
pub struct ZoneCounters {
    server: String,
    zone: String,
    /// By `proto` (udp, tcp) × `family` (1, 2) × `type`.
    requests: Box<[AtomicU64]>,
    /// By `rcode` (the table) × `plugin`.
    responses: Box<[AtomicU64]>,
    /// The registry, for the rare codes past the table.
    rare: Arc<Mutex<Series>>,
}

impl ZoneCounters {
    /// Count a query (`coredns_dns_requests_total`).
    pub fn request(&self, udp: bool, ipv4: bool, qtype: RecordType) {
        let i = (usize::from(!udp) * 2 + usize::from(!ipv4)) * TYPE_SLOTS + type_slot(qtype);
        if let Some(c) = self.requests.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Count a response (`coredns_dns_responses_total`).
    pub fn response(&self, rcode: ResponseCode, plugin: Plugin) {
        let code = usize::from(u16::from(rcode));
        if code < RCODES.len() {
            if let Some(c) = self.responses.get(code * Plugin::ALL.len() + plugin.slot()) {
                c.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        let labels = [
            ("server", self.server.as_str()),
            ("zone", self.zone.as_str()),
            ("view", ""),
            ("rcode", &rcode_label(rcode)),
            ("plugin", plugin.label()),
        ];
        add(&self.rare, "coredns_dns_responses_total", &labels);
    }

    fn collect(&self, out: &mut Series) {
        for (i, c) in self.requests.iter().enumerate() {
            let v = c.load(Ordering::Relaxed);
            if v == 0 {
                continue;
            }
            let (pf, t) = (i / TYPE_SLOTS, i % TYPE_SLOTS);
            let labels = [
                ("server", self.server.as_str()),
                ("zone", self.zone.as_str()),
                ("view", ""),
                ("proto", if pf / 2 == 0 { "udp" } else { "tcp" }),
                ("family", if pf % 2 == 0 { "1" } else { "2" }),
                ("type", &type_label(t)),
            ];
            *series_entry(out, "coredns_dns_requests_total", &labels) += v;
        }
        for (i, c) in self.responses.iter().enumerate() {
            let v = c.load(Ordering::Relaxed);
            if v == 0 {
                continue;
            }
            let (code, plugin) = (i / Plugin::ALL.len(), Plugin::ALL[i % Plugin::ALL.len()]);
            let labels = [
                ("server", self.server.as_str()),
                ("zone", self.zone.as_str()),
                ("view", ""),
                ("rcode", RCODES[code]),
                ("plugin", plugin.label()),
            ];
            *series_entry(out, "coredns_dns_responses_total", &labels) += v;
        }
    }
}

/// The `cache` plugin's counters of one block (`server`, `zones`).
pub struct CacheCounters {
    server: String,
    zones: String,
    requests: AtomicU64,
    misses: AtomicU64,
    hits_success: AtomicU64,
    hits_denial: AtomicU64,
}

impl CacheCounters {
    /// A lookup in the cache: a hit (a denial when the answer is empty) or a miss.
    pub fn lookup(&self, hit: Option<bool>) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let c = match hit {
            None => &self.misses,
            Some(true) => &self.hits_denial,
            Some(false) => &self.hits_success,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn collect(&self, out: &mut Series) {
        let base = [
            ("server", self.server.as_str()),
            ("zones", self.zones.as_str()),
            ("view", ""),
        ];
        for (family, c) in [
            ("coredns_cache_requests_total", &self.requests),
            ("coredns_cache_misses_total", &self.misses),
        ] {
            let v = c.load(Ordering::Relaxed);
            if v > 0 {
                *series_entry(out, family, &base) += v;
            }
        }
        for (kind, c) in [
            ("success", &self.hits_success),
            ("denial", &self.hits_denial),
        ] {
            let v = c.load(Ordering::Relaxed);
            if v > 0 {
                let mut l = base.to_vec();
                l.push(("type", kind));
                *series_entry(out, "coredns_cache_hits_total", &l) += v;
            }
        }
    }
}

/// Counters by family and label text.
type Series = BTreeMap<&'static str, BTreeMap<String, u64>>;

fn series_entry<'a>(
    s: &'a mut Series,
    family: &'static str,
    labels: &[(&str, &str)],
) -> &'a mut u64 {
    s.entry(family)
        .or_default()
        .entry(label_text(labels))
        .or_default()
}

fn add(rare: &Mutex<Series>, family: &'static str, labels: &[(&str, &str)]) {
    let mut s = rare.lock().unwrap_or_else(|p| p.into_inner());
    *series_entry(&mut s, family, labels) += 1;
}

/// The registry: every block's counters, kept across reloads as CoreDNS's registry is (a
/// reloaded block with the same `server` and zone goes on counting in the same series).
#[derive(Default)]
pub struct Metrics {
    zones: RwLock<BTreeMap<(String, String), Arc<ZoneCounters>>>,
    caches: RwLock<BTreeMap<(String, String), Arc<CacheCounters>>>,
    rare: Arc<Mutex<Series>>,
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
    /// The counters of `zone` (`.`, `example.internal.`, `dropped`) on `server`
    /// (`dns://:53`), registered on first use.
    pub fn zone(&self, server: &str, zone: &str) -> Arc<ZoneCounters> {
        let key = (server.to_string(), zone.to_string());
        if let Some(z) = self
            .zones
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return z.clone();
        }
        let mut zones = self.zones.write().unwrap_or_else(|p| p.into_inner());
        zones
            .entry(key)
            .or_insert_with(|| {
                Arc::new(ZoneCounters {
                    server: server.to_string(),
                    zone: zone.to_string(),
                    requests: counters(4 * TYPE_SLOTS),
                    responses: counters(RCODES.len() * Plugin::ALL.len()),
                    rare: self.rare.clone(),
                })
            })
            .clone()
    }

    /// The cache counters of the block of `zones` on `server`, registered on first use.
    pub fn cache(&self, server: &str, zones: &str) -> Arc<CacheCounters> {
        let key = (server.to_string(), zones.to_string());
        let mut caches = self.caches.write().unwrap_or_else(|p| p.into_inner());
        caches
            .entry(key)
            .or_insert_with(|| {
                Arc::new(CacheCounters {
                    server: server.to_string(),
                    zones: zones.to_string(),
                    requests: AtomicU64::new(0),
                    misses: AtomicU64::new(0),
                    hits_success: AtomicU64::new(0),
                    hits_denial: AtomicU64::new(0),
                })
            })
            .clone()
    }

    /// Add one to a rare series: `family` (one of [`FAMILIES`]) with `labels`.
    pub fn inc(&self, family: &'static str, labels: &[(&str, &str)]) {
        add(&self.rare, family, labels);
    }

    /// Every series with a count.
    fn series(&self) -> Series {
        let mut out = self.rare.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for z in self
            .zones
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            z.collect(&mut out);
        }
        for c in self
            .caches
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            c.collect(&mut out);
        }
        out
    }

    /// The value of one series (for tests and logs).
    pub fn get(&self, family: &str, labels: &[(&str, &str)]) -> u64 {
        self.series()
            .get(family)
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
        let c = self.series();
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
        let z = m.zone("dns://:53", ".");
        z.response(ResponseCode::NoError, Plugin::Kubernetes);
        // The same block registered again (a reload) counts in the same series.
        m.zone("dns://:53", ".")
            .response(ResponseCode::NoError, Plugin::Kubernetes);
        z.request(true, true, RecordType::A);
        z.request(false, false, RecordType::HINFO);
        z.response(ResponseCode::Unknown(3841), Plugin::None);
        let l = [
            ("server", "dns://:53"),
            ("zone", "."),
            ("view", ""),
            ("rcode", "NOERROR"),
            ("plugin", "kubernetes"),
        ];
        assert_eq!(m.get("coredns_dns_responses_total", &l), 2);
        let text = m.render();
        for line in [
            "coredns_dns_responses_total{plugin=\"kubernetes\",rcode=\"NOERROR\",server=\"dns://:53\",view=\"\",zone=\".\"} 2\n",
            "coredns_dns_responses_total{plugin=\"\",rcode=\"RCODE3841\",server=\"dns://:53\",view=\"\",zone=\".\"} 1\n",
            "coredns_dns_requests_total{family=\"1\",proto=\"udp\",server=\"dns://:53\",type=\"A\",view=\"\",zone=\".\"} 1\n",
            "coredns_dns_requests_total{family=\"2\",proto=\"tcp\",server=\"dns://:53\",type=\"other\",view=\"\",zone=\".\"} 1\n",
            "# TYPE coredns_dns_responses_total counter\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert_eq!(
            text.matches("# TYPE coredns_dns_responses_total").count(),
            1,
            "one family header: {text}"
        );
        assert!(text.contains("coredns_build_info{"));
        assert!(!text.contains("coredns_cache_hits_total"));
    }

    #[test]
    fn cache_counters_and_rare_series() {
        let m = Metrics::default();
        let c = m.cache("dns://:53", "example.internal.");
        c.lookup(None);
        c.lookup(Some(false));
        c.lookup(Some(true));
        let base = [
            ("server", "dns://:53"),
            ("zones", "example.internal."),
            ("view", ""),
        ];
        assert_eq!(m.get("coredns_cache_requests_total", &base), 3);
        assert_eq!(m.get("coredns_cache_misses_total", &base), 1);
        let mut hit = base.to_vec();
        hit.push(("type", "denial"));
        assert_eq!(m.get("coredns_cache_hits_total", &hit), 1);
        m.inc("coredns_reload_failed_total", &[]);
        assert!(m.render().contains("coredns_reload_failed_total{} 1\n"));
        assert_eq!(rcode_label(ResponseCode::NXDomain), "NXDOMAIN");
        assert_eq!(rcode_label(ResponseCode::BADCOOKIE), "BADCOOKIE");
    }
}
