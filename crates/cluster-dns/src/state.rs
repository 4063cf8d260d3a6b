//! What the cluster DNS knows of a cluster: its namespaces, Services and EndpointSlices, kept
//! from the Kubernetes API's objects (decoded as k8s-openapi's types) as the CoreDNS kubernetes
//! plugin keeps its informers' caches.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{self as k8s, Namespace};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use serde_json::Value;

/// A Service port, as SRV records name it (`_name._proto`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    pub name: String,
    /// Lowercase: `tcp`, `udp`, `sctp`.
    pub protocol: String,
    pub port: u16,
}

/// What a Service contributes to DNS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// `spec.clusterIPs` (empty or `None` for a headless Service).
    pub cluster_ips: Vec<IpAddr>,
    pub headless: bool,
    /// `spec.externalName` of an `ExternalName` Service.
    pub external_name: Option<String>,
    pub ports: Vec<Port>,
}

/// One endpoint of an EndpointSlice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub hostname: Option<String>,
    pub ready: bool,
}

impl Endpoint {
    /// The label naming this endpoint under its Service: its hostname, or its address with
    /// dashes (`10-0-1-5`), as CoreDNS names endpoints without one.
    pub fn label(&self) -> String {
        match &self.hostname {
            Some(h) => h.to_ascii_lowercase(),
            None => dashed(self.ip),
        }
    }
}

/// `10.0.1.5` → `10-0-1-5`, `fd00::1` → `fd00--1`.
pub fn dashed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
    }
}

/// An EndpointSlice: the Service it belongs to, its endpoints and ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slice {
    pub service: String,
    pub endpoints: Vec<Endpoint>,
    pub ports: Vec<Port>,
}

/// The namespaces, Services and EndpointSlices of one cluster.
#[derive(Clone, Debug, Default)]
pub struct ClusterState {
    namespaces: BTreeSet<String>,
    services: HashMap<(String, String), Service>,
    /// (namespace, slice name) → slice.
    slices: HashMap<(String, String), Slice>,
    /// (namespace, service) → its slices' names.
    slices_of: HashMap<(String, String), BTreeSet<String>>,
    /// The SOA serial: seconds since the epoch of the last change, as CoreDNS's.
    pub serial: u32,
}

/// Which objects a [`ClusterState`] takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Namespace,
    Service,
    EndpointSlice,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Namespace, Kind::Service, Kind::EndpointSlice];

    /// The collection's path in the Kubernetes API.
    pub fn path(self) -> &'static str {
        match self {
            Kind::Namespace => "/api/v1/namespaces",
            Kind::Service => "/api/v1/services",
            Kind::EndpointSlice => "/apis/discovery.k8s.io/v1/endpointslices",
        }
    }
}

/// A Namespace, Service or EndpointSlice from the API, typed as the kind it is.
#[derive(Clone, Debug)]
pub enum Object {
    Namespace(Namespace),
    Service(Box<k8s::Service>),
    EndpointSlice(EndpointSlice),
}

impl Object {
    /// Decode an object of `kind` from the API's JSON; an object that does not decode is
    /// logged and skipped (the API validated it, so this is a version skew or a bug).
    pub fn decode(kind: Kind, object: &Value) -> Option<Object> {
        let decoded = match kind {
            Kind::Namespace => Namespace::deserialize(object).map(Object::Namespace),
            Kind::Service => {
                k8s::Service::deserialize(object).map(|s| Object::Service(Box::new(s)))
            }
            Kind::EndpointSlice => EndpointSlice::deserialize(object).map(Object::EndpointSlice),
        };
        decoded
            .map_err(|e| tracing::warn!(kind = kind.path(), error = %e, "skipping an object that does not decode"))
            .ok()
    }

    fn metadata(&self) -> &ObjectMeta {
        match self {
            Object::Namespace(n) => &n.metadata,
            Object::Service(s) => &s.metadata,
            Object::EndpointSlice(e) => &e.metadata,
        }
    }

    /// (namespace, name); `None` for an object without a name.
    fn key(&self) -> Option<(String, String)> {
        let m = self.metadata();
        Some((m.namespace.clone().unwrap_or_default(), m.name.clone()?))
    }
}

