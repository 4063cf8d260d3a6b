//! What a Service's Endpoints and EndpointSlices say, from its pods, as kube-controller-manager's
//! endpoints and endpointslice controllers compute them: which pods are in (an IP, not finished;
//! terminating ones only where upstream keeps them), ready, serving and terminating, each
//! service port's target resolved on the pod (a named `targetPort` through the container port of
//! that name), hostnames for a headless Service's subdomain. Pure: the controller reads and writes.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
    ServicePort,
};
use k8s_openapi::api::discovery::v1 as discovery;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use localfargate_registry::meta::label_of;
use serde_json::Value;

/// What manages the slices this controller writes (`endpointslice.kubernetes.io/managed-by`).
pub const SLICE_MANAGER: &str = "endpointslice-controller.k8s.io";
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
/// How many addresses an Endpoints object holds at most (upstream's `maxCapacity`); beyond
/// it the object is truncated and says so with [`OVER_CAPACITY`].
pub const MAX_ENDPOINTS_ADDRESSES: usize = 1000;
pub const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";
/// Upstream's `--max-endpoints-per-slice` default.
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// A slice's ports and endpoints, as the controller packs them.
pub type SliceContents = (Vec<discovery::EndpointPort>, Vec<discovery::Endpoint>);

fn selector(service: &Service) -> Option<&BTreeMap<String, String>> {
    service.spec.as_ref()?.selector.as_ref()
}

fn spec_str(
    service: &Service,
    f: impl Fn(&k8s_openapi::api::core::v1::ServiceSpec) -> Option<&String>,
) -> Option<&str> {
    service.spec.as_ref().and_then(f).map(String::as_str)
}

/// Whether the controllers keep this Service's endpoints: it selects pods (a Service without a
/// selector has endpoints its user writes) and is not an ExternalName.
pub fn is_managed(service: &Service) -> bool {
    selector(service).is_some_and(|s| !s.is_empty())
        && spec_str(service, |s| s.type_.as_ref()) != Some("ExternalName")
}

/// Whether a pod the Service's selector matches. The pod is read where it is stored (its labels
/// only): this runs for every pod of the namespace against every Service.
pub fn selects(service: &Service, pod: &Value) -> bool {
    let Some(selector) = selector(service) else {
        return false;
    };
    !selector.is_empty()
        && selector
            .iter()
            .all(|(k, v)| label_of(pod, k) == Some(v.as_str()))
}

/// Whether the pod's `Ready` condition is `True`.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

fn pod_ip(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.pod_ip.as_deref()
}

/// Upstream's `ShouldPodBeInEndpoints`: an address, not finished, and terminating only when
/// `include_terminating`.
fn in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    let finished = matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    );
    let ip = pod_ip(pod).is_some_and(|i| !i.is_empty());
    !finished && ip && (include_terminating || !is_terminating(pod))
}

/// The port a service port reaches on a pod (`FindPort`): a number as it is, a name through
/// the pod's container (or sidecar) port of that name and protocol; `None` when the pod has no
/// such port.
fn target_port(pod: &Pod, service_port: &ServicePort) -> Option<i32> {
    let protocol = service_port.protocol.as_deref().unwrap_or("TCP");
    match &service_port.target_port {
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            if let Ok(n) = name.parse::<i32>() {
                return Some(n);
            }
            let spec = pod.spec.as_ref()?;
            // Containers first, then sidecars (init containers that restart `Always`).
            let sidecars = spec
                .init_containers
                .iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"));
            spec.containers
                .iter()
                .chain(sidecars)
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol
                })
                .map(|p| p.container_port)
        }
        None => Some(service_port.port),
    }
}

/// A service port as it is on a pod: name (`None` when unnamed), port, protocol, appProtocol.
struct PortOnPod<'a> {
    name: Option<&'a str>,
    port: i32,
    protocol: &'a str,
    app_protocol: Option<&'a str>,
}

/// The ports of the Service on this pod, in the Service's order; the service ports the pod
/// lacks are left out.
fn ports_on<'a>(service: &'a Service, pod: &Pod) -> Vec<PortOnPod<'a>> {
    service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|sp| {
            Some(PortOnPod {
                port: target_port(pod, sp)?,
                name: sp.name.as_deref().filter(|n| !n.is_empty()),
                protocol: sp.protocol.as_deref().unwrap_or("TCP"),
                app_protocol: sp.app_protocol.as_deref(),
            })
        })
        .collect()
}

