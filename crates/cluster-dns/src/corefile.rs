//! The part of CoreDNS's Corefile that EKS's `coredns` ConfigMap uses, and what users add to
//! it: server blocks (`.:53`, stub domains such as `example.internal:53`) with `errors`,
//! `health`, `ready`, `kubernetes`, `prometheus`, `forward` (`except`, `policy`, `max_fails`,
//! `health_check`), `cache`, `loop`, `reload`, `loadbalance` (and `log`). Other plugins of CoreDNS are accepted and
//! listed in [`ServerBlock::unsupported`]; a name CoreDNS does not know fails as it fails.

use crate::DnsError;

/// EKS's Corefile, as the `coredns` add-on's ConfigMap holds it.
pub const EKS_COREFILE: &str = ".:53 {
    errors
    health {
        lameduck 5s
      }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
      pods insecure
      fallthrough in-addr.arpa ip6.arpa
    }
    prometheus :9153
    forward . /etc/resolv.conf
    cache 30
    loop
    reload
    loadbalance
}
";

/// A Corefile: its server blocks, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corefile {
    pub servers: Vec<ServerBlock>,
}

/// One server block (`ZONE[:PORT] ... { plugins }`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerBlock {
    /// The zones the block serves, lower case, fully qualified (`.`, `example.internal.`).
    pub zones: Vec<String>,
    /// The port DNS is served on (`.:53`).
    pub port: u16,
    /// `health [ADDR]`: where `/health` is served (`:8080`).
    pub health: Option<String>,
    /// `ready [ADDR]`: where `/ready` is served (`:8181`).
    pub ready: Option<String>,
    /// `prometheus [ADDR]` (`:9153`).
    pub prometheus: Option<String>,
    pub kubernetes: Option<Kubernetes>,
    pub forward: Option<Forward>,
    /// `cache [TTL]`: the most seconds an answer is kept (0: no cache).
    pub cache: u32,
    /// `loop`: probe for a forwarding loop at start.
    pub loop_detect: bool,
    /// `loadbalance [round_robin]`: A, AAAA and MX records shuffled in each answer.
    pub loadbalance: bool,
    /// `reload [INTERVAL [JITTER]]`: how often the Corefile is checked, in seconds.
    pub reload: Option<Reload>,
    /// Plugins CoreDNS has that the built-in does not do (warned about, then ignored).
    pub unsupported: Vec<String>,
}

/// `forward FROM TO... { except NAMES...; policy P; max_fails N; health_check D ... }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forward {
    /// The zone forwarded (`.`), lower case, fully qualified.
    pub from: String,
    /// Files (resolv.conf) or addresses.
    pub to: Vec<String>,
    /// Names under these zones are not forwarded.
    pub except: Vec<String>,
    pub policy: Policy,
    pub health: HealthCheck,
}

/// `forward`'s health checking of its upstreams (`max_fails`, `health_check`,
/// `failfast_all_unhealthy_upstreams`), CoreDNS's defaults in [`HealthCheck::default`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    /// Failed checks in a row after which an upstream is down (more than this many); 0: never
    /// down, never checked.
    pub max_fails: u32,
    /// The time between two checks of an upstream that failed (`health_check DURATION`).
    pub interval: std::time::Duration,
    /// The check's RD flag (`no_rec` clears it).
    pub recursion_desired: bool,
    /// The name the check asks NS of (`domain FQDN`; `.`).
    pub domain: String,
    /// `failfast_all_unhealthy_upstreams`: SERVFAIL when every upstream is down, instead of
    /// trying a random one.
    pub failfast: bool,
}

impl Default for HealthCheck {
    fn default() -> HealthCheck {
        HealthCheck {
            max_fails: 2,
            interval: std::time::Duration::from_millis(500),
            recursion_desired: true,
            domain: ".".into(),
            failfast: false,
        }
    }
}

