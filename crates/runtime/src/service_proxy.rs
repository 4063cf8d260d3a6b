//! The Service data path in the host network namespace, shaped like kube-proxy's nftables mode.
//!
//! One nftables table per cluster and per localfargate process, `ip lfsvc-<pid>-<hash>-<cidr>`
//! (the service range is in the name so that the route below can be reference-counted by
//! listing tables, and the pid so that a process can tell its own tables from a killed one's).
//! What it holds ([`base_commands`] and [`Ruleset`]):
//!
//! * the verdict maps `service_ips` (`ClusterIP . protocol . port` → `goto svc-…`) and
//!   `service_nodeports` (`protocol . nodePort` → `goto svc-…`): a packet is looked up once,
//!   whatever the number of Services (a hash lookup), and jumps to its Service's chain;
//! * the verdict map `external_ips` (`externalIP . protocol . port` → `goto svc-…`), looked up
//!   only for destinations local to the host (`fib daddr type local`, not loopback), so a
//!   Service never captures traffic to someone else's address;
//! * one chain per Service port, `svc-…`, choosing a usable endpoint with `numgen random mod N`
//!   through an anonymous verdict map, after the `sessionAffinity: ClientIP` checks (one
//!   dynamic set per endpoint, `aff-…`, whose elements time out after
//!   `sessionAffinityConfig.clientIP.timeoutSeconds`);
//! * one chain per endpoint, `ep-…`: it marks the packet for masquerade when the client is on
//!   the endpoint's own subnet (hairpin, and pods of one subnet: the reply would otherwise go
//!   straight back over the bridge, un-NATed), records the affinity, and DNATs;
//! * with `internalTrafficPolicy: Local`, `lcl-…` in its place for the ClusterIP: client pods
//!   by source address to their node's chain `nod-…`, the host to `hst-…` ([`LocalEndpoints`]);
//! * the maps `no_endpoint_services`, `no_endpoint_nodeports` and `no_endpoint_external_ips`:
//!   a Service port without a usable endpoint is rejected (ICMP port unreachable, so TCP clients
//!   get "connection refused"), as kube-proxy rejects it, and a `Local` ClusterIP whose client
//!   has no local endpoint is dropped, in the filter chains at forward, output and input;
//! * the base chains: `nat_prerouting` applies the Services to packets from the cluster's own
//!   pods (`iifname <bridge>` and source in the set `pods`), `nat_output` to packets the host
//!   sends, `nat_postrouting` masquerades what an `ep-…` chain marked.
//!
//! Changes are applied as one `nft -j -f -` transaction ([`NftDataPath::apply`]): the first one
//! (and any after a failure) replaces the table as a whole; later ones add, flush and delete
//! only the chains and map elements that changed ([`incremental_commands`]).
//!
//! The service range is routed to the bridge (`ip route replace <cidr> dev <bridge>`), so that
//! host sockets can connect to a ClusterIP (the route lookup happens before the output hook),
//! and so that a packet to a ClusterIP nothing DNATs goes nowhere but the bridge: never out of
//! the host's interface.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use async_trait::async_trait;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use std::sync::Arc;

use crate::net::{NetError, PodNetwork};

/// Prefix of the tables this module owns.
pub const TABLE_PREFIX: &str = "lfsvc-";

/// The packet mark bit that asks `nat_postrouting` to masquerade (kube-proxy's own bit).
pub const MASQUERADE_MARK: u32 = 0x4000;

/// Layer 4 protocols a Service port may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }

    /// `TCP`, `UDP`, `SCTP` as in a Service.
    pub fn parse(s: &str) -> Option<Protocol> {
        match s {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }
}

/// One port of one Service with its endpoints: what the data path serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub namespace: String,
    pub name: String,
    /// The port's name (may be empty).
    pub port_name: String,
    pub protocol: Protocol,
    pub cluster_ip: Ipv4Addr,
    pub port: u16,
    pub node_port: Option<u16>,
    /// `sessionAffinity: ClientIP`'s timeout in seconds, `None` without affinity.
    pub affinity_timeout: Option<u32>,
    /// The endpoints `Cluster` traffic policy uses, address and target port: the ready ones,
    /// or, when none is ready, the serving and terminating ones (kube-proxy's fallback). Empty:
    /// the Service has no usable endpoint anywhere, and its addresses reject.
    pub endpoints: BTreeSet<(Ipv4Addr, u16)>,
    /// `internalTrafficPolicy: Local`: the endpoints each client may use (`None`: `Cluster`).
    pub internal_local: Option<LocalEndpoints>,
    /// `spec.externalIPs`: served like the node port (external traffic), when the address is
    /// local to the host.
    pub external_ips: BTreeSet<Ipv4Addr>,
}

