//! LoadBalancer Services and NodePorts, reachable from the host: what the cloud's load
//! balancer (the in-tree service controller's, or the AWS Load Balancer Controller's NLB) and
//! each node's port give on EKS, here as listeners on the host's loopback
//! ([`localfargate_runtime::host_proxy`]).
//!
//! * A LoadBalancer Service (no `loadBalancerClass`, or `service.k8s.aws/nlb`) gets, per TCP
//!   port, a listener on `127.0.0.1:<port>`, or on a free port when that one is taken (another
//!   program, another localfargate), with a `Warning` event naming the port used. Its
//!   `status.loadBalancer.ingress` is `[{hostname: localhost}]`: a hostname as on EKS (where
//!   it is the load balancer's DNS name), and one that resolves here.
//! * NodePort and LoadBalancer Services get a listener on `127.0.0.1:<nodePort>`; a taken
//!   node port gets a `Warning` event and no listener.
//! * Each listener proxies to the Service's ready endpoints (pod IP and target port, from its
//!   EndpointSlices), in turn. Without one it refuses connections, as kube-proxy rejects them.
//! * Listeners close when the Service goes or stops being of that type (the load balancer's
//!   status is cleared then, as the service controller clears it).
//!
//! Listeners are opened only with the process runtime, whose pods really listen; with the
//! simulated one the status is still written, so what waits for it goes on.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use localfargate_registry::objects::{Objects, name_of, namespace_of, resource};
use localfargate_runtime::RuntimeKind;
use localfargate_runtime::host_proxy::HostListener;
use serde_json::{Value, json};

use crate::context::ClusterContext;
use crate::events::{EventType, emit};
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
    LoadBalancer(u16),
    /// A node port.
    NodePort(u16),
}

