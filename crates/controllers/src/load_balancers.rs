//! LoadBalancer Services and NodePorts, reachable from the host: what the cloud's load
//! balancer (the in-tree service controller's, or the AWS Load Balancer Controller's NLB) and
//! each node's port give on EKS, here as listeners on the host's loopback
//! ([`localfargate_runtime::host_proxy`]).
//!
//! * A LoadBalancer Service (no `loadBalancerClass`, or `service.k8s.aws/nlb`) gets, per TCP
//!   or UDP port (an NLB's listener protocols; UDP through [`UdpHostListener`]), a listener
//!   on `127.0.0.1:<port>`, or on a free port when that one is taken (another program,
//!   another localfargate), with a `Warning` event naming the port used. Its
//!   `status.loadBalancer.ingress` is `[{hostname: localhost}]`: a hostname as on EKS (where
//!   it is the load balancer's DNS name), and one that resolves here.
//! * NodePort and LoadBalancer Services get a listener on `127.0.0.1:<nodePort>`; a taken
//!   node port gets a `Warning` event and no listener.
//! * Each listener proxies to the Service's usable endpoints (pod IP and target port, from its
//!   EndpointSlices: the ready ones, or the serving and terminating ones when none is ready),
//!   in turn. Without one it refuses connections, as kube-proxy rejects them. With
//!   `externalTrafficPolicy: Local`, only the endpoints local to the host, which runs every
//!   pod: those on a node ([`crate::service_proxy::topology`]).
//! * `loadBalancerSourceRanges` (or the `service.beta.kubernetes.io/load-balancer-source-ranges`
//!   annotation, as the cloud providers read it) limits a load balancer's listeners to clients
//!   in those ranges; others are reset. Node ports are not limited, as kube-proxy does not
//!   limit them.
//! * A LoadBalancer Service with `externalTrafficPolicy: Local` gets kube-proxy's health check
//!   on `127.0.0.1:<healthCheckNodePort>`: its local ready endpoint count, 200 or 503.
//! * `externalIPs` in 127.0.0.0/8 (any Service type) get a listener on that address and the
//!   Service port: the nftables data path serves external IPs on the host's other interfaces
//!   and leaves loopback alone (it would need `route_localnet` to DNAT loopback to pods).
//! * Listeners close when the Service goes or stops being of that type (the load balancer's
//!   status is cleared then, as the service controller clears it).
//!
//! Listeners are opened only with the process runtime, whose pods really listen; with the
//! simulated one the status is still written, so what waits for it goes on.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, Service, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use localfargate_registry::meta::{name_of, namespace_of};
use localfargate_registry::objects::{Objects, resource};
use localfargate_registry::typed::{self, decode_or_log};
use localfargate_runtime::RuntimeKind;
use localfargate_runtime::host_proxy::{HealthCheckListener, HostListener};
use localfargate_runtime::host_udp_proxy::UdpHostListener;
use serde_json::Value;

use crate::context::ClusterContext;
use crate::events::{EventType, emit};
use crate::service_proxy::topology;
use crate::wake::{Wake, under};

/// The component named in the events, as upstream's.
const COMPONENT: &str = "service-controller";
/// The class of the AWS Load Balancer Controller's NLBs, also served here.
const NLB_CLASS: &str = "service.k8s.aws/nlb";
/// The load balancer's address in the Service's status.
pub const INGRESS_HOSTNAME: &str = "localhost";

pub async fn run(ctx: Arc<ClusterContext>) {
    let objects = &ctx.objects;
    let kind = objects.store_kind().to_string();
    let listen = ctx.runtime.kind() == RuntimeKind::Process;
    let watched = [
        resource("", "services").key_prefix(None),
        resource("discovery.k8s.io", "endpointslices").key_prefix(None),
    ];
    let mut wake = Wake::watching(
        &kind,
        &watched,
        Duration::from_millis(100),
        Duration::from_secs(30),
    );
    let mut state = Listeners::default();
    wake.start(&*objects.store, objects.store.revision().unwrap_or(0));
    loop {
        state.sync(objects, listen).await;
        wake.until(&*objects.store, under(&watched)).await;
    }
}