/// The endpoints `Local` traffic policy leaves to each client, as kube-proxy's topology rules
/// give them on a node: the endpoints on the client's own node (the ready ones, or, when none
/// is ready there, its serving and terminating ones).
///
/// On Fargate every pod is its own node, so a pod's local endpoints are at most itself. The
/// host runs every pod of the cluster, so for the host every endpoint on a node is local.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LocalEndpoints {
    /// Per node, its usable local endpoints (only nodes that have some).
    pub nodes: BTreeMap<String, BTreeSet<(Ipv4Addr, u16)>>,
    /// Client pods' addresses and their nodes (only nodes in `nodes`).
    pub clients: BTreeMap<Ipv4Addr, String>,
    /// The host's local endpoints.
    pub host: BTreeSet<(Ipv4Addr, u16)>,
}

/// What a no-endpoint map does with a packet: reject (no endpoint anywhere) or drop (endpoints
/// exist, but none for this client: kube-proxy drops then).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoEndpoint {
    Reject,
    Drop,
}

/// What one cluster's data path should be.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterServices {
    /// The cluster's pods: packets from them get the Services.
    pub pod_ips: BTreeSet<Ipv4Addr>,
    /// The nodes' addresses: `<node address>:<nodePort>` reaches a NodePort.
    pub node_ips: BTreeSet<Ipv4Addr>,
    /// The pods' subnets (address, prefix length): a client on its endpoint's subnet is
    /// masqueraded.
    pub subnets: Vec<(Ipv4Addr, u8)>,
    pub ports: Vec<ServicePort>,
}

/// Key of the `service_ips` map.
pub type IpKey = (Ipv4Addr, Protocol, u16);
/// Key of the `service_nodeports` map.
pub type NodePortKey = (Protocol, u16);

/// The per-Service part of the table, computed from [`ClusterServices`] by [`Ruleset::compute`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Ruleset {
    /// `svc-…` and `ep-…` chains and their rules (each rule a list of JSON expressions).
    pub chains: BTreeMap<String, Vec<Vec<Value>>>,
    /// Affinity sets and their timeouts in seconds.
    pub affinity_sets: BTreeMap<String, u32>,
    pub service_ips: BTreeMap<IpKey, String>,
    pub nodeports: BTreeMap<NodePortKey, String>,
    /// External IPs (`fib daddr type local` guards their lookup).
    pub external_ips: BTreeMap<IpKey, String>,
    pub no_endpoint_ips: BTreeMap<IpKey, NoEndpoint>,
    pub no_endpoint_nodeports: BTreeMap<NodePortKey, NoEndpoint>,
    pub no_endpoint_external_ips: BTreeMap<IpKey, NoEndpoint>,
    pub pod_ips: BTreeSet<Ipv4Addr>,
    pub node_ips: BTreeSet<Ipv4Addr>,
}

fn hash8(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())[..8].to_string()
}

fn ip_field(field: &str) -> Value {
    json!({"payload": {"protocol": "ip", "field": field}})
}

fn meta(key: &str) -> Value {
    json!({"meta": {"key": key}})
}

fn eq(left: Value, right: Value) -> Value {
    json!({"match": {"op": "==", "left": left, "right": right}})
}

fn prefix(addr: Ipv4Addr, len: u8) -> Value {
    if len >= 32 {
        json!(addr.to_string())
    } else {
        json!({"prefix": {"addr": addr.to_string(), "len": len}})
    }
}

fn network(addr: Ipv4Addr, len: u8) -> Ipv4Addr {
    let mask = if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len.min(32)))
    };
    Ipv4Addr::from(u32::from(addr) & mask)
}

/// `ip daddr . meta l4proto . th dport`
fn ip_proto_port() -> Value {
    json!({"concat": [ip_field("daddr"), meta("l4proto"),
                      {"payload": {"protocol": "th", "field": "dport"}}]})
}

/// `meta l4proto . th dport`
fn proto_port() -> Value {
    json!({"concat": [meta("l4proto"), {"payload": {"protocol": "th", "field": "dport"}}]})
}

fn goto(chain: &str) -> Value {
    json!({"goto": {"target": chain}})
}

