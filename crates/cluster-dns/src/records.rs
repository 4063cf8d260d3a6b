//! The records of the Kubernetes DNS specification
//! (<https://github.com/kubernetes/dns/blob/master/docs/specification.md>), computed from a
//! [`ClusterState`] as CoreDNS's kubernetes plugin computes them (`pods insecure`, endpoint
//! names from hostnames or dashed addresses, TTL 5). Pure: no I/O.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::state::{ClusterState, Endpoint, Port};

/// The schema version the specification asks `dns-version.<zone>` to answer.
pub const SCHEMA_VERSION: &str = "1.1.0";

/// What a name and type come to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Records for the question (possibly a CNAME), and helpful extras (the targets of SRV).
    Answer {
        answers: Vec<Record>,
        additionals: Vec<Record>,
    },
    /// The name exists, without records of that type (NOERROR, no answer, the SOA).
    NoData,
    /// The name does not exist (NXDOMAIN, the SOA).
    NxDomain,
    /// Not this zone's to answer: the next plugin (forwarding) gets it, as CoreDNS's
    /// `fallthrough in-addr.arpa ip6.arpa` passes reverse names it has no record for.
    Fallthrough,
}

/// The kubernetes plugin's settings: the cluster domain and the reverse zones it serves.
#[derive(Clone, Debug)]
pub struct Authority {
    /// `cluster.local.`, lowercase.
    pub zone: Name,
    zone_labels: usize,
    /// Reverse zones answered (`in-addr.arpa.`, `ip6.arpa.`), falling through when no record.
    pub reverse_zones: Vec<Name>,
    /// The TTL of every record (CoreDNS's default 5).
    pub ttl: u32,
    /// The address of the DNS Service itself, for the apex's NS (`ns.dns.<zone>`).
    pub dns_ip: Option<IpAddr>,
}

/// An invalid zone name.
#[derive(Debug, thiserror::Error)]
#[error("invalid zone {zone:?}: {reason}")]
pub struct ZoneError {
    pub zone: String,
    pub reason: String,
}

fn fqdn(s: &str) -> Result<Name, ZoneError> {
    let mut n = Name::from_ascii(s).map_err(|e| ZoneError {
        zone: s.to_string(),
        reason: e.to_string(),
    })?;
    n.set_fqdn(true);
    Ok(n.to_lowercase())
}

impl Authority {
    /// `zone` is the cluster domain (`cluster.local`); `reverse` the reverse zones.
    pub fn new(zone: &str, reverse: &[&str]) -> Result<Authority, ZoneError> {
        let zone = fqdn(zone)?;
        Ok(Authority {
            zone_labels: usize::from(zone.num_labels()),
            zone,
            reverse_zones: reverse.iter().map(|z| fqdn(z)).collect::<Result<_, _>>()?,
            ttl: 5,
            dns_ip: None,
        })
    }

    /// Whether `name` is in a zone this authority serves (cluster or reverse).
    pub fn serves(&self, name: &Name) -> bool {
        self.zone.zone_of(name) || self.reverse_zones.iter().any(|z| z.zone_of(name))
    }

    /// The zone's SOA, as CoreDNS writes it (`ns.dns.<zone> hostmaster.<zone>`, refresh 7200,
    /// retry 1800, expire 86400, minimum = the TTL).
    pub fn soa(&self, serial: u32) -> Record {
        let ns = self.name(&["ns", "dns"]);
        let mbox = self.name(&["hostmaster"]);
        Record::from_rdata(
            self.zone.clone(),
            self.ttl,
            RData::SOA(SOA::new(ns, mbox, serial, 7200, 1800, 86400, self.ttl)),
        )
    }

    /// The SOA of the zone `name` is in (the cluster zone or a reverse zone).
    pub fn soa_for(&self, name: &Name, serial: u32) -> Record {
        let mut soa = self.soa(serial);
        if let Some(z) = self.reverse_zones.iter().find(|z| z.zone_of(name)) {
            soa.name = z.clone();
        }
        soa
    }