fn port(name: Option<&str>, protocol: Option<&str>, port: Option<i32>) -> Option<Port> {
    Some(Port {
        name: name.unwrap_or_default().to_ascii_lowercase(),
        protocol: protocol.unwrap_or("TCP").to_ascii_lowercase(),
        port: u16::try_from(port?).ok()?,
    })
}

/// A Service's DNS view.
pub fn service_from(service: &k8s::Service) -> Service {
    let Some(spec) = service.spec.as_ref() else {
        return Service {
            cluster_ips: Vec::new(),
            headless: false,
            external_name: None,
            ports: Vec::new(),
        };
    };
    let mut cluster_ips: Vec<IpAddr> = spec
        .cluster_ips
        .iter()
        .flatten()
        .filter_map(|ip| ip.parse().ok())
        .collect();
    if cluster_ips.is_empty()
        && let Some(ip) = spec.cluster_ip.as_deref().and_then(|s| s.parse().ok())
    {
        cluster_ips.push(ip);
    }
    let external_name = (spec.type_.as_deref() == Some("ExternalName"))
        .then(|| spec.external_name.clone())
        .flatten();
    Service {
        headless: external_name.is_none() && spec.cluster_ip.as_deref() == Some("None"),
        cluster_ips,
        external_name,
        ports: spec
            .ports
            .iter()
            .flatten()
            .filter_map(|p| port(p.name.as_deref(), p.protocol.as_deref(), Some(p.port)))
            .collect(),
    }
}

/// An EndpointSlice's DNS view; `None` for one of no Service or of FQDN addresses.
pub fn slice_from(slice: &EndpointSlice) -> Option<Slice> {
    let service = slice
        .metadata
        .labels
        .as_ref()?
        .get("kubernetes.io/service-name")?
        .clone();
    if slice.address_type == "FQDN" {
        return None;
    }
    let endpoints = slice
        .endpoints
        .iter()
        .flat_map(|e| {
            // An unset condition means ready (the API's documented meaning).
            let ready = e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
            let hostname = e.hostname.clone();
            e.addresses
                .iter()
                .filter_map(|a| a.parse().ok())
                .map(move |ip| Endpoint {
                    ip,
                    hostname: hostname.clone(),
                    ready,
                })
        })
        .collect();
    Some(Slice {
        service,
        endpoints,
        ports: slice
            .ports
            .iter()
            .flatten()
            .filter_map(|p| port(p.name.as_deref(), p.protocol.as_deref(), p.port))
            .collect(),
    })
}

impl ClusterState {
    pub fn new() -> ClusterState {
        ClusterState::default()
    }

    /// Apply an added or modified object, as the API's JSON.
    pub fn upsert(&mut self, kind: Kind, object: &Value) {
        if let Some(object) = Object::decode(kind, object) {
            self.apply(&object);
        }
    }

    /// Apply an added or modified object.
    pub fn apply(&mut self, object: &Object) {
        let Some((ns, name)) = object.key() else {
            return;
        };
        match object {
            Object::Namespace(_) => {
                self.namespaces.insert(name);
            }
            Object::Service(service) => {
                self.services.insert((ns, name), service_from(service));
            }
            Object::EndpointSlice(slice) => {
                self.remove_slice(&ns, &name);
                if let Some(slice) = slice_from(slice) {
                    self.slices_of
                        .entry((ns.clone(), slice.service.clone()))
                        .or_default()
                        .insert(name.clone());
                    self.slices.insert((ns, name), slice);
                }
            }
        }
    }

    /// Apply a deleted object, as the API's JSON.
    pub fn delete(&mut self, kind: Kind, object: &Value) {
        if let Some(object) = Object::decode(kind, object) {
            self.remove(&object);
        }
    }

    /// Apply a deleted object.
    pub fn remove(&mut self, object: &Object) {
        let Some((ns, name)) = object.key() else {
            return;
        };
        match object {
            Object::Namespace(_) => {
                self.namespaces.remove(&name);
            }
            Object::Service(_) => {
                self.services.remove(&(ns, name));
            }
            Object::EndpointSlice(_) => self.remove_slice(&ns, &name),
        }
    }

    /// Replace every object of `kind` (a relist).
    pub fn replace(&mut self, kind: Kind, objects: &[Object]) {
        match kind {
            Kind::Namespace => self.namespaces.clear(),
            Kind::Service => self.services.clear(),
            Kind::EndpointSlice => {
                self.slices.clear();
                self.slices_of.clear();
            }
        }
        for o in objects {
            self.apply(o);
        }
    }