impl Ruleset {
    /// The chains, sets and map elements for `services`. Pure.
    ///
    /// Per Service port, as kube-proxy's nftables mode: the `Cluster` policy chain `svc-…`
    /// over [`ServicePort::endpoints`]; with `internalTrafficPolicy: Local` the ClusterIP goes
    /// to `lcl-…` instead, which sends each client pod to its node's chain `nod-…` and the
    /// host to `hst-…` (or `svc-…` when the host's endpoints are the same), and anything else
    /// falls through to a drop; node ports and external IPs take the `Cluster` chain: traffic
    /// from the cluster's pods and from the host is exempt from `externalTrafficPolicy:
    /// Local`, as kube-proxy short-circuits it, and nothing else reaches them.
    pub fn compute(services: &ClusterServices) -> Ruleset {
        let mut r = Ruleset {
            pod_ips: services.pod_ips.clone(),
            node_ips: services.node_ips.clone(),
            ..Ruleset::default()
        };
        for sp in &services.ports {
            let id = format!(
                "{}/{}/{}/{}",
                sp.namespace,
                sp.name,
                sp.protocol.as_str(),
                sp.port_name
            );
            let ip_key = (sp.cluster_ip, sp.protocol, sp.port);
            let np_key = sp.node_port.map(|p| (sp.protocol, p));
            let ext_keys: Vec<IpKey> = sp
                .external_ips
                .iter()
                .map(|ip| (*ip, sp.protocol, sp.port))
                .collect();
            if sp.endpoints.is_empty() {
                r.no_endpoint_ips.insert(ip_key, NoEndpoint::Reject);
                if let Some(k) = np_key {
                    r.no_endpoint_nodeports.insert(k, NoEndpoint::Reject);
                }
                for k in ext_keys {
                    r.no_endpoint_external_ips.insert(k, NoEndpoint::Reject);
                }
                continue;
            }
            let suffix = id.replace('/', "-");
            let svc_chain = format!("svc-{}-{suffix}", hash8(&[&id]));
            let external = np_key.is_some() || !ext_keys.is_empty();
            let mut cluster_used = external;
            match &sp.internal_local {
                None => {
                    cluster_used = true;
                    r.service_ips.insert(ip_key, svc_chain.clone());
                }
                Some(local) => {
                    let local_chain = format!("lcl-{}-{suffix}", hash8(&[&id, "local"]));
                    let mut rules = Vec::new();
                    let mut by_client = Vec::new();
                    for (node, eps) in &local.nodes {
                        let chain = format!("nod-{}-{suffix}", hash8(&[&id, node]));
                        r.dispatch(services, sp, &id, &chain, eps);
                        for (client, _) in local.clients.iter().filter(|(_, n)| *n == node) {
                            by_client.push(json!([client.to_string(), goto(&chain)]));
                        }
                    }
                    if !by_client.is_empty() {
                        rules.push(vec![json!({"vmap": {
                            "key": ip_field("saddr"), "data": {"set": by_client}}})]);
                    }
                    if !local.host.is_empty() {
                        let host_chain = if local.host == sp.endpoints {
                            cluster_used = true;
                            svc_chain.clone()
                        } else {
                            let chain = format!("hst-{}-{suffix}", hash8(&[&id, "host"]));
                            r.dispatch(services, sp, &id, &chain, &local.host);
                            chain
                        };
                        rules.push(vec![
                            eq(
                                json!({"fib": {"result": "type", "flags": ["saddr"]}}),
                                json!("local"),
                            ),
                            goto(&host_chain),
                        ]);
                    }
                    r.chains.insert(local_chain.clone(), rules);
                    r.service_ips.insert(ip_key, local_chain);
                    // A client with no local endpoint falls through un-DNATed: dropped.
                    r.no_endpoint_ips.insert(ip_key, NoEndpoint::Drop);
                }
            }
            if cluster_used {
                r.dispatch(services, sp, &id, &svc_chain, &sp.endpoints);
            }
            if let Some(k) = np_key {
                r.nodeports.insert(k, svc_chain.clone());
            }
            for k in ext_keys {
                r.external_ips.insert(k, svc_chain.clone());
            }
        }
        r
    }