/// The Endpoints' ports: a name only where the service port has one.
fn endpoints_ports(ports: &[PortOnPod]) -> Vec<EndpointPort> {
    ports
        .iter()
        .map(|p| EndpointPort {
            name: p.name.map(str::to_string),
            port: p.port,
            protocol: Some(p.protocol.to_string()),
            app_protocol: p.app_protocol.map(str::to_string),
        })
        .collect()
}

/// A slice's ports always carry a name (`""` for an unnamed one).
fn slice_ports(ports: &[PortOnPod]) -> Vec<discovery::EndpointPort> {
    ports
        .iter()
        .map(|p| discovery::EndpointPort {
            name: Some(p.name.unwrap_or("").to_string()),
            port: Some(p.port),
            protocol: Some(p.protocol.to_string()),
            app_protocol: p.app_protocol.map(str::to_string),
        })
        .collect()
}

/// A set of ports as a grouping key: its JSON (keys sorted), so groups come in the order the
/// JSON of their ports sorts, as they always have.
fn ports_key<T: serde::Serialize>(ports: &[T]) -> String {
    serde_json::to_value(ports)
        .map(|v| v.to_string())
        .unwrap_or_default()
}

/// Upstream's `!IsServiceIPSet`: no ClusterIP, or `None`.
fn is_headless(service: &Service) -> bool {
    spec_str(service, |s| s.cluster_ip.as_ref()).is_none_or(|ip| ip.is_empty() || ip == "None")
}

/// The pod's hostname when it is in the Service's subdomain (`ShouldSetHostname`).
fn hostname(service: &Service, pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let host = spec.hostname.as_deref().filter(|h| !h.is_empty())?;
    (spec.subdomain == service.metadata.name
        && pod.metadata.namespace == service.metadata.namespace)
        .then(|| host.to_string())
}

fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref()?.node_name.as_deref()
}

fn target_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".to_string()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..ObjectReference::default()
    }
}

/// The labels upstream gives a Service's Endpoints: the Service's, and the headless marker.
fn endpoints_labels(service: &Service) -> BTreeMap<String, String> {
    let mut labels = service.metadata.labels.clone().unwrap_or_default();
    if is_headless(service) {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    } else {
        labels.remove(HEADLESS_LABEL);
    }
    labels
}

/// A subset being gathered: its ports, ready addresses and not-ready addresses.
type Subset = (
    Vec<EndpointPort>,
    Vec<EndpointAddress>,
    Vec<EndpointAddress>,
);

/// The `subsets` of the Service's Endpoints: addresses grouped by the ports they serve
/// (`RepackSubsets`), ready ones in `addresses`, the others in `notReadyAddresses`, each sorted
/// by IP. Empty when no pod is in.
pub fn subsets(service: &Service, pods: &[&Pod]) -> Vec<EndpointSubset> {
    let spec = service.spec.as_ref();
    let tolerate_unready = spec.and_then(|s| s.publish_not_ready_addresses) == Some(true);
    let no_ports = spec
        .and_then(|s| s.ports.as_ref())
        .is_none_or(|p| p.is_empty());
    // Keyed by the ports' JSON, so pods serving the same ports share a subset.
    let mut groups: BTreeMap<String, Subset> = BTreeMap::new();
    for pod in pods.iter().filter(|p| in_endpoints(p, tolerate_unready)) {
        let ports = endpoints_ports(&ports_on(service, pod));
        if ports.is_empty() && !(no_ports && is_headless(service)) {
            continue;
        }
        let address = EndpointAddress {
            ip: pod_ip(pod).unwrap_or_default().to_string(),
            hostname: hostname(service, pod),
            node_name: node_name(pod).map(str::to_string),
            target_ref: Some(target_ref(pod)),
        };
        let entry = groups
            .entry(ports_key(&ports))
            .or_insert_with(|| (ports, Vec::new(), Vec::new()));
        if tolerate_unready || is_ready(pod) {
            entry.1.push(address);
        } else {
            entry.2.push(address);
        }
    }
    groups
        .into_values()
        .map(|(ports, mut ready, mut not_ready)| {
            // Upstream's `LessEndpointAddress`: the IPs as strings, then the pods' uids.
            let by_ip = |a: &EndpointAddress, b: &EndpointAddress| {
                let uid = |e: &EndpointAddress| e.target_ref.as_ref().and_then(|r| r.uid.clone());
                a.ip.cmp(&b.ip).then_with(|| uid(a).cmp(&uid(b)))
            };
            ready.sort_by(by_ip);
            not_ready.sort_by(by_ip);
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!ports.is_empty()).then_some(ports),
            }
        })
        .collect()
}