/// The order upstreams are tried in (`policy`; CoreDNS's default is `random`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    Random,
    RoundRobin,
    Sequential,
}

/// `reload`'s check interval and jitter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reload {
    pub interval: std::time::Duration,
    pub jitter: std::time::Duration,
}

/// The `kubernetes` plugin's block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kubernetes {
    /// The first is the cluster domain; the rest reverse zones.
    pub zones: Vec<String>,
    pub pods: String,
    pub fallthrough: Vec<String>,
    /// `kubeconfig PATH`: API access from a kubeconfig instead of the in-cluster config.
    pub kubeconfig: Option<String>,
    /// `ttl N` (5).
    pub ttl: u32,
}

/// Plugins of CoreDNS (its `plugin.cfg`) that the built-in accepts without doing them: a
/// Corefile naming them still loads, with a warning, as the pods must keep serving.
const KNOWN_PLUGINS: &[&str] = &[
    "acl",
    "any",
    "auto",
    "autopath",
    "azure",
    "bind",
    "bufsize",
    "cancel",
    "chaos",
    "clouddns",
    "debug",
    "dns64",
    "dnssec",
    "dnstap",
    "erratic",
    "etcd",
    "file",
    "geoip",
    "grpc",
    "header",
    "hosts",
    "import",
    "k8s_external",
    "local",
    "metadata",
    "minimal",
    "multisocket",
    "nsid",
    "on",
    "pprof",
    "rewrite",
    "root",
    "route53",
    "secondary",
    "sign",
    "template",
    "timeouts",
    "tls",
    "trace",
    "transfer",
    "tsig",
    "view",
    "whoami",
];

/// A directive's line, its words, and its sub-block's lines.
type Directive = (usize, Vec<String>, Vec<(usize, Vec<String>)>);

#[derive(Debug)]
struct Token {
    line: usize,
    text: String,
}

fn tokens(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default();
        // Braces are tokens of their own even when written against a word (`.:53{`).
        let spaced = line.replace('{', " { ").replace('}', " } ");
        for w in spaced.split_whitespace() {
            out.push(Token {
                line: i + 1,
                text: w.to_string(),
            });
        }
        out.push(Token {
            line: i + 1,
            text: "\n".into(),
        });
    }
    out
}

fn parse_error(file: &str, line: usize, msg: impl std::fmt::Display) -> DnsError {
    DnsError::Corefile(format!("{file}:{line} - Error during parsing: {msg}"))
}

/// Caddy's error for an option missing its argument.
fn arg_count(file: &str, line: usize, opt: &str) -> DnsError {
    parse_error(
        file,
        line,
        format!("Wrong argument count or unexpected line ending after '{opt}'"),
    )
}

/// `name` lower case with its final dot.
pub fn fqdn(name: &str) -> String {
    let n = name.to_ascii_lowercase();
    if n.ends_with('.') { n } else { format!("{n}.") }
}

/// A server block's key: `[dns://]ZONE[:PORT]` → (zone, port).
fn server_key(file: &str, line: usize, key: &str) -> Result<(String, u16), DnsError> {
    let k = key.trim_start_matches("dns://");
    let (zone, port) = match k.rsplit_once(':') {
        Some((zone, port)) => (
            zone,
            port.parse()
                .map_err(|_| parse_error(file, line, format!("invalid port {port:?}")))?,
        ),
        None => (k, 53),
    };
    let zone = if zone.is_empty() { "." } else { zone };
    if zone.contains("://") || zone.contains('/') {
        return Err(parse_error(
            file,
            line,
            format!("unsupported server address {key:?}"),
        ));
    }
    Ok((fqdn(zone), port))
}