/// What a listener serves.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Front {
    /// A load balancer's port.
    LoadBalancer(Transport, u16),
    /// A node port.
    NodePort(Transport, u16),
    /// An external IP on loopback (127.0.0.0/8) and the Service port: the data path leaves
    /// loopback destinations alone, so a host listener serves them.
    ExternalIp(Transport, std::net::Ipv4Addr, u16),
}

/// The protocols served on the host (SCTP is not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Transport {
    Tcp,
    Udp,
}

impl Transport {
    fn of(port: &ServicePort) -> Option<Transport> {
        match port.protocol.as_deref().unwrap_or("TCP") {
            "TCP" => Some(Transport::Tcp),
            "UDP" => Some(Transport::Udp),
            _ => None,
        }
    }

    /// How an address of this protocol is written in the events: `127.0.0.1:53` for TCP (as
    /// before UDP was served), `127.0.0.1:53/UDP` for UDP.
    fn suffix(self) -> &'static str {
        match self {
            Transport::Tcp => "",
            Transport::Udp => "/UDP",
        }
    }
}

/// A host listener of either protocol.
enum Listener {
    Tcp(HostListener),
    Udp(UdpHostListener),
}

impl Listener {
    fn bind(transport: Transport, port: u16) -> std::io::Result<Listener> {
        Ok(match transport {
            Transport::Tcp => Listener::Tcp(HostListener::bind(port)?),
            Transport::Udp => Listener::Udp(UdpHostListener::bind(port)?),
        })
    }

    fn bind_at(transport: Transport, addr: SocketAddr) -> std::io::Result<Listener> {
        Ok(match transport {
            Transport::Tcp => Listener::Tcp(HostListener::bind_at(addr)?),
            Transport::Udp => Listener::Udp(UdpHostListener::bind_at(addr)?),
        })
    }

    fn bind_any(transport: Transport) -> std::io::Result<Listener> {
        Ok(match transport {
            Transport::Tcp => Listener::Tcp(HostListener::bind_any()?),
            Transport::Udp => Listener::Udp(UdpHostListener::bind_any()?),
        })
    }

    fn addr(&self) -> SocketAddr {
        match self {
            Listener::Tcp(l) => l.addr(),
            Listener::Udp(l) => l.addr(),
        }
    }

    fn backends(&self) -> Vec<SocketAddr> {
        match self {
            Listener::Tcp(l) => l.backends(),
            Listener::Udp(l) => l.backends(),
        }
    }

    async fn set_backends(&mut self, backends: Vec<SocketAddr>) -> std::io::Result<()> {
        match self {
            Listener::Tcp(l) => l.set_backends(backends).await,
            Listener::Udp(l) => {
                l.set_backends(backends);
                Ok(())
            }
        }
    }

    fn source_ranges(&self) -> Vec<(std::net::Ipv4Addr, u8)> {
        match self {
            Listener::Tcp(l) => l.source_ranges(),
            Listener::Udp(l) => l.source_ranges(),
        }
    }

    fn set_source_ranges(&self, ranges: Vec<(std::net::Ipv4Addr, u8)>) {
        match self {
            Listener::Tcp(l) => l.set_source_ranges(ranges),
            Listener::Udp(l) => l.set_source_ranges(ranges),
        }
    }
}

struct Served {
    uid: String,
    listeners: HashMap<Front, Listener>,
    /// Ports that could not be had, reported once.
    failed: HashSet<Front>,
    /// The load balancer's creation events were written.
    announced: bool,
    /// kube-proxy's health check, and its port.
    health: Option<(u16, HealthCheckListener)>,
    /// A health check port that could not be had, reported once.
    health_failed: Option<u16>,
}

impl Served {
    fn new(uid: String) -> Served {
        Served {
            uid,
            listeners: HashMap::new(),
            failed: HashSet::new(),
            announced: false,
            health: None,
            health_failed: None,
        }
    }
}

#[derive(Default)]
struct Listeners {
    services: HashMap<(String, String), Served>,
}