    /// `labels` (most specific first) under the zone.
    fn name(&self, labels: &[&str]) -> Name {
        let mut n = self.zone.clone();
        for l in labels.iter().rev() {
            n = n.prepend_label(*l).unwrap_or_else(|_| self.zone.clone());
        }
        n
    }

    fn record(&self, name: Name, data: RData) -> Record {
        Record::from_rdata(name, self.ttl, data)
    }

    fn address(&self, name: Name, ip: IpAddr) -> Record {
        match ip {
            IpAddr::V4(v4) => self.record(name, RData::A(A(v4))),
            IpAddr::V6(v6) => self.record(name, RData::AAAA(AAAA(v6))),
        }
    }

    /// The answer for `qname` (any case) and `qtype`.
    pub fn lookup(&self, state: &ClusterState, qname: &Name, qtype: RecordType) -> Lookup {
        let qname = qname.to_lowercase();
        if self.zone.zone_of(&qname) {
            self.forward_zone(state, &qname, qtype)
        } else if self.reverse_zones.iter().any(|z| z.zone_of(&qname)) {
            self.reverse_zone(state, &qname, qtype)
        } else {
            Lookup::Fallthrough
        }
    }

    fn reverse_zone(&self, state: &ClusterState, qname: &Name, qtype: RecordType) -> Lookup {
        if qtype != RecordType::PTR {
            return Lookup::Fallthrough;
        }
        let Some(ip) = reverse_ip(qname) else {
            return Lookup::Fallthrough;
        };
        let found = state.reverse(ip);
        if found.is_empty() {
            return Lookup::Fallthrough;
        }
        let answers = found
            .into_iter()
            .map(|(ns, svc, label)| {
                let target = match &label {
                    Some(l) => self.name(&[l, &svc, &ns, "svc"]),
                    None => self.name(&[&svc, &ns, "svc"]),
                };
                self.record(qname.clone(), RData::PTR(PTR(target)))
            })
            .collect();
        Lookup::Answer {
            answers,
            additionals: Vec::new(),
        }
    }

    fn forward_zone(&self, state: &ClusterState, qname: &Name, qtype: RecordType) -> Lookup {
        // The labels under the zone, borrowed from the name (one allocation per query, not one
        // per label). A label that is not UTF-8 names no Kubernetes object.
        let Ok(all) = qname
            .iter()
            .map(std::str::from_utf8)
            .collect::<Result<Vec<&str>, _>>()
        else {
            return Lookup::NxDomain;
        };
        let rel = &all[..all.len().saturating_sub(self.zone_labels)];
        match rel {
            [] => self.apex(qname, qtype),
            ["dns-version"] => match qtype {
                RecordType::TXT => self.answer(vec![self.record(
                    qname.clone(),
                    RData::TXT(TXT::new(vec![SCHEMA_VERSION.to_string()])),
                )]),
                _ => Lookup::NoData,
            },
            ["ns", "dns"] => match (qtype, self.dns_ip) {
                (RecordType::A, Some(ip @ IpAddr::V4(_)))
                | (RecordType::AAAA, Some(ip @ IpAddr::V6(_))) => {
                    self.answer(vec![self.address(qname.clone(), ip)])
                }
                _ => Lookup::NoData,
            },
            ["dns"] => Lookup::NoData,
            [rest @ .., "svc"] => self.services(state, qname, qtype, rest),
            [rest @ .., "pod"] => self.pods(state, qname, qtype, rest),
            _ => Lookup::NxDomain,
        }
    }

    fn answer(&self, answers: Vec<Record>) -> Lookup {
        if answers.is_empty() {
            return Lookup::NoData;
        }
        Lookup::Answer {
            answers,
            additionals: Vec::new(),
        }
    }

    fn apex(&self, qname: &Name, qtype: RecordType) -> Lookup {
        match qtype {
            RecordType::SOA => self.answer(vec![self.soa(0)]),
            RecordType::NS => {
                let ns = self.name(&["ns", "dns"]);
                let additionals = self
                    .dns_ip
                    .map(|ip| self.address(ns.clone(), ip))
                    .into_iter()
                    .collect();
                Lookup::Answer {
                    answers: vec![self.record(qname.clone(), RData::NS(NS(ns)))],
                    additionals,
                }
            }
            _ => Lookup::NoData,
        }
    }