/// Parse `text` (read from `file`, for messages).
pub fn parse(file: &str, text: &str) -> Result<Corefile, DnsError> {
    let toks = tokens(text);
    let mut servers = Vec::new();
    let mut i = 0;
    loop {
        while i < toks.len() && toks[i].text == "\n" {
            i += 1;
        }
        if i >= toks.len() {
            break;
        }
        // The keys, up to the block's brace (several keys: `a.com b.com:53 {`, `a.com,b.com`).
        let key_line = toks[i].line;
        let mut keys = Vec::new();
        while i < toks.len() && toks[i].text != "{" {
            if toks[i].text == "}" {
                return Err(parse_error(file, toks[i].line, "unexpected '}'"));
            }
            if toks[i].text != "\n" {
                keys.extend(
                    toks[i]
                        .text
                        .split(',')
                        .filter(|k| !k.is_empty())
                        .map(str::to_string),
                );
            }
            i += 1;
        }
        if i >= toks.len() {
            return Err(parse_error(file, key_line, "expected '{'"));
        }
        i += 1;
        let (lines, next) = block_lines(file, key_line, &toks, i)?;
        i = next;
        servers.push(server_block(file, key_line, &keys, lines)?);
    }
    if servers.is_empty() {
        return Err(DnsError::Corefile(format!("{file}: no server block")));
    }
    Ok(Corefile { servers })
}

/// The directives of the block whose body starts at `toks[i]`, and where parsing goes on.
fn block_lines(
    file: &str,
    key_line: usize,
    toks: &[Token],
    mut i: usize,
) -> Result<(Vec<Directive>, usize), DnsError> {
    let mut lines: Vec<Directive> = Vec::new();
    while i < toks.len() {
        let t = &toks[i];
        if t.text == "\n" {
            i += 1;
            continue;
        }
        if t.text == "}" {
            return Ok((lines, i + 1));
        }
        let line = t.line;
        let mut words = Vec::new();
        while i < toks.len() && toks[i].text != "\n" && toks[i].text != "{" && toks[i].text != "}" {
            words.push(toks[i].text.clone());
            i += 1;
        }
        let mut sub = Vec::new();
        if i < toks.len() && toks[i].text == "{" {
            i += 1;
            let mut cur: Vec<String> = Vec::new();
            let mut cur_line = line;
            let mut ended = false;
            while i < toks.len() {
                let b = &toks[i];
                i += 1;
                match b.text.as_str() {
                    "}" => {
                        ended = true;
                        break;
                    }
                    "\n" => {
                        if !cur.is_empty() {
                            sub.push((cur_line, std::mem::take(&mut cur)));
                        }
                    }
                    w => {
                        if cur.is_empty() {
                            cur_line = b.line;
                        }
                        cur.push(w.to_string());
                    }
                }
            }
            if !cur.is_empty() {
                sub.push((cur_line, cur));
            }
            if !ended {
                return Err(parse_error(file, line, "unexpected EOF"));
            }
        }
        lines.push((line, words, sub));
    }
    Err(parse_error(file, key_line, "unexpected EOF"))
}

fn duration(file: &str, line: usize, s: &str) -> Result<std::time::Duration, DnsError> {
    go_duration(s).map_err(|e| parse_error(file, line, e))
}

/// A duration as Go's `time.ParseDuration` reads it (`500ms`, `0.5s`, `1m30s`, `0`), which
/// CoreDNS's plugins use; negative durations are refused by the callers, so by this.
pub fn go_duration(s: &str) -> Result<std::time::Duration, String> {
    let invalid = || format!("time: invalid duration {s:?}");
    if s == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest.starts_with('-') {
        return Err(format!("negative duration {s:?}"));
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut nanos: f64 = 0.0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_end);
        if num.is_empty() || num == "." {
            return Err(invalid());
        }
        let value: f64 = num.parse().map_err(|_| invalid())?;
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("time: missing unit in duration {s:?}")),
            other => return Err(format!("time: unknown unit {other:?} in duration {s:?}")),
        };
        nanos += value * scale;
        rest = next;
    }
    if !nanos.is_finite() || nanos > u64::MAX as f64 {
        return Err(invalid());
    }
    Ok(std::time::Duration::from_nanos(nanos as u64))
}

