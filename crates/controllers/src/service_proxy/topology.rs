//! Which endpoints a Service port's traffic may use, as kube-proxy's `CategorizeEndpoints`
//! (pkg/proxy/topology.go) decides it, with what "a node" is on this machine. Pure.
//!
//! * An endpoint's conditions as kube-proxy reads an EndpointSlice: `ready` and `serving`
//!   unset mean true, `terminating` unset means false.
//! * **Usable** endpoints are the ready ones; when none is ready, the serving and terminating
//!   ones (a rolling update or scale-down that leaves only terminating pods keeps serving
//!   through them instead of refusing).
//! * **Local** endpoints (`internalTrafficPolicy: Local`, `externalTrafficPolicy: Local`) are
//!   those on the client's node, usable by the same rule applied to that node alone. On
//!   Fargate each pod is its own node, so a pod's only possible local endpoint is itself. The
//!   host runs every pod of the cluster, so for traffic from the host (and the host's listeners,
//!   which stand in for the load balancer and the nodes' ports) every endpoint that names a
//!   node is local; an endpoint with no `nodeName` (a hand-made EndpointSlice) is local to no
//!   one.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use k8s_openapi::api::discovery::v1::EndpointSlice;
use localfargate_runtime::service_proxy::LocalEndpoints;

/// One endpoint of one Service port, as read from its EndpointSlices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceEndpoint {
    pub ip: Ipv4Addr,
    /// The target port.
    pub port: u16,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    pub node: Option<String>,
}

impl SliceEndpoint {
    fn serving_terminating(&self) -> bool {
        self.serving && self.terminating
    }
}

/// The endpoints of the Service port named `port_name` with `protocol` (`TCP`, …) in `slices`
/// (the Service's IPv4 slices): each endpoint's first address with the slice port of that name
/// and protocol.
pub fn slice_endpoints(
    slices: &[&EndpointSlice],
    port_name: &str,
    protocol: &str,
) -> Vec<SliceEndpoint> {
    let mut out = Vec::new();
    for slice in slices {
        if slice.address_type != "IPv4" {
            continue;
        }
        let Some(port) = slice
            .ports
            .iter()
            .flatten()
            .find(|p| {
                p.name.as_deref().unwrap_or("") == port_name
                    && p.protocol.as_deref().unwrap_or("TCP") == protocol
            })
            .and_then(|p| p.port)
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        for ep in &slice.endpoints {
            let Some(ip) = ep
                .addresses
                .first()
                .and_then(|a| a.parse::<Ipv4Addr>().ok())
            else {
                continue;
            };
            let conditions = ep.conditions.as_ref();
            out.push(SliceEndpoint {
                ip,
                port,
                ready: conditions.and_then(|c| c.ready) != Some(false),
                serving: conditions.and_then(|c| c.serving) != Some(false),
                terminating: conditions.and_then(|c| c.terminating) == Some(true),
                node: ep.node_name.clone(),
            });
        }
    }
    out
}

/// The usable endpoints among `endpoints`: the ready ones, or, when none is ready, the serving
/// and terminating ones.
pub fn usable<'a>(
    endpoints: impl Iterator<Item = &'a SliceEndpoint> + Clone,
) -> BTreeSet<(Ipv4Addr, u16)> {
    let ready: BTreeSet<(Ipv4Addr, u16)> = endpoints
        .clone()
        .filter(|e| e.ready)
        .map(|e| (e.ip, e.port))
        .collect();
    if !ready.is_empty() {
        return ready;
    }
    endpoints
        .filter(|e| e.serving_terminating())
        .map(|e| (e.ip, e.port))
        .collect()
}

/// The usable endpoints local to the host: those on a node (every node's pods run here).
pub fn host_local(endpoints: &[SliceEndpoint]) -> BTreeSet<(Ipv4Addr, u16)> {
    usable(endpoints.iter().filter(|e| e.node.is_some()))
}

/// The distinct addresses of the host's local *ready* endpoints over all of a Service's
/// ports: the `localEndpoints` of kube-proxy's health check, which counts ready endpoints only
/// (a node with only terminating ones fails it, so load balancers move away).
pub fn host_local_ready_addresses<'a>(endpoints: impl Iterator<Item = &'a SliceEndpoint>) -> usize {
    endpoints
        .filter(|e| e.ready && e.node.is_some())
        .map(|e| e.ip)
        .collect::<BTreeSet<_>>()
        .len()
}