/// Cut subsets holding more than [`MAX_ENDPOINTS_ADDRESSES`] addresses down to it, as
/// upstream's `truncateEndpoints`: ready addresses first, each subset keeping its proportion
/// (rounded up, the last taking what is left); returns whether anything was cut.
pub fn truncate(subsets: &mut [EndpointSubset]) -> bool {
    let count = |l: &Option<Vec<EndpointAddress>>| l.as_ref().map_or(0, Vec::len);
    let ready: usize = subsets.iter().map(|s| count(&s.addresses)).sum();
    let not_ready: usize = subsets.iter().map(|s| count(&s.not_ready_addresses)).sum();
    if ready + not_ready <= MAX_ENDPOINTS_ADDRESSES {
        return false;
    }
    let cut_ready = ready > MAX_ENDPOINTS_ADDRESSES;
    let (max, total) = if cut_ready {
        (MAX_ENDPOINTS_ADDRESSES, ready)
    } else {
        (MAX_ENDPOINTS_ADDRESSES - ready, not_ready)
    };
    let mut room = max;
    for subset in subsets.iter_mut() {
        let list = if cut_ready {
            &mut subset.addresses
        } else {
            &mut subset.not_ready_addresses
        };
        if let Some(list) = list.as_mut() {
            let share = (list.len() * max).div_ceil(total).min(room);
            list.truncate(share);
            room -= list.len();
        }
        if cut_ready {
            subset.not_ready_addresses = None;
        }
    }
    true
}

/// The Endpoints object the Service should have (without resourceVersion or trigger time),
/// truncated and annotated when over capacity.
pub fn endpoints(service: &Service, pods: &[&Pod]) -> Endpoints {
    let labels = endpoints_labels(service);
    let mut subsets = subsets(service, pods);
    let truncated = truncate(&mut subsets);
    Endpoints {
        metadata: ObjectMeta {
            name: service.metadata.name.clone(),
            namespace: service.metadata.namespace.clone(),
            labels: (!labels.is_empty()).then_some(labels),
            annotations: truncated
                .then(|| BTreeMap::from([(OVER_CAPACITY.to_string(), "truncated".to_string())])),
            ..ObjectMeta::default()
        },
        subsets: (!subsets.is_empty()).then_some(subsets),
    }
}

/// One endpoint of a slice: the pod's address and conditions (`ready` never while terminating,
/// unless the Service publishes unready addresses), node, zone and hostname.
fn slice_endpoint(
    service: &Service,
    pod: &Pod,
    zones: &HashMap<String, String>,
) -> discovery::Endpoint {
    let serving = is_ready(pod);
    let terminating = is_terminating(pod);
    let publish = service
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        == Some(true);
    let node = node_name(pod);
    discovery::Endpoint {
        addresses: vec![pod_ip(pod).unwrap_or_default().to_string()],
        conditions: Some(discovery::EndpointConditions {
            ready: Some(publish || (serving && !terminating)),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname: hostname(service, pod),
        target_ref: Some(target_ref(pod)),
        node_name: node.map(str::to_string),
        zone: node.and_then(|n| zones.get(n)).cloned(),
        ..discovery::Endpoint::default()
    }
}

/// What the Service's slices should hold: per set of ports, its endpoints (the controller packs
/// them into slices of at most [`MAX_ENDPOINTS_PER_SLICE`]); one empty group when no pod is in,
/// as upstream keeps a placeholder slice.
pub fn slice_contents(
    service: &Service,
    pods: &[&Pod],
    zones: &HashMap<String, String>,
) -> Vec<SliceContents> {
    let mut groups: BTreeMap<String, SliceContents> = BTreeMap::new();
    // Unlike the Endpoints, a pod that lacks the Service's ports is kept, in a slice of the
    // ports it has (none at all, maybe), as upstream's `getEndpointPorts` keeps it.
    for pod in pods.iter().filter(|p| in_endpoints(p, true)) {
        let ports = slice_ports(&ports_on(service, pod));
        groups
            .entry(ports_key(&ports))
            .or_insert_with(|| (ports, Vec::new()))
            .1
            .push(slice_endpoint(service, pod, zones));
    }
    if groups.is_empty() {
        return vec![(Vec::new(), Vec::new())];
    }
    groups.into_values().collect()
}

/// A slice of the Service holding `ports` and `endpoints`: its labels (the Service's, its name,
/// the manager, the headless marker) and the Service as its controlling owner.
pub fn slice(
    service: &Service,
    ports: &[discovery::EndpointPort],
    endpoints: &[discovery::Endpoint],
) -> discovery::EndpointSlice {
    let name = service.metadata.name.as_deref().unwrap_or("");
    let mut labels = endpoints_labels(service);
    labels.insert(SERVICE_NAME_LABEL.into(), name.to_string());
    labels.insert(MANAGED_BY_LABEL.into(), SLICE_MANAGER.to_string());
    // Upstream's prefix: the Service's name and a dash, cut to leave room for the suffix.
    let prefix: String = format!("{name}-").chars().take(58).collect();
    discovery::EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(prefix),
            namespace: service.metadata.namespace.clone(),
            labels: Some(labels),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".to_string(),
                kind: "Service".to_string(),
                name: name.to_string(),
                uid: service.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        },
        address_type: "IPv4".to_string(),
        endpoints: endpoints.to_vec(),
        ports: (!ports.is_empty()).then(|| ports.to_vec()),
    }
}

