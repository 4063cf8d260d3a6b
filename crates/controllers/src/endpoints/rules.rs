//! What a Service's Endpoints and EndpointSlices say, from its pods, as kube-controller-manager's
//! endpoints and endpointslice controllers compute them: which pods are in (an IP, not finished;
//! terminating ones only where upstream keeps them), ready, serving and terminating, each
//! service port's target resolved on the pod (a named `targetPort` through the container port of
//! that name), hostnames for a headless Service's subdomain. Pure: the controller reads and writes.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};

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

/// Whether the controllers keep this Service's endpoints: it selects pods (a Service without a
/// selector has endpoints its user writes) and is not an ExternalName.
pub fn is_managed(service: &Value) -> bool {
    service["spec"]["selector"]
        .as_object()
        .is_some_and(|s| !s.is_empty())
        && service["spec"]["type"] != "ExternalName"
}

/// Whether a pod the Service's selector matches.
pub fn selects(service: &Value, pod: &Value) -> bool {
    let Some(selector) = service["spec"]["selector"].as_object() else {
        return false;
    };
    let labels = pod["metadata"]["labels"].as_object();
    !selector.is_empty()
        && selector
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

fn is_terminating(pod: &Value) -> bool {
    pod["metadata"]["deletionTimestamp"].is_string()
}

/// Upstream's `ShouldPodBeInEndpoints`: an address, not finished, and terminating only when
/// `include_terminating`.
fn in_endpoints(pod: &Value, include_terminating: bool) -> bool {
    let finished = matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    let ip = pod["status"]["podIP"]
        .as_str()
        .is_some_and(|i| !i.is_empty());
    !finished && ip && (include_terminating || !is_terminating(pod))
}

/// The port a service port reaches on a pod (`FindPort`): a number as it is, a name through
/// the pod's container (or sidecar) port of that name and protocol; `None` when the pod has no
/// such port.
fn target_port(pod: &Value, service_port: &Value) -> Option<i64> {
    let protocol = service_port["protocol"].as_str().unwrap_or("TCP");
    match &service_port["targetPort"] {
        Value::Number(n) => n.as_i64(),
        Value::String(name) => {
            if let Ok(n) = name.parse::<i64>() {
                return Some(n);
            }
            // Containers first, then sidecars (init containers that restart `Always`).
            let sidecars = pod["spec"]["initContainers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| c["restartPolicy"] == "Always");
            pod["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(sidecars)
                .flat_map(|c| c["ports"].as_array().into_iter().flatten())
                .find(|p| {
                    p["name"] == name.as_str()
                        && p["protocol"].as_str().unwrap_or("TCP") == protocol
                })
                .and_then(|p| p["containerPort"].as_i64())
        }
        _ => service_port["port"].as_i64(),
    }
}

/// The ports of the Service on this pod, as endpoint ports (name, port, protocol,
/// appProtocol), in the Service's order; the service ports the pod lacks are left out. A
/// slice's ports always carry a name (`""` for an unnamed one), the Endpoints' only a given one.
fn ports_on(service: &Value, pod: &Value, for_slice: bool) -> Vec<Value> {
    service["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|sp| {
            let port = target_port(pod, sp)?;
            let mut p = Map::new();
            match sp["name"].as_str().filter(|n| !n.is_empty()) {
                Some(name) => {
                    p.insert("name".into(), json!(name));
                }
                None if for_slice => {
                    p.insert("name".into(), json!(""));
                }
                None => {}
            }
            p.insert("port".into(), json!(port));
            p.insert(
                "protocol".into(),
                json!(sp["protocol"].as_str().unwrap_or("TCP")),
            );
            if let Some(app) = sp["appProtocol"].as_str() {
                p.insert("appProtocol".into(), json!(app));
            }
            Some(Value::Object(p))
        })
        .collect()
}

/// Upstream's `!IsServiceIPSet`: no ClusterIP, or `None`.
fn is_headless(service: &Value) -> bool {
    service["spec"]["clusterIP"]
        .as_str()
        .is_none_or(|ip| ip.is_empty() || ip == "None")
}

/// The pod's hostname when it is in the Service's subdomain (`ShouldSetHostname`).
fn hostname(service: &Value, pod: &Value) -> Option<String> {
    let host = pod["spec"]["hostname"].as_str().filter(|h| !h.is_empty())?;
    (pod["spec"]["subdomain"] == service["metadata"]["name"]
        && pod["metadata"]["namespace"] == service["metadata"]["namespace"])
        .then(|| host.to_string())
}

fn target_ref(pod: &Value) -> Value {
    json!({
        "kind": "Pod",
        "namespace": pod["metadata"]["namespace"],
        "name": pod["metadata"]["name"],
        "uid": pod["metadata"]["uid"],
    })
}

/// The labels upstream gives a Service's Endpoints: the Service's, and the headless marker.
fn endpoints_labels(service: &Value) -> Map<String, Value> {
    let mut labels = service["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    if is_headless(service) {
        labels.insert(HEADLESS_LABEL.into(), json!(""));
    } else {
        labels.remove(HEADLESS_LABEL);
    }
    labels
}

/// A subset being gathered: its ports, ready addresses and not-ready addresses.
type Subset = (Vec<Value>, Vec<Value>, Vec<Value>);

/// The `subsets` of the Service's Endpoints: addresses grouped by the ports they serve
/// (`RepackSubsets`), ready ones in `addresses`, the others in `notReadyAddresses`, each sorted
/// by IP. Empty when no pod is in.
pub fn subsets(service: &Value, pods: &[&Value]) -> Vec<Value> {
    let tolerate_unready = service["spec"]["publishNotReadyAddresses"] == true;
    let no_ports = service["spec"]["ports"]
        .as_array()
        .is_none_or(|p| p.is_empty());
    // Keyed by the ports' JSON, so pods serving the same ports share a subset.
    let mut groups: BTreeMap<String, Subset> = BTreeMap::new();
    for pod in pods.iter().filter(|p| in_endpoints(p, tolerate_unready)) {
        let ports = ports_on(service, pod, false);
        if ports.is_empty() && !(no_ports && is_headless(service)) {
            continue;
        }
        let mut address = Map::new();
        address.insert("ip".into(), pod["status"]["podIP"].clone());
        if let Some(h) = hostname(service, pod) {
            address.insert("hostname".into(), json!(h));
        }
        if let Some(node) = pod["spec"]["nodeName"].as_str() {
            address.insert("nodeName".into(), json!(node));
        }
        address.insert("targetRef".into(), target_ref(pod));
        let key = Value::Array(ports.clone()).to_string();
        let entry = groups
            .entry(key)
            .or_insert_with(|| (ports, Vec::new(), Vec::new()));
        if tolerate_unready || is_ready(pod) {
            entry.1.push(Value::Object(address));
        } else {
            entry.2.push(Value::Object(address));
        }
    }
    groups
        .into_values()
        .map(|(ports, mut ready, mut not_ready)| {
            // Upstream's `LessEndpointAddress`: the IPs as strings, then the pods' uids.
            let by_ip = |a: &Value, b: &Value| {
                a["ip"].as_str().cmp(&b["ip"].as_str()).then_with(|| {
                    a["targetRef"]["uid"]
                        .as_str()
                        .cmp(&b["targetRef"]["uid"].as_str())
                })
            };
            ready.sort_by(by_ip);
            not_ready.sort_by(by_ip);
            let mut subset = Map::new();
            if !ready.is_empty() {
                subset.insert("addresses".into(), Value::Array(ready));
            }
            if !not_ready.is_empty() {
                subset.insert("notReadyAddresses".into(), Value::Array(not_ready));
            }
            if !ports.is_empty() {
                subset.insert("ports".into(), Value::Array(ports));
            }
            Value::Object(subset)
        })
        .collect()
}

/// Cut subsets holding more than [`MAX_ENDPOINTS_ADDRESSES`] addresses down to it, as
/// upstream's `truncateEndpoints`: ready addresses first, each subset keeping its proportion
/// (rounded up, the last taking what is left); returns whether anything was cut.
pub fn truncate(subsets: &mut [Value]) -> bool {
    let count = |s: &Value, k: &str| s[k].as_array().map_or(0, Vec::len);
    let ready: usize = subsets.iter().map(|s| count(s, "addresses")).sum();
    let not_ready: usize = subsets.iter().map(|s| count(s, "notReadyAddresses")).sum();
    if ready + not_ready <= MAX_ENDPOINTS_ADDRESSES {
        return false;
    }
    let cut_ready = ready > MAX_ENDPOINTS_ADDRESSES;
    let (max, total, key) = if cut_ready {
        (MAX_ENDPOINTS_ADDRESSES, ready, "addresses")
    } else {
        (
            MAX_ENDPOINTS_ADDRESSES - ready,
            not_ready,
            "notReadyAddresses",
        )
    };
    let mut room = max;
    for subset in subsets.iter_mut() {
        let here = count(subset, key);
        let share = (here * max).div_ceil(total).min(room);
        if let Some(list) = subset[key].as_array_mut() {
            list.truncate(share);
            room -= list.len();
        }
        if cut_ready && let Some(o) = subset.as_object_mut() {
            o.remove("notReadyAddresses");
        }
    }
    true
}

/// The Endpoints object the Service should have (without resourceVersion or trigger time),
/// truncated and annotated when over capacity.
pub fn endpoints(service: &Value, pods: &[&Value]) -> Value {
    let mut out = json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {
            "name": service["metadata"]["name"],
            "namespace": service["metadata"]["namespace"],
        },
    });
    let labels = endpoints_labels(service);
    if !labels.is_empty() {
        out["metadata"]["labels"] = Value::Object(labels);
    }
    let mut subsets = subsets(service, pods);
    if truncate(&mut subsets) {
        out["metadata"]["annotations"] = json!({OVER_CAPACITY: "truncated"});
    }
    if !subsets.is_empty() {
        out["subsets"] = Value::Array(subsets);
    }
    out
}