struct Served {
    uid: String,
    listeners: HashMap<Front, HostListener>,
    /// Ports that could not be had, reported once.
    failed: HashSet<Front>,
    /// The load balancer's creation events were written.
    announced: bool,
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
        let Ok((slices, _)) = objects.list(resource("discovery.k8s.io", "endpointslices"), None)
        else {
            return;
        };
        let mut by_service: HashMap<(String, String), Vec<&Value>> = HashMap::new();
        for s in &slices {
            if let Some(owner) =
                s.value["metadata"]["labels"]["kubernetes.io/service-name"].as_str()
            {
                by_service
                    .entry((namespace_of(&s.value).to_string(), owner.to_string()))
                    .or_default()
                    .push(&s.value);
            }
        }
        let mut seen = HashSet::new();
        for object in &services {
            let svc = &object.value;
            let key = (namespace_of(svc).to_string(), name_of(svc).to_string());
            let ours = is_load_balancer(svc);
            if !ours && has_our_status(svc) {
                clear_status(objects, svc);
            }
            let fronts = fronts(svc);
            if fronts.is_empty() {
                continue;
            }
            seen.insert(key.clone());
            let uid = svc["metadata"]["uid"].as_str().unwrap_or("").to_string();
            let served = self.services.entry(key.clone()).or_insert_with(|| Served {
                uid: uid.clone(),
                listeners: HashMap::new(),
                failed: HashSet::new(),
                announced: false,
            });
            if served.uid != uid {
                // The same name, another Service.
                *served = Served {
                    uid,
                    listeners: HashMap::new(),
                    failed: HashSet::new(),
                    announced: false,
                };
            }
            if ours && !served.announced {
                emit(
                    objects,
                    svc,
                    EventType::Normal,
                    "EnsuringLoadBalancer",
                    "Ensuring load balancer",
                    COMPONENT,
                );
            }
            let no_slices = Vec::new();
            let slices = by_service.get(&key).unwrap_or(&no_slices);
            if listen {
                served.reconcile(objects, svc, &fronts, slices).await;
            }
            if ours {
                set_status(objects, svc);
                if !served.announced {
                    emit(
                        objects,
                        svc,
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
        svc: &Value,
        fronts: &[(Front, Value)],
        slices: &[&Value],
    ) {
        let wanted: HashSet<&Front> = fronts.iter().map(|(f, _)| f).collect();
        self.listeners.retain(|f, _| wanted.contains(f));
        self.failed.retain(|f| wanted.contains(f));
        for (front, port) in fronts {
            if !self.listeners.contains_key(front) && !self.failed.contains(front) {
                match open(objects, svc, front) {
                    Some(l) => {
                        self.listeners.insert(front.clone(), l);
                    }
                    None => {
                        self.failed.insert(front.clone());
                    }
                }
            }
            if let Some(listener) = self.listeners.get_mut(front) {
                let backends = backends(slices, port);
                if listener.backends() != backends
                    && let Err(e) = listener.set_backends(backends).await
                {
                    tracing::warn!(addr = %listener.addr(), error = %e, "updating a host listener");
                }
            }
        }
    }
}

/// A listener for `front`, or the event saying why there is none (or why it is elsewhere).
fn open(objects: &Objects, svc: &Value, front: &Front) -> Option<HostListener> {
    match front {
        Front::LoadBalancer(port) => match HostListener::bind(*port) {
            Ok(l) => Some(l),
            Err(e) => match HostListener::bind_any() {
                Ok(l) => {
                    let message = format!(
                        "127.0.0.1:{port} is not available on this host ({}): port {port} of the \
                         load balancer listens on {} instead",
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
                        "no port for port {port} of the load balancer on this host: {}",
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
        Front::NodePort(port) => match HostListener::bind(*port) {
            Ok(l) => Some(l),
            Err(e) => {
                let message = format!(
                    "127.0.0.1:{port} is not available on this host ({}): node port {port} is \
                     not served on the host",
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
fn is_load_balancer(svc: &Value) -> bool {
    svc["spec"]["type"] == "LoadBalancer"
        && match svc["spec"]["loadBalancerClass"].as_str() {
            None => true,
            Some(class) => class == NLB_CLASS,
        }
}

/// The listeners a Service wants, with the Service port each serves (TCP only).
fn fronts(svc: &Value) -> Vec<(Front, Value)> {
    let kind = svc["spec"]["type"].as_str().unwrap_or("ClusterIP");
    if kind != "LoadBalancer" && kind != "NodePort" {
        return Vec::new();
    }
    let lb = is_load_balancer(svc);
    let mut out = Vec::new();
    for port in svc["spec"]["ports"].as_array().into_iter().flatten() {
        if port["protocol"].as_str().unwrap_or("TCP") != "TCP" {
            continue;
        }
        if lb && let Some(p) = port["port"].as_u64().and_then(|p| u16::try_from(p).ok()) {
            out.push((Front::LoadBalancer(p), port.clone()));
        }
        if let Some(p) = port["nodePort"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
        {
            out.push((Front::NodePort(p), port.clone()));
        }
    }
    out
}

/// The ready endpoints of a Service port: each ready address of its EndpointSlices with the
/// slice port of the same name and protocol (an unset `ready` counts as ready, as kube-proxy
/// reads it).
pub(crate) fn backends(slices: &[&Value], port: &Value) -> Vec<SocketAddr> {
    let name = port["name"].as_str().unwrap_or("");
    let protocol = port["protocol"].as_str().unwrap_or("TCP");
    let mut out = Vec::new();
    for slice in slices {
        let Some(number) = slice["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| {
                p["name"].as_str().unwrap_or("") == name
                    && p["protocol"].as_str().unwrap_or("TCP") == protocol
            })
            .and_then(|p| p["port"].as_u64())
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        for endpoint in slice["endpoints"].as_array().into_iter().flatten() {
            if endpoint["conditions"]["ready"] == false {
                continue;
            }
            for address in endpoint["addresses"].as_array().into_iter().flatten() {
                if let Some(ip) = address.as_str().and_then(|a| a.parse::<IpAddr>().ok()) {
                    out.push(SocketAddr::new(ip, number));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn ingress() -> Value {
    json!([{"hostname": INGRESS_HOSTNAME}])
}

fn has_our_status(svc: &Value) -> bool {
    svc["status"]["loadBalancer"]["ingress"] == ingress()
}

fn set_status(objects: &Objects, svc: &Value) {
    if has_our_status(svc) {
        return;
    }
    write_status(objects, svc, json!({"ingress": ingress()}));
}

fn clear_status(objects: &Objects, svc: &Value) {
    write_status(objects, svc, json!({}));
}

fn write_status(objects: &Objects, svc: &Value, load_balancer: Value) {
    let result = objects.update_with(
        resource("", "services"),
        namespace_of(svc),
        name_of(svc),
        true,
        None,
        &mut |current| {
            let mut next = current.clone();
            next["status"]["loadBalancer"] = load_balancer.clone();
            Ok(next)
        },
    );
    if let Err(e) = result {
        tracing::debug!(service = name_of(svc), error = %e, "writing a load balancer's status");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fronts_follow_type_class_and_protocol() {
        let svc = |t: &str, class: Option<&str>| {
            json!({"spec": {"type": t, "loadBalancerClass": class, "ports": [
                {"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080, "protocol": "TCP"},
                {"name": "dns", "port": 53, "nodePort": 30053, "protocol": "UDP"},
            ]}})
        };
        let lb = fronts(&svc("LoadBalancer", None));
        let kinds: Vec<&Front> = lb.iter().map(|(f, _)| f).collect();
        assert_eq!(kinds, [&Front::LoadBalancer(80), &Front::NodePort(30080)]);
        assert_eq!(fronts(&svc("LoadBalancer", Some(NLB_CLASS))).len(), 2);
        // Another controller's class: its node port only.
        let other = fronts(&svc("LoadBalancer", Some("example.com/lb")));
        assert_eq!(other.len(), 1);
        assert_eq!(other[0].0, Front::NodePort(30080));
        assert_eq!(fronts(&svc("NodePort", None)).len(), 1);
        assert!(fronts(&svc("ClusterIP", None)).is_empty());
    }

    #[test]
    fn backends_are_ready_addresses_with_the_named_port() {
        let slice = json!({
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "metrics", "port": 9090, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.0.1.5"], "conditions": {"ready": true}},
                {"addresses": ["10.0.1.6"], "conditions": {"ready": false}},
                {"addresses": ["10.0.1.7"], "conditions": {}},
            ],
        });
        let port = json!({"name": "http", "port": 80, "protocol": "TCP"});
        let got = backends(&[&slice], &port);
        let want: Vec<SocketAddr> = vec![
            "10.0.1.5:8080".parse().unwrap(),
            "10.0.1.7:8080".parse().unwrap(),
        ];
        assert_eq!(got, want);
        assert!(backends(&[&slice], &json!({"name": "other", "port": 1})).is_empty());
    }
}