impl Listeners {
    async fn sync(&mut self, objects: &Objects, listen: bool) {
        let Ok((services, _)) = objects.list(resource("", "services"), None) else {
            return;
        };
        let Ok(slices) = typed::list::<EndpointSlice>(objects, None) else {
            return;
        };
        let mut by_service: HashMap<(String, String), Vec<&EndpointSlice>> = HashMap::new();
        for s in &slices {
            if let Some(owner) = s
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
            {
                by_service
                    .entry((
                        s.metadata.namespace.clone().unwrap_or_default(),
                        owner.clone(),
                    ))
                    .or_default()
                    .push(s);
            }
        }
        let mut seen = HashSet::new();
        for object in &services {
            // The stored Service, for its events; its typed form, for what it asks for.
            let stored = &object.value;
            let Some(svc) = decode_or_log::<Service>(stored) else {
                continue;
            };
            let svc = &svc;
            let key = (
                namespace_of(stored).to_string(),
                name_of(stored).to_string(),
            );
            let ours = is_load_balancer(svc);
            if !ours && has_our_status(svc) {
                clear_status(objects, stored);
            }
            let fronts = fronts(svc);
            let health_port = health_check_port(svc);
            if fronts.is_empty() && health_port.is_none() {
                continue;
            }
            seen.insert(key.clone());
            let uid = svc.metadata.uid.clone().unwrap_or_default();
            let served = self
                .services
                .entry(key.clone())
                .or_insert_with(|| Served::new(uid.clone()));
            if served.uid != uid {
                // The same name, another Service.
                *served = Served::new(uid);
            }
            if ours && !served.announced {
                emit(
                    objects,
                    stored,
                    EventType::Normal,
                    "EnsuringLoadBalancer",
                    "Ensuring load balancer",
                    COMPONENT,
                );
            }
            let no_slices = Vec::new();
            let slices = by_service.get(&key).unwrap_or(&no_slices);
            if listen {
                served
                    .reconcile(objects, stored, svc, &fronts, slices)
                    .await;
                served.health_check(objects, stored, svc, health_port, slices);
            }
            if ours {
                if !has_our_status(svc) {
                    set_status(objects, stored);
                }
                if !served.announced {
                    emit(
                        objects,
                        stored,
                        EventType::Normal,
                        "EnsuredLoadBalancer",
                        "Ensured load balancer",
                        COMPONENT,
                    );
                    served.announced = true;
                }
            }
        }
        // Gone, or no longer of a type served: their listeners close.
        self.services.retain(|k, _| seen.contains(k));
    }
}

impl Served {
    async fn reconcile(
        &mut self,
        objects: &Objects,
        stored: &Value,
        svc: &Service,
        fronts: &[(Front, ServicePort)],
        slices: &[&EndpointSlice],
    ) {
        let local = svc
            .spec
            .as_ref()
            .and_then(|s| s.external_traffic_policy.as_deref())
            == Some("Local");
        let ranges = source_ranges(svc);
        let wanted: HashSet<&Front> = fronts.iter().map(|(f, _)| f).collect();
        self.listeners.retain(|f, _| wanted.contains(f));
        self.failed.retain(|f| wanted.contains(f));
        for (front, port) in fronts {
            if !self.listeners.contains_key(front) && !self.failed.contains(front) {
                match open(objects, stored, front) {
                    Some(l) => {
                        self.listeners.insert(front.clone(), l);
                    }
                    None => {
                        self.failed.insert(front.clone());
                    }
                }
            }
            if let Some(listener) = self.listeners.get_mut(front) {
                let wanted_ranges = match front {
                    Front::LoadBalancer(..) => ranges.clone(),
                    Front::NodePort(..) | Front::ExternalIp(..) => Vec::new(),
                };
                if listener.source_ranges() != wanted_ranges {
                    listener.set_source_ranges(wanted_ranges);
                }
                let backends = backends(slices, port, local);
                if listener.backends() != backends
                    && let Err(e) = listener.set_backends(backends).await
                {
                    tracing::warn!(addr = %listener.addr(), error = %e, "updating a host listener");
                }
            }
        }
    }
}