/// A slice as the controller writes it: no endpoints or no ports are `null`, as upstream's
/// controller writes them (Go's nil lists), where k8s-openapi writes `[]` and leaves out
/// `ports`. Fields of the slice's own JSON, set by name: this is the wire form.
pub fn slice_json(slice: &discovery::EndpointSlice) -> Result<Value, serde_json::Error> {
    let mut v = serde_json::to_value(slice)?;
    if let Some(o) = v.as_object_mut() {
        if slice.endpoints.is_empty() {
            o.insert("endpoints".into(), Value::Null);
        }
        if slice.ports.is_none() {
            o.insert("ports".into(), Value::Null);
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ContainerPort;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    /// The test Service, with `extra` over its spec's fields.
    fn service(extra: Value) -> Service {
        let mut spec = json!({"selector": {"app": "web"}, "clusterIP": "10.100.0.20",
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}]});
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
            s.extend(e.clone());
        }
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "svc-uid", "labels": {"app": "web"}},
            "spec": spec,
        }))
        .unwrap()
    }

    fn pod(name: &str, ip: &str, ready: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "labels": {"app": "web"}},
            "spec": {"nodeName": format!("fargate-{ip}"),
                     "containers": [{"name": "app", "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]}]},
            "status": {"phase": "Running", "podIP": ip,
                       "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        }))
        .unwrap()
    }

    fn spec(p: &mut Pod) -> &mut k8s_openapi::api::core::v1::PodSpec {
        p.spec.get_or_insert_default()
    }

    fn status(p: &mut Pod) -> &mut k8s_openapi::api::core::v1::PodStatus {
        p.status.get_or_insert_default()
    }

    fn json_of<T: serde::Serialize>(t: &T) -> Value {
        serde_json::to_value(t).unwrap()
    }

    #[test]
    fn ready_and_unready_pods_by_ip_with_named_ports_resolved() {
        let svc = service(json!({}));
        let (a, b, c) = (
            pod("a", "10.0.1.20", true),
            pod("b", "10.0.1.3", true),
            pod("c", "10.0.1.9", false),
        );
        let ep = endpoints(&svc, &[&a, &b, &c]);
        assert_eq!(
            ep.metadata.labels,
            Some(BTreeMap::from([("app".into(), "web".into())]))
        );
        let ep = json_of(&ep);
        let subset = &ep["subsets"][0];
        // As strings, as upstream sorts them.
        assert_eq!(subset["addresses"][0]["ip"], "10.0.1.20");
        assert_eq!(subset["addresses"][1]["ip"], "10.0.1.3");
        assert_eq!(subset["notReadyAddresses"][0]["targetRef"]["name"], "c");
        assert_eq!(
            subset["ports"],
            json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
        );
    }

    #[test]
    fn named_ports_of_sidecars_are_found_and_plain_init_containers_are_not() {
        let svc = service(json!({}));
        let mut p = pod("a", "10.0.1.20", true);
        spec(&mut p).containers[0].ports = Some(vec![]);
        spec(&mut p).init_containers = serde_json::from_value(json!([
            {"name": "setup", "ports": [{"name": "http", "containerPort": 7000}]},
            {"name": "proxy", "restartPolicy": "Always",
             "ports": [{"name": "http", "containerPort": 15001}]}
        ]))
        .unwrap();
        let ep = endpoints(&svc, &[&p]);
        let subsets = ep.subsets.unwrap_or_default();
        assert_eq!(
            subsets[0].ports.as_ref().map(|p| p[0].port),
            Some(15001),
            "{subsets:?}"
        );
        if let Some(init) = spec(&mut p).init_containers.as_mut() {
            init[1].restart_policy = None;
        }
        // No port of that name: no subset at all.
        assert!(endpoints(&svc, &[&p]).subsets.is_none());
    }

    #[test]
    fn finished_terminating_and_addressless_pods_are_left_out_of_endpoints() {
        let svc = service(json!({}));
        let mut done = pod("done", "10.0.1.4", false);
        status(&mut done).phase = Some("Succeeded".into());
        let mut going = pod("going", "10.0.1.5", true);
        going.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        let mut pending = pod("pending", "", false);
        status(&mut pending).pod_ip = None;
        let ep = endpoints(&svc, &[&done, &going, &pending]);
        assert!(ep.subsets.is_none(), "{ep:#?}");
        // The slice keeps the terminating pod, not ready but still serving.
        let slices = slice_contents(&svc, &[&done, &going, &pending], &HashMap::new());
        assert_eq!(slices.len(), 1);
        assert_eq!(
            json_of(&slices[0].1[0].conditions),
            json!({"ready": false, "serving": true, "terminating": true})
        );
    }

    #[test]
    fn a_pod_without_the_named_port_is_not_an_endpoint_but_is_in_a_slice() {
        let svc = service(json!({}));
        let mut other = pod("other", "10.0.1.6", true);
        spec(&mut other).containers[0].ports = Some(Vec::<ContainerPort>::new());
        assert!(endpoints(&svc, &[&other]).subsets.is_none());
        let slices = slice_contents(&svc, &[&other], &HashMap::new());
        assert_eq!(slices.len(), 1);
        assert!(slices[0].0.is_empty());
        assert_eq!(slices[0].1[0].addresses, ["10.0.1.6"]);
        let none = slice_contents(&svc, &[], &HashMap::new());
        assert_eq!(none, vec![(vec![], vec![])]);
        let placeholder = slice(&svc, &none[0].0, &none[0].1);
        assert_eq!(placeholder.metadata.generate_name.as_deref(), Some("web-"));
        assert_eq!(
            placeholder
                .metadata
                .labels
                .as_ref()
                .map(|l| &l[SERVICE_NAME_LABEL]),
            Some(&"web".to_string())
        );
        let placeholder = slice_json(&placeholder).unwrap();
        assert!(placeholder["endpoints"].is_null() && placeholder["ports"].is_null());
    }

    #[test]
    fn headless_services_mark_their_endpoints_and_name_subdomain_hosts() {
        let svc = service(json!({"clusterIP": "None", "ports": []}));
        let mut p = pod("db-0", "10.0.1.7", true);
        spec(&mut p).hostname = Some("db-0".into());
        spec(&mut p).subdomain = Some("web".into());
        let ep = endpoints(&svc, &[&p]);
        assert_eq!(
            ep.metadata
                .labels
                .as_ref()
                .map(|l| l[HEADLESS_LABEL].as_str()),
            Some("")
        );
        let ep = json_of(&ep);
        assert_eq!(ep["subsets"][0]["addresses"][0]["hostname"], "db-0");
        assert!(ep["subsets"][0].get("ports").is_none());
    }

    #[test]
    fn publish_not_ready_addresses_makes_every_pod_ready() {
        let svc = service(json!({"publishNotReadyAddresses": true}));
        let p = pod("a", "10.0.1.8", false);
        let ep = json_of(&endpoints(&svc, &[&p]));
        assert_eq!(ep["subsets"][0]["addresses"][0]["ip"], "10.0.1.8");
        let zones = HashMap::from([("fargate-10.0.1.8".to_string(), "us-east-1a".to_string())]);
        let slices = slice_contents(&svc, &[&p], &zones);
        let endpoint = &slices[0].1[0];
        assert_eq!(
            endpoint.conditions.as_ref().and_then(|c| c.ready),
            Some(true)
        );
        assert_eq!(endpoint.zone.as_deref(), Some("us-east-1a"));
    }

    #[test]
    fn over_capacity_endpoints_are_truncated_ready_first_in_proportion() {
        let address = |i: usize| EndpointAddress {
            ip: format!("10.0.{}.{}", i / 250, i % 250),
            ..EndpointAddress::default()
        };
        let subset = |ready: usize, not_ready: usize, from: usize| EndpointSubset {
            addresses: Some((from..from + ready).map(address).collect()),
            not_ready_addresses: Some(
                (from + ready..from + ready + not_ready)
                    .map(address)
                    .collect(),
            ),
            ports: None,
        };
        let len = |l: &Option<Vec<EndpointAddress>>| l.as_ref().map_or(0, Vec::len);
        // 900 ready and 300 not ready: the ready stay, 100 not-ready ones in proportion.
        let mut subsets = vec![subset(600, 200, 0), subset(300, 100, 1000)];
        assert!(truncate(&mut subsets));
        assert_eq!(len(&subsets[0].addresses), 600);
        assert_eq!(len(&subsets[0].not_ready_addresses), 67);
        assert_eq!(len(&subsets[1].not_ready_addresses), 33);
        // 1,500 ready: 1,000 of them, in proportion, and no not-ready ones.
        let mut subsets = vec![subset(1000, 10, 0), subset(500, 0, 2000)];
        assert!(truncate(&mut subsets));
        assert_eq!(len(&subsets[0].addresses), 667);
        assert_eq!(len(&subsets[1].addresses), 333);
        assert!(subsets[0].not_ready_addresses.is_none());
        let mut small = vec![subset(10, 5, 0)];
        assert!(!truncate(&mut small));
    }

    /// A Service of two named ports (one unnamed, one with an appProtocol) over pods of every
    /// kind: ready, not ready, terminating, on a zoned node, in the Service's subdomain, one
    /// lacking a port: everything the controller writes, as JSON.
    fn representative_output() -> Value {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "svc-uid",
                         "labels": {"app": "web", "tier": "front"}},
            "spec": {"selector": {"app": "web"}, "clusterIP": "10.100.0.20",
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http",
                                "appProtocol": "http"},
                               {"port": 9000, "protocol": "UDP", "targetPort": 9100}]},
        }))
        .unwrap();
        let mut pods = [
            pod("a", "10.0.1.20", true),
            pod("b", "10.0.1.3", true),
            pod("c", "10.0.1.9", false),
            pod("d", "10.0.1.10", true),
            pod("e", "10.0.1.11", true),
        ];
        spec(&mut pods[1]).hostname = Some("b".into());
        spec(&mut pods[1]).subdomain = Some("web".into());
        pods[2].metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        spec(&mut pods[3]).containers[0].ports = Some(vec![]);
        spec(&mut pods[4]).node_name = None;
        let zones = HashMap::from([("fargate-10.0.1.20".to_string(), "us-east-1a".to_string())]);
        let refs: Vec<&Pod> = pods.iter().collect();
        let slices: Vec<Value> = slice_contents(&svc, &refs, &zones)
            .iter()
            .map(|(ports, endpoints)| slice_json(&slice(&svc, ports, endpoints)).unwrap())
            .collect();
        let none = slice_contents(&svc, &[], &zones);
        let placeholder = slice_json(&slice(&svc, &none[0].0, &none[0].1)).unwrap();
        json!({"endpoints": endpoints(&svc, &refs), "slices": slices, "placeholder": placeholder})
    }

    /// The JSON is what this module wrote when it still built its output by indexing JSON: a
    /// change to it is a change to what kubectl shows.
    #[test]
    fn what_the_controller_writes_for_a_representative_service() {
        let want: Value = serde_json::from_str(include_str!("representative_output.json")).unwrap();
        assert_eq!(representative_output(), want);
    }

    #[test]
    fn selectorless_and_external_name_services_are_not_managed() {
        assert!(is_managed(&service(json!({}))));
        assert!(!is_managed(&service(json!({"selector": null}))));
        assert!(!is_managed(&service(json!({"selector": {}}))));
        assert!(!is_managed(&service(json!({"type": "ExternalName"}))));
    }

    #[test]
    fn a_service_selects_pods_by_their_stored_labels() {
        let svc = service(json!({}));
        let labelled = json!({"metadata": {"labels": {"app": "web", "x": "y"}}});
        let other = json!({"metadata": {"labels": {"app": "db"}}});
        assert!(selects(&svc, &labelled));
        assert!(!selects(&svc, &other));
        assert!(!selects(&svc, &json!({"metadata": {}})));
    }
}