    fn pods(&self, state: &ClusterState, qname: &Name, qtype: RecordType, rest: &[&str]) -> Lookup {
        match rest {
            [] => Lookup::NoData,
            [ns] => exists(state.namespace_exists(ns)),
            [ip, ns] => {
                if !state.namespace_exists(ns) {
                    return Lookup::NxDomain;
                }
                let Some(ip) = undashed(ip) else {
                    return Lookup::NxDomain;
                };
                match (qtype, ip) {
                    (RecordType::A, IpAddr::V4(_)) | (RecordType::AAAA, IpAddr::V6(_)) => {
                        self.answer(vec![self.address(qname.clone(), ip)])
                    }
                    _ => Lookup::NoData,
                }
            }
            _ => Lookup::NxDomain,
        }
    }

    fn services(
        &self,
        state: &ClusterState,
        qname: &Name,
        qtype: RecordType,
        rest: &[&str],
    ) -> Lookup {
        match rest {
            [] => Lookup::NoData,
            [ns] => exists(state.namespace_exists(ns)),
            [svc, ns] => self.service(state, qname, qtype, ns, svc),
            [proto, svc, ns] if proto.starts_with('_') => {
                // `_tcp.svc.ns.svc.<zone>`: a name between the SRV records and the Service.
                let Some(s) = state.service(ns, svc) else {
                    return Lookup::NxDomain;
                };
                let (_, eps) = state.endpoints(ns, svc);
                let p = &proto[1..];
                exists(s.ports.iter().chain(&eps).any(|x| x.protocol == p))
            }
            [endpoint, svc, ns] => self.endpoint(state, qname, qtype, ns, svc, endpoint),
            [port, proto, svc, ns] if port.starts_with('_') && proto.starts_with('_') => self.srv(
                state,
                qname,
                qtype,
                ns,
                svc,
                Some((&port[1..], &proto[1..])),
            ),
            _ => Lookup::NxDomain,
        }
    }

    fn service(
        &self,
        state: &ClusterState,
        qname: &Name,
        qtype: RecordType,
        ns: &str,
        svc: &str,
    ) -> Lookup {
        let Some(s) = state.service(ns, svc) else {
            return Lookup::NxDomain;
        };
        if let Some(target) = &s.external_name {
            return match fqdn(target) {
                Ok(t) => self.answer(vec![self.record(qname.clone(), RData::CNAME(CNAME(t)))]),
                Err(_) => Lookup::NoData,
            };
        }
        match qtype {
            RecordType::A | RecordType::AAAA => {
                let want_v4 = qtype == RecordType::A;
                let ips: Vec<IpAddr> = if s.headless {
                    ready(&state.endpoints(ns, svc).0).map(|e| e.ip).collect()
                } else {
                    s.cluster_ips.clone()
                };
                self.answer(
                    ips.into_iter()
                        .filter(|ip| ip.is_ipv4() == want_v4)
                        .map(|ip| self.address(qname.clone(), ip))
                        .collect(),
                )
            }
            RecordType::SRV => self.srv(state, qname, qtype, ns, svc, None),
            _ => Lookup::NoData,
        }
    }

    fn endpoint(
        &self,
        state: &ClusterState,
        qname: &Name,
        qtype: RecordType,
        ns: &str,
        svc: &str,
        label: &str,
    ) -> Lookup {
        if state.service(ns, svc).is_none() {
            return Lookup::NxDomain;
        }
        let (eps, _) = state.endpoints(ns, svc);
        let matching: Vec<&Endpoint> = ready(&eps).filter(|e| e.label() == label).collect();
        if matching.is_empty() {
            return Lookup::NxDomain;
        }
        match qtype {
            RecordType::A | RecordType::AAAA => self.answer(
                matching
                    .iter()
                    .filter(|e| e.ip.is_ipv4() == (qtype == RecordType::A))
                    .map(|e| self.address(qname.clone(), e.ip))
                    .collect(),
            ),
            _ => Lookup::NoData,
        }
    }