impl Served {
    /// kube-proxy's health check for `externalTrafficPolicy: Local`: opened (or moved, or
    /// closed) to follow `port`, answering with the Service's local ready endpoints.
    fn health_check(
        &mut self,
        objects: &Objects,
        stored: &Value,
        svc: &Service,
        port: Option<u16>,
        slices: &[&EndpointSlice],
    ) {
        if self.health.as_ref().map(|(p, _)| *p) != port {
            self.health = None;
        }
        if self.health_failed != port {
            self.health_failed = None;
        }
        let Some(port) = port else {
            return;
        };
        if self.health.is_none() && self.health_failed.is_none() {
            match HealthCheckListener::bind(port, namespace_of(stored), name_of(stored)) {
                Ok(l) => self.health = Some((port, l)),
                Err(e) => {
                    // kube-proxy's event, with this host as the node.
                    let message = format!(
                        "node {} failed to start healthcheck \"{}/{}\" on port {port}: listen tcp \
                         127.0.0.1:{port}: bind: {}",
                        host_name(),
                        namespace_of(stored),
                        name_of(stored),
                        go_text(&e)
                    );
                    emit(
                        objects,
                        stored,
                        EventType::Warning,
                        "FailedToStartServiceHealthcheck",
                        &message,
                        "kube-proxy",
                    );
                    self.health_failed = Some(port);
                }
            }
        }
        if let Some((_, l)) = &self.health {
            let mut endpoints = Vec::new();
            for p in ports(svc) {
                endpoints.extend(topology::slice_endpoints(
                    slices,
                    p.name.as_deref().unwrap_or(""),
                    p.protocol.as_deref().unwrap_or("TCP"),
                ));
            }
            l.set_local_endpoints(topology::host_local_ready_addresses(endpoints.iter()));
        }
    }
}

/// This machine's name (the node kube-proxy's messages name).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string())
}

/// The health check port kube-proxy serves for a Service: a LoadBalancer Service with
/// `externalTrafficPolicy: Local` and its `healthCheckNodePort`.
fn health_check_port(svc: &Service) -> Option<u16> {
    let spec = svc.spec.as_ref()?;
    (spec.type_.as_deref() == Some("LoadBalancer")
        && spec.external_traffic_policy.as_deref() == Some("Local"))
    .then_some(spec.health_check_node_port)
    .flatten()
    .and_then(|p| u16::try_from(p).ok())
    .filter(|p| *p != 0)
}

/// The Service's ports (none when it has no spec).
fn ports(svc: &Service) -> impl Iterator<Item = &ServicePort> {
    svc.spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
}

/// The label naming a slice's Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The client ranges a load balancer lets in: `spec.loadBalancerSourceRanges`, or else the
/// `service.beta.kubernetes.io/load-balancer-source-ranges` annotation (comma-separated), as
/// upstream's `GetLoadBalancerSourceRanges` reads them (blanks trimmed); IPv4 ranges only. A
/// range of length 0 lets everyone in, as does no range at all (empty result).
pub(crate) fn source_ranges(svc: &Service) -> Vec<(std::net::Ipv4Addr, u8)> {
    let spec: Vec<String> = svc
        .spec
        .as_ref()
        .and_then(|s| s.load_balancer_source_ranges.clone())
        .unwrap_or_default();
    let texts = if spec.is_empty() {
        svc.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("service.beta.kubernetes.io/load-balancer-source-ranges"))
            .map_or("", String::as_str)
            .split(',')
            .map(str::to_string)
            .collect()
    } else {
        spec
    };
    let mut ranges = Vec::new();
    for text in &texts {
        let text = text.trim();
        let Some((addr, len)) = text.split_once('/') else {
            continue;
        };
        let (Ok(addr), Ok(len)) = (addr.parse::<std::net::Ipv4Addr>(), len.parse::<u8>()) else {
            continue;
        };
        if len > 32 {
            continue;
        }
        if len == 0 {
            return Vec::new();
        }
        ranges.push((addr, len));
    }
    ranges
}