/// `internalTrafficPolicy: Local`: per node its usable local endpoints, the client pods of
/// those nodes (`pod_nodes`: pod address → node), and the host's.
pub fn local_endpoints(
    endpoints: &[SliceEndpoint],
    pod_nodes: &BTreeMap<Ipv4Addr, String>,
) -> LocalEndpoints {
    let mut by_node: BTreeMap<&str, Vec<&SliceEndpoint>> = BTreeMap::new();
    for e in endpoints {
        if let Some(node) = &e.node {
            by_node.entry(node).or_default().push(e);
        }
    }
    let nodes: BTreeMap<String, BTreeSet<(Ipv4Addr, u16)>> = by_node
        .into_iter()
        .map(|(node, eps)| (node.to_string(), usable(eps.into_iter())))
        .filter(|(_, eps)| !eps.is_empty())
        .collect();
    let clients = pod_nodes
        .iter()
        .filter(|(_, node)| nodes.contains_key(*node))
        .map(|(ip, node)| (*ip, node.clone()))
        .collect();
    LocalEndpoints {
        nodes,
        clients,
        host: host_local(endpoints),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn ep(ip: u8, ready: bool, serving: bool, terminating: bool, node: Option<&str>) -> Value {
        json!({"addresses": [format!("10.0.1.{ip}")], "nodeName": node,
            "conditions": {"ready": ready, "serving": serving, "terminating": terminating}})
    }

    fn slice(endpoints: Vec<Value>) -> EndpointSlice {
        serde_json::from_value(json!({"addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": endpoints}))
        .unwrap()
    }

    fn addr(ip: u8) -> (Ipv4Addr, u16) {
        (Ipv4Addr::new(10, 0, 1, ip), 8080)
    }

    #[test]
    fn conditions_default_as_kube_proxy_reads_them() {
        let s: EndpointSlice = serde_json::from_value(
            json!({"addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
                   "endpoints": [{"addresses": ["10.0.1.5"], "conditions": {}}]}),
        )
        .unwrap();
        let eps = slice_endpoints(&[&s], "http", "TCP");
        assert_eq!(eps.len(), 1);
        assert!(eps[0].ready && eps[0].serving && !eps[0].terminating);
        assert!(slice_endpoints(&[&s], "http", "UDP").is_empty());
        assert!(slice_endpoints(&[&s], "other", "TCP").is_empty());
    }

    #[test]
    fn terminating_endpoints_serve_only_when_none_is_ready() {
        let s = slice(vec![
            ep(5, true, true, false, Some("n5")),
            ep(6, false, true, true, Some("n6")),
            ep(7, false, false, true, Some("n7")),
            ep(8, false, true, false, Some("n8")),
        ]);
        let eps = slice_endpoints(&[&s], "http", "TCP");
        assert_eq!(usable(eps.iter()), [addr(5)].into());
        // The ready one gone: the serving and terminating one, not the one that stopped
        // serving, nor the unready one that is not terminating.
        let rest: Vec<SliceEndpoint> = eps.into_iter().filter(|e| !e.ready).collect();
        assert_eq!(usable(rest.iter()), [addr(6)].into());
    }

    #[test]
    fn local_endpoints_are_per_node_with_the_fallback_per_node() {
        let s = slice(vec![
            ep(5, true, true, false, Some("n5")),
            ep(6, false, true, true, Some("n6")),
            ep(7, false, false, false, Some("n7")),
            ep(9, true, true, false, None),
        ]);
        let eps = slice_endpoints(&[&s], "http", "TCP");
        let pods: BTreeMap<Ipv4Addr, String> = [
            (Ipv4Addr::new(10, 0, 1, 5), "n5".to_string()),
            (Ipv4Addr::new(10, 0, 1, 6), "n6".to_string()),
            (Ipv4Addr::new(10, 0, 1, 7), "n7".to_string()),
            (Ipv4Addr::new(10, 0, 1, 20), "n20".to_string()),
        ]
        .into();
        let local = local_endpoints(&eps, &pods);
        // n6 has only a terminating endpoint: it uses it, though another node has a ready one.
        assert_eq!(local.nodes["n5"], [addr(5)].into());
        assert_eq!(local.nodes["n6"], [addr(6)].into());
        assert!(!local.nodes.contains_key("n7"));
        // Clients on n7 and n20 have no local endpoint.
        assert_eq!(local.clients.len(), 2);
        // The host: every endpoint on a node (not the node-less 10.0.1.9), ready first.
        assert_eq!(local.host, [addr(5)].into());
        assert_eq!(host_local_ready_addresses(eps.iter()), 1);
    }
}