    fn remove_slice(&mut self, ns: &str, name: &str) {
        let key = (ns.to_string(), name.to_string());
        if let Some(old) = self.slices.remove(&key) {
            let of = (ns.to_string(), old.service);
            if let Some(set) = self.slices_of.get_mut(&of) {
                set.remove(name);
                if set.is_empty() {
                    self.slices_of.remove(&of);
                }
            }
        }
    }

    pub fn namespace_exists(&self, ns: &str) -> bool {
        self.namespaces.contains(ns)
    }

    pub fn service(&self, ns: &str, name: &str) -> Option<&Service> {
        self.services.get(&(ns.to_string(), name.to_string()))
    }

    /// The Service's endpoints over all its slices, each address once (ready wins), in
    /// address order; with the ports the slices carry.
    pub fn endpoints(&self, ns: &str, service: &str) -> (Vec<Endpoint>, Vec<Port>) {
        let mut by_ip: BTreeMap<IpAddr, Endpoint> = BTreeMap::new();
        let mut ports: Vec<Port> = Vec::new();
        let Some(names) = self.slices_of.get(&(ns.to_string(), service.to_string())) else {
            return (Vec::new(), ports);
        };
        for name in names {
            let Some(slice) = self.slices.get(&(ns.to_string(), name.clone())) else {
                continue;
            };
            for p in &slice.ports {
                if !ports.contains(p) {
                    ports.push(p.clone());
                }
            }
            for e in &slice.endpoints {
                match by_ip.get_mut(&e.ip) {
                    Some(have) => {
                        have.ready |= e.ready;
                        if have.hostname.is_none() {
                            have.hostname = e.hostname.clone();
                        }
                    }
                    None => {
                        by_ip.insert(e.ip, e.clone());
                    }
                }
            }
        }
        (by_ip.into_values().collect(), ports)
    }

    /// The names a reverse lookup of `ip` finds: Services by cluster IP, then endpoints by
    /// address (`label.service.ns`), as (namespace, service, endpoint label) triples.
    pub fn reverse(&self, ip: IpAddr) -> Vec<(String, String, Option<String>)> {
        let mut found: Vec<(String, String, Option<String>)> = self
            .services
            .iter()
            .filter(|(_, s)| s.cluster_ips.contains(&ip))
            .map(|((ns, name), _)| (ns.clone(), name.clone(), None))
            .collect();
        if found.is_empty() {
            for ((ns, _), slice) in &self.slices {
                for e in slice.endpoints.iter().filter(|e| e.ip == ip) {
                    let entry = (ns.clone(), slice.service.clone(), Some(e.label()));
                    if !found.contains(&entry) {
                        found.push(entry);
                    }
                }
            }
        }
        found.sort();
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_decode_as_their_kind_and_one_that_does_not_is_skipped() {
        let mut s = ClusterState::new();
        s.upsert(
            Kind::Service,
            &json!({"metadata": {"name": "web", "namespace": "a"},
                    "spec": {"clusterIP": "10.100.0.9", "ports": [{"name": "HTTP", "port": 80}]}}),
        );
        let web = s.service("a", "web").unwrap();
        assert_eq!(web.cluster_ips, ["10.100.0.9".parse::<IpAddr>().unwrap()]);
        assert_eq!(
            web.ports,
            [Port {
                name: "http".into(),
                protocol: "tcp".into(),
                port: 80
            }]
        );
        // A port that is not a number: the Service does not decode and is left out.
        s.upsert(
            Kind::Service,
            &json!({"metadata": {"name": "bad", "namespace": "a"}, "spec": {"ports": [{"port": "x"}]}}),
        );
        assert!(s.service("a", "bad").is_none());
        // An EndpointSlice of FQDN addresses is not the DNS's.
        s.upsert(
            Kind::EndpointSlice,
            &json!({"metadata": {"name": "web-1", "namespace": "a",
                                 "labels": {"kubernetes.io/service-name": "web"}},
                    "addressType": "FQDN", "endpoints": [{"addresses": ["example.com"]}]}),
        );
        assert!(s.endpoints("a", "web").0.is_empty());
    }
}