    /// A chain choosing among `endpoints` (with the affinity checks first), and the
    /// endpoints' own chains and affinity sets.
    fn dispatch(
        &mut self,
        services: &ClusterServices,
        sp: &ServicePort,
        id: &str,
        chain: &str,
        endpoints: &BTreeSet<(Ipv4Addr, u16)>,
    ) {
        let mut rules = Vec::new();
        let mut targets = Vec::new();
        for (i, (ip, port)) in endpoints.iter().enumerate() {
            let ep_hash = hash8(&[id, &ip.to_string(), &port.to_string()]);
            let ep_chain = format!("ep-{ep_hash}-{ip}-{port}");
            let mut ep_rules = Vec::new();
            // Hairpin, and clients on the endpoint's subnet: masquerade.
            let (net, len) = services
                .subnets
                .iter()
                .find(|(n, l)| network(*ip, *l) == network(*n, *l))
                .map(|&(n, l)| (network(n, l), l))
                .unwrap_or((*ip, 32));
            ep_rules.push(vec![
                eq(ip_field("saddr"), prefix(net, len)),
                json!({"mangle": {"key": meta("mark"),
                                  "value": {"|": [meta("mark"), MASQUERADE_MARK]}}}),
            ]);
            if let Some(timeout) = sp.affinity_timeout {
                let set = format!("aff-{ep_hash}");
                self.affinity_sets.insert(set.clone(), timeout);
                rules.push(vec![
                    eq(ip_field("saddr"), json!(format!("@{set}"))),
                    goto(&ep_chain),
                ]);
                ep_rules.push(vec![json!({"set": {"op": "update",
                    "elem": ip_field("saddr"), "set": format!("@{set}")}})]);
            }
            ep_rules.push(vec![
                eq(meta("l4proto"), json!(sp.protocol.as_str())),
                json!({"dnat": {"addr": ip.to_string(), "port": port}}),
            ]);
            self.chains.insert(ep_chain.clone(), ep_rules);
            targets.push(json!([i, goto(&ep_chain)]));
        }
        rules.push(vec![json!({"vmap": {
            "key": {"numgen": {"mode": "random", "mod": endpoints.len(), "offset": 0}},
            "data": {"set": targets},
        }})]);
        self.chains.insert(chain.to_string(), rules);
    }

    /// How many Service ports have a chain.
    pub fn services(&self) -> usize {
        self.service_ips.len()
    }
}

/// Where one cluster's table lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableId {
    pub name: String,
    pub bridge: String,
    pub service_cidr: (Ipv4Addr, u8),
}

impl TableId {
    /// `lfsvc-<pid>-<hash of instance and cluster>-<a.b.c.d>-<len>`.
    pub fn new(instance: &str, cluster: &str, bridge: &str, service_cidr: (Ipv4Addr, u8)) -> Self {
        TableId {
            name: format!(
                "{TABLE_PREFIX}{}-{}-{}-{}",
                std::process::id(),
                hash8(&[instance, cluster]),
                service_cidr.0,
                service_cidr.1
            ),
            bridge: bridge.to_string(),
            service_cidr,
        }
    }
}

/// The owner pid and service range of a table name, if it is one of ours.
pub fn parse_table_name(name: &str) -> Option<(u32, (Ipv4Addr, u8))> {
    let rest = name.strip_prefix(TABLE_PREFIX)?;
    let mut parts = rest.split('-');
    let pid = parts.next()?.parse().ok()?;
    let _hash = parts.next()?;
    let addr = parts.next()?.parse().ok()?;
    let len = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some((pid, (addr, len)))
}

fn obj(kind: &str, table: &str, extra: Value) -> Value {
    let mut v = json!({"family": "ip", "table": table});
    if let (Some(m), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in e {
            m.insert(k.clone(), x.clone());
        }
    }
    json!({ kind: v })
}

fn cmd(verb: &str, body: Value) -> Value {
    json!({ verb: body })
}

fn add_rule(table: &str, chain: &str, expr: Vec<Value>) -> Value {
    cmd(
        "add",
        obj("rule", table, json!({"chain": chain, "expr": expr})),
    )
}

fn ip_key_value(k: &IpKey) -> Value {
    json!({"concat": [k.0.to_string(), k.1.as_str(), k.2]})
}

fn np_key_value(k: &NodePortKey) -> Value {
    json!({"concat": [k.0.as_str(), k.1]})
}

fn elements(verb: &str, table: &str, set: &str, elems: Vec<Value>) -> Option<Value> {
    (!elems.is_empty()).then(|| {
        cmd(
            verb,
            obj("element", table, json!({"name": set, "elem": elems})),
        )
    })
}