/// A listener for `front`, or the event saying why there is none (or why it is elsewhere).
fn open(objects: &Objects, svc: &Value, front: &Front) -> Option<Listener> {
    match *front {
        Front::LoadBalancer(transport, port) => match Listener::bind(transport, port) {
            Ok(l) => Some(l),
            Err(e) => match Listener::bind_any(transport) {
                Ok(l) => {
                    let proto = transport.suffix();
                    let message = format!(
                        "127.0.0.1:{port}{proto} is not available on this host ({}): port \
                         {port}{proto} of the load balancer listens on {}{proto} instead",
                        go_text(&e),
                        l.addr()
                    );
                    emit(
                        objects,
                        svc,
                        EventType::Warning,
                        "LoadBalancerPortTaken",
                        &message,
                        COMPONENT,
                    );
                    Some(l)
                }
                Err(e2) => {
                    let message = format!(
                        "no port for port {port}{} of the load balancer on this host: {}",
                        transport.suffix(),
                        go_text(&e2)
                    );
                    emit(
                        objects,
                        svc,
                        EventType::Warning,
                        "LoadBalancerPortTaken",
                        &message,
                        COMPONENT,
                    );
                    None
                }
            },
        },
        Front::NodePort(transport, port) => match Listener::bind(transport, port) {
            Ok(l) => Some(l),
            Err(e) => {
                let proto = transport.suffix();
                let message = format!(
                    "127.0.0.1:{port}{proto} is not available on this host ({}): node port \
                     {port}{proto} is not served on the host",
                    go_text(&e)
                );
                emit(
                    objects,
                    svc,
                    EventType::Warning,
                    "NodePortTaken",
                    &message,
                    COMPONENT,
                );
                None
            }
        },
        Front::ExternalIp(transport, ip, port) => {
            match Listener::bind_at(transport, SocketAddr::new(IpAddr::V4(ip), port)) {
                Ok(l) => Some(l),
                Err(e) => {
                    let proto = transport.suffix();
                    let message = format!(
                        "{ip}:{port}{proto} is not available on this host ({}): external IP \
                         {ip} port {port}{proto} is not served on the host",
                        go_text(&e)
                    );
                    emit(
                        objects,
                        svc,
                        EventType::Warning,
                        "ExternalIPPortTaken",
                        &message,
                        COMPONENT,
                    );
                    None
                }
            }
        }
    }
}

/// `address already in use`, as Go (and so Kubernetes components) words it.
fn go_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text).to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

/// Whether the load balancer of this Service is served here: type LoadBalancer, no class or
/// the AWS Load Balancer Controller's NLB class (another class belongs to another controller).
fn is_load_balancer(svc: &Service) -> bool {
    let Some(spec) = svc.spec.as_ref() else {
        return false;
    };
    spec.type_.as_deref() == Some("LoadBalancer")
        && match spec.load_balancer_class.as_deref() {
            None => true,
            Some(class) => class == NLB_CLASS,
        }
}

/// The listeners a Service wants, with the Service port each serves (TCP and UDP; SCTP is
/// not served on the host).
fn fronts(svc: &Service) -> Vec<(Front, ServicePort)> {
    let kind = svc
        .spec
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("ClusterIP");
    let loopback_ips = loopback_external_ips(svc);
    let node_ports = kind == "LoadBalancer" || kind == "NodePort";
    if (!node_ports && loopback_ips.is_empty()) || kind == "ExternalName" {
        return Vec::new();
    }
    let lb = is_load_balancer(svc);
    let mut out = Vec::new();
    for port in ports(svc) {
        let Some(transport) = Transport::of(port) else {
            continue;
        };
        let service_port = u16::try_from(port.port).ok();
        if let Some(p) = service_port {
            for ip in &loopback_ips {
                out.push((Front::ExternalIp(transport, *ip, p), port.clone()));
            }
        }
        if !node_ports {
            continue;
        }
        if lb && let Some(p) = service_port {
            out.push((Front::LoadBalancer(transport, p), port.clone()));
        }
        if let Some(p) = port.node_port.and_then(|p| u16::try_from(p).ok()) {
            out.push((Front::NodePort(transport, p), port.clone()));
        }
    }
    out
}