/// One endpoint of a slice: the pod's address and conditions (`ready` never while terminating,
/// unless the Service publishes unready addresses), node, zone and hostname.
fn slice_endpoint(service: &Value, pod: &Value, zones: &HashMap<String, String>) -> Value {
    let serving = is_ready(pod);
    let terminating = is_terminating(pod);
    let ready = service["spec"]["publishNotReadyAddresses"] == true || (serving && !terminating);
    let mut e = Map::new();
    e.insert("addresses".into(), json!([pod["status"]["podIP"]]));
    e.insert(
        "conditions".into(),
        json!({"ready": ready, "serving": serving, "terminating": terminating}),
    );
    if let Some(h) = hostname(service, pod) {
        e.insert("hostname".into(), json!(h));
    }
    e.insert("targetRef".into(), target_ref(pod));
    if let Some(node) = pod["spec"]["nodeName"].as_str() {
        e.insert("nodeName".into(), json!(node));
        if let Some(zone) = zones.get(node) {
            e.insert("zone".into(), json!(zone));
        }
    }
    Value::Object(e)
}

/// What the Service's slices should hold: per set of ports, its endpoints (the controller packs
/// them into slices of at most [`MAX_ENDPOINTS_PER_SLICE`]); one empty group when no pod is in,
/// as upstream keeps a placeholder slice.
pub fn slice_contents(
    service: &Value,
    pods: &[&Value],
    zones: &HashMap<String, String>,
) -> Vec<(Value, Vec<Value>)> {
    let mut groups: BTreeMap<String, (Value, Vec<Value>)> = BTreeMap::new();
    // Unlike the Endpoints, a pod that lacks the Service's ports is kept, in a slice of the
    // ports it has (none at all, maybe), as upstream's `getEndpointPorts` keeps it.
    for pod in pods.iter().filter(|p| in_endpoints(p, true)) {
        let ports = ports_on(service, pod, true);
        let key = Value::Array(ports.clone()).to_string();
        groups
            .entry(key)
            .or_insert_with(|| (Value::Array(ports), Vec::new()))
            .1
            .push(slice_endpoint(service, pod, zones));
    }
    if groups.is_empty() {
        return vec![(Value::Array(Vec::new()), Vec::new())];
    }
    groups.into_values().collect()
}