    /// SRV records of a Service: all its ports (`svc.ns.svc`), or the one named `port` with
    /// protocol `proto` (`_port._proto.svc.ns.svc`). A ClusterIP Service's point at its own
    /// name; a headless one's at each ready endpoint's name.
    fn srv(
        &self,
        state: &ClusterState,
        qname: &Name,
        qtype: RecordType,
        ns: &str,
        svc: &str,
        port: Option<(&str, &str)>,
    ) -> Lookup {
        let Some(s) = state.service(ns, svc) else {
            return Lookup::NxDomain;
        };
        let (eps, slice_ports) = state.endpoints(ns, svc);
        let wanted = |p: &&Port| match port {
            None => true,
            Some((name, proto)) => p.name == name && p.protocol == proto,
        };
        let svc_name = self.name(&[svc, ns, "svc"]);
        let mut targets: Vec<(Name, u16, Vec<IpAddr>)> = Vec::new();
        if s.headless {
            for p in slice_ports.iter().filter(wanted) {
                for e in ready(&eps) {
                    let label = e.label();
                    targets.push((self.name(&[&label, svc, ns, "svc"]), p.port, vec![e.ip]));
                }
            }
        } else if s.external_name.is_none() {
            for p in s.ports.iter().filter(wanted) {
                targets.push((svc_name.clone(), p.port, s.cluster_ips.clone()));
            }
        }
        if targets.is_empty() {
            // A port name or protocol the Service does not have: no such name.
            let named = port.is_some() && !s.ports.iter().chain(&slice_ports).any(|p| wanted(&p));
            return if named {
                Lookup::NxDomain
            } else {
                Lookup::NoData
            };
        }
        if qtype != RecordType::SRV {
            return Lookup::NoData;
        }
        let weight = u16::try_from((100 / targets.len()).max(1)).unwrap_or(1);
        let mut answers = Vec::new();
        let mut additionals: Vec<Record> = Vec::new();
        for (target, port, ips) in targets {
            answers.push(self.record(
                qname.clone(),
                RData::SRV(SRV::new(0, weight, port, target.clone())),
            ));
            for ip in ips {
                let r = self.address(target.clone(), ip);
                if !additionals.contains(&r) {
                    additionals.push(r);
                }
            }
        }
        Lookup::Answer {
            answers,
            additionals,
        }
    }
}

fn exists(yes: bool) -> Lookup {
    if yes {
        Lookup::NoData
    } else {
        Lookup::NxDomain
    }
}

fn ready(eps: &[Endpoint]) -> impl Iterator<Item = &Endpoint> {
    eps.iter().filter(|e| e.ready)
}

/// `10-0-1-5` → 10.0.1.5; `fd00--1` → fd00::1.
pub fn undashed(label: &str) -> Option<IpAddr> {
    if let Ok(v4) = label.replace('-', ".").parse::<Ipv4Addr>() {
        return Some(IpAddr::V4(v4));
    }
    label
        .replace('-', ":")
        .parse::<Ipv6Addr>()
        .ok()
        .map(IpAddr::V6)
}

/// The address a reverse name (`5.1.0.10.in-addr.arpa.`, nibbles under `ip6.arpa.`) stands
/// for, when it names a whole address.
pub fn reverse_ip(name: &Name) -> Option<IpAddr> {
    let labels: Vec<String> = name
        .to_lowercase()
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    match labels.as_slice() {
        [d, c, b, a, in_addr, arpa] if in_addr == "in-addr" && arpa == "arpa" => {
            let parse = |s: &String| s.parse::<u8>().ok();
            Some(IpAddr::V4(Ipv4Addr::new(
                parse(a)?,
                parse(b)?,
                parse(c)?,
                parse(d)?,
            )))
        }
        [nibbles @ .., ip6, arpa] if ip6 == "ip6" && arpa == "arpa" && nibbles.len() == 32 => {
            let mut v: u128 = 0;
            for n in nibbles.iter().rev() {
                let digit = u128::from_str_radix(n, 16).ok().filter(|_| n.len() == 1)?;
                v = (v << 4) | digit;
            }
            Some(IpAddr::V6(Ipv6Addr::from(v)))
        }
        _ => None,
    }
}

#[cfg(test)]
#[path = "records_tests.rs"]
mod tests;