/// The table from nothing: sets, maps, base chains and their rules (the part that does not
/// depend on the Services). Starts by deleting a table of the same name.
pub fn base_commands(t: &TableId) -> Vec<Value> {
    let table = t.name.as_str();
    let bridge = t.bridge.as_str();
    let mut c = vec![
        cmd("add", json!({"table": {"family": "ip", "name": table}})),
        cmd("delete", json!({"table": {"family": "ip", "name": table}})),
        cmd("add", json!({"table": {"family": "ip", "name": table}})),
    ];
    let ipk = json!(["ipv4_addr", "inet_proto", "inet_service"]);
    let npk = json!(["inet_proto", "inet_service"]);
    c.push(cmd(
        "add",
        obj("set", table, json!({"name": "pods", "type": "ipv4_addr"})),
    ));
    c.push(cmd(
        "add",
        obj("set", table, json!({"name": "nodes", "type": "ipv4_addr"})),
    ));
    for (name, key) in [
        ("service_ips", &ipk),
        ("service_nodeports", &npk),
        ("external_ips", &ipk),
        ("no_endpoint_services", &ipk),
        ("no_endpoint_nodeports", &npk),
        ("no_endpoint_external_ips", &ipk),
    ] {
        c.push(cmd(
            "add",
            obj(
                "map",
                table,
                json!({"name": name, "type": key, "map": "verdict"}),
            ),
        ));
    }
    let base = |name: &str, kind: &str, hook: &str, prio: i32| {
        cmd(
            "add",
            obj(
                "chain",
                table,
                json!({"name": name, "type": kind, "hook": hook, "prio": prio, "policy": "accept"}),
            ),
        )
    };
    let regular = |name: &str| cmd("add", obj("chain", table, json!({"name": name})));
    c.push(regular("services"));
    c.push(regular("endpoints_check"));
    c.push(regular("reject_chain"));
    c.push(base("nat_prerouting", "nat", "prerouting", -100));
    c.push(base("nat_output", "nat", "output", -100));
    c.push(base("nat_postrouting", "nat", "postrouting", 100));
    c.push(base("filter_forward", "filter", "forward", -10));
    c.push(base("filter_output", "filter", "output", -10));
    c.push(base("filter_input", "filter", "input", -10));
    let not_loopback = json!({"match": {"op": "!=", "left": ip_field("daddr"),
        "right": {"prefix": {"addr": "127.0.0.0", "len": 8}}}});
    let local_daddr = eq(
        json!({"fib": {"result": "type", "flags": ["daddr"]}}),
        json!("local"),
    );
    let ct_new = json!({"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "new"}});
    let vmap = |key: Value, map: &str| json!({"vmap": {"key": key, "data": format!("@{map}")}});
    c.push(add_rule(
        table,
        "services",
        vec![vmap(ip_proto_port(), "service_ips")],
    ));
    // External IPs only where the address is the host's own: a Service never captures
    // traffic to an address elsewhere (the host's own connections to the internet included).
    c.push(add_rule(
        table,
        "services",
        vec![
            local_daddr.clone(),
            not_loopback.clone(),
            vmap(ip_proto_port(), "external_ips"),
        ],
    ));
    c.push(add_rule(
        table,
        "services",
        vec![
            eq(ip_field("daddr"), json!("@nodes")),
            vmap(proto_port(), "service_nodeports"),
        ],
    ));
    c.push(add_rule(
        table,
        "services",
        vec![
            local_daddr.clone(),
            not_loopback.clone(),
            vmap(proto_port(), "service_nodeports"),
        ],
    ));
    c.push(add_rule(
        table,
        "nat_prerouting",
        vec![
            eq(meta("iifname"), json!(bridge)),
            eq(ip_field("saddr"), json!("@pods")),
            json!({"jump": {"target": "services"}}),
        ],
    ));
    c.push(add_rule(
        table,
        "nat_output",
        vec![json!({"jump": {"target": "services"}})],
    ));
    c.push(add_rule(
        table,
        "nat_postrouting",
        vec![
            eq(
                json!({"&": [meta("mark"), MASQUERADE_MARK]}),
                json!(MASQUERADE_MARK),
            ),
            json!({"match": {"op": "in", "left": {"ct": {"key": "status"}}, "right": "dnat"}}),
            eq(meta("oifname"), json!(bridge)),
            json!({"masquerade": null}),
        ],
    ));
    c.push(add_rule(
        table,
        "endpoints_check",
        vec![vmap(ip_proto_port(), "no_endpoint_services")],
    ));
    c.push(add_rule(
        table,
        "endpoints_check",
        vec![
            eq(ip_field("daddr"), json!("@nodes")),
            vmap(proto_port(), "no_endpoint_nodeports"),
        ],
    ));
    c.push(add_rule(
        table,
        "endpoints_check",
        vec![
            local_daddr.clone(),
            not_loopback.clone(),
            vmap(ip_proto_port(), "no_endpoint_external_ips"),
        ],
    ));
    c.push(add_rule(
        table,
        "reject_chain",
        vec![json!({"reject": null})],
    ));
    c.push(add_rule(
        table,
        "filter_forward",
        vec![
            ct_new.clone(),
            eq(meta("iifname"), json!(bridge)),
            eq(ip_field("saddr"), json!("@pods")),
            json!({"jump": {"target": "endpoints_check"}}),
        ],
    ));
    c.push(add_rule(
        table,
        "filter_output",
        vec![
            ct_new.clone(),
            json!({"jump": {"target": "endpoints_check"}}),
        ],
    ));
    c.push(add_rule(
        table,
        "filter_input",
        vec![
            ct_new.clone(),
            local_daddr.clone(),
            not_loopback.clone(),
            vmap(proto_port(), "no_endpoint_nodeports"),
        ],
    ));
    c.push(add_rule(
        table,
        "filter_input",
        vec![
            ct_new,
            local_daddr,
            not_loopback,
            vmap(ip_proto_port(), "no_endpoint_external_ips"),
        ],
    ));
    c
}

fn no_endpoint_verdict(v: &NoEndpoint) -> Value {
    match v {
        NoEndpoint::Reject => goto("reject_chain"),
        NoEndpoint::Drop => json!({"drop": null}),
    }
}

/// Deletes the elements of a verdict map that are gone or changed, adds the new and changed.
fn diff_elements<K: Ord, V: PartialEq>(
    c: &mut Vec<Value>,
    table: &str,
    map: &str,
    (old, new): (&BTreeMap<K, V>, &BTreeMap<K, V>),
    key: impl Fn(&K) -> Value,
    verdict: impl Fn(&V) -> Value,
) {
    let del: Vec<Value> = old
        .iter()
        .filter(|(k, v)| new.get(k) != Some(v))
        .map(|(k, _)| key(k))
        .collect();
    let add: Vec<Value> = new
        .iter()
        .filter(|(k, v)| old.get(k) != Some(v))
        .map(|(k, v)| json!([key(k), verdict(v)]))
        .collect();
    c.extend(elements("delete", table, map, del));
    c.extend(elements("add", table, map, add));
}

/// The commands that take the table from `old` to `new` (`old = None`: from nothing, after
/// [`base_commands`]). Order: new sets and chains, then chain contents, then map elements,
/// then what is no longer referenced is flushed and deleted.
pub fn incremental_commands(t: &TableId, old: Option<&Ruleset>, new: &Ruleset) -> Vec<Value> {
    let empty = Ruleset::default();
    let old = old.unwrap_or(&empty);
    let table = t.name.as_str();
    let mut c = Vec::new();
    for (set, timeout) in &new.affinity_sets {
        // A set whose timeout changed cannot be altered: the caller replaces the whole table
        // then ([`needs_full`]).
        if !old.affinity_sets.contains_key(set) {
            c.push(cmd(
                "add",
                obj(
                    "set",
                    table,
                    json!({"name": set, "type": "ipv4_addr", "flags": ["timeout"],
                           "timeout": timeout}),
                ),
            ));
        }
    }
    for name in new.chains.keys() {
        if !old.chains.contains_key(name) {
            c.push(cmd("add", obj("chain", table, json!({"name": name}))));
        }
    }
    for (name, rules) in &new.chains {
        match old.chains.get(name) {
            Some(before) if before == rules => continue,
            Some(_) => c.push(cmd("flush", obj("chain", table, json!({"name": name})))),
            None => {}
        }
        for r in rules {
            c.push(add_rule(table, name, r.clone()));
        }
    }
    // Map and set elements.
    diff_elements(
        &mut c,
        table,
        "service_ips",
        (&old.service_ips, &new.service_ips),
        ip_key_value,
        |v| goto(v),
    );
    diff_elements(
        &mut c,
        table,
        "service_nodeports",
        (&old.nodeports, &new.nodeports),
        np_key_value,
        |v| goto(v),
    );
    diff_elements(
        &mut c,
        table,
        "external_ips",
        (&old.external_ips, &new.external_ips),
        ip_key_value,
        |v| goto(v),
    );
    diff_elements(
        &mut c,
        table,
        "no_endpoint_services",
        (&old.no_endpoint_ips, &new.no_endpoint_ips),
        ip_key_value,
        no_endpoint_verdict,
    );
    diff_elements(
        &mut c,
        table,
        "no_endpoint_nodeports",
        (&old.no_endpoint_nodeports, &new.no_endpoint_nodeports),
        np_key_value,
        no_endpoint_verdict,
    );
    diff_elements(
        &mut c,
        table,
        "no_endpoint_external_ips",
        (&old.no_endpoint_external_ips, &new.no_endpoint_external_ips),
        ip_key_value,
        no_endpoint_verdict,
    );
    for (set, old_ips, new_ips) in [
        ("pods", &old.pod_ips, &new.pod_ips),
        ("nodes", &old.node_ips, &new.node_ips),
    ] {
        let del = old_ips
            .difference(new_ips)
            .map(|ip| json!(ip.to_string()))
            .collect();
        let add = new_ips
            .difference(old_ips)
            .map(|ip| json!(ip.to_string()))
            .collect();
        c.extend(elements("delete", table, set, del));
        c.extend(elements("add", table, set, add));
    }
    // What is gone: chains (flushed first: a chain still referenced cannot be deleted, and
    // removed chains may refer to each other), then sets.
    let gone: Vec<&String> = old
        .chains
        .keys()
        .filter(|n| !new.chains.contains_key(*n))
        .collect();
    for name in &gone {
        c.push(cmd("flush", obj("chain", table, json!({"name": name}))));
    }
    for name in &gone {
        c.push(cmd("delete", obj("chain", table, json!({"name": name}))));
    }
    for set in old.affinity_sets.keys() {
        if !new.affinity_sets.contains_key(set) {
            c.push(cmd("delete", obj("set", table, json!({"name": set}))));
        }
    }
    c
}

/// Whether going from `old` to `new` needs the table replaced rather than patched (an
/// affinity set whose timeout changed cannot be altered in place).
pub fn needs_full(old: &Ruleset, new: &Ruleset) -> bool {
    new.affinity_sets
        .iter()
        .any(|(s, t)| old.affinity_sets.get(s).is_some_and(|o| o != t))
}

/// One transaction as `nft -j -f -` reads it.
pub fn transaction(commands: Vec<Value>) -> Value {
    let mut all = vec![json!({"metainfo": {"json_schema_version": 1}})];
    all.extend(commands);
    json!({ "nftables": all })
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(transparent)]
    Net(#[from] NetError),
}

/// What one apply did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Whether the whole table was (re)written.
    pub full: bool,
    /// Commands in the transaction.
    pub commands: usize,
}

/// The data path as the Service controller drives it. The simulated runtime has none.
#[async_trait]
pub trait ServiceDataPath: Send + Sync {
    /// Makes sure `addr/prefix_len` is on the pod bridge (so that a host listener on it can be
    /// reached from pods).
    async fn ensure_host_address(&self, addr: Ipv4Addr, prefix_len: u8) -> Result<(), ProxyError>;
    /// Brings the cluster's table to `services`.
    async fn apply(
        &self,
        cluster: &str,
        service_cidr: (Ipv4Addr, u8),
        services: &ClusterServices,
    ) -> Result<ApplyStats, ProxyError>;
    /// Removes the cluster's table (and the service range's route when no other table needs
    /// it).
    async fn remove(&self, cluster: &str) -> Result<(), ProxyError>;
    /// Removes every table of this process (at shutdown).
    async fn remove_all(&self) -> Result<(), ProxyError>;
}

/// [`ServiceDataPath`] with nftables, for the process runtime.
pub struct NftDataPath {
    /// The runtime's own pod network: one host lock for every change to the bridge and its guard.
    net: Arc<PodNetwork>,
    /// Distinguishes this runtime's tables from another's in the same process (tests).
    instance: String,
    /// Per cluster: its table and what was last applied (`None`: replace it next time).
    applied: Mutex<BTreeMap<String, (TableId, Option<Ruleset>)>>,
    reaped: std::sync::atomic::AtomicBool,
}

impl NftDataPath {
    pub fn new(net: Arc<PodNetwork>) -> NftDataPath {
        let config = net.config();
        NftDataPath {
            instance: format!("{}/{}", config.bridge, config.netns_prefix),
            net,
            applied: Mutex::new(BTreeMap::new()),
            reaped: Default::default(),
        }
    }

    fn cluster_prefix(&self, cluster: &str) -> String {
        format!(
            "{TABLE_PREFIX}{}-{}-",
            std::process::id(),
            hash8(&[&self.instance, cluster])
        )
    }
}

#[async_trait]
impl ServiceDataPath for NftDataPath {
    async fn ensure_host_address(&self, addr: Ipv4Addr, prefix_len: u8) -> Result<(), ProxyError> {
        Ok(self.net.ensure_gateway(addr, prefix_len).await?)
    }

    async fn apply(
        &self,
        cluster: &str,
        service_cidr: (Ipv4Addr, u8),
        services: &ClusterServices,
    ) -> Result<ApplyStats, ProxyError> {
        if !self.reaped.swap(true, std::sync::atomic::Ordering::SeqCst)
            && let Err(e) = reap_dead_tables(&self.net.config().bridge).await
        {
            tracing::warn!(error = %e, "removing the Service tables of stopped localfargate runs");
        }
        let new = Ruleset::compute(services);
        let mut applied = self.applied.lock().await;
        let id = TableId::new(
            &self.instance,
            cluster,
            &self.net.config().bridge,
            service_cidr,
        );
        let entry = applied
            .entry(cluster.to_string())
            .or_insert_with(|| (id.clone(), None));
        if entry.0 != id {
            // The range changed: the old table goes.
            let _ = delete_table(&entry.0.name).await;
            *entry = (id.clone(), None);
        }
        let full = match &entry.1 {
            None => true,
            Some(old) => needs_full(old, &new),
        };
        let commands = if full {
            let mut c = base_commands(&id);
            c.extend(incremental_commands(&id, None, &new));
            c
        } else {
            incremental_commands(&id, entry.1.as_ref(), &new)
        };
        let count = commands.len();
        if count > 0
            && let Err(e) = nft_json(&transaction(commands)).await
        {
            entry.1 = None;
            return Err(e.into());
        }
        if full && let Err(e) = ensure_route(&id).await {
            entry.1 = None;
            return Err(e.into());
        }
        entry.1 = Some(new);
        Ok(ApplyStats {
            full,
            commands: count,
        })
    }

    async fn remove(&self, cluster: &str) -> Result<(), ProxyError> {
        self.applied.lock().await.remove(cluster);
        let prefix = self.cluster_prefix(cluster);
        for (name, _, cidr) in our_tables().await? {
            if name.starts_with(&prefix) {
                delete_table(&name).await?;
                release_route(&self.net.config().bridge, cidr).await?;
            }
        }
        Ok(())
    }

    async fn remove_all(&self) -> Result<(), ProxyError> {
        self.applied.lock().await.clear();
        Ok(remove_own_tables(&self.net.config().bridge).await?)
    }
}

/// Removes every Service table of this process (at shutdown) and the routes no other running
/// localfargate needs.
pub async fn remove_own_tables(bridge: &str) -> Result<(), NetError> {
    let own = std::process::id();
    for (name, pid, cidr) in our_tables().await? {
        if pid == own {
            delete_table(&name).await?;
            release_route_except(bridge, cidr, own).await?;
        }
    }
    Ok(())
}

async fn nft_json(doc: &Value) -> Result<(), NetError> {
    crate::net::run("nft", &["-j", "-f", "-"], Some(&doc.to_string()))
        .await
        .map(|_| ())
}

async fn delete_table(name: &str) -> Result<(), NetError> {
    match crate::net::run("nft", &["delete", "table", "ip", name], None).await {
        Ok(_) => Ok(()),
        Err(e) if e.says("No such file") => Ok(()),
        Err(e) => Err(e),
    }
}

fn cidr_string((addr, len): (Ipv4Addr, u8)) -> String {
    format!("{}/{len}", network(addr, len))
}

async fn ensure_route(id: &TableId) -> Result<(), NetError> {
    let cidr = cidr_string(id.service_cidr);
    crate::net::run(
        "ip",
        &[
            "route", "replace", &cidr, "dev", &id.bridge, "proto", "static",
        ],
        None,
    )
    .await
    .map(|_| ())
}

/// Our tables: name, owner pid, service range.
async fn our_tables() -> Result<Vec<(String, u32, (Ipv4Addr, u8))>, NetError> {
    let out = crate::net::run("nft", &["-j", "list", "tables", "ip"], None).await?;
    let v: Value = serde_json::from_str(&out).map_err(|e| NetError::Output {
        command: "nft -j list tables ip".into(),
        message: e.to_string(),
    })?;
    Ok(v["nftables"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|x| x["table"]["name"].as_str())
        .filter_map(|n| parse_table_name(n).map(|(pid, cidr)| (n.to_string(), pid, cidr)))
        .collect())
}

/// Deletes the route of `cidr` when no table of a running process uses that range.
async fn release_route(bridge: &str, cidr: (Ipv4Addr, u8)) -> Result<(), NetError> {
    release_route_except(bridge, cidr, 0).await
}

/// [`release_route`], counting the tables of `except` (this process, shutting down) as gone.
async fn release_route_except(
    bridge: &str,
    cidr: (Ipv4Addr, u8),
    except: u32,
) -> Result<(), NetError> {
    let still = our_tables().await?.iter().any(|(_, pid, c)| {
        cidr_string(*c) == cidr_string(cidr)
            && *pid != except
            && crate::address_claims::localfargate_runs(*pid)
    });
    if still {
        return Ok(());
    }
    let cidr = cidr_string(cidr);
    match crate::net::run("ip", &["route", "del", &cidr, "dev", bridge], None).await {
        Ok(_) => Ok(()),
        Err(e) if e.says("No such process") || e.says("Cannot find device") => Ok(()),
        Err(e) => Err(e),
    }
}

/// Deletes the tables (and their routes to `bridge`) of localfargate processes that are gone.
pub async fn reap_dead_tables(bridge: &str) -> Result<usize, NetError> {
    let mut n = 0;
    for (name, pid, cidr) in our_tables().await? {
        if crate::address_claims::localfargate_runs(pid) {
            continue;
        }
        tracing::info!(table = %name, "removing the Service table of a stopped localfargate run");
        delete_table(&name).await?;
        n += 1;
        let _ = release_route(bridge, cidr).await;
    }
    Ok(n)
}

#[cfg(test)]
mod tests;