/// A slice of the Service holding `ports` and `endpoints`: its labels (the Service's, its name,
/// the manager, the headless marker) and the Service as its controlling owner.
pub fn slice(service: &Value, ports: &Value, endpoints: &[Value]) -> Value {
    let name = service["metadata"]["name"].as_str().unwrap_or("");
    let mut labels = endpoints_labels(service);
    labels.remove(SERVICE_NAME_LABEL);
    labels.remove(MANAGED_BY_LABEL);
    labels.insert(SERVICE_NAME_LABEL.into(), json!(name));
    labels.insert(MANAGED_BY_LABEL.into(), json!(SLICE_MANAGER));
    // Upstream's prefix: the Service's name and a dash, cut to leave room for the suffix.
    let prefix: String = format!("{name}-").chars().take(58).collect();
    let ports = match ports.as_array() {
        Some(p) if !p.is_empty() => ports.clone(),
        _ => Value::Null,
    };
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "generateName": prefix,
            "namespace": service["metadata"]["namespace"],
            "labels": labels,
            "ownerReferences": [{
                "apiVersion": "v1",
                "kind": "Service",
                "name": name,
                "uid": service["metadata"]["uid"],
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "addressType": "IPv4",
        "endpoints": if endpoints.is_empty() { Value::Null } else { Value::Array(endpoints.to_vec()) },
        "ports": ports,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(extra: Value) -> Value {
        let mut s = json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "svc-uid", "labels": {"app": "web"}},
            "spec": {"selector": {"app": "web"}, "clusterIP": "10.100.0.20",
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}]},
        });
        if let (Some(s), Some(e)) = (s["spec"].as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                s.insert(k.clone(), v.clone());
            }
        }
        s
    }

    fn pod(name: &str, ip: &str, ready: bool) -> Value {
        json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "labels": {"app": "web"}},
            "spec": {"nodeName": format!("fargate-{ip}"),
                     "containers": [{"name": "app", "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]}]},
            "status": {"phase": "Running", "podIP": ip,
                       "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        })
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
        let subset = &ep["subsets"][0];
        // As strings, as upstream sorts them.
        assert_eq!(subset["addresses"][0]["ip"], "10.0.1.20");
        assert_eq!(subset["addresses"][1]["ip"], "10.0.1.3");
        assert_eq!(subset["notReadyAddresses"][0]["targetRef"]["name"], "c");
        assert_eq!(
            subset["ports"],
            json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
        );
        assert_eq!(ep["metadata"]["labels"], json!({"app": "web"}));
    }

    #[test]
    fn named_ports_of_sidecars_are_found_and_plain_init_containers_are_not() {
        let svc = service(json!({}));
        let mut p = pod("a", "10.0.1.20", true);
        p["spec"]["containers"][0]["ports"] = json!([]);
        p["spec"]["initContainers"] = json!([
            {"name": "setup", "ports": [{"name": "http", "containerPort": 7000}]},
            {"name": "proxy", "restartPolicy": "Always",
             "ports": [{"name": "http", "containerPort": 15001}]}
        ]);
        let ep = endpoints(&svc, &[&p]);
        assert_eq!(ep["subsets"][0]["ports"][0]["port"], 15001, "{ep}");
        p["spec"]["initContainers"][1]["restartPolicy"] = json!(null);
        // No port of that name: no subset at all.
        assert!(endpoints(&svc, &[&p])["subsets"].is_null());
    }

    #[test]
    fn finished_terminating_and_addressless_pods_are_left_out_of_endpoints() {
        let svc = service(json!({}));
        let mut done = pod("done", "10.0.1.4", false);
        done["status"]["phase"] = json!("Succeeded");
        let mut going = pod("going", "10.0.1.5", true);
        going["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let mut pending = pod("pending", "", false);
        pending["status"]["podIP"] = Value::Null;
        let ep = endpoints(&svc, &[&done, &going, &pending]);
        assert!(ep.get("subsets").is_none(), "{ep:#}");
        // The slice keeps the terminating pod, not ready but still serving.
        let slices = slice_contents(&svc, &[&done, &going, &pending], &HashMap::new());
        assert_eq!(slices.len(), 1);
        assert_eq!(
            slices[0].1[0]["conditions"],
            json!({"ready": false, "serving": true, "terminating": true})
        );
    }

    #[test]
    fn a_pod_without_the_named_port_is_not_an_endpoint_but_is_in_a_slice() {
        let svc = service(json!({}));
        let mut other = pod("other", "10.0.1.6", true);
        other["spec"]["containers"][0]["ports"] = json!([]);
        assert!(endpoints(&svc, &[&other]).get("subsets").is_none());
        let slices = slice_contents(&svc, &[&other], &HashMap::new());
        assert_eq!(slices.len(), 1);
        assert_eq!(slices[0].0, json!([]));
        assert_eq!(slices[0].1[0]["addresses"], json!(["10.0.1.6"]));
        let none = slice_contents(&svc, &[], &HashMap::new());
        assert_eq!(none, vec![(json!([]), vec![])]);
        let placeholder = slice(&svc, &none[0].0, &none[0].1);
        assert!(placeholder["endpoints"].is_null() && placeholder["ports"].is_null());
        assert_eq!(placeholder["metadata"]["generateName"], "web-");
        assert_eq!(placeholder["metadata"]["labels"][SERVICE_NAME_LABEL], "web");
    }

    #[test]
    fn headless_services_mark_their_endpoints_and_name_subdomain_hosts() {
        let svc = service(json!({"clusterIP": "None", "ports": []}));
        let mut p = pod("db-0", "10.0.1.7", true);
        p["spec"]["hostname"] = json!("db-0");
        p["spec"]["subdomain"] = json!("web");
        let ep = endpoints(&svc, &[&p]);
        assert_eq!(ep["metadata"]["labels"][HEADLESS_LABEL], "");
        assert_eq!(ep["subsets"][0]["addresses"][0]["hostname"], "db-0");
        assert!(ep["subsets"][0].get("ports").is_none());
    }

    #[test]
    fn publish_not_ready_addresses_makes_every_pod_ready() {
        let svc = service(json!({"publishNotReadyAddresses": true}));
        let p = pod("a", "10.0.1.8", false);
        let ep = endpoints(&svc, &[&p]);
        assert_eq!(ep["subsets"][0]["addresses"][0]["ip"], "10.0.1.8");
        let zones = HashMap::from([("fargate-10.0.1.8".to_string(), "us-east-1a".to_string())]);
        let slices = slice_contents(&svc, &[&p], &zones);
        assert_eq!(slices[0].1[0]["conditions"]["ready"], true);
        assert_eq!(slices[0].1[0]["zone"], "us-east-1a");
    }

    #[test]
    fn over_capacity_endpoints_are_truncated_ready_first_in_proportion() {
        let address = |i: usize| json!({"ip": format!("10.0.{}.{}", i / 250, i % 250)});
        let subset = |ready: usize, not_ready: usize, from: usize| {
            json!({
                "addresses": (from..from + ready).map(address).collect::<Vec<_>>(),
                "notReadyAddresses": (from + ready..from + ready + not_ready).map(address).collect::<Vec<_>>(),
            })
        };
        // 900 ready and 300 not ready: the ready stay, 100 not-ready ones in proportion.
        let mut subsets = vec![subset(600, 200, 0), subset(300, 100, 1000)];
        assert!(truncate(&mut subsets));
        let len = |s: &Value, k: &str| s[k].as_array().map_or(0, Vec::len);
        assert_eq!(len(&subsets[0], "addresses"), 600);
        assert_eq!(len(&subsets[0], "notReadyAddresses"), 67);
        assert_eq!(len(&subsets[1], "notReadyAddresses"), 33);
        // 1,500 ready: 1,000 of them, in proportion, and no not-ready ones.
        let mut subsets = vec![subset(1000, 10, 0), subset(500, 0, 2000)];
        assert!(truncate(&mut subsets));
        assert_eq!(len(&subsets[0], "addresses"), 667);
        assert_eq!(len(&subsets[1], "addresses"), 333);
        assert!(subsets[0].get("notReadyAddresses").is_none());
        let mut small = vec![subset(10, 5, 0)];
        assert!(!truncate(&mut small));
    }

    /// A Service of two named ports (one unnamed, one with an appProtocol) over pods of every
    /// kind: ready, not ready, terminating, on a zoned node, in the Service's subdomain, one
    /// lacking a port: everything the controller writes, as JSON.
    fn representative_output() -> Value {
        let svc = json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "svc-uid",
                         "labels": {"app": "web", "tier": "front"}},
            "spec": {"selector": {"app": "web"}, "clusterIP": "10.100.0.20",
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http",
                                "appProtocol": "http"},
                               {"port": 9000, "protocol": "UDP", "targetPort": 9100}]},
        });
        let mut pods = vec![
            pod("a", "10.0.1.20", true),
            pod("b", "10.0.1.3", true),
            pod("c", "10.0.1.9", false),
            pod("d", "10.0.1.10", true),
            pod("e", "10.0.1.11", true),
        ];
        pods[1]["spec"]["hostname"] = json!("b");
        pods[1]["spec"]["subdomain"] = json!("web");
        pods[2]["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        pods[3]["spec"]["containers"][0]["ports"] = json!([]);
        pods[4]["spec"]
            .as_object_mut()
            .map(|s| s.remove("nodeName"));
        let zones = HashMap::from([("fargate-10.0.1.20".to_string(), "us-east-1a".to_string())]);
        let refs: Vec<&Value> = pods.iter().collect();
        let slices: Vec<Value> = slice_contents(&svc, &refs, &zones)
            .iter()
            .map(|(ports, endpoints)| slice(&svc, ports, endpoints))
            .collect();
        let none = slice_contents(&svc, &[], &zones);
        let placeholder = slice(&svc, &none[0].0, &none[0].1);
        json!({"endpoints": endpoints(&svc, &refs), "slices": slices, "placeholder": placeholder})
    }

    /// The JSON is what this module wrote when it still built its output by indexing JSON: a
    /// change to it is a change to what kubectl shows.
    #[test]
    fn what_the_controller_writes_for_a_representative_service() {
        let want: Value =
            serde_json::from_str(include_str!("representative_output.json")).unwrap();
        assert_eq!(representative_output(), want);
    }

    #[test]
    fn selectorless_and_external_name_services_are_not_managed() {
        assert!(is_managed(&service(json!({}))));
        assert!(!is_managed(&service(json!({"selector": null}))));
        assert!(!is_managed(&service(json!({"selector": {}}))));
        assert!(!is_managed(&service(json!({"type": "ExternalName"}))));
    }
}