/// The Service's `externalIPs` in 127.0.0.0/8: served by host listeners (the nftables data
/// path serves only external IPs on the host's other interfaces).
fn loopback_external_ips(svc: &Service) -> Vec<std::net::Ipv4Addr> {
    let mut ips: Vec<std::net::Ipv4Addr> = svc
        .spec
        .as_ref()
        .and_then(|s| s.external_ips.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|ip| ip.parse().ok())
        .filter(|ip: &std::net::Ipv4Addr| ip.is_loopback())
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

/// The usable endpoints of a Service port (ready, or serving and terminating when none is
/// ready), from its EndpointSlices' port of the same name and protocol; with `local`
/// (`externalTrafficPolicy: Local`) only those local to the host.
pub(crate) fn backends(
    slices: &[&EndpointSlice],
    port: &ServicePort,
    local: bool,
) -> Vec<SocketAddr> {
    let eps = topology::slice_endpoints(
        slices,
        port.name.as_deref().unwrap_or(""),
        port.protocol.as_deref().unwrap_or("TCP"),
    );
    let chosen = if local {
        topology::host_local(&eps)
    } else {
        topology::usable(eps.iter())
    };
    chosen
        .into_iter()
        .map(|(ip, port)| SocketAddr::new(IpAddr::V4(ip), port))
        .collect()
}

/// The ready endpoints of a Service port only: the targets the AWS Load Balancer Controller
/// registers for an Ingress of target type `ip` (it deregisters terminating pods; no fallback).
pub(crate) fn ready_backends(slices: &[&EndpointSlice], port: &ServicePort) -> Vec<SocketAddr> {
    topology::slice_endpoints(
        slices,
        port.name.as_deref().unwrap_or(""),
        port.protocol.as_deref().unwrap_or("TCP"),
    )
    .into_iter()
    .filter(|e| e.ready)
    .map(|e| SocketAddr::new(IpAddr::V4(e.ip), e.port))
    .collect::<std::collections::BTreeSet<_>>()
    .into_iter()
    .collect()
}

/// The load balancer's status as this controller writes it: `localhost`.
fn our_status() -> LoadBalancerStatus {
    LoadBalancerStatus {
        ingress: Some(vec![LoadBalancerIngress {
            hostname: Some(INGRESS_HOSTNAME.to_string()),
            ..LoadBalancerIngress::default()
        }]),
    }
}

fn has_our_status(svc: &Service) -> bool {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.as_ref())
        == our_status().ingress.as_ref()
}

fn set_status(objects: &Objects, svc: &Value) {
    write_status(objects, svc, &our_status());
}

fn clear_status(objects: &Objects, svc: &Value) {
    write_status(objects, svc, &LoadBalancerStatus::default());
}

