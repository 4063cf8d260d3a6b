//! The subset of CoreDNS's Corefile that EKS's `coredns` ConfigMap uses: one server block
//! (`.:53`) with `errors`, `health`, `ready`, `kubernetes`, `prometheus`, `forward`, `cache`,
//! `loop`, `reload`, `loadbalance` (and `log`).

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

/// What the server block asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corefile {
    /// The port DNS is served on (`.:53`).
    pub port: u16,
    /// `health [ADDR]`: where `/health` is served (`:8080`).
    pub health: Option<String>,
    /// `ready [ADDR]`: where `/ready` is served (`:8181`).
    pub ready: Option<String>,
    /// `prometheus [ADDR]` (`:9153`).
    pub prometheus: Option<String>,
    pub kubernetes: Option<Kubernetes>,
    /// `forward . TO...`: files (resolv.conf) or addresses.
    pub forward: Vec<String>,
    /// `cache [TTL]`: the most seconds an answer is kept (0: no cache).
    pub cache: u32,
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
        for w in line.split_whitespace() {
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

/// Parse `text` (read from `file`, for messages).
pub fn parse(file: &str, text: &str) -> Result<Corefile, DnsError> {
    let toks = tokens(text);
    let mut it = toks.iter().filter(|t| t.text != "\n").peekable();
    let key = it
        .next()
        .ok_or_else(|| DnsError::Corefile(format!("{file}: no server block")))?;
    let port = match key.text.split_once(':') {
        Some((zone, port)) if zone == "." || zone.is_empty() => port
            .parse()
            .map_err(|_| parse_error(file, key.line, format!("invalid port {port:?}")))?,
        None if key.text == "." => 53,
        _ => {
            return Err(parse_error(
                file,
                key.line,
                format!(
                    "only the root server block is supported, not {:?}",
                    key.text
                ),
            ));
        }
    };
    match it.next() {
        Some(t) if t.text == "{" => {}
        Some(t) => return Err(parse_error(file, t.line, "expected '{'")),
        None => return Err(parse_error(file, key.line, "expected '{'")),
    }
    // The lines of the block: each directive with its arguments and an optional sub-block.
    let mut lines: Vec<Directive> = Vec::new();
    let body: Vec<&Token> = toks.iter().skip_while(|t| t.text != "{").skip(1).collect();
    let mut i = 0;
    let mut closed = false;
    while i < body.len() {
        let t = body[i];
        if t.text == "\n" {
            i += 1;
            continue;
        }
        if t.text == "}" {
            closed = true;
            break;
        }
        let line = t.line;
        let mut words = Vec::new();
        while i < body.len() && body[i].text != "\n" && body[i].text != "{" {
            words.push(body[i].text.clone());
            i += 1;
        }
        let mut sub = Vec::new();
        if i < body.len() && body[i].text == "{" {
            i += 1;
            let mut cur: Vec<String> = Vec::new();
            let mut cur_line = line;
            let mut ended = false;
            while i < body.len() {
                let b = body[i];
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
    if !closed {
        return Err(parse_error(file, key.line, "unexpected EOF"));
    }
    let mut c = Corefile {
        port,
        health: None,
        ready: None,
        prometheus: None,
        kubernetes: None,
        forward: Vec::new(),
        cache: 0,
    };
    for (line, words, sub) in lines {
        let Some((name, args)) = words.split_first() else {
            continue;
        };
        let first = || args.first().cloned();
        match name.as_str() {
            "errors" | "loop" | "reload" | "loadbalance" | "log" => {}
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
                if args.first().map(String::as_str) != Some(".") || args.len() < 2 {
                    return Err(parse_error(file, line, "forward . TO... is supported"));
                }
                c.forward = args[1..].to_vec();
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
        assert_eq!(c.port, 53);
        assert_eq!(c.health.as_deref(), Some(":8080"));
        assert_eq!(c.ready.as_deref(), Some(":8181"));
        assert_eq!(c.prometheus.as_deref(), Some(":9153"));
        assert_eq!(c.forward, vec!["/etc/resolv.conf"]);
        assert_eq!(c.cache, 30);
        let k = c.kubernetes.unwrap();
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
        assert_eq!(c.port, 1053);
        assert_eq!(c.health.as_deref(), Some("127.0.0.1:18080"));
        assert_eq!(c.kubernetes.unwrap().kubeconfig.as_deref(), Some("/tmp/k"));
        assert_eq!(c.cache, 0);
        let e = parse("f", ".:53 {\n  bogus\n}\n").unwrap_err().to_string();
        assert!(
            e.contains("f:2 - Error during parsing: Unknown directive 'bogus'"),
            "{e}"
        );
        assert!(parse("f", ".:53 {\n errors\n").is_err());
    }
}