fn server_block(
    file: &str,
    key_line: usize,
    keys: &[String],
    lines: Vec<Directive>,
) -> Result<ServerBlock, DnsError> {
    let mut zones = Vec::new();
    let mut port = None;
    for k in keys {
        let (zone, p) = server_key(file, key_line, k)?;
        if port.is_some_and(|q| q != p) {
            return Err(parse_error(
                file,
                key_line,
                "the keys of one server block must share a port",
            ));
        }
        port = Some(p);
        zones.push(zone);
    }
    let Some(port) = port else {
        return Err(parse_error(file, key_line, "a server block needs a zone"));
    };
    let mut c = ServerBlock {
        zones,
        port,
        health: None,
        ready: None,
        prometheus: None,
        kubernetes: None,
        forward: None,
        cache: 0,
        loop_detect: false,
        loadbalance: false,
        reload: None,
        unsupported: Vec::new(),
    };
    for (line, words, sub) in lines {
        let Some((name, args)) = words.split_first() else {
            continue;
        };
        let first = || args.first().cloned();
        match name.as_str() {
            "errors" | "log" => {}
            "loadbalance" => {
                match args {
                    [] => c.loadbalance = true,
                    [p] if p == "round_robin" => c.loadbalance = true,
                    [p, ..] if p == "round_robin" => {
                        return Err(parse_error(file, line, "unknown property for round_robin"));
                    }
                    [p, ..] if p == "weighted" => c.unsupported.push("loadbalance/weighted".into()),
                    [p, ..] => {
                        return Err(parse_error(file, line, format!("unknown policy: {p}")));
                    }
                }
                // `prefer CIDR...` (and weighted's `reload`): not done, the shuffle still is.
                for (_, s) in &sub {
                    if let Some(opt) = s.first() {
                        c.unsupported.push(format!("loadbalance/{opt}"));
                    }
                }
            }
            "loop" => c.loop_detect = true,
            "reload" => {
                let interval = match args.first() {
                    Some(s) => duration(file, line, s)?,
                    None => std::time::Duration::from_secs(30),
                };
                let jitter = match args.get(1) {
                    Some(s) => duration(file, line, s)?,
                    None => interval / 2,
                };
                // CoreDNS's bounds: at least 2 s between checks, at least 1 s of jitter,
                // jitter at most half the interval.
                if interval < std::time::Duration::from_secs(2)
                    || jitter < std::time::Duration::from_secs(1)
                    || jitter > interval / 2
                {
                    return Err(parse_error(
                        file,
                        line,
                        "reload: interval at least 2s, jitter at least 1s and at most half the interval",
                    ));
                }
                c.reload = Some(Reload { interval, jitter });
            }
            "health" => c.health = Some(first().unwrap_or_else(|| ":8080".into())),
            "ready" => c.ready = Some(first().unwrap_or_else(|| ":8181".into())),
            "prometheus" => c.prometheus = Some(first().unwrap_or_else(|| ":9153".into())),
            "cache" => {
                c.cache = match first() {
                    None => 3600,
                    Some(n) => n
                        .parse()
                        .map_err(|_| parse_error(file, line, format!("invalid TTL {n:?}")))?,
                }
            }
            "forward" => {
                if args.len() < 2 {
                    return Err(parse_error(file, line, "forward FROM TO... needs a target"));
                }
                let mut f = Forward {
                    from: fqdn(&args[0]),
                    to: args[1..].to_vec(),
                    except: Vec::new(),
                    policy: Policy::Random,
                    health: HealthCheck::default(),
                };
                for (sline, s) in sub {
                    let Some((opt, rest)) = s.split_first() else {
                        continue;
                    };
                    match opt.as_str() {
                        "except" => f.except.extend(rest.iter().map(|n| fqdn(n))),
                        "policy" => {
                            f.policy = match rest.first().map(String::as_str) {
                                Some("random") => Policy::Random,
                                Some("round_robin") => Policy::RoundRobin,
                                Some("sequential") => Policy::Sequential,
                                other => {
                                    return Err(parse_error(
                                        file,
                                        sline,
                                        format!("unknown policy '{}'", other.unwrap_or("")),
                                    ));
                                }
                            }
                        }
                        "max_fails" => {
                            let [n] = rest else {
                                return Err(arg_count(file, sline, opt));
                            };
                            f.health.max_fails = n.parse().map_err(|_| {
                                parse_error(
                                    file,
                                    sline,
                                    format!("strconv.ParseUint: parsing {n:?}: invalid syntax"),
                                )
                            })?;
                        }
                        "health_check" => {
                            let Some((d, opts)) = rest.split_first() else {
                                return Err(arg_count(file, sline, opt));
                            };
                            f.health.interval = duration(file, sline, d)?;
                            f.health.domain = ".".into();
                            let mut opts = opts.iter();
                            while let Some(o) = opts.next() {
                                match o.as_str() {
                                    "no_rec" => f.health.recursion_desired = false,
                                    "domain" => {
                                        let Some(d) = opts.next() else {
                                            return Err(arg_count(file, sline, opt));
                                        };
                                        if hickory_proto::rr::Name::from_ascii(d).is_err() {
                                            return Err(parse_error(
                                                file,
                                                sline,
                                                format!("health_check: invalid domain name {d}"),
                                            ));
                                        }
                                        f.health.domain = fqdn(d);
                                    }
                                    other => {
                                        return Err(parse_error(
                                            file,
                                            sline,
                                            format!("health_check: unknown option {other}"),
                                        ));
                                    }
                                }
                            }
                        }
                        "failfast_all_unhealthy_upstreams" => f.health.failfast = true,
                        "force_tcp" | "prefer_udp" | "expire" | "max_concurrent" | "tls"
                        | "tls_servername" | "next" => {
                            c.unsupported.push(format!("forward/{opt}"));
                        }
                        other => {
                            return Err(parse_error(
                                file,
                                sline,
                                format!("unknown property '{other}'"),
                            ));
                        }
                    }
                }
                c.forward = Some(f);
            }
            "kubernetes" => {
                let mut k = Kubernetes {
                    zones: if args.is_empty() {
                        vec!["cluster.local".into()]
                    } else {
                        args.to_vec()
                    },
                    pods: "disabled".into(),
                    fallthrough: Vec::new(),
                    kubeconfig: None,
                    ttl: 5,
                };
                for (sline, s) in sub {
                    let Some((opt, rest)) = s.split_first() else {
                        continue;
                    };
                    match opt.as_str() {
                        "pods" => k.pods = rest.first().cloned().unwrap_or_default(),
                        "fallthrough" => k.fallthrough = rest.to_vec(),
                        "kubeconfig" => k.kubeconfig = rest.first().cloned(),
                        "ttl" => {
                            k.ttl = rest.first().and_then(|t| t.parse().ok()).ok_or_else(|| {
                                parse_error(file, sline, "ttl needs a number of seconds")
                            })?
                        }
                        other => {
                            return Err(parse_error(
                                file,
                                sline,
                                format!("unknown property '{other}'"),
                            ));
                        }
                    }
                }
                c.kubernetes = Some(k);
            }
            other if KNOWN_PLUGINS.contains(&other) => c.unsupported.push(other.to_string()),
            other => {
                return Err(parse_error(
                    file,
                    line,
                    format!("Unknown directive '{other}'"),
                ));
            }
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eks_corefile() {
        let c = parse("Corefile", EKS_COREFILE).unwrap();
        let [s] = c.servers.as_slice() else {
            panic!("{c:?}")
        };
        assert_eq!(s.zones, vec!["."]);
        assert_eq!(s.port, 53);
        assert_eq!(s.health.as_deref(), Some(":8080"));
        assert_eq!(s.ready.as_deref(), Some(":8181"));
        assert_eq!(s.prometheus.as_deref(), Some(":9153"));
        let f = s.forward.as_ref().unwrap();
        assert_eq!(
            (f.from.as_str(), f.to.clone()),
            (".", vec!["/etc/resolv.conf".to_string()])
        );
        assert_eq!(f.policy, Policy::Random);
        assert_eq!(s.cache, 30);
        assert!(s.loop_detect);
        let r = s.reload.unwrap();
        assert_eq!(r.interval.as_secs(), 30);
        assert_eq!(r.jitter.as_secs(), 15);
        assert!(s.unsupported.is_empty());
        let k = s.kubernetes.as_ref().unwrap();
        assert_eq!(k.zones, vec!["cluster.local", "in-addr.arpa", "ip6.arpa"]);
        assert_eq!(k.pods, "insecure");
        assert_eq!(k.fallthrough, vec!["in-addr.arpa", "ip6.arpa"]);
        assert_eq!(k.ttl, 5);
    }

    #[test]
    fn ports_addresses_and_errors() {
        let c = parse(
            "f",
            ".:1053 {\n health 127.0.0.1:18080\n ready 127.0.0.1:18181\n kubernetes cluster.local {\n  kubeconfig /tmp/k\n }\n forward . 127.0.0.1:5300\n}\n",
        )
        .unwrap();
        let s = &c.servers[0];
        assert_eq!(s.port, 1053);
        assert_eq!(s.health.as_deref(), Some("127.0.0.1:18080"));
        assert_eq!(
            s.kubernetes.as_ref().unwrap().kubeconfig.as_deref(),
            Some("/tmp/k")
        );
        assert_eq!(s.cache, 0);
        assert!(!s.loop_detect && s.reload.is_none());
        let e = parse("f", ".:53 {\n  bogus\n}\n").unwrap_err().to_string();
        assert!(
            e.contains("f:2 - Error during parsing: Unknown directive 'bogus'"),
            "{e}"
        );
        assert!(parse("f", ".:53 {\n errors\n").is_err());
        assert!(parse("f", ".:53 {\n reload 1s\n}\n").is_err());
        assert!(parse("f", "").is_err());
    }

    #[test]
    fn stub_domains_several_blocks_and_unsupported_plugins() {
        let text = "example.internal:53 {\n    errors\n    cache 30\n    forward . 10.1.2.3 10.1.2.4:5353 {\n        except skip.example.internal\n        policy sequential\n        max_fails 3\n        health_check 100ms no_rec domain Example.org\n        force_tcp\n    }\n}\ncorp.test, lab.test:53{\n  forward . 10.9.9.9\n  rewrite name a b\n}\n.:53 {\n    kubernetes cluster.local\n    hosts /etc/hosts\n    forward . /etc/resolv.conf\n    reload 2s 1s\n}\n";
        let c = parse("Corefile", text).unwrap();
        assert_eq!(c.servers.len(), 3);
        let stub = &c.servers[0];
        assert_eq!(stub.zones, vec!["example.internal."]);
        assert_eq!(stub.port, 53);
        let f = stub.forward.as_ref().unwrap();
        assert_eq!(f.to, vec!["10.1.2.3", "10.1.2.4:5353"]);
        assert_eq!(f.except, vec!["skip.example.internal."]);
        assert_eq!(f.policy, Policy::Sequential);
        assert_eq!(
            f.health,
            HealthCheck {
                max_fails: 3,
                interval: std::time::Duration::from_millis(100),
                recursion_desired: false,
                domain: "example.org.".into(),
                failfast: false,
            }
        );
        assert_eq!(stub.unsupported, vec!["forward/force_tcp"]);
        assert!(!stub.loadbalance);
        assert!(stub.kubernetes.is_none());
        assert_eq!(c.servers[1].zones, vec!["corp.test.", "lab.test."]);
        assert_eq!(c.servers[1].unsupported, vec!["rewrite"]);
        let root = &c.servers[2];
        assert_eq!(root.zones, vec!["."]);
        assert_eq!(root.unsupported, vec!["hosts"]);
        assert_eq!(root.reload.unwrap().interval.as_secs(), 2);
        // Keys of one block on different ports, and a stray brace, are errors.
        assert!(parse("f", "a.test:53 b.test:54 {\n}\n").is_err());
        assert!(parse("f", "}\n").is_err());
    }

    #[test]
    fn forward_health_defaults_and_errors() {
        let c = parse("f", ".:53 {\n forward . 10.0.0.2\n loadbalance\n}\n").unwrap();
        let s = &c.servers[0];
        assert_eq!(s.forward.as_ref().unwrap().health, HealthCheck::default());
        assert_eq!(HealthCheck::default().max_fails, 2);
        assert_eq!(
            HealthCheck::default().interval,
            std::time::Duration::from_millis(500)
        );
        assert!(s.loadbalance);
        let c = parse(
            "f",
            ".:53 {\n forward . 10.0.0.2 {\n  max_fails 0\n  failfast_all_unhealthy_upstreams\n }\n}\n",
        )
        .unwrap();
        let h = &c.servers[0].forward.as_ref().unwrap().health;
        assert_eq!((h.max_fails, h.failfast), (0, true));
        let err = |text: &str| parse("f", text).unwrap_err().to_string();
        assert!(
            err(".:53 {\n forward . 10.0.0.2 {\n  max_fails x\n }\n}\n").contains(
                "f:3 - Error during parsing: strconv.ParseUint: parsing \"x\": invalid syntax"
            )
        );
        assert!(
            err(".:53 {\n forward . 10.0.0.2 {\n  max_fails\n }\n}\n")
                .contains("Wrong argument count or unexpected line ending after 'max_fails'")
        );
        assert!(
            err(".:53 {\n forward . 10.0.0.2 {\n  health_check 5\n }\n}\n")
                .contains("time: missing unit in duration \"5\"")
        );
        assert!(
            err(".:53 {\n forward . 10.0.0.2 {\n  health_check 1s bogus\n }\n}\n")
                .contains("health_check: unknown option bogus")
        );
    }

    #[test]
    fn loadbalance_policies() {
        let lb = |args: &str| parse("f", &format!(".:53 {{\n loadbalance {args}\n}}\n"));
        assert!(lb("round_robin").unwrap().servers[0].loadbalance);
        let w = lb("weighted /etc/weights").unwrap();
        assert!(!w.servers[0].loadbalance);
        assert_eq!(w.servers[0].unsupported, vec!["loadbalance/weighted"]);
        assert!(
            lb("bogus")
                .unwrap_err()
                .to_string()
                .contains("unknown policy: bogus")
        );
        let prefer = parse(
            "f",
            ".:53 {\n loadbalance round_robin {\n  prefer 10.0.0.0/8\n }\n}\n",
        )
        .unwrap();
        assert!(prefer.servers[0].loadbalance);
        assert_eq!(prefer.servers[0].unsupported, vec!["loadbalance/prefer"]);
    }

    #[test]
    fn go_durations() {
        let ms = |s: &str| go_duration(s).map(|d| d.as_millis());
        assert_eq!(ms("500ms"), Ok(500));
        assert_eq!(ms("0.5s"), Ok(500));
        assert_eq!(ms("1m30s"), Ok(90_000));
        assert_eq!(ms("2h"), Ok(7_200_000));
        assert_eq!(ms("0"), Ok(0));
        assert_eq!(go_duration("1500us").map(|d| d.as_micros()), Ok(1500));
        assert_eq!(
            ms("3d"),
            Err("time: unknown unit \"d\" in duration \"3d\"".to_string())
        );
        assert!(ms("").is_err() && ms("s").is_err() && ms("-1s").is_err());
    }
}