/// Make the stored Service's `status.loadBalancer` this.
fn write_status(objects: &Objects, svc: &Value, load_balancer: &LoadBalancerStatus) {
    let result = typed::to_json(load_balancer).and_then(|load_balancer| {
        objects.update_status_field(
            resource("", "services"),
            namespace_of(svc),
            name_of(svc),
            "loadBalancer",
            &load_balancer,
        )
    });
    if let Err(e) = result {
        tracing::debug!(service = name_of(svc), error = %e, "writing a load balancer's status");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn typed<K: serde::de::DeserializeOwned>(v: Value) -> K {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn fronts_follow_type_class_and_protocol() {
        let svc = |t: &str, class: Option<&str>| -> Service {
            typed(
                json!({"spec": {"type": t, "loadBalancerClass": class, "ports": [
                    {"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080, "protocol": "TCP"},
                    {"name": "dns", "port": 53, "nodePort": 30053, "protocol": "UDP"},
                ]}}),
            )
        };
        use Transport::{Tcp, Udp};
        let lb = fronts(&svc("LoadBalancer", None));
        let kinds: Vec<&Front> = lb.iter().map(|(f, _)| f).collect();
        assert_eq!(
            kinds,
            [
                &Front::LoadBalancer(Tcp, 80),
                &Front::NodePort(Tcp, 30080),
                &Front::LoadBalancer(Udp, 53),
                &Front::NodePort(Udp, 30053)
            ]
        );
        assert_eq!(fronts(&svc("LoadBalancer", Some(NLB_CLASS))).len(), 4);
        // Another controller's class: its node ports only.
        let other = fronts(&svc("LoadBalancer", Some("example.com/lb")));
        assert_eq!(other.len(), 2);
        assert_eq!(other[0].0, Front::NodePort(Tcp, 30080));
        assert_eq!(other[1].0, Front::NodePort(Udp, 30053));
        assert_eq!(fronts(&svc("NodePort", None)).len(), 2);
        // External IPs on loopback, of any Service type, on the Service port; others are the
        // data path's.
        let external: Service = typed(
            json!({"spec": {"externalIPs": ["127.0.0.5", "198.51.100.1", "127.0.0.5"],
            "ports": [{"port": 8080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}}),
        );
        let fronts_of: Vec<Front> = fronts(&external).into_iter().map(|(f, _)| f).collect();
        let ip = std::net::Ipv4Addr::new(127, 0, 0, 5);
        assert_eq!(
            fronts_of,
            [
                Front::ExternalIp(Tcp, ip, 8080),
                Front::ExternalIp(Udp, ip, 53)
            ]
        );
        // SCTP is not served on the host.
        let sctp: Service = typed(json!({"spec": {"type": "NodePort", "ports": [
            {"port": 9, "nodePort": 30009, "protocol": "SCTP"}]}}));
        assert!(fronts(&sctp).is_empty());
        assert!(fronts(&svc("ClusterIP", None)).is_empty());
    }

    #[test]
    fn backends_are_ready_addresses_with_the_named_port() {
        let slice: EndpointSlice = typed(json!({
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "metrics", "port": 9090, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.0.1.5"], "conditions": {"ready": true}},
                {"addresses": ["10.0.1.6"], "conditions": {"ready": false}},
                {"addresses": ["10.0.1.7"], "conditions": {}, "nodeName": "fargate-ip-10-0-1-7"},
            ],
        }));
        let port: ServicePort = typed(json!({"name": "http", "port": 80, "protocol": "TCP"}));
        let got = backends(&[&slice], &port, false);
        let want: Vec<SocketAddr> = vec![
            "10.0.1.5:8080".parse().unwrap(),
            "10.0.1.7:8080".parse().unwrap(),
        ];
        assert_eq!(got, want);
        assert!(
            backends(
                &[&slice],
                &typed(json!({"name": "other", "port": 1})),
                false
            )
            .is_empty()
        );
        // Local to the host: only the endpoint on a node.
        assert_eq!(
            backends(&[&slice], &port, true),
            vec!["10.0.1.7:8080".parse::<SocketAddr>().unwrap()]
        );
        // None ready: the serving and terminating ones.
        let terminating: EndpointSlice = typed(json!({
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.0.1.5"], "conditions": {"ready": false, "serving": true, "terminating": true}},
                {"addresses": ["10.0.1.6"], "conditions": {"ready": false, "serving": false, "terminating": true}},
            ],
        }));
        assert_eq!(
            backends(&[&terminating], &port, false),
            vec!["10.0.1.5:8080".parse::<SocketAddr>().unwrap()]
        );
    }

    #[test]
    fn source_ranges_from_the_spec_or_the_annotation() {
        let svc: Service = typed(json!({"metadata": {"annotations": {
            "service.beta.kubernetes.io/load-balancer-source-ranges": " 127.0.0.2/32 , 10.0.0.0/8"}},
            "spec": {}}));
        assert_eq!(
            source_ranges(&svc),
            vec![
                (std::net::Ipv4Addr::new(127, 0, 0, 2), 32),
                (std::net::Ipv4Addr::new(10, 0, 0, 0), 8)
            ]
        );
        // The spec wins over the annotation; a /0 lets everyone in.
        let mut both = svc.clone();
        let ranges = |both: &mut Service, r: &[&str]| {
            both.spec
                .get_or_insert_default()
                .load_balancer_source_ranges = Some(r.iter().map(|r| r.to_string()).collect());
        };
        ranges(&mut both, &["192.0.2.0/24"]);
        assert_eq!(
            source_ranges(&both),
            vec![(std::net::Ipv4Addr::new(192, 0, 2, 0), 24)]
        );
        ranges(&mut both, &["192.0.2.0/24", "0.0.0.0/0"]);
        assert!(source_ranges(&both).is_empty());
        assert!(source_ranges(&typed(json!({"spec": {}}))).is_empty());
    }

    #[test]
    fn the_health_check_port_is_for_local_load_balancers() {
        let lb: Service = typed(
            json!({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local",
                                 "healthCheckNodePort": 32000}}),
        );
        assert_eq!(health_check_port(&lb), Some(32000));
        let cluster: Service = typed(
            json!({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Cluster",
                                      "healthCheckNodePort": 32000}}),
        );
        assert_eq!(health_check_port(&cluster), None);
    }
}
